//! The users host calls end to end over a fixture `/etc` (a Debian-like account database with
//! system accounts, an administrator and developers), with grants from the stock policy or made
//! by hand. The shadow tools only record what they would run, so every test can say both what
//! the module was told and whether anything would have changed.

use std::path::Path;
use std::sync::Arc;

use crate::capability::Services;
use crate::host::bindings::sesame::host::users::{Host as _, NewUser};
use crate::host::{CallContext, HostError, HostFault};
use crate::policy::{ClientInput, Decision, HostInput, ModuleInput, Policy, PolicyInput, RequestInput};
use crate::system::Recorder;

use super::{Users, UsersGrant};

const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
toor:x:0:0:root under another name:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
sshd:x:100:65534::/run/sshd:/usr/sbin/nologin
postgres:x:101:104:PostgreSQL administrator:/var/lib/postgresql:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
ada:x:1000:1000:Ada Admin:/home/ada:/bin/bash
dave:x:1001:1001:Dave Example:/home/dave:/bin/bash
erin:x:1002:1002:Erin Outsider:/home/erin:/bin/bash
svc:x:1003:1003:a service with an ordinary uid:/srv/svc:/usr/sbin/nologin
carl:x:1004:100:Carl, primary group users:/home/carl:/bin/bash
big:x:70000:70000:above UID_MAX:/home/big:/bin/bash
";

/// Every system account and the administrator are members of `developers` too: membership of a
/// granted group must not be a way in for them.
const GROUP: &str = "\
root:x:0:
daemon:x:1:
bin:x:2:
sudo:x:27:ada
www-data:x:33:
users:x:100:
postgres:x:104:
nogroup:x:65534:
ada:x:1000:
dave:x:1001:
erin:x:1002:
svc:x:1003:
big:x:70000:
developers:x:2000:toor,daemon,bin,www-data,sshd,postgres,nobody,ada,dave,svc,carl,big
operators:x:2001:erin
";

const SHADOW: &str = "\
root:*:19000:0:99999:7:::
dave:$y$j9T$x:19000:0:99999:7:::
";

const LOGIN_DEFS: &str = "\
# /etc/login.defs (excerpt)
UID_MIN\t\t\t 1000
UID_MAX\t\t\t60000
GID_MIN\t\t\t 1000
GID_MAX\t\t\t60000
";

const SHELLS: &str = "# /etc/shells: valid login shells\n/bin/sh\n/bin/bash\n";

/// A real ed25519 key.
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpyo4ZeTj/fgjh+FvzKwzxzIh8WWnHh6ELIpKiD6cti dave@laptop";

/// The fixture `/etc`, and a users service over it whose tools only record.
struct Fixture {
    _etc: tempfile::TempDir,
    users: Arc<Users>,
    recorder: Recorder,
}

impl Fixture {
    fn new() -> Self {
        let etc = tempfile::tempdir().expect("tempdir");
        for (name, text) in [
            ("passwd", PASSWD),
            ("group", GROUP),
            ("shadow", SHADOW),
            ("login.defs", LOGIN_DEFS),
            ("shells", SHELLS),
        ] {
            std::fs::write(etc.path().join(name), text).expect("write");
        }
        let recorder = Recorder::default();
        let users = Users::dry_run_at(etc.path().to_owned(), recorder.clone()).expect("users");
        Self {
            _etc: etc,
            users: Arc::new(users),
            recorder,
        }
    }

    /// A call context for `client` holding `grant`.
    fn context(&self, client: &str, grant: UsersGrant) -> CallContext {
        let grant = crate::policy::Grant {
            users: grant,
            ..Default::default()
        };
        CallContext::new("req".into(), grant)
            .with_caller(client.into(), None)
            .with_services(Services {
                users: Some(Arc::clone(&self.users)),
                ..Services::default()
            })
    }

    /// A call context with the grant the stock policy gives `client` (in `groups`) for
    /// `accounts::command args`; panics when the policy denies it.
    fn stock(&self, client: &str, groups: &[&str], command: &str, args: &[&str]) -> CallContext {
        match stock_decision(client, groups, command, args) {
            Decision::Allow(grant) => self.context(client, grant.users),
            Decision::Deny(why) => panic!("the stock policy denies {client} {command} {args:?}: {why:?}"),
        }
    }

    /// What the tools would have run (and the key files written) so far.
    fn changes(&self) -> Vec<String> {
        self.recorder.take()
    }
}

fn stock_decision(client: &str, groups: &[&str], command: &str, args: &[&str]) -> Decision {
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    decision_in(&policies, client, groups, command, args)
}

/// The decision of the policy in `dir` for `client` (in `groups`) running `accounts::command`.
fn decision_in(dir: &Path, client: &str, groups: &[&str], command: &str, args: &[&str]) -> Decision {
    let policy = Policy::load(dir).expect("policy");
    policy.decide(&PolicyInput {
        client: ClientInput {
            name: client.into(),
            key: "pk".into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        },
        request: RequestInput {
            id: "0123456789abcdef0123456789abcdef".into(),
            cluster: "accounts".into(),
            command: command.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            transport: "quic".into(),
            source_ip: None,
            reason: Some("OPS-1 test".into()),
        },
        host: HostInput {
            name: "h1".into(),
            labels: Default::default(),
        },
        module: ModuleInput {
            name: command.into(),
            digest: "sha256:00".into(),
            imports: vec![],
        },
        now_ns: 0,
    })
}

fn grant(names: &[&str], groups: &[&str]) -> UsersGrant {
    UsersGrant {
        names: names.iter().map(|n| (*n).to_owned()).collect(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..Default::default()
    }
}

/// Asserts `result` is a denial (3004 for the client) and returns its reason.
#[track_caller]
fn denied<T: std::fmt::Debug>(result: Result<T, HostFault>) -> String {
    match result {
        Err(HostFault::Error(HostError::Denied(why))) => why,
        other => panic!("expected a denial, got {other:?}"),
    }
}

/// The account-changing calls a module can make on `name`.
fn every_change(ctx: &mut CallContext, name: &str) -> Vec<(&'static str, Result<(), HostFault>)> {
    vec![
        ("lock", ctx.lock(name.into())),
        ("unlock", ctx.unlock(name.into())),
        ("remove", ctx.remove(name.into())),
        ("add-key", ctx.add_key(name.into(), KEY.into()).map(drop)),
        ("remove-key", ctx.remove_key(name.into(), KEY.into()).map(drop)),
        ("add-to-group", ctx.add_to_group(name.into(), "developers".into())),
        (
            "remove-from-group",
            ctx.remove_from_group(name.into(), "developers".into()),
        ),
    ]
}

#[test]
fn onboarders_cannot_touch_system_accounts_through_the_stock_policy() {
    let f = Fixture::new();
    for (command, target) in [
        ("user-remove", "daemon"),
        ("user-remove", "www-data"),
        ("user-lock", "bin"),
        ("user-remove", "sshd"),
        ("user-lock", "nobody"),
        ("user-lock", "postgres"),
        ("user-lock", "toor"),
        ("user-remove", "svc"),
        ("user-lock", "carl"),
        ("user-lock", "big"),
    ] {
        let mut ctx = f.stock("olga", &["onboarders"], command, &[target]);
        for (call, result) in every_change(&mut ctx, target) {
            let why = denied(result);
            assert!(why.contains(target), "{call} {target}: {why}");
        }
        assert_eq!(
            f.changes(),
            Vec::<String>::new(),
            "{command} {target}: nothing ran"
        );
    }
}

#[test]
fn onboarders_cannot_touch_an_administrator_or_an_account_outside_their_groups() {
    let f = Fixture::new();
    // ada is an administrator (sudo) who is also in developers; erin is in operators only.
    for target in ["ada", "erin"] {
        let mut ctx = f.stock("olga", &["onboarders"], "user-lock", &[target]);
        for (call, result) in every_change(&mut ctx, target) {
            let why = denied(result);
            assert!(why.contains(target), "{call} {target}: {why}");
        }
        assert_eq!(f.changes(), Vec::<String>::new(), "{target}: nothing ran");
    }
}

#[test]
fn onboarders_still_manage_developers() {
    let f = Fixture::new();
    let mut ctx = f.stock("olga", &["onboarders"], "user-lock", &["dave"]);
    ctx.lock("dave".into()).expect("lock dave");
    let mut ctx = f.stock("olga", &["onboarders"], "user-remove", &["dave"]);
    ctx.remove("dave".into()).expect("remove dave");
    let mut ctx = f.stock("olga", &["onboarders"], "group-remove", &["dave", "developers"]);
    ctx.remove_from_group("dave".into(), "developers".into())
        .expect("dave leaves developers");
    let ran = f.changes();
    assert_eq!(
        ran,
        [
            "/usr/sbin/usermod --lock --expiredate 1 -- dave",
            "/usr/sbin/userdel --remove -- dave",
            "/usr/bin/gpasswd --delete dave developers",
        ],
        "{ran:?}"
    );
}

#[test]
fn a_client_named_like_a_system_account_gets_no_self_service() {
    let f = Fixture::new();
    for client in [
        "daemon", "bin", "www-data", "nobody", "toor", "svc", "carl", "big",
    ] {
        let mut ctx = f.stock(client, &["staff"], "key-add", &[KEY]);
        denied(ctx.add_key(client.into(), KEY.into()));
        denied(ctx.remove_key(client.into(), KEY.into()));
        assert_eq!(f.changes(), Vec::<String>::new(), "{client}: nothing written");
    }
    // A client with no account is told so, not refused.
    let mut ctx = f.stock("ghost", &["staff"], "key-add", &[KEY]);
    match ctx.add_key("ghost".into(), KEY.into()) {
        Err(HostFault::Error(HostError::Invalid(why))) => assert_eq!(why, "no account ghost"),
        other => panic!("{other:?}"),
    }
    // Self service works for an ordinary account, administrators included, and for no other.
    for client in ["dave", "ada"] {
        let mut ctx = f.stock(client, &["staff"], "key-add", &[KEY]);
        assert!(ctx.add_key(client.into(), KEY.into()).expect("own key"));
        denied(ctx.add_key("erin".into(), KEY.into()));
        denied(ctx.lock("erin".into()));
    }
    assert_eq!(
        f.changes(),
        [
            format!(
                "add {} to /home/dave/.ssh/authorized_keys",
                KEY.parse::<super::SshKey>().expect("key").summary()
            ),
            format!(
                "add {} to /home/ada/.ssh/authorized_keys",
                KEY.parse::<super::SshKey>().expect("key").summary()
            ),
        ]
    );
}

#[test]
fn creating_an_account_needs_a_granted_unreserved_new_name() {
    let f = Fixture::new();
    let new = |name: &str, groups: &[&str]| NewUser {
        name: name.into(),
        shell: None,
        comment: None,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    };
    // Names that are privileged or belong to the system even when no such account exists yet.
    for name in [
        "admin",
        "wheel",
        "sudo",
        "adm",
        "docker",
        "systemd-coredump",
        "_chrony",
        "sesame",
    ] {
        let mut ctx = f.context("olga", grant(&[name, "*"], &["developers"]));
        denied(ctx.create(new(name, &["developers"])));
    }
    // An existing system account, or an account outside the grant's groups, is not created over.
    for name in ["daemon", "erin"] {
        let mut ctx = f.stock("olga", &["onboarders"], "user-add", &[name]);
        denied(ctx.create(new(name, &["developers"])));
    }
    assert_eq!(f.changes(), Vec::<String>::new(), "nothing ran");
    let mut ctx = f.stock("olga", &["onboarders"], "user-add", &["frank"]);
    ctx.create(new("frank", &["developers"])).expect("frank");
    denied(ctx.create(new("grace", &["developers"])));
    let mut ctx = f.stock("olga", &["onboarders"], "user-add", &["grace"]);
    denied(ctx.create(new("grace", &["sudo"])));
    assert_eq!(
        f.changes(),
        ["/usr/sbin/useradd --create-home --user-group --groups developers -- frank"]
    );
}

#[test]
fn naming_a_system_account_or_group_in_names_or_groups_is_not_enough() {
    let f = Fixture::new();
    let mut ctx = f.context(
        "olga",
        grant(
            &["root", "toor", "daemon", "nobody", "ada", "*"],
            &["sudo", "root", "users", "*"],
        ),
    );
    for target in ["root", "toor", "daemon", "nobody", "ada", "carl"] {
        for (call, result) in every_change(&mut ctx, target) {
            denied(result);
            let _ = call;
        }
    }
    for group in ["sudo", "root", "users", "nogroup", "daemon"] {
        denied(ctx.add_to_group("dave".into(), group.into()));
    }
    assert_eq!(f.changes(), Vec::<String>::new(), "nothing ran");
}

#[test]
fn the_list_shows_what_the_grant_covers_only() {
    let f = Fixture::new();
    let mut ctx = f.context("olga", grant(&["*"], &["developers"]));
    let names: Vec<String> = ctx.list().expect("list").into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["dave"]);
    let mut ctx = f.context("olga", grant(&["*"], &["*"]));
    let names: Vec<String> = ctx.list().expect("list").into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["dave", "erin"]);
}

#[test]
fn a_policy_may_name_system_accounts_and_groups_and_give_self_service() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("p.rego"),
        r#"package sesame

decision := {"allow": true, "grant": {"users": {
	"self": true,
	"system_accounts": ["www-data", "*"],
	"system_groups": ["www-data"],
}}}
"#,
    )
    .expect("write");
    let Decision::Allow(grant) = decision_in(dir.path(), "dave", &[], "web-maintenance", &[]) else {
        panic!("allowed")
    };
    assert!(grant.users.self_service);
    let mut ctx = f.context("dave", grant.users);
    ctx.lock("www-data".into()).expect("named, in a named group");
    assert!(ctx.add_key("dave".into(), KEY.into()).expect("own account"));
    for other in ["daemon", "bin", "erin", "ada"] {
        denied(ctx.lock(other.into()));
    }
    denied(ctx.create(NewUser {
        name: "frank".into(),
        shell: None,
        comment: None,
        groups: vec![],
    }));
    assert_eq!(f.changes().len(), 2, "www-data locked, dave's key added");
}

// --- temporary changes ------------------------------------------------------------------------

/// A fixture whose users service records temporary changes in a ledger in `dir`.
fn temporary_fixture(dir: &Path, max_ttl_s: u64) -> Fixture {
    let mut f = Fixture::new();
    let users = Users::dry_run_at(f._etc.path().to_owned(), f.recorder.clone())
        .expect("users")
        .with_ledger(super::KeyLedger {
            file: crate::ledger::LedgerFile::new(dir, &dir.join("clients.toml")),
            audit: Arc::new(crate::audit::AuditLog::open(&dir.join("audit.jsonl")).expect("audit")),
            max_ttl_s,
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
