//! Where policy work runs: threads whose stack is known to hold the deepest load or evaluation
//! that the load-time bounds admit (`policy::bounds`, `policy::graph`).
//!
//! regorus parses, compiles and evaluates by recursion, so a deep enough policy overflows the
//! stack of whatever thread runs it, and a stack overflow aborts the whole process. The bounds
//! refuse such policies at load; this module makes the stack those bounds are measured against a
//! fact rather than an accident of the caller (a tokio blocking thread has 2 MiB, a test thread
//! 2 MiB, `main` 8 MiB): every load and every evaluation runs on a thread of [`STACK_BYTES`]. The
//! threads are kept and reused, as spawning one per decision would cost more than the decision; a
//! job submitted from such a thread runs at once, on it. A panic in a job (a regorus bug) is caught
//! and returned as [`Failure::Panicked`], so it denies instead of taking a thread down.
//!
//! Handing a job over also lets the caller stop waiting: regorus reads its time limit only between
//! steps, so one builtin may run long past it; [`run_within`] answers [`Failure::TimedOut`] at the
//! deadline and leaves the policy thread to finish (its answer is then dropped).

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// The stack of a policy thread. Only the pages a policy touches are ever mapped in, so this is
/// address space, not memory; the bounds keep the deepest admitted evaluation below an eighth of it
/// (`the_deepest_admitted_policies_load_and_run_on_an_eighth_of_the_stack` in `policy/hostile.rs`).
pub const STACK_BYTES: usize = 64 << 20;

/// Policy threads at most; jobs beyond wait for one to be free.
const MAX_THREADS: usize = 128;

/// Policy threads kept however long they are idle.
const KEEP_THREADS: usize = 2;

/// How long a policy thread beyond [`KEEP_THREADS`] waits for work before it ends.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a job gave no answer.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The job panicked: regorus (or sesame) has a bug, and the job's result is lost.
    #[error("the policy engine panicked: {0}")]
    Panicked(String),
    /// The job did not answer in time; it may still be running.
    #[error("no answer within {} ms", .0.as_millis())]
    TimedOut(Duration),
}

/// Runs `job` on a policy thread and returns what it returned, however long it takes.
///
/// On a policy thread it runs at once; elsewhere it is handed to a free policy thread (one is
/// started when none is free, up to `MAX_THREADS`, 128) and the caller waits for it.
pub fn run<R, F>(job: F) -> Result<R, Failure>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    submit(job, None)
}

/// [`run`], waiting at most `timeout` (queueing included) for the answer. On a policy thread the
/// job runs at once and is waited for whatever it takes.
pub fn run_within<R, F>(timeout: Duration, job: F) -> Result<R, Failure>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    submit(job, Some(timeout))
}

fn submit<R, F>(job: F, timeout: Option<Duration>) -> Result<R, Failure>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    if ON_POLICY_THREAD.get() {
        return catch(job);
    }
    // A one-shot slot rather than a channel: std's channels spin and yield before they sleep,
    // which burns the CPU the policy thread needs (measured: a third more CPU per decision).
    let slot = Arc::new(Answer {
        value: Mutex::new(None),
        ready: Condvar::new(),
    });
    let reply = Arc::clone(&slot);
    pool().submit(Box::new(move || {
        let answer = catch(job);
        // Delivered once the thread is idle again, so that the caller's next job finds it so.
        Box::new(move || {
            let mut value = reply.value.lock().unwrap_or_else(PoisonError::into_inner);
            *value = Some(answer);
            drop(value);
            reply.ready.notify_one();
        })
    }));
    let deadline = timeout.map(|t| (Instant::now() + t, t));
    let mut value = slot.value.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if let Some(answer) = value.take() {
            return answer;
        }
        value = match deadline {
            None => slot.ready.wait(value).unwrap_or_else(PoisonError::into_inner),
            Some((at, timeout)) => {
                let Some(left) = at.checked_duration_since(Instant::now()).filter(|l| !l.is_zero()) else {
                    return Err(Failure::TimedOut(timeout));
                };
                slot.ready
                    .wait_timeout(value, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
    }
}

/// Where a job's answer is left for its caller.
struct Answer<R> {
    value: Mutex<Option<Result<R, Failure>>>,
    ready: Condvar,
}

thread_local! {
    /// Whether this thread is a policy thread (so a job submitted from it runs inline).
    static ON_POLICY_THREAD: Cell<bool> = const { Cell::new(false) };
    /// What jobs left to be dropped once their answer is delivered ([`drop_after_answer`]).
    static LEFTOVERS: std::cell::RefCell<Vec<Box<dyn Any>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Drops `value` after the answer of the job that calls this is delivered, rather than before: a
/// used interpreter takes as long to free as a tenth of the evaluation (its rule values, scopes and
/// caches), and its caller need not wait for that. Off a policy thread, `value` is dropped at once.
pub fn drop_after_answer<T: 'static>(value: T) {
    if ON_POLICY_THREAD.get() {
        LEFTOVERS.with_borrow_mut(|leftovers| leftovers.push(Box::new(value)));
    }
}

/// Drops what the jobs run so far left behind.
fn drop_leftovers() {
    let leftovers = LEFTOVERS.take();
    drop(catch(move || drop(leftovers)));
}

/// A job: runs, and returns how to deliver its answer.
type Job = Box<dyn FnOnce() -> Delivery + Send>;

/// Hands a job's answer to its caller.
type Delivery = Box<dyn FnOnce() + Send>;

/// The policy threads. A job goes to the thread that became idle last (its caches and its stack
/// are the warmest: handing jobs round all idle threads in turn cost a third more CPU per
/// decision), else to a new thread, else into the queue.
struct Pool {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Jobs no thread was free for, oldest first.
    queue: VecDeque<Job>,
    /// Threads waiting for a job, the one that became idle last at the end.
    idle: Vec<Arc<Idle>>,
    /// Threads alive.
    threads: usize,
}

/// Where a job is handed to one idle thread.
struct Idle {
    job: Mutex<Option<Job>>,
    ready: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(State::default()),
    })
}

impl Pool {
    fn submit(&'static self, job: Job) {
        let mut state = self.lock();
        if let Some(idle) = state.idle.pop() {
            // Handed over under the pool's lock, so a thread that timed out waiting can tell.
            *idle.job.lock().unwrap_or_else(PoisonError::into_inner) = Some(job);
            idle.ready.notify_one();
            return;
        }
        if state.threads < MAX_THREADS {
            // The job waits in the queue, where a new thread, or the next to finish, takes it.
            state.queue.push_back(job);
            let spawned = std::thread::Builder::new()
                .name("sesamed-policy".to_owned())
                .stack_size(STACK_BYTES)
                .spawn(move || self.work_loop());
            match spawned {
                Ok(_) => state.threads += 1,
                // Logged, as it means the host is out of threads; the caller's deadline denies.
                Err(e) => tracing::error!("cannot start a policy thread: {e}"),
            }
            return;
        }
        state.queue.push_back(job);
    }

    fn work_loop(&self) {
        ON_POLICY_THREAD.set(true);
        let idle = Arc::new(Idle {
            job: Mutex::new(None),
            ready: Condvar::new(),
        });
        // The answer of the job just run, delivered once this thread has its next job or is
        // idle again (so that the caller's next job finds it idle).
        let mut pending: Option<Delivery> = None;
        loop {
            let mut state = self.lock();
            let job = match state.queue.pop_front() {
                Some(job) => {
                    drop(state);
                    job
                }
                None => {
                    state.idle.push(Arc::clone(&idle));
                    drop(state);
                    if let Some(deliver) = pending.take() {
                        deliver();
                    }
                    drop_leftovers();
                    match self.wait(&idle) {
                        Some(job) => job,
                        None => return,
                    }
                }
            };
            if let Some(deliver) = pending.take() {
                deliver();
            }
            drop_leftovers();
            pending = Some(job());
        }
    }

    /// Waits on `idle` for a job; `None` when the thread is to end.
    fn wait(&self, idle: &Arc<Idle>) -> Option<Job> {
        let mut job = idle.job.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(job) = job.take() {
                return Some(job);
            }
            let (next, timeout) = idle
                .ready
                .wait_timeout(job, IDLE_TIMEOUT)
                .unwrap_or_else(PoisonError::into_inner);
            job = next;
            if timeout.timed_out() && job.is_none() {
                drop(job);
                let mut state = self.lock();
                let Some(at) = state.idle.iter().position(|i| Arc::ptr_eq(i, idle)) else {
                    // A job was handed over meanwhile: it is in the slot.
                    drop(state);
                    job = idle.job.lock().unwrap_or_else(PoisonError::into_inner);
                    continue;
                };
                if state.threads > KEEP_THREADS {
                    state.idle.remove(at);
                    state.threads -= 1;
                    return None;
                }
                drop(state);
                job = idle.job.lock().unwrap_or_else(PoisonError::into_inner);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Jobs run outside the lock and catch their panics, so it is never poisoned; if it were,
        // the state is still consistent (every change to it is one statement).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn catch<R>(job: impl FnOnce() -> R) -> Result<R, Failure> {
    catch_unwind(AssertUnwindSafe(job)).map_err(|payload| Failure::Panicked(panic_message(payload.as_ref())))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_job_leaves_is_dropped_after_its_answer_is_delivered_not_before() {
        use std::sync::mpsc;
        /// Blocks in its drop until the caller says it has the answer, then says it is gone.
        struct Leftover {
            answered: mpsc::Receiver<()>,
            gone: mpsc::Sender<()>,
        }
        impl Drop for Leftover {
            fn drop(&mut self) {
                let _ = self.answered.recv_timeout(Duration::from_secs(10));
                let _ = self.gone.send(());
            }
        }
        let (answered_tx, answered) = mpsc::channel();
        let (gone, gone_rx) = mpsc::channel();
        // Were the leftover dropped before the answer, the answer would wait for the caller's
        // signal, which waits for the answer: the time limit would end it.
        let answer = run_within(Duration::from_secs(5), move || {
            drop_after_answer(Leftover { answered, gone });
            7
        });
        assert_eq!(answer, Ok(7));
        answered_tx.send(()).expect("the leftover is still waiting");
        gone_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the leftover was never dropped");
    }

    #[test]
    fn a_job_runs_on_a_policy_thread_and_its_answer_comes_back() {
        assert!(!ON_POLICY_THREAD.get());
        let answer = run(|| {
            (
                ON_POLICY_THREAD.get(),
                std::thread::current().name().map(str::to_owned),
            )
        });
        assert_eq!(answer, Ok((true, Some("sesamed-policy".to_owned()))));
    }

    #[test]
    fn a_job_from_a_policy_thread_runs_inline() {
        let answer = run(|| {
            let outer = std::thread::current().id();
            run(move || std::thread::current().id() == outer)
        });
        assert_eq!(answer, Ok(Ok(true)));
    }

    #[test]
    fn a_panic_is_an_error_and_the_threads_keep_working() {
        let answer: Result<(), Failure> = run(|| panic!("boom"));
        assert_eq!(answer, Err(Failure::Panicked("boom".to_owned())));
        assert_eq!(run(|| 7), Ok(7));
    }

    #[test]
    fn the_caller_stops_waiting_at_its_deadline() {
        let started = Instant::now();
        let answer = run_within(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_millis(500))
        });
        assert_eq!(answer, Err(Failure::TimedOut(Duration::from_millis(50))));
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(run_within(Duration::from_secs(5), || 7), Ok(7));
    }

    #[test]
    fn the_stack_holds_what_a_default_thread_cannot() {
        // 16 MiB of frames: more than a default thread's 2 MiB and main's 8 MiB.
        fn deep(n: u32) -> u32 {
            let pad = std::hint::black_box([0_u8; 1024]);
            if n == 0 {
                u32::from(pad[0])
            } else {
                deep(n - 1) + u32::from(pad[1])
            }
        }
        assert_eq!(run(|| deep(16 * 1024)), Ok(0));
    }

    #[test]
    fn jobs_from_many_threads_all_get_their_own_answer() {
        let handles: Vec<_> = (0..16_u64)
            .map(|i| {
                std::thread::spawn(move || (0..50_u64).map(|j| run(move || i * 1000 + j)).collect::<Vec<_>>())
            })
            .collect();
        for (i, handle) in handles.into_iter().enumerate() {
            let answers = handle.join().expect("thread");
            let expected: Vec<_> = (0..50_u64).map(|j| Ok(i as u64 * 1000 + j)).collect();
            assert_eq!(answers, expected);
        }
    }
}
