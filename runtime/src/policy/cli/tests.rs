use std::fs;
use std::path::{Path, PathBuf};

use clap::Parser;

use super::{PolicyCommand, Status};

/// What `sesamed policy ...` mounts: the lead's binary wraps [`PolicyCommand`] the same way.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: PolicyCommand,
}

/// Runs `sesamed policy ARGS...`; returns (status, stdout, stderr).
fn run(args: &[&str]) -> (Status, String, String) {
    let cli = Cli::try_parse_from(std::iter::once("policy").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = cli.command.run_to(&mut out, &mut err);
    let text = |bytes| String::from_utf8(bytes).expect("utf-8 output");
    (status, text(out), text(err))
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn default_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// A temporary directory holding `files`.
fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, contents) in files {
        fs::write(dir.path().join(name), contents).expect("write");
    }
    dir
}

const POLICY: &str = "package sesame

decision := {\"allow\": allow, \"reasons\": [\"because\"]}

default allow := false

allow if input.client.name == \"alice\"
";

const PASSING_TESTS: &str = "package sesame_test

import data.sesame

test_alice if sesame.decision.allow with input as {\"client\": {\"name\": \"alice\"}}

test_bob if not sesame.decision.allow with input as {\"client\": {\"name\": \"bob\"}}
";

#[test]
fn passing_tests_print_pass_lines_and_summary() {
    let dir = dir_with(&[("p.rego", POLICY), ("p_test.rego", PASSING_TESTS)]);
    let (status, out, err) = run(&["test", path(dir.path())]);
    assert_eq!(status, Status::Success, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let file = dir.path().join("p_test.rego");
    assert!(
        lines[0].starts_with(&format!(
            "PASS data.sesame_test.test_alice ({}:5) ",
            file.display()
        )),
        "{out}"
    );
    assert!(lines[0].ends_with("us"), "{out}");
    assert_eq!(lines[2], "2 passed, 0 failed");
}

#[test]
fn failing_test_reports_fail_with_file_line_prints_and_exit_1() {
    let tests = "package t_test\n\ntest_ok if true\n\ntest_bad if {\n\tprint(\"looking\")\n\t1 == 2\n}\n\ntest_err if 1 / 0\n";
    let dir = dir_with(&[("t_test.rego", tests)]);
    let (status, out, _) = run(&["test", path(dir.path())]);
    assert_eq!(status, Status::Failure);
    assert_eq!(status.code(), 1);
    let file = dir.path().join("t_test.rego");
    let fail = format!("FAIL data.t_test.test_bad ({}:5) ", file.display());
    let at = out.find(&fail).unwrap_or_else(|| panic!("{fail} not in {out}"));
    let after: Vec<&str> = out[at..].lines().skip(1).take(2).collect();
    assert!(
        after[0].starts_with("    ") && after[0].contains("looking"),
        "{out}"
    );
    assert!(after[1].starts_with("    error: "), "{out}");
    assert!(out.contains(&format!("FAIL data.t_test.test_err ({}:10) ", file.display())));
    assert!(
        out.lines()
            .any(|l| l.starts_with("    error: ") && l.contains("zero")),
        "{out}"
    );
    assert_eq!(out.lines().last(), Some("1 passed, 2 failed"));
}

#[test]
fn coverage_is_printed_and_threshold_enforced() {
    // p.rego is covered by the one test; no test touches q.rego, so all its code is uncovered.
    let tests = "package sesame_test\n\nimport data.sesame\n\ntest_bob if not sesame.decision.allow with input as {\"client\": {\"name\": \"bob\"}}\n";
    let untested = "package other\n\nunused_rule if {\n\tinput.x == 1\n}\n";
    let dir = dir_with(&[("p.rego", POLICY), ("q.rego", untested), ("p_test.rego", tests)]);
    let (status, out, err) = run(&["test", "--coverage", path(dir.path())]);
    assert_eq!(status, Status::Success, "{out}{err}");
    let q = format!(
        "  {} 0.0% (0/2 lines) not covered: 3-4",
        dir.path().join("q.rego").display()
    );
    assert!(out.lines().any(|l| l == q), "{q:?} not in\n{out}");
    assert!(out.lines().any(|l| l.starts_with("  total ")), "{out}");

    let (status, _, err) = run(&["test", "--threshold", "100", path(dir.path())]);
    assert_eq!(status, Status::Failure);
    assert!(err.contains("below the threshold 100%"), "{err}");
    let (status, _, _) = run(&["test", "--threshold", "10", path(dir.path())]);
    assert_eq!(status, Status::Success);
}

#[test]
fn json_format_parses_and_carries_tests_coverage_summary() {
    let dir = dir_with(&[("p.rego", POLICY), ("p_test.rego", PASSING_TESTS)]);
    let (status, out, _) = run(&["test", "--format", "json", path(dir.path())]);
    assert_eq!(status, Status::Success);
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(json["summary"]["passed"], 2);
    assert_eq!(json["summary"]["failed"], 0);
    assert_eq!(json["tests"][0]["name"], "data.sesame_test.test_alice");
    assert_eq!(json["tests"][0]["line"], 5);
    assert_eq!(json["coverage"]["files"][0]["not_covered"], serde_json::json!([]));
    assert_eq!(json["coverage"]["percent"], 100.0);
}

#[test]
fn load_error_and_missing_tests() {
    let broken = dir_with(&[("p.rego", "package sesame\n\nx := {\n")]);
    let (status, _, err) = run(&["test", path(broken.path())]);
    assert_eq!(status, Status::Error);
    assert!(err.contains("p.rego:"), "{err}");
    let no_tests = dir_with(&[("p.rego", POLICY)]);
    let (status, out, err) = run(&["test", path(no_tests.path())]);
    assert_eq!(status, Status::Failure);
    assert_eq!(out.trim(), "0 passed, 0 failed");
    assert!(err.contains("no test_* rules"), "{err}");
    assert!(Cli::try_parse_from(["policy", "test", "--threshold", "101"]).is_err());
}

#[test]
fn the_default_policy_set_passes_with_full_coverage() {
    let (status, out, err) = run(&[
        "test",
        "--coverage",
        "--threshold",
        "100",
        path(&default_policies()),
    ]);
    assert_eq!(status, Status::Success, "{out}{err}");
    assert!(out.contains("  total 100.0%"), "{out}");
}

const INPUT: &str = r#"{
  "client": {"name": "alice", "key": "k", "groups": ["users"]},
  "request": {"id": "00", "cluster": "basic", "command": "echo", "args": ["hi"],
              "transport": "quic", "source_ip": "192.0.2.7"},
  "host": {"name": "h1", "labels": {}},
  "module": {"name": "echo", "digest": "sha256:00", "imports": []},
  "now_ns": 0
}"#;

#[test]
fn eval_prints_decision_reasons_grant_and_limits() {
    let dir = dir_with(&[("input.json", INPUT)]);
    let input = dir.path().join("input.json");
    let (status, out, err) = run(&[
        "eval",
        "--input",
        path(&input),
        "--dir",
        path(&default_policies()),
    ]);
    assert_eq!(status, Status::Success, "{out}{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json["decision"], "allow");
    assert_eq!(json["reasons"][0], "group users may run basic::echo");
    assert_eq!(json["limits"]["timeout_ms"], 5000);
    assert_eq!(json["grant"]["firewall"]["ports"], serde_json::json!([]));
    // Every capability's part, as the daemon reads it.
    assert_eq!(json["grant"]["exec"]["programs"], serde_json::json!({}));
    assert_eq!(json["grant"]["hostkeys"]["list"], false);
    assert_eq!(json["value"]["allow"], true);
    assert!(json.get("explain").is_none());

    let denied = INPUT.replace("\"echo\", \"args\"", "\"rm\", \"args\"");
    fs::write(&input, denied).expect("write");
    let (status, out, _) = run(&[
        "eval",
        "--input",
        path(&input),
        "--dir",
        path(&default_policies()),
    ]);
    assert_eq!(status, Status::Failure);
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json["decision"], "deny");
    assert_eq!(
        json["reasons"][0],
        "no group of client alice (users) grants basic::rm"
    );
}

#[test]
fn eval_explain_lists_rules_with_values_and_executed_lines() {
    let dir = dir_with(&[("input.json", INPUT)]);
    let input = dir.path().join("input.json");
    let policies = default_policies();
    let (status, out, _) = run(&[
        "eval",
        "--explain",
        "--input",
        path(&input),
        "--dir",
        path(&policies),
    ]);
    assert_eq!(status, Status::Success);
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let rules = json["explain"]["rules"].as_array().expect("rules");
    let allow = rules
        .iter()
        .find(|r| r["rule"] == "data.sesame.allow")
        .expect("allow fired");
    assert_eq!(allow["value"], true);
    let at = allow["at"].as_str().expect("at");
    assert!(at.starts_with(path(&policies.join("sesame.rego"))), "{at}");
    assert!(
        rules.iter().all(|r| r["rule"] != "data.sesame.matches"),
        "functions are not listed: {rules:?}"
    );
    let lines = json["explain"]["lines"].as_array().expect("lines");
    assert!(
        lines.iter().any(|l| l["code"] == "count(granting_groups) > 0"),
        "{lines:?}"
    );
}

#[test]
fn eval_refuses_a_malformed_input() {
    let dir = dir_with(&[("input.json", r#"{"client": {"name": "a"}}"#)]);
    let (status, _, err) = run(&[
        "eval",
        "--input",
        path(&dir.path().join("input.json")),
        "--dir",
        path(&default_policies()),
    ]);
    assert_eq!(status, Status::Error);
    assert!(err.contains("not a policy input"), "{err}");
}

#[test]
fn check_reports_syntax_errors_as_file_line_col() {
    let dir = dir_with(&[
        ("p.rego", POLICY),
        ("p_test.rego", "package sesame_test\n\ntest_x if {\n\t1 ==\n"),
    ]);
    let (status, _, err) = run(&["check", path(dir.path())]);
    assert_eq!(status, Status::Error);
    let prefix = format!("{}:", dir.path().join("p_test.rego").display());
    let line = err
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{err}"));
    let rest: Vec<&str> = line[prefix.len()..].splitn(3, ':').collect();
    assert!(
        rest[0].parse::<u32>().is_ok() && rest[1].parse::<u32>().is_ok(),
        "{line}"
    );
    assert!(!rest[2].trim().is_empty(), "{line}");
}

#[test]
fn check_warns_about_unreferenced_rules() {
    let extra =
        "package sesame\n\n# nothing uses this\nforgotten if input.x\n\nused if true\n\nalso := used\n";
    let dir = dir_with(&[("p.rego", POLICY), ("q.rego", extra)]);
    let (status, out, err) = run(&["check", path(dir.path())]);
    assert_eq!(status, Status::Success, "{err}");
    let q = dir.path().join("q.rego");
    let warnings: Vec<&str> = err.lines().collect();
    assert_eq!(
        warnings,
        [
            format!("warning: {}:4: rule forgotten is never referenced", q.display()),
            format!("warning: {}:8: rule also is never referenced", q.display()),
        ]
    );
    assert!(out.contains("OK (2 warnings)"), "{out}");
}

#[test]
fn check_reports_a_missing_decision_and_bad_data() {
    let dir = dir_with(&[("p.rego", "package other\n\nx := 1\n")]);
    let (status, _, err) = run(&["check", path(dir.path())]);
    assert_eq!(status, Status::Error);
    assert!(err.contains("no policy defines data.sesame.decision"), "{err}");
    let dir = dir_with(&[("p.rego", POLICY), ("data.json", "[1]")]);
    let (status, _, err) = run(&["check", path(dir.path())]);
    assert_eq!(status, Status::Error);
    assert!(
        err.contains("data.json: a data file must hold a JSON object"),
        "{err}"
    );
}

#[test]
fn check_passes_the_default_policy_set_without_warnings() {
    let (status, out, err) = run(&["check", path(&default_policies())]);
    assert_eq!(status, Status::Success, "{err}");
    assert!(err.is_empty(), "{err}");
    assert!(out.contains("OK (0 warnings)"), "{out}");
    assert!(out.contains("\ndecisions are cached (up to 4096)"), "{out}");
    for example in fs::read_dir(default_policies().join("examples")).expect("examples") {
        let example = example.expect("entry").path();
        let (status, out, err) = run(&["check", path(&example)]);
        assert_eq!(status, Status::Success, "{}: {err}", example.display());
        assert!(err.is_empty(), "{}: {err}", example.display());
        if example.ends_with("office-hours") {
            // reads the clock, so every decision is evaluated
            assert!(
                out.contains("\ndecisions are not cached: policy.rego:20: reads input.now_ns"),
                "{out}"
            );
        }
    }
}

#[test]
fn ranges_collapse_runs() {
    let lines = [1, 3, 4, 5, 9].into_iter().collect();
    assert_eq!(super::ranges(&lines), "1, 3-5, 9");
}
