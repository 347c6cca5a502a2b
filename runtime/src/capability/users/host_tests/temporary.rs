//! Temporary changes (keys, group memberships, accounts) through the users host calls: on
//! record before they are made, bounded per kind by grant and host, taken back by the reaper,
//! by the client that holds them (the `grants` interface) or when the client is removed.

use std::path::Path;
use std::sync::Arc;

use super::{Fixture, KEY};
use crate::capability::users::{KeyLedger, Users, UsersConfig, UsersGrant};
use crate::host::bindings::sesame::host::users::{Host as _, NewUser};
use crate::host::{HostError, HostFault};

/// A fixture whose users service records temporary changes in a ledger in `dir`, under the
/// host ceiling `max_ttl_s` for every kind.
fn temporary_fixture(dir: &Path, max_ttl_s: u64) -> Fixture {
    temporary_fixture_with(
        dir,
        UsersConfig {
            max_ttl_s,
            ..UsersConfig::default()
        },
    )
}

/// A fixture whose users service records temporary changes in a ledger in `dir`, under the host
/// ceilings `ceilings`.
fn temporary_fixture_with(dir: &Path, ceilings: UsersConfig) -> Fixture {
    let mut f = Fixture::new();
    let users = Users::dry_run_at(f._etc.path().to_owned(), f.recorder.clone())
        .expect("users")
        .with_ledger(KeyLedger {
            file: crate::ledger::LedgerFile::new(dir, &dir.join("clients.toml")),
            audit: Arc::new(crate::audit::AuditLog::open(&dir.join("audit.jsonl")).expect("audit")),
            ceilings,
        });
    f.users = Arc::new(users);
    f
}

fn client_key(b: u8) -> sesame_proto::PublicKey {
    sesame_proto::PublicKey::from_bytes([b; 32])
}

fn ledger_users(dir: &Path) -> Vec<crate::ledger::UserGrant> {
    crate::ledger::LedgerFile::new(dir, &dir.join("clients.toml"))
        .lock()
        .expect("ledger")
        .ledger
        .users
        .clone()
}

#[test]
fn a_temporary_key_is_on_record_before_it_is_written_and_bounded_by_grant_and_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = temporary_fixture(dir.path(), 7200);
    let grant = UsersGrant {
        self_service: true,
        max_ttl_s: Some(3600),
        ..UsersGrant::default()
    };
    let mut cx = f.context("dave", grant.clone()).with_client_key(client_key(1));
    let until = cx
        .add_temporary_key("dave".into(), KEY.into(), 600)
        .expect("within the grant");
    let changes = f.changes();
    assert!(
        changes.len() == 1
            && changes[0].starts_with(
                "add ssh-ed25519 …6ELIpKiD6cti dave@laptop to /home/dave/.ssh/authorized_keys until"
            ),
        "{changes:?}"
    );
    let entries = ledger_users(dir.path());
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].account, "dave");
    assert_eq!(entries[0].expires_ms(), until);
    assert!(entries[0].id.as_str().starts_with("key-"));

    // Again, longer: one entry, extended.
    let later = cx
        .add_temporary_key("dave".into(), KEY.into(), 1200)
        .expect("extended");
    assert!(later > until);
    let entries = ledger_users(dir.path());
    assert_eq!((entries.len(), entries[0].holders.len()), (1, 1));
    assert_eq!(entries[0].expires_ms(), later);

    // Past the grant, past the host, or nothing: refused, nothing recorded.
    f.changes();
    for ttl in [3601, 0] {
        let err = cx
            .add_temporary_key("dave".into(), KEY.into(), ttl)
            .expect_err("refused");
        assert!(
            matches!(err, HostFault::Error(HostError::Denied(ref why)) if why.contains("outside the grant (1 to 3600 s)")),
            "{err:?}"
        );
    }
    let unbounded = UsersGrant {
        max_ttl_s: None,
        ..grant
    };
    let mut cx = f.context("dave", unbounded).with_client_key(client_key(1));
    let err = cx
        .add_temporary_key("dave".into(), KEY.into(), 7201)
        .expect_err("above the host");
    assert!(
        matches!(err, HostFault::Error(HostError::Denied(ref why)) if why.contains("(1 to 7200 s)")),
        "{err:?}"
    );
    assert!(f.changes().is_empty());
    // Someone else's account is out of reach whatever the ttl.
    let err = cx
        .add_temporary_key("erin".into(), KEY.into(), 60)
        .expect_err("not dave's");
    assert!(matches!(err, HostFault::Error(HostError::Denied(_))), "{err:?}");
}

#[test]
fn temporary_memberships_expire_and_some_groups_are_only_for_a_while() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = temporary_fixture(dir.path(), 7200);
    let grant = UsersGrant {
        names: vec!["dave".into(), "erin".into()],
        groups: vec!["developers".into(), "operators".into()],
        temporary_groups: vec!["operators".into()],
        ..UsersGrant::default()
    };
    let mut cx = f.context("ada", grant).with_client_key(client_key(2));
    // For good: refused for a group the grant allows only for a while.
    let err = cx
        .add_to_group("dave".into(), "operators".into())
        .expect_err("only for a while");
    assert!(
        matches!(err, HostFault::Error(HostError::Denied(ref why)) if why.contains("only for a while")),
        "{err:?}"
    );
    assert!(f.changes().is_empty());
    // For a while: on record, then gpasswd.
    cx.add_temporary_membership("dave".into(), "operators".into(), 60)
        .expect("temporary");
    assert_eq!(f.changes(), ["/usr/bin/gpasswd --add dave operators".to_owned()]);
    let entries = ledger_users(dir.path());
    assert_eq!(entries.len(), 1);
    assert!(entries[0].id.as_str().starts_with("grp-"));
    assert_eq!(
        entries[0].change,
        crate::ledger::UserChange::Group("operators".into())
    );
    // erin is in operators already, for good: not ours to time, nothing recorded.
    let err = cx
        .add_temporary_membership("erin".into(), "operators".into(), 60)
        .expect_err("permanent");
    assert!(
        matches!(err, HostFault::Error(HostError::Invalid(ref why)) if why.contains("for good already")),
        "{err:?}"
    );
    assert_eq!(ledger_users(dir.path()).len(), 1);

    // The reaper takes it back at expiry, and only then.
    let at = entries[0].expires_ms();
    assert_eq!(f.users.reap_temporary(at - 1).expect("reap"), 0);
    assert_eq!(f.users.reap_temporary(at).expect("reap"), 1);
    assert!(ledger_users(dir.path()).is_empty());
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    let actions: Vec<String> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .filter(|r| r["event"] == "account-grant")
        .map(|r| {
            format!(
                "{} {}",
                r["action"].as_str().unwrap_or(""),
                r["by"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(actions, ["added req", "expired reaper"]);
}

#[test]
fn through_the_stock_policy_admins_add_to_sudo_only_for_at_most_an_hour() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = temporary_fixture(dir.path(), 7 * 24 * 3600);
    let mut cx = f
        .stock("ada", &["admins"], "group-add", &["dave", "sudo"])
        .with_client_key(client_key(3));
    let err = cx
        .add_to_group("dave".into(), "sudo".into())
        .expect_err("not for good");
    assert!(matches!(err, HostFault::Error(HostError::Denied(_))), "{err:?}");
    let err = cx
        .add_temporary_membership("dave".into(), "sudo".into(), 3601)
        .expect_err("past the hour");
    assert!(matches!(err, HostFault::Error(HostError::Denied(_))), "{err:?}");
    assert!(f.changes().is_empty());
    cx.add_temporary_membership("dave".into(), "sudo".into(), 3600)
        .expect("an hour");
    assert_eq!(f.changes(), ["/usr/bin/gpasswd --add dave sudo".to_owned()]);
    // Other commands get no system group: sudo's members stay out of reach.
    let mut cx = f
        .stock("ada", &["admins"], "group-remove", &["dave", "sudo"])
        .with_client_key(client_key(3));
    let err = cx
        .remove_from_group("dave".into(), "sudo".into())
        .expect_err("sudo is a system group");
    assert!(matches!(err, HostFault::Error(HostError::Denied(_))), "{err:?}");
}

#[test]
fn concurrent_adds_make_one_entry_and_a_removed_client_keeps_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = temporary_fixture(dir.path(), 7200);
    let grant = UsersGrant {
        self_service: true,
        ..UsersGrant::default()
    };
    // Eight requests of dave's at once, for the same key: one entry, one hold.
    std::thread::scope(|s| {
        for n in 0..8u32 {
            let mut cx = f.context("dave", grant.clone()).with_client_key(client_key(1));
            s.spawn(move || {
                cx.add_temporary_key("dave".into(), KEY.into(), 60 + n)
                    .expect("added");
            });
        }
    });
    let entries = ledger_users(dir.path());
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].holders.len(), 1);

    // Rekeyed: the hold moves to the new key.
    let moved = f
        .users
        .rekey_client("dave", &[client_key(1)], &client_key(9))
        .expect("rekey");
    assert_eq!(moved, [entries[0].id.clone()]);
    assert_eq!(ledger_users(dir.path())[0].holders[0].key, client_key(9));

    // Removed: taken back at once, not at its expiry.
    f.changes();
    let (taken, kept) = f
        .users
        .remove_client(crate::now_ms(), &[client_key(9)])
        .expect("remove");
    assert_eq!((taken.len(), kept.len()), (1, 0));
    assert!(ledger_users(dir.path()).is_empty());
    assert_eq!(
        f.changes(),
        ["remove ssh-ed25519 …6ELIpKiD6cti from /home/dave/.ssh/authorized_keys".to_owned()]
    );
}

#[test]
fn a_temporary_account_gets_shadows_expiry_and_an_existing_one_is_not_taken_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = temporary_fixture(dir.path(), 30 * 24 * 3600);
    let grant = UsersGrant {
        names: vec!["*".into()],
        groups: vec!["developers".into()],
        ..UsersGrant::default()
    };
    let mut cx = f.context("oscar", grant).with_client_key(client_key(4));
    let user = |name: &str| NewUser {
        name: name.into(),
        shell: None,
        comment: None,
        groups: vec!["developers".into()],
    };
    let until = cx
        .create_temporary(user("carl2"), 14 * 86_400)
        .expect("created for two weeks");
    let day = crate::format_utc(until + 86_400_000)[..10].to_owned();
    assert_eq!(
        f.changes(),
        [format!(
            "/usr/sbin/useradd --create-home --user-group --groups developers --expiredate {day} -- carl2"
        )]
    );
    let entries = ledger_users(dir.path());
    assert_eq!(entries.len(), 1);
    assert!(entries[0].id.as_str().starts_with("acc-"));
    assert_eq!(entries[0].change, crate::ledger::UserChange::Account);
    // dave exists, made by hand: not sesamed's to put on a timer.
    let err = cx.create_temporary(user("dave"), 60).expect_err("exists");
    assert!(
        matches!(err, HostFault::Error(HostError::Invalid(ref why)) if why.contains("exists already")),
        "{err:?}"
    );
    assert_eq!(ledger_users(dir.path()).len(), 1);
}

#[test]
fn a_client_sees_and_takes_back_only_its_own_temporary_changes() {
    use crate::host::bindings::sesame::host::grants::{ChangeKind, Host as Grants};
    let dir = tempfile::tempdir().expect("tempdir");
    let f = temporary_fixture(dir.path(), 7200);
    let own = UsersGrant {
        self_service: true,
        ..UsersGrant::default()
    };
    let manage = UsersGrant {
        names: vec!["dave".into()],
        groups: vec!["developers".into(), "operators".into()],
        ..UsersGrant::default()
    };
    let mut dave = f.context("dave", own).with_client_key(client_key(1));
    let mut ada = f.context("ada", manage.clone()).with_client_key(client_key(2));
    let mut bob = f.context("bob", manage).with_client_key(client_key(3));
    dave.add_temporary_key("dave".into(), KEY.into(), 600)
        .expect("key");
    ada.add_temporary_membership("dave".into(), "operators".into(), 600)
        .expect("membership");
    bob.add_temporary_membership("dave".into(), "operators".into(), 60)
        .expect("held by two");
    f.changes();

    // Each sees its own holds, with its own end.
    let mine = Grants::list(&mut dave).expect("list");
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert!(mine[0].id.starts_with("key-") && matches!(mine[0].kind, ChangeKind::Key));
    assert_eq!(mine[0].what, "key ssh-ed25519 …6ELIpKiD6cti on dave");
    let adas = Grants::list(&mut ada).expect("list");
    let bobs = Grants::list(&mut bob).expect("list");
    assert_eq!(adas.len(), 1);
    assert_eq!(adas[0].what, "dave in group operators");
    assert!(matches!(adas[0].kind, ChangeKind::Membership));
    assert_eq!(adas[0].id, bobs[0].id, "one change, two holds");
    assert!(adas[0].expires_at_ms > bobs[0].expires_at_ms);

    // Someone else's id, an id of a kind this host does not keep, or no id: nothing happens.
    for id in [
        adas[0].id.as_str(),
        "fw-0000000000000001",
        "key-",
        "../grants.json",
        "",
    ] {
        let err = Grants::revoke(&mut dave, id.into()).expect_err("not dave's");
        assert!(
            matches!(err, HostFault::Error(HostError::Invalid(ref why)) if why.contains("no live grant")),
            "{id}: {err:?}"
        );
    }
    assert!(f.changes().is_empty());
    assert_eq!(ledger_users(dir.path()).len(), 2);

    // Ada lets go: bob still holds it, so dave stays in operators.
    Grants::revoke(&mut ada, adas[0].id.clone()).expect("ada's own");
    assert!(f.changes().is_empty(), "bob still holds it");
    assert!(Grants::list(&mut ada).expect("list").is_empty());
    let err = Grants::revoke(&mut ada, adas[0].id.clone()).expect_err("once");
    assert!(matches!(err, HostFault::Error(HostError::Invalid(_))), "{err:?}");
    assert_eq!(ledger_users(dir.path()).len(), 2, "still on record for bob");
    // Bob lets go: taken back now, not at its expiry. (The fixture's /etc/group never had dave
    // in operators, so there is nothing for gpasswd to do; the ledger and the audit say it.)
    Grants::revoke(&mut bob, bobs[0].id.clone()).expect("bob's own");
    assert_eq!(ledger_users(dir.path()).len(), 1, "only dave's key is left");
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    let steps: Vec<String> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .filter(|r| r["event"] == "account-grant" && r["id"] == bobs[0].id.as_str())
        .map(|r| {
            let who = r["client"].as_str().or(r["by"].as_str()).unwrap_or("");
            format!("{} {who}", r["action"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        steps,
        [
            "added ada",
            "extended bob",
            "released ada",
            "released bob",
            "revoked bob"
        ]
    );
    // Dave's key, likewise.
    Grants::revoke(&mut dave, mine[0].id.clone()).expect("dave's own");
    assert_eq!(
        f.changes(),
        ["remove ssh-ed25519 …6ELIpKiD6cti from /home/dave/.ssh/authorized_keys".to_owned()]
    );
    assert!(ledger_users(dir.path()).is_empty());

    // A request without a client key holds nothing and may take nothing back.
    let mut anonymous = f.context("dave", UsersGrant::default());
    let err = Grants::list(&mut anonymous).expect_err("no key");
    assert!(matches!(err, HostFault::Error(HostError::Denied(_))), "{err:?}");
}

#[test]
fn each_kind_has_its_own_bound_under_the_hosts_ceilings() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The host: a day for anything, an hour for keys.
    let f = temporary_fixture_with(
        dir.path(),
        UsersConfig {
            max_ttl_s: 86_400,
            max_key_ttl_s: Some(3600),
            ..UsersConfig::default()
        },
    );
    // The grant: self service and dave's groups, memberships ten minutes at most.
    let grant = UsersGrant {
        self_service: true,
        names: vec!["dave".into(), "fred".into()],
        groups: vec!["developers".into(), "operators".into()],
        max_group_ttl_s: Some(600),
        ..UsersGrant::default()
    };
    let mut cx = f.context("dave", grant.clone()).with_client_key(client_key(1));
    let refused = |result: Result<u64, HostFault>, bound: &str| {
        let err = result.expect_err("past its bound");
        assert!(
            matches!(err, HostFault::Error(HostError::Denied(ref why)) if why.contains(&format!("(1 to {bound} s)"))),
            "{bound}: {err:?}"
        );
    };
    refused(cx.add_temporary_key("dave".into(), KEY.into(), 3601), "3600");
    cx.add_temporary_key("dave".into(), KEY.into(), 3600)
        .expect("a key for an hour");
    refused(
        cx.add_temporary_membership("dave".into(), "operators".into(), 601),
        "600",
    );
    cx.add_temporary_membership("dave".into(), "operators".into(), 600)
        .expect("a membership for ten minutes");
    let fred = NewUser {
        name: "fred".into(),
        shell: None,
        comment: None,
        groups: vec!["developers".into()],
    };
    refused(cx.create_temporary(fred.clone(), 86_401), "86400");
    cx.create_temporary(fred, 86_400).expect("an account for a day");
    assert_eq!(ledger_users(dir.path()).len(), 3);

    // A grant's bound for all kinds and one for a kind: the lower holds.
    let both = UsersGrant {
        max_ttl_s: Some(300),
        max_key_ttl_s: Some(1200),
        ..grant
    };
    let mut cx = f.context("dave", both).with_client_key(client_key(1));
    refused(cx.add_temporary_key("dave".into(), KEY.into(), 301), "300");
}

#[test]
fn a_zero_ceiling_is_refused_for_every_kind() {
    use crate::capability::Capability as _;
    for key in [
        "max_ttl_s",
        "max_key_ttl_s",
        "max_group_ttl_s",
        "max_account_ttl_s",
    ] {
        let config: UsersConfig = toml::from_str(&format!("{key} = 0")).expect("parses");
        let err = Users::configure(config, &|p| p).expect_err("zero");
        assert!(err.contains(key), "{err}");
    }
    let config: UsersConfig = toml::from_str("max_key_ttl_s = 60").expect("parses");
    let config = Users::configure(config, &|p| p).expect("valid");
    assert_eq!(config.ceiling(crate::capability::users::TemporaryKind::Key), 60);
    assert_eq!(
        config.ceiling(crate::capability::users::TemporaryKind::Group),
        super::super::setup::DEFAULT_MAX_TTL_S
    );
}
