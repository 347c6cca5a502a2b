//! What a firewall back end does for the grants service: add, re-time and remove one tagged rule,
//! and list the rules it finds tagged. The service serialises every call (one at a time, under
//! the ledger lock), so back ends need no locking of their own.

use std::fmt::Debug;
use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::rule::{GrantId, Rule};
use crate::system::ToolError;

/// A rule found in the firewall carrying one of our tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRule {
    /// The grant id from the rule's comment.
    pub id: GrantId,
    /// What the rule lets in, when the back end could read it back.
    pub rule: Option<Rule>,
}

/// Why a back end could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// Running the tool failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// The back end cannot work on this host as configured (tool missing, table missing, ...).
    #[error("{0}")]
    Unusable(String),
    /// A rule sesamed does not own is in the way (it would be changed or removed with ours).
    #[error("{0}")]
    Conflict(String),
    /// The firewall said something the back end could not understand.
    #[error("{0}")]
    Unreadable(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A firewall sesamed can open and close ports in.
pub trait Backend: Send + Sync + Debug {
    /// `ufw`, `nftables` or `dry-run`.
    fn name(&self) -> &'static str;

    /// Checks the back end can work here; returns warnings worth an operator's attention (for
    /// example a firewall that is installed but not enabled).
    fn check(&self) -> Result<Vec<String>, BackendError>;

    /// Adds `rule` tagged with `id`. `expires_ms` (Unix ms) is when the grant ends; back ends that
    /// can make the kernel enforce it do so, the others rely on the reaper.
    fn open(&self, id: &GrantId, rule: &Rule, expires_ms: u64) -> Result<(), BackendError>;

    /// Moves the end of an open rule to `expires_ms`, adding the rule again if it went missing.
    fn extend(&self, id: &GrantId, rule: &Rule, expires_ms: u64) -> Result<(), BackendError>;

    /// Removes the rule tagged `id` (which lets in `rule`). A rule already gone is not an error.
    fn close(&self, id: &GrantId, rule: &Rule) -> Result<(), BackendError>;

    /// Every rule in the firewall that carries one of our tags.
    fn owned(&self) -> Result<Vec<OwnedRule>, BackendError>;
}

/// One line of the dry-run back end's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRunAction {
    /// `open`, `extend` or `close`.
    pub action: String,
    /// The grant.
    pub id: GrantId,
    /// The rule.
    pub rule: Rule,
    /// The grant's end (open and extend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
}

/// Records what it would do in a JSON-lines file and changes nothing. The record is also its
/// state: the rules it "has" are the ones opened and not yet closed.
#[derive(Debug)]
pub struct DryRun {
    path: PathBuf,
    recorder: Option<crate::system::Recorder>,
}

impl DryRun {
    /// A dry-run back end recording to `path` (created 0600 when first written).
    pub fn new(path: PathBuf) -> Self {
        Self { path, recorder: None }
    }

    /// The same back end also handing each record, as `firewall {JSON}`, to `recorder`
    /// (`sesamed module run` prints them with the other capabilities' records).
    #[must_use]
    pub fn recording(mut self, recorder: crate::system::Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    fn io(&self, source: std::io::Error) -> BackendError {
        BackendError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn record(
        &self,
        action: &str,
        id: &GrantId,
        rule: &Rule,
        expires_ms: Option<u64>,
    ) -> Result<(), BackendError> {
        let line = DryRunAction {
            action: action.to_owned(),
            id: id.clone(),
            rule: *rule,
            expires_ms,
        };
        let mut text = serde_json::to_string(&line).map_err(|e| BackendError::Unreadable(e.to_string()))?;
        if let Some(recorder) = &self.recorder {
            recorder.record(format!("firewall {text}"));
        }
        text.push('\n');
        let mut file = crate::files::open_append_private(&self.path).map_err(|e| self.io(e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| self.io(e))?;
        tracing::info!(backend = "dry-run", %id, %rule, "would {action}");
        Ok(())
    }

    /// Every action recorded so far, oldest first.
    pub fn actions(&self) -> Result<Vec<DryRunAction>, BackendError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .map_err(|e| BackendError::Unreadable(format!("{}: {e}", self.path.display())))
            })
            .collect()
    }
}

impl Backend for DryRun {
    fn name(&self) -> &'static str {
        "dry-run"
    }

    fn check(&self) -> Result<Vec<String>, BackendError> {
        self.actions()?;
        Ok(vec![format!(
            "firewall back end is dry-run: openings are recorded in {} and nothing is opened",
            self.path.display()
        )])
    }

    fn open(&self, id: &GrantId, rule: &Rule, expires_ms: u64) -> Result<(), BackendError> {
        self.record("open", id, rule, Some(expires_ms))
    }

    fn extend(&self, id: &GrantId, rule: &Rule, expires_ms: u64) -> Result<(), BackendError> {
        self.record("extend", id, rule, Some(expires_ms))
    }

    fn close(&self, id: &GrantId, rule: &Rule) -> Result<(), BackendError> {
        self.record("close", id, rule, None)
    }

    fn owned(&self) -> Result<Vec<OwnedRule>, BackendError> {
        let mut open: Vec<OwnedRule> = Vec::new();
        for a in self.actions()? {
            open.retain(|o| o.id != a.id);
            if a.action != "close" {
                open.push(OwnedRule {
                    id: a.id,
                    rule: Some(a.rule),
                });
            }
        }
        Ok(open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::firewall::rule::Proto;

    #[test]
    fn dry_run_records_and_replays_its_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = DryRun::new(dir.path().join("dry.jsonl"));
        assert!(b.owned().expect("empty").is_empty());
        let (a, c) = (GrantId::random(), GrantId::random());
        let rule = Rule::new("203.0.113.5".parse().expect("ip"), 22, Proto::Tcp).expect("rule");
        b.open(&a, &rule, 10).expect("open");
        b.open(&c, &rule, 10).expect("open");
        b.extend(&a, &rule, 20).expect("extend");
        b.close(&c, &rule).expect("close");
        let owned = b.owned().expect("owned");
        assert_eq!(
            owned,
            vec![OwnedRule {
                id: a,
                rule: Some(rule)
            }]
        );
        assert_eq!(b.actions().expect("actions").len(), 4);
    }
}
