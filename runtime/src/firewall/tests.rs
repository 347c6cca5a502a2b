//! The grants service over the dry-run back end (its record doubles as the firewall's state), and
//! over a back end that fails on demand, for the error paths. The real ufw and nftables back ends
//! are exercised in a private network namespace by the system tests.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::backend::{DryRun, OwnedRule};
use super::*;

struct Setup {
    dir: tempfile::TempDir,
    fw: Firewall,
}

fn setup_with(limits: FirewallLimits) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = Arc::new(AuditLog::open(&dir.path().join("audit.jsonl")).expect("audit"));
    let backend = DryRun::new(dir.path().join("dry.jsonl"));
    let fw = Firewall::new(Box::new(backend), LedgerFile::in_dir(dir.path()), limits, audit);
    Setup { dir, fw }
}

fn setup() -> Setup {
    setup_with(FirewallLimits::default())
}

impl Setup {
    fn dry(&self) -> DryRun {
        DryRun::new(self.dir.path().join("dry.jsonl"))
    }

    fn rules(&self) -> Vec<OwnedRule> {
        self.dry().owned().expect("owned")
    }

    fn audit_actions(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .expect("audit")
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
            .filter(|v| v["event"] == "firewall")
            .map(|v| v["action"].as_str().expect("action").to_owned())
            .collect()
    }
}

fn rule(src: &str, port: u16) -> Rule {
    Rule::new(src.parse().expect("source"), port, Proto::Tcp).expect("rule")
}

const T0: u64 = 1_700_000_000_000;

#[test]
fn allow_opens_a_tagged_rule_and_records_it_first() {
    let s = setup();
    let opened =
        s.fw.allow(T0, "alice", "r1", rule("203.0.113.5", 22), 60)
            .expect("allow");
    assert!(!opened.extended);
    assert_eq!(opened.expires_ms, T0 + 60_000);
    let rules = s.rules();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].id, opened.id);
    let listed = s.fw.list(T0, Some("alice")).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, opened.id);
    assert!(s.fw.list(T0, Some("bob")).expect("list").is_empty());
    assert_eq!(s.audit_actions(), ["opened"]);
}

#[test]
fn asking_again_extends_instead_of_adding_a_rule() {
    let s = setup();
    let first =
        s.fw.allow(T0, "alice", "r1", rule("203.0.113.5", 22), 60)
            .expect("allow");
    let again =
        s.fw.allow(T0 + 30_000, "alice", "r2", rule("203.0.113.5", 22), 60)
            .expect("again");
    assert_eq!(again.id, first.id);
    assert!(again.extended);
    assert_eq!(again.expires_ms, T0 + 90_000);
    // A shorter ask never cuts a hold short.
    let shorter =
        s.fw.allow(T0 + 31_000, "alice", "r3", rule("203.0.113.5", 22), 1)
            .expect("shorter");
    assert_eq!(shorter.expires_ms, T0 + 90_000);
    assert_eq!(s.rules().len(), 1, "one rule, however often asked");
    // A different port is a different opening.
    let other =
        s.fw.allow(T0, "alice", "r4", rule("203.0.113.5", 443), 60)
            .expect("443");
    assert_ne!(other.id, first.id);
    assert_eq!(s.rules().len(), 2);
}

#[test]
fn a_shared_opening_closes_only_when_its_last_holder_is_done() {
    let s = setup();
    let a =
        s.fw.allow(T0, "alice", "r1", rule("203.0.113.5", 22), 60)
            .expect("alice");
    let b =
        s.fw.allow(T0, "bob", "r2", rule("203.0.113.5", 22), 120)
            .expect("bob");
    assert_eq!(a.id, b.id, "same source and port: one rule");
    assert_eq!(
        s.fw.revoke(T0 + 1, Revoker::Client("alice"), &a.id)
            .expect("release"),
        None
    );
    assert_eq!(s.rules().len(), 1, "bob still holds it");
    assert!(s.fw.list(T0 + 1, Some("alice")).expect("list").is_empty());
    assert!(matches!(
        s.fw.revoke(T0 + 2, Revoker::Client("alice"), &a.id),
        Err(FirewallError::NotFound(_))
    ));
    assert!(
        s.fw.revoke(T0 + 3, Revoker::Client("bob"), &a.id)
            .expect("close")
            .is_some()
    );
    assert!(s.rules().is_empty());
    assert!(s.fw.list(T0 + 3, None).expect("list").is_empty());
}

#[test]
fn clients_cannot_revoke_what_they_do_not_hold_but_operators_can() {
    let s = setup();
    let a =
        s.fw.allow(T0, "alice", "r1", rule("203.0.113.5", 22), 60)
            .expect("alice");
    assert!(matches!(
        s.fw.revoke(T0, Revoker::Client("mallory"), &a.id),
        Err(FirewallError::NotFound(_))
    ));
    assert_eq!(s.rules().len(), 1);
    let unknown: GrantId = "fw-00000000000000ff".parse().expect("id");
    assert!(matches!(
        s.fw.revoke(T0, Revoker::Operator, &unknown),
        Err(FirewallError::NotFound(_))
    ));
    s.fw.revoke(T0, Revoker::Operator, &a.id).expect("operator");
    assert!(s.rules().is_empty());
    assert_eq!(s.audit_actions(), ["opened", "revoked"]);
}

#[test]
fn the_reaper_closes_at_expiry_and_trims_ended_holds() {
    let s = setup();
    let a =
        s.fw.allow(T0, "alice", "r1", rule("203.0.113.5", 22), 10)
            .expect("alice");
    s.fw.allow(T0, "bob", "r2", rule("203.0.113.5", 22), 20)
        .expect("bob");
    s.fw.allow(T0, "bob", "r3", rule("198.51.100.0/24", 22), 5)
        .expect("bob net");
    assert_eq!(s.fw.reap(T0 + 4_999).expect("reap"), 0);
    assert_eq!(s.rules().len(), 2);
    assert_eq!(s.fw.reap(T0 + 5_000).expect("reap"), 1);
    assert_eq!(s.rules().len(), 1);
    assert_eq!(
        s.fw.reap(T0 + 10_000).expect("reap"),
        0,
        "bob still holds the ssh opening"
    );
    let left = s.fw.list(T0 + 10_000, None).expect("list");
    assert_eq!(left[0].holders.len(), 1);
    assert_eq!(left[0].holders[0].client, "bob");
    assert_eq!(s.fw.reap(T0 + 20_000).expect("reap"), 1);
    assert!(s.rules().is_empty());
    assert!(s.fw.list(T0 + 20_000, None).expect("list").is_empty());
    assert!(matches!(
        s.fw.revoke(T0 + 20_000, Revoker::Operator, &a.id),
        Err(FirewallError::NotFound(_))
    ));
}

#[test]
fn reconcile_closes_what_expired_while_down_reopens_what_is_missing_and_removes_orphans() {
    let s = setup();
    let expired =
        s.fw.allow(T0, "alice", "r1", rule("203.0.113.5", 22), 10)
            .expect("a");
    let live =
        s.fw.allow(T0, "alice", "r2", rule("203.0.113.5", 443), 3600)
            .expect("b");
    let lost =
        s.fw.allow(T0, "bob", "r3", rule("203.0.113.6", 22), 3600)
            .expect("c");
    // The firewall lost `lost`'s rule (a reboot with nftables) and gained a tagged rule the
    // ledger never heard of.
    let dry = s.dry();
    dry.close(&lost.id, &rule("203.0.113.6", 22)).expect("lose");
    let orphan = GrantId::random();
    dry.open(&orphan, &rule("192.0.2.1", 22), T0 + 1).expect("orphan");

    let report = s.fw.reconcile(T0 + 60_000).expect("reconcile");
    assert_eq!(
        (
            report.expired,
            report.kept,
            report.reopened,
            report.orphans_removed
        ),
        (1, 1, 1, 1),
        "{report:?}"
    );
    assert!(report.errors.is_empty());
    let mut ids: Vec<GrantId> = s.rules().into_iter().map(|o| o.id).collect();
    ids.sort();
    let mut want = vec![live.id, lost.id];
    want.sort();
    assert_eq!(ids, want);
    assert!(!s.rules().iter().any(|o| o.id == expired.id));
    // Reconciling again changes nothing.
    let again = s.fw.reconcile(T0 + 60_000).expect("again");
    assert_eq!(
        (again.expired, again.kept, again.reopened, again.orphans_removed),
        (0, 2, 0, 0)
    );
}

#[test]
fn an_unreadable_ledger_is_moved_aside_and_every_tagged_rule_closed() {
    let s = setup();
    s.fw.allow(T0, "alice", "r1", rule("203.0.113.5", 22), 3600)
        .expect("a");
    std::fs::write(s.dir.path().join("grants.json"), "{ truncated").expect("corrupt");
    let report = s.fw.reconcile(T0).expect("reconcile");
    assert_eq!(report.orphans_removed, 1);
    assert!(
        report
            .quarantined
            .as_deref()
            .is_some_and(|p| p.contains("grants.json.corrupt-"))
    );
    assert!(s.rules().is_empty(), "fail closed");
    // The reaper does the same when it meets a broken ledger.
    s.fw.allow(T0, "alice", "r2", rule("203.0.113.5", 22), 3600)
        .expect("b");
    std::fs::write(s.dir.path().join("grants.json"), "[]").expect("corrupt");
    s.fw.reap(T0).expect("reap");
    assert!(s.rules().is_empty());
    assert!(s.audit_actions().contains(&"ledger-quarantined".to_owned()));
}

#[test]
fn ceilings_hold_whatever_the_policy_says() {
    let s = setup_with(FirewallLimits {
        max_ttl_s: 100,
        max_grants: 3,
        max_grants_per_client: 2,
    });
    assert!(matches!(
        s.fw.allow(T0, "alice", "r", rule("203.0.113.5", 22), 101),
        Err(FirewallError::Limit(_))
    ));
    assert!(matches!(
        s.fw.allow(T0, "alice", "r", rule("203.0.113.5", 22), 0),
        Err(FirewallError::Limit(_))
    ));
    s.fw.allow(T0, "alice", "r", rule("203.0.113.5", 22), 10)
        .expect("1");
    s.fw.allow(T0, "alice", "r", rule("203.0.113.5", 23), 10)
        .expect("2");
    let third = s.fw.allow(T0, "alice", "r", rule("203.0.113.5", 24), 10);
    assert!(
        matches!(third, Err(FirewallError::Limit(ref m)) if m.contains("alice")),
        "{third:?}"
    );
    // Extending what one holds is always fine.
    s.fw.allow(T0, "alice", "r", rule("203.0.113.5", 22), 20)
        .expect("extend");
    s.fw.allow(T0, "bob", "r", rule("203.0.113.6", 22), 10)
        .expect("3");
    let fourth = s.fw.allow(T0, "bob", "r", rule("203.0.113.6", 23), 10);
    assert!(
        matches!(fourth, Err(FirewallError::Limit(ref m)) if m.contains("openings")),
        "{fourth:?}"
    );
    // Expired holds no longer count.
    s.fw.allow(T0 + 60_000, "alice", "r", rule("203.0.113.5", 25), 10)
        .expect("after expiry");
}

#[test]
fn concurrent_asks_for_the_same_opening_make_one_rule() {
    let s = setup();
    let ids = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for i in 0..8 {
            let (fw, ids) = (&s.fw, &ids);
            scope.spawn(move || {
                let client = if i % 2 == 0 { "alice" } else { "bob" };
                let o = fw
                    .allow(T0 + i, client, "r", rule("203.0.113.5", 22), 60)
                    .expect("allow");
                ids.lock().expect("lock").push(o.id);
            });
        }
    });
    let ids = ids.into_inner().expect("ids");
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert_eq!(s.rules().len(), 1);
    let listed = s.fw.list(T0, None).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].holders.len(), 2);
}

/// A back end that fails when told to, to check nothing is lost or left open on failure.
#[derive(Debug, Default)]
struct Flaky {
    fail: AtomicBool,
    rules: Mutex<Vec<OwnedRule>>,
}

impl Backend for Arc<Flaky> {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn check(&self) -> Result<Vec<String>, BackendError> {
        Ok(Vec::new())
    }
    fn open(&self, id: &GrantId, rule: &Rule, _: u64) -> Result<(), BackendError> {
        self.maybe_fail()?;
        self.rules.lock().expect("lock").push(OwnedRule {
            id: id.clone(),
            rule: Some(*rule),
        });
        Ok(())
    }
    fn extend(&self, _: &GrantId, _: &Rule, _: u64) -> Result<(), BackendError> {
        self.maybe_fail()
    }
    fn close(&self, id: &GrantId, _: &Rule) -> Result<(), BackendError> {
        self.maybe_fail()?;
        self.rules.lock().expect("lock").retain(|o| &o.id != id);
        Ok(())
    }
    fn owned(&self) -> Result<Vec<OwnedRule>, BackendError> {
        Ok(self.rules.lock().expect("lock").clone())
    }
}

impl Flaky {
    fn maybe_fail(&self) -> Result<(), BackendError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(BackendError::Unusable("told to fail".into()));
        }
        Ok(())
    }
}

#[test]
fn a_failed_opening_leaves_no_grant_and_a_failed_close_is_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = Arc::new(AuditLog::open(&dir.path().join("audit.jsonl")).expect("audit"));
    let flaky = Arc::new(Flaky::default());
    let fw = Firewall::new(
        Box::new(Arc::clone(&flaky)),
        LedgerFile::in_dir(dir.path()),
        FirewallLimits::default(),
        audit,
    );
    flaky.fail.store(true, Ordering::SeqCst);
    assert!(matches!(
        fw.allow(T0, "alice", "r", rule("203.0.113.5", 22), 10),
        Err(FirewallError::Backend { .. })
    ));
    assert!(
        fw.list(T0, None).expect("list").is_empty(),
        "no grant without a rule"
    );

    flaky.fail.store(false, Ordering::SeqCst);
    let o = fw
        .allow(T0, "alice", "r", rule("203.0.113.5", 22), 10)
        .expect("allow");
    flaky.fail.store(true, Ordering::SeqCst);
    assert!(fw.reap(T0 + 10_000).is_err(), "close failed");
    assert_eq!(flaky.owned().expect("owned").len(), 1);
    let ledger = LedgerFile::in_dir(dir.path()).lock().expect("ledger");
    assert!(ledger.ledger.get(&o.id).is_some(), "kept for a retry");
    drop(ledger);
    flaky.fail.store(false, Ordering::SeqCst);
    assert_eq!(fw.reap(T0 + 11_000).expect("retry"), 1);
    assert!(flaky.owned().expect("owned").is_empty());
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    assert!(audit.contains("close-failed") && audit.contains("\"expired\""));
}

#[test]
fn grants_bound_port_proto_source_and_ttl() {
    let grant = FirewallGrant {
        ports: vec![22],
        protos: vec!["tcp".into()],
        sources: vec!["caller".into(), "198.51.100.0/24".into()],
        max_ttl_s: 3600,
    };
    let caller: Option<IpAddr> = Some("::ffff:203.0.113.5".parse().expect("ip"));
    let ok = |r: Rule, ttl| check_grant(&grant, caller, &r, ttl);
    ok(rule("203.0.113.5", 22), 3600).expect("the caller");
    ok(rule("198.51.100.0/25", 22), 60).expect("inside the granted net");
    for (r, ttl, why) in [
        (rule("203.0.113.6", 22), 60, "source 203.0.113.6 is not granted"),
        (rule("203.0.113.0/24", 22), 60, "is not granted"),
        (rule("198.51.0.0/16", 22), 60, "is not granted"),
        (rule("203.0.113.5", 2222), 60, "port 2222 is not granted"),
        (
            rule("203.0.113.5", 22),
            3601,
            "exceeds the granted maximum of 3600s",
        ),
        (rule("203.0.113.5", 22), 0, "at least 1 second"),
    ] {
        let err = ok(r, ttl).expect_err(why);
        assert!(err.contains(why), "{err}");
    }
    let udp = Rule::new("203.0.113.5".parse().expect("ip"), 22, Proto::Udp).expect("rule");
    assert!(ok(udp, 60).expect_err("udp").contains("protocol udp"));
    // Over SQS there is no caller address: "caller" covers nothing.
    let err = check_grant(&grant, None, &rule("203.0.113.5", 22), 60).expect_err("no caller");
    assert!(err.contains("none observed"), "{err}");
    // An empty grant covers nothing; a malformed source in a policy covers nothing.
    assert!(check_grant(&FirewallGrant::default(), caller, &rule("203.0.113.5", 22), 1).is_err());
    let typo = FirewallGrant {
        sources: vec!["calller".into()],
        ..grant.clone()
    };
    assert!(check_grant(&typo, caller, &rule("203.0.113.5", 22), 1).is_err());
}
