//! Cancelling a request while it runs, through a live daemon over QUIC: Ctrl-C in `sesame run`
//! and `sesame cancel HOST ID` stop the module wherever it is (computing, or waiting in host
//! code), the request answers 3008 well before its time limit, both ends are audited, and only
//! the client that sent a request can cancel it.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use sesame_tests::{Client, Daemon, Setup, module};

use super::stderr;

/// How long a cancelled run may take to end after its cancel was answered: an epoch tick or a
/// poll of the tool's pipes, with room for a loaded 2-core machine.
const PROMPT: Duration = Duration::from_secs(3);

/// A daemon whose `basic` cluster has `ticker`, `wait` and `spin` under a minute's time limit
/// (so that only a cancel ends them soon), with testers `tess` and `otto` enrolled.
fn daemon() -> (Daemon, Client, Client) {
    let clusters = format!(
        "[limits]\ntimeout_ms = 60000\n\n[clusters.basic.commands]\nticker = {:?}\nwait = {:?}\nspin = {:?}\n",
        module("ticker"),
        module("wait"),
        module("spin"),
    );
    let data = std::fs::read_to_string(sesame_tests::repo_root().join("policies/data.json"))
        .expect("data.json")
        .replace(
            r#""limits": {"timeout_ms": 5000,"#,
            r#""limits": {"timeout_ms": 60000,"#,
        );
    assert!(data.contains("60000"), "the stock limits moved");
    let daemon = Daemon::start(&Setup {
        clusters,
        policy_data: Some(data),
        ..Setup::default()
    });
    let tess = daemon.client("tess", &["testers"]);
    let otto = daemon.client("otto", &["testers"]);
    (daemon, tess, otto)
}

/// Starts `sesame ARGS` as `client`, its output piped.
fn spawn(client: &Client, args: &[&str]) -> Child {
    client
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sesame")
}

/// The id of the running request whose `start` record matches `command` and its first argument.
fn started_id(daemon: &Daemon, command: &str, arg: &str) -> String {
    let start = daemon.wait_audit(command, |r| {
        r["phase"] == "start" && r["command"] == command && (arg.is_empty() || r["args"][0] == arg)
    });
    start["id"].as_str().expect("id").to_owned()
}

/// Waits for `child` to end, at most `within`; its output and how long it took.
fn ended_within(mut child: Child, within: Duration) -> (std::process::Output, Duration) {
    let started = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > within {
            let _ = child.kill();
            panic!("sesame did not end within {within:?} of the cancel");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().expect("output"), started.elapsed())
}

#[test]
fn ctrl_c_in_sesame_run_stops_the_module_at_once_and_both_ends_are_audited() {
    let (daemon, tess, _) = daemon();
    // 100 ticks 200 ms apart: 20 s unless cancelled.
    let mut child = spawn(&tess, &["run", "web", "ticker", "100", "200"]);
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a first line").expect("utf-8");
    assert!(first.starts_with("tick 0 "), "{first}");
    let id = started_id(&daemon, "ticker", "100");
    let sent = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let rest: Vec<String> = lines.map(|l| l.expect("utf-8")).collect();
    let (out, _) = ended_within(child, PROMPT * 2);
    let took = sent.elapsed();
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the host's error is the exit status: {err}"
    );
    assert!(
        err.contains("3008") && err.contains("cancelled by the client"),
        "{err}"
    );
    assert!(took < PROMPT, "ended {took:?} after Ctrl-C");
    assert!(rest.len() < 20, "the ticker went on: {rest:?}");

    let end = daemon.wait_audit("the cancelled run's end", |r| {
        r["phase"] == "end" && r["id"] == id
    });
    assert_eq!(end["code"], 3008, "{end}");
    let message = end["message"].as_str().expect("message");
    let cancel = daemon.wait_audit("the cancel", |r| {
        r["phase"] == "end" && r["cluster"] == "runs" && r["command"] == "cancel"
    });
    assert_eq!(
        (cancel["code"].as_u64(), cancel["client"].as_str()),
        (Some(0), Some("tess"))
    );
    assert_eq!(cancel["args"][0], id.as_str(), "{cancel}");
    let by = cancel["id"].as_str().expect("id");
    assert!(
        message.contains(&format!("its request {by}")),
        "the end record names the cancel: {message}"
    );
    let held = Duration::from_micros(end["duration_us"].as_u64().expect("duration_us"));
    assert!(held < Duration::from_secs(10), "in the daemon for {held:?}");
}

#[test]
fn a_cancel_stops_a_module_wherever_it_waits_or_computes() {
    let (daemon, tess, _) = daemon();
    // Each way a module can hold its run: WASI clocks and poll in host code, and wasm code
    // that never calls out (only the epoch reaches it).
    let ways: [(&str, &[&str]); 5] = [
        ("wait", &["sleep"]),
        ("wait", &["poll"]),
        ("wait", &["instant"]),
        ("wait", &["ready"]),
        ("spin", &[]),
    ];
    for (command, args) in ways {
        let what = format!("{command} {}", args.join(" "));
        let mut argv = vec!["run", "web", command];
        argv.extend_from_slice(args);
        let child = spawn(&tess, &argv);
        let id = started_id(&daemon, command, args.first().copied().unwrap_or(""));
        let sent = Instant::now();
        let out = tess.run_ok(&["cancel", "web", &id[..12]]);
        assert_eq!(out, format!("cancelled {id}\n"), "{what}");
        let (run, _) = ended_within(child, PROMPT);
        let err = stderr(&run);
        assert!(err.contains("3008"), "{what}: {err}");
        let end = daemon.wait_audit(&what, |r| r["phase"] == "end" && r["id"] == id);
        assert_eq!(end["code"], 3008, "{what}: {end}");
        eprintln!("{what}: ended {:?} after the cancel was sent", sent.elapsed());
    }
}

#[test]
fn only_the_client_that_sent_a_request_can_cancel_it() {
    let (daemon, tess, otto) = daemon();
    // 10 ticks 200 ms apart: 2 s.
    let child = spawn(&tess, &["run", "web", "ticker", "10", "200"]);
    let id = started_id(&daemon, "ticker", "10");
    let err = otto.run_err(&["cancel", "web", &id]);
    assert!(
        err.contains("2006") && err.contains("of yours is running"),
        "{err}"
    );
    let (run, _) = ended_within(child, Duration::from_secs(30));
    assert!(run.status.success(), "tess's run went on: {}", stderr(&run));
    assert!(String::from_utf8_lossy(&run.stdout).ends_with("done\n"));
    let refused = daemon.wait_audit("otto's cancel", |r| {
        r["phase"] == "end" && r["command"] == "cancel" && r["client"] == "otto"
    });
    assert_eq!(refused["code"], 2006, "{refused}");
    // Once it ended, nobody can cancel it; and what is not an id is refused as such.
    let err = tess.run_err(&["cancel", "web", &id]);
    assert!(err.contains("2006"), "{err}");
    let err = tess.run_err(&["cancel", "web", "abc"]);
    assert!(err.contains("2005") && err.contains("not a request id"), "{err}");
}

#[test]
fn a_second_ctrl_c_leaves_without_waiting_for_a_host_that_does_not_answer() {
    let (daemon, tess, _) = daemon();
    let child = spawn(&tess, &["run", "web", "wait", "sleep"]);
    started_id(&daemon, "wait", "sleep");
    let signal = |sig: &str, pid: u32| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    // A host that hears nothing more: neither the cancel nor anything else.
    signal("-STOP", daemon.pid());
    signal("-INT", child.id());
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    signal("-INT", child.id());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ended_within(child, PROMPT)));
    signal("-CONT", daemon.pid());
    let (out, _) = result.expect("sesame left at the second Ctrl-C");
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(sent.elapsed() < PROMPT);
    assert!(stderr(&out).contains("Ctrl-C again leaves"), "{}", stderr(&out));
}
