//! `group-remove NAME GROUP`: removes the account NAME from the supplementary group GROUP:
//!
//! ```text
//! removed dave from group developers
//! ```
//!
//! NAME and GROUP must be given and not be blank; the host checks them further, and the
//! policy's users grant decides which accounts and groups the caller may use.
//!
//! Needs the users capability.

use admintext::NameCommand;
use sesame_guest::users;
use sesame_guest::{Command, Invocation};

const COMMAND: NameCommand<2> = NameCommand {
    line: "group-remove NAME GROUP",
    names: ["NAME", "GROUP"],
    doing: "remove {NAME} from group {GROUP}",
    done: "removed {NAME} from group {GROUP}",
};

/// The `group-remove` command.
#[derive(Debug)]
pub struct GroupRemove;

impl Command for GroupRemove {
    fn run(inv: Invocation) -> Result<String, String> {
        COMMAND.run(&inv.args, |[name, group]| users::remove_from_group(name, group))
    }
}

sesame_guest::export_command!(GroupRemove);

#[cfg(test)]
mod tests {
    use super::*;
    use sesame_guest::HostError;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn messages() {
        let mut asked = None;
        let out = COMMAND.run(&strings(&["dave", "developers"]), |names| {
            asked = Some(names.map(str::to_owned));
            Ok(())
        });
        assert_eq!(out, Ok("removed dave from group developers".into()));
        assert_eq!(asked, Some(["dave", "developers"].map(str::to_owned)));
        assert_eq!(
            COMMAND.run(&strings(&["dave", "developers"]), |_| Err(HostError::Denied(
                "not in the grant".into()
            ))),
            Err("cannot remove dave from group developers: denied: not in the grant".into())
        );
        assert_eq!(
            COMMAND.run(&strings(&[]), |_| panic!("the host was called")),
            Err("missing argument NAME (usage: group-remove NAME GROUP)".into())
        );
    }
}
