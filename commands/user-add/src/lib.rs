//! `user-add NAME [--shell PATH] [--comment TEXT] [--group G]...`: creates the local account
//! NAME with a home directory:
//!
//! ```text
//! created dave (groups: developers, operators)
//! ```
//!
//! (`groups: none` without `--group`). `--shell` is the login shell (an absolute path the host
//! finds in `/etc/shells`; the host's default when absent), `--comment` the GECOS comment
//! (quote it when it has spaces), and `--group` a supplementary group, which must exist; give
//! it once per group or as a comma-separated list (`--group developers,operators`).
//!
//! Arguments are checked here before the host is asked; the host checks names, shell and
//! comment again, and the policy's users grant decides which accounts and groups the caller
//! may use (the policy reads the account from the first argument, so put NAME first).
//!
//! Needs the users capability.

use admintext::{Usage, duration};
use sesame_guest::users::{self, NewUser};
use sesame_guest::{Command, HostError, Invocation};

const USAGE: Usage = Usage {
    line: "user-add NAME [--shell PATH] [--comment TEXT] [--group G]... [--ttl DURATION]",
    value_flags: &["--shell", "--comment", "--group", "--ttl"],
    switches: &[],
    max_positionals: Some(1),
};

/// The `user-add` command.
#[derive(Debug)]
pub struct UserAdd;

impl Command for UserAdd {
    fn run(inv: Invocation) -> Result<String, String> {
        let user = parse(&inv.args)?;
        match ttl(&inv.args)? {
            None => create(&user, users::create),
            Some(secs) => create_for(&user, secs, users::create_temporary),
        }
    }
}

sesame_guest::export_command!(UserAdd);

/// The account asked for, from the command's arguments.
fn parse(raw: &[String]) -> Result<NewUser, String> {
    let args = USAGE.check(raw)?;
    let name = USAGE.name(&args, 0, "NAME")?;
    let shell = args.flag_value("--shell")?;
    if let Some(shell) = shell
        && !shell.starts_with('/')
    {
        return Err(USAGE.error(&format!(
            "invalid --shell `{shell}`: expected an absolute path such as /bin/bash"
        )));
    }
    Ok(NewUser {
        name: name.to_owned(),
        shell: shell.map(str::to_owned),
        comment: args.flag_value("--comment")?.map(str::to_owned),
        groups: groups(&USAGE.flag_values(raw, "--group"))?,
    })
}

/// `--ttl`: how long the account lasts, when it is for a while.
fn ttl(raw: &[String]) -> Result<Option<u32>, String> {
    USAGE
        .check(raw)?
        .flag_value("--ttl")?
        .map(duration)
        .transpose()
        .map_err(|e| USAGE.error(&e))
}

/// Creates the account for `secs` through `create` (the host's `users::create_temporary`).
fn create_for(
    user: &NewUser,
    secs: u32,
    create: impl FnOnce(&NewUser, u32) -> Result<u64, HostError>,
) -> Result<String, String> {
    let until = create(user, secs).map_err(|e| format!("cannot create {}: {e}", user.name))?;
    Ok(format!(
        "{} until {} (then locked)",
        report(user),
        fwtext::utc(until)
    ))
}

/// The groups of every `--group`, split at commas, in order, each once.
fn groups(values: &[&str]) -> Result<Vec<String>, String> {
    let mut groups: Vec<String> = Vec::new();
    for value in values {
        for group in value.split(',') {
            if group.trim().is_empty() {
                return Err(USAGE.error(&format!("empty group name in --group `{value}`")));
            }
            if !groups.iter().any(|g| g == group) {
                groups.push(group.to_owned());
            }
        }
    }
    Ok(groups)
}

/// Creates `user` through `create` (the host's `users::create`, or a test double).
fn create(user: &NewUser, create: impl FnOnce(&NewUser) -> Result<(), HostError>) -> Result<String, String> {
    create(user).map_err(|e| format!("cannot create {}: {e}", user.name))?;
    Ok(report(user))
}

/// The line shown on success: `created dave (groups: developers, operators)`.
fn report(user: &NewUser) -> String {
    let groups = if user.groups.is_empty() {
        "none".to_owned()
    } else {
        user.groups.join(", ")
    };
    format!("created {} (groups: {groups})", user.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<NewUser, String> {
        let raw: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(&raw)
    }

    /// The fields of a parsed account, comparable in tests (`NewUser` is generated code
    /// without `PartialEq`).
    fn fields(user: &NewUser) -> (&str, Option<&str>, Option<&str>, Vec<&str>) {
        (
            &user.name,
            user.shell.as_deref(),
            user.comment.as_deref(),
            user.groups.iter().map(String::as_str).collect(),
        )
    }

    #[test]
    fn name_only() {
        let user = parse_args(&["dave"]).expect("valid");
        assert_eq!(fields(&user), ("dave", None, None, vec![]));
    }

    #[test]
    fn every_flag() {
        let user = parse_args(&[
            "dave",
            "--shell",
            "/bin/bash",
            "--comment",
            "Dave Example",
            "--group",
            "developers",
            "--group=operators",
        ])
        .expect("valid");
        assert_eq!(
            fields(&user),
            (
                "dave",
                Some("/bin/bash"),
                Some("Dave Example"),
                vec!["developers", "operators"]
            )
        );
    }

    #[test]
    fn groups_split_at_commas_and_come_once() {
        let user = parse_args(&["dave", "--group", "a,b", "--group", "b", "--group=c,a"]).expect("valid");
        assert_eq!(user.groups, ["a", "b", "c"]);
        assert_eq!(
            parse_args(&["dave", "--group", "a,,b"]).map(|_| ()),
            Err(format!(
                "empty group name in --group `a,,b` (usage: {})",
                USAGE.line
            ))
        );
        assert_eq!(
            parse_args(&["dave", "--group", "a,"]).map(|_| ()),
            Err(format!(
                "empty group name in --group `a,` (usage: {})",
                USAGE.line
            ))
        );
    }

    #[test]
    fn bad_arguments() {
        let usage = USAGE.line;
        for (args, err) in [
            (&[][..], "missing argument NAME".to_owned()),
            (&[""], "NAME is empty".to_owned()),
            (&["--group", "developers"], "missing argument NAME".to_owned()),
            (&["dave", "erin"], "unexpected argument `erin`".to_owned()),
            // An unquoted comment with spaces splits into extra arguments.
            (
                &["dave", "--comment", "Dave", "Example"],
                "unexpected argument `Example`".to_owned(),
            ),
            (&["dave", "--home", "/srv/dave"], "unknown flag --home".to_owned()),
            (&["dave", "--shell"], "--shell needs a value".to_owned()),
            (&["dave", "--group="], "--group needs a value".to_owned()),
            (
                &["dave", "--shell", "bash"],
                "invalid --shell `bash`: expected an absolute path such as /bin/bash".to_owned(),
            ),
        ] {
            assert_eq!(
                parse_args(args).map(|_| ()),
                Err(format!("{err} (usage: {usage})")),
                "{args:?}"
            );
        }
    }

    #[test]
    fn for_a_while_with_ttl() {
        let raw: Vec<String> = ["carl", "--ttl", "14d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(ttl(&raw), Ok(Some(14 * 86_400)));
        let user = parse(&raw).expect("valid");
        let mut asked = None;
        let out = create_for(&user, 60, |u, secs| {
            asked = Some((u.name.clone(), secs));
            Ok(1_796_472_930_999)
        });
        assert_eq!(
            out,
            Ok("created carl (groups: none) until 2026-12-05 12:15:30 UTC (then locked)".into())
        );
        assert_eq!(asked, Some(("carl".into(), 60)));
        let bad: Vec<String> = ["carl", "--ttl", "soon"].iter().map(|s| s.to_string()).collect();
        assert!(ttl(&bad).is_err_and(|e| e.contains("invalid --ttl `soon`")));
        let none: Vec<String> = vec!["carl".into()];
        assert_eq!(ttl(&none), Ok(None));
    }

    #[test]
    fn reports() {
        let user = parse_args(&["dave", "--group", "developers,operators"]).expect("valid");
        assert_eq!(
            create(&user, |_| Ok(())),
            Ok("created dave (groups: developers, operators)".into())
        );
        let user = parse_args(&["erin"]).expect("valid");
        assert_eq!(
            create(&user, |_| Ok(())),
            Ok("created erin (groups: none)".into())
        );
    }

    #[test]
    fn the_host_gets_the_parsed_account() {
        let user = parse_args(&["dave", "--comment=Dave Example", "--group", "developers"]).expect("valid");
        let mut seen = None;
        let out = create(&user, |u| {
            seen = Some(format!("{u:?}"));
            Ok(())
        });
        assert!(out.is_ok());
        assert_eq!(seen, Some(format!("{user:?}")));
    }

    #[test]
    fn host_errors_name_the_account() {
        let user = parse_args(&["erin", "--group", "sudo"]).expect("valid");
        assert_eq!(
            create(&user, |_| Err(HostError::Denied(
                "group sudo is not in the grant".into()
            ))),
            Err("cannot create erin: denied: group sudo is not in the grant".into())
        );
        assert_eq!(
            create(&user, |_| Err(HostError::Failed(
                "useradd exited 9: user exists".into()
            ))),
            Err("cannot create erin: failed: useradd exited 9: user exists".into())
        );
    }
}
