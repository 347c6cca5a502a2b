//! Running a daemon day to day: `sesamed status`, host key rotation, client rekeying and
//! `sesamed audit tail`, against a real daemon over QUIC on loopback.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sesame_tests::{Client, Daemon, binary, daemon_with_client};

use crate::{stderr, stdout};

fn status_json(daemon: &Daemon) -> serde_json::Value {
    let out = daemon.sesamed(&["status", "--json"]);
    assert!(out.status.success(), "status: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("status is JSON")
}

/// The value after `label` on a line of `text`.
fn field(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|v| v.split_whitespace().next().unwrap_or_default().to_owned())
        .unwrap_or_else(|| panic!("no {label} in {text}"))
}

#[test]
fn status_reports_the_running_daemon_and_exits_3_once_it_is_gone() {
    let (mut daemon, alice) = daemon_with_client("alice", &["users"]);
    alice.run_ok(&["run", "web", "echo", "hi"]);
    alice.run_err(&["run", "web", "testing::spin"]);

    let s = status_json(&daemon);
    assert_eq!(s["host"], sesame_tests::HOST);
    assert_eq!(s["quic"], daemon.addr.to_string());
    assert_eq!(s["host_key"], daemon.host_key.as_str());
    assert_eq!(s["clients"], 1);
    assert_eq!(s["counters"]["answered"], 2, "{s}");
    assert_eq!(s["counters"]["ok"], 1, "{s}");
    assert_eq!(s["counters"]["by_code"]["1010"], 1, "{s}");
    assert!(
        s["policy"]["revision"].as_str().is_some_and(|r| !r.is_empty()),
        "{s}"
    );
    assert!(s["now_ms"].as_u64() >= s["started_ms"].as_u64(), "{s}");

    let out = daemon.sesamed(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("2 answered, 1 ok (1 × 1010 denied by policy)"),
        "{text}"
    );
    assert!(text.contains(&format!("quic {}", daemon.addr)), "{text}");

    // A second daemon on the same state directory stops before touching anything.
    let mut second = Command::new(binary("sesamed"))
        .args(["serve", "--config"])
        .arg(&daemon.config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = second.try_wait().expect("wait") {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second daemon on the same state directory kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("stderr"), &mut err).expect("read");
    assert!(!exit.success());
    assert!(err.contains("another sesamed (pid"), "{err}");
    assert!(daemon.is_running(), "the first daemon is unharmed");
    alice.run_ok(&["run", "web", "echo", "still"]);

    assert!(daemon.terminate().success(), "graceful stop");
    let out = daemon.sesamed(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
    assert!(!daemon.dir.path().join("state/control.sock").exists());
}

/// The digest `sesame` pins for `host` in `client`'s hosts.toml, as text.
fn pinned_next(client: &Client, alias: &str) -> Option<String> {
    client
        .home()
        .host(alias)
        .expect("pinned")
        .next_key_sha256
        .map(|d| d.to_string())
}

#[test]
fn a_rotated_host_key_still_answers_old_pins_which_then_move_to_the_committed_key() {
    let (daemon, alice) = daemon_with_client("alice", &["users"]);
    let old_key = daemon.host_key.clone();
    alice.run_ok(&["run", "web", "echo", "zero"]);
    let bob = daemon.client("bob", &["users"]);
    // Carol pinned the host the old way, by its key alone.
    let carol = Client::new();
    daemon.enrol("carol", &carol.key, &["users"]);
    let addr = daemon.addr.to_string();
    let out = carol.sesame(&[
        "host",
        "add",
        "web",
        "--addr",
        &addr,
        "--key",
        &old_key,
        "--cert-sha256",
        &daemon.cert_sha256,
        "--host-name",
        sesame_tests::HOST,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("without the digest of its next key"),
        "{}",
        stderr(&out)
    );

    // Before: `show` and `status` name the next key's digest, and the pin line carries it.
    let shown = stdout(&daemon.sesamed(&["show"]));
    assert_eq!(field(&shown, "next key:"), daemon.next_key_sha256);
    assert!(
        shown.contains(&format!("--key {}:{}", old_key, daemon.next_key_sha256)),
        "{shown}"
    );
    assert_eq!(
        status_json(&daemon)["next_host_key_sha256"],
        daemon.next_key_sha256.as_str()
    );

    let out = daemon.sesamed(&["rotate-key", "--grace", "1h"]);
    assert!(out.status.success(), "rotate-key: {}", stderr(&out));
    let text = stdout(&out);
    let new_key = field(&text, "host key:");
    assert_ne!(new_key, old_key);
    let new_key_digest = new_key
        .parse::<sesame_proto::PublicKey>()
        .expect("key")
        .digest()
        .to_string();
    assert_eq!(new_key_digest, daemon.next_key_sha256, "the committed key");
    let next_next = field(&text, "next key:");
    assert_ne!(next_next, daemon.next_key_sha256);
    assert!(text.contains("now uses the new key"), "{text}");
    let shown = stdout(&daemon.sesamed(&["show"]));
    assert_eq!(field(&shown, "host key:"), new_key);
    assert_eq!(field(&shown, "next key:"), next_next);
    assert_eq!(field(&shown, "old key:"), old_key);
    let s = status_json(&daemon);
    assert_eq!(s["next_host_key_sha256"], next_next.as_str(), "{s}");
    let status_text = stdout(&daemon.sesamed(&["status"]));
    assert_eq!(field(&status_text, "next key:"), next_next);
    let rec = daemon.wait_audit("rotation", |r| r["event"] == "host-key-rotated");
    assert_eq!(rec["key"], new_key.as_str());
    assert_eq!(rec["receipt_key"], field(&text, "receipt key:").as_str());
    assert_eq!(field(&shown, "receipt key:"), field(&text, "receipt key:"));
    assert_eq!(rec["next_key_sha256"], next_next.as_str());
    assert_eq!(rec["committed"], true);

    // Alice still seals to the old key: she is answered, and follows to the committed key,
    // pinning the digest the new key gave for its successor.
    let out = alice.sesame(&["run", "web", "echo", "one"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "one\n");
    assert!(
        stderr(&out).contains(&new_key) && stderr(&out).contains("re-pinned to it"),
        "the client says it re-pinned: {}",
        stderr(&out)
    );
    assert_eq!(pinned_next(&alice, "web"), Some(next_next.clone()));
    let rec = daemon.wait_audit("old-key request", |r| {
        r["phase"] == "end" && r["args"][0] == "one"
    });
    assert_eq!(rec["previous_host_key"], true, "{rec}");
    let s = status_json(&daemon);
    assert_eq!(s["counters"]["previous_host_key"], 1, "{s}");
    assert_eq!(s["previous_host_key"]["key"], old_key.as_str(), "{s}");

    // She re-pinned: her next request is sealed to the new key.
    let hosts = alice.run_ok(&["host", "list"]);
    assert!(hosts.contains(&new_key) && !hosts.contains(&old_key), "{hosts}");
    alice.run_ok(&["run", "web", "echo", "two"]);
    let rec = daemon.wait_audit("new-key request", |r| {
        r["phase"] == "end" && r["args"][0] == "two"
    });
    assert!(rec.get("previous_host_key").is_none(), "{rec}");

    // Carol's pin has no digest: she is answered, but not moved, and told how to re-pin.
    let out = carol.sesame(&["run", "web", "echo", "carol"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cannot verify") && err.contains("sesame host repin web"),
        "{err}"
    );
    assert_eq!(carol.home().host("web").expect("pinned").key.to_string(), old_key);

    // Removing the previous key's file stops accepting it within a second or so: Bob and
    // Carol, still pinned to the old key, get no answer.
    std::fs::remove_file(daemon.dir.path().join("state/host.key.previous")).expect("rm");
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_json(&daemon)["previous_host_key"].is_object() {
        assert!(Instant::now() < deadline, "the daemon kept the old key");
        std::thread::sleep(Duration::from_millis(100));
    }
    for c in [&bob, &carol] {
        let out = c.sesame(&["run", "--timeout", "5", "web", "echo", "three"]);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    }
    // Re-pinned by hand with what `sesamed show` prints, Carol is back, and will follow next time.
    let token = format!("{new_key}:{next_next}");
    carol.run_ok(&["host", "repin", "web", "--key", &token]);
    carol.run_ok(&["run", "web", "echo", "four"]);
    assert_eq!(pinned_next(&carol, "web"), Some(next_next.clone()));
    assert!(
        daemon
            .audit()
            .iter()
            .any(|r| r["event"] == "host-key-rotated" && r["key"] == new_key.as_str()),
        "the rotation is audited"
    );

    // A second rotation: Alice and Carol follow again, to the key the new key committed to.
    let out = daemon.sesamed(&["rotate-key", "--grace", "1h"]);
    assert!(out.status.success(), "rotate-key: {}", stderr(&out));
    let third_key = field(&stdout(&out), "host key:");
    for c in [&alice, &carol] {
        let out = c.sesame(&["run", "web", "echo", "five"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("re-pinned to it"), "{}", stderr(&out));
        assert_eq!(c.home().host("web").expect("pinned").key.to_string(), third_key);
    }

    // Alice's receipts were signed by three receipt keys, one per host key; the log's records
    // name each, so all are the host's.
    let file = alice.home.path().join("receipts");
    let text = std::fs::read_to_string(&file).expect("receipts");
    let keys: std::collections::BTreeSet<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["key"].to_string())
        .collect();
    assert_eq!((text.lines().count(), keys.len()), (4, 3), "{text}");
    let out = daemon.sesamed(&["audit", "verify", "--receipts", file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "receipts: all 4 for host {} are signed by it",
            sesame_tests::HOST
        )),
        "{}",
        stdout(&out)
    );
}

/// A state directory from before sesamed kept a next key pair (no `host.key.next`): `show` says
/// so, and the next start makes one, whose digest `show` and `status` then print.
#[test]
fn an_old_state_directory_gets_a_next_key_at_its_next_start() {
    let (mut daemon, alice) = daemon_with_client("alice", &["users"]);
    let next = daemon.dir.path().join("state/host.key.next");
    std::fs::remove_file(&next).expect("rm");
    let shown = stdout(&daemon.sesamed(&["show"]));
    assert_eq!(field(&shown, "next key:"), "none", "{shown}");
    assert!(
        shown.contains(&format!("--key {} ", daemon.host_key)),
        "the pin line has no digest to give: {shown}"
    );
    daemon.restart();
    let shown = stdout(&daemon.sesamed(&["show"]));
    let digest = field(&shown, "next key:");
    assert_eq!(digest.len(), 64, "{shown}");
    assert_ne!(digest, daemon.next_key_sha256);
    assert!(next.exists());
    assert_eq!(status_json(&daemon)["next_host_key_sha256"], digest.as_str());
    assert!(daemon.log().contains("made host.key.next"), "{}", daemon.log());
    // Pinned with the new digest, a client follows the next rotation.
    daemon.next_key_sha256 = digest;
    alice.pin(&daemon, "again");
    let out = daemon.sesamed(&["rotate-key", "--grace", "1h"]);
    assert!(out.status.success(), "rotate-key: {}", stderr(&out));
    let out = alice.sesame(&["run", "again", "echo", "hi"]);
    assert!(stderr(&out).contains("re-pinned to it"), "{}", stderr(&out));
}

/// A copy of `daemon` run by someone who stole its old key: `host.key` and the TLS identity
/// leaked from the state directory (`host.key.next`, if any, did not), and the thief "rotated"
/// the copy to a key of their own, so that it answers requests sealed to the old key under it
/// with a note naming the thief's key.
struct Impostor {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    dir: tempfile::TempDir,
}

impl Impostor {
    fn from_leak(daemon: &Daemon) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (from, to) = (daemon.dir.path(), dir.path());
        std::fs::create_dir_all(to.join("state")).expect("mkdir");
        std::fs::create_dir_all(to.join("policies")).expect("mkdir");
        std::fs::copy(&daemon.config, to.join("sesamed.toml")).expect("copy config");
        for entry in std::fs::read_dir(from.join("policies")).expect("policies") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), to.join("policies").join(entry.file_name())).expect("copy");
        }
        for leaked in ["host.key", "tls.crt", "tls.key", "clients.toml"] {
            std::fs::copy(from.join("state").join(leaked), to.join("state").join(leaked)).expect(leaked);
        }
        let config = to.join("sesamed.toml");
        let out = Command::new(binary("sesamed"))
            .args(["rotate-key", "--grace", "1h", "--config"])
            .arg(&config)
            .output()
            .expect("rotate-key");
        assert!(out.status.success(), "the thief's rotate-key: {}", stderr(&out));
        let log = std::fs::File::create(to.join("daemon.log")).expect("log");
        let mut child = Command::new(binary("sesamed"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn the impostor");
        let stdout = child.stdout.take().expect("stdout");
        let line = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("listening on ").map(str::to_owned))
            .expect("the impostor listens");
        let addr = line.trim().parse().expect("address");
        Self { child, addr, dir }
    }

    /// The key the thief rotated the copy to.
    fn key(&self) -> String {
        let out = Command::new(binary("sesamed"))
            .args(["show", "--config"])
            .arg(self.dir.path().join("sesamed.toml"))
            .output()
            .expect("show");
        field(&stdout(&out), "host key:")
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 19 (9): the old key alone must not be able to move a client to another key. A host
/// rotates because its key leaked; whoever holds the leaked key answers a client still pinned
/// to it, with a note naming a key of their own.
#[test]
fn a_rotation_note_forged_under_a_leaked_old_key_is_not_followed() {
    let (daemon, alice) = daemon_with_client("alice", &["users"]);
    let thief = Impostor::from_leak(&daemon);
    let thiefs_key = thief.key();
    assert_ne!(thiefs_key, daemon.host_key);
    alice.pin_at(&daemon, "evil", thief.addr, &daemon.cert_sha256);

    let out = alice.sesame(&["run", "evil", "echo", "hi"]);
    let err = stderr(&out);
    assert_eq!(
        alice.home().host("evil").expect("pinned").key.to_string(),
        daemon.host_key,
        "re-pinned to the thief's key: {err}"
    );
    assert!(
        err.contains(&thiefs_key) && err.contains("cannot verify") && err.contains("not re-pinned"),
        "{err}"
    );
    // The genuine host is still pinned and answers as before.
    alice.run_ok(&["run", "web", "echo", "still"]);
}

#[test]
fn a_rekeyed_client_may_use_either_key_until_its_grace_ends() {
    let (daemon, alice) = daemon_with_client("alice", &["users"]);
    // Alice's new key, in a home of its own (as `sesame key rotate` would stage it).
    let next = Client::new();
    next.pin(&daemon, "web");

    let out = daemon.sesamed(&["client", "rekey", "alice", "--key", &next.key, "--grace", "1h"]);
    assert!(out.status.success(), "rekey: {}", stderr(&out));
    for c in [&alice, &next] {
        let who = c.run_ok(&["run", "web", "whoami"]);
        assert!(who.contains("client=alice"), "{who}");
    }
    let listed = stdout(&daemon.sesamed(&["client", "list"]));
    assert!(listed.contains(&format!("old key {}", alice.key)), "{listed}");

    // Rekeying again with no grace: only the newest key is accepted.
    let third = Client::new();
    third.pin(&daemon, "web");
    let out = daemon.sesamed(&["client", "rekey", "alice", "--key", &third.key, "--grace", "0s"]);
    assert!(out.status.success(), "rekey: {}", stderr(&out));
    for c in [&alice, &next] {
        let out = c.sesame(&["run", "--timeout", "5", "web", "whoami"]);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    }
    assert!(third.run_ok(&["run", "web", "whoami"]).contains("client=alice"));
    let rekeys = daemon
        .audit()
        .into_iter()
        .filter(|r| r["event"] == "client-rekeyed" && r["name"] == "alice")
        .count();
    assert_eq!(rekeys, 2);
}

#[test]
fn sesame_key_rotate_stages_a_key_and_finishes_once_the_host_knows_it() {
    let (daemon, alice) = daemon_with_client("alice", &["users"]);
    let out = alice.sesame(&["key", "rotate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let staged = stdout(&out).lines().last().unwrap_or_default().trim().to_owned();
    assert_eq!(staged.len(), 64, "{}", stdout(&out));
    assert!(
        stderr(&out).contains("sesamed client rekey NAME --key"),
        "{}",
        stderr(&out)
    );
    // Staged, not in use: the host does not know it yet, and alice still runs as before.
    alice.run_ok(&["run", "web", "echo", "before"]);
    let out = daemon.sesamed(&["client", "rekey", "alice", "--key", &staged, "--grace", "1h"]);
    assert!(out.status.success(), "rekey: {}", stderr(&out));
    alice.run_ok(&["run", "web", "echo", "between"]);
    let out = alice.sesame(&["key", "rotate", "--finish"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(alice.run_ok(&["key", "show"]).trim(), staged);
    alice.run_ok(&["run", "web", "echo", "after"]);
    let keys: Vec<String> = ["before", "between", "after"]
        .iter()
        .map(|word| {
            daemon.wait_audit(word, |r| r["phase"] == "end" && r["args"][0] == *word)["key"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(keys, [alice.key.clone(), alice.key.clone(), staged]);
}

#[test]
fn audit_tail_shows_one_clients_records_and_follows_new_ones() {
    let (daemon, alice) = daemon_with_client("alice", &["users"]);
    let bob = daemon.client("bob", &["users"]);
    alice.run_ok(&["run", "web", "echo", "from alice"]);
    bob.run_ok(&["run", "web", "echo", "from bob"]);
    alice.run_err(&["run", "web", "testing::spin"]);

    let out = daemon.sesamed(&["audit", "tail", "--client", "alice", "-n", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines.iter().all(|l| l.contains(" alice ")), "{text}");
    assert!(lines[0].contains("basic::echo \"from alice\" -> ok in"), "{text}");
    assert!(
        lines[1].contains("testing::spin -> error 1010 (denied by policy)"),
        "{text}"
    );

    let out = daemon.sesamed(&["audit", "tail", "--client", "bob", "--json", "-n", "100"]);
    let records: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(!records.is_empty());
    assert!(
        records.iter().all(|r| r["client"] == "bob" || r["name"] == "bob"),
        "{records:?}"
    );

    // --follow prints records as they are written.
    let mut follow = Command::new(binary("sesamed"))
        .args([
            "audit", "tail", "--client", "alice", "-n", "0", "--follow", "--config",
        ])
        .arg(&daemon.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    bob.run_ok(&["run", "web", "echo", "bob again"]);
    alice.run_ok(&["run", "web", "echo", "alice again"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("alice again") && l.contains("-> ok"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("--follow printed no record of alice's request: {seen:?}"),
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(seen.iter().all(|l| !l.contains("bob again")), "{seen:?}");
}

#[test]
fn sigterm_finishes_the_request_in_flight_before_the_daemon_stops() {
    let (mut daemon, tess) = daemon_with_client("tess", &["testers"]);
    // testing::spin runs until its 1 s limit: it is in flight when SIGTERM arrives.
    let spinner = {
        let home = tess.home.path().to_owned();
        std::thread::spawn(move || {
            Command::new(binary("sesame"))
                .args(["run", "web", "testing::spin"])
                .env("SESAME_HOME", home)
                .output()
                .expect("run")
        })
    };
    daemon.wait_audit("spin started", |r| {
        r["phase"] == "start" && r["command"] == "spin"
    });
    assert!(daemon.terminate().success(), "graceful stop");
    let out = spinner.join().expect("spinner");
    assert_eq!(
        out.status.code(),
        Some(1),
        "answered, not cut off: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("error 3002"), "{}", stderr(&out));
    let audit = daemon.audit();
    let end = audit
        .iter()
        .position(|r| r["phase"] == "end" && r["command"] == "spin")
        .expect("the request's end is audited");
    let stopped = audit
        .iter()
        .position(|r| r["event"] == "stopped")
        .expect("the stop is audited");
    assert!(end < stopped, "the request finished before the daemon stopped");
    assert_eq!(audit[stopped]["reason"], "SIGTERM");
}

#[test]
fn sighup_reloads_the_policy_the_registry_and_the_host_keys() {
    let (mut daemon, alice) = daemon_with_client("alice", &["users"]);
    let pid = daemon.pid().to_string();
    let before = status_json(&daemon);
    let hup = || {
        let out = Command::new("kill").args(["-HUP", &pid]).output().expect("kill");
        assert!(out.status.success(), "kill -HUP: {}", stderr(&out));
    };
    hup();
    for event in ["policy-reloaded", "registry-reloaded", "host-keys-reloaded"] {
        daemon.wait_audit(event, |r| r["event"] == event && r["error"].is_null());
    }
    // Reloading changes nothing that did not change, and the daemon keeps serving.
    let after = status_json(&daemon);
    assert_eq!(after["policy"]["revision"], before["policy"]["revision"]);
    assert_eq!(after["host_key"], before["host_key"]);
    assert_eq!(after["pid"], before["pid"]);
    alice.run_ok(&["run", "web", "echo", "after a reload"]);

    // A broken host key is refused on reload: the loaded keys keep serving.
    let key = daemon.dir.path().join("state/host.key");
    let good = std::fs::read(&key).expect("key");
    std::fs::write(&key, b"not a key\n").expect("break the key");
    hup();
    daemon.wait_audit("refused key reload", |r| {
        r["event"] == "host-keys-reloaded" && r["error"].as_str().is_some_and(|e| e.contains("host.key"))
    });
    alice.run_ok(&["run", "web", "echo", "still served"]);
    assert_eq!(status_json(&daemon)["host_key"], before["host_key"]);
    std::fs::write(&key, good).expect("restore the key");
    assert!(daemon.is_running());
}
