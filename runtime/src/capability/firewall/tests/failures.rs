//! What is left when the back end fails: nothing the ledger cannot close.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

/// A back end that fails when told to, to check nothing is lost or left open on failure: `fail`
/// refuses before changing anything; `overeager` makes the change and then reports a failure,
/// as a tool killed at its deadline after it wrote its rules, or one whose exit status or
/// read-back says no although the rule went in.
#[derive(Debug, Default)]
pub(super) struct Flaky {
    pub(super) fail: AtomicBool,
    pub(super) overeager: AtomicBool,
    pub(super) rules: Mutex<Vec<OwnedRule>>,
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
        self.put(id, rule);
        self.maybe_fail_after()
    }
    fn extend(&self, id: &GrantId, rule: &Rule, _: u64) -> Result<(), BackendError> {
        self.maybe_fail()?;
        self.put(id, rule);
        self.maybe_fail_after()
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

    fn maybe_fail_after(&self) -> Result<(), BackendError> {
        if self.overeager.load(Ordering::SeqCst) {
            return Err(BackendError::Unreadable("killed at its deadline".into()));
        }
        Ok(())
    }

    /// Adds the rule unless it is there (as the real back ends do).
    fn put(&self, id: &GrantId, rule: &Rule) {
        let mut rules = self.rules.lock().expect("lock");
        if !rules.iter().any(|o| &o.id == id) {
            rules.push(OwnedRule {
                id: id.clone(),
                rule: Some(*rule),
            });
        }
    }
}

/// The grants service over a [`Flaky`] back end.
pub(super) fn flaky() -> (tempfile::TempDir, Arc<Flaky>, Firewall) {
    let dir = tempfile::tempdir().expect("tempdir");
    enrol(dir.path(), &["alice", "bob"]);
    let audit = Arc::new(AuditLog::open(&dir.path().join("audit.jsonl")).expect("audit"));
    let backend = Arc::new(Flaky::default());
    let fw = Firewall::new(
        Box::new(Arc::clone(&backend)),
        ledger_file(dir.path()),
        FirewallLimits::default(),
        audit,
    );
    (dir, backend, fw)
}

#[test]
fn a_failed_opening_leaves_no_grant_and_a_failed_close_is_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    enrol(dir.path(), &["alice"]);
    let audit = Arc::new(AuditLog::open(&dir.path().join("audit.jsonl")).expect("audit"));
    let flaky = Arc::new(Flaky::default());
    let fw = Firewall::new(
        Box::new(Arc::clone(&flaky)),
        ledger_file(dir.path()),
        FirewallLimits::default(),
        audit,
    );
    flaky.fail.store(true, Ordering::SeqCst);
    assert!(matches!(
        fw.allow(T0, &key("alice"), "r", rule("203.0.113.5", 22), 10),
        Err(FirewallError::Unsettled { .. })
    ));
    assert!(
        fw.list(T0, None).expect("list").is_empty(),
        "nobody holds a failed opening"
    );
    let closing = fw.closing(T0).expect("closing");
    assert!(closing.len() == 1 && closing[0].uncertain, "{closing:?}");

    flaky.fail.store(false, Ordering::SeqCst);
    let o = fw
        .allow(T0, &key("alice"), "r", rule("203.0.113.5", 22), 10)
        .expect("allow");
    flaky.fail.store(true, Ordering::SeqCst);
    assert!(fw.reap(T0 + 10_000).is_err(), "close failed");
    assert_eq!(flaky.owned().expect("owned").len(), 1);
    let ledger = ledger_file(dir.path()).lock().expect("ledger");
    assert!(ledger.ledger.get(&o.id).is_some(), "kept for a retry");
    drop(ledger);
    flaky.fail.store(false, Ordering::SeqCst);
    assert_eq!(fw.reap(T0 + 11_000).expect("retry"), 1);
    assert!(flaky.owned().expect("owned").is_empty());
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    assert!(audit.contains("close-failed") && audit.contains("\"expired\""));
}

#[test]
fn a_failed_opening_that_took_effect_is_closed_by_the_reaper() {
    let (dir, backend, fw) = flaky();
    backend.overeager.store(true, Ordering::SeqCst);
    let err = fw
        .allow(T0, &key("alice"), "r", rule("203.0.113.5", 22), 3600)
        .expect_err("the back end failed");
    assert!(err.to_string().contains("killed at its deadline"), "{err}");
    assert_eq!(backend.owned().expect("owned").len(), 1, "yet the rule went in");
    assert!(
        fw.list(T0, None).expect("list").is_empty(),
        "nobody holds a failed opening"
    );
    // The ledger kept it, so the reaper closes it at once (not at the asked-for expiry)...
    backend.fail.store(true, Ordering::SeqCst);
    assert!(fw.reap(T0 + 1).is_err(), "close failed");
    assert_eq!(backend.owned().expect("owned").len(), 1);
    // ...and drops it only once the back end says the rule is gone.
    backend.fail.store(false, Ordering::SeqCst);
    assert_eq!(fw.reap(T0 + 2).expect("reap"), 1);
    assert!(backend.owned().expect("owned").is_empty(), "closed");
    let ledger = ledger_file(dir.path()).lock().expect("ledger");
    assert!(ledger.ledger.grants.is_empty(), "and forgotten");
}

#[test]
fn a_failed_reopening_of_an_ended_grant_is_closed_at_once_and_held_by_nobody() {
    let (dir, backend, fw) = flaky();
    fw.allow(T0, &key("alice"), "r1", rule("203.0.113.5", 22), 10)
        .expect("allow");
    // Alice asks again after her hold ended, before the reaper came by; the firewall lost the
    // rule meanwhile, and putting it back fails after it went in.
    backend.rules.lock().expect("lock").clear();
    backend.overeager.store(true, Ordering::SeqCst);
    fw.allow(T0 + 20_000, &key("alice"), "r2", rule("203.0.113.5", 22), 3600)
        .expect_err("failed");
    assert_eq!(backend.owned().expect("owned").len(), 1, "it went in");
    assert!(
        fw.list(T0 + 20_000, None).expect("list").is_empty(),
        "alice was told it failed, so she holds nothing"
    );
    assert_eq!(fw.reap(T0 + 20_001).expect("reap"), 1, "closed at once");
    assert!(backend.owned().expect("owned").is_empty());
    let ledger = ledger_file(dir.path()).lock().expect("ledger");
    assert!(ledger.ledger.grants.is_empty());
}

#[test]
fn a_failed_extension_leaves_the_holds_as_they_were_and_the_rule_closable() {
    let (_dir, backend, fw) = flaky();
    fw.allow(T0, &key("alice"), "r1", rule("203.0.113.5", 22), 60)
        .expect("allow");
    for overeager in [false, true] {
        backend.fail.store(!overeager, Ordering::SeqCst);
        backend.overeager.store(overeager, Ordering::SeqCst);
        fw.allow(T0, &key("bob"), "r2", rule("203.0.113.5", 22), 3600)
            .expect_err("re-timing failed");
        let listed = fw.list(T0, None).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(
            listed[0].expires_ms,
            T0 + 60_000,
            "bob was told no: he holds nothing (overeager: {overeager})"
        );
    }
    backend.fail.store(false, Ordering::SeqCst);
    backend.overeager.store(false, Ordering::SeqCst);
    assert_eq!(fw.reap(T0 + 60_000).expect("reap"), 1, "closed at alice's end");
    assert!(backend.owned().expect("owned").is_empty());
}

/// A stand-in for ufw that keeps `user.rules` the way ufw does for the words sesamed uses
/// (IPv4 only), and misbehaves as the file `mode` in its directory says: `fail-after-allow`
/// adds the rule and then exits 1, `hang-after-allow` adds it and then hangs (to be killed at
/// its deadline).
fn scripted_ufw(dir: &std::path::Path) -> ufw::Ufw {
    let script = dir.join("ufw");
    let text = format!(
        r####"#!/bin/sh
dir='{}'
mode=$(cat "$dir/mode" 2>/dev/null)
verb=$1
case "$verb" in
status) echo "Status: active"; exit 0 ;;
allow) shift ;;
delete) shift 2 ;;
*) exit 2 ;;
esac
src=$2; port=$6; proto=$8; tag=${{10}}
hex=$(printf %s "$tag" | od -An -tx1 | tr -d ' \n')
line="### tuple ### allow $proto $port 0.0.0.0/0 any $src in comment=$hex"
if [ "$verb" = allow ]; then
    echo "$line" >> "$dir/user.rules"
    case "$mode" in
    fail-after-allow) echo "ERROR: problem running iptables" >&2; exit 1 ;;
    hang-after-allow) sleep 10 ;;
    esac
    echo "Rule added"
else
    grep -vxF "$line" "$dir/user.rules" > "$dir/user.rules.new"
    mv "$dir/user.rules.new" "$dir/user.rules"
    echo "Rule deleted"
fi
"####,
        dir.display()
    );
    std::fs::write(&script, text).expect("write script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    std::fs::write(dir.join("user.rules"), "*filter\n### RULES ###\n").expect("user.rules");
    ufw::Ufw::new(ufw::UfwConfig {
        ufw: script,
        rules_dir: dir.to_owned(),
    })
    .expect("script exists")
}

#[test]
fn ufw_that_fails_after_adding_the_rule_leaves_a_grant_the_reaper_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    enrol(dir.path(), &["alice"]);
    let audit = Arc::new(AuditLog::open(&dir.path().join("audit.jsonl")).expect("audit"));
    let fw = Firewall::new(
        Box::new(scripted_ufw(dir.path())),
        ledger_file(dir.path()),
        FirewallLimits::default(),
        audit,
    );
    let tag = |id: &GrantId| hex::encode(id.tag());
    let rules = || std::fs::read_to_string(dir.path().join("user.rules")).expect("user.rules");
    std::fs::write(dir.path().join("mode"), "fail-after-allow").expect("mode");
    fw.allow(T0, &key("alice"), "r", rule("203.0.113.5", 22), 3600)
        .expect_err("ufw exited 1");
    let grants = ledger_file(dir.path()).lock().expect("ledger").ledger.grants;
    assert_eq!(grants.len(), 1, "the ledger kept the opening: {}", rules());
    assert!(rules().contains(&tag(&grants[0].id)), "ufw added it: {}", rules());
    std::fs::write(dir.path().join("mode"), "").expect("mode");
    assert_eq!(fw.reap(T0 + 1).expect("reap"), 1);
    assert!(!rules().contains(&tag(&grants[0].id)), "closed: {}", rules());
    assert!(
        ledger_file(dir.path())
            .lock()
            .expect("ledger")
            .ledger
            .grants
            .is_empty(),
        "and forgotten"
    );
}

#[test]
fn ufw_killed_at_its_deadline_after_adding_the_rule_leaves_a_grant_closed_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    enrol(dir.path(), &["alice"]);
    let audit = Arc::new(AuditLog::open(&dir.path().join("audit.jsonl")).expect("audit"));
    let fw = Firewall::new(
        Box::new(scripted_ufw(dir.path()).with_deadline(std::time::Duration::from_millis(500))),
        ledger_file(dir.path()),
        FirewallLimits::default(),
        audit,
    );
    let rules = || std::fs::read_to_string(dir.path().join("user.rules")).expect("user.rules");
    std::fs::write(dir.path().join("mode"), "hang-after-allow").expect("mode");
    let err = fw
        .allow(T0, &key("alice"), "r", rule("203.0.113.5", 22), 3600)
        .expect_err("killed");
    assert!(err.to_string().contains("was killed"), "{err}");
    assert!(rules().contains("203.0.113.5"), "the rule went in: {}", rules());
    // The daemon died before its reaper came by: the next start closes it.
    std::fs::write(dir.path().join("mode"), "").expect("mode");
    let report = fw.reconcile(T0 + 5_000).expect("reconcile");
    assert_eq!(report.expired, 1, "{report:?}");
    assert!(!rules().contains("203.0.113.5"), "closed: {}", rules());
    assert!(
        ledger_file(dir.path())
            .lock()
            .expect("ledger")
            .ledger
            .grants
            .is_empty()
    );
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    assert!(
        audit.contains("\"open-failed\"") && audit.contains("\"undone\""),
        "{audit}"
    );
}
