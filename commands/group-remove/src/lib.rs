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

use admintext::Usage;
use sesame_guest::users;
use sesame_guest::{Command, HostError, Invocation};

const USAGE: Usage = Usage {
    line: "group-remove NAME GROUP",
    value_flags: &[],
    switches: &[],
    max_positionals: Some(2),
};

/// The `group-remove` command.
#[derive(Debug)]
pub struct GroupRemove;

impl Command for GroupRemove {
    fn run(inv: Invocation) -> Result<String, String> {
        group_remove(&inv.args, users::remove_from_group)
    }
}

sesame_guest::export_command!(GroupRemove);

/// Checks the arguments and calls `remove_from_group` (the host's `users::remove_from_group`,
/// or a test double).
fn group_remove(
    raw: &[String],
    remove_from_group: impl FnOnce(&str, &str) -> Result<(), HostError>,
) -> Result<String, String> {
    let args = USAGE.check(raw)?;
    let name = USAGE.name(&args, 0, "NAME")?;
    let group = USAGE.name(&args, 1, "GROUP")?;
    remove_from_group(name, group).map_err(|e| format!("cannot remove {name} from group {group}: {e}"))?;
    Ok(format!("removed {name} from group {group}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], host: impl FnOnce(&str, &str) -> Result<(), HostError>) -> Result<String, String> {
        let raw: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        group_remove(&raw, host)
    }

    #[test]
    fn success() {
        let mut asked = None;
        let out = run(&["dave", "developers"], |name, group| {
            asked = Some((name.to_owned(), group.to_owned()));
            Ok(())
        });
        assert_eq!(out, Ok("removed dave from group developers".into()));
        assert_eq!(asked, Some(("dave".into(), "developers".into())));
    }

    #[test]
    fn bad_arguments_never_reach_the_host() {
        for (args, err) in [
            (&[][..], "missing argument NAME"),
            (&["dave"], "missing argument GROUP"),
            (&["", "developers"], "NAME is empty"),
            (&["dave", " "], "GROUP is empty"),
            (
                &["dave", "developers", "operators"],
                "unexpected argument `operators`",
            ),
            (&["dave", "--group", "developers"], "unknown flag --group"),
        ] {
            assert_eq!(
                run(args, |_, _| panic!("the host was called")),
                Err(format!("{err} (usage: group-remove NAME GROUP)")),
                "{args:?}"
            );
        }
    }

    #[test]
    fn host_errors_name_the_account_and_group() {
        assert_eq!(
            run(&["dave", "sudo"], |_, _| Err(HostError::Denied(
                "group sudo is not in the grant".into()
            ))),
            Err("cannot remove dave from group sudo: denied: group sudo is not in the grant".into())
        );
    }
}
