//! `sesamed policy ...`: the policy author's toolkit — run a directory's tests with coverage,
//! evaluate one input, and check a directory before it is deployed.
//!
//! Exit status of every subcommand: 0 success, 1 a negative outcome (a test failed, coverage below
//! the threshold, the request denied), 2 the directory or input could not be loaded, or bad usage.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;

use super::testing::{self, FileCoverage, TestReport};
use super::{Decision, Policy, PolicyInput, check, explain};

/// `sesamed policy <command>`.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Run every `test_*` rule of one or more policy directories.
    ///
    /// Prints `PASS|FAIL <rule> (<file>:<line>) <time>` per test, the output of its `print`
    /// calls indented under it, the error of a failing test, and a last line `N passed, M failed`.
    /// Exit status: 0 all passed, 1 a test failed (or none was found, or coverage is below
    /// --threshold), 2 a directory could not be loaded.
    Test(TestArgs),
    /// Evaluate the decision for one input document and print it as JSON.
    ///
    /// Prints `{"decision": "allow"|"deny", "reasons", "grant", "limits"}` as the daemon reads them,
    /// `"value"`: the raw value of data.sesame.decision (null when undefined), and `"error"` when
    /// evaluating failed. Exit status: 0 allowed, 1 denied, 2 the policy or input could not be
    /// loaded.
    Eval(EvalArgs),
    /// Compile a policy directory as the daemon would, and lint it.
    ///
    /// Errors are printed as `file:line:col: message` (exit 2): syntax errors in any .rego file,
    /// tests included; malformed data files; rules that do not compile together; no
    /// data.sesame.decision. Warnings (exit 0) name rules of policy files that no policy file
    /// references (a lexical check: see docs/policy.md for its limits).
    Check(CheckArgs),
}

/// Arguments of `sesamed policy test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Policy directories (each loaded on its own, tests included).
    #[arg(value_name = "DIR", default_value = "policies")]
    pub dirs: Vec<PathBuf>,
    /// Print the line coverage of each policy file, with the lines no test evaluated.
    #[arg(long)]
    pub coverage: bool,
    /// Fail (exit 1) when total line coverage is below this percentage.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub threshold: Option<f64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// How `sesamed policy test` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per test, then the summary.
    Text,
    /// One JSON object: `{"tests": [...], "coverage": {...}, "summary": {...}}`.
    Json,
}

/// Arguments of `sesamed policy eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The input document: JSON shaped like the daemon's input
    /// (`{client, request, host, module, now_ns}`; see docs/policy.md).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// The policy directory.
    #[arg(long, value_name = "DIR", default_value = "policies")]
    pub dir: PathBuf,
    /// Also print `"explain"`: every rule of package sesame that has a value for this input
    /// (`rules`: name, file:line, value), and every policy line the evaluation of the decision
    /// executed (`lines`: file, line, code). An executed line is one the evaluator tried; its
    /// condition may have failed.
    #[arg(long)]
    pub explain: bool,
}

/// Arguments of `sesamed policy check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The policy directory.
    #[arg(value_name = "DIR", default_value = "policies")]
    pub dir: PathBuf,
}

impl PolicyCommand {
    /// Runs the command, printing to stdout and stderr; returns the exit status.
    pub fn run(self) -> ExitCode {
        let status = self.run_to(&mut io::stdout().lock(), &mut io::stderr().lock());
        ExitCode::from(status.code())
    }

    /// Runs the command, printing to `out` and `err`.
    pub fn run_to(self, out: &mut dyn Write, err: &mut dyn Write) -> Status {
        let result = match self {
            PolicyCommand::Test(args) => test(&args, out, err),
            PolicyCommand::Eval(args) => eval(&args, out, err),
            PolicyCommand::Check(args) => run_check(&args.dir, out, err),
        };
        // A closed pipe (`| head`) is not a failure; anything else writing output is.
        result.unwrap_or_else(|e| {
            if e.kind() == io::ErrorKind::BrokenPipe {
                Status::Success
            } else {
                Status::Error
            }
        })
    }
}

/// How a `sesamed policy` command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exit 0.
    Success,
    /// Exit 1: a test failed, coverage is below the threshold, or the request was denied.
    Failure,
    /// Exit 2: something could not be loaded or read.
    Error,
}

impl Status {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Failure => 1,
            Status::Error => 2,
        }
    }
}

fn test(args: &TestArgs, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<Status> {
    let mut report = TestReport::default();
    let mut load_failed = false;
    for dir in &args.dirs {
        match testing::run_tests(dir) {
            Ok(one) => {
                report.outcomes.extend(one.outcomes);
                report.coverage.extend(one.coverage);
            }
            Err(error) => {
                writeln!(err, "sesamed policy test: {error}")?;
                load_failed = true;
            }
        }
    }
    let percent = report.coverage_percent();
    let below = args.threshold.is_some_and(|t| percent < t);
    match args.format {
        Format::Text => print_text(&report, args.coverage, out)?,
        Format::Json => {
            let json = json_report(&report, args.threshold);
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&json).map_err(io::Error::other)?
            )?;
        }
    }
    if let (true, Some(threshold)) = (below, args.threshold) {
        writeln!(
            err,
            "sesamed policy test: coverage {percent:.1}% is below the threshold {threshold}%"
        )?;
    }
    if report.outcomes.is_empty() && !load_failed {
        writeln!(err, "sesamed policy test: no test_* rules found")?;
    }
    Ok(if load_failed {
        Status::Error
    } else if !report.all_passed() || below {
        Status::Failure
    } else {
        Status::Success
    })
}

fn print_text(report: &TestReport, coverage: bool, out: &mut dyn Write) -> io::Result<()> {
    for o in &report.outcomes {
        let verdict = if o.passed { "PASS" } else { "FAIL" };
        let line = o.line.map(|l| format!(":{l}")).unwrap_or_default();
        writeln!(
            out,
            "{verdict} {} ({}{line}) {}us",
            o.name,
            o.file.display(),
            o.duration_us
        )?;
        for print in &o.prints {
            writeln!(out, "    {print}")?;
        }
        if let Some(error) = &o.error {
            writeln!(out, "    error: {error}")?;
        } else if !o.passed {
            writeln!(out, "    error: evaluated to false or undefined")?;
        }
    }
    if coverage {
        writeln!(out, "coverage:")?;
        for file in &report.coverage {
            let total = file.covered.len() + file.not_covered.len();
            write!(
                out,
                "  {} {:.1}% ({}/{total} lines)",
                file.file.display(),
                file.percent(),
                file.covered.len()
            )?;
            if !file.not_covered.is_empty() {
                write!(out, " not covered: {}", ranges(&file.not_covered))?;
            }
            writeln!(out)?;
        }
        writeln!(out, "  total {:.1}%", report.coverage_percent())?;
    }
    writeln!(out, "{} passed, {} failed", report.passed(), report.failed())
}

fn json_report(report: &TestReport, threshold: Option<f64>) -> serde_json::Value {
    let tests: Vec<_> = report
        .outcomes
        .iter()
        .map(|o| {
            json!({
                "name": o.name,
                "file": o.file,
                "line": o.line,
                "passed": o.passed,
                "error": o.error,
                "prints": o.prints,
                "duration_us": o.duration_us,
            })
        })
        .collect();
    let files: Vec<_> = report.coverage.iter().map(file_json).collect();
    json!({
        "tests": tests,
        "coverage": {"files": files, "percent": report.coverage_percent()},
        "summary": {
            "passed": report.passed(),
            "failed": report.failed(),
            "coverage_percent": report.coverage_percent(),
            "threshold": threshold,
        },
    })
}

fn file_json(file: &FileCoverage) -> serde_json::Value {
    json!({
        "file": file.file,
        "percent": file.percent(),
        "covered": file.covered,
        "not_covered": file.not_covered,
    })
}

/// `3, 5-7, 10`.
fn ranges(lines: &BTreeSet<u32>) -> String {
    let mut text = String::new();
    let mut iter = lines.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        if !text.is_empty() {
            text.push_str(", ");
        }
        let _ = if start == end {
            write!(text, "{start}")
        } else {
            write!(text, "{start}-{end}")
        };
    }
    text
}

fn eval(args: &EvalArgs, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<Status> {
    let input = match read_input(&args.input) {
        Ok(input) => input,
        Err(message) => {
            writeln!(err, "sesamed policy eval: {message}")?;
            return Ok(Status::Error);
        }
    };
    let policy = match Policy::load(&args.dir) {
        Ok(policy) => policy,
        Err(error) => {
            writeln!(err, "sesamed policy eval: {error}")?;
            return Ok(Status::Error);
        }
    };
    let decision = policy.decide(&input);
    let mut report = match &decision {
        Decision::Allow(grant) => json!({
            "decision": "allow",
            "reasons": grant.reasons,
            "grant": grant.document(),
            "limits": grant.limits,
        }),
        Decision::Deny(reasons) => json!({"decision": "deny", "reasons": reasons.0}),
    };
    match policy.evaluate_json(&input) {
        Ok(value) => report["value"] = value.unwrap_or(serde_json::Value::Null),
        Err(error) => report["error"] = json!(error.to_string()),
    }
    report["revision"] = json!(policy.revision());
    if args.explain {
        match explain::explain(&policy, &input) {
            Ok(explanation) => {
                report["explain"] = serde_json::to_value(explanation).map_err(io::Error::other)?;
            }
            Err(error) => report["explain"] = json!({"error": error.to_string()}),
        }
    }
    writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&report).map_err(io::Error::other)?
    )?;
    Ok(if decision.is_allowed() {
        Status::Success
    } else {
        Status::Failure
    })
}

fn read_input(path: &Path) -> Result<PolicyInput, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not a policy input: {e}", path.display()))
}

fn run_check(dir: &Path, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<Status> {
    let report = check::check(dir);
    for error in &report.errors {
        writeln!(err, "{error}")?;
    }
    for warning in &report.warnings {
        writeln!(err, "warning: {warning}")?;
    }
    if report.errors.is_empty() {
        writeln!(
            out,
            "{}: OK ({} warning{})",
            dir.display(),
            report.warnings.len(),
            if report.warnings.len() == 1 { "" } else { "s" }
        )?;
        if let Some(cache) = &report.cache {
            writeln!(out, "{cache}")?;
        }
        if let Some(depth) = report.eval_depth {
            writeln!(
                out,
                "evaluation nests at most {depth} levels deep (a policy may nest {})",
                super::MAX_EVAL_DEPTH
            )?;
        }
        Ok(Status::Success)
    } else {
        Ok(Status::Error)
    }
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| format!("`{text}` is not a number"))?;
    if (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is not a percentage (0 to 100)"))
    }
}

#[cfg(test)]
mod tests;
