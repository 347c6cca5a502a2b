//! A run on many hosts as a rollout, through a live daemon over QUIC: `--max-errors` stops it
//! and the hosts never started get no request at all; a failing canary batch (`--batch`) keeps
//! the rest from starting; the table, `--json` and the exit code (4) say which hosts were not
//! started and why. One daemon serves the whole fleet: every host is an alias of it (pinned with
//! its host name), and a failing host is an alias pinned under another host name, which the
//! daemon refuses (1005, wrong host) without running anything.

use sesame_tests::{Client, Daemon, HOST, daemon_with_client};

use crate::{stderr, stdout};

/// The daemon, and alice with the fleet pinned: `ok1`…`ok6` are the daemon, `bad1`, `bad2`
/// name another host.
fn fleet() -> (Daemon, Client) {
    let (daemon, alice) = daemon_with_client("alice", &["users"]);
    for i in 1..=6 {
        alice.pin(&daemon, &format!("ok{i}"));
    }
    let (addr, key) = (daemon.addr.to_string(), daemon.pin_token());
    for bad in ["bad1", "bad2"] {
        alice.run_ok(&[
            "host",
            "add",
            bad,
            "--addr",
            &addr,
            "--key",
            &key,
            "--cert-sha256",
            &daemon.cert_sha256,
            "--host-name",
            "elsewhere",
        ]);
    }
    (daemon, alice)
}

/// How many `whoami` requests the daemon has ended (answered after running them).
fn whoamis_run(daemon: &Daemon) -> usize {
    daemon
        .audit()
        .iter()
        .filter(|r| r["phase"] == "end" && r["command"] == "whoami" && r["code"] == 0)
        .count()
}

/// The `--json` lines of `out` but the output chunks: one per host, then the summary.
fn json_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|l| l.get("progress").is_none())
        .collect()
}

#[test]
fn one_failure_more_than_max_errors_stops_the_rollout_and_no_later_host_is_asked() {
    let (daemon, alice) = fleet();
    let hosts = "ok1,bad1,ok2,bad2,ok3,ok4";
    let out = alice.sesame(&[
        "run",
        "--hosts",
        hosts,
        "--max-concurrency",
        "1",
        "--max-errors",
        "1",
        "--json",
        "whoami",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let lines = json_lines(&out);
    let asked: Vec<(&str, bool)> = lines[..6]
        .iter()
        .map(|l| (l["host"].as_str().expect("host"), l["started"] != false))
        .collect();
    assert_eq!(
        asked,
        [
            ("ok1", true),
            ("bad1", true),
            ("ok2", true),
            ("bad2", true),
            ("ok3", false),
            ("ok4", false)
        ]
    );
    assert_eq!(lines[1]["code"], 1005, "{}", lines[1]);
    assert_eq!(
        lines[6]["summary"],
        serde_json::json!({"ok": 2, "failed": 2, "parked": 0, "no_answer": 0, "not_started": 2,
            "stopped": "2 hosts failed, more than --max-errors 1 allows (1)"})
    );
    // The hosts not started were never asked: the daemon ran whoami for ok1 and ok2 only.
    assert_eq!(whoamis_run(&daemon), 2);
    assert!(
        stderr(&out).contains("2 of 6 hosts: 2 ok, 2 failed, 2 not started; stopped: 2 hosts failed"),
        "{}",
        stderr(&out)
    );
    // Not a terminal: no progress bar, no colour.
    assert!(!stderr(&out).contains(['\r', '\x1b']), "{:?}", stderr(&out));

    // The table says so too; a percentage rounds down (20% of 6 hosts is 1 failure allowed).
    let out = alice.sesame(&[
        "run",
        "--hosts",
        hosts,
        "--parallel",
        "1",
        "--max-errors",
        "20%",
        "--no-stream",
        "whoami",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let table = stdout(&out);
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 7, "{table}");
    assert_eq!(rows[0][..4], ["HOST", "VIA", "RESULT", "TIME"], "{table}");
    assert_eq!(rows[2][..3], ["bad1", "quic", "error"], "{table}");
    for row in &rows[5..] {
        assert_eq!(row[2..5], ["not", "started", "-"], "{table}");
        assert!(
            row.join(" ")
                .ends_with("stopped: 2 hosts failed, more than --max-errors 20% allows (1)")
        );
    }
    assert_eq!(whoamis_run(&daemon), 4);

    // Within the tolerance every host runs, and the exit code is the hosts' own (1: an error).
    let out = alice.sesame(&["run", "--hosts", hosts, "--max-errors", "2", "whoami"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(whoamis_run(&daemon), 8);
}

#[test]
fn a_canary_batch_that_fails_keeps_the_rest_from_starting() {
    let (daemon, alice) = fleet();
    // The first two hosts are the canary; bad1 among them fails, so ok3… never start, though
    // as many as ten could run at once.
    let out = alice.sesame(&[
        "run",
        "--hosts",
        "ok1,bad1,ok2,ok3,ok4",
        "--batch",
        "2",
        "--max-concurrency",
        "10",
        "--json",
        "whoami",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let lines = json_lines(&out);
    let not_started: Vec<&str> = lines
        .iter()
        .filter(|l| l["started"] == false)
        .map(|l| l["host"].as_str().expect("host"))
        .collect();
    assert_eq!(not_started, ["ok2", "ok3", "ok4"]);
    assert_eq!(
        lines.last().expect("summary")["summary"]["stopped"],
        "1 of the 2 hosts of the first batch (--batch) failed"
    );
    assert_eq!(whoamis_run(&daemon), 1);

    // A canary that succeeds lets the rest run: every host, exit 0.
    alice.run_ok(&["group", "set", "web", "ok1,ok2,ok3,ok4,ok5,ok6"]);
    let out = alice.sesame(&["run", "--group", "web", "--batch", "34%", "whoami"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(whoamis_run(&daemon), 7);
    assert!(stderr(&out).contains("6 of 6 hosts: 6 ok"), "{}", stderr(&out));
}

#[test]
fn rollout_options_need_many_hosts_and_sane_numbers() {
    let (_daemon, alice) = daemon_with_client("alice", &["users"]);
    for (args, why) in [
        (&["run", "--max-errors", "1", HOST, "whoami"][..], "--hosts"),
        (&["run", "--batch", "1", HOST, "whoami"][..], "--hosts"),
        (
            &["run", "--hosts", HOST, "--max-concurrency", "0", "whoami"][..],
            "at least one host",
        ),
        (
            &["run", "--hosts", HOST, "--batch", "0%", "whoami"][..],
            "at least one host",
        ),
        (
            &["run", "--hosts", HOST, "--max-errors", "120%", "whoami"][..],
            "at most 100%",
        ),
        (
            &["run", "--hosts", HOST, "--max-errors", "a few", "whoami"][..],
            "a percentage",
        ),
    ] {
        let out = alice.sesame(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn labels_choose_the_hosts_alone_or_within_a_group() {
    let (daemon, alice) = daemon_with_client("alice", &["users"]);
    let (addr, key) = (daemon.addr.to_string(), daemon.pin_token());
    for (name, labels) in [
        ("web1", "role=web,env=prod"),
        ("web2", "role=web,env=test"),
        ("db1", "role=db"),
    ] {
        alice.run_ok(&[
            "host",
            "add",
            name,
            "--addr",
            &addr,
            "--key",
            &key,
            "--cert-sha256",
            &daemon.cert_sha256,
            "--host-name",
            HOST,
            "--label",
            labels,
        ]);
    }
    alice.pin(&daemon, "bare");
    // `host label` sets, replaces and removes; with nothing to change it shows them.
    assert_eq!(
        alice.run_ok(&["host", "label", "db1", "env=prod", "dc=fra1"]),
        "db1\tdc=fra1,env=prod,role=db\n"
    );
    assert_eq!(
        alice.run_ok(&["host", "label", "db1", "dc-"]),
        "db1\tenv=prod,role=db\n"
    );
    assert_eq!(alice.run_ok(&["host", "label", "bare"]), "bare\t\n");
    let listed: Vec<serde_json::Value> = alice
        .run_ok(&["host", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let web1 = listed.iter().find(|h| h["name"] == "web1").expect("web1");
    assert_eq!(web1["labels"], serde_json::json!({"env": "prod", "role": "web"}));

    let hosts_of = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["run", "--json"];
        all.extend_from_slice(args);
        all.push("whoami");
        let out = alice.sesame(&all);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        json_lines(&out)
            .iter()
            .filter_map(|l| l["host"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(hosts_of(&["--where", "role=web"]), ["web1", "web2"]);
    assert_eq!(hosts_of(&["--where", "env=prod"]), ["db1", "web1"]);
    assert_eq!(hosts_of(&["--where", "role=web,env!=prod"]), ["web2"]);
    // Hosts without the label (web, pinned unlabelled by daemon_with_client) match KEY!=VALUE.
    assert_eq!(hosts_of(&["--where", "env!=prod"]), ["bare", "web", "web2"]);
    // Within a group or --hosts: only those of them that match, in their order.
    alice.run_ok(&["group", "set", "mixed", "web2,db1,web1,bare"]);
    assert_eq!(
        hosts_of(&["--group", "mixed", "--where", "env=prod"]),
        ["db1", "web1"]
    );
    assert_eq!(
        hosts_of(&["--hosts", "web2,web1", "--where", "role=web"]),
        ["web2", "web1"]
    );
    assert_eq!(daemon_whoamis(&daemon), 12);

    // A group emptied by `host remove` chooses nothing with --where: never every pinned host.
    alice.pin(&daemon, "gone");
    alice.run_ok(&["host", "label", "gone", "role=web"]);
    alice.run_ok(&["group", "set", "emptied", "gone"]);
    alice.run_ok(&["host", "remove", "gone"]);
    // Nothing matching, or a malformed label or selector: exit 2, nothing sent.
    for (args, why) in [
        (
            &["run", "--group", "emptied", "--where", "role=web", "whoami"][..],
            "no host given",
        ),
        (
            &["run", "--where", "role=cache", "whoami"][..],
            "no pinned host has labels matching --where role=cache",
        ),
        (
            &["run", "--group", "mixed", "--where", "role=cache", "whoami"][..],
            "no host given",
        ),
        (
            &["run", "--where", "role", "whoami"][..],
            "KEY=VALUE or KEY!=VALUE",
        ),
        (&["host", "label", "web1", "role=web server"][..], "may hold only"),
        (&["host", "label", "web1", "role"][..], "KEY- to remove"),
        (&["host", "label", "web9", "role=web"][..], "web9"),
    ] {
        let out = alice.sesame(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(daemon_whoamis(&daemon), 12);

    // A label edited by hand into hosts.toml is read as strictly as one given here.
    let hosts_toml = alice.home.path().join("hosts.toml");
    let text = std::fs::read_to_string(&hosts_toml).expect("hosts.toml");
    std::fs::write(&hosts_toml, text.replace("role = \"db\"", "role = \"d b\"")).expect("write");
    let err = alice.run_err(&["run", "--where", "role=web", "whoami"]);
    assert!(
        err.contains("hosts.toml") && err.contains("may hold only"),
        "{err}"
    );
}

/// Every `whoami` the daemon ran, whatever its outcome.
fn daemon_whoamis(daemon: &Daemon) -> usize {
    daemon
        .audit()
        .iter()
        .filter(|r| r["phase"] == "end" && r["command"] == "whoami")
        .count()
}
