//! `user-remove NAME`: removes the account NAME and its home directory. There is no undo: lock
//! the account with `user-lock` first while its files are handed over:
//!
//! ```text
//! removed dave and its home directory
//! ```
//!
//! NAME must be given and not be blank; the host checks it further, and the policy's users
//! grant decides which accounts the caller may manage.
//!
//! Needs the users capability.

use admintext::NameCommand;
use sesame_guest::users;
use sesame_guest::{Command, Invocation};

const COMMAND: NameCommand<1> = NameCommand {
    line: "user-remove NAME",
    names: ["NAME"],
    doing: "remove {NAME}",
    done: "removed {NAME} and its home directory",
};

/// The `user-remove` command.
#[derive(Debug)]
pub struct UserRemove;

impl Command for UserRemove {
    fn run(inv: Invocation) -> Result<String, String> {
        COMMAND.run(&inv.args, |[name]| users::remove(name))
    }
}

sesame_guest::export_command!(UserRemove);

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
        let out = COMMAND.run(&strings(&["dave"]), |names| {
            asked = Some(names.map(str::to_owned));
            Ok(())
        });
        assert_eq!(out, Ok("removed dave and its home directory".into()));
        assert_eq!(asked, Some(["dave"].map(str::to_owned)));
        assert_eq!(
            COMMAND.run(&strings(&["dave"]), |_| Err(HostError::Denied(
                "not in the grant".into()
            ))),
            Err("cannot remove dave: denied: not in the grant".into())
        );
        assert_eq!(
            COMMAND.run(&strings(&[]), |_| panic!("the host was called")),
            Err("missing argument NAME (usage: user-remove NAME)".into())
        );
    }
}
