//! Hostile policies against a running daemon: a reload that would make it recurse, nest too deep
//! or parse for hours is rejected while the old revision keeps serving; a decision that outruns
//! its time limit in one builtin is denied at the limit. (Every kind of hostile policy, with its
//! exact outcome, is in `runtime/src/policy/hostile.rs`.)

use std::time::{Duration, Instant};

use sesame_tests::daemon_with_client;

use super::{stderr, stdout};

#[test]
fn a_reload_with_a_recursive_or_too_deep_policy_is_rejected_and_the_daemon_keeps_serving() {
    let (mut daemon, alice) = daemon_with_client("alice", &["users"]);
    assert_eq!(alice.run_ok(&["run", "web", "echo", "before"]), "before\n");
    let policies = daemon.dir.path().join("policies");
    let chain: String = (0..1000)
        .map(|i| format!("f{i}(x) := f{}(x)\n", i + 1))
        .chain(["f1000(x) := x\n".to_owned()])
        .collect();
    let bad = [
        (
            "recursive.rego",
            "package sesame\n\nloop(x) := y if y := loop(x)\n".to_owned(),
            "recursive.rego:3: data.sesame.loop is recursive: data.sesame.loop (recursive.rego:3) -> data.sesame.loop",
        ),
        (
            "chain.rego",
            format!("package chain\n{chain}"),
            "chain.rego:2: data.chain.f0 may nest evaluation 3002 levels deep, more than the 1000 a policy may",
        ),
        (
            "nested.rego",
            format!(
                "package nested\nv := {}1{}\n",
                "g(".repeat(10_000),
                ")".repeat(10_000)
            ),
            "nested.rego:2: brackets nested 17 deep, more than the 16 a policy may nest",
        ),
    ];
    for (name, contents, error) in bad {
        std::fs::write(policies.join(name), contents).expect("write");
        let rec = daemon.wait_audit(name, |r| {
            r["event"] == "policy-reloaded" && r["error"].as_str().is_some_and(|e| e.contains(error))
        });
        assert_eq!(rec["revision"], rec["previous"], "{rec}");
        let out = alice.sesame(&["run", "web", "echo", "still"]);
        assert_eq!(
            stdout(&out),
            "still\n",
            "the old policy keeps serving: {}",
            stderr(&out)
        );
        std::fs::remove_file(policies.join(name)).expect("rm");
    }
    assert!(daemon.is_running());
}

#[test]
fn a_decision_that_outruns_its_time_limit_in_one_builtin_is_denied_at_the_limit() {
    let (mut daemon, alice) = daemon_with_client("alice", &["users"]);
    // Two values of 2^32 leaves each, built by sharing in 64 cheap steps: comparing them is one
    // step for regorus, and would take minutes.
    let doubled = |name: &str| {
        let mut rules = vec![format!("{name}0 := [\"x\"]")];
        rules.extend((0..32).map(|i| format!("{name}{} := [{name}{i}, {name}{i}]", i + 1)));
        rules.join("\n")
    };
    let policy = format!(
        "package sesame\n\n{}\n{}\n\
         decision := {{\"allow\": true, \"reasons\": [\"fast\"]}} if input.request.args[0] != \"slow\"\n\
         decision := {{\"allow\": true, \"reasons\": [\"slow\"]}} if {{\n    input.request.args[0] == \"slow\"\n    a32 != b32\n}}\n",
        doubled("a"),
        doubled("b")
    );
    let policies = daemon.dir.path().join("policies");
    std::fs::write(policies.join("sesame.rego"), policy).expect("write");
    daemon.wait_audit("reload", |r| {
        r["event"] == "policy-reloaded" && r["error"].is_null() && r["revision"] != r["previous"]
    });
    assert_eq!(alice.run_ok(&["run", "web", "echo", "fast"]), "fast\n");

    let started = Instant::now();
    let err = alice.run_err(&["run", "web", "echo", "slow"]);
    let took = started.elapsed();
    assert!(
        err.contains("error 1010") && err.contains("policy evaluation exceeded its time limit (250 ms)"),
        "{err}"
    );
    // The whole client run, with a new connection: far below the minutes the comparison takes.
    assert!(took < Duration::from_secs(5), "denied after {took:?}");
    let rec = daemon.wait_audit("slow", |r| r["phase"] == "end" && r["code"] == 1010);
    assert_eq!(
        rec["reasons"],
        serde_json::json!(["policy evaluation exceeded its time limit (250 ms)"])
    );
    // The daemon keeps serving, the comparison still running on a policy thread.
    assert_eq!(alice.run_ok(&["run", "web", "echo", "after"]), "after\n");
    assert!(daemon.is_running());
}
