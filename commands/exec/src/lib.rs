//! `COMMAND [KEY=VALUE]...`: runs the program the operator declared as
//! `[exec.programs.COMMAND]` in `sesamed.toml`, where COMMAND is the name the request used for
//! this module, with the arguments as its parameters. Mapped once per program in a cluster,
//!
//! ```toml
//! [clusters.ops.commands]
//! restart-app = "/usr/lib/sesame/modules/exec.wasm"
//! ```
//!
//! it lets a client run `sesame run web1 restart-app unit=web`. When the program exits 0, its
//! standard output is the command's output. When it exits non-zero (or a signal ends it), the
//! command fails with the exit code and the last lines of the program's standard error:
//!
//! ```text
//! restart-app exited with code 1; standard error:
//! Job for web.service failed because the control process exited with error code.
//! ```
//!
//! Output the host dropped past the program's `max_output` is noted in a last line.
//!
//! Every argument must be `KEY=VALUE` with a non-empty KEY, each KEY once; the value is
//! everything after the first `=` (it may hold `=` itself) and reaches the host unchanged, in
//! the order given. The host does the rest: the program and each parameter must be declared,
//! every declared parameter given, each value of its declared type, and the policy's exec grant
//! must name the program and admit the values.
//!
//! Needs the exec capability.

use sesame_guest::exec::{self, RunOutput};
use sesame_guest::{Command, HostError, Invocation};

/// The most lines of standard error a failure shows (its last ones).
const STDERR_LINES: usize = 20;
/// The most bytes of standard error a failure shows (its last ones).
const STDERR_BYTES: usize = 4096;
/// The last line of an output the host cut short.
const TRUNCATED: &str = "(output truncated: the program printed more than its max_output)";

/// The `exec` command.
#[derive(Debug)]
pub struct Exec;

impl Command for Exec {
    fn run(inv: Invocation) -> Result<String, String> {
        run_program(&inv.command, &inv.args, exec::run)
    }
}

sesame_guest::export_command!(Exec);

/// Checks the arguments, runs program `name` through `run` (the host's `exec::run`, or a test
/// double) and makes the command's answer of how it ended.
fn run_program(
    name: &str,
    raw: &[String],
    run: impl FnOnce(&str, &[(String, String)]) -> Result<RunOutput, HostError>,
) -> Result<String, String> {
    let params = params(name, raw)?;
    let output = run(name, &params).map_err(|e| format!("cannot run {name}: {e}"))?;
    answer(name, &output)
}

/// The arguments as name and value pairs, in order: each `KEY=VALUE` with a non-empty KEY
/// given once, split at the first `=`.
fn params(name: &str, raw: &[String]) -> Result<Vec<(String, String)>, String> {
    let usage = |message: String| format!("{message} (usage: {name} [KEY=VALUE]...)");
    let mut params: Vec<(String, String)> = Vec::with_capacity(raw.len());
    for (i, arg) in raw.iter().enumerate() {
        let Some((key, value)) = arg.split_once('=') else {
            return Err(usage(format!("`{arg}` is not KEY=VALUE")));
        };
        if key.is_empty() {
            // The value is not repeated: it may be a secret.
            return Err(usage(format!("argument {} has no KEY before `=`", i + 1)));
        }
        if params.iter().any(|(k, _)| k == key) {
            return Err(usage(format!("{key} given twice")));
        }
        params.push((key.to_owned(), value.to_owned()));
    }
    Ok(params)
}

/// Exit 0: the program's standard output. Otherwise an error: how it ended, then the end of its
/// standard error. Either way a last line says when the host dropped output.
fn answer(name: &str, output: &RunOutput) -> Result<String, String> {
    match output.exit_code {
        Some(0) => Ok(noting_truncation(output.stdout.clone(), output.truncated)),
        code => Err(noting_truncation(
            failure(name, code, &output.stderr),
            output.truncated,
        )),
    }
}

/// `text`, and [`TRUNCATED`] on a line of its own when the host dropped output.
fn noting_truncation(mut text: String, truncated: bool) -> String {
    if truncated {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(TRUNCATED);
    }
    text
}

/// `NAME exited with code C` (or `was ended by a signal`) and the last [`STDERR_LINES`] lines
/// of `stderr`, at most [`STDERR_BYTES`] of them.
fn failure(name: &str, code: Option<i32>, stderr: &str) -> String {
    let ended = match code {
        Some(code) => format!("{name} exited with code {code}"),
        None => format!("{name} was ended by a signal"),
    };
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    if lines.iter().all(|l| l.trim().is_empty()) {
        return format!("{ended}, with nothing on standard error");
    }
    let shown = &lines[lines.len().saturating_sub(STDERR_LINES)..];
    let heading = if shown.len() < lines.len() {
        format!(
            "{ended}; standard error, last {} of {} lines:",
            shown.len(),
            lines.len()
        )
    } else {
        format!("{ended}; standard error:")
    };
    format!("{heading}\n{}", last_bytes(&shown.join("\n"), STDERR_BYTES))
}

/// The last `max` bytes of `text` (cut at a character boundary, after `…`), or all of it.
fn last_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use sesame_guest::testing::{Call, FakeHost, Run, invocation};

    const NAME: &str = "restart-app";

    fn ran(exit_code: Option<i32>, stdout: &str, stderr: &str, truncated: bool) -> RunOutput {
        RunOutput {
            exit_code,
            stdout: stdout.into(),
            stderr: stderr.into(),
            duration_ms: 25,
            truncated,
        }
    }

    fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    fn exec_call(params: &[(&str, &str)]) -> Call {
        Call::ExecRun {
            name: NAME.into(),
            params: pairs(params),
        }
    }

    /// `restart-app ARGS` from alice, against `host`.
    fn restart_app(host: FakeHost, args: &[&str]) -> Run {
        host.run::<Exec>(invocation("alice", args).with_command(NAME))
    }

    /// A host whose `exec.run` answers `output` whatever it is asked.
    fn answering(output: RunOutput) -> FakeHost {
        FakeHost::new().exec_run(move |_, _| Ok(output.clone()))
    }

    #[test]
    fn runs_the_program_named_like_the_command_and_returns_its_stdout() {
        let host = answering(ran(Some(0), "restarted web\n", "a warning\n", false));
        let run = restart_app(host, &["unit=web"]);
        assert_eq!(run.output, Ok("restarted web\n".into()));
        assert_eq!(run.calls, [exec_call(&[("unit", "web")])]);

        let run = FakeHost::new()
            .exec_run(|name, _| Ok(ran(Some(0), &format!("ran {name}"), "", false)))
            .run::<Exec>(invocation("alice", &[]).with_command("rotate-logs"));
        assert_eq!(run.output, Ok("ran rotate-logs".into()));
        assert_eq!(
            run.calls,
            [Call::ExecRun {
                name: "rotate-logs".into(),
                params: Vec::new()
            }]
        );
    }

    #[test]
    fn params_pass_in_order_and_unchanged() {
        let args = [
            "unit=web",
            "opts=a=b==c",
            "empty=",
            "path=/var/log/app x.log",
            "flag=-rf",
            "Z=last",
        ];
        let run = restart_app(answering(ran(Some(0), "", "", false)), &args);
        assert_eq!(run.output, Ok(String::new()));
        assert_eq!(
            run.calls,
            [exec_call(&[
                ("unit", "web"),
                ("opts", "a=b==c"),
                ("empty", ""),
                ("path", "/var/log/app x.log"),
                ("flag", "-rf"),
                ("Z", "last"),
            ])]
        );
    }

    #[test]
    fn a_non_zero_exit_gives_the_code_and_the_end_of_stderr() {
        let host = answering(ran(
            Some(3),
            "stdout is not shown\n",
            "Job for web.service failed.\nSee journalctl -xe.\n\n",
            false,
        ));
        let run = restart_app(host, &["unit=web"]);
        assert_eq!(
            run.output,
            Err("restart-app exited with code 3; standard error:\n\
                 Job for web.service failed.\nSee journalctl -xe."
                .into())
        );

        let run = restart_app(answering(ran(Some(1), "", " \n", false)), &[]);
        assert_eq!(
            run.output,
            Err("restart-app exited with code 1, with nothing on standard error".into())
        );

        let run = restart_app(answering(ran(None, "", "", false)), &[]);
        assert_eq!(
            run.output,
            Err("restart-app was ended by a signal, with nothing on standard error".into())
        );
    }

    #[test]
    fn stderr_is_bounded_to_its_last_lines_and_bytes() {
        let stderr: String = (1..=45).map(|i| format!("line {i}\n")).collect();
        let run = restart_app(answering(ran(Some(2), "", &stderr, false)), &[]);
        let expected: Vec<String> = (26..=45).map(|i| format!("line {i}")).collect();
        assert_eq!(
            run.output,
            Err(format!(
                "restart-app exited with code 2; standard error, last 20 of 45 lines:\n{}",
                expected.join("\n")
            ))
        );

        // One long line, of multi-byte characters: the end of it, cut at a character boundary.
        let stderr = format!("start {}end", "é".repeat(STDERR_BYTES));
        let run = restart_app(answering(ran(Some(2), "", &stderr, false)), &[]);
        let Err(text) = run.output else {
            panic!("a non-zero exit is an error: {:?}", run.output);
        };
        let (heading, tail) = text.split_once('\n').expect("heading and tail");
        assert_eq!(heading, "restart-app exited with code 2; standard error:");
        assert!(tail.starts_with("…é") && tail.ends_with("éend"), "{tail}");
        assert!(tail.len() <= STDERR_BYTES + "…".len(), "{}", tail.len());
        assert!(!tail.contains("start"));
    }

    #[test]
    fn truncated_output_is_said_in_a_last_line() {
        let run = restart_app(answering(ran(Some(0), "a\nb\n", "", true)), &[]);
        assert_eq!(run.output, Ok(format!("a\nb\n{TRUNCATED}")));
        let run = restart_app(answering(ran(Some(0), "a\nb", "", true)), &[]);
        assert_eq!(run.output, Ok(format!("a\nb\n{TRUNCATED}")));
        let run = restart_app(answering(ran(Some(0), "", "", true)), &[]);
        assert_eq!(run.output, Ok(TRUNCATED.into()));
        let run = restart_app(answering(ran(Some(4), "", "disk full\n", true)), &[]);
        assert_eq!(
            run.output,
            Err(format!(
                "restart-app exited with code 4; standard error:\ndisk full\n{TRUNCATED}"
            ))
        );
    }

    #[test]
    fn host_errors_name_the_program() {
        let run = restart_app(FakeHost::new(), &["unit=web"]);
        assert_eq!(
            run.output,
            Err("cannot run restart-app: denied: not scripted in this test: exec.run".into())
        );
        assert_eq!(run.calls, [exec_call(&[("unit", "web")])]);
        for (error, shown) in [
            (
                HostError::Denied("exec.run restart-app: unit=db is not in the grant".into()),
                "denied: exec.run restart-app: unit=db is not in the grant",
            ),
            (
                HostError::Invalid("exec.run restart-app: unit: \"db\" is not one of web, worker".into()),
                "invalid: exec.run restart-app: unit: \"db\" is not one of web, worker",
            ),
            (
                HostError::Failed("exec.run restart-app: timed out after 30 s".into()),
                "failed: exec.run restart-app: timed out after 30 s",
            ),
        ] {
            let host = FakeHost::new().exec_run(move |_, _| Err(error.clone()));
            let run = restart_app(host, &["unit=db"]);
            assert_eq!(run.output, Err(format!("cannot run restart-app: {shown}")));
            assert_eq!(run.calls, [exec_call(&[("unit", "db")])]);
        }
    }

    #[test]
    fn bad_arguments_never_reach_the_host() {
        for (args, err) in [
            (&["web"][..], "`web` is not KEY=VALUE"),
            (&["unit=web", "--force"], "`--force` is not KEY=VALUE"),
            (&["unit=web", ""], "`` is not KEY=VALUE"),
            (&["=web"], "argument 1 has no KEY before `=`"),
            (&["unit=web", "=s3cret"], "argument 2 has no KEY before `=`"),
            (&["unit=web", "lines=5", "unit=db"], "unit given twice"),
            (&["unit=web", "unit=web"], "unit given twice"),
        ] {
            let host = FakeHost::new().exec_run(|_, _| panic!("the host was called"));
            let run = restart_app(host, args);
            assert_eq!(
                run.output,
                Err(format!("{err} (usage: restart-app [KEY=VALUE]...)")),
                "{args:?}"
            );
            assert_eq!(run.calls, [], "{args:?}");
        }
    }
}
