//! Test module: calls `log::info` without end, as a module would that tries to flood the host.
//! The daemon must stop it at the request's host-call limit (3004).

use sesame_guest::{Command, Invocation, log};

/// Calls the host forever.
#[derive(Debug)]
pub struct CallFlood;

impl Command for CallFlood {
    fn run(_inv: Invocation) -> Result<String, String> {
        let mut n: u64 = 0;
        loop {
            n += 1;
            log::info(&format!("call {n}"));
        }
    }
}

sesame_guest::export_command!(CallFlood);
