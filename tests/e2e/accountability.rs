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
