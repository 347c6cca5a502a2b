//! A command's output as it comes, through a live daemon over QUIC: what a module logs reaches
//! `sesame run` while it runs, each chunk sealed, in order, then the answer; on many hosts each
//! line carries its host's name; `--json` makes each chunk an object; `--no-stream` prints only
//! the answer; and what is streamed counts toward the request's output limit.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sesame_tests::{Client, Daemon, Setup, module};

/// A daemon whose `basic` cluster has `ticker` and `echo`, with `policy_data` if given, and a
/// tester enrolled (the stock policy lets testers run anything in `basic`).
fn daemon(policy_data: Option<String>) -> (Daemon, Client) {
    let clusters = format!(
        "[clusters.basic.commands]\necho = {:?}\nticker = {:?}\n",
        module("echo"),
        module("ticker"),
    );
    let daemon = Daemon::start(&Setup {
        clusters,
        policy_data,
        ..Setup::default()
    });
    let client = daemon.client("tess", &["testers"]);
    (daemon, client)
}

/// Runs `sesame ARGS` as `client`, and returns each line of its standard output with when it
/// arrived (the wall clock, Unix µs, and since the start), and its exit status.
fn lines_as_they_come(client: &Client, args: &[&str]) -> (Vec<(String, u128, Duration)>, bool, Duration) {
    let started = Instant::now();
    let mut child = client
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn sesame");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("utf-8 line");
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_micros();
        lines.push((line, wall, started.elapsed()));
    }
    let status = child.wait().expect("wait");
    (lines, status.success(), started.elapsed())
}

#[test]
fn what_a_module_logs_reaches_the_client_while_it_runs() {
    let (_daemon, tess) = daemon(None);
    let (lines, ok, total) = lines_as_they_come(&tess, &["run", "web", "ticker", "10", "200"]);
    assert!(ok, "{lines:?}");
    let texts: Vec<&str> = lines.iter().map(|(l, _, _)| l.as_str()).collect();
    assert_eq!(texts.len(), 11, "{texts:?}");
    for (i, text) in texts[..10].iter().enumerate() {
        assert!(text.starts_with(&format!("tick {i} ")), "{texts:?}");
    }
    assert_eq!(texts[10], "done");
    // The module slept 1.8 s between its first line and its last: had the lines come with the
    // answer, they would have arrived together at the end.
    let (first, last) = (lines[0].2, lines[9].2);
    assert!(
        last - first >= Duration::from_millis(1500),
        "the first line at {first:?}, the last at {last:?}, all done at {total:?}"
    );
    // How long each line took from the module's log call to this process (the same clock).
    let mut delays: Vec<u128> = lines[..10]
        .iter()
        .map(|(text, arrived, _)| {
            let logged: u128 = text
                .rsplit(' ')
                .next()
                .and_then(|t| t.parse().ok())
                .expect("a time");
            arrived.saturating_sub(logged)
        })
        .collect();
    delays.sort_unstable();
    eprintln!("log call to client: p50 {} µs, max {} µs", delays[5], delays[9]);
}

#[test]
fn without_streaming_only_the_answer_is_printed_and_json_has_an_object_per_chunk() {
    let (_daemon, tess) = daemon(None);
    let out = tess.run_ok(&["run", "--no-stream", "web", "ticker", "3", "0"]);
    assert_eq!(out, "done\n");
    let out = tess.run_ok(&["run", "--json", "web", "ticker", "2", "0"]);
    let objects: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(objects.len(), 3, "{out}");
    for (i, o) in objects[..2].iter().enumerate() {
        assert_eq!(
            (o["host"].as_str(), o["progress"].as_u64(), o["source"].as_str()),
            (Some("web"), Some(i as u64), Some("log"))
        );
        assert!(
            o["text"]
                .as_str()
                .is_some_and(|t| t.starts_with(&format!("tick {i} ")) && t.ends_with('\n'))
        );
    }
    assert_eq!(objects[2]["output"], "done");
    // A command that logs nothing answers as before.
    assert_eq!(tess.run_ok(&["run", "web", "echo", "hi"]), "hi\n");
}

#[test]
fn on_many_hosts_each_line_carries_its_host() {
    let (daemon, tess) = daemon(None);
    tess.pin(&daemon, "web2");
    let out = tess.run_ok(&["run", "--hosts", "web,web2", "ticker", "3", "0"]);
    for host in ["web", "web2"] {
        let ticks = out
            .lines()
            .filter(|l| l.starts_with(&format!("{host}: tick ")))
            .count();
        assert_eq!(ticks, 3, "{host}: {out}");
    }
}

#[test]
fn streamed_output_counts_toward_the_output_limit() {
    // testers' commands in basic may answer with 1 KiB at most.
    let data = std::fs::read_to_string(sesame_tests::repo_root().join("policies/data.json"))
        .expect("data.json")
        .replace(
            r#""testing": {"#,
            r#""basic": {"limits": {"output_kb": 1}}, "testing": {"#,
        );
    let (_daemon, tess) = daemon(Some(data));
    // 20 lines of some 30 bytes fit; 100 do not.
    tess.run_ok(&["run", "web", "ticker", "20", "0"]);
    let out = tess.sesame(&["run", "web", "ticker", "100", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("streamed output of"), "{err}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.len() <= 1024,
        "no more than the limit was sent: {} bytes",
        printed.len()
    );
    // The same for what the module prints to its standard output.
    tess.run_ok(&["run", "web", "ticker", "20", "0", "stdout"]);
    let out = tess.sesame(&["run", "web", "ticker", "100", "0", "stdout"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error 3003") && err.contains("streamed output of"),
        "{err}"
    );
    assert!(out.stdout.len() <= 1024, "{} bytes printed", out.stdout.len());
}

#[test]
fn what_a_module_prints_to_its_standard_output_streams_as_output_within_the_limit() {
    let (_daemon, tess) = daemon(None);
    let (lines, ok, _) = lines_as_they_come(&tess, &["run", "web", "ticker", "5", "100", "stdout"]);
    assert!(ok, "{lines:?}");
    let texts: Vec<&str> = lines.iter().map(|(l, _, _)| l.as_str()).collect();
    assert_eq!(texts.len(), 6, "{texts:?}");
    for (i, text) in texts[..5].iter().enumerate() {
        assert!(text.starts_with(&format!("tick {i} ")), "{texts:?}");
    }
    assert_eq!(texts[5], "done");
    // As JSON each printed line is `output`, not a log line.
    let out = tess.run_ok(&["run", "--json", "web", "ticker", "2", "0", "stdout"]);
    let sources: Vec<String> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["source"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(sources, ["output", "output"], "{out}");
    // Without streaming nothing printed shows (as before); the answer is the answer.
    assert_eq!(
        tess.run_ok(&["run", "--no-stream", "web", "ticker", "3", "0", "stdout"]),
        "done\n"
    );
}
