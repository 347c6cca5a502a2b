//! Remembered decisions of one policy revision.
//!
//! Only a policy set that [`purity::check`](super::purity::check) finds cacheable gets a cache: its
//! decision depends on nothing but the input less its varying parts (`VARYING_INPUT_PARTS`: `request.id`, `now_ns`),
//! the policy and the data, all fixed for one [`Policy`](super::Policy). So the key is the input
//! without those parts, serialised whole (a field added to the input later is in the key without
//! anyone having to remember it), and a reloaded policy starts with an empty cache. What the cache
//! stores is the SHA-256 of that serialisation, not the serialisation: 32 bytes an entry whatever
//! the input, and two inputs share an entry only if they collide under SHA-256.
//!
//! The cache holds two generations of at most half the capacity each. Entries go into the young
//! one; when it is full it becomes the old one and the previous old one is dropped; a hit in the
//! old generation moves the entry back to the young one. That keeps what is used, bounds memory,
//! and costs one hash lookup or two per decision. Only decisions that evaluated without an error
//! are kept: an error (such as running out of time) may not happen again.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::{Decision, PolicyInput};

/// Decisions kept when the configuration does not say (`host.decision_cache`).
pub const DEFAULT_CAPACITY: usize = 4096;

/// Inputs whose JSON form (less the varying parts) is longer than this are evaluated every time:
/// a decision's reasons may quote the input, and the cache's memory is to stay small however
/// large the arguments clients send.
pub const MAX_KEY_BYTES: usize = 4 * 1024;

/// A cache key: the SHA-256 of the input's JSON form less its varying parts.
pub(super) type Key = [u8; 32];

/// A bounded map from input (less its varying parts) to decision.
pub(super) struct DecisionCache {
    /// Entries per generation: half the capacity, at least one.
    generation: usize,
    inner: Mutex<Generations>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct Generations {
    young: HashMap<Key, Decision>,
    old: HashMap<Key, Decision>,
}

/// What a cache has done since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheStats {
    /// Decisions answered from the cache.
    pub hits: u64,
    /// Decisions evaluated with a cache in place (and kept when their key was small enough).
    pub misses: u64,
    /// Decisions held now.
    pub entries: usize,
    /// The most it holds.
    pub capacity: usize,
}

impl DecisionCache {
    /// A cache of at most `capacity` decisions (at least 2).
    pub(super) fn new(capacity: usize) -> Self {
        DecisionCache {
            generation: (capacity / 2).max(1),
            inner: Mutex::new(Generations::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The key of `input`: the SHA-256 of its JSON form with the varying parts blanked
    /// ([`blank_varying`]); `None` when that form is longer than [`MAX_KEY_BYTES`]. The input is
    /// serialised straight into the hash: building a JSON tree first took half of a hit's time.
    pub(super) fn key(input: &PolicyInput) -> Option<Key> {
        let mut stable = input.clone();
        blank_varying(&mut stable);
        let mut hasher = Hashing {
            digest: Sha256::new(),
            written: 0,
        };
        serde_json::to_writer(&mut hasher, &stable).ok()?;
        (hasher.written <= MAX_KEY_BYTES).then(|| hasher.digest.finalize().into())
    }

    /// The decision kept for `key`, if any.
    pub(super) fn get(&self, key: &Key) -> Option<Decision> {
        let mut inner = self.lock();
        let mut retired = None;
        let found = match inner.young.get(key) {
            Some(decision) => Some(decision.clone()),
            None => inner.old.remove(key).map(|decision| {
                let copy = decision.clone();
                retired = self.put(&mut inner, *key, decision);
                copy
            }),
        };
        drop(inner);
        drop(retired);
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps `decision` for `key`.
    pub(super) fn insert(&self, key: Key, decision: Decision) {
        let mut inner = self.lock();
        let retired = self.put(&mut inner, key, decision);
        drop(inner);
        drop(retired);
    }

    /// Counts a decision evaluated because its key was too long to keep.
    pub(super) fn note_uncacheable(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn stats(&self) -> CacheStats {
        let inner = self.lock();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: inner.young.len() + inner.old.len(),
            capacity: self.generation * 2,
        }
    }

    /// Puts an entry in the young generation, first retiring it to old when full. Returns the
    /// generation that retirement dropped, for the caller to free after unlocking: freeing
    /// thousands of entries is no work to do under the lock every decision takes.
    fn put(&self, inner: &mut Generations, key: Key, decision: Decision) -> Option<HashMap<Key, Decision>> {
        let mut retired = None;
        if inner.young.len() >= self.generation && !inner.young.contains_key(&key) {
            let young = std::mem::take(&mut inner.young);
            retired = Some(std::mem::replace(&mut inner.old, young));
        }
        inner.young.insert(key, decision);
        retired
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // A panic while holding the lock leaves whole entries behind (each insert is one call),
        // so the map is still sound to use.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Gives every one of the varying parts (`VARYING_INPUT_PARTS`) one fixed value (checked by a test), so that
/// two inputs differing only there serialise alike.
fn blank_varying(input: &mut PolicyInput) {
    input.now_ns = 0;
    input.request.id.clear();
}

/// Feeds what serde writes to SHA-256, counting the bytes.
struct Hashing {
    digest: Sha256,
    written: usize,
}

impl Write for Hashing {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.digest.update(bytes);
        self.written += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::purity::VARYING_INPUT_PARTS;
    use super::*;
    use crate::policy::Reasons;

    fn deny(reason: &str) -> Decision {
        Decision::Deny(Reasons(vec![reason.to_owned()]))
    }

    fn key(n: usize) -> Key {
        Sha256::digest(n.to_string()).into()
    }

    #[test]
    fn holds_at_most_its_capacity_and_keeps_what_is_used() {
        let cache = DecisionCache::new(4);
        cache.insert(key(0), deny("0"));
        for n in 1..100 {
            cache.insert(key(n), deny(&n.to_string()));
            // key 0 is used between every two inserts, so it survives every rotation
            assert_eq!(cache.get(&key(0)), Some(deny("0")), "after {n}");
            assert!(cache.stats().entries <= 4);
        }
        assert_eq!(cache.get(&key(1)), None, "an entry nobody used was dropped");
        assert_eq!(cache.get(&key(99)), Some(deny("99")));
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.capacity), (100, 1, 4));
    }

    #[test]
    fn the_key_leaves_out_exactly_the_request_id_and_the_clock() {
        let a = super::super::tests::input("alice", &["users"], "basic", "echo");
        let mut b = a.clone();
        b.request.id = "ffffffffffffffffffffffffffffffff".to_owned();
        b.now_ns = 42;
        assert_eq!(DecisionCache::key(&a), DecisionCache::key(&b));
        let changes: [fn(&mut PolicyInput); 10] = [
            |i| i.client.name.push('x'),
            |i| i.client.groups.push("ops".into()),
            |i| i.request.args.push("more".into()),
            |i| i.request.command.push('x'),
            |i| i.request.cluster.push('x'),
            |i| i.request.transport = "sqs".into(),
            |i| i.request.source_ip = Some("10.0.0.1".into()),
            |i| i.request.reason = Some("INC-1".into()),
            |i| i.module.digest.push('0'),
            |i| {
                i.host.labels.insert("role".into(), "db".into());
            },
        ];
        for (n, change) in changes.iter().enumerate() {
            let mut c = a.clone();
            change(&mut c);
            assert_ne!(DecisionCache::key(&a), DecisionCache::key(&c), "change {n}");
        }
    }

    #[test]
    fn blanking_covers_every_varying_part_and_nothing_else() {
        let input = super::super::tests::input("alice", &["users"], "basic", "echo");
        let mut blanked = input.clone();
        blank_varying(&mut blanked);
        let mut before = serde_json::to_value(&input).expect("serialises");
        let mut after = serde_json::to_value(&blanked).expect("serialises");
        for part in VARYING_INPUT_PARTS {
            let pointer = format!("/{}", part.replace('.', "/"));
            let original = before.pointer_mut(&pointer).expect("a part of the input");
            assert!(
                *original != serde_json::json!("") && *original != serde_json::json!(0),
                "{part}: the test input must not already hold the blank value"
            );
            *original = serde_json::Value::Null;
            let blank = after.pointer_mut(&pointer).expect("still there");
            assert!(
                *blank == serde_json::json!("") || *blank == serde_json::json!(0),
                "{part} is not blanked: {blank}"
            );
            *blank = serde_json::Value::Null;
        }
        assert_eq!(before, after, "blanking changed something not listed as varying");
    }

    #[test]
    fn a_key_over_the_limit_is_not_made() {
        let mut input = super::super::tests::input("alice", &["users"], "basic", "echo");
        input.request.args = vec!["x".repeat(MAX_KEY_BYTES)];
        assert_eq!(DecisionCache::key(&input), None);
    }
}
