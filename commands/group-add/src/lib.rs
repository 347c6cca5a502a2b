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

use admintext::Usage;
use sesame_guest::users;
use sesame_guest::{Command, HostError, Invocation};

const USAGE: Usage = Usage {
    line: "group-add NAME GROUP",
    value_flags: &[],
    switches: &[],
    max_positionals: Some(2),
};

/// The `group-add` command.
#[derive(Debug)]
pub struct GroupAdd;

impl Command for GroupAdd {
    fn run(inv: Invocation) -> Result<String, String> {
        group_add(&inv.args, users::add_to_group)
    }
}

sesame_guest::export_command!(GroupAdd);

/// Checks the arguments and calls `add_to_group` (the host's `users::add_to_group`, or a test double).
fn group_add(
    raw: &[String],
    add_to_group: impl FnOnce(&str, &str) -> Result<(), HostError>,
) -> Result<String, String> {
    let args = USAGE.check(raw)?;
    let name = USAGE.name(&args, 0, "NAME")?;
    let group = USAGE.name(&args, 1, "GROUP")?;
    add_to_group(name, group).map_err(|e| format!("cannot add {name} to group {group}: {e}"))?;
    Ok(format!("added {name} to group {group}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], host: impl FnOnce(&str, &str) -> Result<(), HostError>) -> Result<String, String> {
        let raw: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        group_add(&raw, host)
    }

    #[test]
    fn success() {
        let mut asked = None;
        let out = run(&["dave", "developers"], |name, group| {
            asked = Some((name.to_owned(), group.to_owned()));
            Ok(())
        });
        assert_eq!(out, Ok("added dave to group developers".into()));
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
                Err(format!("{err} (usage: group-add NAME GROUP)")),
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
            Err("cannot add dave to group sudo: denied: group sudo is not in the grant".into())
        );
    }
}
