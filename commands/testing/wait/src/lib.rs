//! Test module: waits in host code, where epoch interruption cannot reach it. The first argument
//! says how (default `sleep`); each waits an hour unless the daemon ends it at its time limit.
//!
//! - `sleep`: `std::thread::sleep` (a monotonic-clock pollable, blocked on);
//! - `poll`: `wasi:io/poll.poll` on a list of clock pollables;
//! - `instant`: a pollable for an instant an hour ahead, blocked on;
//! - `ready`: asks a clock pollable `ready` in a loop (wasm and host code in turns);
//! - `stdin`: a blocking read of standard input (empty and closed: returns at once);
//! - `stdout`: blocking writes to standard output until it refuses.

use sesame_guest::{Command, Invocation};
use wasip2::clocks::monotonic_clock;
use wasip2::io::poll;

/// An hour, in nanoseconds.
const HOUR_NS: u64 = 3_600_000_000_000;

/// Waits in the way its first argument names.
#[derive(Debug)]
pub struct Wait;

impl Command for Wait {
    fn run(inv: Invocation) -> Result<String, String> {
        let how = inv.args.first().map_or("sleep", String::as_str);
        match how {
            "sleep" => std::thread::sleep(std::time::Duration::from_secs(3600)),
            "poll" => {
                let a = monotonic_clock::subscribe_duration(HOUR_NS);
                let b = monotonic_clock::subscribe_duration(2 * HOUR_NS);
                let ready = poll::poll(&[&a, &b]);
                return Ok(format!("poll returned {ready:?}"));
            }
            "instant" => monotonic_clock::subscribe_instant(monotonic_clock::now() + HOUR_NS).block(),
            "ready" => {
                let p = monotonic_clock::subscribe_duration(HOUR_NS);
                while !p.ready() {}
            }
            "stdin" => {
                let stdin = wasip2::cli::stdin::get_stdin();
                return match stdin.blocking_read(1024) {
                    Ok(bytes) => Ok(format!("stdin gave {} bytes", bytes.len())),
                    Err(e) => Ok(format!("stdin: {e:?}")),
                };
            }
            "stdout" => {
                let stdout = wasip2::cli::stdout::get_stdout();
                let chunk = vec![b'x'; 4096];
                let mut written = 0usize;
                while stdout.blocking_write_and_flush(&chunk).is_ok() {
                    written += chunk.len();
                }
                return Ok(format!("stdout took {written} bytes"));
            }
            other => return Err(format!("unknown way to wait: {other}")),
        }
        Ok(format!("{how}: woke up after an hour"))
    }
}

sesame_guest::export_command!(Wait);
