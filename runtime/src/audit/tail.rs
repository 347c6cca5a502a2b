//! `sesamed audit tail`: the audit log for people, one line per record, newest last, optionally
//! only what concerns one client, optionally following the log as it grows (and across
//! rotation).
//!
//! It reads the log as a stream and keeps only the last `n` matching records, so a large log
//! costs time in proportion to its size but no more memory than `n` lines.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// How often `--follow` looks for new lines.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct TailOptions {
    /// Only records about this client (its requests, enrolment, openings).
    pub client: Option<String>,
    /// How many of the last matching records to print first.
    pub lines: usize,
    /// Print each record as it is in the log (JSON) instead of a summary.
    pub json: bool,
}

/// Whether a record concerns `client` (any record does when no client is given).
pub fn concerns(record: &Value, client: Option<&str>) -> bool {
    let Some(client) = client else {
        return true;
    };
    let is = |field: &str| record.get(field).and_then(Value::as_str) == Some(client);
    match record.get("event").and_then(Value::as_str) {
        Some("client-added" | "client-removed" | "client-rekeyed") => is("name"),
        _ => is("client"),
    }
}

/// One line for people: time, who, what, outcome.
pub fn describe(record: &Value) -> String {
    let text = |field: &str| record.get(field).and_then(Value::as_str).unwrap_or_default();
    let num = |field: &str| record.get(field).and_then(Value::as_u64);
    let when = num("ts_ms").map_or_else(|| "?".to_owned(), crate::format_utc);
    let event = text("event");
    let what = match event {
        "request" => {
            let command = match (record.get("cluster").and_then(Value::as_str), text("command")) {
                (Some(cluster), command) => format!("{cluster}::{command}"),
                (None, command) => command.to_owned(),
            };
            let args: Vec<String> = record
                .get("args")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(quote).collect())
                .unwrap_or_default();
            let mut call = std::iter::once(command).chain(args).collect::<Vec<_>>().join(" ");
            if let Some(reason) = record.get("reason").and_then(Value::as_str) {
                call = format!("{call} because {}", quote(reason));
            }
            let code = num("code").unwrap_or(u64::MAX);
            let outcome = if text("phase") == "start" {
                "allowed, running".to_owned()
            } else if code == 0 {
                format!("ok in {}", micros(num("duration_us").unwrap_or(0)))
            } else {
                format!("error {code} ({}): {}", summary(code), text("message"))
            };
            let mut old_key = if record.get("previous_host_key").and_then(Value::as_bool) == Some(true) {
                " [sealed to the old host key]".to_owned()
            } else {
                String::new()
            };
            let approvers: Vec<&str> = record
                .get("approved_by")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !approvers.is_empty() {
                old_key = format!(" [approved by {}]{old_key}", approvers.join(", "));
            }
            format!(
                "{} {} via {}{}: {call} -> {outcome}{old_key}",
                text("client"),
                short_id(text("id")),
                text("transport"),
                record
                    .get("source_ip")
                    .and_then(Value::as_str)
                    .map(|ip| format!(" from {ip}"))
                    .unwrap_or_default()
            )
        }
        "duplicate" => format!(
            "{} {} via {}: delivered again, not run again{}",
            text("client"),
            short_id(text("id")),
            text("transport"),
            if record.get("answered").and_then(Value::as_bool) == Some(true) {
                " (first answer resent)"
            } else {
                ""
            }
        ),
        "rejected" => format!(
            "rejected {} input via {}{}: {}",
            num("code").map_or_else(String::new, |c| format!("({c})")),
            text("transport"),
            record
                .get("source_ip")
                .and_then(Value::as_str)
                .map(|ip| format!(" from {ip}"))
                .unwrap_or_default(),
            text("reason")
        ),
        "approval" => {
            let by = record
                .get("by")
                .and_then(Value::as_str)
                .map(|b| format!(" by {b}"))
                .unwrap_or_default();
            let why = [("reason", "because"), ("note", "saying")]
                .iter()
                .filter_map(|(field, word)| {
                    record
                        .get(*field)
                        .and_then(Value::as_str)
                        .map(|r| format!(" {word} {}", quote(r)))
                })
                .collect::<String>();
            format!(
                "{} {}: {}{why} -> {}{by} ({} of {} approvals)",
                text("client"),
                short_id(text("id")),
                text("call"),
                text("action"),
                num("approvals").unwrap_or(0),
                num("required").unwrap_or(0),
            )
        }
        "firewall" => {
            let rule = record.get("rule").map_or_else(String::new, |r| {
                format!(
                    " {}/{} from {}",
                    r.get("proto").and_then(Value::as_str).unwrap_or("?"),
                    r.get("port").and_then(Value::as_u64).unwrap_or(0),
                    r.get("source").and_then(Value::as_str).unwrap_or("?")
                )
            });
            let until = num("expires_ms")
                .map(|ms| format!(" until {}", crate::format_utc(ms)))
                .unwrap_or_default();
            let who = record
                .get("client")
                .and_then(Value::as_str)
                .map(|c| format!(" for {c}"))
                .unwrap_or_default();
            format!(
                "firewall {}{rule}{who}{until} ({}, by {})",
                text("action"),
                text("grant"),
                text("by")
            )
        }
        "client-added" => format!(
            "client {} enrolled in [{}] with key {}",
            text("name"),
            record
                .get("groups")
                .and_then(Value::as_array)
                .map(|g| g.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            text("key")
        ),
        "client-removed" => format!("client {} removed (key {})", text("name"), text("key")),
        _ => {
            // Everything else: the event and its fields, less the chain's bookkeeping.
            let mut rest = record.clone();
            if let Some(map) = rest.as_object_mut() {
                for k in ["seq", "ts_ms", "prev", "event"] {
                    map.remove(k);
                }
            }
            format!("{event} {rest}")
        }
    };
    format!("{when}  {what}")
}

/// Prints the last `options.lines` matching records of `path`; then, with `follow`, every new
/// matching record until `keep_going` says stop (checked every [`FOLLOW_INTERVAL`]). A log that
/// shrinks or is replaced (rotation) is read again from its start. Lines that are not JSON
/// (a torn last line) are counted, not printed; the count is returned.
pub fn tail(
    path: &Path,
    options: &TailOptions,
    follow: bool,
    out: &mut dyn Write,
    mut keep_going: impl FnMut() -> bool,
) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let mut inode = file.metadata()?.ino();
    let mut reader = BufReader::new(&mut file);
    let mut unreadable = 0;
    let mut last = VecDeque::with_capacity(options.lines.min(4096));
    let mut line = Vec::new();
    let mut pos = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        pos += n as u64;
        match render(&line, options) {
            Some(Some(text)) => {
                if last.len() == options.lines {
                    last.pop_front();
                }
                if options.lines > 0 {
                    last.push_back(text);
                }
            }
            Some(None) => {}
            None => unreadable += 1,
        }
    }
    for text in last {
        writeln!(out, "{text}")?;
    }
    out.flush()?;
    if !follow {
        return Ok(unreadable);
    }
    drop(reader);
    // Follow from the end of the last whole line.
    let mut partial = Vec::new();
    while keep_going() {
        std::thread::sleep(FOLLOW_INTERVAL);
        let replaced = match std::fs::metadata(path) {
            Ok(m) => m.ino() != inode || m.len() < pos,
            Err(_) => false, // mid-rotation: the new log is not there yet
        };
        if replaced && let Ok(f) = File::open(path) {
            file = f;
            inode = file.metadata()?.ino();
            pos = 0;
            partial.clear();
        }
        file.seek(SeekFrom::Start(pos))?;
        let mut fresh = Vec::new();
        file.read_to_end(&mut fresh)?;
        pos += fresh.len() as u64;
        partial.extend_from_slice(&fresh);
        let complete = partial.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for l in partial[..complete].split_inclusive(|b| *b == b'\n') {
            match render(l, options) {
                Some(Some(text)) => writeln!(out, "{text}")?,
                Some(None) => {}
                None => unreadable += 1,
            }
        }
        partial.drain(..complete);
        out.flush()?;
    }
    Ok(unreadable)
}

/// `None`: not a JSON record; `Some(None)`: not wanted; `Some(Some(text))`: print this.
fn render(line: &[u8], options: &TailOptions) -> Option<Option<String>> {
    let record: Value = serde_json::from_slice(line).ok()?;
    if !concerns(&record, options.client.as_deref()) {
        return Some(None);
    }
    Some(Some(if options.json {
        String::from_utf8_lossy(line).trim_end().to_owned()
    } else {
        describe(&record)
    }))
}

fn summary(code: u64) -> &'static str {
    sesame_proto::ErrorCode::ALL
        .iter()
        .find(|c| u64::from(c.as_u16()) == code)
        .map_or("unknown code", |c| c.summary())
}

/// The first 8 characters of a request id: enough to tell requests apart by eye.
fn short_id(id: &str) -> String {
    format!("[{}]", id.get(..8).unwrap_or(id))
}

fn micros(us: u64) -> String {
    if us >= 10_000 {
        format!("{} ms", us / 1000)
    } else {
        format!("{:.1} ms", us as f64 / 1000.0)
    }
}

/// An argument as the shell would need it, so a line can be read back unambiguously.
fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if plain { arg.to_owned() } else { format!("{arg:?}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, AuditLog, RequestRecord};

    fn request(client: &str, id: &str, code: u16, args: &[&str]) -> AuditEvent {
        AuditEvent::Request(Box::new(RequestRecord {
            reason: (client == "alice").then(|| "INC-42 rotate".to_owned()),
            phase: "end",
            id: id.into(),
            client: client.into(),
            key: "k".into(),
            transport: "quic".into(),
            source_ip: Some("192.0.2.7".into()),
            cluster: Some("basic".into()),
            command: Some("echo".into()),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            code,
            message: if code == 0 {
                String::new()
            } else {
                "no rule allows it".into()
            },
            duration_us: 1234,
            ..RequestRecord::default()
        }))
    }

    #[test]
    fn shows_the_last_records_of_one_client_as_sentences_or_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).expect("open");
        log.append(
            1_795_350_245_000,
            &AuditEvent::ClientAdded {
                name: "alice".into(),
                key: "k".into(),
                groups: vec!["users".into()],
            },
        )
        .expect("append");
        for i in 0..5 {
            let id = format!("0000000{i}-rest");
            log.append(
                1_795_350_246_000 + i,
                &request("alice", &id, 0, &["hi there", "x"]),
            )
            .expect("append");
            log.append(1_795_350_246_000 + i, &request("bob", &id, 1010, &[]))
                .expect("append");
        }
        log.sync().expect("sync");
        drop(log);

        let run = |options: &TailOptions| {
            let mut out = Vec::new();
            let bad = tail(&path, options, false, &mut out, || false).expect("tail");
            (String::from_utf8(out).expect("utf-8"), bad)
        };
        let (text, bad) = run(&TailOptions {
            client: Some("alice".into()),
            lines: 3,
            json: false,
        });
        assert_eq!(bad, 0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines.iter().all(|l| l.contains("alice")), "{text}");
        assert!(
            lines[2].starts_with("2026-11-22 12:24:06 UTC  alice [00000004] via quic from 192.0.2.7: basic::echo \"hi there\" x because \"INC-42 rotate\" -> ok in 1.2 ms"),
            "{}",
            lines[2]
        );
        let (text, _) = run(&TailOptions {
            client: Some("alice".into()),
            lines: 100,
            json: false,
        });
        assert_eq!(text.lines().count(), 6, "enrolment and five requests: {text}");
        assert!(
            text.lines()
                .next()
                .is_some_and(|l| l.contains("client alice enrolled in [users]")),
            "{text}"
        );

        let (text, _) = run(&TailOptions {
            client: Some("bob".into()),
            lines: 1,
            json: true,
        });
        let v: Value = serde_json::from_str(text.trim()).expect("a log line");
        assert_eq!(
            (v["client"].as_str(), v["code"].as_u64()),
            (Some("bob"), Some(1010))
        );
        let (text, _) = run(&TailOptions {
            client: Some("bob".into()),
            lines: 1,
            json: false,
        });
        assert!(
            text.contains("-> error 1010 (denied by policy): no rule allows it"),
            "{text}"
        );

        // A torn last line is counted, not printed.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        f.write_all(b"{\"torn\n").expect("write");
        let (_, bad) = run(&TailOptions {
            client: None,
            lines: 1,
            json: false,
        });
        assert_eq!(bad, 1);
    }

    #[test]
    fn follows_new_records_and_a_rotated_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).expect("open");
        log.append(1, &request("alice", "first", 0, &[])).expect("append");
        log.sync().expect("sync");
        drop(log);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let follower = {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let options = TailOptions {
                    client: Some("alice".into()),
                    lines: 10,
                    json: true,
                };
                tail(&path, &options, true, &mut out, || rx.try_recv().is_err()).expect("tail");
                String::from_utf8(out).expect("utf-8")
            })
        };
        std::thread::sleep(FOLLOW_INTERVAL * 2);
        let log = AuditLog::open(&path).expect("open");
        log.append(2, &request("alice", "second", 0, &[]))
            .expect("append");
        log.append(2, &request("bob", "other", 0, &[])).expect("append");
        log.sync().expect("sync");
        drop(log);
        std::thread::sleep(FOLLOW_INTERVAL * 3);
        std::fs::rename(&path, dir.path().join("audit.jsonl.1")).expect("rotate");
        let log = AuditLog::open(&path).expect("open");
        log.append(3, &request("alice", "third", 0, &[])).expect("append");
        log.sync().expect("sync");
        drop(log);
        std::thread::sleep(FOLLOW_INTERVAL * 3);
        tx.send(()).expect("stop");
        let text = follower.join().expect("follower");
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).expect("json")["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(ids, ["first", "second", "third"], "{text}");
    }
}
