//! `group-add NAME GROUP [--ttl DURATION]`: adds the account NAME to the supplementary group
//! GROUP, which must exist:
//!
//! ```text
//! added dave to group developers
//! ```
//!
//! NAME comes first (the stock policy reads the account from the first argument). With `--ttl`
//! (seconds, or a number and `s`, `m`, `h` or `d`: `--ttl 1h`) the membership ends
//! by itself: sesamed takes it back then (and at its next start, if it was down). The policy
//! may allow some groups (`sudo`) only this way:
//!
//! ```text
//! added dave to group sudo until 2026-12-05 13:00:00 UTC
//! ```
//!
//! NAME and GROUP must be given and not be blank; the host checks them further, and the
//! policy's users grant decides which accounts and groups the caller may use.
//!
//! Needs the users capability.

use admintext::{Usage, duration};
use sesame_guest::users;
use sesame_guest::{Command, HostError, Invocation};

const USAGE: Usage = Usage {
    line: "group-add NAME GROUP [--ttl DURATION]",
    value_flags: &["--ttl"],
    switches: &[],
    max_positionals: Some(2),
};

/// The `group-add` command.
#[derive(Debug)]
pub struct GroupAdd;

impl Command for GroupAdd {
    fn run(inv: Invocation) -> Result<String, String> {
        group_add(&inv.args, users::add_to_group, users::add_temporary_membership)
    }
}

sesame_guest::export_command!(GroupAdd);

/// Checks the arguments, then adds the membership through `add` (the host's
/// `users::add_to_group`) or, with `--ttl`, `add_for` (`users::add_temporary_membership`).
fn group_add(
    raw: &[String],
    add: impl FnOnce(&str, &str) -> Result<(), HostError>,
    add_for: impl FnOnce(&str, &str, u32) -> Result<u64, HostError>,
) -> Result<String, String> {
    let args = USAGE.check(raw)?;
    let ttl = args.flag_value("--ttl")?.map(duration).transpose()?;
    let name = USAGE.name(&args, 0, "NAME")?;
    let group = USAGE.name(&args, 1, "GROUP")?;
    let failed = |e: HostError| format!("cannot add {name} to group {group}: {e}");
    match ttl {
        None => add(name, group)
            .map(|()| format!("added {name} to group {group}"))
            .map_err(failed),
        Some(secs) => add_for(name, group, secs)
            .map(|until| format!("added {name} to group {group} until {}", fwtext::utc(until)))
            .map_err(failed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    fn for_good(
        args: &[&str],
        add: impl FnOnce(&str, &str) -> Result<(), HostError>,
    ) -> Result<String, String> {
        group_add(&strings(args), add, |_, _, _| panic!("no --ttl: for good"))
    }

    #[test]
    fn messages() {
        let mut asked = None;
        let out = for_good(&["dave", "developers"], |name, group| {
            asked = Some((name.to_owned(), group.to_owned()));
            Ok(())
        });
        assert_eq!(out, Ok("added dave to group developers".into()));
        assert_eq!(asked, Some(("dave".into(), "developers".into())));
        assert_eq!(
            for_good(&["dave", "developers"], |_, _| Err(HostError::Denied(
                "not in the grant".into()
            ))),
            Err("cannot add dave to group developers: denied: not in the grant".into())
        );
        assert_eq!(
            for_good(&[], |_, _| panic!("the host was called")),
            Err("missing argument NAME (usage: group-add NAME GROUP [--ttl DURATION])".into())
        );
        assert_eq!(
            for_good(&["dave", "sudo", "adm"], |_, _| panic!("the host was called")),
            Err("unexpected argument `adm` (usage: group-add NAME GROUP [--ttl DURATION])".into())
        );
    }

    #[test]
    fn with_a_ttl_the_membership_ends() {
        let mut asked = None;
        let out = group_add(
            &strings(&["dave", "sudo", "--ttl", "1h"]),
            |_, _| panic!("a temporary membership"),
            |name, group, secs| {
                asked = Some((name.to_owned(), group.to_owned(), secs));
                Ok(1_796_472_930_999)
            },
        );
        assert_eq!(
            out,
            Ok("added dave to group sudo until 2026-12-05 12:15:30 UTC".into())
        );
        assert_eq!(asked, Some(("dave".into(), "sudo".into(), 3600)));
        let bad = group_add(
            &strings(&["--ttl", "soon", "dave", "sudo"]),
            |_, _| panic!("the host was called"),
            |_, _, _| panic!("the host was called"),
        );
        assert!(bad.is_err_and(|e| e.contains("invalid --ttl `soon`")));
    }
}
