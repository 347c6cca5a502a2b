//! The policy layer: loads a directory of Rego policies and data once, and turns each request into a
//! [`Decision`] by evaluating `data.sesame.decision` with [regorus](https://docs.rs/regorus).
//!
//! Everything fails closed: a decision that is undefined, malformed, raises an error or takes too
//! long is a [`Decision::Deny`] whose reasons say so; a policy that could take the daemon down
//! (recursion, nesting past the bounds, text the parser cannot safely read) does not load, and
//! loads and evaluations run on threads whose stack those bounds are measured against
//! ([`stack`]). [`testing`] runs a directory's `test_*` rules, the `opa test` that regorus lacks;
//! [`cli`] is the `sesamed policy` toolkit built on it.

mod approval;
mod bounds;
mod builtins;
mod bundle;
pub mod check;
pub mod cli;
mod decision;
pub mod explain;
mod graph;
mod input;
mod memo;
mod purity;
mod source;
pub mod stack;
pub mod testing;
mod walk;

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regorus::utils::limits::ExecutionTimerConfig;
use serde::{Deserialize, Serialize};

/// What an allowed request may do: made from the capabilities' grants ([`crate::capability`]).
pub use crate::capability::{Grant, GrantDocument};
pub use approval::{ApprovalRule, DEFAULT_APPROVAL_TTL_S, MAX_APPROVAL_TTL_S, MAX_APPROVALS};
pub use bounds::{MAX_NESTING, MAX_PARSE_WORK, MAX_SIGNS};
pub use builtins::{MAX_FORMAT_WIDTH, MAX_INT_BITS, MAX_ITEMS, MAX_STRING_BYTES};
use bundle::Bundle;
pub use graph::MAX_EVAL_DEPTH;
use input::input_value;
pub use input::{ClientInput, HostInput, ModuleInput, PolicyInput, RequestInput};
pub use memo::{
    CacheStats, DEFAULT_CAPACITY as DEFAULT_DECISION_CACHE, MAX_KEY_BYTES as MAX_CACHE_KEY_BYTES,
};
pub use purity::Varying;

/// The rule sesamed evaluates for every request.
pub const DECISION_RULE: &str = "data.sesame.decision";

/// The optional rule naming arguments to mask in logs: an object from `"cluster::command"` to
/// an array of 0-based argument positions. It must not depend on `input`: it is read once, at
/// load; a value of any other shape makes the policy fail to load.
pub const MASK_RULE: &str = "data.sesame.mask";

/// How long one evaluation of [`DECISION_RULE`] may run before it is abandoned (and the request
/// denied). regorus stops at the first step past it; a decision that completes past it (one
/// builtin may run long) is denied all the same, and the caller stops waiting for an answer at
/// most [`HANDOVER_GRACE`] after it.
pub const DECISION_TIME_LIMIT: Duration = Duration::from_millis(250);

/// How much longer than its time limit a caller waits for an evaluation's answer (the hand-over
/// to a policy thread, a queue when all are busy, reading the decision) before it denies.
pub const HANDOVER_GRACE: Duration = Duration::from_millis(50);

/// How long loading a policy set may take (parsing, checking, preparing, reading the mask).
pub const LOAD_TIME_LIMIT: Duration = Duration::from_secs(30);

/// How many units of interpreter work pass between two clock reads of the time limit.
const TIME_CHECK_INTERVAL: NonZeroU32 = match NonZeroU32::new(64) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

/// The outcome of a policy decision; produced only by [`Policy::decide`].
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The request may run, with this grant.
    Allow(Box<Grant>),
    /// The request must not run, for these reasons.
    Deny(Reasons),
}

impl Decision {
    /// Whether the request may run.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// The reasons given for the outcome, whichever it is.
    pub fn reasons(&self) -> &[String] {
        match self {
            Decision::Allow(grant) => &grant.reasons,
            Decision::Deny(reasons) => &reasons.0,
        }
    }
}

/// Why a request was denied: one human-readable sentence per reason.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reasons(pub Vec<String>);

/// `decision.limits`: resource limits for a run. `None` means the daemon's default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock limit, milliseconds.
    pub timeout_ms: Option<u64>,
    /// Linear memory limit, MiB.
    pub memory_mb: Option<u64>,
    /// Output limit, KiB.
    pub output_kb: Option<u64>,
    /// Host calls one run may make (log lines included).
    pub host_calls: Option<u32>,
}

/// Why a policy directory could not be loaded or tested.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The directory holds no `.rego` policy file.
    #[error("{}: no .rego policy files", dir.display())]
    NoPolicyFiles {
        /// The directory.
        dir: PathBuf,
    },
    /// A Rego file does not parse.
    #[error("{}{}: {message}", path.display(), location_suffix(*line, *col))]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line of the error, when regorus names it.
        line: Option<u32>,
        /// The column of the error, when regorus names it.
        col: Option<u32>,
        /// What is wrong, in one line.
        message: String,
        /// regorus's full report, with the offending source line.
        detail: String,
    },
    /// A JSON data file is malformed, not an object, or conflicts with another data file.
    #[error("{}: {message}", path.display())]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The policies parse but do not compile together (conflicting or recursive rules, bad imports...).
    #[error("{}: {message}", dir.display())]
    Compile {
        /// The directory.
        dir: PathBuf,
        /// regorus's report, on one line.
        message: String,
        /// The cause alone, without the source excerpt.
        summary: String,
        /// The file (directory joined with the name regorus gives), line and column, when named.
        location: Option<(PathBuf, u32, u32)>,
    },
    /// No policy file of the directory defines the rule sesamed evaluates ([`DECISION_RULE`]).
    #[error("{}: no policy defines {DECISION_RULE} (package sesame, rule decision)", dir.display())]
    NoDecisionRule {
        /// The directory.
        dir: PathBuf,
    },
    /// A Rego file nests brackets, minus signs or collection literals past the bounds that keep
    /// parsing it safe and quick ([`MAX_NESTING`], [`MAX_SIGNS`], [`MAX_PARSE_WORK`]).
    #[error("{}:{line}: {message}", path.display())]
    TooComplex {
        /// The file.
        path: PathBuf,
        /// 1-based line where the bound is passed.
        line: u32,
        /// Which bound, and by how much.
        message: String,
    },
    /// A rule or function may evaluate itself, directly or through others (OPA's
    /// `rego_recursion_error`).
    #[error("{}:{line}: {message}", path.display())]
    Recursion {
        /// The file of the first rule of the cycle.
        path: PathBuf,
        /// Its line.
        line: u32,
        /// The cycle, each rule with its file and line.
        message: String,
    },
    /// Evaluating a rule may nest deeper than [`MAX_EVAL_DEPTH`].
    #[error("{}:{line}: {message}", path.display())]
    TooDeep {
        /// The file of the rule whose evaluation nests deepest.
        path: PathBuf,
        /// Its line.
        line: u32,
        /// How deep, and the chain of rules that makes it so.
        message: String,
    },
    /// Loading did not finish: it took longer than [`LOAD_TIME_LIMIT`], or regorus panicked.
    #[error("{}: {message}", dir.display())]
    Engine {
        /// The directory.
        dir: PathBuf,
        /// What happened.
        message: String,
    },
}

/// A loaded, compiled policy set: every `*.rego` file under one directory except `*_test.rego`,
/// plus every `*.json` file merged into `data`.
///
/// Cheap to share: [`Policy::decide`] takes `&self` and clones a prepared engine per call, so one
/// `Policy` (e.g. in an `Arc`) serves any number of threads; the only lock is the decision
/// cache's, held for a hash lookup.
///
/// When the policy set's decisions depend only on the parts of the input that repeat
/// ([`Policy::cacheable`]), a policy remembers up to [`DEFAULT_DECISION_CACHE`] of them
/// ([`Policy::with_decision_cache`] sets the number): a repeated request is decided by a lookup
/// instead of an evaluation, with the same result.
#[derive(Clone)]
pub struct Policy {
    /// Prepared once; every evaluation clones it, on the policy thread that evaluates.
    template: std::sync::Arc<regorus::Engine>,
    time_limit: Duration,
    dir: PathBuf,
    revision: String,
    files: Vec<PathBuf>,
    mask: BTreeMap<String, Vec<usize>>,
    cacheable: Result<(), Varying>,
    /// The deepest evaluation the rules may nest ([`MAX_EVAL_DEPTH`] at most).
    eval_depth: u32,
    /// Shared by clones: they hold the same revision.
    cache: Option<std::sync::Arc<memo::DecisionCache>>,
}

impl Policy {
    /// Reads, parses and compiles the policy set in `dir` (subdirectories included, except hidden
    /// entries and a top-level `examples/` directory, which holds example policy sets of its
    /// own), on a policy thread ([`stack`]), within [`LOAD_TIME_LIMIT`]. Errors name the file, and
    /// the line and column when regorus gives them.
    pub fn load(dir: &Path) -> Result<Policy, PolicyError> {
        let owned = dir.to_owned();
        stack::run_within(LOAD_TIME_LIMIT, move || Policy::load_here(&owned)).unwrap_or_else(|failure| {
            Err(PolicyError::Engine {
                dir: dir.to_owned(),
                message: match failure {
                    stack::Failure::TimedOut(limit) => {
                        format!("loading took longer than {} s", limit.as_secs())
                    }
                    other => other.to_string(),
                },
            })
        })
    }

    fn load_here(dir: &Path) -> Result<Policy, PolicyError> {
        let bundle = Bundle::read(dir, false)?;
        let loaded = bundle.engine()?;
        if !loaded.declares(bundle::DECISION_PACKAGE, "decision") {
            return Err(PolicyError::NoDecisionRule { dir: dir.to_owned() });
        }
        let has_mask = loaded.declares(bundle::DECISION_PACKAGE, "mask");
        let policy_modules: Vec<(&str, &walk::ModuleSummary)> = loaded
            .modules
            .iter()
            .filter(|m| bundle.files[m.file].kind == bundle::FileKind::Policy)
            .map(|m| (bundle.files[m.file].name.as_str(), &m.summary))
            .collect();
        let cacheable = purity::check(&policy_modules);
        let eval_depth = loaded.eval_depth;
        let mut template = loaded.engine;
        template.set_execution_timer_config(ExecutionTimerConfig {
            limit: DECISION_TIME_LIMIT,
            check_interval: TIME_CHECK_INTERVAL,
        });
        let mask = if has_mask {
            read_mask(&template, dir)?
        } else {
            BTreeMap::new()
        };
        Ok(Policy {
            template: std::sync::Arc::new(template),
            time_limit: DECISION_TIME_LIMIT,
            dir: dir.to_owned(),
            revision: bundle.revision,
            files: bundle.files.into_iter().map(|f| f.path).collect(),
            mask,
            cacheable,
            eval_depth,
            cache: None,
        }
        .with_decision_cache(DEFAULT_DECISION_CACHE))
    }

    /// The same policy remembering up to `entries` decisions (`0`: none), when its decisions can
    /// be remembered at all ([`Policy::cacheable`]). Starts with an empty cache.
    pub fn with_decision_cache(mut self, entries: usize) -> Policy {
        self.cache = (entries > 0 && self.cacheable.is_ok())
            .then(|| std::sync::Arc::new(memo::DecisionCache::new(entries)));
        self
    }

    /// Whether decisions can be remembered: `Err` names the first place in the policy set that
    /// reads a varying part of the input (`input.request.id`, `input.now_ns`) or calls something
    /// that may answer differently next time (see [`Varying`]).
    pub fn cacheable(&self) -> Result<(), &Varying> {
        self.cacheable.as_ref().map(|_| ())
    }

    /// How deeply evaluating the rules may nest, in the levels [`MAX_EVAL_DEPTH`] bounds.
    pub fn eval_depth(&self) -> u32 {
        self.eval_depth
    }

    /// What the decision cache has done; `None` when there is none.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|c| c.stats())
    }

    /// One line on the decision cache, for logs and `sesamed policy check`.
    pub fn cache_summary(&self) -> String {
        match (&self.cacheable, &self.cache) {
            (Err(varying), _) => format!("decisions are not cached: {varying}"),
            (Ok(()), None) => {
                "decisions are not cached: the cache is off (host.decision_cache = 0)".to_owned()
            }
            (Ok(()), Some(cache)) => format!(
                "decisions are cached (up to {}): they depend only on parts of the input that repeat",
                cache.stats().capacity
            ),
        }
    }

    /// Argument positions (0-based) whose values the daemon masks in its audit and decision
    /// logs, for a `cluster::command` — from [`MASK_RULE`], read once at load.
    pub fn masked_args(&self, cluster: &str, command: &str) -> &[usize] {
        self.mask
            .get(&format!("{cluster}::{command}"))
            .map_or(&[], Vec::as_slice)
    }

    /// Decides one request by evaluating [`DECISION_RULE`] with `input`.
    ///
    /// Never fails: an undefined or malformed decision, or any evaluation error, is a
    /// [`Decision::Deny`] whose reasons say what went wrong (details also go to the log).
    pub fn decide(&self, input: &PolicyInput) -> Decision {
        self.decide_cached(input).0
    }

    /// [`Policy::decide`], also saying whether the decision came from the cache (`true`) or was
    /// evaluated now (`false`).
    pub fn decide_cached(&self, input: &PolicyInput) -> (Decision, bool) {
        let Some(cache) = &self.cache else {
            return (self.evaluate_decision(input).0, false);
        };
        let Some(key) = memo::DecisionCache::key(input) else {
            cache.note_uncacheable();
            return (self.evaluate_decision(input).0, false);
        };
        if let Some(decision) = cache.get(&key) {
            return (decision, true);
        }
        let (decision, evaluated) = self.evaluate_decision(input);
        if evaluated {
            cache.insert(key, decision.clone());
        }
        (decision, false)
    }

    /// Evaluates the decision, never from the cache; the flag is `false` when evaluating failed
    /// (the decision is then a denial saying why, and is not to be remembered).
    fn evaluate_decision(&self, input: &PolicyInput) -> (Decision, bool) {
        match self.evaluate(input, |value| decision::interpret(&value)) {
            Ok(decision) => (decision, true),
            Err(error) => {
                tracing::warn!(policy = %self.dir.display(), revision = %self.revision, "{error}");
                (Decision::Deny(Reasons(vec![error.reason()])), false)
            }
        }
    }

    /// The raw value of [`DECISION_RULE`] for `input`, as JSON (for `sesamed policy eval`);
    /// `None` when it is undefined.
    pub fn evaluate_json(&self, input: &PolicyInput) -> Result<Option<serde_json::Value>, EvalError> {
        self.evaluate(input, |value| {
            if value == regorus::Value::Undefined {
                return Ok(None);
            }
            decision::to_json(&value).map(Some)
        })?
        .map_err(EvalError::Output)
    }

    /// The policy set's revision: `"sha256:<hex>"` over the sorted names (relative to the
    /// directory) and contents of the files loaded. Tests (`*_test.rego`) are not part of it.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// The directory the policy set was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The files loaded, sorted.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The same policy with another time limit (tests of the limit itself).
    #[cfg(test)]
    pub(crate) fn with_time_limit(mut self, limit: Duration) -> Policy {
        self.time_limit = limit;
        std::sync::Arc::make_mut(&mut self.template).set_execution_timer_config(ExecutionTimerConfig {
            limit,
            check_interval: TIME_CHECK_INTERVAL,
        });
        self
    }

    /// Evaluates [`DECISION_RULE`] with the interpreter, on a clone of the prepared engine, on a
    /// policy thread ([`stack`]); `finish` reads the value there too (a deep value is read with
    /// the policy thread's stack). An evaluation that completes after the time limit is an error
    /// all the same, and the caller stops waiting [`HANDOVER_GRACE`] after the limit.
    fn evaluate<R: Send + 'static>(
        &self,
        input: &PolicyInput,
        finish: impl FnOnce(regorus::Value) -> R + Send + 'static,
    ) -> Result<R, EvalError> {
        let input = input_value(input);
        let template = std::sync::Arc::clone(&self.template);
        let limit = self.time_limit;
        let job = move || {
            let started = Instant::now();
            let mut engine = regorus::Engine::clone(&template);
            engine.set_input(input);
            let value = engine.eval_rule(DECISION_RULE.to_owned());
            stack::drop_after_answer(engine);
            match value {
                Err(e) => Err(EvalError::from_rego(&e, limit)),
                Ok(_) if started.elapsed() > limit => Err(EvalError::TimeLimit(limit)),
                Ok(value) => Ok(finish(value)),
            }
        };
        match stack::run_within(limit + HANDOVER_GRACE, job) {
            Ok(result) => result,
            Err(stack::Failure::TimedOut(_)) => Err(EvalError::TimeLimit(limit)),
            Err(failure) => Err(EvalError::Engine(failure.to_string())),
        }
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("dir", &self.dir)
            .field("revision", &self.revision)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// Why evaluating [`DECISION_RULE`] failed; [`Policy::decide`] turns it into a denial.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// regorus raised an error (a builtin failed or passed a bound, conflicting rule values...).
    #[error("policy evaluation failed: {}", .0.full)]
    Rego(RegoMessage),
    /// The evaluation ran past its time limit (regorus stopped it, or it completed too late, or
    /// its answer did not come in time).
    #[error("policy evaluation exceeded its time limit ({} ms)", .0.as_millis())]
    TimeLimit(Duration),
    /// The policy engine failed (panicked: a regorus bug).
    #[error("policy evaluation failed: {0}")]
    Engine(String),
    /// The decision could not be turned into JSON.
    #[error("policy output: {0}")]
    Output(String),
}

impl EvalError {
    /// The one-line reason given to the client: says what failed without file paths or source lines.
    fn reason(&self) -> String {
        match self {
            EvalError::Rego(m) => format!("policy evaluation failed: {}", m.summary),
            EvalError::TimeLimit(_) => self.to_string(),
            EvalError::Engine(_) => "policy evaluation failed: the policy engine failed".to_owned(),
            EvalError::Output(_) => "policy output could not be read".to_owned(),
        }
    }

    /// An error of regorus's, told apart: its time limit, or any other.
    fn from_rego(error: &anyhow::Error, limit: Duration) -> EvalError {
        let timed_out = matches!(
            error.downcast_ref::<regorus::LimitError>(),
            Some(regorus::LimitError::TimeLimitExceeded { .. })
        );
        let message = RegoMessage::from(error);
        // Errors raised inside a function reach us as text only.
        if timed_out || message.summary.starts_with("execution exceeded time limit") {
            return EvalError::TimeLimit(limit);
        }
        EvalError::Rego(message)
    }
}

/// A regorus error message, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegoMessage {
    /// The one-line cause (`"error: ..."` line, without the prefix).
    pub summary: String,
    /// `file`, `line`, `col` of the `--> file:line:col` pointer, when there is one.
    pub location: Option<(String, u32, u32)>,
    /// The whole message, on one line.
    pub full: String,
}

impl From<&anyhow::Error> for RegoMessage {
    fn from(error: &anyhow::Error) -> Self {
        RegoMessage::parse(&format!("{error:#}"))
    }
}

impl RegoMessage {
    /// Splits a regorus error text (`\n--> file:line:col\n  |\n3 | source\n  |  ^\nerror: msg`).
    pub fn parse(text: &str) -> RegoMessage {
        let mut location = None;
        let mut summary = None;
        for line in text.lines().map(str::trim) {
            if let Some(pointer) = line.strip_prefix("--> ") {
                location = location.or_else(|| parse_pointer(pointer));
            } else if let Some(msg) = line.strip_prefix("error: ") {
                summary = summary.or_else(|| Some(msg.to_owned()));
            }
        }
        let full = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        RegoMessage {
            summary: summary.unwrap_or_else(|| full.clone()),
            location,
            full,
        }
    }
}

/// `file:line:col` (the file may itself contain ':').
fn parse_pointer(pointer: &str) -> Option<(String, u32, u32)> {
    let (rest, col) = pointer.rsplit_once(':')?;
    let (file, line) = rest.rsplit_once(':')?;
    Some((file.to_owned(), line.parse().ok()?, col.parse().ok()?))
}

fn location_suffix(line: Option<u32>, col: Option<u32>) -> String {
    match (line, col) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod hostile;
#[cfg(test)]
mod tests;

/// Evaluates [`MASK_RULE`] (declared) once, with no input. Undefined means nothing is masked.
fn read_mask(template: &regorus::Engine, dir: &Path) -> Result<BTreeMap<String, Vec<usize>>, PolicyError> {
    let bad = |message: String| PolicyError::Data {
        path: dir.to_owned(),
        message: format!("{MASK_RULE}: {message}"),
    };
    let mut engine = template.clone();
    let value = engine
        .eval_rule(MASK_RULE.to_owned())
        .map_err(|e| bad(RegoMessage::from(&e).full))?;
    if value == regorus::Value::Undefined {
        return Ok(BTreeMap::new());
    }
    let json = serde_json::to_value(&value).map_err(|e| bad(e.to_string()))?;
    serde_json::from_value(json).map_err(|e| {
        bad(format!(
            "must be an object of \"cluster::command\": [argument positions]: {e}"
        ))
    })
}
