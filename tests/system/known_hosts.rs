//! ssh without trust on first use, with the real tools: a real sshd with host keys of its own,
//! a real `ssh` with an empty known_hosts file and `StrictHostKeyChecking=yes`, its
//! `ProxyCommand` `sesame ssh-proxy` and its `KnownHostsCommand` `sesame known-hosts`, both
//! through a live sesamed whose `[hostkeys] dir` holds sshd's keys. It connects from the first
//! time, writing nothing to known_hosts; served another host's keys, ssh refuses.

use std::path::Path;

use sesame_tests::{Client, Daemon, Setup, binary, module, ssh_keys};

use crate::sshd::{Ssh, Sshd, SshdConfig, login_account, scratch_dir};
use crate::{require_private_namespace, sh};

/// A daemon (dry-run firewall, on loopback) whose access cluster opens `port` and serves the
/// host keys in `keys`, with alice (group users) enrolled and pinned as `alias` in `alice`.
fn daemon(port: u16, keys: &Path, alice: &Client, alias: &str) -> Daemon {
    let access = format!(
        "[clusters.access]\ncapabilities = [\"firewall\", \"hostkeys\"]\n[clusters.access.commands]\nallow = {:?}\nknown-hosts = {:?}\n\n[hostkeys]\ndir = {:?}\n",
        module("allow"),
        module("known-hosts"),
        keys,
    );
    // The stock policy opens port 22; this sshd listens where the test put it.
    let data = std::fs::read_to_string(sesame_tests::repo_root().join("policies/data.json"))
        .expect("data.json")
        .replace(r#""ports": [22]"#, &format!(r#""ports": [{port}]"#));
    let daemon = Daemon::start(&Setup {
        clusters: access,
        policy_data: Some(data),
        ..Setup::default()
    });
    daemon.enrol("alice", &alice.key, &["users"]);
    alice.pin(&daemon, alias);
    daemon
}

/// The requests `command` that `daemon` answered, and how (their codes).
fn answered(daemon: &Daemon, command: &str) -> Vec<u64> {
    daemon
        .audit()
        .iter()
        .filter(|r| r["phase"] == "end" && r["command"] == command)
        .filter_map(|r| r["code"].as_u64())
        .collect()
}

#[test]
#[ignore = "starts a real sshd (needs root): run scripts/system-tests"]
fn ssh_trusts_the_host_key_sesame_vouches_for_from_the_first_connection() {
    require_private_namespace();
    // sshd: host keys of its own; kate may log in with a key made for this test.
    let host_keys = tempfile::tempdir().expect("tempdir");
    let served = ssh_keys::host_keys(host_keys.path());
    let user = scratch_dir();
    let identity = user.path().join("id_ed25519");
    let public = ssh_keys::keygen(&identity, "ed25519", "test@laptop");
    login_account("kate", &public);
    let mut sshd = Sshd::start(&SshdConfig::new(host_keys.path(), ".ssh/authorized_keys"));
    let port = sshd.port();

    let alice = Client::new();
    let web = daemon(port, host_keys.path(), &alice, "web");
    let known_hosts = user.path().join("known_hosts");
    std::fs::write(&known_hosts, "").expect("known_hosts");
    let sesame = binary("sesame");
    let sesame = sesame.display();
    let ssh = Ssh::new(&identity, &known_hosts)
        .option("StrictHostKeyChecking=yes")
        .option(&format!("ProxyCommand={sesame} ssh-proxy %h %p"))
        .env("SESAME_HOME", alice.home.path());

    // Without sesame's word on the key, strict checking refuses the unknown host.
    let out = ssh.run(port, "kate@web", "echo connected");
    assert_eq!(
        out.status.code(),
        Some(255),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("Host key verification failed"), "{err}");

    // With it, the first connection goes through, and nothing is learnt on the way.
    let ssh = ssh.option(&format!("KnownHostsCommand={sesame} known-hosts --name %H %n"));
    let out = ssh.run(port, "kate@web", "echo connected as $(id -u)");
    assert!(
        out.status.success(),
        "ssh: {}\nsshd: {}\nsesamed: {}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log(),
        web.log()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("connected as {}", sh("id", &["-u", "kate"]))
    );
    assert_eq!(
        std::fs::read_to_string(&known_hosts).expect("read"),
        "",
        "no key trusted on first use"
    );
    assert!(
        sshd.log().contains("Accepted publickey for kate"),
        "{}",
        sshd.log()
    );
    // ssh asked for the keys (to order its algorithms, then to check the key), each time under
    // the name it looks for: `[web]:PORT`, this sshd being on another port than 22.
    let asked = answered(&web, "known-hosts");
    assert!(
        !asked.is_empty() && asked.iter().all(|&code| code == 0),
        "{asked:?}"
    );
    assert_eq!(
        answered(&web, "allow"),
        [0, 0],
        "ssh-proxy opened the port each time"
    );
    let printed = alice.run_ok(&["known-hosts", "--name", &format!("[web]:{port}"), "web"]);
    let expected: String = served.iter().map(|k| format!("[web]:{port} {k}\n")).collect();
    assert_eq!(printed, expected);

    // A host that vouches for other keys (another directory): ssh refuses what sshd presents.
    let other_keys = tempfile::tempdir().expect("tempdir");
    ssh_keys::host_keys(other_keys.path());
    let impostor = daemon(port, other_keys.path(), &alice, "impostor");
    let out = ssh.run(port, "kate@impostor", "echo connected");
    assert_eq!(
        out.status.code(),
        Some(255),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("Host key verification failed"), "{err}");
    assert!(out.stdout.is_empty());
    let asked = answered(&impostor, "known-hosts");
    assert!(
        !asked.is_empty() && asked.iter().all(|&code| code == 0),
        "sesame answered, and ssh refused the key: {asked:?}"
    );
    assert_eq!(
        sshd.log().matches("Accepted publickey").count(),
        1,
        "only the first connection logged in: {}",
        sshd.log()
    );

    sshd.stop();
}
