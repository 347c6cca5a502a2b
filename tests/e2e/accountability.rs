//! What security teams ask of an access tool first: a reason on every request, two-person
//! approval, receipts. Each through a live daemon and the real client.

use sesame_tests::{Daemon, Setup};

use crate::stderr;

/// The stock policy with `basic` wanting a reason, and a `tickets` cluster (echo again) wanting
/// a ticket id.
fn daemon_wanting_reasons() -> Daemon {
    let data = std::fs::read_to_string(sesame_tests::repo_root().join("policies/data.json"))
        .expect("data.json")
        .replace(
            r#""clusters": {"#,
            r#""clusters": {
      "basic": {"reason": {"required": true}},
      "tickets": {"reason": {"pattern": "^OPS-[0-9]+ ", "example": "OPS-1234 why"}},"#,
        )
        .replace(r#""users": {"#, r#""users": {"tickets": ["echo"], "#);
    let clusters = format!(
        "{}\n[clusters.tickets.commands]\necho = {:?}\n",
        Setup::default().clusters,
        sesame_tests::module("echo")
    );
    Daemon::start(&Setup {
        clusters,
        policy_data: Some(data),
        ..Setup::default()
    })
}

#[test]
fn a_required_reason_is_asked_for_sealed_judged_and_kept() {
    let daemon = daemon_wanting_reasons();
    let alice = daemon.client("alice", &["users"]);

    // Without one: 1010, saying what is missing and how to give it; nothing ran.
    let err = alice.run_err(&["run", "web", "basic::echo", "hi"]);
    assert!(
        err.contains("error 1010")
            && err.contains("basic::echo needs a reason")
            && err.contains(r#"--reason "INC-1234: why this is needed""#)
            && err.contains("hint: say why with `sesame run --reason TEXT`"),
        "{err}"
    );
    // A reason of the wrong shape: the pattern and an example.
    let err = alice.run_err(&["run", "--reason", "because", "web", "tickets::echo", "x"]);
    assert!(
        err.contains("error 1010")
            && err.contains("needs a reason matching ^OPS-[0-9]+ ")
            && err.contains(r#"got "because""#),
        "{err}"
    );
    // A reason the protocol refuses is refused before sending (exit 2), not by the host.
    let out = alice.sesame(&["run", "--reason", "two\nlines", "web", "basic::echo", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("reason contains a control character"),
        "{}",
        stderr(&out)
    );

    // With one, it runs, on one host and in fan-out alike.
    let out = alice.run_ok(&[
        "run",
        "--reason",
        "INC-42 checking the echo",
        "web",
        "basic::echo",
        "hi",
    ]);
    assert_eq!(out.trim(), "hi");
    let out = alice.run_ok(&[
        "run",
        "--reason",
        "OPS-7 fleet check",
        "--hosts",
        "web",
        "tickets::echo",
        "x",
    ]);
    assert!(out.contains("x"), "{out}");

    // The audit log keeps the reason of every request, run or denied; so does the decision log.
    let audit = daemon.audit();
    let ends: Vec<_> = audit
        .iter()
        .filter(|r| r["event"] == "request" && r["phase"] == "end")
        .collect();
    let reasons: Vec<_> = ends
        .iter()
        .map(|r| (r["code"].as_u64(), r["reason"].as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            (Some(1010), None),
            (Some(1010), Some("because")),
            (Some(0), Some("INC-42 checking the echo")),
            (Some(0), Some("OPS-7 fleet check")),
        ],
        "{ends:#?}"
    );
    let decisions =
        std::fs::read_to_string(daemon.dir.path().join("state/decisions.jsonl")).expect("decision log");
    assert!(
        decisions.contains(r#""reason":"INC-42 checking the echo""#),
        "{decisions}"
    );
    // And `audit tail` shows it.
    let out = daemon.sesamed(&["audit", "tail", "--client", "alice", "-n", "1"]);
    let text = crate::stdout(&out);
    assert!(
        text.contains(r#"tickets::echo x because "OPS-7 fleet check" -> ok"#),
        "{text}"
    );
}

/// The stock policy with `basic` and `testing` asking for `approvals` (a JSON object), and a
/// `security` group with nothing else to run.
fn daemon_wanting_approvals(approvals: &str) -> Daemon {
    let data = std::fs::read_to_string(sesame_tests::repo_root().join("policies/data.json"))
        .expect("data.json")
        .replace(
            r#""clusters": {"#,
            &format!(
                r#""clusters": {{
      "basic": {{"approvals": {approvals}}},"#
            ),
        )
        .replace(
            r#""limits": {"timeout_ms": 1000}"#,
            &format!(r#""approvals": {approvals}, "limits": {{"timeout_ms": 20000}}"#),
        )
        .replace(
            r#""groups": {"#,
            r#""groups": {
      "security": {},"#,
        );
    Daemon::start(&Setup {
        policy_data: Some(data),
        ..Setup::default()
    })
}

/// The id `sesame run --no-wait` printed for a parked request.
fn park(client: &sesame_tests::Client, args: &[&str]) -> String {
    let mut argv = vec!["run", "--no-wait"];
    argv.extend(args);
    let out = client.sesame(&argv);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("parked until"), "{}", stderr(&out));
    let id = crate::stdout(&out).trim().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    id
}

fn approval_steps(daemon: &Daemon, id: &str) -> Vec<(String, Option<String>)> {
    daemon
        .audit()
        .iter()
        .filter(|r| r["event"] == "approval" && r["id"] == id)
        .map(|r| {
            (
                r["action"].as_str().unwrap_or_default().to_owned(),
                r["by"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[test]
fn a_second_client_approves_and_the_first_gets_the_answer() {
    let daemon = daemon_wanting_approvals(r#"{"count": 1, "groups": ["security"], "ttl_s": 600}"#);
    let olga = daemon.client("olga", &["users"]);
    let sam = daemon.client("sam", &["security"]);
    let mallory = daemon.client("mallory", &["users"]);

    let id = park(
        &olga,
        &["--reason", "OPS-9 say hi", "web", "basic::echo", "hello"],
    );
    // Nothing ran: no start record for it yet.
    assert!(
        !daemon
            .audit()
            .iter()
            .any(|r| r["event"] == "request" && r["id"] == id.as_str() && r["phase"] == "start"),
        "it ran before approval"
    );
    // Only an approver sees it, with who asked, what and why.
    let list = sam.run_ok(&["pending", "web"]);
    assert!(
        list.contains(&id)
            && list.contains("olga")
            && list.contains("basic::echo hello")
            && list.contains("OPS-9 say hi")
            && list.contains("0/1"),
        "{list}"
    );
    let out = mallory.sesame(&["pending", "web"]);
    assert!(
        out.status.success() && crate::stdout(&out).is_empty(),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("nothing waits for your approval"),
        "{}",
        stderr(&out)
    );
    // The requester never approves its own request; someone outside the groups cannot see it.
    let err = olga.run_err(&["approve", "web", &id]);
    assert!(
        err.contains("error 1010") && err.contains("someone else must approve it"),
        "{err}"
    );
    let err = mallory.run_err(&["approve", "web", &id[..8]]);
    assert!(
        err.contains("error 2005") && err.contains("no parked request"),
        "{err}"
    );
    // Still waiting.
    let err = olga.run_err(&["result", "web", &id]);
    assert!(err.contains("error 1020") && err.contains("0 of 1"), "{err}");

    // An approver, by a prefix of the id: it runs, for olga.
    let out = sam.run_ok(&["approve", "--reason", "looks fine", "web", &id[..12]]);
    assert!(
        out.contains(&format!("approved {id} (1 of 1): it ran for olga: ok")),
        "{out}"
    );
    let out = olga.run_ok(&["result", "web", &id]);
    assert_eq!(out.trim(), "hello");
    // Once is enough: it does not run again.
    let err = sam.run_err(&["approve", "web", &id]);
    assert!(
        err.contains("no longer waiting") && err.contains("approved and ran"),
        "{err}"
    );

    // Every step is on record: requested, approved by sam, the run with who approved it.
    assert_eq!(
        approval_steps(&daemon, &id),
        [
            ("requested".to_owned(), None),
            ("approved".to_owned(), Some("sam".to_owned()))
        ]
    );
    let runs: Vec<_> = daemon
        .audit()
        .into_iter()
        .filter(|r| r["event"] == "request" && r["id"] == id.as_str())
        .collect();
    let phases: Vec<_> = runs
        .iter()
        .map(|r| (r["phase"].as_str(), r["code"].as_u64()))
        .collect();
    assert_eq!(
        phases,
        [
            (Some("end"), Some(1020)),
            (Some("start"), Some(0)),
            (Some("end"), Some(0))
        ],
        "{runs:#?}"
    );
    assert_eq!(runs[2]["approved_by"], serde_json::json!(["sam"]));
    assert_eq!(runs[2]["reason"], "OPS-9 say hi");
    // `sesamed module run` says the daemon would park it.
    let echo = sesame_tests::module("echo");
    let config = daemon.config.to_str().expect("utf-8").to_owned();
    let out = sesame_tests::sesamed(
        &[
            "module",
            "run",
            echo.to_str().expect("utf-8"),
            "--as",
            "olga",
            "--config",
            &config,
            "--",
            "x",
        ],
        &[],
    );
    let text = crate::stdout(&out);
    assert!(
        text.contains("approvals: 1 from group security within 600 s (the daemon parks the request"),
        "{text}{}",
        stderr(&out)
    );

    // A client enrolled again under olga's name holds nothing of hers.
    daemon.remove("olga");
    let new_olga = daemon.client("olga", &["users"]);
    let err = new_olga.run_err(&["result", "web", &id]);
    assert!(
        err.contains("error 2005") && err.contains("no parked request"),
        "{err}"
    );
    let tail = crate::stdout(&daemon.sesamed(&["audit", "tail", "--client", "olga", "-n", "20"]));
    assert!(
        tail.contains("basic::echo hello because \"OPS-9 say hi\" -> approved by sam (1 of 1 approvals)")
            && tail.contains("[approved by sam]"),
        "{tail}"
    );
}

#[test]
fn sesame_run_waits_for_the_approval_and_prints_the_answer() {
    let daemon = daemon_wanting_approvals(r#"{"count": 2, "groups": ["security"]}"#);
    let olga = daemon.client("olga", &["users"]);
    let sam = daemon.client("sam", &["security"]);
    let tess = daemon.client("tess", &["security"]);

    let waiting = std::thread::scope(|s| {
        let run = s.spawn(|| olga.sesame(&["run", "web", "basic::echo", "waited"]));
        let id = loop {
            let list = sam.run_ok(&["pending", "web", "--json"]);
            let list: serde_json::Value = serde_json::from_str(&list).expect("json");
            if let Some(first) = list.as_array().and_then(|l| l.first()) {
                break first["id"].as_str().expect("id").to_owned();
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let out = sam.run_ok(&["approve", "web", &id]);
        assert!(out.contains("(1 of 2): waiting for 1 more"), "{out}");
        // The same approver counts once.
        let err = sam.run_err(&["approve", "web", &id]);
        assert!(err.contains("you approved") && err.contains("1 of 2"), "{err}");
        let out = tess.run_ok(&["approve", "web", &id]);
        assert!(out.contains("(2 of 2): it ran for olga: ok"), "{out}");
        run.join().expect("the waiting client")
    });
    assert!(waiting.status.success(), "{}", stderr(&waiting));
    assert_eq!(crate::stdout(&waiting).trim(), "waited");
    assert!(
        stderr(&waiting).contains("waiting for approval (0 of 2"),
        "{}",
        stderr(&waiting)
    );
}

#[test]
fn a_rejected_or_expired_request_never_runs_and_says_why() {
    let daemon = daemon_wanting_approvals(r#"{"count": 1, "groups": ["security"], "ttl_s": 2}"#);
    let olga = daemon.client("olga", &["users"]);
    let sam = daemon.client("sam", &["security"]);

    let rejected = park(&olga, &["web", "basic::echo", "no"]);
    let out = sam.run_ok(&["reject", "--reason", "not during the freeze", "web", &rejected]);
    assert!(out.contains(&format!("rejected {rejected}")), "{out}");
    let err = olga.run_err(&["result", "web", &rejected]);
    assert!(
        err.contains("error 1021") && err.contains("sam rejected it: not during the freeze"),
        "{err}"
    );
    let err = sam.run_err(&["approve", "web", &rejected]);
    assert!(err.contains("sam rejected it"), "{err}");

    let withdrawn = park(&olga, &["web", "basic::echo", "oops"]);
    olga.run_ok(&["reject", "web", &withdrawn]);
    let err = olga.run_err(&["result", "web", &withdrawn]);
    assert!(err.contains("olga withdrew it"), "{err}");

    let expired = park(&olga, &["web", "basic::echo", "late"]);
    daemon.wait_audit("the expiry", |r| {
        r["event"] == "approval" && r["id"] == expired.as_str() && r["action"] == "expired"
    });
    let err = olga.run_err(&["result", "web", &expired]);
    assert!(
        err.contains("error 1021") && err.contains("expired unapproved"),
        "{err}"
    );
    let err = sam.run_err(&["approve", "web", &expired]);
    assert!(err.contains("no longer waiting"), "{err}");

    for id in [&rejected, &withdrawn, &expired] {
        assert!(
            !daemon
                .audit()
                .iter()
                .any(|r| r["event"] == "request" && r["id"] == id.as_str() && r["phase"] == "start"),
            "{id} ran"
        );
    }
    assert_eq!(
        approval_steps(&daemon, &rejected),
        [
            ("requested".to_owned(), None),
            ("rejected".to_owned(), Some("sam".to_owned()))
        ]
    );
    assert_eq!(approval_steps(&daemon, &withdrawn)[1].0, "withdrawn");
    assert_eq!(approval_steps(&daemon, &expired)[1].0, "expired");
}

#[test]
fn a_parked_request_survives_a_restart_and_a_run_cut_off_is_not_run_again() {
    let mut daemon = daemon_wanting_approvals(r#"{"count": 1, "groups": ["security"]}"#);
    let olga = daemon.client("olga", &["users", "testers"]);
    let sam = daemon.client("sam", &["security"]);

    let waiting = park(&olga, &["web", "basic::echo", "after the restart"]);
    let spinning = park(&olga, &["web", "testing::spin"]);
    // The spin runs until its time limit: approve it, and kill the daemon while it runs.
    std::thread::scope(|s| {
        let approving = s.spawn(|| sam.sesame(&["approve", "--timeout", "3", "web", &spinning]));
        daemon.wait_audit("the approved run's start", |r| {
            r["event"] == "request" && r["id"] == spinning.as_str() && r["phase"] == "start"
        });
        daemon.kill_hard();
        let out = approving.join().expect("approver");
        assert!(!out.status.success(), "the daemon died under it");
    });
    daemon.restart();
    olga.pin(&daemon, "web2");
    sam.pin(&daemon, "web2");

    // The one cut off is interrupted, on record, and never runs again.
    let err = olga.run_err(&["result", "web2", &spinning]);
    assert!(
        err.contains("error 9999") && err.contains("not run again"),
        "{err}"
    );
    assert_eq!(
        approval_steps(&daemon, &spinning).last().map(|s| s.0.as_str()),
        Some("interrupted")
    );
    let starts = daemon
        .audit()
        .iter()
        .filter(|r| r["event"] == "request" && r["id"] == spinning.as_str() && r["phase"] == "start")
        .count();
    assert_eq!(starts, 1);

    // The waiting one is still there, and runs once approved.
    let list = sam.run_ok(&["pending", "web2"]);
    assert!(list.contains(&waiting) && !list.contains(&spinning), "{list}");
    let out = sam.run_ok(&["approve", "web2", &waiting]);
    assert!(out.contains("it ran for olga: ok"), "{out}");
    assert_eq!(
        olga.run_ok(&["result", "web2", &waiting]).trim(),
        "after the restart"
    );
}
