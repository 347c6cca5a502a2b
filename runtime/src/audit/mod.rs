//! The audit log: one JSON object per line, appended with a single `write(2)` on an `O_APPEND`
//! file so that concurrent writers (the daemon, `sesamed client add`) never interleave.
//!
//! Every request is recorded, accepted or not. Requests the policy allows are recorded *before*
//! they run (`phase: "start"`); if that write fails the command does not run. Unauthenticated
//! input is counted and recorded too, at most [`REJECT_BURST`] records per
//! [`REJECT_PERIOD_MS`]; the rest are summed into one `rejected-suppressed` record so a flood
//! of garbage cannot fill the disk.
//!
//! Every line is a link of a hash chain ([`chain`]): `seq` and `prev`, the SHA-256 of the line
//! before. `sesamed audit verify` finds any line changed, removed, inserted or moved.

pub mod chain;
pub mod cli;
pub mod receipts;
pub mod tail;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Unauthenticated rejections recorded in full per period.
pub const REJECT_BURST: u32 = 100;
/// The period for [`REJECT_BURST`].
pub const REJECT_PERIOD_MS: u64 = 10_000;

/// How far the head file may lag the log while lines are being written: rewriting it after
/// every line cost the daemon about 5 µs a line. A crash may leave it this far behind.
pub const HEAD_INTERVAL: Duration = Duration::from_millis(100);

/// How long a writer keeps the log's lock across lines before letting other processes in.
pub const LOCK_LEASE: Duration = Duration::from_millis(20);

/// What happened, as one audit line.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AuditEvent {
    /// The daemon started serving.
    Started {
        /// The host's name.
        host: String,
        /// The host's receipt key in force: receipts signed by it are the host's (`sesamed
        /// audit verify --receipts` trusts the keys these records name).
        receipt_key: String,
        /// The policy revision in force.
        policy_revision: String,
        /// Enrolled clients.
        clients: usize,
    },
    /// The daemon stopped.
    Stopped {
        /// Why.
        reason: String,
    },
    /// Input that never authenticated: no reply was sent.
    Rejected {
        /// `quic` or `sqs`.
        transport: String,
        /// The observed source address, if the transport has one.
        source_ip: Option<String>,
        /// The sender key the envelope claimed, if it got that far.
        sender: Option<String>,
        /// The error code (2001 malformed envelope, 1001 unknown client).
        code: u16,
        /// What was wrong.
        reason: String,
    },
    /// Unauthenticated rejections not recorded one by one in the last period.
    RejectedSuppressed {
        /// How many.
        count: u64,
    },
    /// An authenticated request: written at `start` (allowed, about to run) and at `end` (any outcome).
    Request(Box<RequestRecord>),
    /// A client was enrolled.
    ClientAdded {
        /// Its name.
        name: String,
        /// Its key.
        key: String,
        /// Its groups.
        groups: Vec<String>,
    },
    /// A client was given a new key; the old one is accepted until `previous_until_ms`.
    ClientRekeyed {
        /// Its name.
        name: String,
        /// Its new key.
        key: String,
        /// The replaced key.
        previous: String,
        /// Until when the replaced key is accepted.
        previous_until_ms: u64,
    },
    /// A client was removed.
    ClientRemoved {
        /// Its name.
        name: String,
        /// Its key.
        key: String,
    },
    /// The policy directory was reloaded, or a reload was rejected and the old policy kept.
    PolicyReloaded {
        /// The revision now in force.
        revision: String,
        /// The revision before.
        previous: String,
        /// Why the new policy was rejected, when it was.
        error: Option<String>,
    },
    /// A request delivered again (SQS redelivery, a client's retry, a replay) while its first
    /// delivery ran or after it was answered: it did not run again.
    Duplicate {
        /// The request id.
        id: String,
        /// The enrolled client name.
        client: String,
        /// `quic` or `sqs`.
        transport: String,
        /// Observed source address.
        source_ip: Option<String>,
        /// Whether the first delivery's answer was sent again (false: it was still running).
        answered: bool,
    },
    /// A queue message dropped without being run: its body is not an envelope, or it came back
    /// too often (a reply that can never be sent). It is deleted so it is not retried forever.
    Poison {
        /// The queue.
        queue: String,
        /// The queue's message id.
        message_id: String,
        /// Deliveries so far.
        receive_count: u32,
        /// Why.
        reason: String,
    },
    /// The client registry was reloaded (or a reload failed and the old one was kept).
    RegistryReloaded {
        /// Clients now enrolled.
        clients: usize,
        /// The error, when the reload failed.
        error: Option<String>,
    },
    /// The host keys were reloaded (`sesamed rotate-key`, SIGHUP), or a reload failed and the
    /// loaded keys were kept.
    HostKeysReloaded {
        /// The current public key.
        key: String,
        /// The receipt key derived from it, which signs receipts from now on.
        receipt_key: String,
        /// The replaced key still kept, if any.
        previous: Option<String>,
        /// Until when it is accepted.
        previous_until_ms: Option<u64>,
        /// The error, when the reload failed.
        error: Option<String>,
    },
    /// `sesamed rotate-key` replaced the host key.
    HostKeyRotated {
        /// The new public key.
        key: String,
        /// The receipt key derived from it.
        receipt_key: String,
        /// The replaced key.
        previous: String,
        /// Until when the replaced key is accepted.
        previous_until_ms: u64,
        /// SHA-256 of the new next key, which clients following this rotation pin.
        next_key_sha256: String,
        /// Whether the new key was the one committed to beforehand (`host.key.next`), so
        /// that clients can follow by themselves.
        committed: bool,
    },
    /// A firewall opening was made, extended, released, revoked or expired, or reconciliation or
    /// the reaper acted on one.
    Firewall(Box<crate::capability::firewall::FirewallRecord>),
    /// A temporary change to an account (an SSH key, a group membership) was made, extended,
    /// restored, or taken back (expired, revoked).
    AccountGrant(Box<crate::capability::users::AccountGrantRecord>),
    /// A step of a request that waits for approval: requested, approved, rejected, withdrawn,
    /// expired, interrupted (the daemon stopped while it ran), or set aside (its record was
    /// unreadable at start). Running it is a `request` record with `approved_by`.
    Approval(Box<ApprovalRecord>),
}

/// One step of a request parked for approval.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApprovalRecord {
    /// `requested`, `approved`, `rejected`, `withdrawn`, `expired`, `interrupted` or `set-aside`.
    pub action: &'static str,
    /// The parked request's id.
    pub id: String,
    /// Who asked for it.
    pub client: String,
    /// Who approved, rejected or withdrew it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// `cluster::command args…`, masked as the logs mask it.
    pub call: String,
    /// The requester's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The rejecter's reason, or what was wrong with an unreadable record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Approvals it has after this step.
    pub approvals: u32,
    /// Approvals it needs.
    pub required: u32,
    /// When it expires unapproved, Unix milliseconds.
    pub expires_ms: u64,
}

/// One authenticated request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestRecord {
    /// `start` or `end`.
    pub phase: &'static str,
    /// The request id.
    pub id: String,
    /// The enrolled client name.
    pub client: String,
    /// The client's key.
    pub key: String,
    /// `quic` or `sqs`.
    pub transport: String,
    /// Observed source address.
    pub source_ip: Option<String>,
    /// Whether the request was sealed to the host key the last rotation replaced.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub previous_host_key: bool,
    /// Cluster (as resolved when known).
    pub cluster: Option<String>,
    /// Command.
    pub command: Option<String>,
    /// Arguments.
    pub args: Vec<String>,
    /// Why the client asked, when it said (`sesame run --reason`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who approved it, for a request that ran after approval (`decision.approvals`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approved_by: Vec<String>,
    /// The module's digest, once resolved.
    pub module_digest: Option<String>,
    /// The policy revision that judged it.
    pub policy_revision: Option<String>,
    /// `allow` or `deny`, once judged.
    pub decision: Option<&'static str>,
    /// The policy's reasons.
    pub reasons: Vec<String>,
    /// Host calls the module made.
    pub host_calls: u32,
    /// Host calls refused (outside the grant), with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied: Vec<String>,
    /// Changes the module made on the host through its capabilities (accounts, keys, groups).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<String>,
    /// Result code (0 ok).
    pub code: u16,
    /// Outcome message (errors: what the client was told; detail stays in the daemon log).
    pub message: String,
    /// Time from receipt to reply.
    pub duration_us: u64,
}

/// The append-only audit log.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The log, opened for reading (to find its head) and appending.
    file: File,
    /// `<log>.head`: the head, rewritten in place at most every [`HEAD_INTERVAL`], at `sync`
    /// and when the writer is dropped.
    head_file: File,
    /// When `head_file` was last written, if it is behind the log.
    head_stale_since: Option<Instant>,
    /// When this writer took the log's `flock`, while it holds it.
    locked_at: Option<Instant>,
    /// The head after this writer's last line, and the log's length then: still the head
    /// while the length is unchanged.
    head: Option<(chain::Head, u64)>,
    period_start_ms: u64,
    rejects_in_period: u32,
    suppressed: u64,
}

/// The audit log could not be written.
#[derive(Debug, thiserror::Error)]
#[error("log {path}: {source}")]
pub struct AuditError {
    /// The log file.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

impl AuditLog {
    /// Opens (creating, mode 0600) the log for appending.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let err = |source| AuditError {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        let head_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(chain::head_path(path))
            .map_err(err)?;
        Ok(Self {
            path: path.to_owned(),
            inner: Mutex::new(Inner {
                file,
                head_file,
                head_stale_since: None,
                locked_at: None,
                head: None,
                period_start_ms: 0,
                rejects_in_period: 0,
                suppressed: 0,
            }),
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event stamped with `now_ms`. Returns the head of the line it wrote: its
    /// `seq` and hash, what a receipt names (not [`AuditLog::head`] afterwards, which may
    /// already be another thread's line).
    pub fn append(&self, now_ms: u64, event: &AuditEvent) -> Result<chain::Head, AuditError> {
        let mut inner = self.inner();
        self.write_line(&mut inner, now_ms, event)
    }

    /// Appends an unauthenticated rejection, subject to the flood limit.
    pub fn append_rejected(&self, now_ms: u64, event: &AuditEvent) -> Result<(), AuditError> {
        let mut inner = self.inner();
        if now_ms.saturating_sub(inner.period_start_ms) >= REJECT_PERIOD_MS {
            self.write_suppressed(&mut inner, now_ms)?;
        }
        if inner.rejects_in_period >= REJECT_BURST {
            inner.suppressed += 1;
            return Ok(());
        }
        inner.rejects_in_period += 1;
        self.write_line(&mut inner, now_ms, event).map(drop)
    }

    /// Writes the summary of rejections the flood limit left out, if any: once their period is
    /// over (the daemon calls this every second, so a flood that stops is summed within one
    /// period, not only when the next rejection comes), or now when `now` says so (at shutdown,
    /// so that no count is lost).
    pub fn summarise_rejected(&self, now_ms: u64, now: bool) -> Result<(), AuditError> {
        let mut inner = self.inner();
        if now || now_ms.saturating_sub(inner.period_start_ms) >= REJECT_PERIOD_MS {
            self.write_suppressed(&mut inner, now_ms)?;
        }
        Ok(())
    }

    /// Starts a new flood-limit period, writing the count the last one suppressed.
    fn write_suppressed(&self, inner: &mut Inner, now_ms: u64) -> Result<(), AuditError> {
        let suppressed = std::mem::take(&mut inner.suppressed);
        inner.period_start_ms = now_ms;
        inner.rejects_in_period = 0;
        if suppressed > 0 {
            self.write_line(
                inner,
                now_ms,
                &AuditEvent::RejectedSuppressed { count: suppressed },
            )?;
        }
        Ok(())
    }

    /// Forces written records to stable storage.
    pub fn sync(&self) -> Result<(), AuditError> {
        let mut inner = self.inner();
        self.unlock(&mut inner);
        inner
            .file
            .sync_data()
            .and_then(|()| inner.head_file.sync_data())
            .map_err(|source| AuditError {
                path: self.path.clone(),
                source,
            })
    }

    /// The head after the last line this writer appended (`None` before its first).
    pub fn head(&self) -> Option<chain::Head> {
        let inner = self.inner();
        inner.head.map(|(head, _)| head)
    }

    /// Appends any serialisable record (an object) stamped with `now_ms`: the decision log
    /// uses the same append-only writer with its own record type.
    pub fn append_record<T: Serialize>(&self, now_ms: u64, record: &T) -> Result<(), AuditError> {
        let mut inner = self.inner();
        self.write_line(&mut inner, now_ms, record).map(drop)
    }

    /// Appends one line linked to the log's head, under an exclusive `flock` so that writers in
    /// other processes link to it too. The lock is held as a lease of up to [`LOCK_LEASE`]
    /// across lines, so a busy daemon takes it once per lease rather than once per line;
    /// [`AuditLog::release`] (the daemon calls it every second), `sync` and dropping the log let
    /// it go sooner. Returns the head of the line written.
    fn write_line<T: Serialize>(
        &self,
        inner: &mut Inner,
        now_ms: u64,
        event: &T,
    ) -> Result<chain::Head, AuditError> {
        let err = |source| AuditError {
            path: self.path.clone(),
            source,
        };
        let fresh = inner.locked_at.is_none();
        if fresh {
            inner.file.lock().map_err(err)?;
            inner.locked_at = Some(Instant::now());
        }
        let written = self.write_linked(inner, fresh, now_ms, event);
        if written.is_err() || inner.locked_at.is_some_and(|at| at.elapsed() >= LOCK_LEASE) {
            self.unlock(inner);
        }
        written
    }

    /// The writer's state. A panic while holding it leaves whole lines behind (each is one
    /// `write`), so a poisoned lock is still sound to use.
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lets other processes write: updates the head file and gives up the lock, if held.
    pub fn release(&self) {
        let mut inner = self.inner();
        self.unlock(&mut inner);
    }

    fn unlock(&self, inner: &mut Inner) {
        self.write_head(inner);
        if inner.locked_at.take().is_some()
            && let Err(e) = inner.file.unlock()
        {
            tracing::warn!(log = %self.path.display(), "cannot unlock: {e}");
        }
    }

    fn write_linked<T: Serialize>(
        &self,
        inner: &mut Inner,
        fresh: bool,
        now_ms: u64,
        event: &T,
    ) -> Result<chain::Head, AuditError> {
        #[derive(Serialize)]
        struct Line<'a, T> {
            seq: u64,
            ts_ms: u64,
            #[serde(flatten)]
            event: &'a T,
            prev: String,
        }
        let err = |source| AuditError {
            path: self.path.clone(),
            source,
        };
        // Holding the lock since this writer's last line, nobody else has written since.
        let len = match inner.head {
            Some((_, end)) if !fresh => end,
            _ => inner.file.metadata().map_err(err)?.len(),
        };
        let (head, torn) = match inner.head {
            Some((head, end)) if end == len => (head, false),
            known => {
                // Another process wrote, or the log was emptied or rotated under us: an empty log
                // continues from what this writer or the head file last knew.
                let fallback = match known {
                    Some((head, _)) => head,
                    None => chain::read_head_file(&chain::head_path(&self.path))
                        .ok()
                        .flatten()
                        .unwrap_or(chain::Head::EMPTY),
                };
                chain::head_of(&inner.file, len, fallback).map_err(err)?
            }
        };
        let seq = head.seq + 1;
        let body = serde_json::to_vec(&Line {
            seq,
            ts_ms: now_ms,
            event,
            prev: hex::encode(head.hash),
        })
        .map_err(|e| err(e.into()))?;
        let mut line = Vec::with_capacity(body.len() + 2);
        if torn {
            line.push(b'\n');
        }
        line.extend_from_slice(&body);
        line.push(b'\n');
        inner.file.write_all(&line).map_err(err)?;
        let head = chain::Head {
            seq,
            hash: chain::line_hash(&body),
        };
        inner.head = Some((head, len + line.len() as u64));
        let since = *inner.head_stale_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= HEAD_INTERVAL {
            self.write_head(inner);
        }
        Ok(head)
    }

    /// Brings the head file up to this writer's head. The records are written already; a head
    /// file that cannot be updated only makes `audit verify` report it behind, so this is
    /// logged, not returned.
    fn write_head(&self, inner: &mut Inner) {
        let Some((head, _)) = inner.head.filter(|_| inner.head_stale_since.is_some()) else {
            return;
        };
        match inner.head_file.write_all_at(&chain::head_record(&head), 0) {
            Ok(()) => inner.head_stale_since = None,
            Err(e) => tracing::warn!(log = %self.path.display(), "cannot update the head file: {e}"),
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .expect("read")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    #[test]
    fn appends_tagged_json_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).expect("open");
        log.append(
            5,
            &AuditEvent::Stopped {
                reason: "test".into(),
            },
        )
        .expect("append");
        let rec = RequestRecord {
            phase: "end",
            id: "ab".into(),
            code: 1010,
            ..Default::default()
        };
        log.append(6, &AuditEvent::Request(Box::new(rec)))
            .expect("append");
        let got = lines(&path);
        assert_eq!(got[0]["event"], "stopped");
        assert_eq!(got[0]["ts_ms"], 5);
        assert_eq!(got[1]["event"], "request");
        assert_eq!(got[1]["code"], 1010);
        assert_eq!(got[1]["phase"], "end");
    }

    #[test]
    fn a_flood_of_rejections_is_summarised() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).expect("open");
        let ev = AuditEvent::Rejected {
            transport: "quic".into(),
            source_ip: None,
            sender: None,
            code: 2001,
            reason: "bad magic".into(),
        };
        for _ in 0..(REJECT_BURST + 50) {
            log.append_rejected(1_000, &ev).expect("append");
        }
        log.append_rejected(1_000 + REJECT_PERIOD_MS, &ev)
            .expect("append");
        let got = lines(&path);
        assert_eq!(got.len() as u32, REJECT_BURST + 2);
        let summary = &got[REJECT_BURST as usize];
        assert_eq!(summary["event"], "rejected-suppressed");
        assert_eq!(summary["count"], 50);
    }

    #[test]
    fn the_last_summary_is_written_when_its_period_ends_and_at_shutdown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).expect("open");
        let ev = AuditEvent::Rejected {
            transport: "sqs".into(),
            source_ip: None,
            sender: None,
            code: 2001,
            reason: "poison".into(),
        };
        for _ in 0..(REJECT_BURST + 7) {
            log.append_rejected(1_000, &ev).expect("append");
        }
        log.summarise_rejected(1_500, false).expect("summarise");
        assert_eq!(
            lines(&path).len() as u32,
            REJECT_BURST,
            "the period is not over yet"
        );
        // The flood stopped; the tick after its period writes the count without a new rejection.
        log.summarise_rejected(1_000 + REJECT_PERIOD_MS, false)
            .expect("summarise");
        let got = lines(&path);
        assert_eq!(got.len() as u32, REJECT_BURST + 1);
        assert_eq!(got[REJECT_BURST as usize]["count"], 7);
        // At shutdown, mid-period.
        for _ in 0..(REJECT_BURST + 3) {
            log.append_rejected(2 * REJECT_PERIOD_MS, &ev).expect("append");
        }
        log.summarise_rejected(2 * REJECT_PERIOD_MS + 1, true)
            .expect("summarise");
        let got = lines(&path);
        assert_eq!(got.last().expect("a line")["count"], 3);
    }

    fn stopped(log: &AuditLog, n: u64) {
        log.append(
            n,
            &AuditEvent::Stopped {
                reason: format!("r{n}"),
            },
        )
        .expect("append");
    }

    fn verify(paths: &[&Path]) -> chain::Report {
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
        chain::verify(&paths, None, &[], &[]).expect("verify")
    }

    fn rewrite(path: &Path, edit: impl FnOnce(&mut Vec<String>)) {
        let mut lines: Vec<String> = std::fs::read_to_string(path)
            .expect("read")
            .lines()
            .map(str::to_owned)
            .collect();
        edit(&mut lines);
        std::fs::write(path, lines.join("\n") + "\n").expect("write");
    }

    #[test]
    fn lines_form_a_chain_that_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).expect("open");
        for n in 1..=3 {
            stopped(&log, n);
        }
        log.sync().expect("sync writes the head file");
        let got = lines(&path);
        assert_eq!(got[0]["seq"], 1);
        assert_eq!(got[0]["prev"], "0".repeat(64));
        assert_eq!(got[2]["seq"], 3);
        let report = verify(&[&path]);
        assert_eq!(report.problems, Vec::<String>::new());
        assert_eq!(
            (report.lines, report.first, report.head.seq),
            (3, Some((1, true)), 3)
        );
        assert_eq!(report.head_file, Some(report.head));
        assert_eq!(log.head(), Some(report.head));
    }

    #[test]
    fn append_returns_the_head_of_its_own_line_while_others_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).expect("open");
        let heads: Vec<chain::Head> = std::thread::scope(|s| {
            let writers: Vec<_> = (0..4u64)
                .map(|t| {
                    let log = &log;
                    s.spawn(move || {
                        (0..50)
                            .map(|n| {
                                let event = AuditEvent::Stopped {
                                    reason: format!("t{t} n{n}"),
                                };
                                let head = log.append(n, &event).expect("append");
                                (head, format!("t{t} n{n}"))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            writers
                .into_iter()
                .flat_map(|w| w.join().expect("writer"))
                .map(|(head, reason)| {
                    let text = std::fs::read_to_string(&path).expect("read");
                    let line = text
                        .lines()
                        .find(|l| l.contains(&format!("\"reason\":\"{reason}\"")))
                        .expect("its line");
                    assert_eq!(chain::seq_of(line.as_bytes()), Some(head.seq), "{line}");
                    assert_eq!(head.hash, chain::line_hash(line.as_bytes()), "{line}");
                    head
                })
                .collect()
        });
        let mut seqs: Vec<u64> = heads.iter().map(|h| h.seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    }

    #[test]
    fn an_edit_a_removal_a_reorder_and_a_cut_end_are_each_found() {
        type Case = (&'static str, fn(&mut Vec<String>), &'static str);
        let cases: [Case; 5] = [
            ("edit", |l| l[1] = l[1].replace("r2", "r9"), "does not link"),
            (
                "edit the last",
                |l| l[3] = l[3].replace("r4", "r9"),
                "is not the one its head file recorded",
            ),
            ("remove", |l| drop(l.remove(1)), "records removed or reordered"),
            ("reorder", |l| l.swap(1, 2), "does not link"),
            ("cut the end", |l| drop(l.pop()), "were removed from the end"),
        ];
        for (what, edit, expected) in cases {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("audit.jsonl");
            let log = AuditLog::open(&path).expect("open");
            for n in 1..=4 {
                stopped(&log, n);
            }
            drop(log);
            assert!(verify(&[&path]).problems.is_empty());
            rewrite(&path, edit);
            let problems = verify(&[&path]).problems;
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{what}: {problems:?}"
            );
        }
    }

    #[test]
    fn writers_in_turn_and_a_torn_line_keep_one_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let daemon = AuditLog::open(&path).expect("open");
        let admin = AuditLog::open(&path).expect("open");
        for n in 1..=6 {
            let writer = if n % 2 == 0 { &admin } else { &daemon };
            stopped(writer, n);
            // What the daemon's one-second tick does; until then the other writer waits.
            writer.release();
        }
        let report = verify(&[&path]);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.head.seq, 6);

        // A crash in the middle of a write: the next writer links to the torn bytes.
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(b"{\"seq\":7,\"ts_").expect("torn write");
        stopped(&AuditLog::open(&path).expect("open"), 8);
        let got = std::fs::read_to_string(&path).expect("read");
        assert!(got.ends_with("\n") && got.lines().count() == 8, "{got}");
        let report = verify(&[&path]);
        assert_eq!(report.head.seq, 8);
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(
            report.problems[0].contains(":7: not a chained record"),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn a_rotated_log_continues_the_chain_and_a_saved_head_catches_a_rewrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let old = dir.path().join("audit.jsonl.1");
        stopped(&AuditLog::open(&path).expect("open"), 1);
        stopped(&AuditLog::open(&path).expect("open"), 2);
        let saved = verify(&[&path]).head;
        std::fs::rename(&path, &old).expect("rotate");
        stopped(&AuditLog::open(&path).expect("open"), 3);
        let alone = verify(&[&path]);
        assert_eq!(alone.first, Some((3, false)), "continues the rotated file");
        assert!(alone.problems.is_empty(), "{:?}", alone.problems);
        let both = chain::verify(&[old.clone(), path.clone()], Some(saved), &[], &[]).expect("verify");
        assert!(both.problems.is_empty(), "{:?}", both.problems);
        assert_eq!((both.first, both.head.seq), (Some((1, true)), 3));

        // Rewritten from scratch, chain and head file recomputed: only the saved head tells.
        std::fs::remove_file(&old).expect("rm");
        std::fs::remove_file(&path).expect("rm");
        std::fs::remove_file(chain::head_path(&path)).expect("rm");
        let forged = AuditLog::open(&path).expect("open");
        for n in [1, 20, 3] {
            stopped(&forged, n);
        }
        let report = chain::verify(std::slice::from_ref(&path), Some(saved), &[], &[]).expect("verify");
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("the log was rewritten")),
            "{:?}",
            report.problems
        );
    }

    /// The receipt signer of the host whose key is `byte` repeated.
    fn signer(byte: u8) -> sesame_proto::ReceiptSigner {
        let key = sesame_proto::SecretKey::from_hex(&format!("{byte:02x}").repeat(32)).expect("key");
        sesame_proto::ReceiptSigner::derive(&key)
    }

    /// Writes the end record of request `n` (with a line of another kind before it, so that
    /// receipts name every other line) and returns the receipt its client would keep, signed
    /// by host `web`'s receipt key (`signer(1)`).
    fn answered(log: &AuditLog, n: u8) -> sesame_proto::HeldReceipt {
        answered_by(log, n, &signer(1))
    }

    /// [`answered`], signed by `signer`.
    fn answered_by(log: &AuditLog, n: u8, signer: &sesame_proto::ReceiptSigner) -> sesame_proto::HeldReceipt {
        stopped(log, u64::from(n));
        let id = sesame_proto::RequestId::from_bytes([n; 16]);
        let record = RequestRecord {
            phase: "end",
            id: id.to_string(),
            client: "alice".into(),
            message: format!("answer {n}"),
            ..Default::default()
        };
        let head = log
            .append(u64::from(n), &AuditEvent::Request(Box::new(record)))
            .expect("append");
        let receipt = sesame_proto::Receipt::signed(
            signer,
            "web",
            id,
            head.seq,
            sesame_proto::RecordHash::from_bytes(head.hash),
        );
        sesame_proto::HeldReceipt {
            time_ms: u64::from(n),
            host: "web".into(),
            host_name: "web".into(),
            id,
            command: "echo".into(),
            code: 0,
            seq: receipt.seq,
            hash: receipt.hash,
            key: receipt.key,
            sig: receipt.sig,
        }
    }

    /// A log of six answered requests (twelve lines) and the receipts for them.
    fn answered_log() -> (tempfile::TempDir, PathBuf, Vec<sesame_proto::HeldReceipt>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).expect("open");
        let receipts = (1..=6).map(|n| answered(&log, n)).collect();
        drop(log);
        (dir, path, receipts)
    }

    /// Verifies the log at `path` with `receipts`, host `web`'s receipt key being `signer(1)`'s.
    fn check_receipts(
        path: &Path,
        receipts: &[sesame_proto::HeldReceipt],
    ) -> (chain::Report, Vec<(u64, chain::ReceiptFault)>) {
        check_receipts_with(&[path.to_owned()], receipts, &[signer(1).key()])
    }

    /// Verifies the logs at `paths` with `receipts`, host `web`'s receipt keys being `keys`.
    fn check_receipts_with(
        paths: &[PathBuf],
        receipts: &[sesame_proto::HeldReceipt],
        keys: &[sesame_proto::ReceiptKey],
    ) -> (chain::Report, Vec<(u64, chain::ReceiptFault)>) {
        let report = chain::verify(paths, None, receipts, keys).expect("verify");
        let faults = report.receipts.iter().map(|p| (p.seq, p.fault.clone())).collect();
        (report, faults)
    }

    /// What root on the host can do: edit the lines from index `from` on with `edit`, then
    /// renumber and relink every line from there and rewrite the head file, so that plain
    /// `verify` passes.
    fn roots_rewrite(path: &Path, from: usize, edit: impl FnOnce(&mut Vec<String>)) {
        let mut lines: Vec<String> = std::fs::read_to_string(path)
            .expect("read")
            .lines()
            .map(str::to_owned)
            .collect();
        edit(&mut lines);
        let mut head = chain::Head::EMPTY;
        for (i, line) in lines.iter_mut().enumerate() {
            if i >= from {
                // `{"seq":N,` … `,"prev":"HEX"}`: everything between stays as it was.
                let body_start = line.find(',').expect("seq") + 1;
                let body_end = line.rfind(",\"prev\":").expect("prev");
                *line = format!(
                    "{{\"seq\":{},{},\"prev\":\"{}\"}}",
                    head.seq + 1,
                    &line[body_start..body_end],
                    hex::encode(head.hash)
                );
            }
            head = chain::Head {
                seq: chain::seq_of(line.as_bytes()).expect("seq"),
                hash: chain::line_hash(line.as_bytes()),
            };
        }
        std::fs::write(path, lines.join("\n") + "\n").expect("write");
        std::fs::write(chain::head_path(path), chain::head_record(&head)).expect("head file");
    }

    #[test]
    fn receipts_verify_against_an_intact_chain() {
        let (_dir, path, receipts) = answered_log();
        let (report, faults) = check_receipts(&path, &receipts);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(faults, []);
        assert_eq!(
            receipts.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [2, 4, 6, 8, 10, 12]
        );
    }

    #[test]
    fn roots_rewrite_after_a_removed_record_passes_plain_verify_but_not_the_receipts() {
        let (_dir, path, receipts) = answered_log();
        // Request 3's end record (seq 6, index 5) removed; everything after renumbered and
        // relinked, the head file too.
        roots_rewrite(&path, 5, |lines| drop(lines.remove(5)));
        let (report, faults) = check_receipts(&path, &receipts);
        assert!(
            report.problems.is_empty(),
            "plain verify passes: {:?}",
            report.problems
        );
        assert_eq!(report.head.seq, 11);
        assert_eq!(report.head_file, Some(report.head));
        // Before it: intact. From it on: every receipt fails, the removed one included.
        let failed: Vec<u64> = faults.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(failed, [6, 8, 10, 12]);
        assert_eq!(
            faults[0].1,
            chain::ReceiptFault::Replaced { now: None },
            "seq 6 is request 4's stop line now"
        );
        assert_eq!(faults[1].1, chain::ReceiptFault::Replaced { now: None });
        assert_eq!(faults[3].1, chain::ReceiptFault::PastEnd { last: 11 });
        let text = report.receipts[0].to_string();
        assert!(
            text.contains(&format!("receipt for request {} (seq 6)", receipts[2].id))
                && text.contains("is now a different record: the log was rewritten from here"),
            "{text}"
        );
        // Removing a stop line instead shifts request records onto other requests' seqs.
        let (_dir, path, receipts) = answered_log();
        roots_rewrite(&path, 4, |lines| drop(lines.remove(4)));
        let (report, faults) = check_receipts(&path, &receipts);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(
            faults.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            [6, 8, 10, 12]
        );
        // Seq 6 is request 4's stop line now, seq 5 request 3's end record.
        assert_eq!(faults[0].1, chain::ReceiptFault::Replaced { now: None });
    }

    #[test]
    fn an_edited_record_and_records_past_the_end_are_found() {
        let (_dir, path, receipts) = answered_log();
        // Request 2's answer (seq 4) changed in place, and the chain recomputed from it.
        roots_rewrite(&path, 3, |lines| {
            lines[3] = lines[3].replace("answer 2", "answer 9")
        });
        let (report, faults) = check_receipts(&path, &receipts);
        assert!(
            report.problems.is_empty(),
            "plain verify passes: {:?}",
            report.problems
        );
        assert_eq!(faults.first(), Some(&(4, chain::ReceiptFault::Changed)));
        assert_eq!(faults.len(), 5, "the later lines' links changed too: {faults:?}");
        assert!(
            report.receipts[0]
                .to_string()
                .contains("but not the line its client was told"),
            "{}",
            report.receipts[0]
        );

        // The end cut off and the head file rewritten; and a receipt for a seq never written.
        let (_dir, path, mut receipts) = answered_log();
        roots_rewrite(&path, 12, |lines| lines.truncate(9));
        let never = sesame_proto::Receipt::signed(&signer(1), "web", receipts[0].id, 40, receipts[0].hash);
        receipts.push(sesame_proto::HeldReceipt {
            seq: 40,
            sig: never.sig,
            ..receipts[0].clone()
        });
        let (report, faults) = check_receipts(&path, &receipts);
        assert!(
            report.problems.is_empty(),
            "plain verify passes: {:?}",
            report.problems
        );
        assert_eq!(
            faults,
            [10, 12, 40].map(|seq| (seq, chain::ReceiptFault::PastEnd { last: 9 }))
        );
    }

    #[test]
    fn a_record_gone_from_the_middle_or_in_a_rotated_file_not_given_is_gone() {
        let (dir, path, receipts) = answered_log();
        // Removed without relinking: plain verify finds it too, and so does its receipt.
        rewrite(&path, |lines| drop(lines.remove(5)));
        let (report, faults) = check_receipts(&path, &receipts);
        assert!(!report.problems.is_empty());
        assert_eq!(faults, [(6, chain::ReceiptFault::Gone)]);
        assert!(
            report.receipts[0]
                .to_string()
                .ends_with("the record is gone: removed, or in a rotated file not given"),
            "{}",
            report.receipts[0]
        );

        // Rotated: the receipts of the old file's records need the old file.
        let (dir2, path2, mut receipts2) = answered_log();
        let old = dir2.path().join("audit.jsonl.1");
        std::fs::rename(&path2, &old).expect("rotate");
        let log = AuditLog::open(&path2).expect("open");
        receipts2.push(answered(&log, 7));
        drop(log);
        let (_, faults) = check_receipts(&path2, &receipts2);
        assert_eq!(faults.len(), 6, "{faults:?}");
        assert!(faults.iter().all(|(_, f)| *f == chain::ReceiptFault::Gone));
        let both = chain::verify(&[old, path2], None, &receipts2, &[signer(1).key()]).expect("verify");
        assert!(both.problems.is_empty() && both.receipts.is_empty(), "{both:?}");
        drop(dir);
    }

    #[test]
    fn a_receipt_signed_for_another_request_is_not_the_logs_fault() {
        let (_dir, path, mut receipts) = answered_log();
        // The host signed request 1's id over request 2's record (a host bug).
        let (seq, hash) = (receipts[1].seq, receipts[1].hash);
        let wrong = sesame_proto::Receipt::signed(&signer(1), "web", receipts[0].id, seq, hash);
        receipts[1].id = receipts[0].id;
        receipts[1].sig = wrong.sig;
        let (report, faults) = check_receipts(&path, &receipts);
        assert!(report.problems.is_empty());
        assert!(
            matches!(
                &faults[..],
                [(4, chain::ReceiptFault::Misfiled { record: Some(_) })]
            ),
            "{faults:?}"
        );
        assert!(faults[0].1.signed_by_host());
    }

    /// What a client can do to its own receipts file: edit a receipt, or make one up, signed
    /// by a key of its own. None of it is the host's word, and none is blamed on the log.
    #[test]
    fn a_forged_receipt_is_reported_as_not_signed_by_the_host() {
        let (_dir, path, receipts) = answered_log();
        let mut forged = Vec::new();
        // A bit of the hash flipped, the seq moved, the request changed: the signature fails.
        let mut flipped = receipts[0].clone();
        let mut hash = *flipped.hash.as_bytes();
        hash[0] ^= 1;
        flipped.hash = sesame_proto::RecordHash::from_bytes(hash);
        forged.push(flipped);
        forged.push(sesame_proto::HeldReceipt {
            seq: 5,
            ..receipts[1].clone()
        });
        forged.push(sesame_proto::HeldReceipt {
            sig: receipts[0].sig,
            ..receipts[1].clone()
        });
        // Made up and signed by another key: for a record that is not there, and even for one
        // that is (its seq and hash copied).
        let other = signer(2);
        let made_up = |seq: u64, hash: sesame_proto::RecordHash, id: sesame_proto::RequestId| {
            let receipt = sesame_proto::Receipt::signed(&other, "web", id, seq, hash);
            sesame_proto::HeldReceipt {
                id,
                seq,
                hash,
                key: receipt.key,
                sig: receipt.sig,
                ..receipts[0].clone()
            }
        };
        let nobody = |n: u8| sesame_proto::RequestId::from_bytes([0x70 + n; 16]);
        forged.push(made_up(
            5,
            sesame_proto::RecordHash::from_bytes([9; 32]),
            nobody(1),
        ));
        forged.push(made_up(
            40,
            sesame_proto::RecordHash::from_bytes([9; 32]),
            nobody(2),
        ));
        forged.push(made_up(receipts[2].seq, receipts[2].hash, receipts[2].id));
        let mut all = receipts.clone();
        all.extend(forged.iter().cloned());
        let (report, faults) = check_receipts(&path, &all);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let unknown = chain::ReceiptFault::UnknownKey { key: other.key() };
        assert_eq!(
            faults,
            [
                (receipts[0].seq, chain::ReceiptFault::BadSignature),
                (5, chain::ReceiptFault::BadSignature),
                (receipts[1].seq, chain::ReceiptFault::BadSignature),
                (5, unknown.clone()),
                (40, unknown.clone()),
                (receipts[2].seq, unknown),
            ],
            "the genuine ones pass, every forged one is not the host's"
        );
        assert!(faults.iter().all(|(_, f)| !f.signed_by_host()));
        let bad = report.receipts[0].to_string();
        assert!(
            bad.contains("not signed by this host: the receipts file was edited, or the receipt made up"),
            "{bad}"
        );
        let made = report.receipts[3].to_string();
        assert!(
            made.contains("not signed by this host: the receipt was made up")
                && made.contains(&other.key().to_string()),
            "{made}"
        );
        // Given as the host's key, the other key's receipts are judged on their records.
        let (_, faults) = check_receipts_with(std::slice::from_ref(&path), &forged[3..], &[other.key()]);
        assert_eq!(
            faults,
            [
                (5, chain::ReceiptFault::Replaced { now: None }),
                (40, chain::ReceiptFault::PastEnd { last: 12 }),
            ]
        );

        // Root's rewrite is still caught, and told apart from the forgeries.
        roots_rewrite(&path, 5, |lines| drop(lines.remove(5)));
        let (report, faults) = check_receipts(&path, &all);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let signed: Vec<u64> = faults
            .iter()
            .filter(|(_, f)| f.signed_by_host())
            .map(|(seq, _)| *seq)
            .collect();
        assert_eq!(signed, [6, 8, 10, 12]);
        assert_eq!(faults.len(), 4 + forged.len());
    }

    #[test]
    fn a_receipt_from_before_a_rotation_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).expect("open");
        let (old, new) = (signer(1), signer(2));
        let started = |key: &sesame_proto::ReceiptSigner| AuditEvent::Started {
            host: "web".into(),
            receipt_key: key.key().to_string(),
            policy_revision: "r".into(),
            clients: 1,
        };
        log.append(1, &started(&old)).expect("append");
        let mut receipts = vec![answered_by(&log, 1, &old), answered_by(&log, 2, &old)];
        // Rotated while running: the reload record names the new key.
        log.append(
            3,
            &AuditEvent::HostKeysReloaded {
                key: "k".into(),
                receipt_key: new.key().to_string(),
                previous: None,
                previous_until_ms: None,
                error: None,
            },
        )
        .expect("append");
        receipts.push(answered_by(&log, 3, &new));
        // A request record whose text looks like a naming record names nothing: only the
        // daemon writes records' fields.
        let third = signer(3);
        let fake = RequestRecord {
            phase: "end",
            id: "ab".into(),
            message: format!("{{\"event\":\"started\",\"receipt_key\":\"{}\"}}", third.key()),
            reason: Some(format!("\"receipt_key\":\"{}\"", third.key())),
            ..Default::default()
        };
        log.append(4, &AuditEvent::Request(Box::new(fake)))
            .expect("append");
        log.append(5, &started(&new)).expect("append");
        receipts.push(answered_by(&log, 4, &new));
        receipts.push(answered_by(&log, 5, &third));
        drop(log);
        let paths = [path.clone()];

        // Given the current key only (the configured one): the old key's receipts are the
        // host's because the log names it; the third key, never named, is not.
        let (report, faults) = check_receipts_with(&paths, &receipts, &[new.key()]);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.receipt_keys, [old.key(), new.key()]);
        assert_eq!(
            faults,
            [(
                receipts[4].seq,
                chain::ReceiptFault::UnknownKey { key: third.key() }
            )]
        );
        // Given no key at all (a copied log, no configuration): the same.
        let (_, none) = check_receipts_with(&paths, &receipts, &[]);
        assert_eq!(none, faults);
        // Without the records that name it, the old key's receipts are not the host's.
        let (dir2, path2, receipts2) = answered_log();
        let (_, faults) = check_receipts_with(&[path2], &receipts2, &[new.key()]);
        assert_eq!(faults.len(), receipts2.len());
        assert!(
            faults
                .iter()
                .all(|(_, f)| *f == chain::ReceiptFault::UnknownKey { key: old.key() }),
            "{faults:?}"
        );
        drop((dir, dir2));
    }
}
