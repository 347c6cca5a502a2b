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
/// The part of [`MAX_ENTRIES`] and [`MAX_BYTES`] one client's requests may take: beyond it a
/// client's own oldest answers go, never another client's, so a client that floods cannot
/// evict the answers other clients' redeliveries need.
pub const SHARE_DIVISOR: usize = 4;

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

/// The recent answers, bounded by age, and by count and bytes both per client and in all.
#[derive(Debug)]
pub struct Answers {
    max_age_ms: u64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Each sender's requests, in the order they began.
    senders: HashMap<PublicKey, Sender>,
    /// Entries in all.
    entries: usize,
    /// Bytes of answers in all.
    bytes: usize,
}

#[derive(Debug, Default)]
struct Sender {
    entries: HashMap<RequestId, Entry>,
    /// Ids in the order they began, with the time they began.
    order: VecDeque<(u64, RequestId)>,
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
        inner.expire(&sender, now_ms.saturating_sub(self.max_age_ms));
        let own = inner.senders.entry(sender).or_default();
        if let Some(entry) = own.entries.get(&id) {
            return entry.answer.clone().map_or(Seen::Running, Seen::Answered);
        }
        own.entries.insert(
            id,
            Entry {
                at_ms: now_ms,
                answer: None,
            },
        );
        own.order.push_back((now_ms, id));
        inner.entries += 1;
        inner.enforce(&sender);
        Seen::New
    }

    /// Stores the answer to a request [`begin`](Self::begin) found new; `None` when nothing was
    /// answered (it is forgotten, so a later delivery is judged afresh).
    pub fn finish(&self, sender: PublicKey, id: RequestId, answer: Option<&[u8]>) {
        let mut inner = self.lock();
        let Some(own) = inner.senders.get_mut(&sender) else {
            return;
        };
        let Some(answer) = answer else {
            if let Some(gone) = own.entries.remove(&id) {
                let len = gone.answer.map_or(0, |a| a.len());
                own.bytes -= len;
                inner.bytes -= len;
                inner.entries -= 1;
            }
            return;
        };
        let Some(entry) = own.entries.get_mut(&id) else {
            return;
        };
        // An answer stored twice replaces the first: count the bytes once.
        let old = entry
            .answer
            .replace(Arc::new(answer.to_vec()))
            .map_or(0, |a| a.len());
        own.bytes = own.bytes - old + answer.len();
        inner.bytes = inner.bytes - old + answer.len();
        inner.enforce(&sender);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    /// Forgets `sender`'s entries that began before `before_ms`.
    fn expire(&mut self, sender: &PublicKey, before_ms: u64) {
        while self
            .senders
            .get(sender)
            .and_then(|s| s.order.front())
            .is_some_and(|(at, _)| *at < before_ms)
        {
            self.pop_oldest(sender);
        }
    }

    /// Keeps `sender` within its share, then everyone within the totals, the heaviest sender
    /// giving up its oldest entry first.
    fn enforce(&mut self, sender: &PublicKey) {
        let over_share =
            |s: &Sender| s.entries.len() > MAX_ENTRIES / SHARE_DIVISOR || s.bytes > MAX_BYTES / SHARE_DIVISOR;
        while self.senders.get(sender).is_some_and(over_share) {
            self.pop_oldest(sender);
        }
        while self.entries > MAX_ENTRIES || self.bytes > MAX_BYTES {
            let Some(heaviest) = self
                .senders
                .iter()
                .max_by_key(|(_, s)| (s.bytes, s.entries.len()))
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.pop_oldest(&heaviest);
        }
    }

    fn pop_oldest(&mut self, sender: &PublicKey) {
        let Some(own) = self.senders.get_mut(sender) else {
            return;
        };
        let Some((at, id)) = own.order.pop_front() else {
            self.senders.remove(sender);
            return;
        };
        // The id may have been forgotten and begun again since; only remove that same entry.
        if own.entries.get(&id).is_some_and(|e| e.at_ms == at)
            && let Some(gone) = own.entries.remove(&id)
        {
            let len = gone.answer.map_or(0, |a| a.len());
            own.bytes -= len;
            self.bytes -= len;
            self.entries -= 1;
        }
        if own.order.is_empty() {
            self.senders.remove(sender);
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

    fn id_n(n: usize) -> RequestId {
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&(n as u64).to_le_bytes());
        RequestId::from_bytes(raw)
    }

    #[test]
    fn entries_expire_and_stay_within_bounds() {
        let a = Answers::new(1_000);
        assert_eq!(a.begin(0, key(1), id(1)), Seen::New);
        a.finish(key(1), id(1), Some(b"x"));
        assert_eq!(a.begin(1_001, key(1), id(1)), Seen::New, "expired");

        // Many clients together stay within the totals.
        let a = Answers::new(u64::MAX);
        for n in 0..=MAX_ENTRIES {
            a.begin(0, key(u8::try_from(n % 8).expect("small")), id_n(n));
        }
        assert_eq!(a.lock().entries, MAX_ENTRIES);
        assert_eq!(a.begin(0, key(0), id_n(0)), Seen::New, "oldest went");

        let a = Answers::new(u64::MAX);
        let big = vec![0u8; MAX_BYTES / SHARE_DIVISOR / 2 + 1];
        a.begin(0, key(1), id(1));
        a.finish(key(1), id(1), Some(&big));
        a.begin(0, key(1), id(2));
        a.finish(key(1), id(2), Some(&big));
        assert!(a.lock().bytes <= MAX_BYTES / SHARE_DIVISOR);
        assert_eq!(a.begin(0, key(1), id(1)), Seen::New, "the older answer went");
        assert!(matches!(a.begin(0, key(1), id(2)), Seen::Answered(_)));
    }

    #[test]
    fn an_answer_stored_twice_is_counted_once() {
        let a = Answers::new(u64::MAX);
        a.begin(0, key(1), id(1));
        a.finish(key(1), id(1), Some(&[0u8; 1000]));
        a.finish(key(1), id(1), Some(&[0u8; 600]));
        assert_eq!(a.lock().bytes, 600);
        a.finish(key(1), id(1), None);
        let inner = a.lock();
        assert_eq!((inner.bytes, inner.entries), (0, 0), "nothing left counted");
    }

    #[test]
    fn a_flooding_client_evicts_only_its_own_answers() {
        let a = Answers::new(u64::MAX);
        a.begin(0, key(2), id(7));
        a.finish(key(2), id(7), Some(b"bob's answer"));
        // Alice sends ten times the whole cache's worth of requests, with answers.
        for n in 0..MAX_ENTRIES * 10 {
            a.begin(1, key(1), id_n(n));
            a.finish(key(1), id_n(n), Some(&[0u8; 100]));
        }
        assert_eq!(
            a.begin(2, key(2), id(7)),
            Seen::Answered(Arc::new(b"bob's answer".to_vec())),
            "bob's redelivery still gets his answer"
        );
        let inner = a.lock();
        assert!(inner.senders[&key(1)].entries.len() <= MAX_ENTRIES / SHARE_DIVISOR);
        assert!(inner.entries <= MAX_ENTRIES && inner.bytes <= MAX_BYTES);
    }
}
