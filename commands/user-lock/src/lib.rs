//! `user-lock NAME`: locks the account NAME: the password is locked and the account expired,
//! so neither a password nor an SSH key lets anyone log in (a locked password alone would
//! still let keys in). `user-unlock` undoes both:
//!
//! ```text
//! locked dave (password locked and account expired: no password or key login)
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
    line: "user-lock NAME",
    names: ["NAME"],
    doing: "lock {NAME}",
    done: "locked {NAME} (password locked and account expired: no password or key login)",
};

/// The `user-lock` command.
#[derive(Debug)]
pub struct UserLock;

impl Command for UserLock {
    fn run(inv: Invocation) -> Result<String, String> {
        COMMAND.run(&inv.args, |[name]| users::lock(name))
    }
}

sesame_guest::export_command!(UserLock);

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
        assert_eq!(
            out,
            Ok("locked dave (password locked and account expired: no password or key login)".into())
        );
        assert_eq!(asked, Some(["dave"].map(str::to_owned)));
        assert_eq!(
            COMMAND.run(&strings(&["dave"]), |_| Err(HostError::Denied(
                "not in the grant".into()
            ))),
            Err("cannot lock dave: denied: not in the grant".into())
        );
        assert_eq!(
            COMMAND.run(&strings(&[]), |_| panic!("the host was called")),
            Err("missing argument NAME (usage: user-lock NAME)".into())
        );
    }
}
