//! Freshness and replay defence: a request is admitted once, and only while it is fresh.
//!
//! An id must be remembered for exactly as long as its request could still pass the freshness check;
//! after that the freshness check alone rejects it, so the entry can be pruned. The daemon persists
//! [`ReplayWindow::entries`] and [`restore`](ReplayWindow::restore)s them at start-up, so a restart
//! does not reopen the window (fwknop-grade, DESIGN §3).

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use crate::error::ProtoError;
use crate::keys::PublicKey;
use crate::message::{Request, RequestId};

/// The set of request ids admitted within the freshness window, with their issue times.
///
/// Time inside the window never runs backwards: a `now_ms` earlier than one already seen is treated as
/// the latest one seen. Otherwise stepping the wall clock back would make pruned ids fresh again. The
/// price is that after the clock is stepped back, requests are judged by the later time until the
/// clock catches up.
///
/// Costs: [`admit`](Self::admit) is O(log n) plus amortised O(log n) per pruned entry.
pub struct ReplayWindow {
    window_ms: u64,
    capacity: usize,
    /// The most live ids one sender may have.
    per_sender: usize,
    /// The latest `now_ms` observed.
    latest_now_ms: u64,
    /// Each live id, its `issued_at_ms` and its sender (unknown for restored entries).
    issued_at: HashMap<RequestId, (u64, Option<PublicKey>)>,
    /// Live ids per sender.
    by_sender: HashMap<PublicKey, usize>,
    /// The same entries ordered by issue time, so expired ones are found from the front.
    by_issue: BTreeSet<(u64, RequestId)>,
}

impl ReplayWindow {
    /// A window accepting requests issued within `window_ms` of now (either side), remembering at most
    /// `capacity` live ids. The daemon's defaults are 60 000 ms and about a million ids.
    #[must_use]
    pub fn new(window_ms: u64, capacity: usize) -> Self {
        Self {
            window_ms,
            capacity,
            per_sender: capacity,
            latest_now_ms: 0,
            issued_at: HashMap::new(),
            by_sender: HashMap::new(),
            by_issue: BTreeSet::new(),
        }
    }

    /// The same window with at most `per_sender` live ids from any one sender, so that one
    /// sender cannot fill the window and turn every other sender away
    /// ([`ProtoError::ReplayShareFull`]).
    #[must_use]
    pub fn with_share(mut self, per_sender: usize) -> Self {
        self.per_sender = per_sender.min(self.capacity);
        self
    }

    /// Admits a decoded request from `sender` at `now_ms`, recording its id, or says why not:
    ///
    /// - [`ProtoError::WrongHost`] if `request.host` is not `host_name` (no cross-host replays);
    /// - [`ProtoError::Stale`] if it was issued more than the window ago;
    /// - [`ProtoError::Future`] if it claims to be issued more than the window ahead;
    /// - [`ProtoError::Replay`] if its id was already admitted;
    /// - [`ProtoError::ReplayWindowFull`] if `capacity` live ids are remembered, or
    ///   [`ProtoError::ReplayShareFull`] if `sender` has its whole share of them. This fails
    ///   closed: a live entry is never evicted to make room, since forgetting it would allow its
    ///   replay.
    ///
    /// Entries that can no longer be admitted (`issued_at + window < now`) are pruned first.
    pub fn admit(
        &mut self,
        now_ms: u64,
        host_name: &str,
        sender: &PublicKey,
        request: &Request,
    ) -> Result<(), ProtoError> {
        let now_ms = self.observe(now_ms);
        self.prune_expired(now_ms);
        if request.host != host_name {
            return Err(ProtoError::WrongHost {
                expected: host_name.to_owned(),
                got: request.host.clone(),
            });
        }
        let issued_at_ms = request.issued_at_ms;
        let age_ms = now_ms.saturating_sub(issued_at_ms);
        if age_ms > self.window_ms {
            return Err(ProtoError::Stale { age_ms });
        }
        let ahead_ms = issued_at_ms.saturating_sub(now_ms);
        if ahead_ms > self.window_ms {
            return Err(ProtoError::Future { ahead_ms });
        }
        if self.issued_at.contains_key(&request.id) {
            return Err(ProtoError::Replay);
        }
        if self.issued_at.len() >= self.capacity {
            return Err(ProtoError::ReplayWindowFull);
        }
        if self.by_sender.get(sender).copied().unwrap_or(0) >= self.per_sender {
            return Err(ProtoError::ReplayShareFull {
                share: self.per_sender,
            });
        }
        self.record(request.id, issued_at_ms, Some(*sender));
        Ok(())
    }

    /// The remembered entries `(id, issued_at_ms)`, oldest issue time first, for the daemon to persist.
    /// Entries expire lazily; call [`prune`](Self::prune) first to leave expired ones out.
    pub fn entries(&self) -> impl Iterator<Item = (RequestId, u64)> + '_ {
        self.by_issue.iter().map(|&(issued_at_ms, id)| (id, issued_at_ms))
    }

    /// Live ids remembered for `sender` (restored entries count for no sender).
    #[must_use]
    pub fn held_by(&self, sender: &PublicKey) -> usize {
        self.by_sender.get(sender).copied().unwrap_or(0)
    }

    /// Re-remembers persisted entries after a restart, dropping those already expired at `now_ms`.
    ///
    /// Every live entry is kept, even beyond `capacity` (forgetting one would allow its replay);
    /// [`admit`](Self::admit) then fails closed until enough have expired. An id given twice keeps the
    /// later issue time.
    pub fn restore(&mut self, now_ms: u64, entries: impl IntoIterator<Item = (RequestId, u64)>) {
        let now_ms = self.observe(now_ms);
        for (id, issued_at_ms) in entries {
            if !self.is_expired(issued_at_ms, now_ms) {
                self.record(id, issued_at_ms, None);
            }
        }
        self.prune_expired(now_ms);
    }

    /// Forgets entries that can no longer be admitted at `now_ms`. [`admit`](Self::admit) does this
    /// itself; call it before persisting [`entries`](Self::entries).
    pub fn prune(&mut self, now_ms: u64) {
        let now_ms = self.observe(now_ms);
        self.prune_expired(now_ms);
    }

    /// How many entries are remembered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.issued_at.len()
    }

    /// Whether no entries are remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.issued_at.is_empty()
    }

    /// The freshness window, in milliseconds.
    #[must_use]
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The most live entries [`admit`](Self::admit) will hold.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Advances the window's clock to `now_ms` unless it is already later; returns the window's time.
    fn observe(&mut self, now_ms: u64) -> u64 {
        self.latest_now_ms = self.latest_now_ms.max(now_ms);
        self.latest_now_ms
    }

    /// Whether a request issued at `issued_at_ms` is too old to admit at `now_ms`.
    fn is_expired(&self, issued_at_ms: u64, now_ms: u64) -> bool {
        issued_at_ms.saturating_add(self.window_ms) < now_ms
    }

    fn prune_expired(&mut self, now_ms: u64) {
        while let Some(&(issued_at_ms, id)) = self.by_issue.first() {
            if !self.is_expired(issued_at_ms, now_ms) {
                break;
            }
            self.by_issue.pop_first();
            if let Some((_, Some(sender))) = self.issued_at.remove(&id) {
                self.release(&sender);
            }
        }
    }

    /// Remembers `id`, keeping the later issue time if it is already remembered (with the sender
    /// it was first remembered for).
    fn record(&mut self, id: RequestId, issued_at_ms: u64, sender: Option<PublicKey>) {
        match self.issued_at.entry(id) {
            Entry::Occupied(mut known) => {
                let (at, owner) = *known.get();
                if at >= issued_at_ms {
                    return;
                }
                self.by_issue.remove(&(at, id));
                known.insert((issued_at_ms, owner));
            }
            Entry::Vacant(new) => {
                new.insert((issued_at_ms, sender));
                if let Some(sender) = sender {
                    *self.by_sender.entry(sender).or_insert(0) += 1;
                }
            }
        }
        self.by_issue.insert((issued_at_ms, id));
    }

    /// One of `sender`'s ids expired.
    fn release(&mut self, sender: &PublicKey) {
        if let Some(n) = self.by_sender.get_mut(sender) {
            *n -= 1;
            if *n == 0 {
                self.by_sender.remove(sender);
            }
        }
    }
}

impl fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("window_ms", &self.window_ms)
            .field("capacity", &self.capacity)
            .field("per_sender", &self.per_sender)
            .field("len", &self.len())
            .field("latest_now_ms", &self.latest_now_ms)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::TestRng;

    const WINDOW: u64 = 60_000;
    const T0: u64 = 1_700_000_000_000;
    const HOST: &str = "web-1";
    const ALICE: PublicKey = PublicKey::from_bytes([1; 32]);
    const BOB: PublicKey = PublicKey::from_bytes([2; 32]);

    fn request(rng: &mut TestRng, issued_at_ms: u64) -> Request {
        Request::new(rng, issued_at_ms, HOST, None, "uptime", vec![])
    }

    #[test]
    fn fresh_requests_are_admitted_once() {
        let mut rng = TestRng::seeded(40);
        let mut window = ReplayWindow::new(WINDOW, 100);
        let first = request(&mut rng, T0);
        assert_eq!(window.admit(T0, HOST, &ALICE, &first), Ok(()));
        assert_eq!(
            window.admit(T0 + 1, HOST, &ALICE, &first),
            Err(ProtoError::Replay)
        );
        assert_eq!(
            window.admit(T0 + WINDOW, HOST, &ALICE, &first),
            Err(ProtoError::Replay)
        );
        assert_eq!(window.len(), 1);
        assert_eq!(window.admit(T0, HOST, &ALICE, &request(&mut rng, T0)), Ok(()));
        assert_eq!(window.len(), 2);
    }

    #[test]
    fn the_window_boundaries_are_inclusive() {
        let mut rng = TestRng::seeded(41);
        let mut window = ReplayWindow::new(WINDOW, 100);
        assert_eq!(
            window.admit(T0, HOST, &ALICE, &request(&mut rng, T0 - WINDOW)),
            Ok(())
        );
        assert_eq!(
            window.admit(T0, HOST, &ALICE, &request(&mut rng, T0 + WINDOW)),
            Ok(())
        );
    }

    #[test]
    fn stale_requests_are_rejected() {
        let mut rng = TestRng::seeded(42);
        let mut window = ReplayWindow::new(WINDOW, 100);
        let old = request(&mut rng, T0 - WINDOW - 1);
        assert_eq!(
            window.admit(T0, HOST, &ALICE, &old),
            Err(ProtoError::Stale { age_ms: WINDOW + 1 })
        );
        let ancient = request(&mut rng, 0);
        assert_eq!(
            window.admit(T0, HOST, &ALICE, &ancient),
            Err(ProtoError::Stale { age_ms: T0 })
        );
        assert!(window.is_empty(), "rejected requests are not recorded");
    }

    #[test]
    fn future_requests_are_rejected() {
        let mut rng = TestRng::seeded(43);
        let mut window = ReplayWindow::new(WINDOW, 100);
        let early = request(&mut rng, T0 + WINDOW + 1);
        assert_eq!(
            window.admit(T0, HOST, &ALICE, &early),
            Err(ProtoError::Future { ahead_ms: WINDOW + 1 })
        );
        let far = request(&mut rng, u64::MAX);
        assert_eq!(
            window.admit(T0, HOST, &ALICE, &far),
            Err(ProtoError::Future {
                ahead_ms: u64::MAX - T0
            })
        );
        assert!(window.is_empty());
    }

    #[test]
    fn requests_for_another_host_are_rejected_and_not_recorded() {
        let mut rng = TestRng::seeded(44);
        let mut window = ReplayWindow::new(WINDOW, 100);
        let elsewhere = Request::new(&mut rng, T0, "web-2", None, "uptime", vec![]);
        assert_eq!(
            window.admit(T0, HOST, &ALICE, &elsewhere),
            Err(ProtoError::WrongHost {
                expected: HOST.into(),
                got: "web-2".into()
            })
        );
        assert!(window.is_empty());
    }

    #[test]
    fn a_full_window_fails_closed() {
        let mut rng = TestRng::seeded(45);
        let mut window = ReplayWindow::new(WINDOW, 3);
        let admitted: Vec<Request> = (0..3).map(|i| request(&mut rng, T0 + i)).collect();
        for r in &admitted {
            assert_eq!(window.admit(T0, HOST, &ALICE, r), Ok(()));
        }
        let newcomer = request(&mut rng, T0);
        assert_eq!(
            window.admit(T0 + 10, HOST, &ALICE, &newcomer),
            Err(ProtoError::ReplayWindowFull)
        );
        // Nothing was evicted: every admitted id is still a replay.
        for r in &admitted {
            assert_eq!(window.admit(T0 + 10, HOST, &ALICE, r), Err(ProtoError::Replay));
        }
        // Once the oldest has expired there is room again.
        assert_eq!(
            window.admit(T0 + WINDOW + 1, HOST, &ALICE, &request(&mut rng, T0 + WINDOW)),
            Ok(())
        );
        assert_eq!(window.len(), 3);

        let mut closed = ReplayWindow::new(WINDOW, 0);
        assert_eq!(
            closed.admit(T0, HOST, &ALICE, &newcomer),
            Err(ProtoError::ReplayWindowFull)
        );
    }

    #[test]
    fn expired_entries_are_pruned_and_stay_rejected_as_stale() {
        let mut rng = TestRng::seeded(46);
        let mut window = ReplayWindow::new(WINDOW, 100);
        let old = request(&mut rng, T0);
        let newer = request(&mut rng, T0 + 30_000);
        assert_eq!(window.admit(T0, HOST, &ALICE, &old), Ok(()));
        assert_eq!(window.admit(T0 + 30_000, HOST, &ALICE, &newer), Ok(()));

        let later = T0 + WINDOW + 1;
        assert_eq!(
            window.admit(later, HOST, &ALICE, &request(&mut rng, later)),
            Ok(())
        );
        assert_eq!(window.len(), 2, "the first entry was pruned");
        assert!(window.entries().all(|(id, _)| id != old.id));
        assert_eq!(
            window.admit(later, HOST, &ALICE, &old),
            Err(ProtoError::Stale { age_ms: WINDOW + 1 })
        );
        assert_eq!(window.admit(later, HOST, &ALICE, &newer), Err(ProtoError::Replay));
    }

    #[test]
    fn stepping_the_clock_back_does_not_reopen_the_window() {
        let mut rng = TestRng::seeded(47);
        let mut window = ReplayWindow::new(WINDOW, 100);
        let old = request(&mut rng, T0);
        assert_eq!(window.admit(T0, HOST, &ALICE, &old), Ok(()));
        window.prune(T0 + WINDOW + 1);
        assert!(window.is_empty());
        // The wall clock jumps back; the pruned id must not become admissible again.
        assert_eq!(
            window.admit(T0 + 10, HOST, &ALICE, &old),
            Err(ProtoError::Stale { age_ms: WINDOW + 1 })
        );
    }

    #[test]
    fn replays_are_rejected_after_restore() {
        let mut rng = TestRng::seeded(48);
        let mut before = ReplayWindow::new(WINDOW, 100);
        let expired = request(&mut rng, T0);
        let live = request(&mut rng, T0 + 50_000);
        assert_eq!(before.admit(T0, HOST, &ALICE, &expired), Ok(()));
        assert_eq!(before.admit(T0 + 50_000, HOST, &ALICE, &live), Ok(()));
        let persisted: Vec<(RequestId, u64)> = before.entries().collect();
        assert_eq!(persisted, vec![(expired.id, T0), (live.id, T0 + 50_000)]);

        let restart = T0 + WINDOW + 5;
        let mut after = ReplayWindow::new(WINDOW, 100);
        after.restore(restart, persisted);
        assert_eq!(after.entries().collect::<Vec<_>>(), vec![(live.id, T0 + 50_000)]);
        assert_eq!(after.admit(restart, HOST, &ALICE, &live), Err(ProtoError::Replay));
        assert_eq!(
            after.admit(restart, HOST, &ALICE, &expired),
            Err(ProtoError::Stale { age_ms: WINDOW + 5 })
        );
    }

    #[test]
    fn restore_keeps_every_live_entry_and_the_later_of_duplicates() {
        let mut rng = TestRng::seeded(49);
        let ids: Vec<RequestId> = (0..5).map(|_| RequestId::random(&mut rng)).collect();
        let mut window = ReplayWindow::new(WINDOW, 2);
        window.restore(T0, ids.iter().map(|&id| (id, T0)));
        assert_eq!(window.len(), 5, "live entries are kept beyond capacity");
        assert_eq!(
            window.admit(T0, HOST, &ALICE, &request(&mut rng, T0)),
            Err(ProtoError::ReplayWindowFull)
        );

        window.restore(T0, [(ids[0], T0 + 20_000), (ids[0], T0 + 10_000)]);
        assert_eq!(window.len(), 5);
        assert!(window.entries().any(|entry| entry == (ids[0], T0 + 20_000)));
        window.prune(T0 + WINDOW + 1);
        assert_eq!(window.entries().collect::<Vec<_>>(), vec![(ids[0], T0 + 20_000)]);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let mut rng = TestRng::seeded(50);
        let mut forever = ReplayWindow::new(u64::MAX, 10);
        assert_eq!(
            forever.admit(u64::MAX, HOST, &ALICE, &request(&mut rng, 0)),
            Ok(())
        );
        assert_eq!(
            forever.admit(0, HOST, &ALICE, &request(&mut rng, u64::MAX)),
            Ok(())
        );
        forever.prune(u64::MAX);
        assert_eq!(forever.len(), 2);

        let mut instant = ReplayWindow::new(0, 10);
        assert_eq!(instant.admit(T0, HOST, &ALICE, &request(&mut rng, T0)), Ok(()));
        assert_eq!(
            instant.admit(T0, HOST, &ALICE, &request(&mut rng, T0 + 1)),
            Err(ProtoError::Future { ahead_ms: 1 })
        );
        instant.prune(T0 + 1);
        assert!(instant.is_empty());
    }

    #[test]
    fn many_entries_prune_in_order() {
        let mut rng = TestRng::seeded(51);
        let mut window = ReplayWindow::new(WINDOW, 100_000);
        for i in 0..10_000u64 {
            let now = T0 + i * 100;
            assert_eq!(window.admit(now, HOST, &ALICE, &request(&mut rng, now)), Ok(()));
        }
        // Entries issued at or after now - window survive: 601 of them.
        assert_eq!(window.len(), 601);
        let issue_times: Vec<u64> = window.entries().map(|(_, t)| t).collect();
        assert!(issue_times.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(window.window_ms(), WINDOW);
        assert_eq!(window.capacity(), 100_000);
    }

    #[test]
    fn one_sender_cannot_take_the_whole_window() {
        let mut rng = TestRng::seeded(41);
        let mut window = ReplayWindow::new(WINDOW, 10).with_share(3);
        for _ in 0..3 {
            assert_eq!(window.admit(T0, HOST, &ALICE, &request(&mut rng, T0)), Ok(()));
        }
        let fourth = request(&mut rng, T0);
        assert_eq!(
            window.admit(T0, HOST, &ALICE, &fourth),
            Err(ProtoError::ReplayShareFull { share: 3 })
        );
        assert_eq!(window.held_by(&ALICE), 3);
        // Issued in the future, still one of alice's: the share holds whatever the time claimed.
        assert_eq!(
            window.admit(T0, HOST, &ALICE, &request(&mut rng, T0 + WINDOW)),
            Err(ProtoError::ReplayShareFull { share: 3 })
        );
        assert_eq!(window.admit(T0, HOST, &BOB, &request(&mut rng, T0)), Ok(()));
        // Alice's ids expire and give her share back; the refused one was never recorded.
        let later = T0 + WINDOW + 1;
        assert_eq!(
            window.admit(later, HOST, &ALICE, &fourth),
            Err(ProtoError::Stale { age_ms: WINDOW + 1 })
        );
        assert_eq!(window.held_by(&ALICE), 0);
        assert_eq!(
            window.admit(later, HOST, &ALICE, &request(&mut rng, later)),
            Ok(())
        );
        assert_eq!(window.held_by(&ALICE), 1);
    }
}
