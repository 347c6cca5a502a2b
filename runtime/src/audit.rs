//! The audit log: one JSON object per line, appended with a single `write(2)` on an `O_APPEND`
//! file so that concurrent writers (the daemon, `sesamed client add`) never interleave.
//!
//! Every request is recorded, accepted or not. Requests the policy allows are recorded *before*
//! they run (`phase: "start"`); if that write fails the command does not run. Unauthenticated
//! input is counted and recorded too, at most [`REJECT_BURST`] records per
//! [`REJECT_PERIOD_MS`]; the rest are summed into one `rejected-suppressed` record so a flood
//! of garbage cannot fill the disk.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

/// Unauthenticated rejections recorded in full per period.
pub const REJECT_BURST: u32 = 100;
/// The period for [`REJECT_BURST`].
pub const REJECT_PERIOD_MS: u64 = 10_000;

/// What happened, as one audit line.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AuditEvent {
    /// The daemon started serving.
    Started {
        /// The host's name.
        host: String,
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
    /// A firewall opening was made, extended, released, revoked or expired, or reconciliation or
    /// the reaper acted on one.
    Firewall(Box<crate::firewall::FirewallRecord>),
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
    /// Cluster (as resolved when known).
    pub cluster: Option<String>,
    /// Command.
    pub command: Option<String>,
    /// Arguments.
    pub args: Vec<String>,
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
    file: File,
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
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        Ok(Self {
            path: path.to_owned(),
            inner: Mutex::new(Inner {
                file,
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

    /// Appends one event stamped with `now_ms`.
    pub fn append(&self, now_ms: u64, event: &AuditEvent) -> Result<(), AuditError> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.write_line(&mut inner.file, now_ms, event)
    }

    /// Appends an unauthenticated rejection, subject to the flood limit.
    pub fn append_rejected(&self, now_ms: u64, event: &AuditEvent) -> Result<(), AuditError> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now_ms.saturating_sub(inner.period_start_ms) >= REJECT_PERIOD_MS {
            let suppressed = std::mem::take(&mut inner.suppressed);
            inner.period_start_ms = now_ms;
            inner.rejects_in_period = 0;
            if suppressed > 0 {
                self.write_line(
                    &mut inner.file,
                    now_ms,
                    &AuditEvent::RejectedSuppressed { count: suppressed },
                )?;
            }
        }
        if inner.rejects_in_period >= REJECT_BURST {
            inner.suppressed += 1;
            return Ok(());
        }
        inner.rejects_in_period += 1;
        self.write_line(&mut inner.file, now_ms, event)
    }

    /// Forces written records to stable storage.
    pub fn sync(&self) -> Result<(), AuditError> {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.file.sync_data().map_err(|source| AuditError {
            path: self.path.clone(),
            source,
        })
    }

    /// Appends any serialisable record (an object) stamped with `now_ms`: the decision log
    /// uses the same append-only writer with its own record type.
    pub fn append_record<T: Serialize>(&self, now_ms: u64, record: &T) -> Result<(), AuditError> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.write_line(&mut inner.file, now_ms, record)
    }

    fn write_line<T: Serialize>(&self, file: &mut File, now_ms: u64, event: &T) -> Result<(), AuditError> {
        #[derive(Serialize)]
        struct Line<'a, T> {
            ts_ms: u64,
            #[serde(flatten)]
            event: &'a T,
        }
        let mut line = serde_json::to_vec(&Line { ts_ms: now_ms, event }).map_err(|e| AuditError {
            path: self.path.clone(),
            source: e.into(),
        })?;
        line.push(b'\n');
        file.write_all(&line).map_err(|source| AuditError {
            path: self.path.clone(),
            source,
        })
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
}
