//! Test module: panics. The daemon must turn the trap into an error reply and keep serving.

use sesame_guest::{Command, Invocation};

/// Panics with a fixed message.
#[derive(Debug)]
pub struct Panic;

impl Command for Panic {
    fn run(_inv: Invocation) -> Result<String, String> {
        panic!("sesame test module panicked on purpose");
    }
}

sesame_guest::export_command!(Panic);
