//! Stopping a request while it runs: `runs::cancel ID`, the daemon's own command, sealed and
//! sent like any request. `sesame run` sends it for every host still running when Ctrl-C comes
//! (and leaves at once on a second one); `sesame cancel HOST ID` sends it for a request another
//! process started. Only the key that sealed a request may cancel it.

use std::sync::Arc;

use sesame_proto::Response;
use tokio::sync::watch;

use crate::fleet;
use crate::quic::ClientError;

/// The daemon's own cluster of commands on running requests.
pub const CLUSTER: &str = "runs";

/// The request that cancels request `id`: in full, or its first 8 or more characters.
pub fn command(id: &str) -> fleet::Command {
    fleet::Command::parse(&format!("{CLUSTER}::cancel"), vec![id.to_owned()])
}

/// Hears how a host answered a cancel: its alias, and the answer (or why none came).
type Report = dyn Fn(&str, &Result<Response, ClientError>) + Send + Sync;

/// What a run asked to stop does when the signal comes: ask each host still running its
/// request to cancel it, and tell `report` how each host answered the cancel.
#[derive(Clone)]
pub struct Canceller {
    signal: watch::Receiver<bool>,
    report: Arc<Report>,
}

impl std::fmt::Debug for Canceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Canceller")
            .field("signalled", &*self.signal.borrow())
            .finish_non_exhaustive()
    }
}

impl Canceller {
    /// Cancels when `signal` turns true; `report(alias, answer)` hears each host's answer to
    /// the cancel.
    pub fn new(
        signal: watch::Receiver<bool>,
        report: impl Fn(&str, &Result<Response, ClientError>) + Send + Sync + 'static,
    ) -> Self {
        Self {
            signal,
            report: Arc::new(report),
        }
    }

    /// Resolves once the signal has come (never, if its sender is gone without sending it).
    pub async fn signalled(&self) {
        let mut signal = self.signal.clone();
        if signal.wait_for(|set| *set).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Tells the reporter how `alias` answered the cancel.
    pub fn report(&self, alias: &str, answer: &Result<Response, ClientError>) {
        (self.report)(alias, answer);
    }
}

/// A signal that turns true at the first Ctrl-C (SIGINT); the second one ends the process at
/// once (exit status 130) without waiting for anything. `first` runs at the first. Ctrl-C is
/// taken from here on (installed before this returns, so none is missed); the handler is a task
/// on the current runtime and hears it while the runtime runs.
pub fn on_ctrl_c(first: impl FnOnce() + Send + 'static) -> std::io::Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupts = signal(SignalKind::interrupt())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        if interrupts.recv().await.is_none() {
            return;
        }
        first();
        let _ = tx.send(true);
        if interrupts.recv().await.is_some() {
            std::process::exit(130);
        }
    });
    Ok(rx)
}
