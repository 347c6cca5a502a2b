//! Salt states through the stock `salt-apply` module, with the real masterless `salt-call`
//! (salt 3008.3 from `scripts/salt-venv`, named by `SESAME_SALT_CALL`), in the private namespace:
//! the state manages `/etc/motd`, which there is on the /etc overlay.

use std::path::{Path, PathBuf};

use sesame_tests::{Daemon, Setup, config_cluster};

use crate::{REASON, require_private_namespace};

const MOTD: &str = "/etc/motd";

/// The state the test applies: /etc/motd from pillar `motd_text`.
const MOTD_SLS: &str = r#"motd:
  file.managed:
    - name: /etc/motd
    - mode: '0644'
    - contents: {{ pillar.get('motd_text', 'Authorised use only.') | json }}
"#;

/// A state in the grant (`nginx`) that fails: its source file does not exist.
const FAILING_SLS: &str = r#"nginx-conf:
  file.managed:
    - name: /etc/nginx-sesame-test.conf
    - source: salt://no/such/file
"#;

/// A masterless minion whose every file is under `dir`.
fn minion(dir: &Path) -> PathBuf {
    let conf = dir.join("conf");
    for sub in ["conf", "root", "states", "pillar"] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
    }
    std::fs::write(
        conf.join("minion"),
        format!(
            "id: sesame-test\nfile_client: local\nmaster_type: disable\nroot_dir: {root}\n\
             file_roots: {{base: [{states}]}}\npillar_roots: {{base: [{pillar}]}}\n",
            root = dir.join("root").display(),
            states = dir.join("states").display(),
            pillar = dir.join("pillar").display(),
        ),
    )
    .expect("minion");
    std::fs::write(dir.join("states/motd.sls"), MOTD_SLS).expect("motd.sls");
    std::fs::write(dir.join("states/nginx.sls"), FAILING_SLS).expect("nginx.sls");
    conf
}

/// The salt-call the tests drive, named by `SESAME_SALT_CALL`.
fn salt_call() -> PathBuf {
    PathBuf::from(
        std::env::var_os("SESAME_SALT_CALL")
            .expect("SESAME_SALT_CALL names salt-call (scripts/system-tests sets it from scripts/salt-venv)"),
    )
}

fn motd() -> Option<String> {
    std::fs::read_to_string(MOTD).ok()
}

#[test]
#[ignore = "applies Salt states to /etc: run scripts/system-tests"]
fn salt_applies_a_file_state_and_test_mode_changes_nothing() {
    require_private_namespace();
    let salt_call = salt_call();
    let salt_dir = tempfile::tempdir().expect("tempdir");
    let conf = minion(salt_dir.path());
    let setup = Setup {
        clusters: config_cluster(&salt_call, &conf),
        ..Setup::default()
    };
    let daemon = Daemon::start(&setup);
    let olga = daemon.client("olga", &["operators"]);
    let alice = daemon.client("alice", &["users"]);

    let text = "Maintenance on Friday at 18:00 UTC.";
    let pillar = format!(r#"{{"motd_text": "{text}"}}"#);
    let before = motd();
    assert_ne!(before.as_deref(), Some(text), "the test starts from another motd");

    // Test mode reports what would change and changes nothing.
    let out = olga.run_ok(&[
        "run",
        "--reason",
        REASON,
        "web",
        "salt-apply",
        "motd",
        "--test",
        "--pillar",
        &pillar,
    ]);
    // Each state's start and end as salt-call logged them, as they came; then the report.
    let (streamed, report) = out.split_at(out.find("motd: ").expect("the report"));
    assert!(
        streamed.starts_with("salt: Running state [/etc/motd] at time ")
            && streamed.contains("salt: Completed state [/etc/motd] at time "),
        "{out}"
    );
    assert!(
        report.starts_with("motd: 1 changed, 0 failed (test mode: nothing was changed)"),
        "{out}"
    );
    assert!(
        out.contains("[would change] file_|-motd_|-/etc/motd_|-managed"),
        "{out}"
    );
    assert_eq!(motd(), before, "test mode changed nothing");

    // Applied: /etc/motd (the overlay's) has the pillar's text; a second apply changes nothing.
    let out = olga.run_ok(&[
        "run",
        "--reason",
        REASON,
        "web",
        "salt-apply",
        "motd",
        "--pillar",
        &pillar,
    ]);
    assert!(out.contains("\nmotd: 1 changed, 0 failed\n"), "{out}");
    assert!(
        out.contains("[changed] file_|-motd_|-/etc/motd_|-managed"),
        "{out}"
    );
    assert_eq!(motd().as_deref().map(str::trim_end), Some(text));
    let out = olga.run_ok(&[
        "run",
        "--reason",
        REASON,
        "web",
        "salt-apply",
        "motd",
        "--pillar",
        &pillar,
    ]);
    assert!(out.contains("\nmotd: 0 changed, 0 failed\n"), "{out}");
    assert!(out.contains("[ok] file_|-motd_|-/etc/motd_|-managed"), "{out}");

    // A failing state: the command fails with the same summary, naming the state.
    let err = olga.run_err(&["run", "--reason", REASON, "web", "salt-apply", "nginx"]);
    assert!(
        err.contains("error 3005") && err.contains("nginx: 0 changed, 1 failed"),
        "{err}"
    );
    assert!(
        err.contains("[FAILED] file_|-nginx-conf_|-/etc/nginx-sesame-test.conf_|-managed"),
        "{err}"
    );
    // A state in the grant that this host does not have: Salt's own message comes back.
    let err = olga.run_err(&["run", "--reason", REASON, "web", "salt-apply", "ntp"]);
    assert!(
        err.contains("error 3005") && err.contains("No matching sls found for 'ntp'"),
        "{err}"
    );

    // Outside the grant, nothing runs: a state not in it, a pillar key not in it (3004), and a
    // client whose group may not run salt-apply at all (1010).
    let err = olga.run_err(&["run", "--reason", REASON, "web", "salt-apply", "users"]);
    assert!(
        err.contains("error 3004") && err.contains("state users is not in the grant"),
        "{err}"
    );
    let err = olga.run_err(&[
        "run",
        "--reason",
        REASON,
        "web",
        "salt-apply",
        "motd",
        "--pillar",
        r#"{"motd_text": "x", "path": "/etc/shadow"}"#,
    ]);
    assert!(
        err.contains("error 3004") && err.contains("pillar key \"path\""),
        "{err}"
    );
    let err = alice.run_err(&["run", "--reason", REASON, "web", "salt-apply", "motd"]);
    assert!(err.contains("error 1010"), "{err}");
    assert_eq!(
        motd().as_deref().map(str::trim_end),
        Some(text),
        "refusals changed nothing"
    );

    // Every apply is in the audit record, test mode marked; refusals are audited with why.
    let ends: Vec<serde_json::Value> = daemon
        .audit()
        .into_iter()
        .filter(|r| r["event"] == "request" && r["phase"] == "end")
        .collect();
    let effects: Vec<&str> = ends
        .iter()
        .flat_map(|r| r["effects"].as_array().into_iter().flatten())
        .filter_map(|e| e.as_str())
        .collect();
    assert_eq!(
        effects,
        [
            "salt.apply motd (test): 1 changed, 0 failed",
            "salt.apply motd: 1 changed, 0 failed",
            "salt.apply motd: 0 changed, 0 failed",
            "salt.apply nginx: 0 changed, 1 failed",
        ]
    );
    let denied: Vec<&str> = ends
        .iter()
        .flat_map(|r| r["denied"].as_array().into_iter().flatten())
        .filter_map(|e| e.as_str())
        .collect();
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert!(
        denied[0].starts_with("salt.apply users: state users is not in the grant"),
        "{denied:?}"
    );
    assert!(denied[1].contains("pillar key \"path\""), "{denied:?}");

    // Salt kept to its own directory: nothing in /etc/salt or /var/cache/salt.
    assert!(!Path::new("/etc/salt").exists() && !Path::new("/var/cache/salt").exists());
}

/// A state in the grant (`ntp`) that runs far longer than any request may: a marked sleep.
const SLOW_SLS: &str = r#"slow:
  cmd.run:
    - name: /bin/sleep 4242
"#;

/// Whether a process whose command line holds `pattern` runs (`pgrep -f`): its lines, if any.
fn pgrep(pattern: &str) -> Option<String> {
    let found = std::process::Command::new("pgrep")
        .args(["-af", pattern])
        .output()
        .expect("pgrep");
    found
        .status
        .success()
        .then(|| String::from_utf8_lossy(&found.stdout).into_owned())
}

#[test]
#[ignore = "runs salt-call in the private namespace: run scripts/system-tests"]
fn ctrl_c_during_a_salt_run_kills_salt_call_and_everything_it_started() {
    require_private_namespace();
    let salt_call = salt_call();
    let salt_dir = tempfile::tempdir().expect("tempdir");
    let conf = minion(salt_dir.path());
    std::fs::write(salt_dir.path().join("states/ntp.sls"), SLOW_SLS).expect("ntp.sls");
    // A minute's limit: only the cancel ends the state's sleep soon.
    let setup = Setup {
        clusters: format!(
            "{}\n[limits]\ntimeout_ms = 60000\n",
            config_cluster(&salt_call, &conf)
        ),
        ..Setup::default()
    };
    let daemon = Daemon::start(&setup);
    let olga = daemon.client("olga", &["operators"]);
    let child = olga
        .command(&["run", "--reason", REASON, "web", "salt-apply", "ntp"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sesame");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while pgrep("sleep 4242").is_none() {
        assert!(
            std::time::Instant::now() < until,
            "the state's sleep never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(pgrep("salt-call").is_some(), "salt-call runs the state");
    let sent = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("sesame");
    let took = sent.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error 3008"), "{err}");
    assert!(
        took < std::time::Duration::from_secs(5),
        "answered {took:?} after Ctrl-C"
    );
    // Nothing of the run is left: salt-call, and the sleep its state started (its process group).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while let Some(left) = pgrep("sleep 4242").or_else(|| pgrep("salt-call")) {
        assert!(std::time::Instant::now() < deadline, "still running: {left}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let rec = daemon.wait_audit("the cancelled apply", |r| {
        r["phase"] == "end" && r["command"] == "salt-apply"
    });
    assert_eq!(rec["code"], 3008, "{rec}");
    assert!(
        rec["effects"]
            .to_string()
            .contains("killed when the client cancelled, outcome unknown"),
        "{rec}"
    );
}

#[test]
#[ignore = "runs salt-call in the private namespace: run scripts/system-tests"]
fn a_salt_run_past_the_request_limit_is_killed_with_everything_it_started() {
    require_private_namespace();
    let salt_call = salt_call();
    let salt_dir = tempfile::tempdir().expect("tempdir");
    let conf = minion(salt_dir.path());
    std::fs::write(salt_dir.path().join("states/ntp.sls"), SLOW_SLS).expect("ntp.sls");
    // The host's ceiling is 4 s: the policy's 300 s for `config` cannot raise it.
    let setup = Setup {
        clusters: format!(
            "{}\n[limits]\ntimeout_ms = 4000\n",
            config_cluster(&salt_call, &conf)
        ),
        ..Setup::default()
    };
    let daemon = Daemon::start(&setup);
    let olga = daemon.client("olga", &["operators"]);
    let started = std::time::Instant::now();
    let err = olga.run_err(&["run", "--reason", REASON, "web", "salt-apply", "ntp"]);
    let took = started.elapsed();
    assert!(
        err.contains("error 3002") && err.contains("time limit of 4000 ms"),
        "{err}"
    );
    assert!(
        took < std::time::Duration::from_secs(6),
        "answered after {took:?}"
    );
    let rec = daemon.wait_audit("the slow apply", |r| {
        r["phase"] == "end" && r["command"] == "salt-apply" && r["code"] == 3002
    });
    let effects = rec["effects"].to_string();
    assert!(
        effects.contains("killed at its deadline, outcome unknown"),
        "{rec}"
    );
    // salt-call and the sleep its state started died with it (the process group).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let left = std::process::Command::new("pgrep")
            .args(["-f", "sleep 4242"])
            .output()
            .expect("pgrep");
        if !left.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running: {}",
            String::from_utf8_lossy(&left.stdout)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
