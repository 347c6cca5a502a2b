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

use admintext::Usage;
use sesame_guest::users;
use sesame_guest::{Command, HostError, Invocation};

const USAGE: Usage = Usage {
    line: "user-lock NAME",
    value_flags: &[],
    switches: &[],
    max_positionals: Some(1),
};

/// The `user-lock` command.
#[derive(Debug)]
pub struct UserLock;

impl Command for UserLock {
    fn run(inv: Invocation) -> Result<String, String> {
        lock_account(&inv.args, users::lock)
    }
}

sesame_guest::export_command!(UserLock);

/// Checks the arguments and calls `lock` (the host's `users::lock`, or a test double).
fn lock_account(raw: &[String], lock: impl FnOnce(&str) -> Result<(), HostError>) -> Result<String, String> {
    let args = USAGE.check(raw)?;
    let name = USAGE.name(&args, 0, "NAME")?;
    lock(name).map_err(|e| format!("cannot lock {name}: {e}"))?;
    Ok(format!(
        "locked {name} (password locked and account expired: no password or key login)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], host: impl FnOnce(&str) -> Result<(), HostError>) -> Result<String, String> {
        let raw: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        lock_account(&raw, host)
    }

    #[test]
    fn success() {
        let mut asked = None;
        let out = run(&["dave"], |name| {
            asked = Some(name.to_owned());
            Ok(())
        });
        assert_eq!(
            out,
            Ok("locked dave (password locked and account expired: no password or key login)".into())
        );
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
                Err(format!("{err} (usage: user-lock NAME)")),
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
            Err("cannot lock root: denied: account root is protected".into())
        );
        assert_eq!(
            run(&["ghost"], |_| Err(HostError::Failed("no such account".into()))),
            Err("cannot lock ghost: failed: no such account".into())
        );
    }
}
