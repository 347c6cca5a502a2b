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
args = ["/proc/self/fd"]
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
    let out = olga.run_ok(&["run", "web", "id-nobody"]);
    // `id` lists every group the process has: only nobody's own, none of root's.
    assert!(out.starts_with(&format!("uid={uid}(nobody) gid={gid}(")), "{out}");
    let groups = out.split("groups=").nth(1).expect("groups").trim();
    assert_eq!(groups.split(',').count(), 1, "one group, the primary: {out}");
    assert!(groups.starts_with(&format!("{gid}(")), "{out}");
    // Root only when written so, and even then without the daemon's supplementary groups.
    let out = olga.run_ok(&["run", "web", "id-root"]);
    assert_eq!(out.trim(), "uid=0(root) gid=0(root) groups=0(root)", "{out}");
    // Only standard input, output and error are open in it (3 is ls's own directory).
    assert_eq!(olga.run_ok(&["run", "web", "fds"]), "0\n1\n2\n3\n", "no descriptor of the daemon's leaks");
}
