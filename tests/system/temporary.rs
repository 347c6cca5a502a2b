//! Changes that expire, with the real tools: a key added for a few seconds lets a real `ssh`
//! in, a real sshd refuses it once its time is up even with sesamed SIGKILLed (the line carries
//! OpenSSH's `expiry-time`), and the next start takes the line back; a group membership added for
//! a while is gone at expiry, and after a crash-restart it is taken back at start.

use std::path::Path;
use std::time::{Duration, Instant};

use sesame_tests::{Daemon, Setup, accounts_cluster, ssh_keys};

use crate::sshd::{Ssh, Sshd, SshdConfig, scratch_dir};
use crate::{REASON, require_private_namespace, sh};

/// The temporary entries of the daemon's grants ledger.
fn ledger_users(daemon: &Daemon) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(daemon.dir.path().join("state/grants.json")).unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["users"].as_array().cloned())
        .unwrap_or_default()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms")
}

fn groups_of(name: &str) -> Vec<String> {
    sh("id", &["-nG", name])
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
#[ignore = "changes accounts and starts a real sshd (needs root): run scripts/system-tests"]
fn a_key_added_for_a_while_lets_ssh_in_and_sshd_refuses_it_after_expiry_with_sesamed_dead() {
    require_private_namespace();
    // tina: a real account, whose password field sshd does not read as locked.
    sh("useradd", &["--create-home", "--shell", "/bin/bash", "tina"]);
    sh("usermod", &["--password", "*", "tina"]);
    let host_keys = tempfile::tempdir().expect("tempdir");
    ssh_keys::host_keys(host_keys.path());
    let mut sshd = Sshd::start(&SshdConfig::new(host_keys.path(), ".ssh/authorized_keys"));
    let port = sshd.port();
    let mut daemon = Daemon::start(&Setup {
        clusters: accounts_cluster(),
        ..Setup::default()
    });
    let tina = daemon.client("tina", &["staff"]);
    let user = scratch_dir();
    let identity = user.path().join("id_ed25519");
    let public = ssh_keys::keygen(&identity, "ed25519", "tina@laptop");
    let ssh = Ssh::new(&identity, &user.path().join("known_hosts")).option("StrictHostKeyChecking=no");
    let login = || ssh.run(port, "tina@127.0.0.1", "echo in as $(id -u)");

    assert!(!login().status.success(), "no key yet");
    let out = tina.run_ok(&["run", "--reason", REASON, "web", "key-add", "--ttl", "6", &public]);
    assert!(out.contains("to tina until"), "{out}");
    let keys = Path::new("/home/tina/.ssh/authorized_keys");
    let text = std::fs::read_to_string(keys).expect("authorized_keys");
    assert!(
        text.starts_with("expiry-time=\"") && text.contains(&public),
        "{text}"
    );
    let entries = ledger_users(&daemon);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let expires_ms = entries[0]["holders"][0]["expires_ms"].as_u64().expect("expiry");

    let out = login();
    assert!(
        out.status.success(),
        "ssh: {}\nsshd: {}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("in as {}", sh("id", &["-u", "tina"]))
    );

    // sesamed dies; the key's time runs out; sshd refuses it by itself.
    daemon.kill_hard();
    wait_for("the key's expiry", Duration::from_secs(20), || {
        now_ms() > expires_ms + 1500
    });
    let out = login();
    assert!(!out.status.success(), "an expired key let ssh in: {}", sshd.log());
    assert!(
        std::fs::read_to_string(keys).expect("read").contains(&public),
        "nobody took the line back while sesamed was down"
    );
    assert!(sshd.log().contains("Refused by key options"), "{}", sshd.log());

    // The next start takes the line back, on record.
    daemon.restart();
    wait_for("the line to be taken back", Duration::from_secs(10), || {
        !std::fs::read_to_string(keys)
            .unwrap_or_default()
            .contains(&public)
    });
    assert!(ledger_users(&daemon).is_empty());
    daemon.wait_audit("the key taken back at start", |r| {
        r["event"] == "account-grant" && r["action"] == "expired" && r["by"] == "reconcile"
    });
    sshd.stop();
}

#[test]
#[ignore = "changes accounts (needs root): run scripts/system-tests"]
fn a_group_membership_for_a_while_is_gone_at_expiry_and_after_a_crash_restart() {
    require_private_namespace();
    let _ = std::process::Command::new("groupadd").arg("developers").output();
    let _ = std::process::Command::new("groupadd").arg("operators").output();
    sh("useradd", &["--create-home", "--groups", "developers", "gina"]);
    let mut daemon = Daemon::start(&Setup {
        clusters: accounts_cluster(),
        ..Setup::default()
    });
    let ada = daemon.client("ada", &["admins"]);
    let add = |ttl: &str| {
        ada.run_ok(&[
            "run",
            "--reason",
            REASON,
            "web",
            "group-add",
            "gina",
            "operators",
            "--ttl",
            ttl,
        ])
    };

    // While the daemon runs: in, then out at expiry.
    let out = add("3");
    assert!(out.contains("added gina to group operators until"), "{out}");
    assert!(groups_of("gina").contains(&"operators".to_owned()));
    wait_for("the membership to end", Duration::from_secs(15), || {
        !groups_of("gina").contains(&"operators".to_owned())
    });
    assert!(ledger_users(&daemon).is_empty());
    // Asking twice makes one entry.
    add("3");
    add("4");
    assert_eq!(ledger_users(&daemon).len(), 1);

    // Killed meanwhile: nothing ends it (nothing but sesamed can), and the next start does.
    daemon.kill_hard();
    let expires_ms = ledger_users(&daemon)[0]["holders"][0]["expires_ms"]
        .as_u64()
        .expect("expiry");
    wait_for("the membership's expiry", Duration::from_secs(20), || {
        now_ms() > expires_ms
    });
    assert!(
        groups_of("gina").contains(&"operators".to_owned()),
        "still in, sesamed down"
    );
    daemon.restart();
    wait_for(
        "the membership to be taken back at start",
        Duration::from_secs(10),
        || !groups_of("gina").contains(&"operators".to_owned()),
    );
    assert!(
        groups_of("gina").contains(&"developers".to_owned()),
        "its own groups stay"
    );
    assert!(ledger_users(&daemon).is_empty());
}

/// The account's line of `/etc/shadow`, split at its colons.
fn shadow_of(name: &str) -> Vec<String> {
    std::fs::read_to_string("/etc/shadow")
        .expect("/etc/shadow")
        .lines()
        .find(|l| l.split(':').next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in /etc/shadow"))
        .split(':')
        .map(str::to_owned)
        .collect()
}

#[test]
#[ignore = "changes accounts (needs root): run scripts/system-tests"]
fn an_account_made_for_a_while_carries_shadows_expiry_and_is_locked_at_its_end() {
    require_private_namespace();
    let _ = std::process::Command::new("groupadd").arg("developers").output();
    let daemon = Daemon::start(&Setup {
        clusters: accounts_cluster(),
        ..Setup::default()
    });
    let olga = daemon.client("olga", &["onboarders"]);
    let out = olga.run_ok(&[
        "run",
        "--reason",
        REASON,
        "web",
        "user-add",
        "cleo",
        "--group",
        "developers",
        "--ttl",
        "3",
    ]);
    assert!(out.contains("created cleo (groups: developers) until"), "{out}");
    // Shadow's own expiry, the day after the end: logins stop by then even without sesamed.
    let expire_day: u64 = shadow_of("cleo")[7].parse().expect("an expiry date is set");
    let today = now_ms() / 86_400_000;
    assert!(
        (today + 1..=today + 2).contains(&expire_day),
        "expires on day {expire_day}, today is {today}"
    );
    // At its end sesamed locks and expires it, as user-lock does, and keeps its files.
    wait_for("the account to be locked", Duration::from_secs(15), || {
        shadow_of("cleo")[7] == "1"
    });
    assert!(
        shadow_of("cleo")[1].starts_with('!'),
        "its password locked as well"
    );
    assert!(Path::new("/home/cleo").is_dir(), "its files stay");
    assert!(ledger_users(&daemon).is_empty());
}

#[test]
#[ignore = "changes accounts (needs root): run scripts/system-tests"]
fn grants_lists_every_kind_the_caller_holds_and_revoke_takes_each_back_at_once() {
    require_private_namespace();
    let _ = std::process::Command::new("groupadd").arg("developers").output();
    let _ = std::process::Command::new("groupadd").arg("operators").output();
    sh("useradd", &["--create-home", "--groups", "developers", "hana"]);
    sh("useradd", &["--create-home", "--shell", "/bin/bash", "ivy"]);
    let daemon = Daemon::start(&Setup {
        clusters: format!("{}\n{}", accounts_cluster(), sesame_tests::access_cluster()),
        ..Setup::default()
    });
    let ivy = daemon.client("ivy", &["admins"]);
    let bob = daemon.client("bob", &["admins"]);
    let run = |who: &sesame_tests::Client, args: &[&str]| {
        let mut full = vec!["run", "--reason", REASON, "web"];
        full.extend_from_slice(args);
        who.run_ok(&full)
    };
    let keys = scratch_dir();
    let public = ssh_keys::keygen(&keys.path().join("id_ed25519"), "ed25519", "ivy@laptop");
    run(&ivy, &["allow", "22", "--ttl", "600"]);
    run(&ivy, &["group-add", "hana", "operators", "--ttl", "600"]);
    run(
        &ivy,
        &["user-add", "cora", "--group", "developers", "--ttl", "600"],
    );
    run(&ivy, &["key-add", "--ttl", "600", &public]);

    // One line per grant, of every kind, each with its id.
    let listed = run(&ivy, &["grants"]);
    let ids: Vec<String> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), 4, "{listed}");
    for (prefix, what) in [
        ("fw-", "22/tcp from 127.0.0.1"),
        ("grp-", "hana in group operators"),
        ("acc-", "account cora"),
        ("key-", "on ivy"),
    ] {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(prefix) && l.contains(what) && l.contains("left)")),
            "{prefix} {what}: {listed}"
        );
    }
    let id = |prefix: &str| ids.iter().find(|i| i.starts_with(prefix)).cloned().expect(prefix);
    // The operator's view has the same four, with their holder.
    let out = daemon.sesamed(&["grants", "list"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    for listed_id in &ids {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(listed_id.as_str()) && l.contains("ivy ")),
            "{listed_id}: {table}"
        );
    }
    let out = daemon.sesamed(&["grants", "list", "--json"]);
    let mut kinds: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON")["kind"].to_string())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [r#""account""#, r#""key""#, r#""membership""#, r#""opening""#]
    );
    // Another client sees none of them, and cannot take them back.
    assert_eq!(run(&bob, &["grants"]).trim(), "no live grants");
    let err = bob.run_err(&["run", "web", "revoke", &id("grp-")]);
    assert!(err.contains("of yours"), "{err}");
    assert!(groups_of("hana").contains(&"operators".to_owned()));

    // The membership, at once: not at the reaper's next round.
    let out = run(&ivy, &["revoke", &id("grp-")]);
    assert_eq!(out.trim(), format!("revoked {}", id("grp-")));
    assert!(!groups_of("hana").contains(&"operators".to_owned()));
    assert!(
        groups_of("hana").contains(&"developers".to_owned()),
        "its own groups stay"
    );

    // The rest, all at once.
    let out = run(&ivy, &["revoke"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    let authorized = std::fs::read_to_string("/home/ivy/.ssh/authorized_keys").unwrap_or_default();
    assert!(
        !authorized.contains(public.split_whitespace().nth(1).expect("key data")),
        "{authorized}"
    );
    assert_eq!(shadow_of("cora")[7], "1", "the account is locked and expired");
    assert!(ledger_users(&daemon).is_empty());
    assert_eq!(run(&ivy, &["grants"]).trim(), "no live grants");
}
