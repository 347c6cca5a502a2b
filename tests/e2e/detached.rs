//! Detached runs through a live daemon over QUIC: `sesame run --detach` returns once the command
//! has started, `sesame result HOST ID` prints what it has written so far and `--follow` until it
//! ends, long after the client that started it has exited; results are the requester's alone,
//! outlive a daemon restart, and a run a restart cut off says so.

use std::time::{Duration, Instant};

use sesame_tests::{Client, Daemon, Setup, module};

use super::{stderr, stdout};

/// A daemon whose `basic` cluster has `ticker` and `wait` under a minute's time limit, with
/// testers `tess` and `otto` enrolled.
fn daemon() -> (Daemon, Client, Client) {
    let clusters = format!(
        "[limits]\ntimeout_ms = 60000\n\n[clusters.basic.commands]\nticker = {:?}\nwait = {:?}\n",
        module("ticker"),
        module("wait"),
    );
    let data = std::fs::read_to_string(sesame_tests::repo_root().join("policies/data.json"))
        .expect("data.json")
        .replace(
            r#""limits": {"timeout_ms": 5000,"#,
            r#""limits": {"timeout_ms": 60000,"#,
        );
    let daemon = Daemon::start(&Setup {
        clusters,
        policy_data: Some(data),
        ..Setup::default()
    });
    let tess = daemon.client("tess", &["testers"]);
    let otto = daemon.client("otto", &["testers"]);
    (daemon, tess, otto)
}

/// `sesame run --detach web ARGS` as `client`: the id it printed, and how long it took.
fn detach(client: &Client, args: &[&str]) -> (String, Duration) {
    let started = Instant::now();
    let mut argv = vec!["run", "--detach", "web"];
    argv.extend_from_slice(args);
    let id = client.run_ok(&argv).trim().to_owned();
    assert_eq!(id.len(), 32, "an id: {id}");
    (id, started.elapsed())
}

#[test]
fn a_detached_run_answers_at_once_and_its_output_is_fetched_after_the_client_has_gone() {
    let (daemon, tess, otto) = daemon();
    // 20 ticks 100 ms apart: 2 s.
    let (id, took) = detach(&tess, &["ticker", "20", "100"]);
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    let detached = daemon.wait_audit("the detached answer", |r| {
        r["phase"] == "detached" && r["id"] == id.as_str()
    });
    assert_eq!(detached["code"], 0, "{detached}");
    // So far: the lines it has written, and a note that it still runs.
    let out = tess.sesame(&["result", "web", &id[..10]]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("still runs"), "{}", stderr(&out));
    let early = stdout(&out);
    assert!(!early.contains("done"), "{early}");
    // To the end: every line once, in order, then the answer; the exit status is the run's.
    let out = tess.sesame(&["result", "web", &id, "--follow"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 21, "{text}");
    for (i, line) in lines[..20].iter().enumerate() {
        assert!(line.starts_with(&format!("tick {i} ")), "{text}");
    }
    assert_eq!(lines[20], "done");
    assert!(text.starts_with(&early), "the first fetch was the start of it");
    // Kept: fetched again, whole; never by another client.
    assert_eq!(tess.run_ok(&["result", "web", &id]), text);
    // (Not a detached run of its own, it is looked for among parked requests, in vain.)
    let err = otto.run_err(&["result", "web", &id]);
    assert!(
        err.contains("no parked request") && !err.contains("tick"),
        "{err}"
    );
    let end = daemon.wait_audit("the run's end", |r| r["phase"] == "end" && r["id"] == id.as_str());
    assert_eq!(end["code"], 0, "{end}");
}

#[test]
fn a_result_longer_than_a_page_is_printed_whole_once_the_run_has_ended() {
    let (daemon, tess, _) = daemon();
    // 400 lines of some 30 bytes printed at once: more than one page (8 KiB) of output.
    let (id, _) = detach(&tess, &["ticker", "400", "0", "stdout"]);
    daemon.wait_audit("its end", |r| r["phase"] == "end" && r["id"] == id.as_str());
    let out = tess.sesame(&["result", "web", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.len() > 8 * 1024, "{} bytes", text.len());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 401, "every line, then the answer");
    assert!(
        lines[399].starts_with("tick 399 ") && lines[400] == "done",
        "{text}"
    );
    assert!(!stderr(&out).contains("still runs"), "{}", stderr(&out));
}

#[test]
fn a_detached_run_is_cancelled_and_its_result_says_so() {
    let (daemon, tess, _) = daemon();
    let (id, _) = detach(&tess, &["wait", "sleep"]);
    daemon.wait_audit("its start", |r| r["phase"] == "start" && r["id"] == id.as_str());
    assert_eq!(tess.run_ok(&["cancel", "web", &id]), format!("cancelled {id}\n"));
    let out = tess.sesame(&["result", "web", &id, "--follow"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("3008"), "{}", stderr(&out));
}

#[test]
fn results_outlive_a_restart_and_a_run_a_restart_cut_off_says_so() {
    let (mut daemon, tess, _) = daemon();
    let (done, _) = detach(&tess, &["ticker", "2", "10"]);
    daemon.wait_audit("the first run's end", |r| {
        r["phase"] == "end" && r["id"] == done.as_str()
    });
    let (cut, _) = detach(&tess, &["wait", "sleep"]);
    daemon.wait_audit("the second run's start", |r| {
        r["phase"] == "start" && r["id"] == cut.as_str()
    });
    daemon.restart();
    tess.pin(&daemon, "web2");
    let out = tess.run_ok(&["result", "web2", &done]);
    assert!(out.starts_with("tick 0 ") && out.ends_with("done\n"), "{out}");
    let err = tess.run_err(&["result", "web2", &cut]);
    assert!(err.contains("9999") && err.contains("interrupted"), "{err}");
}

#[test]
fn a_stopping_daemon_lets_a_detached_run_finish_within_its_drain_time() {
    let (mut daemon, tess, _) = daemon();
    // 40 ticks 100 ms apart: 4 s, well within the 30 s drain, and longer than the transports
    // take to stop.
    let (id, _) = detach(&tess, &["ticker", "40", "100"]);
    daemon.wait_audit("its start", |r| r["phase"] == "start" && r["id"] == id.as_str());
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
    let end = daemon.wait_audit("its end, before the daemon stopped", |r| {
        r["phase"] == "end" && r["id"] == id.as_str()
    });
    assert_eq!(end["code"], 0, "{end}");
    daemon.restart();
    tess.pin(&daemon, "web2");
    let out = tess.run_ok(&["result", "web2", &id]);
    assert!(out.starts_with("tick 0 ") && out.ends_with("done\n"), "{out}");
}
