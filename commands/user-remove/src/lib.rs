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

use admintext::Usage;
use sesame_guest::users;
use sesame_guest::{Command, HostError, Invocation};

const USAGE: Usage = Usage {
    line: "user-remove NAME",
    value_flags: &[],
    switches: &[],
    max_positionals: Some(1),
};

/// The `user-remove` command.
#[derive(Debug)]
pub struct UserRemove;

impl Command for UserRemove {
    fn run(inv: Invocation) -> Result<String, String> {
        remove_account(&inv.args, users::remove)
    }
}

sesame_guest::export_command!(UserRemove);

/// Checks the arguments and calls `remove` (the host's `users::remove`, or a test double).
fn remove_account(
    raw: &[String],
    remove: impl FnOnce(&str) -> Result<(), HostError>,
) -> Result<String, String> {
    let args = USAGE.check(raw)?;
    let name = USAGE.name(&args, 0, "NAME")?;
    remove(name).map_err(|e| format!("cannot remove {name}: {e}"))?;
    Ok(format!("removed {name} and its home directory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], host: impl FnOnce(&str) -> Result<(), HostError>) -> Result<String, String> {
        let raw: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        remove_account(&raw, host)
    }

    #[test]
    fn success() {
        let mut asked = None;
        let out = run(&["dave"], |name| {
            asked = Some(name.to_owned());
            Ok(())
        });
        assert_eq!(out, Ok("removed dave and its home directory".into()));
        assert_eq!(asked.as_deref(), Some("dave"));
    }

    #[test]
    fn bad_arguments_never_reach_the_host() {
        for (args, err) in [
            (&[][..], "missing argument NAME"),
            (&[" "], "NAME is empty"),
            (&["dave", "erin"], "unexpected argument `erin`"),
            (&["dave", "--force"], "unknown flag --force"),
        ] {
            assert_eq!(
                run(args, |_| panic!("the host was called")),
                Err(format!("{err} (usage: user-remove NAME)")),
                "{args:?}"
            );
        }
    }

    #[test]
    fn host_errors_name_the_account() {
        assert_eq!(
            run(&["root"], |_| Err(HostError::Denied(
                "account root is protected".into()
            ))),
            Err("cannot remove root: denied: account root is protected".into())
        );
        assert_eq!(
            run(&["ghost"], |_| Err(HostError::Failed("no such account".into()))),
            Err("cannot remove ghost: failed: no such account".into())
        );
    }
}
