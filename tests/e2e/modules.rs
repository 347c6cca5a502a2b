//! Module identity and the author's toolkit: `sesamed module inspect`, digest pins, the
//! precompiled cache, and `sesamed module run` against dry-run back ends.

use std::process::Command;

use sesame_tests::{Daemon, Setup, access_cluster, accounts_cluster, module, sesamed};

use super::{stderr, stdout};

/// `sha256:<hex>` of a file, by coreutils (independent of sesamed's own hashing).
fn sha256sum(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    let text = String::from_utf8_lossy(&out.stdout);
    format!("sha256:{}", text.split_whitespace().next().expect("hash"))
}

#[test]
fn inspect_shows_the_digest_imports_and_verdict() {
    let allow = module("allow");
    let out = sesamed(&["module", "inspect", "--json"], &[allow.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(info["digest"], sha256sum(&allow));
    assert_eq!(info["capabilities"], serde_json::json!(["firewall"]));
    assert_eq!(info["exports"], serde_json::json!(["run"]));
    assert!(info["refused"].is_null(), "{info}");
    assert!(
        info["imports"]
            .as_array()
            .is_some_and(|i| i.iter().any(|x| x == "sesame:host/firewall@0.1.0")),
        "{info}"
    );

    let fs = module("fs-import");
    let out = sesamed(&["module", "inspect"], &[fs.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "a refused module exits 1");
    let text = stdout(&out);
    assert!(
        text.contains("verdict:      refused") && text.contains("wasi:filesystem"),
        "{text}"
    );

    let out = sesamed(&["module", "inspect", "/nonexistent.wasm"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent.wasm"), "{}", stderr(&out));
}

#[test]
fn a_pinned_digest_must_match_the_file() {
    let echo = module("echo");
    let pinned = |digest: &str| Setup {
        clusters: format!("[clusters.basic.commands]\necho = {{ path = {echo:?}, digest = \"{digest}\" }}\n"),
        ..Setup::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Daemon::prepare(dir.path(), &pinned(&sha256sum(&echo)));
    let out = sesamed(&["configtest", "--config"], &[config.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let wrong = format!("sha256:{}", "0".repeat(64));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Daemon::prepare(dir.path(), &pinned(&wrong));
    for verb in ["configtest", "serve"] {
        let out = sesamed(&[verb, "--config"], &[config.as_os_str()]);
        assert!(!out.status.success(), "{verb}");
        let err = stderr(&out);
        assert!(
            err.contains("basic::echo") && err.contains(&wrong) && err.contains(&sha256sum(&echo)),
            "{verb}: {err}"
        );
    }
}

#[test]
fn a_restart_loads_modules_precompiled_from_the_cache() {
    let mut daemon = Daemon::start(&Setup::default());
    let cache = daemon.dir.path().join("state/module-cache");
    let entries = || {
        std::fs::read_dir(&cache)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                    .count()
            })
            .unwrap_or(0)
    };
    // The default setup has 4 modules: echo, whoami, spin, panic.
    assert_eq!(entries(), 4);
    assert!(daemon.log().contains("precompiled=0"), "{}", daemon.log());
    daemon.restart();
    assert!(daemon.log().contains("precompiled=4"), "{}", daemon.log());
    let alice = daemon.client("alice", &["users"]);
    assert_eq!(alice.run_ok(&["run", "web", "echo", "cached"]), "cached\n");

    // A damaged entry is compiled again, not run.
    let victim = std::fs::read_dir(&cache)
        .expect("ls")
        .flatten()
        .next()
        .expect("entry")
        .path();
    let mut bytes = std::fs::read(&victim).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&victim, bytes).expect("write");
    daemon.restart();
    assert!(daemon.log().contains("precompiled=3"), "{}", daemon.log());
    assert!(daemon.log().contains("checksum mismatch"), "{}", daemon.log());
    alice.pin(&daemon, "web-again"); // a restart listens on a new port
    assert_eq!(alice.run_ok(&["run", "web-again", "echo", "still"]), "still\n");
}

#[test]
fn module_run_shows_the_decision_host_calls_and_what_would_run() {
    let setup = Setup {
        clusters: format!(
            "{}\n{}\n{}",
            Setup::default().clusters,
            access_cluster(),
            accounts_cluster()
        ),
        ..Setup::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Daemon::prepare(dir.path(), &setup);
    let cfg = config.to_str().expect("utf-8");
    let enrol = |name: &str, group: &str| {
        let key = sesame_tests::Client::new().key;
        let out = sesamed(
            &[
                "client", "add", name, "--key", &key, "--group", group, "--config", cfg,
            ],
            &[],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    };
    enrol("alice", "users");
    enrol("olga", "onboarders");
    let run = |file: &str, who: &str, extra: &[&str]| {
        let path = module(file);
        let mut args = vec![
            "module",
            "run",
            path.to_str().expect("utf-8"),
            "--as",
            who,
            "--config",
            cfg,
        ];
        args.extend(extra);
        sesamed(&args, &[])
    };

    // A firewall opening for the caller: the grant check runs, nothing opens.
    let out = run(
        "allow",
        "alice",
        &["--source-ip", "198.51.100.7", "--", "--ttl", "60"],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("module:   access::allow (sha256:"), "{text}");
    assert!(
        text.contains("decision: allow") && text.contains("group users may run access::allow"),
        "{text}"
    );
    assert!(
        text.contains("host calls (") && text.contains("  firewall.allow"),
        "{text}"
    );
    assert!(
        text.contains("would:    firewall") && text.contains("198.51.100.7"),
        "{text}"
    );
    assert!(text.contains("result:   ok"), "{text}");

    // Outside the grant: the same 3004 the daemon would answer.
    let out = run("allow", "alice", &["--source-ip", "198.51.100.7", "--", "2222"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("denied:") && text.contains("result:   error 3004"),
        "{text}"
    );

    // Denied by policy: the reasons, and nothing runs.
    let out = run("user-add", "alice", &["--", "dave"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("decision: deny") && text.contains("error 1010"),
        "{text}"
    );
    assert!(!text.contains("host calls"), "{text}");

    // An account change: the useradd command line is printed, not run.
    let out = run("user-add", "olga", &["--", "dave-sesame-test"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "no reason given: {text}");
    assert!(
        text.contains("accounts::user-add needs a reason") && text.contains("error 1010"),
        "{text}"
    );
    let out = run(
        "user-add",
        "olga",
        &["--reason", "OPS-7 onboarding dave", "--", "dave-sesame-test"],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("would:    /usr/sbin/useradd --create-home --user-group -- dave-sesame-test"),
        "{text}"
    );
    let passwd = std::fs::read_to_string("/etc/passwd").expect("passwd");
    assert!(!passwd.contains("dave-sesame-test"), "nothing was created");

    // An unknown client is a clear error.
    let out = run("echo", "mallory", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no enrolled client \"mallory\""),
        "{}",
        stderr(&out)
    );
}
