//! End to end: `sesamed` and `sesame` as separate processes, real QUIC on loopback, real
//! WebAssembly modules, the default policy from `policies/`.

use std::path::Path;
use std::time::{Duration, Instant};

use sesame_client::exchange;
use sesame_proto::{Domain, Envelope, ErrorCode, Request, Response, Sealer, Status};
use sesame_tests::{Client, Daemon, HOST, Setup, config_cluster, daemon_with_client, module, sesamed};

mod accountability;
mod cancel;
mod client;
mod detached;
mod exec;
mod firewall;
mod hostile;
mod hostile_policy;
mod known_hosts;
mod modules;
mod operations;
mod receipts;
mod rollout;
mod streaming;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn allowed_commands_return_their_output() {
    let (daemon, alice) = daemon_with_client("alice", &["users"]);

    let out = alice.sesame(&["run", "web", "basic::echo", "hello", "--not-a-flag", "world"]);
    assert!(out.status.success(), "echo failed: {}", stderr(&out));
    assert_eq!(stdout(&out), "hello --not-a-flag world\n");

    let out = alice.sesame(&["run", "web", "whoami"]);
    assert!(out.status.success(), "whoami failed: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("client=alice"), "{text}");
    assert!(text.contains("groups=users"), "{text}");
    assert!(text.contains("source=127.0.0.1"), "{text}");

    let rec = daemon.wait_audit("whoami", |r| {
        r["event"] == "request" && r["phase"] == "end" && r["command"] == "whoami"
    });
    assert_eq!(rec["client"], "alice");
    assert_eq!(rec["decision"], "allow");
    assert_eq!(rec["code"], 0);
    assert!(
        rec["module_digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{rec}"
    );
    daemon.wait_audit("whoami start", |r| {
        r["phase"] == "start" && r["command"] == "whoami"
    });
}

#[test]
fn an_unknown_client_gets_no_answer_and_is_audited() {
    let daemon = Daemon::start(&Setup::default());
    let stranger = Client::new();
    stranger.pin(&daemon, "web");
    let out = stranger.sesame(&["run", "web", "echo", "hi"]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("no answer"), "{}", stderr(&out));
    let rec = daemon.wait_audit("rejection", |r| r["event"] == "rejected");
    assert_eq!(rec["code"], 1001);
    assert_eq!(rec["sender"], stranger.key.as_str());
}

#[test]
fn a_replayed_envelope_runs_once_and_after_a_restart_is_rejected() {
    let (mut daemon, mut raw) = RawClient::enrolled();
    let request = raw.request(sesame_now(), HOST, vec!["once".into()]);
    let sealed = raw.seal(&request);
    let first = raw.send(&sealed);
    assert_eq!(first.status, Status::Ok, "{first:?}");
    assert_eq!(first.output, "once");
    // Delivered again: not run again, and answered with the first delivery's answer.
    let second = raw.send(&sealed);
    assert_eq!(second, first);
    let dup = daemon.wait_audit("duplicate", |r| r["event"] == "duplicate");
    assert_eq!(dup["id"], request.id.to_string());
    assert_eq!(dup["client"], "alice");
    assert_eq!(dup["answered"], true);
    let runs = |d: &Daemon| {
        d.audit()
            .iter()
            .filter(|r| r["event"] == "request" && r["phase"] == "end")
            .count()
    };
    assert_eq!(runs(&daemon), 1);

    // A restart forgets the answers but not the ids: now it is a replay.
    daemon.restart();
    raw.host.addr = Some(daemon.addr.to_string());
    let third = raw.send(&sealed);
    assert_eq!(third.code, ErrorCode::Replay, "{third:?}");
    assert_eq!(third.id, request.id);
    let rec = daemon.wait_audit("replay", |r| r["code"] == 1003);
    assert_eq!(rec["id"], request.id.to_string());
    assert_eq!(rec["client"], "alice");
}

#[test]
fn a_policy_deny_returns_1010_with_reasons() {
    let (daemon, alice) = daemon_with_client("alice", &["users"]);
    let out = alice.sesame(&["run", "web", "testing::spin"]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("error 1010"), "{err}");
    assert!(err.contains("alice"), "the reason names the client: {err}");
    let rec = daemon.wait_audit("deny", |r| r["code"] == 1010);
    assert_eq!(rec["decision"], "deny");
    assert!(rec["reasons"].as_array().is_some_and(|r| !r.is_empty()), "{rec}");
    assert!(
        daemon.audit().iter().all(|r| r["phase"] != "start"),
        "a denied command never starts"
    );
}

#[test]
fn a_looping_module_hits_the_time_limit_and_the_daemon_keeps_serving() {
    let (mut daemon, tess) = daemon_with_client("tess", &["testers"]);

    let spinner = {
        let home = tess.home.path().to_owned();
        std::thread::spawn(move || {
            let started = Instant::now();
            let out = std::process::Command::new(sesame_tests::binary("sesame"))
                .args(["run", "web", "testing::spin"])
                .env("SESAME_HOME", home)
                .output()
                .expect("run");
            (out, started.elapsed())
        })
    };
    // While the module spins, others are served.
    std::thread::sleep(Duration::from_millis(100));
    let out = tess.sesame(&["run", "web", "basic::echo", "still", "here"]);
    assert_eq!(stdout(&out), "still here\n", "{}", stderr(&out));

    let (out, elapsed) = spinner.join().expect("spinner thread");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("error 3002"), "{}", stderr(&out));
    // The policy gives the testing cluster 1 s; allow generous slack for a loaded machine.
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(daemon.is_running());
    let out = tess.sesame(&["run", "web", "basic::echo", "after"]);
    assert_eq!(stdout(&out), "after\n", "{}", stderr(&out));
}

#[test]
fn a_panicking_module_is_a_trap_not_a_crash() {
    let (mut daemon, tess) = daemon_with_client("tess", &["testers"]);
    let out = tess.sesame(&["run", "web", "testing::panic"]);
    assert!(stderr(&out).contains("error 3001"), "{}", stderr(&out));
    assert!(daemon.is_running());
    assert!(
        daemon.log().contains("panicked"),
        "the panic message goes to the daemon log"
    );
}

#[test]
fn a_mismatched_certificate_is_refused() {
    let daemon = Daemon::start(&Setup::default());
    let alice = Client::new();
    daemon.enrol("alice", &alice.key, &["users"]);
    alice.pin_with(&daemon, "web", &"0".repeat(64));
    let out = alice.sesame(&["run", "web", "echo", "hi"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains("does not match the pinned fingerprint"), "{err}");
    assert!(
        err.contains(&daemon.cert_sha256),
        "shows what was presented: {err}"
    );
}

#[test]
fn enrolment_and_removal_take_effect_without_a_restart() {
    let (daemon, alice) = daemon_with_client("alice", &["users"]);
    assert!(alice.sesame(&["run", "web", "echo", "hi"]).status.success());
    daemon.remove("alice");
    // The very next request sees the changed registry.
    let out = alice.sesame(&["run", "web", "echo", "hi"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    daemon.wait_audit("reload", |r| {
        r["event"] == "registry-reloaded" && r["clients"] == 0
    });
    daemon.wait_audit("rejection", |r| r["event"] == "rejected" && r["code"] == 1001);
    assert!(
        daemon
            .audit()
            .iter()
            .any(|r| r["event"] == "client-removed" && r["name"] == "alice")
    );
}

#[test]
fn a_just_enrolled_client_is_known_to_every_concurrent_first_request() {
    // Each round changes the registry, then sends its first requests all at once: every one must
    // see the new registry, however the reload and the requests interleave.
    let daemon = Daemon::start(&Setup::default());
    for round in 0..4 {
        let client = daemon.client(&format!("c{round}"), &["users"]);
        std::thread::scope(|s| {
            let runs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| client.sesame(&["run", "web", "echo", "hi"])))
                .collect();
            for run in runs {
                let out = run.join().expect("thread");
                assert!(out.status.success(), "round {round}: {}", stderr(&out));
            }
        });
    }
    assert!(!daemon.audit().iter().any(|r| r["event"] == "rejected"));
}

#[test]
fn unknown_commands_and_clusters_have_their_codes() {
    let (_daemon, alice) = daemon_with_client("alice", &["users"]);
    let out = alice.sesame(&["run", "web", "nope::echo"]);
    assert!(stderr(&out).contains("error 2003"), "{}", stderr(&out));
    let out = alice.sesame(&["run", "web", "basic::nope"]);
    assert!(stderr(&out).contains("error 2004"), "{}", stderr(&out));
}

#[test]
fn configtest_accepts_a_good_config_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Daemon::prepare(dir.path(), &Setup::default());
    let out = sesamed(&["configtest", "--config"], &[config.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("config OK"), "{}", stdout(&out));

    // A module that imports the filesystem is refused at load, with the import named.
    let fs_module = format!("[clusters.bad.commands]\nread = {:?}\n", module("fs-import"));
    let bad = Setup {
        clusters: format!("{}\n{fs_module}", Setup::default().clusters),
        ..Setup::default()
    };
    let dir2 = tempfile::tempdir().expect("tempdir");
    let config2 = Daemon::prepare(dir2.path(), &bad);
    let out = sesamed(&["configtest", "--config"], &[config2.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("bad::read") && err.contains("wasi:filesystem"),
        "{err}"
    );

    // A module that calls the firewall in a cluster without that capability is refused too.
    let fw = format!("[clusters.plain.commands]\nfw = {:?}\n", module("fw-call"));
    let bad = Setup {
        clusters: format!("{}\n{fw}", Setup::default().clusters),
        ..Setup::default()
    };
    let dir3 = tempfile::tempdir().expect("tempdir");
    let config3 = Daemon::prepare(dir3.path(), &bad);
    let out = sesamed(&["configtest", "--config"], &[config3.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("firewall capability"), "{}", stderr(&out));

    // A typo in the config names the key.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .expect("read")
            .replace("[quic]", "[quic]\nlisen = 1"),
    )
    .expect("write");
    let out = sesamed(&["configtest", "--config"], &[config.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("lisen"), "{}", stderr(&out));
}

#[test]
fn configtest_names_a_missing_salt_call_or_minion_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |salt_call: &Path, config_dir: &Path| {
        let setup = Setup {
            clusters: format!(
                "{}\n{}",
                Setup::default().clusters,
                config_cluster(salt_call, config_dir)
            ),
            ..Setup::default()
        };
        let daemon_dir = tempfile::tempdir().expect("tempdir");
        let config = Daemon::prepare(daemon_dir.path(), &setup);
        let out = sesamed(&["configtest", "--config"], &[config.as_os_str()]);
        assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
        stderr(&out)
    };
    let missing = dir.path().join("no-salt-call");
    let err = check(&missing, dir.path());
    assert!(
        err.contains("no-salt-call") && err.contains("set [salt] salt_call"),
        "{err}"
    );
    let err = check(Path::new("/bin/true"), dir.path());
    assert!(
        err.contains("minion") && err.contains("set [salt] config_dir"),
        "{err}"
    );
}

#[test]
fn a_firewall_call_outside_the_grant_is_refused_with_3004() {
    let fw = format!(
        "[clusters.access]\ncapabilities = [\"firewall\"]\ncommands = {{ fw = {:?} }}\n",
        module("fw-call")
    );
    let setup = Setup {
        clusters: format!("{}\n{fw}", Setup::default().clusters),
        ..Setup::default()
    };
    let daemon = Daemon::start(&setup);
    let root = daemon.client("root", &["admins"]);
    let out = root.sesame(&["run", "web", "access::fw"]);
    let err = stderr(&out);
    // fw-call asks for 192.0.2.1; the grant covers only the caller (127.0.0.1).
    assert!(err.contains("error 3004"), "{err}");
    assert!(err.contains("source 192.0.2.1 is not granted"), "{err}");
}

fn sesame_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[test]
fn stale_future_and_misaddressed_requests_have_their_codes() {
    let (_daemon, raw) = RawClient::enrolled();
    let ask = |issued_at_ms: u64, host_name: &str| {
        raw.send(&raw.seal(&raw.request(issued_at_ms, host_name, vec![])))
            .code
    };
    let now = sesame_now();
    assert_eq!(ask(now - 120_000, HOST), ErrorCode::Stale);
    assert_eq!(
        ask(now + 120_000, HOST),
        ErrorCode::Stale,
        "from the future (1004 as well)"
    );
    assert_eq!(ask(now, "otherhost"), ErrorCode::WrongHost);
    assert_eq!(ask(now, HOST), ErrorCode::Ok);
}

/// An enrolled client that builds and seals requests itself, to send what `sesame` never would.
struct RawClient {
    _client: Client,
    host: sesame_client::HostEntry,
    sealer: Sealer,
    rt: tokio::runtime::Runtime,
}

impl RawClient {
    /// A daemon with client alice (group users) enrolled and pinned.
    fn enrolled() -> (Daemon, Self) {
        let daemon = Daemon::start(&Setup::default());
        let client = Client::new();
        daemon.enrol("alice", &client.key, &["users"]);
        client.pin(&daemon, HOST);
        let home = client.home();
        let host = home.host(HOST).expect("pinned");
        let sealer = Sealer::new(home.key().expect("key"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        (
            daemon,
            Self {
                _client: client,
                host,
                sealer,
                rt,
            },
        )
    }

    fn request(&self, issued_at_ms: u64, host_name: &str, args: Vec<String>) -> Request {
        Request::new(
            &mut rand_core::OsRng,
            issued_at_ms,
            host_name,
            Some("basic"),
            "echo",
            args,
        )
    }

    fn seal(&self, request: &Request) -> Vec<u8> {
        self.sealer
            .seal(
                Domain::Request,
                &self.host.key,
                &mut rand_core::OsRng,
                &request.encode(),
            )
            .expect("seal")
    }

    fn send(&self, sealed: &[u8]) -> Response {
        let reply = self
            .rt
            .block_on(exchange(&self.host, sealed, Duration::from_secs(10)))
            .expect("reply");
        let env = Envelope::decode(&reply).expect("envelope");
        Response::decode(
            &self
                .sealer
                .open(Domain::Response, &env, |k| *k == self.host.key)
                .expect("open"),
        )
        .expect("response")
    }
}

#[test]
fn a_broken_policy_is_rejected_on_reload_and_a_good_one_takes_effect() {
    let (daemon, alice) = daemon_with_client("alice", &["users"]);
    assert!(alice.sesame(&["run", "web", "echo", "before"]).status.success());
    let policies = daemon.dir.path().join("policies");

    // A syntax error: the reload is rejected, audited, and the old policy keeps serving.
    std::fs::write(policies.join("broken.rego"), "package sesame\n\nbroken := {\n").expect("write");
    let rec = daemon.wait_audit("rejected reload", |r| {
        r["event"] == "policy-reloaded" && !r["error"].is_null()
    });
    assert!(
        rec["error"].as_str().is_some_and(|e| e.contains("broken.rego")),
        "{rec}"
    );
    let out = alice.sesame(&["run", "web", "echo", "still"]);
    assert_eq!(
        stdout(&out),
        "still\n",
        "old policy keeps serving: {}",
        stderr(&out)
    );

    // A valid change takes effect: users lose basic::echo.
    std::fs::remove_file(policies.join("broken.rego")).expect("rm");
    let data = std::fs::read_to_string(policies.join("data.json")).expect("read");
    let data = data.replace(r#""basic": ["echo", "whoami"]"#, r#""basic": ["whoami"]"#);
    std::fs::write(policies.join("data.json"), data).expect("write");
    daemon.wait_audit("accepted reload", |r| {
        r["event"] == "policy-reloaded" && r["error"].is_null() && r["revision"] != r["previous"]
    });
    let out = alice.sesame(&["run", "web", "echo", "after"]);
    assert!(stderr(&out).contains("error 1010"), "{}", stderr(&out));
}

#[test]
fn every_decision_is_in_the_decision_log() {
    let (daemon, alice) = daemon_with_client("alice", &["users"]);
    assert!(alice.sesame(&["run", "web", "echo", "x"]).status.success());
    let _ = alice.sesame(&["run", "web", "testing::spin"]);
    assert!(alice.sesame(&["run", "web", "echo", "x"]).status.success());
    let text =
        std::fs::read_to_string(daemon.dir.path().join("state/decisions.jsonl")).expect("decision log");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(records.len(), 3, "{records:#?}");
    // The same request again is decided from the cache, with the same result, and says so.
    assert_eq!(records[0]["cached"], false);
    assert_eq!(records[2]["cached"], true);
    assert_ne!(records[2]["decision_id"], records[0]["decision_id"]);
    // Each says how long deciding took: an evaluation takes some microseconds, a lookup may not.
    assert!(
        records[0]["decide_us"].as_u64().is_some_and(|us| us > 0),
        "{records:#?}"
    );
    assert!(records[2]["decide_us"].is_u64(), "{records:#?}");
    for field in ["allow", "reasons", "grant", "policy_revision"] {
        assert_eq!(records[2][field], records[0][field], "{field}");
    }
    let audit = daemon.wait_audit("echo", |r| r["phase"] == "end" && r["command"] == "echo");
    assert_eq!(records[0]["decision_id"], audit["id"]);
    assert_eq!(records[0]["allow"], true);
    assert_eq!(records[0]["policy_revision"], audit["policy_revision"]);
    assert_eq!(records[0]["request"]["args"][0], "x");
    assert_eq!(records[1]["allow"], false);
    assert_eq!(records[1]["client"], "alice");
    assert!(
        records[1]["reasons"][0]
            .as_str()
            .is_some_and(|r| r.contains("testing::spin"))
    );
}

#[test]
fn masked_arguments_never_reach_the_logs() {
    let data = std::fs::read_to_string(sesame_tests::repo_root().join("policies/data.json")).expect("data");
    let data = data.replace(r#""mask": {"#, r#""mask": {"basic::echo": [1], "#);
    assert!(
        data.contains("basic::echo\": [1]"),
        "the default data has a mask object"
    );
    let daemon = Daemon::start(&Setup {
        policy_data: Some(data),
        ..Setup::default()
    });
    let alice = daemon.client("alice", &["users"]);
    let out = alice.sesame(&["run", "web", "basic::echo", "user", "hunter2"]);
    assert_eq!(
        stdout(&out),
        "user hunter2\n",
        "the module still gets the real value: {}",
        stderr(&out)
    );
    let rec = daemon.wait_audit("echo", |r| r["phase"] == "end" && r["command"] == "echo");
    assert_eq!(rec["args"], serde_json::json!(["user", "***"]));
    for log in ["audit.jsonl", "decisions.jsonl"] {
        let text = std::fs::read_to_string(daemon.dir.path().join("state").join(log)).expect("log");
        assert!(
            !text.contains("hunter2"),
            "{log} leaks the masked argument: {text}"
        );
    }
}

#[test]
fn policy_test_cli_reports_and_exits_by_outcome() {
    let ok = sesamed(
        &["policy", "test", "--coverage", "--threshold", "100"],
        &[sesame_tests::repo_root().join("policies").as_os_str()],
    );
    assert_eq!(ok.status.code(), Some(0), "{}{}", stdout(&ok), stderr(&ok));
    let last = stdout(&ok).lines().last().unwrap_or_default().to_owned();
    assert!(last.ends_with(" passed, 0 failed"), "{last}");

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("p.rego"),
        "package sesame\n\ndecision := {\"allow\": false}\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("p_test.rego"),
        "package sesame_test\n\ntest_allows if {\n\tdata.sesame.decision.allow\n}\n",
    )
    .expect("write");
    let failing = sesamed(&["policy", "test"], &[dir.path().as_os_str()]);
    assert_eq!(failing.status.code(), Some(1));
    let text = stdout(&failing);
    assert!(text.contains("FAIL") && text.contains("p_test.rego:3"), "{text}");
    assert!(
        text.lines().last().is_some_and(|l| l == "0 passed, 1 failed"),
        "{text}"
    );
}

#[test]
fn the_daemon_logs_json_lines_when_asked() {
    let setup = Setup {
        env: vec![("SESAME_LOG_FORMAT".into(), "json".into())],
        ..Setup::default()
    };
    let daemon = Daemon::start(&setup);
    let alice = daemon.client("alice", &["users"]);
    alice.run_ok(&["run", "web", "echo", "hi"]);
    daemon.wait_log("serving QUIC");
    let log = daemon.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "serving QUIC" && l["level"] == "INFO"),
        "{log}"
    );
}

#[test]
fn audit_verify_passes_a_served_log_and_names_an_edited_line() {
    let (daemon, alice) = daemon_with_client("alice", &["users"]);
    alice.run_ok(&["run", "web", "echo", "one"]);
    alice.run_ok(&["run", "web", "echo", "two"]);
    let config = daemon.config.as_os_str();
    let out = sesamed(&["audit", "verify", "--config"], &[config]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.matches(": intact: ").count(),
        2,
        "audit and decision logs: {text}"
    );
    // A saved audit head is checked against the audit log only, not the decision log too.
    let audit_head = text
        .lines()
        .find(|l| l.contains("audit.jsonl: intact"))
        .and_then(|l| l.split("to head ").nth(1))
        .and_then(|h| h.split(',').next())
        .unwrap_or_else(|| panic!("no audit head in {text}"))
        .to_owned();
    let out = sesamed(
        &["audit", "verify", "--expect", &audit_head, "--config"],
        &[config],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let audit = daemon.dir.path().join("state/audit.jsonl");
    let log = std::fs::read_to_string(&audit).expect("audit log");
    let edited = log.replacen("\"one\"", "\"0ne\"", 1);
    assert_ne!(log, edited, "the log holds the argument");
    std::fs::write(&audit, edited).expect("edit");
    let out = sesamed(&["audit", "verify", "--config"], &[config]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("does not link to the line before it"),
        "{}",
        stdout(&out)
    );
}
