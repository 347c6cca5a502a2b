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

use super::bundle::{Bundle, FileKind, LoadedEngine};
use super::source;
use super::{HANDOVER_GRACE, LOAD_TIME_LIMIT, PolicyError, RegoMessage, TIME_CHECK_INTERVAL, stack};

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
    /// Line coverage of each policy file (tests excluded), in file order. A file no test evaluated
    /// at all has every line holding code (other than `package` and `import`) uncovered.
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

    /// Total line coverage of the policy files, percent (100 when there is no code to cover).
    pub fn coverage_percent(&self) -> f64 {
        let covered: usize = self.coverage.iter().map(|c| c.covered.len()).sum();
        let missed: usize = self.coverage.iter().map(|c| c.not_covered.len()).sum();
        percent(covered, covered + missed)
    }

    /// Whether there were tests and all passed.
    pub fn all_passed(&self) -> bool {
        !self.outcomes.is_empty() && self.failed() == 0
    }
}

impl FileCoverage {
    /// Line coverage of this file, percent (100 when it has no code to cover).
    pub fn percent(&self) -> f64 {
        percent(self.covered.len(), self.covered.len() + self.not_covered.len())
    }
}

/// Loads every `.rego` (tests included) and `.json` file under `dir`, runs every rule named `test_*`
/// in every package, and reports each one. Fails only when the directory cannot be loaded. Loading
/// and every test run on policy threads ([`stack`]); a test that has not answered
/// [`HANDOVER_GRACE`] after [`TEST_TIME_LIMIT`] fails.
pub fn run_tests(dir: &Path) -> Result<TestReport, PolicyError> {
    let owned = dir.to_owned();
    let (bundle, loaded) = stack::run_within(LOAD_TIME_LIMIT, move || {
        let bundle = Bundle::read(&owned, true)?;
        let loaded = bundle.engine()?;
        Ok::<_, PolicyError>((bundle, loaded))
    })
    .unwrap_or_else(|failure| {
        Err(PolicyError::Engine {
            dir: dir.to_owned(),
            message: failure.to_string(),
        })
    })?;
    run_loaded(&bundle, &loaded)
}

fn run_loaded(bundle: &Bundle, loaded: &LoadedEngine) -> Result<TestReport, PolicyError> {
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
            let rule = name.clone();
            let started = Instant::now();
            let ran = stack::run_within(TEST_TIME_LIMIT + HANDOVER_GRACE, move || {
                let result = engine.eval_rule(rule);
                let late = started.elapsed() > TEST_TIME_LIMIT;
                let prints = engine.take_prints().unwrap_or_default();
                let report = engine.get_coverage_report().ok();
                let verdict = match result {
                    _ if late => (
                        false,
                        Some(format!(
                            "exceeded its time limit ({} s)",
                            TEST_TIME_LIMIT.as_secs()
                        )),
                    ),
                    Ok(regorus::Value::Bool(true)) => (true, None),
                    Ok(regorus::Value::Bool(false) | regorus::Value::Undefined) => (false, None),
                    Ok(other) => (false, Some(format!("evaluated to {other}, not true"))),
                    Err(e) => (false, Some(RegoMessage::from(&e).full)),
                };
                (verdict, prints, report)
            });
            let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            let ((passed, error), prints, report) = match ran {
                Ok(ran) => ran,
                Err(failure) => ((false, Some(failure.to_string())), Vec::new(), None),
            };
            if let Some(report) = report {
                for file in report.files {
                    let (covered, not_covered) = coverage.entry(file.path).or_default();
                    covered.extend(file.covered);
                    not_covered.extend(file.not_covered);
                }
            }
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
        .map(|f| match coverage.remove(&f.name) {
            Some((covered, not_covered)) => FileCoverage {
                file: f.path.clone(),
                not_covered: not_covered.difference(&covered).copied().collect(),
                covered,
            },
            // regorus reports only files some test evaluated; one no test touched is all uncovered
            None => FileCoverage {
                file: f.path.clone(),
                covered: BTreeSet::new(),
                not_covered: source::code_lines(&f.contents),
            },
        })
        .collect();
    Ok(TestReport { outcomes, coverage })
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        return 100.0;
    }
    // line counts are far below 2^52, so the conversions are exact
    let ratio = part as f64 / whole as f64;
    ratio * 100.0
}

/// The names and 1-based lines of the rules named `test_*` defined in `source` (see
/// `policy/source.rs` for what counts as a rule head). Functions (`test_x(a) := ...`) are
/// not tests and are skipped.
fn test_rule_heads(source: &str) -> Vec<(String, u32)> {
    source::rule_heads(source)
        .into_iter()
        .filter(|h| h.name.starts_with("test_") && !h.function)
        .map(|h| (h.name, h.line))
        .collect()
}
