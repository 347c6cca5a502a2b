//! The running daemon's control socket, `control.sock` in the state directory: `sesamed status`
//! asks it how the daemon is doing.
//!
//! The socket is a Unix stream socket, mode 0600 inside the 0700 state directory, and the daemon
//! also checks each caller's uid (root, or the daemon's own). A caller sends one line, the name
//! of what it wants (`status`), and gets one JSON line back. The socket only reports: changes go
//! through files (keys, registry, policy) that the daemon watches, so nothing here can grant
//! anything.
//!
//! Binding it also keeps two daemons off one state directory: a socket that answers means
//! another daemon is serving, and `serve` refuses to start. So does a socket that something
//! holds but that gives no sensible answer within two seconds (a daemon too busy to say so must
//! not find a second one reconciling its firewall). Only a socket nobody listens on, left over
//! from a daemon that died, is replaced.

use std::io::{BufRead as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

use crate::policy::CacheStats;
use crate::stats::CountersSnapshot;

/// The socket's file name in the state directory.
pub const CONTROL_SOCKET: &str = "control.sock";

/// The longest request line the daemon reads.
const MAX_REQUEST: usize = 64;

/// How long a caller may take to send its request, and the daemon its answer.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// What `sesamed status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The daemon's version.
    pub version: String,
    /// Its process id.
    pub pid: u32,
    /// The configured host name.
    pub host: String,
    /// When it started, Unix milliseconds.
    pub started_ms: u64,
    /// When this status was taken, Unix milliseconds.
    pub now_ms: u64,
    /// The QUIC address it listens on, if any.
    pub quic: Option<String>,
    /// The SQS queue it polls, if any.
    pub sqs: Option<String>,
    /// Requests being handled now.
    pub in_flight: usize,
    /// Enrolled clients.
    pub clients: usize,
    /// What it has done since it started.
    pub counters: CountersSnapshot,
    /// The policy in force.
    pub policy: PolicyStatus,
    /// Live firewall openings, when the host has the firewall capability.
    pub grants: Option<GrantsStatus>,
    /// The host's current public key.
    pub host_key: String,
    /// SHA-256 of the key the next `rotate-key` moves to (what clients pin beside `host_key`).
    #[serde(default)]
    pub next_host_key_sha256: Option<String>,
    /// The key replaced by the last rotation, while it is still accepted.
    pub previous_host_key: Option<PreviousHostKey>,
}

/// The policy part of [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyStatus {
    /// The revision in force (a digest of the policy directory).
    pub revision: String,
    /// The decision cache's counters, when decisions are cached.
    pub cache: Option<CacheStats>,
}

/// The grants part of [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantsStatus {
    /// The firewall back end (`ufw`, `nftables`, `dry-run`).
    pub backend: String,
    /// Openings live now; `None` if the ledger could not be read (the error is logged).
    pub live: Option<usize>,
}

/// The previous host key, in [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousHostKey {
    /// Its public key.
    pub key: String,
    /// Until when requests sealed to it are accepted, Unix milliseconds.
    pub until_ms: u64,
}

/// Why the control socket could not be bound or asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Another daemon answers on the socket.
    #[error("another sesamed (pid {pid}) is serving {dir}; stop it first")]
    AlreadyServing {
        /// The state directory.
        dir: PathBuf,
        /// The other daemon's pid.
        pid: u32,
    },
    /// Something holds the socket but gave no sensible answer in time.
    #[error(
        "{path} is held by a process that did not answer ({reason}); if no sesamed is running, remove the file"
    )]
    Unresponsive {
        /// The socket.
        path: PathBuf,
        /// What asking it said.
        reason: String,
    },
    /// No daemon is serving this state directory.
    #[error("sesamed is not running ({path}: {reason})")]
    NotRunning {
        /// The socket.
        path: PathBuf,
        /// What connecting said.
        reason: String,
    },
    /// The socket could not be created or used.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The daemon's answer made no sense.
    #[error("control socket {path}: unexpected answer: {message}")]
    Protocol {
        /// The socket.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
}

/// Asks the daemon serving `state_dir` for its status.
pub fn query(state_dir: &Path) -> Result<Status, ControlError> {
    let path = state_dir.join(CONTROL_SOCKET);
    let io = |source: std::io::Error| ControlError::Io {
        path: path.clone(),
        source,
    };
    let stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ControlError::NotRunning {
                path,
                reason: e.to_string(),
            });
        }
        Err(e) => return Err(io(e)),
    };
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    (&stream).write_all(b"status\n").map_err(io)?;
    let mut line = String::new();
    std::io::BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(io)?;
    if let Ok(Refusal { error }) = serde_json::from_str::<Refusal>(&line) {
        return Err(ControlError::Protocol { path, message: error });
    }
    serde_json::from_str(&line).map_err(|e| ControlError::Protocol {
        path: path.clone(),
        message: format!("{e}: {:?}", line.trim_end()),
    })
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Refusal {
    error: String,
}

/// The bound control socket; removes its file when dropped.
#[derive(Debug)]
pub struct ControlSocket {
    listener: std::os::unix::net::UnixListener,
    path: PathBuf,
    owner: u32,
}

impl ControlSocket {
    /// Binds `control.sock` in `state_dir`, replacing one left by a daemon that died, refusing
    /// if another daemon answers on it.
    pub fn bind(state_dir: &Path) -> Result<Self, ControlError> {
        let path = state_dir.join(CONTROL_SOCKET);
        let io = |source: std::io::Error| ControlError::Io {
            path: path.clone(),
            source,
        };
        match query(state_dir) {
            Ok(status) => {
                return Err(ControlError::AlreadyServing {
                    dir: state_dir.to_owned(),
                    pid: status.pid,
                });
            }
            Err(ControlError::NotRunning { .. }) => {}
            // Something holds the socket but did not answer sensibly in time: perhaps a daemon
            // too busy to say so. Replacing its socket could put two daemons on one firewall
            // ledger, so refuse rather than guess.
            Err(e) => {
                return Err(ControlError::Unresponsive {
                    path,
                    reason: e.to_string(),
                });
            }
        }
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!(path = %path.display(), "removed a stale control socket"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let listener = std::os::unix::net::UnixListener::bind(&path).map_err(io)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        let owner = std::fs::metadata(&path).map_err(io)?.uid();
        Ok(Self {
            listener,
            path,
            owner,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers callers until `stop` turns true. `status` is called for each `status` request on
    /// the blocking pool (it may read files).
    pub async fn serve<F>(self, status: F, mut stop: tokio::sync::watch::Receiver<bool>)
    where
        F: Fn() -> Status + Send + Sync + 'static,
    {
        let listener = match self
            .listener
            .try_clone()
            .and_then(tokio::net::UnixListener::from_std)
        {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(path = %self.path.display(), "control socket: {e}; sesamed status will not answer");
                return;
            }
        };
        let status = std::sync::Arc::new(status);
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!("control socket accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = stop.changed() => return,
            };
            let status = std::sync::Arc::clone(&status);
            let owner = self.owner;
            tokio::spawn(async move {
                if let Err(e) = tokio::time::timeout(IO_TIMEOUT, answer(stream, owner, status)).await {
                    tracing::debug!("control socket caller too slow: {e}");
                }
            });
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads one request line from a caller and answers it.
async fn answer<F>(stream: tokio::net::UnixStream, owner: u32, status: std::sync::Arc<F>)
where
    F: Fn() -> Status + Send + Sync + 'static,
{
    // The socket's mode already keeps others out; this also holds if someone loosens it.
    let uid = stream.peer_cred().map(|c| c.uid()).ok();
    let (read, mut write) = stream.into_split();
    let reply = if uid.is_none_or(|u| u != 0 && u != owner) {
        tracing::warn!(
            ?uid,
            "control socket: caller refused (not root or the daemon's user)"
        );
        refusal("permission denied")
    } else {
        let mut line = String::new();
        let mut limited = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST as u64));
        match limited.read_line(&mut line).await {
            Err(e) => refusal(&e.to_string()),
            Ok(_) => match line.trim() {
                "status" => match tokio::task::spawn_blocking(move || status()).await {
                    Ok(s) => serde_json::to_string(&s).unwrap_or_else(|e| refusal(&e.to_string())),
                    Err(e) => refusal(&format!("status failed: {e}")),
                },
                other => refusal(&format!("unknown request {other:?} (expected status)")),
            },
        }
    };
    let _ = write.write_all(format!("{reply}\n").as_bytes()).await;
    let _ = write.shutdown().await;
}

fn refusal(error: &str) -> String {
    serde_json::to_string(&Refusal {
        error: error.to_owned(),
    })
    .unwrap_or_else(|_| r#"{"error":"refused"}"#.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(pid: u32) -> Status {
        Status {
            version: "0.0.0".into(),
            pid,
            host: "h".into(),
            started_ms: 1,
            now_ms: 2,
            quic: Some("127.0.0.1:1".into()),
            sqs: None,
            in_flight: 0,
            clients: 3,
            counters: CountersSnapshot::default(),
            policy: PolicyStatus {
                revision: "r".into(),
                cache: None,
            },
            grants: None,
            host_key: "k".into(),
            previous_host_key: None,
            next_host_key_sha256: None,
        }
    }

    #[tokio::test]
    async fn answers_status_refuses_a_second_daemon_and_replaces_a_stale_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().to_owned();
        assert!(matches!(query(&state), Err(ControlError::NotRunning { .. })));

        let socket = ControlSocket::bind(&state).expect("bind");
        let mode = std::fs::metadata(socket.path())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(socket.serve(|| sample(42), stop_rx));

        let asked = state.clone();
        let got = tokio::task::spawn_blocking(move || query(&asked))
            .await
            .expect("join");
        assert_eq!(got.expect("status"), sample(42));

        // A second daemon on the same state directory is refused, naming the first.
        let again = state.clone();
        let err = tokio::task::spawn_blocking(move || ControlSocket::bind(&again))
            .await
            .expect("join")
            .expect_err("second bind");
        assert!(err.to_string().contains("pid 42"), "{err}");

        // Unknown requests get a refusal, not a status.
        let asked = state.clone();
        let line = tokio::task::spawn_blocking(move || {
            let s = std::os::unix::net::UnixStream::connect(asked.join(CONTROL_SOCKET)).expect("connect");
            (&s).write_all(b"grant everything\n").expect("write");
            let mut line = String::new();
            std::io::BufReader::new(&s).read_line(&mut line).expect("read");
            line
        })
        .await
        .expect("join");
        assert!(line.contains("unknown request"), "{line}");

        let _ = stop_tx.send(true);
        server.await.expect("server");
        assert!(
            !state.join(CONTROL_SOCKET).exists(),
            "the socket is removed on stop"
        );

        // A socket file nobody listens on (a daemon killed hard) is replaced.
        let stale = std::os::unix::net::UnixListener::bind(state.join(CONTROL_SOCKET)).expect("bind");
        drop(stale);
        assert!(state.join(CONTROL_SOCKET).exists());
        let socket = ControlSocket::bind(&state).expect("stale socket replaced");
        drop(socket);

        // A socket something listens on but never answers is not taken over.
        let silent = std::os::unix::net::UnixListener::bind(state.join(CONTROL_SOCKET)).expect("bind");
        let again = state.clone();
        let err = tokio::task::spawn_blocking(move || ControlSocket::bind(&again))
            .await
            .expect("join")
            .expect_err("a held socket is not replaced");
        assert!(matches!(err, ControlError::Unresponsive { .. }), "{err}");
        drop(silent);
    }
}
