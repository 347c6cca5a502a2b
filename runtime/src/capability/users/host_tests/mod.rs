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

mod temporary;
