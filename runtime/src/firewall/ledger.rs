//! The grants ledger: every firewall opening sesamed made and has not yet closed, with who holds
//! it and until when. It is the source of truth the reaper and the start-up reconciliation act on.
//!
//! The ledger is one JSON file replaced atomically (temporary file, fsync, rename, fsync of the
//! directory), so a crash leaves the old or the new version and never half of one. Every change
//! happens under an exclusive lock on a separate lock file, which the daemon and `sesamed grants`
//! both take, so a change made by an operator is never overwritten by the daemon or the reverse.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::rule::{GrantId, Rule};

/// The ledger's format version.
pub const LEDGER_VERSION: u32 = 1;

/// One opening: a firewall rule and the clients holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The id the rule is tagged with.
    pub id: GrantId,
    /// What the rule lets in.
    pub rule: Rule,
    /// When it was first opened (Unix ms).
    pub created_ms: u64,
    /// Who holds it and until when. A grant with no live holder is closed.
    pub holders: Vec<Holder>,
}

/// A client's hold on an opening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    /// The client's enrolled name.
    pub client: String,
    /// When this hold ends (Unix ms).
    pub expires_ms: u64,
    /// The request that asked for it (or last extended it).
    pub request_id: String,
}

impl Grant {
    /// When the rule must be closed: the latest end among its holders (0 when none).
    pub fn expires_ms(&self) -> u64 {
        self.holders.iter().map(|h| h.expires_ms).max().unwrap_or(0)
    }

    /// Whether anyone still holds the opening at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_ms() > now_ms
    }

    /// `client`'s hold, if any.
    pub fn holder(&self, client: &str) -> Option<&Holder> {
        self.holders.iter().find(|h| h.client == client)
    }
}

/// The ledger's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ledger {
    /// [`LEDGER_VERSION`].
    pub version: u32,
    /// Open grants, in the order they were made.
    pub grants: Vec<Grant>,
}

impl Ledger {
    /// The grant tagged `id`.
    pub fn get(&self, id: &GrantId) -> Option<&Grant> {
        self.grants.iter().find(|g| &g.id == id)
    }

    /// The grant tagged `id`, to change.
    pub fn get_mut(&mut self, id: &GrantId) -> Option<&mut Grant> {
        self.grants.iter_mut().find(|g| &g.id == id)
    }

    /// The grant for exactly `rule`.
    pub fn by_rule_mut(&mut self, rule: &Rule) -> Option<&mut Grant> {
        self.grants.iter_mut().find(|g| &g.rule == rule)
    }

    /// Drops the grant tagged `id`.
    pub fn remove(&mut self, id: &GrantId) {
        self.grants.retain(|g| &g.id != id);
    }
}

/// Why the ledger could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// Reading, writing or locking failed.
    #[error("grants ledger {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file exists but is not a ledger this daemon understands.
    #[error("grants ledger {path} is unreadable: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The ledger file and its lock.
#[derive(Debug, Clone)]
pub struct LedgerFile {
    path: PathBuf,
    lock_path: PathBuf,
}

/// The ledger, read under its exclusive lock; dropping this releases the lock.
#[derive(Debug)]
pub struct Locked {
    /// The ledger as read.
    pub ledger: Ledger,
    file: LedgerFile,
    _lock: File,
}

impl LedgerFile {
    /// The ledger `grants.json` and its lock `grants.lock` in `state_dir`.
    pub fn in_dir(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join("grants.json"),
            lock_path: state_dir.join("grants.lock"),
        }
    }

    /// The ledger's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, path: &Path, source: std::io::Error) -> LedgerError {
        LedgerError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// Takes the lock (waiting for any other holder) and reads the ledger. A missing file is an
    /// empty ledger.
    pub fn lock(&self) -> Result<Locked, LedgerError> {
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.lock_path)
            .map_err(|e| self.io(&self.lock_path, e))?;
        // Bounded by the request's deadline when a module's host call waits here.
        crate::deadline::lock_file(&lock).map_err(|e| self.io(&self.lock_path, e))?;
        let ledger = self.read()?;
        Ok(Locked {
            ledger,
            file: self.clone(),
            _lock: lock,
        })
    }

    fn read(&self) -> Result<Ledger, LedgerError> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Ledger {
                    version: LEDGER_VERSION,
                    grants: Vec::new(),
                });
            }
            Err(e) => return Err(self.io(&self.path, e)),
        };
        let corrupt = |message: String| LedgerError::Corrupt {
            path: self.path.clone(),
            message,
        };
        let ledger: Ledger = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        if ledger.version != LEDGER_VERSION {
            return Err(corrupt(format!(
                "version {} (this sesamed reads version {LEDGER_VERSION})",
                ledger.version
            )));
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut rules = std::collections::BTreeSet::new();
        for g in &ledger.grants {
            if !ids.insert(&g.id) || !rules.insert(g.rule) {
                return Err(corrupt(format!("grant {} appears twice", g.id)));
            }
        }
        Ok(ledger)
    }

    /// Moves an unreadable ledger aside (to `grants.json.corrupt-<now_ms>`) and returns where.
    pub fn quarantine(&self, now_ms: u64) -> Result<PathBuf, LedgerError> {
        let aside = self.path.with_file_name(format!("grants.json.corrupt-{now_ms}"));
        std::fs::rename(&self.path, &aside).map_err(|e| self.io(&self.path, e))?;
        Ok(aside)
    }
}

impl Locked {
    /// Writes the ledger durably (atomic replace with fsync) before returning.
    pub fn save(&self) -> Result<(), LedgerError> {
        let mut text = serde_json::to_vec_pretty(&self.ledger).map_err(|e| LedgerError::Corrupt {
            path: self.file.path.clone(),
            message: e.to_string(),
        })?;
        text.push(b'\n');
        crate::files::write_atomic(&self.file.path, &text, 0o600)
            .map_err(|e| self.file.io(&self.file.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::rule::Proto;

    fn grant(id: &str, port: u16) -> Grant {
        Grant {
            id: id.parse().expect("id"),
            rule: Rule::new("203.0.113.5".parse().expect("ip"), port, Proto::Tcp).expect("rule"),
            created_ms: 1,
            holders: vec![Holder {
                client: "alice".into(),
                expires_ms: 100,
                request_id: "r".into(),
            }],
        }
    }

    #[test]
    fn saves_and_reads_back_under_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = LedgerFile::in_dir(dir.path());
        let mut locked = file.lock().expect("lock");
        assert!(locked.ledger.grants.is_empty());
        locked.ledger.grants.push(grant("fw-0000000000000001", 22));
        locked.save().expect("save");
        drop(locked);
        let again = file.lock().expect("lock");
        assert_eq!(again.ledger.grants, vec![grant("fw-0000000000000001", 22)]);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(file.path()).expect("meta").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn the_lock_excludes_other_holders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = LedgerFile::in_dir(dir.path());
        let held = file.lock().expect("lock");
        let other = file.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let _l = other.lock().expect("lock");
            tx.send(()).expect("send");
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200)).is_err(),
            "got the lock while held"
        );
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("lock after release");
        t.join().expect("thread");
    }

    #[test]
    fn corrupt_ledgers_are_refused_and_can_be_moved_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = LedgerFile::in_dir(dir.path());
        for bad in [
            "not json",
            r#"{"version":2,"grants":[]}"#,
            r#"{"version":1,"grants":[],"extra":1}"#,
            r#"{"version":1,"grants":[{"id":"fw-x","rule":{"source":"1.2.3.4","port":22,"proto":"tcp"},"created_ms":1,"holders":[]}]}"#,
        ] {
            std::fs::write(file.path(), bad).expect("write");
            let err = file.lock().expect_err(bad);
            assert!(matches!(err, LedgerError::Corrupt { .. }), "{bad}: {err}");
        }
        let twice = Ledger {
            version: 1,
            grants: vec![grant("fw-0000000000000001", 22), grant("fw-0000000000000002", 22)],
        };
        std::fs::write(file.path(), serde_json::to_vec(&twice).expect("json")).expect("write");
        assert!(
            file.lock()
                .expect_err("same rule twice")
                .to_string()
                .contains("appears twice")
        );
        let aside = file.quarantine(7).expect("quarantine");
        assert!(aside.ends_with("grants.json.corrupt-7") && aside.exists());
        assert!(file.lock().expect("fresh").ledger.grants.is_empty());
    }

    #[test]
    fn expiry_is_the_latest_hold() {
        let mut g = grant("fw-0000000000000001", 22);
        g.holders.push(Holder {
            client: "bob".into(),
            expires_ms: 300,
            request_id: "s".into(),
        });
        assert_eq!(g.expires_ms(), 300);
        assert!(g.is_live(299) && !g.is_live(300));
        assert_eq!(g.holder("bob").map(|h| h.expires_ms), Some(300));
        g.holders.clear();
        assert!(!g.is_live(0));
    }
}
