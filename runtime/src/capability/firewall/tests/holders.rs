//! Holds belong to a client's key: removal, re-enrolment and rekeying.

use std::sync::atomic::Ordering;

use super::failures::flaky;
use super::*;

#[test]
fn holds_belong_to_the_key_not_the_name() {
    let s = setup();
    let o =
        s.fw.allow(T0, &key("alice"), "r1", rule("203.0.113.5", 22), 60)
            .expect("alice");
    // "alice" enrolled again under another key (by hand, no `client remove`): that client holds
    // nothing of the first one's, and the first key, no longer enrolled, opens nothing.
    enrol(s.dir.path(), &["alice-again", "bob"]);
    let mut registry = crate::clients::ClientRegistry::default();
    registry
        .add("alice", key("alice-again"), Vec::new())
        .expect("enrol");
    registry.save(&s.dir.path().join("clients.toml")).expect("save");
    assert!(s.fw.list(T0, Some(&key("alice-again"))).expect("list").is_empty());
    assert!(matches!(
        s.fw.revoke(T0, Revoker::Client(&key("alice-again")), &o.id),
        Err(FirewallError::NotFound(_))
    ));
    assert!(matches!(
        s.fw.allow(T0, &key("alice"), "r2", rule("203.0.113.5", 443), 60),
        Err(FirewallError::NotEnrolled)
    ));
    assert!(s.fw.list(T0, Some(&key("alice"))).expect("list").is_empty());
    // The operator still sees the old hold, by name and key.
    let all = s.fw.list(T0, None).expect("list");
    assert_eq!(all[0].holders[0].key, key("alice"));
    assert_eq!(s.rules().len(), 1);
}

#[test]
fn removing_a_client_closes_what_it_held_alone_and_releases_what_it_shared() {
    let s = setup();
    let own =
        s.fw.allow(T0, &key("alice"), "r1", rule("203.0.113.5", 443), 60)
            .expect("own");
    let shared =
        s.fw.allow(T0, &key("alice"), "r2", rule("203.0.113.5", 22), 60)
            .expect("shared");
    s.fw.allow(T0, &key("bob"), "r3", rule("203.0.113.5", 22), 30)
        .expect("bob");
    enrol(s.dir.path(), &["bob"]);
    let released =
        s.fw.remove_client(T0 + 1, "alice", &[key("alice")])
            .expect("remove");
    let r443 = rule("203.0.113.5", 443);
    let r22 = rule("203.0.113.5", 22);
    assert_eq!(
        released,
        ClientRelease {
            closed: vec![(own.id.clone(), r443)],
            released: vec![(shared.id.clone(), r22)],
            failed: Vec::new(),
        }
    );
    let ids: Vec<GrantId> = s.rules().into_iter().map(|o| o.id).collect();
    assert_eq!(
        ids,
        std::slice::from_ref(&shared.id),
        "the shared rule stays for bob"
    );
    let left = s.fw.list(T0 + 1, None).expect("list");
    assert_eq!(left[0].holders.len(), 1);
    assert_eq!(left[0].holders[0].key, key("bob"));
    assert_eq!(left[0].expires_ms, T0 + 30_000, "bob's time, not alice's");
    assert_eq!(
        s.audit_actions(),
        ["opened", "opened", "extended", "revoked", "released"]
    );
    // Nothing left to do a second time.
    assert_eq!(
        s.fw.remove_client(T0 + 2, "alice", &[key("alice")])
            .expect("again"),
        ClientRelease::default()
    );
}

#[test]
fn a_removed_client_whose_rule_fails_to_close_leaves_it_to_the_reaper() {
    let (dir, backend, fw) = flaky();
    fw.allow(T0, &key("alice"), "r", rule("203.0.113.5", 22), 3600)
        .expect("allow");
    enrol(dir.path(), &["bob"]);
    backend.fail.store(true, Ordering::SeqCst);
    let released = fw.remove_client(T0, "alice", &[key("alice")]).expect("remove");
    assert_eq!(released.failed.len(), 1, "{released:?}");
    assert!(fw.list(T0, None).expect("list").is_empty(), "held by nobody");
    assert_eq!(fw.closing(T0).expect("closing").len(), 1);
    backend.fail.store(false, Ordering::SeqCst);
    assert_eq!(fw.reap(T0 + 1).expect("reap"), 1, "closed well before its hour");
    assert!(backend.owned().expect("owned").is_empty());
}

#[test]
fn a_rekeyed_client_keeps_its_holds_under_its_new_key() {
    let s = setup();
    let o =
        s.fw.allow(T0, &key("alice"), "r1", rule("203.0.113.5", 22), 60)
            .expect("alice");
    let path = s.dir.path().join("clients.toml");
    let mut registry = crate::clients::ClientRegistry::load(&path).expect("registry");
    registry
        .rekey("alice", key("alice-laptop"), T0 + 3_600_000)
        .expect("rekey");
    registry.save(&path).expect("save");
    let moved =
        s.fw.rekey_client(T0, "alice", &[key("alice")], &key("alice-laptop"))
            .expect("move");
    assert_eq!(moved, std::slice::from_ref(&o.id));
    let mine = s.fw.list(T0, Some(&key("alice-laptop"))).expect("list");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].holders[0].key, key("alice-laptop"));
    // The old key, in its grace period, speaks for the same client: one holder, the new key.
    let again =
        s.fw.allow(T0 + 1, &key("alice"), "r2", rule("203.0.113.5", 22), 120)
            .expect("old key");
    assert_eq!(again.id, o.id);
    let all = s.fw.list(T0 + 1, None).expect("list");
    assert_eq!(all[0].holders.len(), 1, "{all:?}");
    assert_eq!(all[0].holders[0].key, key("alice-laptop"));
    assert_eq!(all[0].expires_ms, T0 + 120_001);
    assert_eq!(
        s.fw.list(T0 + 1, Some(&key("alice"))).expect("list"),
        s.fw.list(T0 + 1, Some(&key("alice-laptop"))).expect("list"),
        "either key sees the same holds"
    );
    s.fw.revoke(T0 + 2, Revoker::Client(&key("alice")), &o.id)
        .expect("the old key releases it too");
    assert!(s.rules().is_empty());
    assert!(s.audit_actions().contains(&"rekeyed".to_owned()));
}

#[test]
fn rekeying_merges_a_hold_the_new_key_already_has() {
    let s = setup();
    s.fw.allow(T0, &key("alice"), "r1", rule("203.0.113.5", 22), 600)
        .expect("alice");
    s.fw.allow(T0, &key("bob"), "r2", rule("203.0.113.5", 22), 60)
        .expect("bob");
    // Not a real rekey (bob is another client): only what the merge does to two holds.
    let moved =
        s.fw.rekey_client(T0, "bob", &[key("alice")], &key("bob"))
            .expect("move");
    assert_eq!(moved.len(), 1);
    let all = s.fw.list(T0, None).expect("list");
    assert_eq!(all[0].holders.len(), 1);
    assert_eq!(
        (all[0].holders[0].key, all[0].holders[0].expires_ms),
        (key("bob"), T0 + 600_000),
        "the later end is kept"
    );
}
