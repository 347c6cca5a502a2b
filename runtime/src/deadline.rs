//! The request's end, as every wait done on a module's behalf sees it: its deadline, or its
//! client's cancel, whichever comes first.
//!
//! Epoch interruption stops a module that computes past its time limit, but only while wasm code
//! runs. A module can also make the *host* wait: on a WASI clock or stream, or in a host call that
//! runs a tool or takes a lock. Each such wait must end by the request's deadline, or one module
//! could hold its concurrency slot (and its client's answer) for as long as it likes; and at once
//! when the client cancels the request, or a cancel would stop only the wasm code and leave the
//! tool it started running.
//!
//! The sandbox sets the bound for the thread that runs a module ([`scope`]), and the waits below
//! it read it from there: [`crate::system::Tool`] runs, the grants ledger's lock, the sandbox's
//! WASI streams and polls. An ambient value rather than a parameter, so that a wait added later
//! under a host call is bounded without threading a deadline through every service API; outside
//! a module run (the reaper, the admin commands) there is none and each wait keeps its own bound.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

thread_local! {
    static CURRENT: RefCell<Option<Until>> = const { RefCell::new(None) };
}

/// Why a wait on a module's behalf ended before what it waited for: the run ends with 3002 or
/// 3008.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Stopped {
    /// The request's time limit ran out.
    #[error("the request's time limit ran out while the host waited for it")]
    Deadline,
    /// The request's client cancelled it.
    #[error("the request was cancelled by its client")]
    Cancelled,
}

/// A request's cancel switch: set once, by the runner when the request's own client asks;
/// every wait bounded by an [`Until`] holding it ends soon after.
#[derive(Debug, Default)]
pub struct Cancel {
    set: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Cancel {
    /// A switch not yet set.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Sets the switch and wakes every wait on it. Returns whether this call set it (a second
    /// cancel of the same request is not a second event).
    pub fn cancel(&self) -> bool {
        let first = !self.set.swap(true, Ordering::AcqRel);
        self.notify.notify_waiters();
        first
    }

    /// Whether the switch is set.
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Resolves once the switch is set (at once if it already is).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check: a cancel between the two still wakes this wait.
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

/// When waits on a run's behalf must end: its deadline, and its cancel switch if it has one.
#[derive(Debug, Clone)]
pub struct Until {
    /// The deadline.
    pub at: Instant,
    /// The switch its client may set.
    pub cancel: Option<Arc<Cancel>>,
}

impl Until {
    /// Bounded by `at` alone.
    pub fn at(at: Instant) -> Self {
        Self { at, cancel: None }
    }

    /// The same bound, ended early by `cancel` too.
    #[must_use]
    pub fn or_cancelled(mut self, cancel: Option<Arc<Cancel>>) -> Self {
        self.cancel = cancel;
        self
    }

    /// Whether waiting must end now, and why.
    pub fn check(&self) -> Result<(), Stopped> {
        if self.cancel.as_ref().is_some_and(|c| c.is_set()) {
            return Err(Stopped::Cancelled);
        }
        if Instant::now() >= self.at {
            return Err(Stopped::Deadline);
        }
        Ok(())
    }

    /// Runs `wait` (on the async runtime of the caller) until it finishes or this bound comes.
    pub async fn within<F: Future>(&self, wait: F) -> Result<F::Output, Stopped> {
        let deadline = tokio::time::timeout_at(tokio::time::Instant::from_std(self.at), wait);
        match &self.cancel {
            None => deadline.await.map_err(|_| Stopped::Deadline),
            Some(cancel) => tokio::select! {
                biased;
                () = cancel.cancelled() => Err(Stopped::Cancelled),
                done = deadline => done.map_err(|_| Stopped::Deadline),
            },
        }
    }
}

impl From<Instant> for Until {
    fn from(at: Instant) -> Self {
        Self::at(at)
    }
}

/// Runs `f` with `until` as this thread's bound, restoring the previous one afterwards (also
/// when `f` panics).
pub fn scope<R>(until: impl Into<Until>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Until>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(Some(until.into()))));
    f()
}

/// This thread's deadline, if it is running a module.
pub fn current() -> Option<Instant> {
    CURRENT.with(|c| c.borrow().as_ref().map(|u| u.at))
}

/// Whether waiting on this thread must end now, and why (never, outside a module run).
pub fn check() -> Result<(), Stopped> {
    CURRENT.with(|c| c.borrow().as_ref().map_or(Ok(()), Until::check))
}

/// How long a wait that would take `wanted` may take: `wanted`, or less when the deadline is
/// nearer (zero once it has passed, or once the request is cancelled).
pub fn cap(wanted: Duration) -> Duration {
    CURRENT.with(|c| match c.borrow().as_ref() {
        None => wanted,
        Some(u) if u.check().is_err() => Duration::ZERO,
        Some(u) => wanted.min(u.at.saturating_duration_since(Instant::now())),
    })
}

/// Whether this thread's deadline has passed or its request was cancelled.
pub fn passed() -> bool {
    check().is_err()
}

/// Takes an exclusive `flock` on `file`, waiting at most until this thread's bound (without
/// one, as long as it takes). Polls with a short backoff: `flock` itself has no timeout.
pub fn lock_file(file: &std::fs::File) -> std::io::Result<()> {
    if current().is_none() {
        return file.lock();
    }
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        if let Err(stopped) = check() {
            let kind = match stopped {
                Stopped::Deadline => std::io::ErrorKind::TimedOut,
                Stopped::Cancelled => std::io::ErrorKind::Interrupted,
            };
            return Err(std::io::Error::new(kind, stopped));
        }
        std::thread::sleep(pause.min(cap(Duration::MAX)));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_holds_inside_its_scope_only() {
        assert_eq!(current(), None);
        assert_eq!(cap(Duration::from_secs(30)), Duration::from_secs(30));
        let deadline = Instant::now() + Duration::from_millis(200);
        scope(deadline, || {
            assert_eq!(current(), Some(deadline));
            assert!(cap(Duration::from_secs(30)) <= Duration::from_millis(200));
            assert!(!passed());
            let inner = Instant::now();
            scope(inner, || assert!(passed()));
            assert_eq!(current(), Some(deadline), "restored after a nested scope");
        });
        assert_eq!(current(), None);
        let _ = std::panic::catch_unwind(|| scope(deadline, || panic!("on purpose")));
        assert_eq!(current(), None, "restored after a panic");
    }

    #[test]
    fn a_cancel_ends_every_kind_of_wait_at_once() {
        let cancel = Cancel::new();
        let until =
            Until::at(Instant::now() + Duration::from_secs(60)).or_cancelled(Some(Arc::clone(&cancel)));
        assert_eq!(until.check(), Ok(()));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lock");
        let holder = std::fs::File::create(&path).expect("create");
        holder.lock().expect("first lock");
        let waiter = std::fs::File::open(&path).expect("open");
        let started = Instant::now();
        let (locked, waited) = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(100));
                assert!(cancel.cancel(), "the first cancel sets it");
                assert!(!cancel.cancel(), "a second one is not a second event");
            });
            let locked = scope(until.clone(), || lock_file(&waiter));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime");
            let waited = runtime.block_on(until.within(std::future::pending::<()>()));
            (locked, waited)
        });
        let err = locked.expect_err("cancelled");
        assert_eq!(err.kind(), std::io::ErrorKind::Interrupted);
        assert_eq!(waited, Err(Stopped::Cancelled));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(until.check(), Err(Stopped::Cancelled));
        scope(until, || {
            assert!(passed());
            assert_eq!(cap(Duration::from_secs(30)), Duration::ZERO);
        });
    }

    #[test]
    fn a_lock_wait_ends_at_the_deadline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lock");
        let holder = std::fs::File::create(&path).expect("create");
        holder.lock().expect("first lock");
        let waiter = std::fs::File::open(&path).expect("open");
        let started = Instant::now();
        let err = scope(started + Duration::from_millis(150), || lock_file(&waiter))
            .expect_err("held by another open file description");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        drop(holder);
        scope(Instant::now() + Duration::from_millis(150), || lock_file(&waiter)).expect("free now");
    }
}
