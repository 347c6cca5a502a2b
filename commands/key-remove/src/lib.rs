//! `key-remove [--user NAME] KEY...`: removes an OpenSSH public key from an account's
//! `authorized_keys`; the account is the caller's own (the account named like the client)
//! unless `--user` names another:
//!
//! ```text
//! removed key ssh-ed25519 …6ELIpKiD6cti dave@laptop from dave
//! ```
//!
//! or `key not present for dave` when the account does not have the key. The key is matched
//! by type and key data, whatever the comment and options on its line; every line holding it
//! goes. KEY is given as for `key-add`: `TYPE BASE64 [COMMENT]`, as one argument or split at
//! its spaces. The key in messages is a short form (type, the key data's last 12 characters,
//! comment), not a fingerprint.
//!
//! Needs the users capability.

use admintext::{Usage, account, key_line, key_summary};
use sesame_guest::users;
use sesame_guest::{Command, HostError, Invocation};

const USAGE: Usage = Usage {
    line: "key-remove [--user NAME] KEY...",
    value_flags: &["--user"],
    switches: &[],
    max_positionals: None,
};

/// The `key-remove` command.
#[derive(Debug)]
pub struct KeyRemove;

impl Command for KeyRemove {
    fn run(inv: Invocation) -> Result<String, String> {
        remove_key(&inv.args, &inv.client, users::remove_key)
    }
}

sesame_guest::export_command!(KeyRemove);

/// Checks the arguments and removes the key through `remove_key` (the host's
/// `users::remove_key`, or a test double); `client` is the caller, whose account it is without
/// `--user`.
fn remove_key(
    raw: &[String],
    client: &str,
    remove_key: impl FnOnce(&str, &str) -> Result<bool, HostError>,
) -> Result<String, String> {
    let args = USAGE.check(raw)?;
    let name = account(&args, client)?;
    let key = key_line(&USAGE, &args)?;
    match remove_key(name, &key) {
        Ok(true) => Ok(format!("removed key {} from {name}", key_summary(&key))),
        Ok(false) => Ok(format!("key not present for {name}")),
        Err(e) => Err(format!("cannot remove key from {name}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOB: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIDpyo4ZeTj/fgjh+FvzKwzxzIh8WWnHh6ELIpKiD6cti";

    fn run(
        args: &[&str],
        host: impl FnOnce(&str, &str) -> Result<bool, HostError>,
    ) -> Result<String, String> {
        let raw: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        remove_key(&raw, "dave", host)
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
            Ok("removed key ssh-ed25519 …6ELIpKiD6cti dave@laptop from dave".into())
        );
        assert_eq!(
            asked,
            Some(("dave".into(), format!("ssh-ed25519 {BLOB} dave@laptop")))
        );
    }

    #[test]
    fn another_account_with_user() {
        let mut asked = None;
        let out = run(&["--user=erin", "ssh-ed25519", BLOB], |name, _| {
            asked = Some(name.to_owned());
            Ok(true)
        });
        assert_eq!(out, Ok("removed key ssh-ed25519 …6ELIpKiD6cti from erin".into()));
        assert_eq!(asked.as_deref(), Some("erin"));
    }

    #[test]
    fn not_present() {
        assert_eq!(
            run(&["ssh-ed25519", BLOB], |_, _| Ok(false)),
            Ok("key not present for dave".into())
        );
    }

    #[test]
    fn bad_arguments_never_reach_the_host() {
        let usage = USAGE.line;
        for (args, err) in [
            (&[][..], "missing argument KEY"),
            (&["--user", "erin"], "missing argument KEY"),
            (
                &[BLOB],
                "KEY must be an OpenSSH public key line: TYPE BASE64 [COMMENT]",
            ),
            (&["--user"], "--user needs a value"),
            (&["--all"], "unknown flag --all"),
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
            run(&["--user", "bob", "ssh-ed25519", BLOB], |_, _| Err(
                HostError::Denied("staff may only manage their own keys".into())
            )),
            Err("cannot remove key from bob: denied: staff may only manage their own keys".into())
        );
    }
}
