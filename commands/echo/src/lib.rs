//! `echo ARGS...`: returns the arguments joined by single spaces. Calls no host interface.

use sesame_guest::{Command, Invocation};

/// The `echo` command.
#[derive(Debug)]
pub struct Echo;

impl Command for Echo {
    fn run(inv: Invocation) -> Result<String, String> {
        Ok(inv.args.join(" "))
    }
}

sesame_guest::export_command!(Echo);
