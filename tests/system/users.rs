//! Accounts, groups and SSH keys through the stock modules, with the real shadow tools, in the
//! private namespace (its /etc is an overlay and /home a tmpfs).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sesame_tests::{Daemon, Setup, accounts_cluster};

use crate::{REASON, require_private_namespace, sh};

/// A real ed25519 key (ssh-keygen).
const DAVE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpyo4ZeTj/fgjh+FvzKwzxzIh8WWnHh6ELIpKiD6cti dave@laptop";

/// The shadow entry's fields for `name`, if any.
fn shadow(name: &str) -> Option<Vec<String>> {
    std::fs::read_to_string("/etc/shadow")
        .expect("shadow")
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .map(|l| l.split(':').map(str::to_owned).collect())
}

#[test]
#[ignore = "changes accounts: run scripts/system-tests"]
fn onboarding_and_offboarding_a_developer_through_policy() {
    require_private_namespace();
    let _ = std::process::Command::new("userdel")
        .args(["--remove", "dave"])
        .output();
    let _ = std::process::Command::new("groupadd").arg("developers").output();
    let setup = Setup {
        clusters: accounts_cluster(),
        ..Setup::default()
    };
    let daemon = Daemon::start(&setup);
    let olga = daemon.client("olga", &["onboarders"]);
    let dave = daemon.client("dave", &["staff"]);

    // Onboarding: an onboarder creates the account in a group the policy lets her manage.
    let out = olga.run_ok(&[
        "run",
        "--reason",
        REASON,
        "web",
        "user-add",
        "dave",
        "--group",
        "developers",
        "--comment",
        "Dave Example",
    ]);
    assert!(out.contains("created dave"), "{out}");
    let groups = sh("id", &["-nG", "dave"]);
    assert!(groups.split_whitespace().any(|g| g == "developers"), "{groups}");
    let home = Path::new("/home/dave");
    let uid: u32 = sh("id", &["-u", "dave"]).trim().parse().expect("uid");
    assert_eq!(std::fs::metadata(home).expect("home").uid(), uid);

    // Outside the grant: a group she may not manage (3004), a protected account (1010).
    let err = olga.run_err(&[
        "run", "--reason", REASON, "web", "user-add", "erin", "--group", "sudo",
    ]);
    assert!(err.contains("error 3004") && err.contains("sudo"), "{err}");
    assert!(shadow("erin").is_none(), "nothing was created");
    let err = olga.run_err(&["run", "--reason", REASON, "web", "user-lock", "root"]);
    assert!(err.contains("error 1010") && err.contains("protected"), "{err}");

    // The stock policy wants a reason for account changes: without one, nothing is written.
    let err = dave.run_err(&["run", "web", "key-add", DAVE_KEY]);
    assert!(
        err.contains("error 1010") && err.contains("accounts::key-add needs a reason"),
        "{err}"
    );
    assert!(!home.join(".ssh/authorized_keys").exists(), "no key was added");
    // Dave adds his own key (self service); the file is his, 0600, in a 0700 .ssh.
    let out = dave.run_ok(&["run", "--reason", REASON, "web", "key-add", DAVE_KEY]);
    assert!(out.contains("added key"), "{out}");
    let keys = home.join(".ssh/authorized_keys");
    let meta = std::fs::metadata(&keys).expect("authorized_keys");
    assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o600));
    let ssh = std::fs::metadata(home.join(".ssh")).expect(".ssh");
    assert_eq!((ssh.uid(), ssh.mode() & 0o777), (uid, 0o700));
    assert_eq!(
        std::fs::read_to_string(&keys).expect("read"),
        format!("{DAVE_KEY}\n")
    );
    let out = dave.run_ok(&["run", "--reason", REASON, "web", "key-add", DAVE_KEY]);
    assert!(out.contains("already present"), "no duplicate: {out}");
    assert_eq!(std::fs::read_to_string(&keys).expect("read").lines().count(), 1);
    // Dave may not touch other accounts, and may not pass options with his key.
    let err = dave.run_err(&["run", "--reason", REASON, "web", "user-lock", "dave"]);
    assert!(err.contains("error 1010"), "{err}");
    let err = dave.run_err(&[
        "run",
        "--reason",
        REASON,
        "web",
        "key-add",
        "command=\"/bin/sh\"",
        DAVE_KEY,
    ]);
    assert!(err.contains("not one of") || err.contains("options"), "{err}");

    // Offboarding: lock (password locked AND account expired, so keys stop working too).
    olga.run_ok(&["run", "--reason", REASON, "web", "user-lock", "dave"]);
    let status = sh("passwd", &["-S", "dave"]);
    assert_eq!(status.split_whitespace().nth(1), Some("L"), "{status}");
    let fields = shadow("dave").expect("dave");
    assert!(fields[1].starts_with('!'), "password locked: {fields:?}");
    assert_eq!(fields[7], "1", "expired on 1970-01-02: {fields:?}");
    olga.run_ok(&["run", "--reason", REASON, "web", "user-unlock", "dave"]);
    assert_eq!(shadow("dave").expect("dave")[7], "", "expiry cleared");
    olga.run_ok(&["run", "--reason", REASON, "web", "user-lock", "dave"]);
    olga.run_ok(&["run", "--reason", REASON, "web", "user-remove", "dave"]);
    assert!(shadow("dave").is_none());
    assert!(!home.exists(), "home removed");

    let effects: Vec<String> = daemon
        .audit()
        .into_iter()
        .filter(|r| r["event"] == "request" && r["phase"] == "end")
        .flat_map(|r| r["effects"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e.as_str().map(str::to_owned))
        .collect();
    for want in [
        "users.create dave",
        "users.add-key dave ssh-ed25519",
        "users.lock dave",
        "users.remove dave",
    ] {
        assert!(
            effects.iter().any(|e| e.starts_with(want)),
            "{want} audited: {effects:?}"
        );
    }
}

/// The lines naming `name` in the account databases (passwd, shadow, group, gshadow), to show an
/// account is unchanged.
fn account_lines(name: &str) -> Vec<String> {
    ["passwd", "shadow", "group", "gshadow"]
        .iter()
        .flat_map(|db| {
            std::fs::read_to_string(Path::new("/etc").join(db))
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    let mut f = l.split(':');
                    f.next() == Some(name) || f.nth(2).is_some_and(|m| m.split(',').any(|m| m == name))
                })
                .map(|l| format!("{db}: {l}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Runs `command` (as useradd, groupadd) and ignores a failure (the account or group exists).
fn ensure(program: &str, args: &[&str]) {
    let _ = std::process::Command::new(program).args(args).output();
}

#[test]
#[ignore = "changes accounts: run scripts/system-tests"]
fn system_accounts_and_administrators_are_out_of_an_onboarders_reach() {
    require_private_namespace();
    ensure("groupadd", &["developers"]);
    ensure("groupadd", &["--system", "sudo"]);
    ensure(
        "useradd",
        &[
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "www-data",
        ],
    );
    // Administrators: ada is in sudo only, adam in sudo and developers.
    for (admin, groups) in [("ada", "sudo"), ("adam", "sudo,developers")] {
        ensure("userdel", &["--remove", admin]);
        sh("useradd", &["--create-home", "--groups", groups, admin]);
    }
    // Should a check fail, nothing outside this namespace may change: the system accounts'
    // homes move to the private /home first (daemon's is /usr/sbin, bin's /bin).
    for account in ["daemon", "bin", "www-data"] {
        let home = format!("/home/sys-{account}");
        std::fs::create_dir_all(&home).expect("mkdir");
        sh("usermod", &["--home", &home, account]);
    }
    let setup = Setup {
        clusters: accounts_cluster(),
        ..Setup::default()
    };
    let daemon = Daemon::start(&setup);
    let olga = daemon.client("olga", &["onboarders"]);
    let impostor = daemon.client("daemon", &["staff"]);

    let targets = ["daemon", "bin", "www-data", "ada", "adam"];
    let before: Vec<Vec<String>> = targets.iter().map(|t| account_lines(t)).collect();
    for args in [
        &["user-remove", "daemon"][..],
        &["user-lock", "bin"],
        &["user-remove", "www-data"],
        &["user-lock", "ada"],
        &["user-lock", "adam"],
        &["user-remove", "adam"],
        &["group-remove", "adam", "developers"],
    ] {
        let mut line = vec!["run", "--reason", REASON, "web"];
        line.extend(args);
        let err = olga.run_err(&line);
        assert!(
            err.contains("error 3004") || err.contains("error 1010"),
            "{args:?}: {err}"
        );
    }
    // A client enrolled under a system account's name gets no self service.
    let err = impostor.run_err(&["run", "--reason", REASON, "web", "key-add", DAVE_KEY]);
    assert!(err.contains("error 3004") || err.contains("error 1010"), "{err}");
    let after: Vec<Vec<String>> = targets.iter().map(|t| account_lines(t)).collect();
    assert_eq!(before, after, "accounts unchanged");
    for account in ["daemon", "bin", "www-data"] {
        let home = format!("/home/sys-{account}");
        assert_eq!(
            std::fs::read_dir(&home).expect("home").count(),
            0,
            "nothing written in {home}"
        );
    }
    for admin in ["ada", "adam"] {
        assert!(
            !Path::new("/home").join(admin).join(".ssh").exists(),
            "no keys for {admin}"
        );
    }
    let effects: Vec<serde_json::Value> = daemon
        .audit()
        .into_iter()
        .filter(|r| r["event"] == "request" && r["phase"] == "end")
        .flat_map(|r| r["effects"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(effects.is_empty(), "no effects: {effects:?}");
}
