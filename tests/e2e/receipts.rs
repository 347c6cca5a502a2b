//! Receipts through a live daemon over QUIC: every answer carries the seq and hash of its audit
//! record, signed by the host's receipt key, the real `sesame` keeps them, and `sesamed audit
//! verify --receipts` finds a record root removed even after recomputing the chain and its head
//! file, and tells a receipt the client made up from one the host signed.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use sesame_proto::{HeldReceipt, Receipt, ReceiptSigner, RecordHash, RequestId, SecretKey};
use sesame_tests::{HOST, daemon_with_client};

use crate::{stderr, stdout};

/// SHA-256 of `bytes` in hex, by coreutils (the tests crate has no hash of its own).
fn sha256_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("write to sha256sum");
    let out = child.wait_with_output().expect("sha256sum");
    assert!(out.status.success());
    stdout(&out)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_owned()
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// What root on the host can do once the daemon is stopped: take the record at `seq` out, then
/// renumber and relink every line after it and rewrite the head file to match, so that plain
/// `verify` passes.
fn roots_rewrite(log: &Path, seq: u64) {
    let text = std::fs::read_to_string(log).expect("read the log");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(&format!("{{\"seq\":{seq},")))
        .expect("the record");
    lines.remove(at);
    let (mut last_seq, mut last_hash) = (seq - 1, sha256_hex(lines[at - 1].as_bytes()));
    for line in &mut lines[at..] {
        // `{"seq":N,` … `,"prev":"HEX"}`: everything between stays as it was.
        let body = &line[line.find(',').expect("seq") + 1..line.rfind(",\"prev\":").expect("prev")];
        *line = format!("{{\"seq\":{},{body},\"prev\":\"{last_hash}\"}}", last_seq + 1);
        last_seq += 1;
        last_hash = sha256_hex(line.as_bytes());
    }
    std::fs::write(log, lines.join("\n") + "\n").expect("write the log");
    let head = log.with_extension("jsonl.head");
    std::fs::write(&head, format!("{last_seq:020}:{last_hash}\n")).expect("write the head file");
}

#[test]
fn receipts_are_kept_by_the_client_and_catch_a_record_root_removed() {
    let (mut daemon, alice) = daemon_with_client("alice", &["users"]);
    alice.run_ok(&["run", "web", "echo", "one"]);
    alice.run_ok(&["run", "web", "basic::echo", "two"]);
    alice.run_err(&["run", "web", "testing::spin"]);
    alice.run_ok(&["run", "--hosts", "web", "whoami"]);

    // One receipt per answer, denied too, fan-out too; each names the end record of its request.
    let file = alice.home.path().join("receipts");
    let receipts = json_lines(&file);
    let commands: Vec<(&str, u64)> = receipts
        .iter()
        .map(|r| {
            (
                r["command"].as_str().expect("command"),
                r["code"].as_u64().expect("code"),
            )
        })
        .collect();
    assert_eq!(
        commands,
        [
            ("echo", 0),
            ("basic::echo", 0),
            ("testing::spin", 1010),
            ("whoami", 0)
        ]
    );
    let mode = std::fs::metadata(&file).expect("stat").permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    // Each is signed by the host's receipt key, which `sesamed show` prints and the daemon's
    // start record names.
    let shown = stdout(&daemon.sesamed(&["show"]));
    let receipt_key = shown
        .lines()
        .find_map(|l| l.strip_prefix("receipt key: "))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_else(|| panic!("no receipt key in {shown}"))
        .to_owned();
    let started = daemon.wait_audit("started", |r| r["event"] == "started");
    assert_eq!(started["receipt_key"], receipt_key.as_str(), "{started}");
    for r in &receipts {
        assert_eq!(r["key"], receipt_key.as_str(), "{r}");
        let held: HeldReceipt = serde_json::from_value(r.clone()).expect("a receipt");
        assert_eq!(held.verify(), Ok(()), "{r}");
    }
    let log = daemon.dir.path().join("state/audit.jsonl");
    let text = std::fs::read_to_string(&log).expect("audit log");
    for r in &receipts {
        assert_eq!(
            (r["host"].as_str(), r["host_name"].as_str()),
            (Some("web"), Some(HOST))
        );
        let seq = r["seq"].as_u64().expect("seq");
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{{\"seq\":{seq},")))
            .unwrap_or_else(|| panic!("no record {seq} in {text}"));
        assert_eq!(
            r["hash"].as_str(),
            Some(sha256_hex(line.as_bytes()).as_str()),
            "{line}"
        );
        let record: serde_json::Value = serde_json::from_str(line).expect("record");
        assert_eq!(
            (&record["id"], &record["phase"]),
            (&r["id"], &"end".into()),
            "{line}"
        );
    }

    // `sesame receipts` lists them; HOST filters; --json prints the file's lines.
    let table = alice.run_ok(&["receipts"]);
    assert_eq!(table.lines().count(), 5, "{table}");
    assert!(table.starts_with("TIME "), "{table}");
    let two_id = receipts[1]["id"].as_str().expect("id").to_owned();
    assert!(
        table.contains(&two_id) && table.contains("testing::spin"),
        "{table}"
    );
    assert_eq!(
        alice.run_ok(&["receipts", "--json", "web"]),
        std::fs::read_to_string(&file).expect("read")
    );
    assert_eq!(alice.run_ok(&["receipts", "--json", "elsewhere"]), "");

    // Verified with the receipts: all there. A receipt for another host is skipped and said so.
    let other = daemon.dir.path().join("other-receipts");
    let mut foreign = receipts[0].clone();
    foreign["host_name"] = "otherhost".into();
    std::fs::write(&other, format!("{foreign}\n")).expect("write");
    let config = daemon.config.to_str().expect("utf-8").to_owned();
    let file_arg = file.to_str().expect("utf-8");
    let other_arg = other.to_str().expect("utf-8");
    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--config", config.as_str()];
        args.extend(extra);
        sesame_tests::sesamed(&args, &[])
    };
    let out = verify(&["--receipts", file_arg, other_arg]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "receipts: all 4 for host {HOST} are signed by it and in {}, unchanged; 1 for other hosts skipped",
            log.display()
        )),
        "{}",
        stdout(&out)
    );

    // The client makes receipts up, into its own file: one edited to name request two's
    // record, one signed by a key of its own. Neither is the host's word, and each is said so.
    let held = |r: &serde_json::Value| serde_json::from_value::<HeldReceipt>(r.clone()).expect("a receipt");
    let two_seq = receipts[1]["seq"].as_u64().expect("seq");
    let edited = HeldReceipt {
        seq: two_seq,
        ..held(&receipts[0])
    };
    let forger = ReceiptSigner::derive(&SecretKey::generate(&mut rand_core::OsRng));
    let made_up_id = RequestId::from_bytes([0x5e; 16]);
    let made_up_hash = RecordHash::from_bytes([0x5e; 32]);
    let signed = Receipt::signed(&forger, HOST, made_up_id, two_seq, made_up_hash);
    let made_up = HeldReceipt {
        id: made_up_id,
        hash: made_up_hash,
        key: signed.key,
        sig: signed.sig,
        ..edited.clone()
    };
    let mut lines = Vec::new();
    for forged in [&edited, &made_up] {
        lines.extend(forged.encode());
        lines.push(b'\n');
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .and_then(|mut f| f.write_all(&lines))
        .expect("append to the receipts file");
    let not_signed = |report: &str| {
        assert!(
            report.contains(&format!("2 of 6 for host {HOST} NOT signed by it")),
            "{report}"
        );
        assert!(
            report.contains(&format!(
                "receipt for request {} (seq {two_seq}): not signed by this host: the receipts file was edited, or the receipt made up",
                edited.id
            )),
            "{report}"
        );
        assert!(
            report.contains(&format!(
                "receipt for request {made_up_id} (seq {two_seq}): not signed by this host: the receipt was made up (signed by key {}",
                forger.key()
            )),
            "{report}"
        );
    };
    let out = verify(&["--receipts", file_arg]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    not_signed(&stdout(&out));
    assert!(
        !stdout(&out).contains("signed by it, NOT in"),
        "the host's own receipts all check: {}",
        stdout(&out)
    );

    // Root removes request two's record and recomputes everything after it: plain verify
    // passes, the receipts do not, and name the request.
    assert!(daemon.terminate().success(), "graceful stop");
    let removed = receipts[1]["seq"].as_u64().expect("seq");
    roots_rewrite(&log, removed);
    let out = verify(&[]);
    assert!(
        out.status.success(),
        "plain verify passes: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("audit.jsonl: intact"), "{}", stdout(&out));
    let out = verify(&["--receipts", file_arg]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let report = stdout(&out);
    assert!(
        report.contains("audit.jsonl: intact"),
        "the chain itself passes: {report}"
    );
    assert!(
        report.contains(&format!(
            "receipt for request {two_id} (seq {removed}): seq {removed} is now a different record"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "receipts: 3 of 6 for host {HOST}, signed by it, NOT in {} as their clients were told",
            log.display()
        )),
        "every later one fails too, and the host signed them: {report}"
    );
    assert!(
        !report.contains(&format!(
            "receipt for request {} (seq {})",
            receipts[0]["id"].as_str().expect("id"),
            receipts[0]["seq"]
        )),
        "the one before stands: {report}"
    );
    not_signed(&report);

    // An auditor with a copy of the log and no configuration: the host's name and receipt key
    // as `sesamed show` gave them. The same findings.
    let copy = daemon.dir.path().join("copy-of-audit.jsonl");
    std::fs::copy(&log, &copy).expect("copy the log");
    let out = verify_copy(&copy, &receipt_key, file_arg);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let report = stdout(&out);
    assert!(report.contains("receipts: 3 of 6 for host"), "{report}");
    not_signed(&report);
    // Without the key: only the keys the log names are the host's; this log names it.
    let out = verify_copy(&copy, "", file_arg);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let report = stdout(&out);
    assert!(report.contains("no receipt key given"), "{report}");
    assert!(report.contains("receipts: 3 of 6 for host"), "{report}");
    not_signed(&report);

    // A line that is not a receipt is a problem, not skipped.
    std::fs::write(&other, "not a receipt\n").expect("write");
    let out = verify(&["--receipts", other_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains(":1: not a receipt"), "{}", stdout(&out));
}

/// `sesamed audit verify COPY --host HOST [--receipt-key KEY] --receipts FILE` with a
/// configuration that does not exist: what an auditor runs on a copy of the log.
fn verify_copy(copy: &Path, receipt_key: &str, receipts: &str) -> std::process::Output {
    let copy = copy.to_str().expect("utf-8");
    let mut args = vec![
        "audit",
        "verify",
        copy,
        "--config",
        "/nonexistent/sesamed.toml",
        "--host",
        HOST,
    ];
    if !receipt_key.is_empty() {
        args.extend(["--receipt-key", receipt_key]);
    }
    args.extend(["--receipts", receipts]);
    sesame_tests::sesamed(&args, &[])
}
