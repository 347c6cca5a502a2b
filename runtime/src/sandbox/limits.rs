//! What bounds a run besides its deadline: the memory limiter of each store, and the thread
//! that advances the engine's epoch (wasm code's time limit and cancel are checked at each tick).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;

use super::{EPOCH_TICK, MAX_TABLE_ELEMENTS};

/// A memory limiter that remembers it said no, so a trap can be reported as 3003.
pub(super) struct MemoryCap {
    pub(super) max_bytes: usize,
    pub(super) hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes reached",
                self.max_bytes
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// A thread that advances the engine's epoch every [`EPOCH_TICK`] while some run holds it
/// ([`EpochTicker::hold`]) and for [`LINGER`] after, and sleeps otherwise; stops when dropped.
///
/// An idle daemon has nothing for the epoch to bound, and a tick every 10 ms would wake it a
/// hundred times a second for nothing. A run's deadline is a number of ticks past the epoch when
/// it starts, so a paused epoch costs it nothing: the ticks it waits for start with its hold.
pub(super) struct EpochTicker {
    shared: Arc<Shared>,
}

/// How long the ticker keeps ticking after the last hold ends before it sleeps: under steady
/// traffic, runs come and go many times a tick, and parking and waking the thread for each lull
/// would cost a wake-up per request.
const LINGER: Duration = Duration::from_millis(200);

/// What the ticker thread and the holds share.
struct Shared {
    /// Runs holding the ticker, and whether the thread sleeps waiting for one.
    holders: Mutex<Holders>,
    /// Signalled when the first run takes a hold, and at stop.
    wake: Condvar,
    stop: AtomicBool,
}

/// Keeps the epoch ticking while it lives: taken by a run before it sets its deadline.
pub(super) struct TickHold {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Holders {
    count: usize,
    parked: bool,
}

impl EpochTicker {
    /// Starts the thread; `tick` advances the epoch (the engine's `increment_epoch`).
    pub(super) fn start(tick: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            holders: Mutex::new(Holders::default()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let theirs = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("sesame-epoch".into())
            .spawn(move || theirs.run(&tick))?;
        Ok(Self { shared })
    }

    /// Keeps the epoch ticking until the hold is dropped.
    pub(super) fn hold(&self) -> TickHold {
        let mut holders = self.shared.lock();
        holders.count += 1;
        if holders.parked {
            holders.parked = false;
            self.shared.wake.notify_one();
        }
        TickHold {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Holders> {
        self.holders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The ticker thread: sleeps while nothing holds it, ticks while something does.
    fn run(&self, tick: &dyn Fn()) {
        loop {
            let mut holders = self.lock();
            while holders.count == 0 && !self.stopped() {
                holders.parked = true;
                holders = self.wake.wait(holders).unwrap_or_else(PoisonError::into_inner);
            }
            holders.parked = false;
            drop(holders);
            if self.stopped() {
                return;
            }
            // Ticks follow the wall clock from the first hold: a sleep overshoots a little each
            // time (10 % on a loaded machine), and counting sleeps let a spinning module run that
            // much past its limit; catching up keeps the epoch within a tick of real time.
            let started = Instant::now();
            let mut ticks: u128 = 0;
            let mut unheld_since: Option<Instant> = None;
            loop {
                std::thread::sleep(EPOCH_TICK);
                if self.stopped() {
                    return;
                }
                let due = started.elapsed().as_nanos() / EPOCH_TICK.as_nanos();
                while ticks < due {
                    tick();
                    ticks += 1;
                }
                if self.lock().count > 0 {
                    unheld_since = None;
                } else if unheld_since.get_or_insert_with(Instant::now).elapsed() >= LINGER {
                    break;
                }
            }
        }
    }
}

impl Drop for TickHold {
    fn drop(&mut self) {
        let mut holders = self.shared.lock();
        holders.count = holders.count.saturating_sub(1);
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _holders = self.shared.lock();
        self.shared.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    fn counting() -> (EpochTicker, Arc<AtomicU64>) {
        let ticks = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&ticks);
        let ticker = EpochTicker::start(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        })
        .expect("ticker thread");
        (ticker, ticks)
    }

    #[test]
    fn the_epoch_stands_still_while_nothing_runs() {
        let (ticker, ticks) = counting();
        std::thread::sleep(EPOCH_TICK * 10);
        assert_eq!(ticks.load(Ordering::Relaxed), 0, "ticked with no run holding it");
        let hold = ticker.hold();
        std::thread::sleep(EPOCH_TICK * 10);
        drop(hold);
        std::thread::sleep(LINGER + EPOCH_TICK * 10);
        let after_hold = ticks.load(Ordering::Relaxed);
        assert!(after_hold >= 3, "only {after_hold} ticks in ten ticks' time");
        std::thread::sleep(EPOCH_TICK * 10);
        assert_eq!(
            ticks.load(Ordering::Relaxed),
            after_hold,
            "ticked after the last hold ended"
        );
    }

    #[test]
    fn a_hold_after_a_pause_counts_from_the_hold_not_from_the_start() {
        // A run's deadline is ticks past the epoch when it starts: a burst of catch-up ticks for
        // the idle time before it would end it early.
        let (ticker, ticks) = counting();
        drop(ticker.hold());
        std::thread::sleep(LINGER + EPOCH_TICK * 20);
        let before = ticks.load(Ordering::Relaxed);
        let hold = ticker.hold();
        let held = Instant::now();
        std::thread::sleep(EPOCH_TICK * 3);
        let gained = ticks.load(Ordering::Relaxed) - before;
        let allowed = held.elapsed().as_nanos() / EPOCH_TICK.as_nanos() + 1;
        assert!(
            u128::from(gained) <= allowed,
            "{gained} ticks in {:?} of hold",
            held.elapsed()
        );
        drop(hold);
    }

    #[test]
    fn dropping_the_ticker_ends_its_thread_even_while_idle() {
        let (ticker, ticks) = counting();
        let weak = Arc::downgrade(&ticker.shared);
        drop(ticker);
        let deadline = Instant::now() + Duration::from_secs(5);
        while weak.upgrade().is_some() {
            assert!(Instant::now() < deadline, "the ticker thread did not end");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(ticks.load(Ordering::Relaxed), 0);
    }
}
