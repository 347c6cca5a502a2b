//! The requests running now, by id, and the daemon's own `runs` cluster that acts on them:
//! `runs::cancel ID` stops a request while it runs, and `runs::result ID [FROM]` fetches a
//! detached run's output and answer ([`crate::results`]).
//!
//! A cancel is an ordinary sealed request (authenticated, fresh, never replayed, audited), so
//! it cannot be forged or played back, and it reaches the daemon however the request it stops
//! came (QUIC or SQS). It stops only a request sealed by the same key: another client's cancel
//! is told, like a cancel of an id that is not running, that no such request of its own runs, so
//! it learns nothing about other clients' requests. It needs no policy rule: it can only take
//! away what the same key was granted, never add to it.
//!
//! A cancelled run is stopped at once wherever it is ([`crate::deadline`]): wasm code at the
//! next epoch tick, a host tool (salt-call, a declared program) killed with its process group,
//! a WASI wait or a lock wait ended. Changes already made stay (a firewall opening expires as
//! granted); the request's answer is 3008 and its audit record names the cancel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sesame_proto::{PublicKey, RequestId};

use crate::deadline::Cancel;

// The error text says 8.
const _: () = assert!(crate::approvals::MIN_ID_PREFIX == 8);

/// The daemon's own cluster of commands on running requests.
pub const CLUSTER: &str = "runs";

/// Its commands.
pub const COMMANDS: &[&str] = &["cancel", "result"];

/// What the runner keeps of a running request.
#[derive(Debug)]
struct Entry {
    /// The key that sealed it: the only one that may cancel it.
    key: PublicKey,
    cancel: Arc<Cancel>,
    /// The id of the request that cancelled it, once one has.
    cancelled_by: Option<RequestId>,
}

/// The requests running now, by id.
#[derive(Debug, Default)]
pub struct Runs {
    map: Mutex<HashMap<RequestId, Entry>>,
}

/// Why a cancel found nothing to stop. A request that is not running and one that is another
/// client's get the same answer, so a client learns nothing of others' requests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotRunning {
    /// No request of the caller's with that id (or prefix) runs here.
    #[error("no request {0} of yours is running here (it ended, it never came, or it is not yours)")]
    None(String),
    /// More than one of the caller's running requests starts with the prefix.
    #[error("{0} names more than one of your running requests: give more of the id")]
    Ambiguous(String),
    /// Not an id, nor a prefix of one long enough to name one.
    #[error("{0:?} is not a request id (32 hex digits, or the first 8 or more)")]
    BadId(String),
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The request was running and is now being stopped.
    Now,
    /// An earlier cancel already stopped it.
    Already,
}

impl Runs {
    /// Records that request `id`, sealed by `key`, runs now; it is forgotten when the returned
    /// guard drops. The guard's switch stops it.
    pub fn register(&self, id: RequestId, key: PublicKey) -> Registration<'_> {
        let cancel = Cancel::new();
        self.lock().insert(
            id,
            Entry {
                key,
                cancel: Arc::clone(&cancel),
                cancelled_by: None,
            },
        );
        Registration {
            runs: self,
            id,
            cancel,
        }
    }

    /// Cancels the request `id` names (all of an id, or its first
    /// [`MIN_ID_PREFIX`](crate::approvals::MIN_ID_PREFIX) or more hex digits) among the running
    /// requests of the client holding `key`, by its request `by`. Returns the id found.
    pub fn cancel(
        &self,
        id: &str,
        key: &PublicKey,
        by: RequestId,
    ) -> Result<(RequestId, Cancelled), NotRunning> {
        let prefix = id.trim().to_ascii_lowercase();
        if prefix.len() < crate::approvals::MIN_ID_PREFIX || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NotRunning::BadId(id.to_owned()));
        }
        let mut map = self.lock();
        let mut own = map
            .iter()
            .filter(|(running, e)| e.key == *key && running.to_string().starts_with(&prefix))
            .map(|(running, _)| *running);
        let found = match (own.next(), own.next()) {
            (Some(found), None) => found,
            (None, _) => return Err(NotRunning::None(prefix)),
            (Some(_), Some(_)) => return Err(NotRunning::Ambiguous(prefix)),
        };
        let entry = map
            .get_mut(&found)
            .ok_or_else(|| NotRunning::None(prefix.clone()))?;
        Ok((
            found,
            if entry.cancel.cancel() {
                entry.cancelled_by = Some(by);
                Cancelled::Now
            } else {
                Cancelled::Already
            },
        ))
    }

    /// How many requests run now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, Entry>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running request's place in [`Runs`]; dropping it forgets the request.
#[derive(Debug)]
pub struct Registration<'a> {
    runs: &'a Runs,
    id: RequestId,
    cancel: Arc<Cancel>,
}

impl Registration<'_> {
    /// The switch a cancel sets.
    pub fn switch(&self) -> Arc<Cancel> {
        Arc::clone(&self.cancel)
    }

    /// The request that cancelled this one, if one did.
    pub fn cancelled_by(&self) -> Option<RequestId> {
        self.runs.lock().get(&self.id).and_then(|e| e.cancelled_by)
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.runs.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PublicKey {
        PublicKey::from_bytes([b; 32])
    }

    #[test]
    fn only_the_key_that_sealed_a_request_cancels_it_and_only_while_it_runs() {
        let runs = Runs::default();
        let (id, by) = (RequestId::from_bytes([0x11; 16]), RequestId::from_bytes([3; 16]));
        let text = id.to_string();
        let running = runs.register(id, key(1));
        let none = |t: &str| Err(NotRunning::None(t.to_owned()));
        assert_eq!(runs.cancel(&text, &key(2), by), none(&text), "another client's");
        assert!(!running.switch().is_set());
        let other = RequestId::from_bytes([0x22; 16]).to_string();
        assert_eq!(runs.cancel(&other, &key(1), by), none(&other));
        assert_eq!(runs.cancel(&text, &key(1), by), Ok((id, Cancelled::Now)));
        assert!(running.switch().is_set());
        assert_eq!(running.cancelled_by(), Some(by));
        let again = RequestId::from_bytes([4; 16]);
        assert_eq!(runs.cancel(&text, &key(1), again), Ok((id, Cancelled::Already)));
        assert_eq!(
            running.cancelled_by(),
            Some(by),
            "the first cancel is the one on record"
        );
        drop(running);
        assert!(runs.is_empty());
        assert_eq!(runs.cancel(&text, &key(1), by), none(&text), "ended");
    }

    #[test]
    fn a_prefix_names_one_of_the_callers_own_running_requests() {
        let runs = Runs::default();
        let by = RequestId::from_bytes([9; 16]);
        let mine = RequestId::from_bytes([0xab; 16]);
        let theirs = {
            let mut b = [0xab; 16];
            b[15] = 0xcd;
            RequestId::from_bytes(b)
        };
        let (_a, b) = (runs.register(mine, key(1)), runs.register(theirs, key(2)));
        // Both ids start abababab: the caller's own is the only one it can name.
        assert_eq!(runs.cancel("ABABABAB", &key(1), by), Ok((mine, Cancelled::Now)));
        assert!(
            !b.switch().is_set(),
            "another client's request sharing the prefix runs on"
        );
        assert_eq!(
            runs.cancel("abab", &key(1), by),
            Err(NotRunning::BadId("abab".into()))
        );
        assert_eq!(
            runs.cancel("zzzzzzzz", &key(1), by),
            Err(NotRunning::BadId("zzzzzzzz".into()))
        );
        let _c = runs.register(
            {
                let mut x = [0xab; 16];
                x[15] = 0x01;
                RequestId::from_bytes(x)
            },
            key(1),
        );
        assert_eq!(
            runs.cancel("abababab", &key(1), by),
            Err(NotRunning::Ambiguous("abababab".into()))
        );
    }
}
