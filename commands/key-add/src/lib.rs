//! `key-add [--user NAME] [--ttl DURATION] KEY...`: adds an OpenSSH public key to an account's
//! `authorized_keys`; the account is the caller's own (the account named like the client)
//! unless `--user` names another:
//!
//! ```text
//! added key ssh-ed25519 …6ELIpKiD6cti dave@laptop to dave
//! ```
//!
//! With `--ttl` (seconds, or a number and `s`, `m`, `h` or `d`: `--ttl 8h`) the key expires: sshd
//! refuses it after then, even while sesamed is down, and sesamed takes it back. Adding it again
//! extends it:
//!
//! ```text
//! added key ssh-ed25519 …6ELIpKiD6cti dave@laptop to dave until 2026-12-05 18:00:00 UTC
//! ```
//!
//! or `key already present for dave` when the account has the key already (same type and key
//! data, whatever the comment). KEY is the public key line, `TYPE BASE64 [COMMENT]`; it may
//! come as one argument or split at its spaces (`key-add ssh-ed25519 AAAA… dave@laptop`), and
//! is joined again with single spaces. The key in messages is a short form (type, the key
//! data's last 12 characters, comment), not a fingerprint.
//!
//! Arguments are checked here before the host is asked; the host checks the key (a known type
//! whose data really is such a key; no options such as `command=`), and the policy's users
//! grant decides whose keys the caller may manage.
//!
//! Needs the users capability.

use admintext::{Usage, account, duration, key_line, key_summary};
use sesame_guest::users;
use sesame_guest::{Command, HostError, Invocation};

const USAGE: Usage = Usage {
    line: "key-add [--user NAME] [--ttl DURATION] KEY...",
    value_flags: &["--user", "--ttl"],
    switches: &[],
    max_positionals: None,
};

/// The `key-add` command.
#[derive(Debug)]
pub struct KeyAdd;

impl Command for KeyAdd {
    fn run(inv: Invocation) -> Result<String, String> {
        add_key(&inv.args, &inv.client, users::add_key, users::add_temporary_key)
    }
}

sesame_guest::export_command!(KeyAdd);

/// Checks the arguments and adds the key through `add_key` (the host's `users::add_key`, or a
/// test double), or with `--ttl` through `add_temporary_key`; `client` is the caller, whose
/// account it is without `--user`.
fn add_key(
    raw: &[String],
    client: &str,
    add_key: impl FnOnce(&str, &str) -> Result<bool, HostError>,
    add_temporary_key: impl FnOnce(&str, &str, u32) -> Result<u64, HostError>,
) -> Result<String, String> {
    let args = USAGE.check(raw)?;
    let name = account(&args, client)?;
    let ttl = args.flag_value("--ttl")?.map(duration).transpose()?;
    let key = key_line(&USAGE, &args)?;
    let added = format!("added key {} to {name}", key_summary(&key));
    match ttl {
        None => match add_key(name, &key) {
            Ok(true) => Ok(added),
            Ok(false) => Ok(format!("key already present for {name}")),
            Err(e) => Err(format!("cannot add key to {name}: {e}")),
        },
        Some(secs) => match add_temporary_key(name, &key, secs) {
            Ok(until_ms) => Ok(format!("{added} until {}", fwtext::utc(until_ms))),
            Err(e) => Err(format!("cannot add key to {name}: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sesame_guest::testing::{Call, FakeHost, Run, invocation};

    const BLOB: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIDpyo4ZeTj/fgjh+FvzKwzxzIh8WWnHh6ELIpKiD6cti";

    fn run(
        args: &[&str],
        host: impl FnOnce(&str, &str) -> Result<bool, HostError>,
    ) -> Result<String, String> {
        let raw: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        add_key(&raw, "dave", host, |_, _, _| panic!("no --ttl: a permanent key"))
    }

    #[test]
    fn with_a_ttl_the_key_expires() {
        let raw: Vec<String> = ["--ttl", "8h", "ssh-ed25519", BLOB, "dave@laptop"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut asked = None;
        let out = add_key(
            &raw,
            "dave",
            |_, _| panic!("a temporary key"),
            |name, key, secs| {
                asked = Some((name.to_owned(), key.to_owned(), secs));
                Ok(1_796_472_930_999)
            },
        );
        assert_eq!(
            out,
            Ok(
                "added key ssh-ed25519 …6ELIpKiD6cti dave@laptop to dave until 2026-12-05 12:15:30 UTC"
                    .into()
            )
        );
        assert_eq!(
            asked,
            Some(("dave".into(), format!("ssh-ed25519 {BLOB} dave@laptop"), 8 * 3600))
        );
        let refused = add_key(
            &raw,
            "dave",
            |_, _| panic!("a temporary key"),
            |_, _, _| {
                Err(HostError::Denied(
                    "a ttl of 28800 s is outside the grant (1 to 3600 s)".into(),
                ))
            },
        );
        assert!(refused.is_err_and(|e| e.contains("outside the grant")));
    }

    #[test]
    fn own_account_by_default() {
        let mut asked = None;
        let out = run(&["ssh-ed25519", BLOB, "dave@laptop"], |name, key| {
            asked = Some((name.to_owned(), key.to_owned()));
            Ok(true)
        });
        assert_eq!(
            out,
            Ok("added key ssh-ed25519 …6ELIpKiD6cti dave@laptop to dave".into())
        );
        assert_eq!(
            asked,
            Some(("dave".into(), format!("ssh-ed25519 {BLOB} dave@laptop")))
        );
    }

    #[test]
    fn another_account_with_user() {
        let mut asked = None;
        let key = format!("ssh-ed25519 {BLOB}");
        let out = run(&["--user", "erin", &key], |name, key| {
            asked = Some((name.to_owned(), key.to_owned()));
            Ok(true)
        });
        assert_eq!(out, Ok("added key ssh-ed25519 …6ELIpKiD6cti to erin".into()));
        assert_eq!(asked, Some(("erin".into(), key.clone())));
        assert_eq!(
            run(&[&key, "--user=erin"], |_, _| Ok(true)),
            Ok("added key ssh-ed25519 …6ELIpKiD6cti to erin".into())
        );
    }

    #[test]
    fn already_present() {
        assert_eq!(
            run(&["ssh-ed25519", BLOB], |_, _| Ok(false)),
            Ok("key already present for dave".into())
        );
    }

    #[test]
    fn bad_arguments_never_reach_the_host() {
        let usage = USAGE.line;
        for (args, err) in [
            (&[][..], "missing argument KEY"),
            (&["--user", "erin"], "missing argument KEY"),
            (
                &["ssh-ed25519"],
                "KEY must be an OpenSSH public key line: TYPE BASE64 [COMMENT]",
            ),
            (&["--user"], "--user needs a value"),
            (&["--user=", "ssh-ed25519", BLOB], "--user needs a value"),
            (&["--for", "erin", "ssh-ed25519", BLOB], "unknown flag --for"),
        ] {
            assert_eq!(
                run(args, |_, _| panic!("the host was called")),
                Err(format!("{err} (usage: {usage})")),
                "{args:?}"
            );
        }
    }

    #[test]
    fn host_errors_name_the_account() {
        assert_eq!(
            run(&["ssh-dss", "AAAAB3NzaC1kc3M="], |_, _| Err(HostError::Invalid(
                "ssh key: type \"ssh-dss\" is not one of ssh-ed25519, ssh-rsa".into()
            ))),
            Err(
                "cannot add key to dave: invalid: ssh key: type \"ssh-dss\" is not one of ssh-ed25519, ssh-rsa"
                    .into()
            )
        );
        assert_eq!(
            run(&["--user", "root", "ssh-ed25519", BLOB], |_, _| Err(
                HostError::Denied("account root is protected".into())
            )),
            Err("cannot add key to root: denied: account root is protected".into())
        );
    }

    // End to end through `KeyAdd::run`, with a scripted host.

    fn run_key_add(host: FakeHost, args: &[&str]) -> Run {
        host.run::<KeyAdd>(invocation("dave", args))
    }

    fn add_key_call(name: &str, key: &str) -> Call {
        Call::UsersAddKey {
            name: name.into(),
            key: key.into(),
        }
    }

    #[test]
    fn run_adds_the_key_to_the_callers_account() {
        let host = FakeHost::new().users_add_key(|_, _| Ok(true));
        let run = run_key_add(host, &["ssh-ed25519", BLOB, "dave@laptop"]);
        assert_eq!(
            run.output,
            Ok("added key ssh-ed25519 …6ELIpKiD6cti dave@laptop to dave".into())
        );
        assert_eq!(
            run.calls,
            [add_key_call("dave", &format!("ssh-ed25519 {BLOB} dave@laptop"))]
        );
    }

    #[test]
    fn run_with_user_and_a_key_already_there() {
        let host = FakeHost::new().users_add_key(|name, _| Ok(name != "erin"));
        let key = format!("ssh-ed25519 {BLOB}");
        let run = run_key_add(host, &["--user", "erin", &key]);
        assert_eq!(run.output, Ok("key already present for erin".into()));
        assert_eq!(run.calls, [add_key_call("erin", &key)]);
    }

    #[test]
    fn run_reports_denied_invalid_and_failed() {
        let run = run_key_add(FakeHost::new(), &["--user=root", "ssh-ed25519", BLOB]);
        assert_eq!(
            run.output,
            Err("cannot add key to root: denied: not scripted in this test: users.add-key".into())
        );
        assert_eq!(run.calls.len(), 1);
        for (error, shown) in [
            (
                HostError::Invalid("ssh key: bad base64".into()),
                "invalid: ssh key: bad base64",
            ),
            (
                HostError::Failed("cannot write authorized_keys".into()),
                "failed: cannot write authorized_keys",
            ),
        ] {
            let host = FakeHost::new().users_add_key(move |_, _| Err(error.clone()));
            let run = run_key_add(host, &["ssh-ed25519", BLOB]);
            assert_eq!(run.output, Err(format!("cannot add key to dave: {shown}")));
        }
    }

    #[test]
    fn run_never_asks_the_host_with_bad_arguments() {
        let run = run_key_add(FakeHost::new().users_add_key(|_, _| Ok(true)), &["ssh-ed25519"]);
        assert_eq!(
            run.output,
            Err(format!(
                "KEY must be an OpenSSH public key line: TYPE BASE64 [COMMENT] (usage: {})",
                USAGE.line
            ))
        );
        assert_eq!(run.calls, []);
    }
}
