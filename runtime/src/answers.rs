//! Recent answers by request, so a request delivered twice runs once and both deliveries get
//! the same answer.
//!
//! SQS delivers at least once: a message can come twice, and a daemon whose reply did not get
//! through (network error, visibility timeout) sees the request again. The replay window alone
//! would turn the second delivery into error 1003, and the client, which may see that reply first,
//! would never learn the outcome. Instead, while the first delivery runs the second gets no
//! answer (the first one's is on its way), and once it is done the second gets the very same
//! sealed bytes. Only the client can open them, so resending them tells a replaying stranger
//! nothing. After a restart the cache is empty and a duplicate is a plain replay (1003).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use sesame_proto::{PublicKey, RequestId};

/// Entries kept at most.
pub const MAX_ENTRIES: usize = 4096;
/// Bytes of sealed answers kept at most (oldest go first).
pub const MAX_BYTES: usize = 16 << 20;

type Key = (PublicKey, RequestId);

/// What a delivery of a request finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The first delivery: run it, then [`Answers::finish`].
    New,
    /// Another delivery is running it now.
    Running,
    /// It ran; this is the answer that was sent.
    Answered(Arc<Vec<u8>>),
}

/// The recent answers, bounded by age, count and bytes.
#[derive(Debug)]
pub struct Answers {
    max_age_ms: u64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    /// Keys in the order they began, with the time they began.
    order: VecDeque<(u64, Key)>,
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    at_ms: u64,
    answer: Option<Arc<Vec<u8>>>,
}

impl Answers {
    /// Answers are kept for `max_age_ms` (the freshness window: later, a duplicate is stale).
    pub fn new(max_age_ms: u64) -> Self {
        Self {
            max_age_ms,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records a delivery of `id` from `sender` and says whether it is the first.
    pub fn begin(&self, now_ms: u64, sender: PublicKey, id: RequestId) -> Seen {
        let mut inner = self.lock();
        inner.expire(now_ms.saturating_sub(self.max_age_ms));
        if let Some(entry) = inner.entries.get(&(sender, id)) {
            return entry.answer.clone().map_or(Seen::Running, Seen::Answered);
        }
        inner.entries.insert(
            (sender, id),
            Entry {
                at_ms: now_ms,
                answer: None,
            },
        );
        inner.order.push_back((now_ms, (sender, id)));
        while inner.entries.len() > MAX_ENTRIES {
            inner.pop_oldest();
        }
        Seen::New
    }

    /// Stores the answer to a request [`begin`](Self::begin) found new; `None` when nothing was
    /// answered (it is forgotten, so a later delivery is judged afresh).
    pub fn finish(&self, sender: PublicKey, id: RequestId, answer: Option<&[u8]>) {
        let mut inner = self.lock();
        let Some(answer) = answer else {
            inner.entries.remove(&(sender, id));
            return;
        };
        let Some(entry) = inner.entries.get_mut(&(sender, id)) else {
            return;
        };
        let len = answer.len();
        entry.answer = Some(Arc::new(answer.to_vec()));
        inner.bytes += len;
        while inner.bytes > MAX_BYTES && !inner.order.is_empty() {
            inner.pop_oldest();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    fn expire(&mut self, before_ms: u64) {
        while self.order.front().is_some_and(|(at, _)| *at < before_ms) {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        let Some((at, key)) = self.order.pop_front() else {
            return;
        };
        // The key may have been forgotten and begun again since; only remove that same entry.
        if self.entries.get(&key).is_some_and(|e| e.at_ms == at)
            && let Some(gone) = self.entries.remove(&key)
        {
            self.bytes -= gone.answer.map_or(0, |a| a.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PublicKey {
        PublicKey::from_bytes([n; 32])
    }

    fn id(n: u8) -> RequestId {
        RequestId::from_bytes([n; 16])
    }

    #[test]
    fn a_second_delivery_waits_then_gets_the_same_answer() {
        let a = Answers::new(60_000);
        assert_eq!(a.begin(0, key(1), id(1)), Seen::New);
        assert_eq!(a.begin(1, key(1), id(1)), Seen::Running);
        assert_eq!(a.begin(1, key(2), id(1)), Seen::New, "per sender");
        a.finish(key(1), id(1), Some(b"sealed"));
        assert_eq!(
            a.begin(2, key(1), id(1)),
            Seen::Answered(Arc::new(b"sealed".to_vec()))
        );
    }

    #[test]
    fn unanswered_requests_are_forgotten() {
        let a = Answers::new(60_000);
        assert_eq!(a.begin(0, key(1), id(1)), Seen::New);
        a.finish(key(1), id(1), None);
        assert_eq!(a.begin(1, key(1), id(1)), Seen::New);
        a.finish(key(1), id(1), Some(b"x"));
        assert!(matches!(a.begin(2, key(1), id(1)), Seen::Answered(_)));
    }

    #[test]
    fn entries_expire_and_stay_within_bounds() {
        let a = Answers::new(1_000);
        assert_eq!(a.begin(0, key(1), id(1)), Seen::New);
        a.finish(key(1), id(1), Some(b"x"));
        assert_eq!(a.begin(1_001, key(1), id(1)), Seen::New, "expired");

        let a = Answers::new(u64::MAX);
        for n in 0..=MAX_ENTRIES {
            let mut raw = [0u8; 16];
            raw[..8].copy_from_slice(&(n as u64).to_le_bytes());
            a.begin(0, key(1), RequestId::from_bytes(raw));
        }
        assert_eq!(a.lock().entries.len(), MAX_ENTRIES);
        assert_eq!(
            a.begin(0, key(1), RequestId::from_bytes([0; 16])),
            Seen::New,
            "oldest went"
        );

        let a = Answers::new(u64::MAX);
        let big = vec![0u8; MAX_BYTES / 2 + 1];
        a.begin(0, key(1), id(1));
        a.finish(key(1), id(1), Some(&big));
        a.begin(0, key(1), id(2));
        a.finish(key(1), id(2), Some(&big));
        assert!(a.lock().bytes <= MAX_BYTES);
        assert_eq!(a.begin(0, key(1), id(1)), Seen::New, "the older answer went");
        assert!(matches!(a.begin(0, key(1), id(2)), Seen::Answered(_)));
    }
}
