//! Declared programs run as the account their declaration names, as root would run them in
//! production: privileges dropped, supplementary groups cleared, root only when written so.

use sesame_tests::{Daemon, Setup, module};

use crate::require_private_namespace;

/// A daemon with an `ops` cluster whose `whoami-as-*` commands run `/usr/bin/id` as the named
/// account, and a policy that grants them to the operators.
fn daemon() -> Daemon {
    let exec = module("exec");
    let clusters = format!(
        r#"[clusters.ops]
capabilities = ["exec"]
[clusters.ops.commands]
id-nobody = {exec:?}
id-root = {exec:?}
fds = {exec:?}

[exec.programs.id-nobody]
path = "/usr/bin/id"
user = "nobody"

[exec.programs.id-root]
path = "/usr/bin/id"
user = "root"

[exec.programs.fds]
path = "/bin/ls"
args = ["-l", "/proc/self/fd"]
user = "nobody"
"#
    );
    let data = std::fs::read_to_string(sesame_tests::repo_root().join("policies/data.json"))
        .expect("data.json")
        .replace(
            r#""ops": ["restart-app", "disk-usage"]"#,
            r#""ops": ["id-nobody", "id-root", "fds"]"#,
        )
        .replace(
            r#""exec": {"programs": {"restart-app": {"unit": ["web", "worker"]}, "disk-usage": {}}}"#,
            r#""exec": {"programs": {"id-nobody": {}, "id-root": {}, "fds": {}}}"#,
        );
    Daemon::start(&Setup {
        clusters: clusters + &Setup::default().clusters,
        policy_data: Some(data),
        ..Setup::default()
    })
}

/// `id`'s output with the names dropped: `uid=65534 gid=65534 groups=65534`.
fn ids(out: &str) -> String {
    out.split_whitespace()
        .map(|w| w.split('(').next().unwrap_or(w))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
#[ignore = "runs programs as other accounts (needs root): run scripts/system-tests"]
fn a_program_runs_as_its_account_with_no_other_group() {
    require_private_namespace();
    let daemon = daemon();
    let olga = daemon.client("olga", &["operators"]);
    let (uid, gid) = {
        let line = std::fs::read_to_string("/etc/passwd")
            .expect("passwd")
            .lines()
            .find(|l| l.starts_with("nobody:"))
            .expect("nobody")
            .to_owned();
        let f: Vec<String> = line.split(':').map(str::to_owned).collect();
        (f[2].clone(), f[3].clone())
    };
    // `id` lists every group the process has: only nobody's own, none of root's. (It prints
    // numbers only: the program gets no environment, and names need none, but this namespace's
    // NSS answers numbers; either way the ids are what matter.)
    let out = olga.run_ok(&["run", "web", "id-nobody"]);
    assert_eq!(ids(&out), format!("uid={uid} gid={gid} groups={gid}"), "{out}");
    // Root only when written so, and even then without the daemon's supplementary groups.
    let out = olga.run_ok(&["run", "web", "id-root"]);
    assert_eq!(ids(&out), "uid=0 gid=0 groups=0", "{out}");
    // Nothing of the daemon's is open in it: standard input is /dev/null, output and error its
    // own pipes, and every other descriptor is one `ls` opened itself under its own /proc entry
    // (the listing, and whatever its libc opens there).
    let listing = olga.run_ok(&["run", "web", "fds"]);
    let fds: Vec<(u32, String)> = listing
        .lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            Some((left.split_whitespace().last()?.parse().ok()?, target.to_owned()))
        })
        .collect();
    let own = fds
        .iter()
        .find(|(fd, _)| *fd == 3)
        .and_then(|(_, t)| t.strip_suffix("/fd"))
        .expect("fd 3 is the listing of /proc/PID/fd")
        .to_owned();
    for (fd, target) in &fds {
        let ok = match fd {
            0 => target == "/dev/null",
            1 | 2 => target.starts_with("pipe:"),
            _ => target.starts_with(&format!("{own}/")),
        };
        assert!(
            ok,
            "descriptor {fd} -> {target} is not the program's own:\n{listing}"
        );
    }
}
