//! The request's deadline, as every wait done on a module's behalf sees it.
//!
//! Epoch interruption stops a module that computes past its time limit, but only while wasm code
//! runs. A module can also make the *host* wait: on a WASI clock or stream, or in a host call that
//! runs a tool or takes a lock. Each such wait must end by the request's deadline, or one module
//! could hold its concurrency slot (and its client's answer) for as long as it likes.
//!
//! The sandbox sets the deadline for the thread that runs a module ([`scope`]), and the waits
//! below it read it from there: [`crate::system::Tool`] runs, the grants ledger's lock, the
//! sandbox's WASI streams and polls. An ambient value rather than a parameter, so that a wait
//! added later under a host call is bounded without threading a deadline through every service
//! API; outside a module run (the reaper, the admin commands) there is none and each wait keeps
//! its own bound.

use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    static CURRENT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// A wait on a module's behalf reached the request's deadline; the run ends with error 3002.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request's time limit ran out while the host waited for it")]
pub struct DeadlineExceeded;

/// Runs `f` with `deadline` as this thread's deadline, restoring the previous one afterwards
/// (also when `f` panics).
pub fn scope<R>(deadline: Instant, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(Some(deadline))));
    f()
}

/// This thread's deadline, if it is running a module.
pub fn current() -> Option<Instant> {
    CURRENT.with(Cell::get)
}

/// How long a wait that would take `wanted` may take: `wanted`, or less when the deadline is
/// nearer (zero once it has passed).
pub fn cap(wanted: Duration) -> Duration {
    current().map_or(wanted, |d| {
        wanted.min(d.saturating_duration_since(Instant::now()))
    })
}

/// Whether this thread's deadline has passed.
pub fn passed() -> bool {
    current().is_some_and(|d| Instant::now() >= d)
}

/// Takes an exclusive `flock` on `file`, waiting at most until this thread's deadline (without
/// one, as long as it takes). Polls with a short backoff: `flock` itself has no timeout.
pub fn lock_file(file: &std::fs::File) -> std::io::Result<()> {
    let Some(deadline) = current() else {
        return file.lock();
    };
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                DeadlineExceeded,
            ));
        }
        std::thread::sleep(pause.min(left));
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
