//! `salt-apply STATE [--test] [--pillar JSON]`: applies the Salt state STATE (an sls name such
//! as `web.nginx`) with `salt-call --local` on the host, and summarises the outcome, one line
//! per state:
//!
//! ```text
//! nginx: 1 changed, 0 failed
//!   [ok] pkg_|-nginx_|-nginx_|-installed — All specified packages are already installed
//!   [changed] file_|-conf_|-/etc/nginx/nginx.conf_|-managed — File /etc/nginx/nginx.conf updated
//! ```
//!
//! With `--test` nothing is changed; the states that would change something read
//! `[would change]` and the first line ends in `(test mode: nothing was changed)`. When a
//! state fails (`[FAILED]`), the same summary comes back as the command's error. `--pillar`
//! passes pillar data as a JSON object (quote it: `--pillar '{"port": 8080}'`); the host
//! checks it. A comment of several lines continues on indented lines.
//!
//! Needs the salt capability; the policy's salt grant decides which states the caller may
//! apply.

use admintext::Usage;
use sesame_guest::salt::{self, ApplyReport, StateOutcome};
use sesame_guest::{Command, HostError, Invocation};

const USAGE: Usage = Usage {
    line: "salt-apply STATE [--test] [--pillar JSON]",
    value_flags: &["--pillar"],
    switches: &["--test"],
    max_positionals: Some(1),
};

/// The `salt-apply` command.
#[derive(Debug)]
pub struct SaltApply;

impl Command for SaltApply {
    fn run(inv: Invocation) -> Result<String, String> {
        salt_apply(&inv.args, salt::apply)
    }
}

sesame_guest::export_command!(SaltApply);

/// Checks the arguments, applies the state through `apply` (the host's `salt::apply`, or a
/// test double) and summarises the report: `Ok` when every state succeeded, `Err` otherwise.
fn salt_apply(
    raw: &[String],
    apply: impl FnOnce(&str, Option<&str>, bool) -> Result<ApplyReport, HostError>,
) -> Result<String, String> {
    let args = USAGE.check(raw)?;
    let state = USAGE.name(&args, 0, "STATE")?;
    let pillar = args.flag_value("--pillar")?;
    let test = args.has_flag("--test");
    let report = apply(state, pillar, test).map_err(|e| format!("cannot apply {state}: {e}"))?;
    let text = summary(state, &report, test);
    if report.succeeded { Ok(text) } else { Err(text) }
}

/// The first line (counts), then one line per state in the host's order.
fn summary(state: &str, report: &ApplyReport, test: bool) -> String {
    let mut out = format!("{state}: {} changed, {} failed", report.changed, report.failed);
    if test {
        out.push_str(" (test mode: nothing was changed)");
    }
    for outcome in &report.states {
        out.push('\n');
        out.push_str(&state_line(outcome, test));
    }
    out
}

/// `  [STATUS] ID — COMMENT`; the comment's further lines are indented under it.
fn state_line(outcome: &StateOutcome, test: bool) -> String {
    let mut line = format!("  [{}] {}", status(outcome, test), outcome.id);
    let mut comment = outcome
        .comment
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty());
    if let Some(first) = comment.next() {
        line.push_str(" — ");
        line.push_str(first.trim_start());
        for more in comment {
            line.push_str("\n      ");
            line.push_str(more);
        }
    }
    line
}

/// `FAILED` when the state failed, `would change` when it would change something (test mode:
/// Salt's result is then `None`), `changed` when it did, `ok` when nothing needed doing.
fn status(outcome: &StateOutcome, test: bool) -> &'static str {
    match (outcome.result, outcome.changed) {
        (Some(false), _) => "FAILED",
        (None, _) => "would change",
        (Some(true), true) if test => "would change",
        (Some(true), true) => "changed",
        (Some(true), false) => "ok",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PKG: &str = "pkg_|-nginx_|-nginx_|-installed";
    const CONF: &str = "file_|-/etc/nginx/nginx.conf_|-/etc/nginx/nginx.conf_|-managed";
    const SVC: &str = "service_|-nginx_|-nginx_|-running";

    fn outcome(id: &str, result: Option<bool>, changed: bool, comment: &str) -> StateOutcome {
        StateOutcome {
            id: id.into(),
            result,
            changed,
            comment: comment.into(),
        }
    }

    fn report(states: Vec<StateOutcome>) -> ApplyReport {
        let failed = states.iter().filter(|s| s.result == Some(false)).count();
        ApplyReport {
            succeeded: failed == 0,
            changed: states.iter().filter(|s| s.changed).count() as u32,
            failed: failed as u32,
            states,
        }
    }

    type Asked = Option<(String, Option<String>, bool)>;

    /// Runs the command against a host that records what it was asked and answers `answer`.
    fn run(args: &[&str], answer: Result<ApplyReport, HostError>) -> (Result<String, String>, Asked) {
        let raw: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut asked = None;
        let out = salt_apply(&raw, |state, pillar, test| {
            asked = Some((state.to_owned(), pillar.map(str::to_owned), test));
            answer
        });
        (out, asked)
    }

    #[test]
    fn an_apply_that_changed_something() {
        let answer = report(vec![
            outcome(
                PKG,
                Some(true),
                false,
                "All specified packages are already installed",
            ),
            outcome(CONF, Some(true), true, "File /etc/nginx/nginx.conf updated"),
        ]);
        let (out, asked) = run(&["nginx"], Ok(answer));
        assert_eq!(
            out,
            Ok(format!(
                "nginx: 1 changed, 0 failed\n  \
                 [ok] {PKG} — All specified packages are already installed\n  \
                 [changed] {CONF} — File /etc/nginx/nginx.conf updated"
            ))
        );
        assert_eq!(asked, Some(("nginx".into(), None, false)));
    }

    #[test]
    fn test_mode() {
        let answer = report(vec![
            outcome(
                PKG,
                Some(true),
                false,
                "All specified packages are already installed",
            ),
            outcome(
                CONF,
                None,
                true,
                "The file /etc/nginx/nginx.conf is set to be changed",
            ),
        ]);
        let (out, asked) = run(
            &["web.nginx", "--test", "--pillar", r#"{"port":8080}"#],
            Ok(answer),
        );
        assert_eq!(
            out,
            Ok(format!(
                "web.nginx: 1 changed, 0 failed (test mode: nothing was changed)\n  \
                 [ok] {PKG} — All specified packages are already installed\n  \
                 [would change] {CONF} — The file /etc/nginx/nginx.conf is set to be changed"
            ))
        );
        assert_eq!(
            asked,
            Some(("web.nginx".into(), Some(r#"{"port":8080}"#.into()), true))
        );
    }

    #[test]
    fn a_failed_state_is_an_error_with_the_same_summary() {
        let answer = report(vec![
            outcome(CONF, Some(true), true, "File /etc/nginx/nginx.conf updated"),
            outcome(
                SVC,
                Some(false),
                false,
                "Job for nginx.service failed.\n  See journalctl -xe.\n",
            ),
        ]);
        let (out, _) = run(&["nginx"], Ok(answer));
        assert_eq!(
            out,
            Err(format!(
                "nginx: 1 changed, 1 failed\n  \
                 [changed] {CONF} — File /etc/nginx/nginx.conf updated\n  \
                 [FAILED] {SVC} — Job for nginx.service failed.\n        \
                 See journalctl -xe."
            ))
        );
    }

    #[test]
    fn states_without_comments_and_empty_reports() {
        let (out, _) = run(&["motd"], Ok(report(vec![outcome(PKG, Some(true), false, "")])));
        assert_eq!(out, Ok(format!("motd: 0 changed, 0 failed\n  [ok] {PKG}")));
        let (out, _) = run(&["motd", "--test"], Ok(report(Vec::new())));
        assert_eq!(
            out,
            Ok("motd: 0 changed, 0 failed (test mode: nothing was changed)".into())
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(status(&outcome(PKG, Some(true), false, ""), false), "ok");
        assert_eq!(status(&outcome(PKG, Some(true), false, ""), true), "ok");
        assert_eq!(status(&outcome(PKG, Some(true), true, ""), false), "changed");
        assert_eq!(status(&outcome(PKG, Some(true), true, ""), true), "would change");
        assert_eq!(status(&outcome(PKG, None, true, ""), true), "would change");
        assert_eq!(status(&outcome(PKG, Some(false), true, ""), false), "FAILED");
        assert_eq!(status(&outcome(PKG, Some(false), false, ""), true), "FAILED");
    }

    #[test]
    fn bad_arguments_never_reach_the_host() {
        let usage = USAGE.line;
        for (args, err) in [
            (&[][..], "missing argument STATE"),
            (&["--test"], "missing argument STATE"),
            (&[" "], "STATE is empty"),
            (&["nginx", "motd"], "unexpected argument `motd`"),
            (&["nginx", "--dry-run"], "unknown flag --dry-run"),
            (&["nginx", "--test=false"], "--test takes no value"),
            (&["nginx", "--pillar"], "--pillar needs a value"),
            // An unquoted pillar with spaces splits into extra arguments.
            (
                &["nginx", "--pillar", "{\"port\":", "8080}"],
                "unexpected argument `8080}`",
            ),
        ] {
            let (out, asked) = run(args, Ok(report(Vec::new())));
            assert_eq!(out, Err(format!("{err} (usage: {usage})")), "{args:?}");
            assert_eq!(asked, None, "{args:?}");
        }
    }

    #[test]
    fn host_errors_name_the_state() {
        let (out, _) = run(
            &["users"],
            Err(HostError::Denied("state users is not in the grant".into())),
        );
        assert_eq!(
            out,
            Err("cannot apply users: denied: state users is not in the grant".into())
        );
        let (out, _) = run(
            &["nginx", "--pillar", "[1]"],
            Err(HostError::Invalid("pillar: a JSON object expected".into())),
        );
        assert_eq!(
            out,
            Err("cannot apply nginx: invalid: pillar: a JSON object expected".into())
        );
    }
}
