//! Declared programs (`[exec.programs.NAME]`) through a live daemon and the stock `exec` module:
//! real programs run, parameters typed and narrowed by the grant, secrets kept out of argv and
//! every record, the time limit killing what a program started.
//!
//! The programs run as the account running the tests (the daemon may only drop privileges as
//! root); the system tests run them as `nobody` in the private namespace.

use std::time::{Duration, Instant};

use sesame_tests::{Daemon, Setup, module};

use super::stderr;

/// The account the tests run as, by name (a program must name its account).
fn me() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("id -un");
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

/// Whether a process whose command line holds `marker` is running on this machine.
fn running(marker: &str) -> bool {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .any(|cmd| String::from_utf8_lossy(&cmd).contains(marker))
}

fn setup() -> Setup {
    let exec = module("exec");
    let user = me();
    let clusters = format!(
        r#"[limits]
timeout_ms = 60000

[clusters.ops]
capabilities = ["exec"]
[clusters.ops.commands]
say = {exec:?}
cat-token = {exec:?}
linger = {exec:?}
show-env = {exec:?}
detach = {exec:?}
count = {exec:?}
deploy = {exec:?}

[exec.programs.deploy]
path = "/bin/sh"
args = ["-c", "sleep 30.6161 & sleep 30.6161"]
user = "{user}"
timeout_s = 60

[exec.programs.count]
path = "/bin/sh"
args = ["-c", "for i in 1 2 3; do echo line $i; echo warn $i >&2; sleep 0.4; done"]
user = "{user}"
timeout_s = 5

[exec.programs.detach]
path = "/bin/sh"
args = ["-c", "sleep 30.5151 & echo started"]
user = "{user}"
timeout_s = 5

[exec.programs.say]
path = "/bin/echo"
args = ["{{word}}", "n={{n}}"]
user = "{user}"
[exec.programs.say.params.word]
type = "enum"
values = ["hello", "world"]
[exec.programs.say.params.n]
type = "int"
min = 1
max = 10

[exec.programs.cat-token]
path = "/bin/cat"
user = "{user}"
[exec.programs.cat-token.params.token]
type = "string"
pattern = "[A-Za-z0-9]+"
max_len = 64
secret = "stdin"

[exec.programs.linger]
path = "/bin/sh"
args = ["-c", "sleep 30.4242 & sleep 30.4242"]
user = "{user}"
timeout_s = 1

[exec.programs.show-env]
path = "/usr/bin/env"
user = "{user}"
env = {{ GREETING = "hi" }}
[exec.programs.show-env.params.key]
type = "string"
pattern = "[a-z]+"
max_len = 16
secret = {{ env = "API_KEY" }}
"#
    );
    let data = std::fs::read_to_string(sesame_tests::repo_root().join("policies/data.json"))
        .expect("data.json")
        .replace(
            r#""ops": ["restart-app", "disk-usage"]"#,
            r#""ops": ["say", "cat-token", "linger", "show-env", "detach", "count", "deploy"]"#,
        )
        .replace(
            r#""exec": {"programs": {"restart-app": {"unit": ["web", "worker"]}, "disk-usage": {}}}"#,
            r#""exec": {"programs": {"say": {"word": ["hello"]}, "cat-token": {}, "linger": {}, "show-env": {}, "detach": {}, "count": {}, "deploy": {}}}, "limits": {"timeout_ms": 60000}"#,
        );
    Setup {
        clusters: clusters + &Setup::default().clusters,
        policy_data: Some(data),
        ..Setup::default()
    }
}

#[test]
fn a_declared_program_runs_with_typed_parameters_and_is_audited() {
    let daemon = Daemon::start(&setup());
    let olga = daemon.client("olga", &["operators"]);
    assert_eq!(
        olga.run_ok(&["run", "web", "say", "word=hello", "n=3"]),
        "hello n=3\n"
    );
    let rec = daemon.wait_audit("the say run", |r| {
        r["event"] == "request" && r["phase"] == "end" && r["command"] == "say" && r["code"] == 0
    });
    let effects = rec["effects"].to_string();
    // The command line as run: the file /bin/echo leads to (symlinks resolved at start).
    let echo = std::fs::canonicalize("/bin/echo").expect("echo");
    let expected = format!("exec.run say: {} hello n=3 (exit 0", echo.display());
    assert!(effects.contains(&expected), "{effects}");
}

#[test]
fn values_outside_the_type_or_the_grant_never_reach_the_program() {
    let daemon = Daemon::start(&setup());
    let olga = daemon.client("olga", &["operators"]);
    // The grant narrows word to "hello": "world" is declared but not granted (3004, audited).
    let err = olga.run_err(&["run", "web", "say", "word=world", "n=3"]);
    assert!(
        err.contains("error 3004") && err.contains("word=world is not in the grant"),
        "{err}"
    );
    daemon.wait_audit("the refusal", |r| {
        r["event"] == "request"
            && r["phase"] == "end"
            && r["code"] == 3004
            && r["denied"].to_string().contains("word=world is not in the grant")
    });
    // Every injection form is refused by the parameter's type before anything runs.
    for bad in [
        "n=3;id", "n=$(id)", "n=`id`", "n=--help", "n=3 4", "n=3\nid", "n=11", "n=0", "n=-1", "n=03",
    ] {
        let err = olga.run_err(&["run", "web", "say", "word=hello", bad]);
        assert!(err.contains("n: "), "{bad:?}: {err}");
    }
    for bad in [
        vec!["word=hello"],
        vec!["word=hello", "n=1", "extra=1"],
        vec!["word=hello", "n=1", "n=2"],
    ] {
        let mut argv = vec!["run", "web", "say"];
        argv.extend(&bad);
        let out = olga.sesame(&argv);
        assert!(!out.status.success(), "{bad:?}");
    }
    let effects: Vec<String> = daemon
        .audit()
        .iter()
        .filter(|r| r["event"] == "request" && r["phase"] == "end")
        .map(|r| r["effects"].to_string())
        .collect();
    assert!(
        effects.iter().all(|e| !e.contains("exec.run")),
        "nothing ran: {effects:?}"
    );
    // A client whose group may not run the cluster at all: the policy denies (1010).
    let alice = daemon.client("alice", &["users"]);
    assert!(
        alice
            .run_err(&["run", "web", "say", "word=hello", "n=1"])
            .contains("error 1010")
    );
}

#[test]
fn a_secret_reaches_the_program_on_stdin_or_in_its_environment_and_no_record() {
    let daemon = Daemon::start(&setup());
    let olga = daemon.client("olga", &["operators"]);
    let token = "Zq7TOKENvalue42";
    // cat prints its standard input: the token arrived there, not in argv.
    assert_eq!(
        olga.run_ok(&["run", "web", "cat-token", &format!("token={token}")]),
        format!("{token}\n")
    );
    let env = olga.run_ok(&["run", "web", "show-env", "key=sekrit"]);
    let mut vars: Vec<&str> = env.lines().collect();
    vars.sort_unstable();
    assert_eq!(
        vars,
        ["API_KEY=sekrit", "GREETING=hi"],
        "the declared environment and nothing else"
    );
    daemon.wait_audit("the show-env run", |r| {
        r["command"] == "show-env" && r["phase"] == "end"
    });
    let records = std::fs::read_to_string(daemon.dir.path().join("state/audit.jsonl")).expect("audit");
    let decisions =
        std::fs::read_to_string(daemon.dir.path().join("state/decisions.jsonl")).unwrap_or_default();
    for (what, text) in [
        ("audit log", &records),
        ("decision log", &decisions),
        ("daemon log", &daemon.log()),
    ] {
        assert!(
            !text.contains(token) && !text.contains("sekrit"),
            "a secret in the {what}"
        );
    }
    assert!(
        records.contains("(secrets: token)"),
        "the audit record says a secret was passed"
    );
}

#[test]
fn a_program_past_its_time_limit_is_killed_with_what_it_started() {
    let daemon = Daemon::start(&setup());
    let olga = daemon.client("olga", &["operators"]);
    let started = Instant::now();
    let err = olga.run_err(&["run", "web", "linger"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered near the program's 1 s limit"
    );
    assert!(err.contains("did not finish within"), "{err}");
    // Both sleeps (the shell's child and its background one) died with the process group.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if !running("30.4242") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a child of the killed program is still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rec = daemon.wait_audit("the linger run", |r| {
        r["command"] == "linger" && r["phase"] == "end"
    });
    assert!(
        rec["effects"].to_string().contains("killed at its time limit"),
        "{rec}"
    );
}

#[test]
fn a_cancelled_program_is_killed_at_once_with_what_it_started() {
    let daemon = Daemon::start(&setup());
    let olga = daemon.client("olga", &["operators"]);
    // A minute's program under a minute's limit: only the cancel ends it soon.
    std::thread::scope(|s| {
        let run = s.spawn(|| olga.sesame(&["run", "web", "deploy"]));
        let start = daemon.wait_audit("the deploy run's start", |r| {
            r["command"] == "deploy" && r["phase"] == "start"
        });
        let id = start["id"].as_str().expect("id").to_owned();
        let until = Instant::now() + Duration::from_secs(10);
        while !running("30.6161") {
            assert!(Instant::now() < until, "the program never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        let sent = Instant::now();
        assert_eq!(olga.run_ok(&["cancel", "web", &id]), format!("cancelled {id}\n"));
        let out = run.join().expect("run");
        let answered = sent.elapsed();
        let err = stderr(&out);
        assert!(err.contains("error 3008"), "{err}");
        assert!(
            answered < Duration::from_secs(5),
            "answered {answered:?} after the cancel"
        );
        // Both sleeps (the shell's child and its background one) died with the process group.
        let deadline = Instant::now() + Duration::from_secs(5);
        while running("30.6161") {
            assert!(
                Instant::now() < deadline,
                "a process of the cancelled program is still running"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let rec = daemon.wait_audit("the deploy run", |r| {
            r["command"] == "deploy" && r["phase"] == "end"
        });
        assert_eq!(rec["code"], 3008, "{rec}");
        assert!(
            rec["effects"]
                .to_string()
                .contains("killed: cancelled by the client"),
            "{rec}"
        );
    });
}

#[test]
fn module_run_records_a_program_without_running_it() {
    let daemon = Daemon::start(&setup());
    drop(daemon.client("olga", &["operators"]));
    let exec = module("exec");
    let cfg = daemon.config.to_str().expect("utf-8");
    let out = sesame_tests::sesamed(
        &[
            "module",
            "run",
            exec.to_str().expect("utf-8"),
            "--as",
            "olga",
            "--command",
            "say",
            "--config",
            cfg,
            "--",
            "word=hello",
            "n=2",
        ],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("  exec.run"), "{text}");
    let echo = std::fs::canonicalize("/bin/echo").expect("echo");
    assert!(
        text.contains(&format!("would:    {} hello n=2", echo.display())),
        "{text}"
    );
}

#[test]
fn configtest_and_serve_refuse_a_program_anyone_but_root_could_change_or_a_bad_declaration() {
    let scratch = tempfile::tempdir().expect("tempdir");
    // A copy of /bin/true in a temporary directory: not root's alone (the directory is the
    // test's, or world-writable /tmp when the test runs as root).
    let copy = scratch.path().join("true");
    std::fs::copy("/bin/true", &copy).expect("copy");
    let exec = module("exec");
    let user = me();
    let cases = [
        (
            format!("[exec.programs.t]\npath = {copy:?}\nuser = \"{user}\"\n"),
            "exec: ",
        ),
        (
            "[exec.programs.t]\npath = \"/bin/true\"\nuser = \"no-such-account-here\"\n".to_owned(),
            "no account",
        ),
        (
            format!(
                "[exec.programs.t]\npath = \"/bin/true\"\nuser = \"{user}\"\ngroup = \"no-such-group-here\"\n"
            ),
            "no group",
        ),
        (
            format!("[exec.programs.t]\npath = \"/bin/true\"\nuser = \"{user}\"\nargs = [\"{{x}}\"]\n"),
            "not a declared parameter",
        ),
        (
            format!("[exec.programs.t]\npath = \"true\"\nuser = \"{user}\"\n"),
            "absolute",
        ),
    ];
    for (section, why) in cases {
        let setup = Setup {
            clusters: format!(
                "[clusters.ops]\ncapabilities = [\"exec\"]\n[clusters.ops.commands]\nt = {exec:?}\n\n{section}\n{}",
                Setup::default().clusters
            ),
            ..Setup::default()
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Daemon::prepare(dir.path(), &setup);
        for verb in ["configtest", "serve"] {
            let out = sesame_tests::sesamed(&[verb, "--config"], &[config.as_os_str()]);
            let err = stderr(&out);
            assert!(!out.status.success(), "{verb} {section}: {err}");
            assert!(err.contains(why), "{verb} {section}: {err}");
        }
    }
}

#[test]
fn a_program_that_leaves_a_child_holding_its_output_does_not_hold_the_request() {
    let daemon = Daemon::start(&setup());
    let olga = daemon.client("olga", &["operators"]);
    let started = Instant::now();
    // The shell exits at once; its background sleep keeps the output pipe open. The answer must
    // not wait for it, and the sleep must not outlive the program.
    assert_eq!(olga.run_ok(&["run", "web", "detach"]), "started\n");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered when the program exited: {:?}",
        started.elapsed()
    );
    assert!(
        !running("30.5151"),
        "what the program left in its process group was killed when it exited"
    );
}

#[test]
fn a_programs_output_reaches_the_client_as_it_is_written_and_once() {
    use std::io::BufRead as _;
    let daemon = Daemon::start(&setup());
    let olga = daemon.client("olga", &["operators"]);
    let started = Instant::now();
    let mut child = olga
        .command(&["run", "--json", "web", "count"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sesame");
    let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let lines: Vec<(serde_json::Value, Duration)> = stdout
        .lines()
        .map(|l| {
            (
                serde_json::from_str(&l.expect("line")).expect("JSON"),
                started.elapsed(),
            )
        })
        .collect();
    assert!(child.wait().expect("wait").success());
    let chunks: Vec<&(serde_json::Value, Duration)> = lines
        .iter()
        .filter(|(v, _)| v.get("progress").is_some())
        .collect();
    let out: String = chunks
        .iter()
        .filter(|(v, _)| v["source"] == "output")
        .map(|(v, _)| v["text"].as_str().unwrap_or_default())
        .collect();
    let errors: String = chunks
        .iter()
        .filter(|(v, _)| v["source"] == "errors")
        .map(|(v, _)| v["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(out, "line 1\nline 2\nline 3\n");
    assert_eq!(errors, "warn 1\nwarn 2\nwarn 3\n");
    // The first line came while the program still slept 0.8 s before its last.
    let first = chunks.first().expect("a chunk").1;
    let answer = lines.last().expect("the answer");
    assert_eq!(answer.0["output"], "line 1\nline 2\nline 3\n");
    assert!(
        answer.1 - first >= Duration::from_millis(600),
        "{first:?} then {:?}",
        answer.1
    );
    // As text, the output is printed once: as it came.
    assert_eq!(olga.run_ok(&["run", "web", "count"]), "line 1\nline 2\nline 3\n");
    assert_eq!(
        olga.run_ok(&["run", "--no-stream", "web", "count"]),
        "line 1\nline 2\nline 3\n"
    );
}
