//! `sesamed policy check`: compiles a policy directory as the daemon would, parses every test file
//! on its own so its syntax errors are reported too, and warns about rules nothing uses.
//!
//! The unused-rule lint is lexical (the scanner of `policy/source.rs`): a rule of a policy file
//! (not a test) is unused when no policy file mentions its name anywhere but in its own heads, and
//! it is not an entry point the daemon reads ([`ENTRY_POINTS`]) or a test. Names built at run time
//! (`data.sesame[name]`) are not seen, and a local variable or object key with the rule's name
//! counts as a use, so the lint can miss an unused rule but does not flag a rule a policy names.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use super::bundle::{self, Bundle, FileKind};
use super::{LOAD_TIME_LIMIT, Policy, PolicyError, source, stack};

/// Rules the daemon reads by name, so never unused.
pub const ENTRY_POINTS: [&str; 3] = ["decision", "mask", "host_call"];

/// One problem found in a policy directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (or the directory, for a problem of the whole set).
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// 1-based column, when known.
    pub col: Option<u32>,
    /// What is wrong, in one line.
    pub message: String,
}

/// What [`check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Problems that stop the directory from loading (or its tests from running).
    pub errors: Vec<Diagnostic>,
    /// Problems that do not: unused rules.
    pub warnings: Vec<Diagnostic>,
    /// Whether the daemon would remember this set's decisions, and if not, why
    /// ([`Policy::cache_summary`]); `None` when the set does not load.
    pub cache: Option<String>,
    /// How deeply evaluation may nest ([`Policy::eval_depth`]); `None` when the set does not load.
    pub eval_depth: Option<u32>,
}

/// Checks the policy directory `dir`: every Rego file (tests included) is within the text bounds
/// and parses, every data file is a JSON object, the set loads as [`Policy::load`] would (rule
/// graph included), and the tests load with it. Then lists the rules of policy files that nothing
/// references. Runs on a policy thread ([`stack`]).
pub fn check(dir: &Path) -> CheckReport {
    let owned = dir.to_owned();
    stack::run_within(LOAD_TIME_LIMIT * 3, move || check_here(&owned)).unwrap_or_else(|failure| CheckReport {
        errors: vec![Diagnostic {
            file: dir.to_owned(),
            line: None,
            col: None,
            message: match failure {
                stack::Failure::TimedOut(limit) => format!("checking took longer than {} s", limit.as_secs()),
                other => other.to_string(),
            },
        }],
        ..CheckReport::default()
    })
}

fn check_here(dir: &Path) -> CheckReport {
    let mut report = CheckReport::default();
    let bundle = match Bundle::read(dir, true) {
        Ok(bundle) => bundle,
        Err(error) => {
            report.errors.push(Diagnostic::from(&error));
            return report;
        }
    };
    for file in &bundle.files {
        if let Err(error) = parse_alone(file) {
            report.errors.push(Diagnostic::from(&error));
        }
    }
    if report.errors.is_empty() {
        // Parsing is per file; loading finds conflicts between files, compile errors and a
        // missing decision. Tests are compiled with the policies last.
        let loaded = Policy::load(dir).and_then(|policy| bundle.engine().map(|_| policy));
        match loaded {
            Ok(policy) => {
                report.cache = Some(policy.cache_summary());
                report.eval_depth = Some(policy.eval_depth());
            }
            Err(error) => report.errors.push(Diagnostic::from(&error)),
        }
    }
    report.warnings = unused_rules(&bundle);
    report
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.col {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl From<&PolicyError> for Diagnostic {
    fn from(error: &PolicyError) -> Self {
        let at = |file: &Path, message: String| Diagnostic {
            file: file.to_owned(),
            line: None,
            col: None,
            message,
        };
        match error {
            PolicyError::Io { path, source } => at(path, format!("cannot read: {source}")),
            PolicyError::NoPolicyFiles { dir } => at(dir, "no .rego policy files".to_owned()),
            PolicyError::Parse {
                path,
                line,
                col,
                message,
                ..
            } => Diagnostic {
                file: path.clone(),
                line: *line,
                col: *col,
                message: message.clone(),
            },
            PolicyError::Data { path, message } => at(path, message.clone()),
            PolicyError::Compile {
                location: Some((file, line, col)),
                summary,
                ..
            } => Diagnostic {
                file: file.clone(),
                line: Some(*line),
                col: Some(*col),
                message: summary.clone(),
            },
            PolicyError::Compile { dir, message, .. } => at(dir, message.clone()),
            PolicyError::NoDecisionRule { dir } => at(
                dir,
                format!(
                    "no policy defines {} (package sesame, rule decision)",
                    super::DECISION_RULE
                ),
            ),
            PolicyError::TooComplex { path, line, message }
            | PolicyError::Recursion { path, line, message }
            | PolicyError::TooDeep { path, line, message } => Diagnostic {
                file: path.clone(),
                line: Some(*line),
                col: None,
                message: message.clone(),
            },
            PolicyError::Engine { dir, message } => at(dir, message.clone()),
        }
    }
}

/// Parses one file in an engine of its own, so a syntax error in any file is reported (once it is
/// within the text bounds: see `policy/bounds.rs`).
fn parse_alone(file: &bundle::BundleFile) -> Result<(), PolicyError> {
    match file.kind {
        FileKind::Policy | FileKind::Test => {
            super::bounds::check(&file.contents).map_err(|e| PolicyError::TooComplex {
                path: file.path.clone(),
                line: e.line,
                message: e.message,
            })?;
            regorus::Engine::new()
                .add_policy(file.name.clone(), file.contents.clone())
                .map(drop)
                .map_err(|e| bundle::parse_error(&file.path, &e))
        }
        FileKind::Data => match regorus::Value::from_json_str(&file.contents) {
            Ok(regorus::Value::Object(_)) => Ok(()),
            Ok(_) => Err(PolicyError::Data {
                path: file.path.clone(),
                message: "a data file must hold a JSON object".to_owned(),
            }),
            Err(e) => Err(PolicyError::Data {
                path: file.path.clone(),
                message: super::RegoMessage::from(&e).full,
            }),
        },
    }
}

/// The first head of every rule of a policy file whose name no policy file mentions elsewhere.
fn unused_rules(bundle: &Bundle) -> Vec<Diagnostic> {
    let policies = || bundle.files.iter().filter(|f| f.kind == FileKind::Policy);
    let referenced: BTreeSet<&str> = policies()
        .flat_map(|f| source::identifiers(&f.contents))
        .filter(|i| !i.head)
        .map(|i| i.text)
        .collect();
    let mut reported = BTreeSet::new();
    let mut warnings = Vec::new();
    for file in policies() {
        for head in source::rule_heads(&file.contents) {
            let name = head.name.as_str();
            if referenced.contains(name)
                || ENTRY_POINTS.contains(&name)
                || name.starts_with("test_")
                || !reported.insert(head.name.clone())
            {
                continue;
            }
            warnings.push(Diagnostic {
                file: file.path.clone(),
                line: Some(head.line),
                col: None,
                message: format!("rule {name} is never referenced"),
            });
        }
    }
    warnings
}
