//! Test module: `big-output [BYTES]` returns BYTES bytes of output (default 16 MiB). The
//! daemon must refuse output over the request's limit (3003) rather than send it.

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
        Ok("x".repeat(bytes))
    }
}

sesame_guest::export_command!(BigOutput);
