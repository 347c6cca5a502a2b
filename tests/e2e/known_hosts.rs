//! `sesame known-hosts` through a live daemon and the stock `known-hosts` module: the host keys
//! of a directory made by ssh-keygen, as known_hosts lines ssh-keygen itself reads back; refused
//! without the group or the grant; exit codes as ssh-proxy's; nothing but keys on stdout.

use std::path::Path;

use sesame_tests::{Client, Daemon, Setup, module, ssh_keys};

use super::{stderr, stdout};

/// The access cluster with the host keys, as the stock configuration has it, serving `dir`.
fn setup(dir: &Path) -> Setup {
    let access = format!(
        "[clusters.access]\ncapabilities = [\"firewall\", \"hostkeys\"]\n[clusters.access.commands]\nallow = {:?}\nknown-hosts = {:?}\n\n[hostkeys]\ndir = {:?}\n",
        module("allow"),
        module("known-hosts"),
        dir,
    );
    Setup {
        clusters: format!("{}\n{access}", Setup::default().clusters),
        ..Setup::default()
    }
}

/// `lines` under `name`, as known_hosts has them.
fn known_hosts(name: &str, lines: &[String]) -> String {
    lines.iter().map(|l| format!("{name} {l}\n")).collect()
}

/// Whether `ssh-keygen -F NAME` finds `name` in the known_hosts file `text`.
fn ssh_keygen_finds(name: &str, text: &str) -> bool {
    let file = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(file.path(), text).expect("write");
    std::process::Command::new("ssh-keygen")
        .args(["-F", name, "-f"])
        .arg(file.path())
        .output()
        .expect("ssh-keygen -F")
        .status
        .success()
}

#[test]
fn known_hosts_prints_the_hosts_keys_as_known_hosts_lines() {
    let keys_dir = tempfile::tempdir().expect("tempdir");
    let keys = ssh_keys::host_keys(keys_dir.path());
    // A file that is not a key is skipped and logged, never served.
    std::fs::write(
        keys_dir.path().join("ssh_host_bogus_key.pub"),
        "ssh-ed25519 bogus root@web1\n",
    )
    .expect("write");
    let daemon = Daemon::start(&setup(keys_dir.path()));
    let alice = daemon.client("alice", &["users"]);

    let out = alice.sesame(&["known-hosts", "web"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), known_hosts("web", &keys));
    assert_eq!(stderr(&out), "", "nothing to say on success");
    assert!(!stdout(&out).contains("root@web1"), "comments are left out");
    assert!(ssh_keygen_finds("web", &stdout(&out)), "{}", stdout(&out));

    // The name ssh looks for (%H): `[host]:port` for a port other than 22.
    let out = alice.run_ok(&["known-hosts", "--name", "[web]:2222", "web"]);
    assert_eq!(out, known_hosts("[web]:2222", &keys));
    assert!(ssh_keygen_finds("[web]:2222", &out));
    assert!(!ssh_keygen_finds("web", &out));

    // The module's own answer: one TYPE KEY line each.
    let out = alice.run_ok(&["run", "web", "known-hosts"]);
    assert_eq!(out, format!("{}\n", keys.join("\n")));

    assert!(
        daemon
            .log()
            .contains("ssh_host_bogus_key.pub the key data is not base64: skipped"),
        "{}",
        daemon.log()
    );
    let rec = daemon.wait_audit("known-hosts", |r| {
        r["phase"] == "end" && r["command"] == "known-hosts" && r["client"] == "alice"
    });
    assert_eq!(rec["cluster"], "access");
    assert_eq!(rec["code"], 0);

    // configtest counts what it would serve, and says what it skips.
    let out = daemon.sesamed(&["configtest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = keys_dir.path().display();
    assert!(
        stdout(&out).contains(&format!("3 host keys in {dir}")),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("ssh_host_bogus_key.pub the key data is not base64: skipped"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn known_hosts_is_refused_without_the_group_or_the_grant() {
    let keys_dir = tempfile::tempdir().expect("tempdir");
    ssh_keys::host_keys(keys_dir.path());
    let daemon = Daemon::start(&setup(keys_dir.path()));
    let stranger = daemon.client("mallory", &["strangers"]);
    let out = stranger.sesame(&["known-hosts", "web"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("error 1010"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");

    // A policy whose access cluster has no hostkeys entry: the call is refused (3004).
    let data = std::fs::read_to_string(sesame_tests::repo_root().join("policies/data.json"))
        .expect("data.json")
        .replace(",\n        \"hostkeys\": {\"list\": true}", "");
    assert!(
        !data.contains("hostkeys"),
        "the stock data's hostkeys entry is gone"
    );
    let daemon = Daemon::start(&Setup {
        policy_data: Some(data),
        ..setup(keys_dir.path())
    });
    let alice = daemon.client("alice", &["users"]);
    let out = alice.sesame(&["known-hosts", "web"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("error 3004"), "{err}");
    assert!(
        err.contains("the grant does not allow reading the host keys"),
        "{err}"
    );
    assert_eq!(stdout(&out), "");
}

#[test]
fn known_hosts_fails_with_ssh_proxys_exit_codes_and_prints_nothing() {
    let keys_dir = tempfile::tempdir().expect("tempdir");
    let empty = tempfile::tempdir().expect("tempdir");
    ssh_keys::host_keys(keys_dir.path());
    let mut daemon = Daemon::start(&setup(keys_dir.path()));
    let alice = daemon.client("alice", &["users"]);
    let audited = |d: &Daemon| d.audit().iter().filter(|r| r["phase"] == "end").count();

    // Local problems (2), before anything is sent.
    for (args, why) in [
        (
            &["known-hosts", "nowhere"][..],
            "no pinned host is called \"nowhere\"",
        ),
        (
            &["known-hosts", "--name", "@cert-authority", "web"],
            "cannot name a host in known_hosts",
        ),
        (
            &["known-hosts", "--name", "web 1", "web"],
            "cannot name a host in known_hosts",
        ),
    ] {
        let out = alice.sesame(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "");
    }
    assert_eq!(audited(&daemon), 0, "nothing was sent");

    // An answer that is not keys (1): nothing printed, whatever the lines before.
    let out = alice.sesame(&["known-hosts", "--command", "basic::whoami", "web"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("line 1 of its answer is not an SSH host key"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");

    // A host with no key to serve (1: the module says so, 3006).
    let daemon2 = Daemon::start(&setup(empty.path()));
    let bob = daemon2.client("bob", &["users"]);
    let out = bob.sesame(&["known-hosts", "web"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("error 3006") && stderr(&out).contains("serves no SSH host key"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");

    // No answer (3).
    daemon.kill_hard();
    let out = alice.sesame(&["known-hosts", "--timeout", "2", "web"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn known_hosts_finds_the_host_as_ssh_proxy_does() {
    let keys_dir = tempfile::tempdir().expect("tempdir");
    let keys = ssh_keys::host_keys(keys_dir.path());
    let daemon = Daemon::start(&setup(keys_dir.path()));
    let alice = Client::new();
    daemon.enrol("alice", &alice.key, &["users"]);
    alice.pin(&daemon, "web1");
    // By its pinned name, by the daemon's name (`--host-name`), by its address.
    for host in ["web1", sesame_tests::HOST, "127.0.0.1"] {
        let out = alice.run_ok(&["known-hosts", "--name", "web1", host]);
        assert_eq!(out, known_hosts("web1", &keys), "{host}");
    }
    // The name defaults to HOST as given.
    assert_eq!(
        alice.run_ok(&["known-hosts", "127.0.0.1"]),
        known_hosts("127.0.0.1", &keys)
    );
}
