//! What bounds a run besides its deadline: the memory limiter of each store, and the thread
//! that advances the engine's epoch (wasm code's time limit and cancel are checked at each tick).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use wasmtime::{Engine, ResourceLimiter};

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

/// A thread that advances the engine's epoch every [`EPOCH_TICK`]; stops when dropped.
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(super) fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("sesame-epoch".into())
            .spawn(move || {
                // Ticks follow the wall clock: a sleep overshoots a little each time (10 % on
                // a loaded machine), and counting sleeps let a spinning module run that much
                // past its limit; catching up keeps the epoch within a tick of real time.
                let started = Instant::now();
                let mut ticks: u128 = 0;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    let due = started.elapsed().as_nanos() / EPOCH_TICK.as_nanos();
                    while ticks < due {
                        engine.increment_epoch();
                        ticks += 1;
                    }
                }
            })?;
        Ok(Self { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
