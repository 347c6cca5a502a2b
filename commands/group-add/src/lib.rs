//! `group-add NAME GROUP`: adds the account NAME to the supplementary group GROUP, which must
//! exist:
//!
//! ```text
//! added dave to group developers
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
    line: "group-add NAME GROUP",
    names: ["NAME", "GROUP"],
    doing: "add {NAME} to group {GROUP}",
    done: "added {NAME} to group {GROUP}",
};

/// The `group-add` command.
#[derive(Debug)]
pub struct GroupAdd;

impl Command for GroupAdd {
    fn run(inv: Invocation) -> Result<String, String> {
        COMMAND.run(&inv.args, |[name, group]| users::add_to_group(name, group))
    }
}

sesame_guest::export_command!(GroupAdd);

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
        assert_eq!(out, Ok("added dave to group developers".into()));
        assert_eq!(asked, Some(["dave", "developers"].map(str::to_owned)));
        assert_eq!(
            COMMAND.run(&strings(&["dave", "developers"]), |_| Err(HostError::Denied(
                "not in the grant".into()
            ))),
            Err("cannot add dave to group developers: denied: not in the grant".into())
        );
        assert_eq!(
            COMMAND.run(&strings(&[]), |_| panic!("the host was called")),
            Err("missing argument NAME (usage: group-add NAME GROUP)".into())
        );
    }
}
