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

use admintext::Usage;
use sesame_guest::users;
use sesame_guest::{Command, HostError, Invocation};

const USAGE: Usage = Usage {
    line: "user-unlock NAME",
    value_flags: &[],
    switches: &[],
    max_positionals: Some(1),
};

/// The `user-unlock` command.
#[derive(Debug)]
pub struct UserUnlock;

impl Command for UserUnlock {
    fn run(inv: Invocation) -> Result<String, String> {
        unlock_account(&inv.args, users::unlock)
    }
}

sesame_guest::export_command!(UserUnlock);

/// Checks the arguments and calls `unlock` (the host's `users::unlock`, or a test double).
fn unlock_account(
    raw: &[String],
    unlock: impl FnOnce(&str) -> Result<(), HostError>,
) -> Result<String, String> {
    let args = USAGE.check(raw)?;
    let name = USAGE.name(&args, 0, "NAME")?;
    unlock(name).map_err(|e| format!("cannot unlock {name}: {e}"))?;
    Ok(format!("unlocked {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], host: impl FnOnce(&str) -> Result<(), HostError>) -> Result<String, String> {
        let raw: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        unlock_account(&raw, host)
    }

    #[test]
    fn success() {
        let mut asked = None;
        let out = run(&["dave"], |name| {
            asked = Some(name.to_owned());
            Ok(())
        });
        assert_eq!(out, Ok("unlocked dave".into()));
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
                Err(format!("{err} (usage: user-unlock NAME)")),
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
            Err("cannot unlock root: denied: account root is protected".into())
        );
        assert_eq!(
            run(&["ghost"], |_| Err(HostError::Failed("no such account".into()))),
            Err("cannot unlock ghost: failed: no such account".into())
        );
    }
}
