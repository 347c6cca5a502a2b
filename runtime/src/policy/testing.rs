//! The `opa test` that regorus lacks: runs every rule named `test_*` in every package of a policy
//! directory and reports each one with its file, line, printed output and time.
//!
//! A test passes iff it evaluates to `true`. Each test runs on its own clone of one prepared
//! engine, so tests cannot leak state into one another. The report also gives the line coverage
//! of the policy files (not the tests) over the whole run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regorus::utils::limits::ExecutionTimerConfig;

use super::bundle::{Bundle, FileKind};
use super::{PolicyError, RegoMessage, TIME_CHECK_INTERVAL};

/// How long one test may run before it is abandoned (and fails).
pub const TEST_TIME_LIMIT: Duration = Duration::from_secs(10);

/// The outcome of one test rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// The rule's full name, e.g. `data.sesame_test.test_users_may_echo`.
    pub name: String,
    /// The file that defines the rule.
    pub file: PathBuf,
    /// The line of the rule's (first) head, 1-based.
    pub line: Option<u32>,
    /// Whether the rule evaluated to `true`.
    pub passed: bool,
    /// Why the test failed when it did not simply evaluate to something other than `true`:
    /// an evaluation error, or the non-boolean value it produced.
    pub error: Option<String>,
    /// The output of `print` calls made while the test ran, each prefixed with its `file:line`.
    pub prints: Vec<String>,
    /// How long the test took, microseconds.
    pub duration_us: u64,
}

/// The outcomes of every test of a directory, in file order, then line order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestReport {
    /// One entry per test rule.
    pub outcomes: Vec<TestOutcome>,
    /// Line coverage of each policy file (tests excluded) the tests evaluated, in file order.
    pub coverage: Vec<FileCoverage>,
}

/// Which lines of one policy file the tests evaluated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileCoverage {
    /// The policy file.
    pub file: PathBuf,
    /// Lines (1-based) some test evaluated.
    pub covered: BTreeSet<u32>,
    /// Lines (1-based) holding rule code that no test evaluated.
    pub not_covered: BTreeSet<u32>,
}

impl TestReport {
    /// How many tests passed.
    pub fn passed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.passed).count()
    }

    /// How many tests failed.
    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.passed()
    }

    /// Whether there were tests and all passed.
    pub fn all_passed(&self) -> bool {
        !self.outcomes.is_empty() && self.failed() == 0
    }
}

/// Loads every `.rego` (tests included) and `.json` file under `dir`, runs every rule named `test_*`
/// in every package, and reports each one. Fails only when the directory cannot be loaded.
pub fn run_tests(dir: &Path) -> Result<TestReport, PolicyError> {
    let bundle = Bundle::read(dir, true)?;
    let loaded = bundle.engine()?;
    let mut template = loaded.engine.clone();
    template.set_enable_coverage(true);
    template.set_gather_prints(true);
    template.set_execution_timer_config(ExecutionTimerConfig {
        limit: TEST_TIME_LIMIT,
        check_interval: TIME_CHECK_INTERVAL,
    });
    let mut seen = BTreeSet::new();
    let mut outcomes = Vec::new();
    let mut coverage: BTreeMap<String, (BTreeSet<u32>, BTreeSet<u32>)> = BTreeMap::new();
    for module in &loaded.modules {
        let Some(file) = bundle.files.get(module.file) else {
            continue;
        };
        for (rule, line) in test_rule_heads(&file.contents) {
            let name = format!("{}.{rule}", module.package);
            if !seen.insert(name.clone()) {
                continue; // a rule with several definitions (or files) is one test
            }
            let mut engine = template.clone();
            let started = Instant::now();
            let result = engine.eval_rule(name.clone());
            let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            let prints = engine.take_prints().unwrap_or_default();
            if let Ok(report) = engine.get_coverage_report() {
                for file in report.files {
                    let (covered, not_covered) = coverage.entry(file.path).or_default();
                    covered.extend(file.covered);
                    not_covered.extend(file.not_covered);
                }
            }
            let (passed, error) = match result {
                Ok(regorus::Value::Bool(true)) => (true, None),
                Ok(regorus::Value::Bool(false) | regorus::Value::Undefined) => (false, None),
                Ok(other) => (false, Some(format!("evaluated to {other}, not true"))),
                Err(e) => (false, Some(RegoMessage::from(&e).full)),
            };
            outcomes.push(TestOutcome {
                name,
                file: file.path.clone(),
                line: Some(line),
                passed,
                error,
                prints,
                duration_us,
            });
        }
    }
    let coverage = bundle
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Policy)
        .filter_map(|f| {
            let (covered, not_covered) = coverage.remove(&f.name)?;
            let not_covered = not_covered.difference(&covered).copied().collect();
            Some(FileCoverage {
                file: f.path.clone(),
                covered,
                not_covered,
            })
        })
        .collect();
    Ok(TestReport { outcomes, coverage })
}

/// The names and 1-based lines of the rules named `test_*` defined in `source`: identifiers that
/// start a line outside any brace, bracket, parenthesis, string or comment. Functions
/// (`test_x(a) := ...`) are not tests and are skipped.
fn test_rule_heads(source: &str) -> Vec<(String, u32)> {
    let mut heads = Vec::new();
    let mut depth = 0_i64;
    let mut in_string = false;
    let mut in_raw = false;
    for (index, line) in source.lines().enumerate() {
        let head_allowed = depth == 0 && !in_raw && !in_string;
        if head_allowed {
            let rest = line.trim_start();
            if let Some(name) = test_name_at(rest) {
                let after = rest[name.len()..].trim_start();
                if !after.starts_with('(') {
                    heads.push((name.to_owned(), u32::try_from(index + 1).unwrap_or(u32::MAX)));
                }
            }
        }
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                _ if in_raw => in_raw = c != '`',
                _ if in_string => match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => in_string = false,
                    _ => {}
                },
                '#' => break,
                '"' => in_string = true,
                '`' => in_raw = true,
                '{' | '[' | '(' => depth += 1,
                '}' | ']' | ')' => depth -= 1,
                _ => {}
            }
        }
        in_string = false; // a plain string cannot span lines
    }
    heads
}

/// The identifier at the start of `text` when it is a `test_` name.
fn test_name_at(text: &str) -> Option<&str> {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let name = &text[..end];
    name.starts_with("test_").then_some(name)
}

#[cfg(test)]
mod tests {
    use super::test_rule_heads;

    #[test]
    fn finds_rule_heads_outside_bodies_strings_and_comments() {
        let source = r#"package p
test_a if {
    test_not_a_head := 1
    x := "{"
}
# test_commented if true
  test_b := true
test_fn(x) := x
s := `
test_in_raw
`
test_c contains 1
"#;
        let heads = test_rule_heads(source);
        assert_eq!(
            heads,
            vec![
                ("test_a".to_owned(), 2),
                ("test_b".to_owned(), 7),
                ("test_c".to_owned(), 12)
            ]
        );
    }
}
