//! Requests parked until other people approve them (the two-person rule of `decision.approvals`).
//!
//! Each parked request is one file, `<state_dir>/pending/<id>.json` (0600), replaced atomically at
//! every step and written *before* the client or an approver is told, so a crash or a restart
//! loses none: the request itself (arguments included, to run it later), the grant decided when
//! it was made, who approved, and how it ended. A request found `running` at start was cut off
//! by a stop: it is marked interrupted, never run twice.
//!
//! This module keeps the records and their rules (who may approve, once each, never their own,
//! in time); the runner (`runner/approvals.rs`) judges the requests and runs what is approved.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sesame_proto::{ErrorCode, PendingNote, PublicKey, Request, RequestId};

use crate::policy::Grant;

/// The daemon's own cluster: `approvals::pending`, `approve`, `reject` and `result` (`sesame
/// pending|approve|reject|result HOST`). No configured cluster may take its name.
pub const CLUSTER: &str = "approvals";
/// Its commands.
pub const COMMANDS: [&str; 4] = ["pending", "approve", "reject", "result"];
/// What the policy sees as `input.module.digest` for them: no module runs.
pub const BUILTIN_DIGEST: &str = "builtin:approvals";

/// The directory under the state directory.
pub const PENDING_DIR: &str = "pending";
/// Requests one client may have waiting at once.
pub const MAX_WAITING_PER_CLIENT: usize = 16;
/// Parked requests the host keeps at once, finished ones included.
pub const MAX_PARKED: usize = 1000;
/// How long a finished request (ran, rejected, expired) stays for `sesame result`.
pub const KEEP_FINISHED_MS: u64 = 24 * 3600 * 1000;
/// The shortest id prefix `approve`, `reject` and `result` take.
pub const MIN_ID_PREFIX: usize = 8;

/// One parked request, as its file holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parked {
    /// The request as the client sealed it.
    pub request: Request,
    /// The requester's enrolled name.
    pub client: String,
    /// The key it sealed the request with.
    pub key: PublicKey,
    /// Its groups when it asked.
    pub groups: Vec<String>,
    /// The cluster the command resolved to.
    pub cluster: String,
    /// The digest of the module that was judged; another one is not run.
    pub module_digest: String,
    /// The policy revision that decided the grant.
    pub policy_revision: String,
    /// The arguments as the logs and listings show them (masked where the policy says).
    pub masked_args: Vec<String>,
    /// The grant decided when the request was made, approval rule included.
    pub grant: Grant,
    /// `quic` or `sqs`.
    pub transport: String,
    /// The source address the transport observed.
    pub source_ip: Option<IpAddr>,
    /// When it was parked, Unix milliseconds.
    pub created_ms: u64,
    /// When it expires unapproved.
    pub expires_ms: u64,
    /// Who approved, in order.
    pub approvals: Vec<Approval>,
    /// Where it stands.
    pub state: State,
}

/// One approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The approver's enrolled name.
    pub client: String,
    /// When, Unix milliseconds.
    pub at_ms: u64,
}

/// Where a parked request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case", deny_unknown_fields)]
pub enum State {
    /// Waiting for approvals.
    Waiting,
    /// Approved and running since then.
    Running {
        /// Since when.
        since_ms: u64,
    },
    /// It ran: the answer its requester gets.
    Done {
        /// When it finished.
        at_ms: u64,
        /// The result code.
        code: ErrorCode,
        /// The message (errors).
        message: String,
        /// The command's output.
        output: String,
    },
    /// Rejected by an approver, or withdrawn by its requester.
    Rejected {
        /// Who.
        by: String,
        /// When.
        at_ms: u64,
        /// Why, if they said.
        reason: Option<String>,
    },
    /// Nobody approved it in time.
    Expired {
        /// When it was found expired.
        at_ms: u64,
    },
    /// The daemon stopped while it ran: it was not run again.
    Interrupted {
        /// When that was found (at start).
        at_ms: u64,
    },
}

impl State {
    /// When a finished request finished; `None` while it waits or runs.
    fn finished_ms(&self) -> Option<u64> {
        match self {
            State::Waiting | State::Running { .. } => None,
            State::Done { at_ms, .. }
            | State::Rejected { at_ms, .. }
            | State::Expired { at_ms }
            | State::Interrupted { at_ms } => Some(*at_ms),
        }
    }
}

impl Parked {
    /// Approvals it needs.
    pub fn required(&self) -> u32 {
        self.grant.approvals.as_ref().map_or(0, |r| r.count)
    }

    /// The note the requester and approvers get.
    pub fn note(&self) -> PendingNote {
        PendingNote {
            id: self.request.id,
            approvals: u32::try_from(self.approvals.len()).unwrap_or(u32::MAX),
            required: self.required(),
            expires_at_ms: self.expires_ms,
        }
    }

    /// `cluster::command arg…` with the arguments as the logs show them.
    pub fn call(&self) -> String {
        std::iter::once(format!("{}::{}", self.cluster, self.request.command))
            .chain(self.masked_args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether `approver` (a client other than the requester, in `groups`) may approve or
    /// reject it under its rule.
    pub fn admits(&self, approver: &str, groups: &[String]) -> bool {
        approver != self.client && self.grant.approvals.as_ref().is_some_and(|r| r.admits(groups))
    }
}

/// Why a request could not be parked, looked up or acted on; each is one answer to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// No parked request has that id (or prefix) for this caller.
    #[error("no parked request {0} here that you may see (finished ones are kept 24 h)")]
    NotFound(String),
    /// A prefix that matches more than one.
    #[error("id prefix {0} matches more than one parked request: give more of it")]
    Ambiguous(String),
    /// A prefix too short to mean anything.
    #[error("give at least {MIN_ID_PREFIX} hex characters of the id (got {0:?})")]
    ShortId(String),
    /// The requester approving their own request.
    #[error("you asked for {0}: someone else must approve it")]
    OwnRequest(String),
    /// An approver outside the rule's groups.
    #[error("{0} must be approved by a member of {1}")]
    NotAnApprover(String, String),
    /// No longer waiting.
    #[error("{0} is no longer waiting: {1}")]
    NotWaiting(String, String),
    /// The same approver again.
    #[error("you approved {0} already; it needs another approver ({1} of {2})")]
    AlreadyApproved(String, u32, u32),
    /// Too many waiting: this client's share, or the host's.
    #[error("{0}")]
    Full(String),
    /// The record could not be written: nothing changed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl ApprovalError {
    /// The code a client gets for it.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound(_) | Self::Ambiguous(_) | Self::ShortId(_) => ErrorCode::InvalidArgument,
            Self::OwnRequest(_) | Self::NotAnApprover(..) => ErrorCode::Denied,
            Self::NotWaiting(..) | Self::AlreadyApproved(..) => ErrorCode::InvalidArgument,
            Self::Full(_) => ErrorCode::Busy,
            Self::Io { .. } => ErrorCode::Internal,
        }
    }
}

/// What an approval did.
#[derive(Debug, Clone)]
pub enum Approved {
    /// Counted; more are needed.
    Waiting(Box<Parked>),
    /// That was the last one: the request is now `running` on record, and the caller runs it.
    Run(Box<Parked>),
}

/// What [`Store::open`] found.
#[derive(Debug, Default)]
pub struct Opened {
    /// Requests that were running when the daemon stopped, now marked interrupted.
    pub interrupted: Vec<Parked>,
    /// Files that could not be read, renamed `*.bad`, with why.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// The parked requests, in memory and on disk.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    parked: Mutex<BTreeMap<RequestId, Parked>>,
}

impl Store {
    /// Opens (creating, 0700) `dir` and loads every parked request in it. One found running is
    /// marked interrupted; an unreadable file is renamed `<name>.bad` and reported.
    pub fn open(dir: &Path, now_ms: u64) -> std::io::Result<(Self, Opened)> {
        crate::files::create_private_dir(dir)?;
        let mut opened = Opened::default();
        let mut parked = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let read = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| serde_json::from_slice::<Parked>(&bytes).map_err(|e| e.to_string()))
                .and_then(|p| {
                    let named = path.file_stem().and_then(|s| s.to_str()) == Some(&p.request.id.to_string());
                    if named {
                        Ok(p)
                    } else {
                        Err("the file name is not the request's id".to_owned())
                    }
                });
            match read {
                Ok(mut p) => {
                    if matches!(p.state, State::Running { .. }) {
                        p.state = State::Interrupted { at_ms: now_ms };
                        write(dir, &p)?;
                        opened.interrupted.push(p.clone());
                    }
                    parked.insert(p.request.id, p);
                }
                Err(why) => {
                    let mut bad = path.clone().into_os_string();
                    bad.push(".bad");
                    std::fs::rename(&path, &bad)?;
                    opened.unreadable.push((path, why));
                }
            }
        }
        Ok((
            Self {
                dir: dir.to_owned(),
                parked: Mutex::new(parked),
            },
            opened,
        ))
    }

    /// Parks `request` (waiting, no approvals), on disk before this returns.
    pub fn park(&self, parked: Parked) -> Result<PendingNote, ApprovalError> {
        let mut all = self.lock();
        let waiting = all
            .values()
            .filter(|p| p.client == parked.client && p.state == State::Waiting)
            .count();
        if waiting >= MAX_WAITING_PER_CLIENT {
            return Err(ApprovalError::Full(format!(
                "busy: client {} already has {MAX_WAITING_PER_CLIENT} requests waiting for approval",
                parked.client
            )));
        }
        if all.len() >= MAX_PARKED {
            return Err(ApprovalError::Full(format!(
                "busy: {MAX_PARKED} parked requests on this host; try again later"
            )));
        }
        self.write(&parked)?;
        let note = parked.note();
        all.insert(parked.request.id, parked);
        Ok(note)
    }

    /// The id `text` names (whole, or a prefix of at least [`MIN_ID_PREFIX`] hex characters)
    /// among the requests `visible` lets the caller see.
    pub fn find(&self, text: &str, visible: impl Fn(&Parked) -> bool) -> Result<RequestId, ApprovalError> {
        let text = text.trim().to_ascii_lowercase();
        if text.len() < MIN_ID_PREFIX || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApprovalError::ShortId(text));
        }
        let all = self.lock();
        let mut found = all
            .iter()
            .filter(|(id, p)| id.to_string().starts_with(&text) && visible(p))
            .map(|(id, _)| *id);
        match (found.next(), found.next()) {
            (Some(id), None) => Ok(id),
            (None, _) => Err(ApprovalError::NotFound(text)),
            (Some(_), Some(_)) => Err(ApprovalError::Ambiguous(text)),
        }
    }

    /// A copy of the record of `id`.
    pub fn get(&self, id: &RequestId) -> Option<Parked> {
        self.lock().get(id).cloned()
    }

    /// The waiting requests `approver` (in `groups`) may approve, oldest first.
    pub fn approvable(&self, approver: &str, groups: &[String]) -> Vec<Parked> {
        let mut list: Vec<Parked> = self
            .lock()
            .values()
            .filter(|p| p.state == State::Waiting && p.admits(approver, groups))
            .cloned()
            .collect();
        list.sort_by_key(|p| p.created_ms);
        list
    }

    /// Counts `approver`'s approval of `id`, on disk before this returns. With enough of them
    /// the request is `running` on record and comes back to be run.
    pub fn approve(
        &self,
        id: &RequestId,
        approver: &str,
        groups: &[String],
        now_ms: u64,
    ) -> Result<Approved, ApprovalError> {
        let mut all = self.lock();
        let p = all
            .get(id)
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        self.check_actor(p, approver, groups, now_ms)?;
        if p.approvals.iter().any(|a| a.client == approver) {
            return Err(ApprovalError::AlreadyApproved(
                id.to_string(),
                u32::try_from(p.approvals.len()).unwrap_or(u32::MAX),
                p.required(),
            ));
        }
        let mut next = p.clone();
        next.approvals.push(Approval {
            client: approver.to_owned(),
            at_ms: now_ms,
        });
        let enough = next.approvals.len() >= usize::try_from(next.required()).unwrap_or(usize::MAX);
        if enough {
            next.state = State::Running { since_ms: now_ms };
        }
        self.write(&next)?;
        all.insert(*id, next.clone());
        Ok(if enough {
            Approved::Run(Box::new(next))
        } else {
            Approved::Waiting(Box::new(next))
        })
    }

    /// Rejects `id`: by an approver the rule admits, or withdrawn by its requester.
    pub fn reject(
        &self,
        id: &RequestId,
        by: &str,
        groups: &[String],
        reason: Option<String>,
        now_ms: u64,
    ) -> Result<Parked, ApprovalError> {
        let mut all = self.lock();
        let p = all
            .get(id)
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        if by != p.client {
            self.check_actor(p, by, groups, now_ms)?;
        } else {
            waiting(p, now_ms)?;
        }
        let mut next = p.clone();
        next.state = State::Rejected {
            by: by.to_owned(),
            at_ms: now_ms,
            reason,
        };
        self.write(&next)?;
        all.insert(*id, next.clone());
        Ok(next)
    }

    /// Records how an approved request's run ended.
    pub fn finish(&self, id: &RequestId, state: State) -> Result<Parked, ApprovalError> {
        let mut all = self.lock();
        let p = all
            .get(id)
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        let mut next = p.clone();
        next.state = state;
        self.write(&next)?;
        all.insert(*id, next.clone());
        Ok(next)
    }

    /// Marks waiting requests past their time expired (returned, to be audited) and forgets
    /// finished ones older than [`KEEP_FINISHED_MS`]. A file that cannot be written is tried
    /// again at the next call.
    pub fn reap(&self, now_ms: u64) -> (Vec<Parked>, Vec<ApprovalError>) {
        let mut all = self.lock();
        let mut expired = Vec::new();
        let mut errors = Vec::new();
        let mut forget = Vec::new();
        for (id, p) in all.iter_mut() {
            if p.state == State::Waiting && now_ms >= p.expires_ms {
                let mut next = p.clone();
                next.state = State::Expired { at_ms: now_ms };
                match self.write(&next) {
                    Ok(()) => {
                        *p = next.clone();
                        expired.push(next);
                    }
                    Err(e) => errors.push(e),
                }
            } else if p
                .state
                .finished_ms()
                .is_some_and(|at| now_ms.saturating_sub(at) >= KEEP_FINISHED_MS)
            {
                match std::fs::remove_file(self.path(id)) {
                    Ok(()) => forget.push(*id),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => forget.push(*id),
                    Err(source) => errors.push(ApprovalError::Io {
                        path: self.path(id),
                        source,
                    }),
                }
            }
        }
        for id in forget {
            all.remove(&id);
        }
        (expired, errors)
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.lock().values().filter(|p| p.state == State::Waiting).count()
    }

    /// Whether `actor` may approve or reject `p` now.
    fn check_actor(
        &self,
        p: &Parked,
        actor: &str,
        groups: &[String],
        now_ms: u64,
    ) -> Result<(), ApprovalError> {
        let id = p.request.id.to_string();
        if actor == p.client {
            return Err(ApprovalError::OwnRequest(id));
        }
        if !p.admits(actor, groups) {
            let rule = p
                .grant
                .approvals
                .as_ref()
                .map(|r| r.groups.join(", "))
                .unwrap_or_default();
            return Err(ApprovalError::NotAnApprover(id, format!("group {rule}")));
        }
        waiting(p, now_ms)
    }

    fn path(&self, id: &RequestId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn write(&self, p: &Parked) -> Result<(), ApprovalError> {
        write(&self.dir, p).map_err(|source| ApprovalError::Io {
            path: self.path(&p.request.id),
            source,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<RequestId, Parked>> {
        // Every change is one insert after its file is written, so a panic leaves the map sound.
        self.parked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether `p` still waits at `now_ms` (past its time it is as good as expired, whether or not
/// the reaper has been by).
fn waiting(p: &Parked, now_ms: u64) -> Result<(), ApprovalError> {
    let id = p.request.id.to_string();
    let why = match &p.state {
        State::Waiting if now_ms >= p.expires_ms => "it expired unapproved".to_owned(),
        State::Waiting => return Ok(()),
        State::Running { .. } => "it was approved and is running".to_owned(),
        State::Done { .. } => "it was approved and ran".to_owned(),
        State::Rejected { by, .. } => format!("{by} rejected it"),
        State::Expired { .. } => "it expired unapproved".to_owned(),
        State::Interrupted { .. } => "it was approved, and the daemon stopped while it ran".to_owned(),
    };
    Err(ApprovalError::NotWaiting(id, why))
}

fn write(dir: &Path, p: &Parked) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(p).map_err(std::io::Error::other)?;
    crate::files::write_atomic(&dir.join(format!("{}.json", p.request.id)), &bytes, 0o600)
}

#[cfg(test)]
mod tests;
