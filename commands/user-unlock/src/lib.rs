//! `user-unlock NAME`: unlocks the account NAME, undoing `user-lock` (the password lock and the
//! expiry):
//!
//! ```text
//! unlocked dave
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
    line: "user-unlock NAME",
    names: ["NAME"],
    doing: "unlock {NAME}",
    done: "unlocked {NAME}",
};

/// The `user-unlock` command.
#[derive(Debug)]
pub struct UserUnlock;

impl Command for UserUnlock {
    fn run(inv: Invocation) -> Result<String, String> {
        COMMAND.run(&inv.args, |[name]| users::unlock(name))
    }
}

sesame_guest::export_command!(UserUnlock);

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
        assert_eq!(out, Ok("unlocked dave".into()));
        assert_eq!(asked, Some(["dave"].map(str::to_owned)));
        assert_eq!(
            COMMAND.run(&strings(&["dave"]), |_| Err(HostError::Denied(
                "not in the grant".into()
            ))),
            Err("cannot unlock dave: denied: not in the grant".into())
        );
        assert_eq!(
            COMMAND.run(&strings(&[]), |_| panic!("the host was called")),
            Err("missing argument NAME (usage: user-unlock NAME)".into())
        );
    }
}
