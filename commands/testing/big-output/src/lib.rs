//! Test module: `big-output [BYTES] [error|exit]` returns BYTES bytes of output (default
//! 16 MiB); with `error`, an error message of that size instead; with `exit`, it ends itself
//! with `std::process::exit(BYTES)` (a status, then). The daemon must refuse output or a message
//! over the request's limit (3003) rather than send it, and report an exit as the module's own
//! outcome.

use sesame_guest::{Command, Invocation};

/// Returns a lot of text.
#[derive(Debug)]
pub struct BigOutput;

impl Command for BigOutput {
    fn run(inv: Invocation) -> Result<String, String> {
        let bytes: usize = match inv.args.first() {
            Some(n) => n.parse().map_err(|_| format!("not a byte count: {n:?}"))?,
            None => 16 << 20,
        };
        match inv.args.get(1).map(String::as_str) {
            Some("error") => Err("e".repeat(bytes)),
            Some("exit") => std::process::exit(i32::try_from(bytes).unwrap_or(i32::MAX)),
            _ => Ok("x".repeat(bytes)),
        }
    }
}

sesame_guest::export_command!(BigOutput);
