//! The grants service over the dry-run back end (its record doubles as the firewall's state);
//! its failure paths ([`failures`]), holds by key ([`holders`]) and the policy grant check
//! ([`grants`]). The real ufw and nftables back ends are exercised in a private network
//! namespace by the system tests.

use std::sync::Mutex;

use sesame_proto::PublicKey;

use super::backend::{DryRun, OwnedRule};
use super::*;

mod failures;
mod grants;
mod holders;

struct Setup {
    dir: tempfile::TempDir,
    fw: Firewall,
}

/// The key of the test client `name` (the same for every test).
fn key(name: &str) -> PublicKey {
    use sha2::Digest;
    let secret = hex::encode(sha2::Sha256::digest(name.as_bytes()));
    sesame_proto::SecretKey::from_hex(&secret)
        .expect("32 bytes")
        .public_key()
}

/// The ledger in `dir`, for the clients enrolled there by [`enrol`].
fn ledger_file(dir: &std::path::Path) -> LedgerFile {
    LedgerFile::new(dir, &dir.join("clients.toml"))
}

/// Enrols `names` (with [`key`]) in the registry in `dir`, replacing whatever was there.
fn enrol(dir: &std::path::Path, names: &[&str]) {
    let mut registry = crate::clients::ClientRegistry::default();
    for name in names {
        registry.add(name, key(name), Vec::new()).expect("enrol");
    }
    registry.save(&dir.join("clients.toml")).expect("save registry");
}

fn setup_with(limits: FirewallLimits) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    enrol(dir.path(), &["alice", "bob", "mallory"]);
    let audit = Arc::new(AuditLog::open(&dir.path().join("audit.jsonl")).expect("audit"));
    let backend = DryRun::new(dir.path().join("dry.jsonl"));
    let fw = Firewall::new(Box::new(backend), ledger_file(dir.path()), limits, audit);
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
        s.fw.allow(T0, &key("alice"), "r1", rule("203.0.113.5", 22), 60)
            .expect("allow");
    assert!(!opened.extended);
    assert_eq!(opened.expires_ms, T0 + 60_000);
    let rules = s.rules();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].id, opened.id);
    let listed = s.fw.list(T0, Some(&key("alice"))).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, opened.id);
    assert!(s.fw.list(T0, Some(&key("bob"))).expect("list").is_empty());
    assert_eq!(s.audit_actions(), ["opened"]);
}

#[test]
fn asking_again_extends_instead_of_adding_a_rule() {
    let s = setup();
    let first =
        s.fw.allow(T0, &key("alice"), "r1", rule("203.0.113.5", 22), 60)
            .expect("allow");
    let again =
        s.fw.allow(T0 + 30_000, &key("alice"), "r2", rule("203.0.113.5", 22), 60)
            .expect("again");
    assert_eq!(again.id, first.id);
    assert!(again.extended);
    assert_eq!(again.expires_ms, T0 + 90_000);
    // A shorter ask never cuts a hold short.
    let shorter =
        s.fw.allow(T0 + 31_000, &key("alice"), "r3", rule("203.0.113.5", 22), 1)
            .expect("shorter");
    assert_eq!(shorter.expires_ms, T0 + 90_000);
    assert_eq!(s.rules().len(), 1, "one rule, however often asked");
    // A different port is a different opening.
    let other =
        s.fw.allow(T0, &key("alice"), "r4", rule("203.0.113.5", 443), 60)
            .expect("443");
    assert_ne!(other.id, first.id);
    assert_eq!(s.rules().len(), 2);
}

#[test]
fn a_shared_opening_closes_only_when_its_last_holder_is_done() {
    let s = setup();
    let a =
        s.fw.allow(T0, &key("alice"), "r1", rule("203.0.113.5", 22), 60)
            .expect("alice");
    let b =
        s.fw.allow(T0, &key("bob"), "r2", rule("203.0.113.5", 22), 120)
            .expect("bob");
    assert_eq!(a.id, b.id, "same source and port: one rule");
    assert_eq!(
        s.fw.revoke(T0 + 1, Revoker::Client(&key("alice")), &a.id)
            .expect("release"),
        None
    );
    assert_eq!(s.rules().len(), 1, "bob still holds it");
    assert!(s.fw.list(T0 + 1, Some(&key("alice"))).expect("list").is_empty());
    assert!(matches!(
        s.fw.revoke(T0 + 2, Revoker::Client(&key("alice")), &a.id),
        Err(FirewallError::NotFound(_))
    ));
    assert!(
        s.fw.revoke(T0 + 3, Revoker::Client(&key("bob")), &a.id)
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
        s.fw.allow(T0, &key("alice"), "r1", rule("203.0.113.5", 22), 60)
            .expect("alice");
    assert!(matches!(
        s.fw.revoke(T0, Revoker::Client(&key("mallory")), &a.id),
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
        s.fw.allow(T0, &key("alice"), "r1", rule("203.0.113.5", 22), 10)
            .expect("alice");
    s.fw.allow(T0, &key("bob"), "r2", rule("203.0.113.5", 22), 20)
        .expect("bob");
    s.fw.allow(T0, &key("bob"), "r3", rule("198.51.100.0/24", 22), 5)
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
        s.fw.allow(T0, &key("alice"), "r1", rule("203.0.113.5", 22), 10)
            .expect("a");
    let live =
        s.fw.allow(T0, &key("alice"), "r2", rule("203.0.113.5", 443), 3600)
            .expect("b");
    let lost =
        s.fw.allow(T0, &key("bob"), "r3", rule("203.0.113.6", 22), 3600)
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
    s.fw.allow(T0, &key("alice"), "r1", rule("203.0.113.5", 22), 3600)
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
    s.fw.allow(T0, &key("alice"), "r2", rule("203.0.113.5", 22), 3600)
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
        s.fw.allow(T0, &key("alice"), "r", rule("203.0.113.5", 22), 101),
        Err(FirewallError::Limit(_))
    ));
    assert!(matches!(
        s.fw.allow(T0, &key("alice"), "r", rule("203.0.113.5", 22), 0),
        Err(FirewallError::Limit(_))
    ));
    s.fw.allow(T0, &key("alice"), "r", rule("203.0.113.5", 22), 10)
        .expect("1");
    s.fw.allow(T0, &key("alice"), "r", rule("203.0.113.5", 23), 10)
        .expect("2");
    let third = s.fw.allow(T0, &key("alice"), "r", rule("203.0.113.5", 24), 10);
    assert!(
        matches!(third, Err(FirewallError::Limit(ref m)) if m.contains("alice")),
        "{third:?}"
    );
    // Extending what one holds is always fine.
    s.fw.allow(T0, &key("alice"), "r", rule("203.0.113.5", 22), 20)
        .expect("extend");
    s.fw.allow(T0, &key("bob"), "r", rule("203.0.113.6", 22), 10)
        .expect("3");
    let fourth = s.fw.allow(T0, &key("bob"), "r", rule("203.0.113.6", 23), 10);
    assert!(
        matches!(fourth, Err(FirewallError::Limit(ref m)) if m.contains("openings")),
        "{fourth:?}"
    );
    // Expired holds no longer count.
    s.fw.allow(T0 + 60_000, &key("alice"), "r", rule("203.0.113.5", 25), 10)
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
                let client = if i % 2 == 0 { key("alice") } else { key("bob") };
                let o = fw
                    .allow(T0 + i, &client, "r", rule("203.0.113.5", 22), 60)
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

#[test]
fn reviving_an_opening_nobody_holds_counts_against_the_host_ceiling() {
    let s = setup_with(FirewallLimits {
        max_grants: 2,
        ..FirewallLimits::default()
    });
    s.fw.allow(T0, &key("alice"), "r1", rule("203.0.113.5", 22), 10)
        .expect("a");
    s.fw.allow(T0, &key("alice"), "r2", rule("203.0.113.5", 23), 100)
        .expect("b");
    // The first has ended, and the reaper has not come by yet.
    s.fw.allow(T0 + 20_000, &key("bob"), "r3", rule("203.0.113.6", 22), 10)
        .expect("c: two live");
    let revived =
        s.fw.allow(T0 + 20_000, &key("mallory"), "r4", rule("203.0.113.5", 22), 10);
    assert!(
        matches!(revived, Err(FirewallError::Limit(ref m)) if m.contains("openings")),
        "{revived:?}"
    );
    assert_eq!(s.fw.list(T0 + 20_000, None).expect("list").len(), 2);
    // Sharing a live one adds none.
    s.fw.allow(T0 + 20_000, &key("mallory"), "r5", rule("203.0.113.5", 23), 10)
        .expect("shared");
}
