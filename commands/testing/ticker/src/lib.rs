//! Test module: `ticker [COUNT] [INTERVAL_MS] [stdout]` logs `tick I UNIX_US` COUNT times
//! (default 10), INTERVAL_MS apart (default 200), then returns `done`; with `stdout`, it prints
//! each line to its standard output instead (`println!`). `UNIX_US` is the module's wall clock
//! when it wrote the line, so a client on the same machine can tell how long the line took to
//! reach it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sesame_guest::{Command, Invocation, log};

/// The `ticker` test command.
#[derive(Debug)]
pub struct Ticker;

impl Command for Ticker {
    fn run(inv: Invocation) -> Result<String, String> {
        let number = |i: usize, default: u64| -> Result<u64, String> {
            inv.args.get(i).map_or(Ok(default), |a| {
                a.parse().map_err(|_| format!("{a:?} is not a number"))
            })
        };
        let (count, interval) = (number(0, 10)?, number(1, 200)?);
        let to_stdout = inv.args.get(2).is_some_and(|a| a == "stdout");
        for i in 0..count {
            if i > 0 && interval > 0 {
                std::thread::sleep(Duration::from_millis(interval));
            }
            let us = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            if to_stdout {
                println!("tick {i} {us}");
            } else {
                log::info(&format!("tick {i} {us}"));
            }
        }
        Ok("done".to_owned())
    }
}

sesame_guest::export_command!(Ticker);
