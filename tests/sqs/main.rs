//! sesamed and sesame over SQS, against a real local SQS server (moto), one per test.
//!
//! The daemons here listen nowhere: they only poll their request queue.

use std::process::Output;
use std::time::Duration;

use sesame_proto::{Domain, Envelope, ErrorCode, Request, Response, Sealer, Status};
use sesame_sqs::Queue;
use sesame_tests::moto::{Moto, REGION};
use sesame_tests::{Client, Daemon, HOST, Setup};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A daemon polling `queue` on `moto` (created here), with no QUIC listener.
fn sqs_daemon(moto: &Moto, queue: &str) -> Daemon {
    moto.create_queue(queue);
    Daemon::start(&Setup {
        listen: String::new(),
        sqs: Some(moto.daemon_section(queue)),
        env: moto.env(),
        ..Setup::default()
    })
}

/// A client enrolled on `daemon` as `name` (group users), with the daemon pinned as `alias`
/// reached through `queue`.
fn sqs_client(moto: &Moto, daemon: &Daemon, name: &str, alias: &str, queue: &str) -> Client {
    let mut client = Client::new();
    client.env = moto.env();
    daemon.enrol(name, &client.key, &["users"]);
    pin_sqs(&client, moto, daemon, alias, queue);
    client
}

fn pin_sqs(client: &Client, moto: &Moto, daemon: &Daemon, alias: &str, queue: &str) {
    client.run_ok(&[
        "host",
        "add",
        alias,
        "--key",
        &daemon.pin_token(),
        "--sqs-queue",
        queue,
        "--sqs-region",
        REGION,
        "--sqs-endpoint",
        &moto.endpoint(),
        "--host-name",
        HOST,
    ]);
}

fn ends_for(daemon: &Daemon, id: &str) -> usize {
    daemon
        .audit()
        .iter()
        .filter(|r| r["event"] == "request" && r["phase"] == "end" && r["id"] == id)
        .count()
}

#[test]
fn a_request_over_sqs_is_answered_sealed_and_audited() {
    let moto = Moto::start();
    let daemon = sqs_daemon(&moto, "sesame-req-one");
    let alice = sqs_client(&moto, &daemon, "alice", "web", "sesame-req-one");

    let out = alice.sesame(&["run", "web", "whoami"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("client=alice"), "{}", stdout(&out));
    let rec = daemon.wait_audit("request", |r| r["event"] == "request" && r["phase"] == "end");
    assert_eq!(rec["transport"], "sqs");
    assert_eq!(rec["code"], 0);
    assert!(rec["source_ip"].is_null(), "SQS shows no source address: {rec}");

    // The same policy, the same codes: a denied command is 1010 over SQS too.
    let out = alice.sesame(&["run", "web", "testing::spin"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("error 1010"), "{}", stderr(&out));

    // Asking for a route the host does not have is a local error (2), before anything is sent.
    let out = alice.sesame(&["run", "--via", "quic", "web", "whoami"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no QUIC route"), "{}", stderr(&out));

    // The reply queue is the client's own, named after its key.
    let home = alice.home();
    let own = sesame_sqs::reply_queue(&home.key().expect("key").public_key());
    assert_eq!(alice.run_ok(&["key", "reply-queue"]), format!("{own}\n"));
    moto.with_client(async |c| Queue::open(c, &own).await.expect("reply queue exists"));
}

#[test]
fn a_stranger_gets_no_answer_and_its_message_is_not_retried() {
    let moto = Moto::start();
    let daemon = sqs_daemon(&moto, "sesame-req-one");
    let mut stranger = Client::new();
    stranger.env = moto.env();
    pin_sqs(&stranger, &moto, &daemon, "web", "sesame-req-one");
    let out = stranger.sesame(&["run", "--timeout", "3", "web", "whoami"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("no answer within"), "{}", stderr(&out));
    let rec = daemon.wait_audit("rejection", |r| r["event"] == "rejected");
    assert_eq!(rec["code"], 1001);
    assert_eq!(rec["transport"], "sqs");
    assert_queue_empty(&moto, "sesame-req-one");
}

/// Nothing is left in `queue` (visible or in flight) once the daemon is done with it.
fn assert_queue_empty(moto: &Moto, queue: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (visible, in_flight) = moto.with_client(async |c| {
            let q = Queue::open(c, queue).await.expect("queue");
            let attrs = c
                .get_queue_attributes()
                .queue_url(q.url())
                .attribute_names(sesame_sqs::QueueAttributeName::All)
                .send()
                .await
                .expect("attributes");
            let get = |name: sesame_sqs::QueueAttributeName| {
                attrs
                    .attributes()
                    .and_then(|a| a.get(&name))
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(u32::MAX)
            };
            (
                get(sesame_sqs::QueueAttributeName::ApproximateNumberOfMessages),
                get(sesame_sqs::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            )
        });
        if visible == 0 && in_flight == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{queue} still holds {visible} visible and {in_flight} in-flight messages"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A client that builds and seals requests itself and reads its reply queue directly.
struct RawSqsClient {
    sealer: Sealer,
    host_key: sesame_proto::PublicKey,
    requests: Queue,
    replies: Queue,
}

impl RawSqsClient {
    fn new(moto: &Moto, client: &Client, daemon: &Daemon, queue: &str) -> Self {
        let sealer = Sealer::new(client.home().key().expect("key"));
        let reply_name = sesame_sqs::reply_queue(&sealer.public_key());
        let (requests, replies) = moto.with_client(async |c| {
            (
                Queue::open(c, queue).await.expect("request queue"),
                Queue::open_or_create(c, &reply_name, &[])
                    .await
                    .expect("reply queue"),
            )
        });
        Self {
            sealer,
            host_key: daemon.host_key.parse().expect("host key"),
            requests,
            replies,
        }
    }

    fn seal(&self, args: &[&str]) -> (Request, Vec<u8>) {
        let mut request = Request::new(
            &mut rand_core::OsRng,
            now_ms(),
            HOST,
            Some("basic"),
            "echo",
            args.iter().map(|a| (*a).to_owned()).collect(),
        );
        request.reply_to = Some(self.replies.name().to_owned());
        let sealed = self
            .sealer
            .seal(
                Domain::Request,
                &self.host_key,
                &mut rand_core::OsRng,
                &request.encode(),
            )
            .expect("seal");
        (request, sealed)
    }

    /// Every answer that arrives within `wait`, deleted as read.
    fn answers(&self, moto: &Moto, wait: Duration) -> Vec<(Vec<u8>, Response)> {
        let deadline = std::time::Instant::now() + wait;
        let mut got = Vec::new();
        while std::time::Instant::now() < deadline {
            let batch = moto.block_on(self.replies.receive(10, 1, 30)).expect("receive");
            for m in batch {
                let bytes = m.envelope.expect("base64 answer");
                let env = Envelope::decode(&bytes).expect("envelope");
                let plain = self
                    .sealer
                    .open(Domain::Response, &env, |k| *k == self.host_key)
                    .expect("sealed by the host");
                got.push((bytes.clone(), Response::decode(&plain).expect("response")));
                moto.block_on(self.replies.delete(&m.receipt)).expect("delete");
            }
        }
        got
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[test]
fn a_duplicate_delivery_runs_once_and_is_answered_alike() {
    let moto = Moto::start();
    let daemon = sqs_daemon(&moto, "sesame-req-dup");
    let alice = sqs_client(&moto, &daemon, "alice", "web", "sesame-req-dup");
    let raw = RawSqsClient::new(&moto, &alice, &daemon, "sesame-req-dup");

    // Delivered twice, one after the other: the second gets the very same answer.
    let (request, sealed) = raw.seal(&["once"]);
    moto.block_on(raw.requests.send(&sealed)).expect("send");
    let first = raw.answers(&moto, Duration::from_secs(3));
    moto.block_on(raw.requests.send(&sealed)).expect("send again");
    let second = raw.answers(&moto, Duration::from_secs(3));
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].1.status, Status::Ok);
    assert_eq!(first[0].1.output, "once");
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0].0, first[0].0, "byte for byte the first answer");
    assert_eq!(ends_for(&daemon, &request.id.to_string()), 1, "ran once");
    let dup = daemon.wait_audit("duplicate", |r| r["event"] == "duplicate");
    assert_eq!(dup["answered"], true);

    // Delivered twice at once: still one run, and every answer it gets is that run's.
    let (request, sealed) = raw.seal(&["twice"]);
    moto.block_on(async {
        let (a, b) = tokio::join!(raw.requests.send(&sealed), raw.requests.send(&sealed));
        a.and(b)
    })
    .expect("send both");
    let answers = raw.answers(&moto, Duration::from_secs(4));
    assert!(!answers.is_empty());
    assert!(
        answers
            .iter()
            .all(|(_, r)| r.id == request.id && r.status == Status::Ok && r.output == "twice"),
        "{answers:?}"
    );
    assert_eq!(ends_for(&daemon, &request.id.to_string()), 1, "ran once");
    assert_queue_empty(&moto, "sesame-req-dup");

    // A reply_to that is not the sender's own queue is refused (2002), answered to its own.
    let (mut request, _) = raw.seal(&["elsewhere"]);
    request.reply_to = Some("sesame-reply-0000000000000000".into());
    let sealed = raw
        .sealer
        .seal(
            Domain::Request,
            &raw.host_key,
            &mut rand_core::OsRng,
            &request.encode(),
        )
        .expect("seal");
    moto.block_on(raw.requests.send(&sealed)).expect("send");
    let answers = raw.answers(&moto, Duration::from_secs(3));
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].1.code, ErrorCode::MalformedRequest, "{answers:?}");
    assert!(answers[0].1.message.contains("reply_to"), "{answers:?}");
}

/// Issue 19 (5), as it was found: with a queue credential alone, take the host's sealed answer
/// out of alice's reply queue, rewrite its sender to alice's key and put it on the request queue.
/// The daemon must not answer it: its answer would be a genuine host-sealed error for the id of
/// alice's real request, ready to replace the real answer in her reply queue.
#[test]
fn an_answer_turned_back_into_the_request_queue_gets_no_answer() {
    let moto = Moto::start();
    let daemon = sqs_daemon(&moto, "sesame-req-back");
    let alice = sqs_client(&moto, &daemon, "alice", "web", "sesame-req-back");
    let raw = RawSqsClient::new(&moto, &alice, &daemon, "sesame-req-back");
    let (request, sealed) = raw.seal(&["real"]);
    moto.block_on(raw.requests.send(&sealed)).expect("send");
    let answers = raw.answers(&moto, Duration::from_secs(3));
    assert_eq!(answers.len(), 1, "{answers:?}");
    let mut turned = answers[0].0.clone();
    turned[4..36].copy_from_slice(raw.sealer.public_key().as_bytes());
    moto.block_on(raw.requests.send(&turned)).expect("send it back");
    let rec = daemon.wait_audit("rejection", |r| r["event"] == "rejected");
    assert_eq!(rec["code"], 2001, "{rec}");
    assert_eq!(rec["transport"], "sqs");
    let more = raw.answers(&moto, Duration::from_secs(3));
    assert!(
        more.is_empty(),
        "the daemon answered a turned-back answer: {more:?}"
    );
    assert_eq!(ends_for(&daemon, &request.id.to_string()), 1);
    assert_queue_empty(&moto, "sesame-req-back");
}

#[test]
fn poison_messages_are_deleted_and_audited_and_serving_goes_on() {
    let moto = Moto::start();
    let daemon = sqs_daemon(&moto, "sesame-req-poison");
    let alice = sqs_client(&moto, &daemon, "alice", "web", "sesame-req-poison");
    moto.with_client(async |c| {
        let q = Queue::open(c, "sesame-req-poison").await.expect("queue");
        for body in ["not base64 at all!", "U1NNMWdhcmJhZ2U=", ""] {
            c.send_message()
                .queue_url(q.url())
                .message_body(if body.is_empty() { " " } else { body })
                .send()
                .await
                .expect("send poison");
        }
    });
    let out = alice.sesame(&["run", "web", "echo", "still", "serving"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "still serving\n");
    let poison = daemon.wait_audit("poison", |r| r["event"] == "poison");
    assert!(
        poison["reason"].as_str().is_some_and(|r| r.contains("base64")),
        "{poison}"
    );
    // The base64 one is a well-formed body carrying a malformed envelope: rejected as 2001.
    daemon.wait_audit("malformed envelope", |r| {
        r["event"] == "rejected" && r["code"] == 2001 && r["transport"] == "sqs"
    });
    assert_queue_empty(&moto, "sesame-req-poison");
    // `sesamed status` counts poison messages with the rest of what it turned away: as many as
    // the audit log holds (it used to leave the poison ones out).
    let turned_away = daemon
        .audit()
        .iter()
        .filter(|r| r["event"] == "poison" || r["event"] == "rejected")
        .count();
    assert_eq!(turned_away, 3, "three bodies, none answered");
    let out = daemon.sesamed(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(status["counters"]["rejected"], 3, "{status}");
}

#[test]
fn a_daemon_killed_mid_queue_loses_nothing_and_runs_nothing_twice() {
    let moto = Moto::start();
    let queue = "sesame-req-restart";
    moto.create_queue(queue);
    // One request at a time, so the queue is still full when the daemon dies.
    let section = format!("{}max_in_flight = 1\n", moto.daemon_section(queue));
    let mut daemon = Daemon::start(&Setup {
        listen: String::new(),
        sqs: Some(section),
        env: moto.env(),
        ..Setup::default()
    });
    // Eight clients, each with its own key and so its own reply queue.
    let clients: Vec<Client> = (0..8)
        .map(|i| sqs_client(&moto, &daemon, &format!("c{i}"), "web", queue))
        .collect();

    let outs: Vec<Output> = std::thread::scope(|s| {
        let runs: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| {
                s.spawn(move || c.sesame(&["run", "--timeout", "90", "web", "echo", &format!("n{i}")]))
            })
            .collect();
        daemon.wait_audit("a first answer", |r| {
            r["event"] == "request" && r["phase"] == "end"
        });
        daemon.kill_hard();
        std::thread::sleep(Duration::from_millis(500));
        daemon.restart();
        runs.into_iter().map(|r| r.join().expect("thread")).collect()
    });
    for (i, out) in outs.iter().enumerate() {
        // Every request was answered. One the kill cut off mid-run is not run again: the
        // replay log refuses it (1003) rather than risk running it twice.
        match out.status.code() {
            Some(0) => assert_eq!(stdout(out), format!("n{i}\n")),
            Some(1) => assert!(stderr(out).contains("error 1003"), "{}", stderr(out)),
            _ => panic!("request n{i} lost: {}\n{}", stderr(out), daemon.log()),
        }
    }
    let ok = outs.iter().filter(|o| o.status.success()).count();
    assert!(
        ok >= 7,
        "at most the one in flight at the kill is refused; {ok} of 8 ran"
    );
    let audit = daemon.audit();
    let mut starts: Vec<&str> = audit
        .iter()
        .filter(|r| r["event"] == "request" && r["phase"] == "start")
        .filter_map(|r| r["id"].as_str())
        .collect();
    let all = starts.len();
    starts.sort_unstable();
    starts.dedup();
    assert_eq!(starts.len(), all, "no request started twice");
    assert_queue_empty(&moto, queue);
}

#[test]
fn the_daemon_waits_out_an_unreachable_sqs_and_then_serves() {
    let port = sesame_tests::moto::free_port();
    // Start the daemon while nothing answers at the endpoint.
    let endpoint = format!("http://127.0.0.1:{port}");
    let section =
        format!("[sqs]\nqueue = \"sesame-req-late\"\nregion = \"{REGION}\"\nendpoint_url = \"{endpoint}\"\n");
    let daemon = Daemon::start(&Setup {
        listen: String::new(),
        sqs: Some(section),
        env: sesame_tests::moto::env(),
        ..Setup::default()
    });
    // The SDK retries a refused connection itself before the daemon sees the failure, so
    // wait for the daemon's own retry to be logged rather than for a fixed time.
    daemon.wait_log("retrying");
    let moto = Moto::start_on(port);
    moto.create_queue("sesame-req-late");
    let alice = sqs_client(&moto, &daemon, "alice", "web", "sesame-req-late");
    let out = alice.sesame(&["run", "--timeout", "60", "web", "echo", "recovered"]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), daemon.log());
    assert_eq!(stdout(&out), "recovered\n");
}

#[test]
fn three_hosts_at_once_over_sqs_and_quic_with_a_table_and_an_honest_exit_code() {
    let moto = Moto::start();
    let a = sqs_daemon(&moto, "sesame-req-a");
    let b = sqs_daemon(&moto, "sesame-req-b");
    let c = Daemon::start(&Setup::default());
    let mut alice = Client::new();
    alice.env = moto.env();
    for d in [&a, &b, &c] {
        d.enrol("alice", &alice.key, &["users"]);
    }
    pin_sqs(&alice, &moto, &a, "a", "sesame-req-a");
    pin_sqs(&alice, &moto, &b, "b", "sesame-req-b");
    alice.pin(&c, "c");

    let out = alice.sesame(&["run", "--hosts", "a,b,c", "whoami"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    // What each host logged came as it ran (over QUIC and SQS alike, prefixed with its name, in
    // whatever order the hosts got there); then the table.
    let (streamed, table) = printed.split_at(printed.find("HOST").expect("a table"));
    let mut lines: Vec<&str> = streamed.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "a: whoami for client alice",
            "b: whoami for client alice",
            "c: whoami for client alice"
        ],
        "{printed}"
    );
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 4, "{table}");
    assert!(rows[0].starts_with("HOST"), "{table}");
    for (row, (host, via)) in rows[1..].iter().zip([("a", "sqs"), ("b", "sqs"), ("c", "quic")]) {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!((cols[0], cols[1], cols[2]), (host, via, "ok"), "{table}");
        assert!(row.contains("client=alice"), "{table}");
    }
    assert!(stderr(&out).contains("3 of 3 hosts: 3 ok"), "{}", stderr(&out));

    // A group, JSON out; one host no longer knows alice: no answer there, and the exit code
    // says so while the others still ran.
    alice.run_ok(&["group", "set", "fleet", "a,b,c"]);
    b.remove("alice");
    let out = alice.sesame(&[
        "run",
        "--group",
        "fleet",
        "--json",
        "--timeout",
        "4",
        "echo",
        "hi",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[3]["summary"],
        serde_json::json!({"ok": 2, "failed": 0, "parked": 0, "no_answer": 1, "not_started": 0, "stopped": null})
    );
    assert_eq!(
        (lines[0]["host"].as_str(), lines[0]["ok"].as_bool()),
        (Some("a"), Some(true))
    );
    assert_eq!(lines[0]["output"], "hi");
    assert_eq!(
        (lines[1]["host"].as_str(), lines[1]["ok"].as_bool()),
        (Some("b"), Some(false))
    );
    assert!(
        lines[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("no answer")),
        "{}",
        lines[1]
    );
    assert_eq!(
        (lines[2]["host"].as_str(), lines[2]["ok"].as_bool()),
        (Some("c"), Some(true))
    );
    assert!(
        stderr(&out).contains("2 of 3 hosts: 2 ok, 1 no answer"),
        "{}",
        stderr(&out)
    );

    // A host answering with an error (denied) is exit code 1, not 3.
    b.enrol("alice", &alice.key, &["users"]);
    let out = alice.sesame(&["run", "--hosts", "a,b", "testing::spin"]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("error 1010"), "{}", stdout(&out));
}

#[test]
fn a_long_command_keeps_its_message_hidden_until_it_is_answered() {
    // The command runs 13 s; the queue's visibility timeout is 10 s. Unless the daemon extends
    // it, SQS hands the message out again mid-run and the daemon sees a duplicate.
    let moto = Moto::start();
    let queue = "sesame-req-long";
    moto.create_queue(queue);
    let data = std::fs::read_to_string(sesame_tests::repo_root().join("policies/data.json"))
        .expect("data.json")
        .replace(
            "\"limits\": {\"timeout_ms\": 1000}",
            "\"limits\": {\"timeout_ms\": 13000}",
        );
    let daemon = Daemon::start(&Setup {
        listen: String::new(),
        sqs: Some(format!(
            "{}\n[limits]\ntimeout_ms = 13000\n",
            moto.daemon_section(queue)
        )),
        env: moto.env(),
        policy_data: Some(data),
        ..Setup::default()
    });
    let mut tester = Client::new();
    tester.env = moto.env();
    daemon.enrol("tess", &tester.key, &["testers"]);
    pin_sqs(&tester, &moto, &daemon, "web", queue);

    let out = tester.sesame(&["run", "--timeout", "40", "web", "testing::spin"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("error 3002"), "{}", stderr(&out));
    let audit = daemon.audit();
    let starts = audit.iter().filter(|r| r["phase"] == "start").count();
    assert_eq!(starts, 1, "ran once");
    assert!(
        !audit.iter().any(|r| r["event"] == "duplicate"),
        "the message was handed out again mid-run"
    );
    assert_queue_empty(&moto, queue);
}

#[test]
fn a_request_waits_for_approval_over_sqs_and_its_requester_gets_the_answer() {
    let moto = Moto::start();
    let queue = "sesame-req-approvals";
    moto.create_queue(queue);
    let data = std::fs::read_to_string(sesame_tests::repo_root().join("policies/data.json"))
        .expect("data.json")
        .replace(
            r#""clusters": {"#,
            r#""clusters": {
      "basic": {"approvals": {"count": 1, "groups": ["security"]}},"#,
        );
    let daemon = Daemon::start(&Setup {
        listen: String::new(),
        sqs: Some(moto.daemon_section(queue)),
        env: moto.env(),
        policy_data: Some(data),
        ..Setup::default()
    });
    let olga = sqs_client(&moto, &daemon, "olga", "web", queue);
    let mut sam = Client::new();
    sam.env = moto.env();
    daemon.enrol("sam", &sam.key, &["security"]);
    pin_sqs(&sam, &moto, &daemon, "web", queue);

    let waited = std::thread::scope(|s| {
        let run = s.spawn(|| olga.sesame(&["run", "--reason", "OPS-3", "web", "basic::echo", "over sqs"]));
        let id = loop {
            let list: serde_json::Value =
                serde_json::from_str(&sam.run_ok(&["pending", "web", "--json"])).expect("json");
            if let Some(first) = list.as_array().and_then(|l| l.first()) {
                break first["id"].as_str().expect("id").to_owned();
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let out = sam.run_ok(&["approve", "web", &id]);
        assert!(out.contains("it ran for olga: ok"), "{out}");
        (id, run.join().expect("the waiting client"))
    });
    let (id, out) = waited;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "over sqs");
    assert_eq!(olga.run_ok(&["result", "web", &id]).trim(), "over sqs");
    let ran = daemon.wait_audit("the approved run", |r| {
        r["event"] == "request" && r["id"] == id.as_str() && r["phase"] == "end" && r["code"] == 0
    });
    assert_eq!(ran["transport"], "sqs");
    assert_eq!(ran["approved_by"], serde_json::json!(["sam"]));
}

#[test]
fn ctrl_c_cancels_a_running_request_over_sqs() {
    // A spin under a minute's limit: only the cancel, sent over SQS like the request, ends it soon.
    let moto = Moto::start();
    let queue = "sesame-req-cancel";
    moto.create_queue(queue);
    let data = std::fs::read_to_string(sesame_tests::repo_root().join("policies/data.json"))
        .expect("data.json")
        .replace(
            "\"limits\": {\"timeout_ms\": 1000}",
            "\"limits\": {\"timeout_ms\": 60000}",
        );
    let daemon = Daemon::start(&Setup {
        listen: String::new(),
        sqs: Some(format!(
            "{}\n[limits]\ntimeout_ms = 60000\n",
            moto.daemon_section(queue)
        )),
        env: moto.env(),
        policy_data: Some(data),
        ..Setup::default()
    });
    let mut tester = Client::new();
    tester.env = moto.env();
    daemon.enrol("tess", &tester.key, &["testers"]);
    pin_sqs(&tester, &moto, &daemon, "web", queue);

    let child = tester
        .command(&["run", "--timeout", "90", "web", "testing::spin"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sesame");
    let start = daemon.wait_audit("the spin's start", |r| {
        r["phase"] == "start" && r["command"] == "spin"
    });
    let id = start["id"].as_str().expect("id").to_owned();
    let sent = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("sesame");
    let answered = sent.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("error 3008"), "{}", stderr(&out));
    assert!(
        answered < Duration::from_secs(20),
        "answered {answered:?} after Ctrl-C"
    );
    let end = daemon.wait_audit("the spin's end", |r| {
        r["phase"] == "end" && r["id"] == id.as_str()
    });
    assert_eq!(end["code"], 3008, "{end}");
    let held = Duration::from_micros(end["duration_us"].as_u64().expect("duration_us"));
    assert!(held < Duration::from_secs(30), "ran {held:?}");
    let cancel = daemon.wait_audit("the cancel", |r| r["phase"] == "end" && r["command"] == "cancel");
    assert_eq!(
        (cancel["code"].as_u64(), cancel["transport"].as_str()),
        (Some(0), Some("sqs"))
    );
    eprintln!("cancelled over SQS: answered {answered:?} after Ctrl-C, in the daemon {held:?}");
    assert_queue_empty(&moto, queue);
}

#[test]
fn output_comes_over_sqs_as_it_is_written_in_order_and_a_message_a_second_at_most() {
    let moto = Moto::start();
    let queue = "sesame-req-stream";
    moto.create_queue(queue);
    let mut env = moto.env();
    env.push(("SESAME_LOG".into(), "info,sesamed::transport::sqs=debug".into()));
    let daemon = Daemon::start(&Setup {
        listen: String::new(),
        sqs: Some(moto.daemon_section(queue)),
        env,
        clusters: format!(
            "[clusters.basic.commands]\nticker = {:?}\n",
            sesame_tests::module("ticker")
        ),
        ..Setup::default()
    });
    let mut tester = Client::new();
    tester.env = moto.env();
    daemon.enrol("tess", &tester.key, &["testers"]);
    pin_sqs(&tester, &moto, &daemon, "web", queue);

    // 15 lines 200 ms apart: 3 s of output.
    let started = std::time::Instant::now();
    let mut child = tester
        .command(&["run", "web", "ticker", "15", "200"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sesame");
    let stdout = child.stdout.take().expect("stdout");
    let lines: Vec<(String, Duration)> = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map(|l| (l.expect("utf-8"), started.elapsed()))
        .collect();
    let out = child.wait_with_output().expect("sesame");
    assert!(out.status.success(), "{}", stderr(&out));
    let texts: Vec<&str> = lines.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(texts.len(), 16, "{texts:?}");
    for (i, text) in texts[..15].iter().enumerate() {
        assert!(
            text.starts_with(&format!("tick {i} ")),
            "in order, once each: {texts:?}"
        );
    }
    assert_eq!(texts[15], "done");
    // The first line came while the module still had seconds to run.
    let (first, done) = (lines[0].1, lines[15].1);
    assert!(
        done - first >= Duration::from_millis(1500),
        "the first line at {first:?}, the answer at {done:?}"
    );
    // 15 log calls over 3 s went in a few messages: the first at once, then one a second.
    let sent = daemon.log().matches("output sent").count();
    assert!((2..=6).contains(&sent), "{sent} messages of output");
    eprintln!("15 lines over SQS in {sent} messages; first at {first:?}, answer at {done:?}");
}

#[test]
fn output_that_comes_after_the_answer_out_of_order_and_twice_is_printed_once_in_order() {
    // A host of the test's own making answers first, then sends its two chunks of output in
    // reverse order, the second twice: what SQS may do to any host's messages.
    use sesame_proto::{Frame, FrameKind, Progress, ProgressSource, SecretKey};
    let moto = Moto::start();
    let queue = "sesame-req-fake";
    let requests = moto.create_queue(queue);
    let host = Sealer::new(SecretKey::generate(&mut rand_core::OsRng));
    let mut tess = Client::new();
    tess.env = moto.env();
    let pin = format!("{}:{}", host.public_key(), "ab".repeat(32));
    tess.run_ok(&[
        "host",
        "add",
        "web",
        "--key",
        &pin,
        "--sqs-queue",
        queue,
        "--sqs-region",
        REGION,
        "--sqs-endpoint",
        &moto.endpoint(),
        "--host-name",
        HOST,
    ]);
    let child = tess
        .command(&["run", "web", "basic::echo", "hi"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sesame");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (bytes, receipt) = loop {
        assert!(std::time::Instant::now() < deadline, "no request came");
        let batch = moto.block_on(requests.receive(1, 1, 30)).expect("receive");
        if let Some(m) = batch.into_iter().next() {
            break (m.envelope.expect("base64"), m.receipt);
        }
    };
    moto.block_on(requests.delete(&receipt)).expect("delete");
    let envelope = Envelope::decode(&bytes).expect("envelope");
    let client_key = envelope.sender;
    let plain = host
        .open(Domain::Request, &envelope, |_| true)
        .expect("sealed to the host");
    let request = Request::decode(&plain).expect("request");
    assert!(
        request.stream,
        "the client asks for its output as it comes over SQS"
    );
    let seal = |domain: Domain, plain: &[u8]| {
        host.seal(domain, &client_key, &mut rand_core::OsRng, plain)
            .expect("seal")
    };
    let chunk = |seq: u32, text: &str| {
        let p = Progress::new(request.id, seq, ProgressSource::Log, text.to_owned());
        Frame::encode(FrameKind::Progress, &seal(Domain::Progress, &p.encode()))
    };
    let answer = Response {
        streamed: 2,
        ..Response::ok(request.id, "done".to_owned(), 1)
    };
    let replies = moto.with_client(async |c| {
        Queue::open(c, &sesame_sqs::reply_queue(&client_key))
            .await
            .expect("the client's reply queue")
    });
    let second_twice = [chunk(1, "two\n"), chunk(1, "two\n")].concat();
    for body in [
        seal(Domain::Response, &answer.encode()),
        second_twice,
        chunk(0, "one\n"),
    ] {
        moto.block_on(replies.send(&body)).expect("send");
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = child.wait_with_output().expect("sesame");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "one\ntwo\ndone\n");
}
