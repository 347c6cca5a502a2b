//! The one path every request takes, whatever carried it: open, authenticate, check freshness and
//! replay, resolve the command, ask the policy, run the module, seal the answer, audit it all.
//!
//! [`Runner::handle`] takes bytes and returns bytes (or nothing, for input that never
//! authenticated), so QUIC and SQS behave identically.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use sesame_proto::{
    Envelope, ErrorCode, ProtoError, PublicKey, Receipt, RecordHash, ReplayWindow, Request, RequestId,
    Response,
};

use crate::answers::{Answers, Seen};
use crate::audit::{AuditEvent, AuditLog, RequestRecord};
use crate::capability::firewall::Firewall;
use crate::capability::{Services, Start};
use crate::clients::{Client, ClientRegistry};
use crate::config::Config;
use crate::identity::{HostKeys, KeyUsed};
use crate::policy::Policy;
use crate::sandbox::{LoadError, Sandbox};
use crate::seen::{SEEN_FILE, SeenLog};
use crate::shares::Shares;
use crate::stats::Counters;

mod approvals;
mod detach;
mod process;
mod reload;
mod request;
mod runs;

use reload::{FileStamp, dir_stamp, key_stamps, load_policy};
pub use request::{MASKED, memory_ceiling, policy_input, run_limits, sandbox_for};
use request::{fit_in_envelope, lenient_id};

/// Request ids remembered at most; beyond this the daemon answers busy rather than forget one.
pub const REPLAY_CAPACITY: usize = 1_000_000;

/// Where a request came from, as its transport saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// `quic` or `sqs` (`local` for `sesamed module run`).
    pub transport: &'static str,
    /// The observed source address (QUIC), if any.
    pub source_ip: Option<IpAddr>,
    /// Where the request's output goes as it comes, when the transport can carry it and the
    /// request asks for it ([`Request::stream`]).
    pub progress: Option<crate::progress::ProgressChannel>,
}

/// The daemon's request handler, shared by all transports.
#[derive(Debug)]
pub struct Runner {
    config: Config,
    /// The host's keys: current, and the one a rotation replaced while it is still accepted.
    keys: RwLock<Arc<HostKeys>>,
    /// What the key files looked like when last loaded; a change triggers a reload.
    keys_stamp: Mutex<[Option<FileStamp>; 3]>,
    clients: RwLock<Arc<ClientRegistry>>,
    /// What the registry file looked like when last loaded; a change triggers a reload.
    clients_stamp: Mutex<Option<FileStamp>>,
    replay: Mutex<(ReplayWindow, SeenLog)>,
    /// Recent answers, so a request delivered twice runs once.
    answers: Answers,
    policy: RwLock<Arc<Policy>>,
    /// What the policy directory looked like when last loaded (or last failed to load).
    policy_stamp: Mutex<Vec<(PathBuf, FileStamp)>>,
    decisions: AuditLog,
    sandbox: Sandbox,
    audit: Arc<AuditLog>,
    /// The services of the capabilities the clusters grant.
    services: Services,
    /// Modules running now (bounded by `limits.max_concurrent`).
    running: AtomicUsize,
    /// Requests each client has in the daemon (bounded by `limits.max_concurrent_per_client`).
    shares: Shares,
    /// Requests inside `handle` now.
    in_flight: AtomicUsize,
    /// What the daemon has done since it started (`sesamed status`).
    counters: Counters,
    /// When it started, Unix milliseconds.
    started_ms: u64,
    /// Requests parked until others approve them.
    parked: crate::approvals::Store,
    /// Requests running now, for their clients' cancels.
    runs: crate::runs::Runs,
    /// What detached runs wrote and how they ended, for their clients to fetch.
    results: Arc<crate::results::Results>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Keys or certificate.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    /// The client registry.
    #[error(transparent)]
    Clients(#[from] crate::clients::RegistryError),
    /// The policy.
    #[error("policy: {0}")]
    Policy(#[from] crate::policy::PolicyError),
    /// A module.
    #[error(transparent)]
    Module(#[from] LoadError),
    /// The audit log.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// A capability's service (`firewall: ...`).
    #[error(transparent)]
    Capability(#[from] crate::capability::CapabilityError),
    /// The store of detached runs' results.
    #[error("kept results {path}: {source}")]
    Results {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The store of requests waiting for approval.
    #[error("parked requests {path}: {source}")]
    Parked {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The replay log.
    #[error("replay log {path}: {source}")]
    Seen {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What the checks before running found; turned into a response and an audit record.
struct Failure {
    code: ErrorCode,
    message: String,
    /// A request parked for approval (code 1020) says which.
    pending: Option<sesame_proto::PendingNote>,
}

impl Failure {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            pending: None,
        }
    }
}

/// An allowed request about to run: what it is, for whom, with which module.
#[derive(Clone)]
struct Run<'a> {
    request: &'a Request,
    /// The requester's name, key and groups (for an approved request: when it asked).
    client: &'a str,
    key: PublicKey,
    groups: &'a [String],
    /// Where the request came from, as its transport saw it.
    source_ip: Option<IpAddr>,
    cluster: &'a str,
    module: &'a crate::sandbox::LoadedModule,
    /// Where its output goes as it comes, when its client asked and is waiting on it.
    progress: Option<crate::progress::ProgressSink>,
}

impl From<ProtoError> for Failure {
    fn from(e: ProtoError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl Runner {
    /// Loads everything a daemon needs: identity, clients, policy, modules, replay log, audit log.
    /// Modules the cache lacks are compiled by `compiler` in child processes, when given
    /// ([`sandbox_for`]).
    pub fn start(
        config: Config,
        now_ms: u64,
        compiler: Option<crate::sandbox::compile::Compiler>,
    ) -> Result<Self, StartError> {
        let keys_stamp = key_stamps(&config);
        let keys = HostKeys::load(&config.state_dir)?;
        if let Some((key, until_ms)) = keys.previous().filter(|(_, until)| *until > now_ms) {
            tracing::info!(%key, until = %crate::format_utc(until_ms), "the previous host key is still accepted");
        }
        let clients_stamp = FileStamp::of(&config.clients_file);
        let clients = ClientRegistry::load(&config.clients_file)?;
        let policy_stamp = dir_stamp(&config.policy_dir);
        let policy = load_policy(&config)?;
        tracing::info!(revision = %policy.revision(), cache = %policy.cache_summary(), "policy loaded");
        let mut sandbox = sandbox_for(&config, compiler)?;
        let loaded = sandbox.load_config(&config)?;
        tracing::info!(
            modules = loaded.modules,
            precompiled = loaded.cached,
            pruned = loaded.pruned,
            ms = loaded.elapsed.as_millis(),
            "modules loaded"
        );
        let seen_path = config.state_dir.join(SEEN_FILE);
        let mut window = ReplayWindow::new(config.freshness_window_ms, REPLAY_CAPACITY)
            .with_share(config.limits.replay_share());
        let (seen, skipped) =
            SeenLog::open(&seen_path, now_ms, &mut window).map_err(|source| StartError::Seen {
                path: seen_path.clone(),
                source,
            })?;
        if skipped > 0 {
            tracing::warn!(path = %seen_path.display(), skipped, "malformed lines in the replay log were skipped");
        }
        let audit = Arc::new(AuditLog::open(&config.audit_log)?);
        let services = Services::start(&Start {
            config: &config,
            audit: &audit,
            now_ms,
        })?;
        let parked = approvals::open_store(&config, &audit, now_ms)?;
        let results = runs::open_results(&config, now_ms)?;
        audit.append(
            now_ms,
            &AuditEvent::Started {
                host: config.host_name.clone(),
                receipt_key: keys.receipt_signer().key().to_string(),
                policy_revision: policy.revision().to_owned(),
                clients: clients.len(),
            },
        )?;
        Ok(Self {
            keys: RwLock::new(Arc::new(keys)),
            keys_stamp: Mutex::new(keys_stamp),
            clients: RwLock::new(Arc::new(clients)),
            clients_stamp: Mutex::new(clients_stamp),
            replay: Mutex::new((window, seen)),
            answers: Answers::new(config.freshness_window_ms.saturating_mul(2)),
            policy: RwLock::new(Arc::new(policy)),
            policy_stamp: Mutex::new(policy_stamp),
            decisions: AuditLog::open(&config.decision_log)?,
            sandbox,
            audit,
            services,
            running: AtomicUsize::new(0),
            shares: Shares::new(config.limits.per_client()),
            in_flight: AtomicUsize::new(0),
            counters: Counters::default(),
            started_ms: now_ms,
            parked,
            runs: crate::runs::Runs::default(),
            results: Arc::new(results),
            config,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The grants service, when this host has one.
    pub fn firewall(&self) -> Option<&Arc<Firewall>> {
        self.services.firewall.as_ref()
    }

    /// Reverts what the grants ledger says has expired (firewall openings, temporary keys) and
    /// expires requests nobody approved in time (the daemon calls this every second).
    pub fn reap(&self, now_ms: u64) {
        self.reap_parked(now_ms);
        self.results.reap(now_ms);
        self.services.reap(now_ms);
    }

    /// Handles one sealed request. Returns the sealed response, or `None` when the input never
    /// authenticated (no reply is sent to strangers). Blocking: runs the module.
    pub fn handle(self: &Arc<Self>, now_ms: u64, bytes: &[u8], peer: &Peer) -> Option<Vec<u8>> {
        let received = Instant::now();
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let _in_flight = SlotGuard(&self.in_flight);
        let envelope = match Envelope::decode(bytes) {
            Ok(e) => e,
            Err(e) => return self.reject(now_ms, peer, None, &e),
        };
        self.refresh_clients(now_ms);
        let clients = Arc::clone(
            &self
                .clients
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let client = match clients.by_key(&envelope.sender) {
            Some(c) => c,
            None => {
                return self.reject(
                    now_ms,
                    peer,
                    Some(envelope.sender.to_string()),
                    &ProtoError::UnknownSender,
                );
            }
        };
        let keys = self.host_keys();
        let (plaintext, key_used) = match keys.open(now_ms, &envelope, |k| client.accepts(k, now_ms)) {
            Ok(opened) => opened,
            Err(e) => return self.reject(now_ms, peer, Some(envelope.sender.to_string()), &e),
        };
        // A client rekeyed by the operator may still use its previous key for a while: from
        // here on the client is that key (answers are sealed to it, the audit and the policy
        // see it, its SQS reply queue is the one derived from it).
        let client: std::borrow::Cow<'_, Client> = if envelope.sender == client.key {
            std::borrow::Cow::Borrowed(client)
        } else {
            std::borrow::Cow::Owned(Client {
                key: envelope.sender,
                ..client.clone()
            })
        };
        let client = &*client;
        // Sealed to the key the last rotation replaced: answer under it (the key this client
        // pinned) and tell the client the new one, with the new key's own word on its successor.
        let rotated = (key_used == KeyUsed::Previous)
            .then(|| {
                self.counters.previous_host_key();
                keys.rotation_note(&mut rand_core::OsRng, &client.key)
                    .map_err(|e| tracing::error!(client = %client.name, "the rotation note: {e}"))
                    .ok()
            })
            .flatten();

        let mut record = RequestRecord {
            phase: "end",
            client: client.name.clone(),
            key: client.key.to_string(),
            transport: peer.transport.to_owned(),
            source_ip: peer.source_ip.map(|ip| ip.to_string()),
            previous_host_key: key_used == KeyUsed::Previous,
            ..RequestRecord::default()
        };
        let mut pending = None;
        let mut streamed = None;
        let response = match Request::decode(&plaintext) {
            // Only this client seals requests to us, so an id read from its unreadable request
            // is its own: the error goes back to it. Without one, no client could take the
            // answer: nothing is sent, and it is counted and audited as rejected.
            Err(e) => match lenient_id(&plaintext) {
                Some(id) => {
                    record.id = id.to_string();
                    let f = Failure::from(e);
                    Response::error(id, f.code, f.message)
                }
                None => return self.reject(now_ms, peer, Some(envelope.sender.to_string()), &e),
            },
            Ok(request) => {
                record.id = request.id.to_string();
                match self.answers.begin(now_ms, client.key, request.id) {
                    Seen::New => pending = Some(Pending::new(&self.answers, client.key, request.id)),
                    seen => return self.duplicate(now_ms, &record, seen),
                }
                record.command = Some(request.command.clone());
                record.cluster = request.cluster.clone();
                record.reason = request.reason.clone();
                let progress = progress_sink(&request, peer, &keys, key_used, client);
                streamed.clone_from(&progress);
                match self.process(now_ms, &request, client, peer, &mut record, progress) {
                    Ok(output) => Response::ok(request.id, output, 0),
                    Err(Failure {
                        message,
                        pending: Some(note),
                        ..
                    }) => Response::pending(request.id, note, message),
                    Err(f) => Response::error(request.id, f.code, f.message),
                }
            }
        };
        let duration_us = u64::try_from(received.elapsed().as_micros()).unwrap_or(u64::MAX);
        // Whether it fits decides the code, which the end record holds: decided with room for
        // the receipt of that record, which is known only once it is written.
        let response = fit_in_envelope(Response {
            duration_us,
            host_key_rotated: rotated,
            streamed: streamed.map_or(0, |sink| sink.chunks()),
            detached: record.phase == detach::PHASE && response.code == ErrorCode::Ok,
            ..response
        });
        self.counters.answered(response.code);
        record.code = response.code.as_u16();
        record.message = if response.code == ErrorCode::Ok {
            String::new()
        } else {
            response.message.clone()
        };
        record.duration_us = duration_us;
        let receipt = match self.audit.append(now_ms, &AuditEvent::Request(Box::new(record))) {
            Ok(head) => Some(Receipt::signed(
                keys.receipt_signer(),
                &self.config.host_name,
                response.id,
                head.seq,
                RecordHash::from_bytes(head.hash),
            )),
            Err(e) => {
                tracing::error!("{e}");
                None
            }
        };
        let plaintext = Response { receipt, ..response }.encode();
        match keys.seal_response(key_used, &client.key, &mut rand_core::OsRng, &plaintext) {
            Ok(sealed) => {
                if let Some(p) = pending {
                    p.finish(&sealed);
                }
                Some(sealed)
            }
            Err(e) => {
                tracing::error!(client = %client.name, "sealing the response failed: {e}");
                None
            }
        }
    }

    /// Answers a request delivered again: the first delivery's sealed answer, or nothing while
    /// that one still runs (its answer is on its way). Audited either way.
    fn duplicate(&self, now_ms: u64, record: &RequestRecord, seen: Seen) -> Option<Vec<u8>> {
        let answer = match seen {
            Seen::Answered(sealed) => Some(sealed.as_ref().clone()),
            Seen::New | Seen::Running => None,
        };
        self.counters.duplicate();
        tracing::info!(id = %record.id, client = %record.client, answered = answer.is_some(), "duplicate delivery, not run again");
        let event = AuditEvent::Duplicate {
            id: record.id.clone(),
            client: record.client.clone(),
            transport: record.transport.clone(),
            source_ip: record.source_ip.clone(),
            answered: answer.is_some(),
        };
        if let Err(e) = self.audit.append(now_ms, &event) {
            tracing::error!("{e}");
        }
        answer
    }

    /// What `sesamed status` shows, less the transports (`main` knows those).
    pub fn status(&self, now_ms: u64) -> crate::control::Status {
        let policy = self.current_policy();
        let keys = self.host_keys();
        let grants = self
            .services
            .firewall
            .as_ref()
            .map(|fw| crate::control::GrantsStatus {
                backend: fw.backend_name().to_owned(),
                live: fw
                    .list(now_ms, None)
                    .map_err(|e| tracing::warn!("status: reading the grants ledger: {e}"))
                    .ok()
                    .map(|g| g.len()),
            });
        crate::control::Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            host: self.config.host_name.clone(),
            started_ms: self.started_ms,
            now_ms,
            quic: None,
            sqs: None,
            in_flight: self.in_flight(),
            clients: self
                .clients
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len(),
            counters: self.counters.snapshot(),
            policy: crate::control::PolicyStatus {
                revision: policy.revision().to_owned(),
                cache: policy.cache_stats(),
            },
            grants,
            host_key: keys.public_key().to_string(),
            next_host_key_sha256: keys.next_key_sha256().map(|d| d.to_string()),
            previous_host_key: keys
                .previous()
                .filter(|(_, until)| *until > now_ms)
                .map(|(key, until_ms)| crate::control::PreviousHostKey {
                    key: key.to_string(),
                    until_ms,
                }),
        }
    }

    /// Lets other processes (`sesamed client add`, `sesamed grants revoke`) append to the audit
    /// and decision logs: each writer keeps a log's lock for a short lease across lines. Also
    /// writes the count of rejections a finished flood-limit period left out. The daemon calls
    /// this every second.
    pub fn release_logs(&self, now_ms: u64) {
        if let Err(e) = self.audit.summarise_rejected(now_ms, false) {
            tracing::error!("{e}");
        }
        self.audit.release();
        self.decisions.release();
    }

    /// Flushes the replay and audit logs and records the stop.
    pub fn shutdown(&self, now_ms: u64, reason: &str) {
        let replay = lock(&self.replay);
        if let Err(e) = replay.1.sync() {
            tracing::error!("syncing the replay log: {e}");
        }
        drop(replay);
        let stopped = AuditEvent::Stopped {
            reason: reason.to_owned(),
        };
        if let Err(e) = self.audit.summarise_rejected(now_ms, true) {
            tracing::error!("{e}");
        }
        if let Err(e) = self
            .audit
            .append(now_ms, &stopped)
            .and_then(|_| self.audit.sync())
            .and_then(|()| self.decisions.sync())
        {
            tracing::error!("{e}");
        }
    }

    /// Requests being handled right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Records a queue message dropped unrun (not an envelope, or delivered too often), under
    /// the same flood limit as other unauthenticated input.
    pub fn record_poison(
        &self,
        now_ms: u64,
        queue: &str,
        message_id: &str,
        receive_count: u32,
        reason: &str,
    ) {
        tracing::warn!(
            queue,
            message_id,
            receive_count,
            "poison message dropped: {reason}"
        );
        self.counters.rejected();
        let event = AuditEvent::Poison {
            queue: queue.to_owned(),
            message_id: message_id.to_owned(),
            receive_count,
            reason: reason.to_owned(),
        };
        if let Err(e) = self.audit.append_rejected(now_ms, &event) {
            tracing::error!("{e}");
        }
    }

    /// Records input a transport threw away before it reached [`Runner::handle`] (too large, say).
    pub fn reject_unauthenticated(&self, now_ms: u64, peer: &Peer, e: &ProtoError) {
        let _ = self.reject(now_ms, peer, None, e);
    }

    fn reject(&self, now_ms: u64, peer: &Peer, sender: Option<String>, e: &ProtoError) -> Option<Vec<u8>> {
        tracing::debug!(transport = peer.transport, source = ?peer.source_ip, "rejected unauthenticated input: {e}");
        self.counters.rejected();
        let event = AuditEvent::Rejected {
            transport: peer.transport.to_owned(),
            source_ip: peer.source_ip.map(|ip| ip.to_string()),
            sender,
            code: e.code().as_u16(),
            reason: e.to_string(),
        };
        if let Err(e) = self.audit.append_rejected(now_ms, &event) {
            tracing::error!("{e}");
        }
        None
    }
}

/// A request being answered for the first time; forgotten again if no answer gets stored (the
/// handler failed to seal one, or panicked), so a later delivery is not left waiting forever.
struct Pending<'a> {
    answers: &'a Answers,
    key: PublicKey,
    id: RequestId,
    done: bool,
}

impl<'a> Pending<'a> {
    fn new(answers: &'a Answers, key: PublicKey, id: RequestId) -> Self {
        Self {
            answers,
            key,
            id,
            done: false,
        }
    }

    fn finish(mut self, sealed: &[u8]) {
        self.answers.finish(self.key, self.id, Some(sealed));
        self.done = true;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.answers.finish(self.key, self.id, None);
        }
    }
}

/// Releases a concurrency slot when dropped.
struct SlotGuard<'a>(&'a AtomicUsize);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Locks `m`, carrying on past a panic elsewhere, as every lock in the runner does.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The sink for `request`'s output as it comes: when it asks for it and its transport carries
/// it, each chunk sealed to `client` under the key that opened the request.
fn progress_sink(
    request: &Request,
    peer: &Peer,
    keys: &Arc<HostKeys>,
    used: KeyUsed,
    client: &Client,
) -> Option<crate::progress::ProgressSink> {
    let channel = peer.progress.as_ref().filter(|_| request.stream)?;
    let (keys, key, name) = (Arc::clone(keys), client.key, client.name.clone());
    let seal: crate::progress::Seal = Arc::new(move |plaintext: &[u8]| {
        keys.seal_progress(used, &key, &mut rand_core::OsRng, plaintext)
            .map_err(|e| tracing::error!(client = %name, "sealing progress failed: {e}"))
            .ok()
    });
    Some(crate::progress::ProgressSink::new(request.id, channel, seal))
}
