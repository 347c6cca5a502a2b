//! Test module: `run` never returns. The daemon must end it at the epoch deadline.

use sesame_guest::{Command, Invocation};

/// Loops forever.
#[derive(Debug)]
pub struct Spin;

impl Command for Spin {
    fn run(_inv: Invocation) -> Result<String, String> {
        let mut n: u64 = 0;
        loop {
            // black_box keeps the optimiser from proving the loop useless.
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

sesame_guest::export_command!(Spin);
