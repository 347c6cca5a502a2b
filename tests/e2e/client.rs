//! The client's daily use end to end: `sesame ssh-proxy` against a daemon with the dry-run
//! firewall and a TCP echo server on loopback standing in for sshd; errors with hints; `--json`.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sesame_tests::{Client, Daemon, HOST, Setup, access_cluster, binary};

use crate::{stderr, stdout};

/// A daemon whose policy lets group `users` open `ports` (tcp, for the caller).
fn daemon_granting(ports: &[u16]) -> Daemon {
    let list = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
    let data = std::fs::read_to_string(sesame_tests::repo_root().join("policies/data.json"))
        .expect("data.json")
        .replace(r#""ports": [22]"#, &format!(r#""ports": [{list}]"#));
    Daemon::start(&Setup {
        clusters: format!("{}\n{}", Setup::default().clusters, access_cluster()),
        policy_data: Some(data),
        ..Setup::default()
    })
}

/// A TCP echo server on 127.0.0.1: echoes each connection until its end of file, then closes
/// it. For every connection it notes whether the daemon's firewall record already held the
/// opening for its port at the moment it was accepted.
struct Echo {
    accepted: Arc<Mutex<Vec<bool>>>,
}

impl Echo {
    /// A listener on a free port, bound before the daemon starts (its policy names the port).
    fn listen() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo server");
        let port = listener.local_addr().expect("echo address").port();
        (listener, port)
    }

    fn serve(listener: TcpListener, daemon: &Daemon) -> Self {
        let record = record(daemon);
        let port = listener.local_addr().expect("echo address").port();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                seen.lock().expect("lock").push(opened(&record, port));
                std::thread::spawn(move || {
                    let mut buf = [0; 8192];
                    while let Ok(n @ 1..) = conn.read(&mut buf) {
                        if conn.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                    let _ = conn.shutdown(Shutdown::Write);
                });
            }
        });
        Self { accepted }
    }

    /// For each connection so far: was the port opened before it came?
    fn accepted(&self) -> Vec<bool> {
        self.accepted.lock().expect("lock").clone()
    }
}

/// The dry-run firewall's record of what it opened and closed.
fn record(daemon: &Daemon) -> PathBuf {
    daemon.dir.path().join("state/firewall-dry-run.jsonl")
}

/// Whether the dry-run record holds an opening of `port` for 127.0.0.1.
fn opened(record: &Path, port: u16) -> bool {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|v| v["action"] == "open" && v["rule"]["port"] == port && v["rule"]["source"] == "127.0.0.1")
}

/// Runs `sesame ssh-proxy ARGS` as ssh would: `input` on its standard input (then closed),
/// standard output and error collected. Killed after a minute.
fn ssh_proxy(client: &Client, args: &[&str], input: Vec<u8>) -> Output {
    let mut child = Command::new(binary("sesame"))
        .arg("ssh-proxy")
        .args(args)
        .env("SESAME_HOME", client.home.path())
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sesame ssh-proxy");
    let mut stdin = child.stdin.take().expect("stdin");
    // A refusing proxy exits without reading: the write may fail, which is fine.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sesame ssh-proxy {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    writer.join().expect("writer");
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// `n` bytes of a pattern that shows reordering or loss.
fn payload(n: u32) -> Vec<u8> {
    (0..n).map(|i| u8::try_from(i % 251).unwrap_or(0)).collect()
}

#[test]
fn ssh_proxy_opens_the_port_then_pipes_the_connection_both_ways() {
    let (listener, port) = Echo::listen();
    let daemon = daemon_granting(&[22, port]);
    let alice = daemon.client("alice", &["users"]);
    let echo = Echo::serve(listener, &daemon);
    let port_arg = port.to_string();

    let input = payload(300_000);
    let out = ssh_proxy(&alice, &["web", &port_arg], input.clone());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        out.stdout == input,
        "standard output carries exactly the echoed bytes ({} of {})",
        out.stdout.len(),
        input.len()
    );
    assert_eq!(stderr(&out), "", "nothing to say on success");
    assert_eq!(
        echo.accepted(),
        [true],
        "one connection, and the port was open before it came"
    );
    let rec = daemon.wait_audit("allow", |r| {
        r["event"] == "request" && r["phase"] == "end" && r["command"] == "allow"
    });
    assert_eq!(rec["code"], 0, "{rec}");
    assert_eq!(rec["args"], serde_json::json!([port_arg, "--ttl", "60"]));
    // The answer's receipt is kept, as for `sesame run`.
    let receipts = std::fs::read_to_string(alice.home.path().join("receipts")).expect("receipts");
    let receipt: serde_json::Value = serde_json::from_str(receipts.trim_end()).expect("one receipt");
    assert_eq!(
        (&receipt["command"], &receipt["id"], &receipt["seq"]),
        (&"allow".into(), &rec["id"], &rec["seq"]),
        "{receipt}"
    );

    // --verbose says what was opened and where it connected, on standard error only.
    let out = ssh_proxy(
        &alice,
        &["--verbose", "web", &port_arg, "--ttl", "90"],
        b"hello".to_vec(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout, b"hello");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("sesame: web: opened {port}/tcp for 127.0.0.1")),
        "{err}"
    );
    assert!(
        err.contains(&format!("sesame: web: connected to 127.0.0.1:{port}")),
        "{err}"
    );
    assert_eq!(echo.accepted(), [true, true]);
}

#[test]
fn ssh_proxy_never_connects_when_access_is_refused() {
    let (listener, port) = Echo::listen();
    let daemon = daemon_granting(&[22]);
    let alice = daemon.client("alice", &["users"]);
    let tess = daemon.client("tess", &["testers"]);
    let echo = Echo::serve(listener, &daemon);
    let port_arg = port.to_string();

    // A port the grant does not cover: the allow module's host call is refused.
    let out = ssh_proxy(&alice, &["web", &port_arg], b"SSH-2.0-x\r\n".to_vec());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("sesame: web: error 3004 (host call denied): "),
        "{err}"
    );
    assert!(err.contains(&format!("port {port} is not granted")), "{err}");
    assert!(err.contains("\nhint: "), "{err}");
    assert!(out.stdout.is_empty(), "nothing on standard output");

    // A client whose groups may not run allow at all: denied by policy.
    let out = ssh_proxy(&tess, &["web", &port_arg], b"SSH-2.0-x\r\n".to_vec());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("sesame: web: error 1010 (denied by policy)"),
        "{err}"
    );
    assert!(
        err.contains("hint: ") && err.contains("sesamed policy eval"),
        "{err}"
    );

    // Not a pinned host: a local error, before anything is sent.
    let out = ssh_proxy(&alice, &["db9.example.invalid", &port_arg], Vec::new());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("sesame: no pinned host is called \"db9.example.invalid\""),
        "{err}"
    );
    assert!(err.contains("hint: ") && err.contains("sesame host add"), "{err}");

    std::thread::sleep(Duration::from_millis(200));
    assert!(
        echo.accepted().is_empty(),
        "the echo server never saw a connection"
    );
    assert!(!opened(&record(&daemon), port), "nothing was opened");
}

#[test]
fn ssh_proxy_finds_the_host_by_address_or_daemon_name() {
    let (listener, port) = Echo::listen();
    let daemon = daemon_granting(&[22, port]);
    let alice = daemon.client("alice", &["users"]);
    let echo = Echo::serve(listener, &daemon);
    let port_arg = port.to_string();

    for host in ["127.0.0.1", HOST] {
        let out = ssh_proxy(&alice, &[host, &port_arg], format!("via {host}").into_bytes());
        assert_eq!(out.status.code(), Some(0), "{host}: {}", stderr(&out));
        assert_eq!(stdout(&out), format!("via {host}"));
    }
    assert_eq!(echo.accepted(), [true, true]);

    // A second pin of the same daemon makes its address ambiguous (its names are not).
    alice.pin(&daemon, "web-again");
    let out = ssh_proxy(&alice, &["127.0.0.1", &port_arg], Vec::new());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("could mean any of the pinned hosts web, web-again"),
        "{err}"
    );
    assert!(err.contains("hint: ") && err.contains("%n"), "{err}");
    let out = ssh_proxy(&alice, &["web-again", &port_arg], b"by name".to_vec());
    assert_eq!(stdout(&out), "by name", "{}", stderr(&out));
    assert_eq!(echo.accepted().len(), 3);
}

#[test]
fn ssh_proxy_says_when_the_granted_port_takes_no_connection() {
    // A free port nobody listens on.
    let port = Echo::listen().1;
    let daemon = daemon_granting(&[22, port]);
    let alice = daemon.client("alice", &["users"]);
    let started = Instant::now();
    let out = ssh_proxy(
        &alice,
        &["web", &port.to_string(), "--connect-timeout", "1"],
        Vec::new(),
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "sesame: web: access to port {port} was granted, but connecting to 127.0.0.1 port {port} failed"
        )),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(opened(&record(&daemon), port), "the grant came first");
}

#[test]
fn json_output_parses() {
    let daemon = daemon_granting(&[22]);
    let alice = daemon.client("alice", &["users"]);
    let parse = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    };

    let out = alice.sesame(&["run", "--json", "web", "whoami"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = parse(&stdout(&out));
    // What whoami logs comes first, as it came, then the answer.
    assert_eq!(v.len(), 2, "one object per chunk, then the answer's");
    assert_eq!(
        (&v[0]["progress"], &v[0]["source"], &v[0]["text"]),
        (&0.into(), &"log".into(), &"whoami for client alice\n".into())
    );
    let v = &v[1..];
    assert_eq!(
        (&v[0]["host"], &v[0]["via"], &v[0]["ok"]),
        (&"web".into(), &"quic".into(), &true.into())
    );
    assert_eq!(v[0]["code"], 0);
    assert!(
        v[0]["output"]
            .as_str()
            .is_some_and(|o| o.contains("client=alice")),
        "{}",
        v[0]
    );
    assert!(v[0]["elapsed_ms"].is_u64());

    let out = alice.sesame(&["run", "--json", "web", "testing::spin"]);
    assert_eq!(out.status.code(), Some(1), "the exit status is unchanged");
    let v = parse(&stdout(&out));
    assert_eq!((&v[0]["ok"], &v[0]["code"]), (&false.into(), &1010.into()));
    assert!(
        stderr(&out).starts_with("sesame: web: error 1010"),
        "{}",
        stderr(&out)
    );

    let out = alice.sesame(&["run", "--json", "nowhere", "whoami"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "a local error prints no JSON");
    assert!(
        stderr(&out).starts_with("sesame: unknown host \"nowhere\""),
        "{}",
        stderr(&out)
    );

    alice.run_ok(&["group", "set", "all", "web"]);
    let hosts = parse(&alice.run_ok(&["host", "list", "--json"]));
    assert_eq!(
        hosts,
        [serde_json::json!({
            "name": "web",
            "host_name": HOST,
            "key": daemon.host_key,
            "next_key_sha256": daemon.next_key_sha256,
            "addr": daemon.addr.to_string(),
            "cert_sha256": daemon.cert_sha256,
            "sqs": null,
            "labels": {},
        })]
    );
    let groups = parse(&alice.run_ok(&["group", "list", "--json"]));
    assert_eq!(groups, [serde_json::json!({"name": "all", "hosts": ["web"]})]);
    let key = parse(&alice.run_ok(&["key", "show", "--json"]));
    assert_eq!(key.len(), 1);
    assert_eq!(key[0]["public_key"], alice.key.as_str());
    assert!(
        key[0]["reply_queue"]
            .as_str()
            .is_some_and(|q| q.starts_with("sesame-reply-") && q.len() == 29),
        "{}",
        key[0]
    );
}

#[test]
fn errors_are_plain_text_with_hints_when_stderr_is_not_a_terminal() {
    let daemon = daemon_granting(&[22]);
    let alice = daemon.client("alice", &["users"]);
    let stranger = Client::new();
    stranger.pin(&daemon, "web");
    let no_key = Client {
        home: tempfile::tempdir().expect("tempdir"),
        key: String::new(),
        env: Vec::new(),
    };
    let cases: [(&Client, &[&str], i32, &str); 5] = [
        (&alice, &["run", "web", "testing::spin"], 1, "sesamed policy eval"),
        (&alice, &["run", "web", "nothing-here"], 1, "CLUSTER::COMMAND"),
        (&alice, &["run", "web9", "whoami"], 2, "sesame host add"),
        (&no_key, &["key", "show"], 2, "sesame keygen"),
        (
            &stranger,
            &["run", "--timeout", "2", "web", "whoami"],
            3,
            "not enrolled",
        ),
    ];
    for (client, args, code, hint) in cases {
        // NO_COLOR unset: only the pipe keeps the colour out.
        let out = Command::new(binary("sesame"))
            .args(args)
            .env("SESAME_HOME", client.home.path())
            .env_remove("NO_COLOR")
            .output()
            .expect("run sesame");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.starts_with("sesame: "), "{args:?}: {err}");
        assert!(!err.contains('\x1b'), "{args:?}: escape codes in {err:?}");
        let hint_line = err
            .lines()
            .find(|l| l.starts_with("hint: "))
            .unwrap_or_else(|| panic!("{args:?}: no hint in {err}"));
        assert!(hint_line.contains(hint), "{args:?}: {hint_line}");
    }
}

#[test]
fn colour_is_forced_by_clicolor_force_and_refused_by_no_color() {
    let daemon = daemon_granting(&[22]);
    let alice = daemon.client("alice", &["users"]);
    let run = |env: &[(&str, &str)]| {
        let mut command = alice.command(&["run", "web", "testing::spin"]);
        command.env_remove("NO_COLOR").env_remove("CLICOLOR");
        for (k, v) in env {
            command.env(k, v);
        }
        let out = command.output().expect("run sesame");
        assert_eq!(out.status.code(), Some(1));
        stderr(&out)
    };
    let forced = run(&[("CLICOLOR_FORCE", "1")]);
    assert!(forced.starts_with("\x1b["), "{forced:?}");
    assert!(
        forced.contains("sesame:\x1b[0m") && forced.contains("hint:\x1b[0m"),
        "{forced:?}"
    );
    // NO_COLOR wins over CLICOLOR_FORCE (https://no-color.org); an empty NO_COLOR is unset.
    let refused = run(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert!(
        refused.starts_with("sesame: ") && !refused.contains('\x1b'),
        "{refused:?}"
    );
    let empty = run(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "")]);
    assert!(empty.contains('\x1b'), "{empty:?}");
}

#[test]
fn arguments_too_large_for_one_request_are_refused_before_sending() {
    let daemon = daemon_granting(&[22]);
    let alice = daemon.client("alice", &["users"]);
    // 100 KB of argument: it used to go out, be cut off by the host, and come back as "bad
    // response … check the pinned host key". Now each limit is checked here, as the host would.
    let one_big = ["a".repeat(100_000)];
    let many = vec!["c".repeat(4000); 17];
    let cases: [(&[String], &str); 2] = [
        (
            &one_big,
            "the request cannot be sent: malformed request: argument 0 is 100000 bytes (at most 4096)",
        ),
        (
            &many,
            "the request is too large to send: 68173 bytes encoded, and one request carries at most 65459 (its arguments take 68000 bytes)",
        ),
    ];
    for (args, why) in cases {
        let mut argv = vec!["run", "web", "echo"];
        argv.extend(args.iter().map(String::as_str));
        let out = alice.sesame(&argv);
        let err = stderr(&out);
        let shown: String = err.chars().take(400).collect();
        assert_eq!(out.status.code(), Some(2), "a local problem: {shown}");
        assert!(err.contains(why), "{shown}");
        assert!(!err.contains("pinned host key"), "{shown}");
    }
    // Nothing reached the host.
    assert!(
        !daemon.audit().iter().any(|r| r["command"] == "echo"),
        "a request was sent"
    );
    // Within the limits it runs.
    let fits = vec!["d".repeat(4000); 15];
    let mut argv = vec!["run", "web", "echo"];
    argv.extend(fits.iter().map(String::as_str));
    assert_eq!(alice.run_ok(&argv).len(), 15 * 4000 + 14 + 1);
}

/// Issue 19 (5): the box key is the same both ways, so a host's sealed answer to alice, with the
/// envelope's sender rewritten to alice's key, opens at the host. Whoever can put bytes on the
/// path (a queue credential is enough over SQS) must not get a genuine host-sealed answer for
/// alice's request id out of that: the daemon answers nothing and audits it as rejected.
#[test]
fn a_host_answer_reflected_at_the_daemon_gets_no_answer_and_is_audited_as_rejected() {
    let (daemon, raw) = crate::RawClient::enrolled();
    let alice = raw.sealer.public_key();
    let request = raw.request(crate::sesame_now(), HOST, vec!["real".into()]);
    let answer = raw
        .rt
        .block_on(sesame_client::exchange(
            &raw.host,
            &raw.seal(&request),
            Duration::from_secs(10),
        ))
        .expect("the real answer");
    let mut reflected = answer.clone();
    reflected[4..36].copy_from_slice(alice.as_bytes());
    let got = raw.rt.block_on(sesame_client::exchange(
        &raw.host,
        &reflected,
        Duration::from_secs(10),
    ));
    assert!(
        matches!(got, Err(sesame_client::ClientError::NoAnswer)),
        "the daemon answered a reflected answer: {got:?}"
    );
    let rec = daemon.wait_audit("reflection", |r| r["event"] == "rejected");
    assert_eq!(rec["sender"], alice.to_string());
    assert_eq!(rec["code"], 2001, "{rec}");
    let requests: Vec<_> = daemon
        .audit()
        .into_iter()
        .filter(|r| r["event"] == "request" && r["phase"] == "end")
        .collect();
    assert_eq!(requests.len(), 1, "only the real request: {requests:#?}");
    assert_eq!(requests[0]["id"], request.id.to_string());
}

/// Only a request's own client can seal it, so an unreadable request is answered (2002) under the
/// id it carries; without a readable id no client could take the answer, and none is sent.
#[test]
fn an_unreadable_request_is_answered_only_under_its_own_id() {
    let (daemon, raw) = crate::RawClient::enrolled();
    let seal = |body: &[u8]| {
        raw.sealer
            .seal(
                sesame_proto::Domain::Request,
                &raw.host.key,
                &mut rand_core::OsRng,
                body,
            )
            .expect("seal")
    };
    let id = sesame_proto::RequestId::random(&mut rand_core::OsRng);
    let body = format!(r#"{{"v":2,"id":"{id}","nonsense":true}}"#);
    let answer = raw.send(&seal(body.as_bytes()));
    assert_eq!(
        (answer.id, answer.code),
        (id, sesame_proto::ErrorCode::MalformedRequest),
        "{answer:?}"
    );
    let got = raw.rt.block_on(sesame_client::exchange(
        &raw.host,
        &seal(br#"{"v":2,"nonsense":true}"#),
        Duration::from_secs(10),
    ));
    assert!(
        matches!(got, Err(sesame_client::ClientError::NoAnswer)),
        "{got:?}"
    );
    let rec = daemon.wait_audit("no id", |r| r["event"] == "rejected" && r["code"] == 2002);
    assert_eq!(rec["sender"], raw.sealer.public_key().to_string());
}
