use super::*;
use crate::exec::{self, RunOutput};
use crate::firewall::{self, Proto};
use crate::grants::{self, ChangeKind, Held};
use crate::hostkeys::{self, HostKey};
use crate::{log, salt, users};

/// Name and value pairs, as [`exec::run`] takes them.
fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn rule(port: u16) -> Rule {
    Rule {
        source: "203.0.113.5".into(),
        port,
        proto: Proto::Tcp,
        ttl_secs: 60,
    }
}

/// Opens the port in its first argument for the caller's address, logging the grant.
struct Open;

impl Command for Open {
    fn run(inv: Invocation) -> Result<String, String> {
        let port: u16 = inv.args().parse(0, "PORT")?;
        let id = firewall::allow(&rule(port))?;
        log::info(&format!("opened {port} as {id}"));
        Ok(id)
    }
}

#[test]
fn run_records_calls_and_logs_in_order() {
    let run = FakeHost::new()
        .firewall_allow(|rule| Ok(format!("fw-{}", rule.port)))
        .run::<Open>(invocation("alice", &["22"]));
    assert_eq!(run.output, Ok("fw-22".into()));
    assert_eq!(run.calls, [Call::FirewallAllow(rule(22))]);
    assert_eq!(run.logs, [LogLine::info("opened 22 as fw-22")]);
}

#[test]
fn unscripted_calls_are_denied_and_recorded() {
    let run = FakeHost::new().users_list(|| Ok(Vec::new())).scope(|| {
        (
            firewall::allow(&rule(22)),
            firewall::revoke("fw-1"),
            firewall::list(),
            salt::apply("motd", Some("{}"), true),
            users::lock("dave"),
            users::add_key("dave", "ssh-ed25519 AAAA"),
            users::remove_from_group("dave", "ops"),
            exec::run("restart", &params(&[("unit", "web")])),
            hostkeys::list(),
            grants::list(),
            grants::revoke("grp-1"),
        )
    });
    let denied = |name: &str| HostError::Denied(format!("not scripted in this test: {name}"));
    assert_eq!(run.output.0, Err(denied("firewall.allow")));
    assert_eq!(run.output.1, Err(denied("firewall.revoke")));
    assert_eq!(run.output.2, Err(denied("firewall.list")));
    assert_eq!(run.output.3, Err(denied("salt.apply")));
    assert_eq!(run.output.4, Err(denied("users.lock")));
    assert_eq!(run.output.5, Err(denied("users.add-key")));
    assert_eq!(run.output.6, Err(denied("users.remove-from-group")));
    assert_eq!(run.output.7, Err(denied("exec.run")));
    assert_eq!(run.output.8, Err(denied("hostkeys.list")));
    assert_eq!(run.output.9, Err(denied("grants.list")));
    assert_eq!(run.output.10, Err(denied("grants.revoke")));
    assert_eq!(
        run.calls,
        [
            Call::FirewallAllow(rule(22)),
            Call::FirewallRevoke {
                grant_id: "fw-1".into()
            },
            Call::FirewallList,
            Call::SaltApply {
                state: "motd".into(),
                pillar_json: Some("{}".into()),
                test: true
            },
            Call::UsersLock { name: "dave".into() },
            Call::UsersAddKey {
                name: "dave".into(),
                key: "ssh-ed25519 AAAA".into()
            },
            Call::UsersRemoveFromGroup {
                name: "dave".into(),
                group: "ops".into()
            },
            Call::ExecRun {
                name: "restart".into(),
                params: params(&[("unit", "web")])
            },
            Call::HostkeysList,
            Call::GrantsList,
            Call::GrantsRevoke { id: "grp-1".into() },
        ]
    );
}

#[test]
fn every_function_reaches_its_own_script() {
    let report = ApplyReport {
        succeeded: true,
        changed: 1,
        failed: 0,
        states: Vec::new(),
    };
    let account = Account {
        name: "dave".into(),
        uid: 1001,
        groups: vec!["ops".into()],
        shell: "/bin/bash".into(),
        locked: false,
    };
    let grant = Grant {
        id: "fw-1".into(),
        source: "203.0.113.5".into(),
        port: 22,
        proto: Proto::Tcp,
        expires_at_ms: 1,
    };
    let new_user = NewUser {
        name: "erin".into(),
        shell: None,
        comment: Some("Erin".into()),
        groups: Vec::new(),
    };
    let ran = RunOutput {
        exit_code: Some(3),
        stdout: String::new(),
        stderr: "no such unit".into(),
        duration_ms: 12,
        truncated: false,
    };
    let host_key = HostKey {
        kind: "ssh-ed25519".into(),
        key: "AAAAC3NzaC1lZDI1NTE5AAAAIKKLn/q97bFQU3fk4Kir6HIV21r27Mp6Hs8MEGbcvL4n".into(),
    };
    let held = Held {
        id: "grp-0123456789abcdef".into(),
        kind: ChangeKind::Membership,
        what: "dave in group sudo".into(),
        expires_at_ms: 2,
    };
    let (r, a, g, o, k, h) = (
        report.clone(),
        account.clone(),
        grant.clone(),
        ran.clone(),
        host_key.clone(),
        held.clone(),
    );
    let failed = |what: &str| Err(HostError::Failed(what.into()));
    let run = FakeHost::new()
        .firewall_allow(|_| Ok("fw-1".into()))
        .firewall_revoke(move |_| failed("revoke"))
        .firewall_list(move || Ok(vec![g.clone()]))
        .salt_apply(move |state, pillar, test| {
            assert_eq!((state, pillar, test), ("motd", None, false));
            Ok(r.clone())
        })
        .users_create(move |user| failed(&format!("create {}", user.name)))
        .users_lock(move |name| failed(&format!("lock {name}")))
        .users_unlock(move |name| failed(&format!("unlock {name}")))
        .users_remove(move |name| failed(&format!("remove {name}")))
        .users_add_key(|_, _| Ok(false))
        .users_remove_key(|name, _| Ok(name == "dave"))
        .users_add_to_group(move |name, group| failed(&format!("{name} to {group}")))
        .users_remove_from_group(move |name, group| failed(&format!("{name} from {group}")))
        .users_list(move || Ok(vec![a.clone()]))
        .exec_run(move |name, given| {
            assert_eq!((name, given), ("restart", &params(&[("unit", "web")])[..]));
            Ok(o.clone())
        })
        .hostkeys_list(move || Ok(vec![k.clone()]))
        .grants_list(move || Ok(vec![h.clone()]))
        .grants_revoke(|id| Err(HostError::Invalid(format!("no live grant {id}"))))
        .scope(|| {
            assert_eq!(firewall::allow(&rule(22)), Ok("fw-1".into()));
            assert_eq!(firewall::revoke("fw-1"), failed("revoke"));
            assert_eq!(firewall::list(), Ok(vec![grant]));
            assert_eq!(salt::apply("motd", None, false), Ok(report));
            assert_eq!(users::create(&new_user), failed("create erin"));
            assert_eq!(users::lock("dave"), failed("lock dave"));
            assert_eq!(users::unlock("dave"), failed("unlock dave"));
            assert_eq!(users::remove("dave"), failed("remove dave"));
            assert_eq!(users::add_key("dave", "k"), Ok(false));
            assert_eq!(users::remove_key("dave", "k"), Ok(true));
            assert_eq!(users::add_to_group("dave", "ops"), failed("dave to ops"));
            assert_eq!(users::remove_from_group("dave", "ops"), failed("dave from ops"));
            assert_eq!(users::list(), Ok(vec![account]));
            // A non-zero exit is an answer, not an error.
            assert_eq!(exec::run("restart", &params(&[("unit", "web")])), Ok(ran));
            assert_eq!(hostkeys::list(), Ok(vec![host_key]));
            assert_eq!(grants::list(), Ok(vec![held]));
            assert_eq!(
                grants::revoke("fw-1"),
                Err(HostError::Invalid("no live grant fw-1".into()))
            );
        });
    let names: Vec<&str> = run.calls.iter().map(Call::name).collect();
    assert_eq!(
        names,
        [
            "firewall.allow",
            "firewall.revoke",
            "firewall.list",
            "salt.apply",
            "users.create",
            "users.lock",
            "users.unlock",
            "users.remove",
            "users.add-key",
            "users.remove-key",
            "users.add-to-group",
            "users.remove-from-group",
            "users.list",
            "exec.run",
            "hostkeys.list",
            "grants.list",
            "grants.revoke",
        ]
    );
    assert_eq!(run.calls[4], Call::UsersCreate(new_user.clone()));
}

#[test]
fn exec_parameters_are_recorded_and_answered_as_given() {
    // In order, repeated names and `=` in values included: the module's choices, for the host
    // to judge.
    let given = params(&[("unit", "web"), ("opts", "a=b=c"), ("unit", ""), ("", "x")]);
    let expected = given.clone();
    let run = FakeHost::new()
        .exec_run(move |name, got| {
            assert_eq!((name, got), ("restart", &expected[..]));
            Err(HostError::Invalid("unit: given twice".into()))
        })
        .scope(|| exec::run("restart", &given));
    assert_eq!(run.output, Err(HostError::Invalid("unit: given twice".into())));
    assert_eq!(
        run.calls,
        [Call::ExecRun {
            name: "restart".into(),
            params: params(&[("unit", "web"), ("opts", "a=b=c"), ("unit", ""), ("", "x")]),
        }]
    );
    assert_eq!(run.calls[0].name(), "exec.run");
}

#[test]
fn answers_keep_state_between_calls() {
    let mut next = 0;
    let run = FakeHost::new()
        .firewall_allow(move |_| {
            next += 1;
            Ok(format!("fw-{next}"))
        })
        .scope(|| [firewall::allow(&rule(22)), firewall::allow(&rule(22))]);
    assert_eq!(run.output, [Ok("fw-1".into()), Ok("fw-2".into())]);
}

#[test]
fn scripting_again_replaces_the_answer() {
    let run = FakeHost::new()
        .users_lock(|_| Err(HostError::Failed("first".into())))
        .users_lock(|_| Ok(()))
        .scope(|| users::lock("dave"));
    assert_eq!(run.output, Ok(()));
}

#[test]
fn without_a_fake_host_calls_are_denied_and_logs_dropped() {
    log::warn("nobody listens");
    let denied = firewall::list().map_err(|e| e.to_string());
    assert!(
        denied
            .as_ref()
            .is_err_and(|e| e.starts_with("denied: no fake host on this thread: firewall.list")),
        "{denied:?}"
    );
}

#[test]
fn scopes_nest_and_end_on_panic() {
    let run = FakeHost::new().firewall_list(|| Ok(Vec::new())).scope(|| {
        log::info("outer");
        let inner = FakeHost::new().scope(|| {
            log::warn("inner");
            firewall::list()
        });
        assert_eq!(inner.logs, [LogLine::warn("inner")]);
        assert_eq!(inner.calls, [Call::FirewallList]);
        assert!(inner.output.is_err());
        let panicked = std::panic::catch_unwind(|| {
            FakeHost::new().scope(|| panic!("module bug"));
        });
        assert!(panicked.is_err());
        firewall::list()
    });
    assert_eq!(run.output, Ok(Vec::new()));
    assert_eq!(run.calls, [Call::FirewallList]);
    assert_eq!(run.logs, [LogLine::info("outer")]);
}

#[test]
fn an_answer_calling_the_host_sees_itself_unscripted() {
    let run = FakeHost::new()
        .firewall_list(firewall::list)
        .scope(firewall::list);
    assert_eq!(
        run.output,
        Err(HostError::Denied(
            "not scripted in this test: firewall.list".into()
        ))
    );
    assert_eq!(run.calls, [Call::FirewallList, Call::FirewallList]);
}

#[test]
fn invocation_builders() {
    let inv = invocation("alice", &["a", "--b"])
        .with_id("ff")
        .with_cluster("access")
        .with_command("allow")
        .with_groups(&["ops", "dev"])
        .with_source_ip("2001:db8::1");
    assert_eq!(inv.id, "ff");
    assert_eq!(inv.cluster, "access");
    assert_eq!(inv.command, "allow");
    assert_eq!(inv.args, ["a", "--b"]);
    assert_eq!(inv.client, "alice");
    assert_eq!(inv.groups, ["ops", "dev"]);
    assert_eq!(inv.source_ip.as_deref(), Some("2001:db8::1"));
    let plain = invocation("bob", &[]);
    assert_eq!(
        (plain.id.as_str(), plain.cluster.as_str(), plain.command.as_str()),
        (REQUEST_ID, "test", "test")
    );
    assert!(plain.groups.is_empty() && plain.source_ip.is_none());
}

#[test]
fn debug_names_the_scripted_functions() {
    let host = FakeHost::new()
        .users_list(|| Ok(Vec::new()))
        .exec_run(|_, _| Err(HostError::Failed("timeout".into())))
        .hostkeys_list(|| Ok(Vec::new()))
        .firewall_allow(|_| Ok(String::new()));
    assert_eq!(
        format!("{host:?}"),
        r#"FakeHost { scripted: ["firewall.allow", "users.list", "exec.run", "hostkeys.list"] }"#
    );
}
