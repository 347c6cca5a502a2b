//! `template [ACCOUNT] [--groups]`: shows a local account, the caller's own (the account named
//! like the client) unless ACCOUNT names another:
//!
//! ```text
//! dave: uid 1001, shell /bin/bash, unlocked
//! ```
//!
//! With `--groups` the line ends with the account's supplementary groups
//! (`, groups developers ops`). The policy's users grant decides which accounts a request may
//! see; an account outside it reads as absent. Arguments are checked before the host is asked.
//! Logs one info line.
//!
//! Needs the users capability.

use sesame_guest::users::{self, Account};
use sesame_guest::{Args, Command, Invocation, log};

const USAGE: &str = "template [ACCOUNT] [--groups]";

/// The `template` command.
#[derive(Debug)]
pub struct Template;

impl Command for Template {
    fn run(inv: Invocation) -> Result<String, String> {
        let request = Request::parse(&inv.args, &inv.client)?;
        let accounts = users::list().map_err(|e| format!("cannot list accounts: {e}"))?;
        let account = accounts
            .iter()
            .find(|a| a.name == request.account)
            .ok_or_else(|| format!("no account {} visible to this request", request.account))?;
        log::info(&format!("{} looked up account {}", inv.client, account.name));
        Ok(describe(account, request.groups))
    }
}

sesame_guest::export_command!(Template);

/// What the caller asked for, from the command's arguments.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    /// The account to show.
    account: String,
    /// `--groups`: list the supplementary groups too.
    groups: bool,
}

impl Request {
    /// Parses and checks the arguments; `client` is the caller, whose account it is by default.
    fn parse(raw: &[String], client: &str) -> Result<Self, String> {
        let args = Args::new(raw);
        let flags = raw.iter().take_while(|a| *a != "--");
        if let Some(flag) = flags.filter(|a| a.starts_with("--")).find(|a| *a != "--groups") {
            return Err(format!("unknown flag {flag} (usage: {USAGE})"));
        }
        if let Some(extra) = args.positional(1) {
            return Err(format!("unexpected argument `{extra}` (usage: {USAGE})"));
        }
        let account = args.positional(0).unwrap_or(client);
        if account.trim().is_empty() {
            return Err(format!("ACCOUNT is empty (usage: {USAGE})"));
        }
        Ok(Self {
            account: account.to_owned(),
            groups: args.has_flag("--groups"),
        })
    }
}

/// The line shown on success.
fn describe(account: &Account, groups: bool) -> String {
    let state = if account.locked { "locked" } else { "unlocked" };
    let mut line = format!(
        "{}: uid {}, shell {}, {state}",
        account.name, account.uid, account.shell
    );
    if groups {
        match account.groups.as_slice() {
            [] => line.push_str(", no supplementary groups"),
            names => line.push_str(&format!(", groups {}", names.join(" "))),
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use sesame_guest::HostError;
    use sesame_guest::testing::{Call, FakeHost, LogLine, Run, invocation};

    fn parse(args: &[&str]) -> Result<Request, String> {
        let raw: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Request::parse(&raw, "dave")
    }

    fn account(name: &str, groups: &[&str], locked: bool) -> Account {
        Account {
            name: name.into(),
            uid: 1001,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            shell: "/bin/bash".into(),
            locked,
        }
    }

    // Pure functions first: argument parsing and output.

    #[test]
    fn parses_the_account_and_the_switch() {
        let request = |account: &str, groups| {
            Ok(Request {
                account: account.into(),
                groups,
            })
        };
        assert_eq!(parse(&[]), request("dave", false));
        assert_eq!(parse(&["erin", "--groups"]), request("erin", true));
        assert_eq!(parse(&["--groups"]), request("dave", true));
        assert_eq!(parse(&["--", "--odd"]), request("--odd", false));
    }

    #[test]
    fn bad_arguments() {
        for (args, err) in [
            (&["--group"][..], "unknown flag --group"),
            (&["erin", "frank"], "unexpected argument `frank`"),
            (&[" "], "ACCOUNT is empty"),
        ] {
            assert_eq!(parse(args), Err(format!("{err} (usage: {USAGE})")), "{args:?}");
        }
    }

    #[test]
    fn describes_an_account() {
        let dave = account("dave", &["developers", "ops"], false);
        assert_eq!(
            describe(&dave, false),
            "dave: uid 1001, shell /bin/bash, unlocked"
        );
        assert_eq!(
            describe(&dave, true),
            "dave: uid 1001, shell /bin/bash, unlocked, groups developers ops"
        );
        assert_eq!(
            describe(&account("erin", &[], true), true),
            "erin: uid 1001, shell /bin/bash, locked, no supplementary groups"
        );
    }

    // Then `run` end to end, against a scripted host (see `sesame_guest::testing`).

    fn run_with(host: FakeHost, args: &[&str]) -> Run {
        host.run::<Template>(invocation("dave", args))
    }

    /// A host whose users grant lets the request see dave and erin.
    fn host() -> FakeHost {
        FakeHost::new().users_list(|| {
            Ok(vec![
                account("dave", &["developers"], false),
                account("erin", &[], true),
            ])
        })
    }

    #[test]
    fn run_shows_the_callers_account() {
        let run = run_with(host(), &[]);
        assert_eq!(run.output, Ok("dave: uid 1001, shell /bin/bash, unlocked".into()));
        assert_eq!(run.calls, [Call::UsersList]);
        assert_eq!(run.logs, [LogLine::info("dave looked up account dave")]);
    }

    #[test]
    fn run_shows_another_account_with_groups() {
        let run = run_with(host(), &["erin", "--groups"]);
        assert_eq!(
            run.output,
            Ok("erin: uid 1001, shell /bin/bash, locked, no supplementary groups".into())
        );
    }

    #[test]
    fn run_with_an_account_the_request_cannot_see() {
        let run = run_with(host(), &["root"]);
        assert_eq!(run.output, Err("no account root visible to this request".into()));
        assert_eq!(run.logs, []);
    }

    #[test]
    fn run_reports_host_errors() {
        // Not scripted: denied, as by a daemon whose policy grants no users capability.
        let run = run_with(FakeHost::new(), &[]);
        assert_eq!(
            run.output,
            Err("cannot list accounts: denied: not scripted in this test: users.list".into())
        );
        let failing = FakeHost::new().users_list(|| Err(HostError::Failed("getent exited 2".into())));
        let run = run_with(failing, &[]);
        assert_eq!(
            run.output,
            Err("cannot list accounts: failed: getent exited 2".into())
        );
    }

    #[test]
    fn run_never_asks_the_host_with_bad_arguments() {
        let run = run_with(host(), &["--all"]);
        assert_eq!(run.output, Err(format!("unknown flag --all (usage: {USAGE})")));
        assert_eq!(run.calls, []);
    }
}
