//! `sesamed policy eval --explain`: what a decision was made of, as far as regorus can tell us
//! without its (unenabled) `explanations` feature.
//!
//! Two views. The *rules*: every rule of package `sesame` (functions excepted) evaluated on its own
//! with the same input, listed with its value when it has one, so an author sees which of
//! `allow`, `deny_reasons`, `grant`... fired and what they produced. The *lines*: regorus's
//! coverage of the one evaluation of `data.sesame.decision`, i.e. every policy line the evaluator
//! executed. A line executed is not a line that succeeded: a condition that was tried and failed
//! is listed too.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use super::bundle::DECISION_PACKAGE;
use super::{
    DECISION_RULE, EvalError, LOAD_TIME_LIMIT, Policy, PolicyInput, RegoMessage, decision, source, stack,
};

/// What [`explain`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Explanation {
    /// The rules of package `sesame` that have a value (or fail) for the input, by file and line.
    pub rules: Vec<RuleValue>,
    /// The lines the evaluation of [`DECISION_RULE`] executed, by file and line.
    pub lines: Vec<ExecutedLine>,
}

/// One rule of package `sesame` and its value for the input.
#[derive(Debug, Clone, Serialize)]
pub struct RuleValue {
    /// The rule's full name, e.g. `data.sesame.allow`.
    pub rule: String,
    /// `file:line` of its first head.
    pub at: String,
    /// Its value, when it evaluated to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// Why it could not be evaluated, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One source line the evaluation executed.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutedLine {
    /// The policy file.
    pub file: PathBuf,
    /// 1-based.
    pub line: u32,
    /// The line's text, trimmed.
    pub code: String,
}

/// Evaluates `input` against `policy` with coverage on, and every rule of package `sesame` alone,
/// on a policy thread, giving up after [`LOAD_TIME_LIMIT`] (each evaluation has the decision's
/// time limit). Rules that are undefined for the input are left out.
pub fn explain(policy: &Policy, input: &PolicyInput) -> Result<Explanation, EvalError> {
    let (policy, input) = (policy.clone(), input.clone());
    match stack::run_within(LOAD_TIME_LIMIT, move || explain_here(&policy, &input)) {
        Ok(explanation) => explanation,
        Err(stack::Failure::TimedOut(limit)) => Err(EvalError::TimeLimit(limit)),
        Err(failure) => Err(EvalError::Engine(failure.to_string())),
    }
}

fn explain_here(policy: &Policy, input: &PolicyInput) -> Result<Explanation, EvalError> {
    let input = super::input_value(input);

    let mut engine = regorus::Engine::clone(&policy.template);
    engine.set_enable_coverage(true);
    engine.set_input(input.clone());
    // Its value and errors are the decision's, which the caller reports; only coverage is wanted.
    let _ = engine.eval_rule(DECISION_RULE.to_owned());
    let mut lines = Vec::new();
    if let Ok(report) = engine.get_coverage_report() {
        for file in report.files {
            let code: Vec<&str> = file.code.lines().collect();
            for line in file.covered {
                let text = usize::try_from(line)
                    .ok()
                    .and_then(|l| code.get(l.wrapping_sub(1)))
                    .map_or("", |t| t.trim());
                lines.push(ExecutedLine {
                    file: policy.dir.join(&file.path),
                    line,
                    code: text.to_owned(),
                });
            }
        }
    }

    let mut rules = Vec::new();
    let mut seen = BTreeSet::new();
    let sources = policy.template.get_policies().unwrap_or_default();
    let packages = policy.template.get_packages().unwrap_or_default();
    for (source, package) in sources.iter().zip(&packages) {
        if package != DECISION_PACKAGE {
            continue;
        }
        for head in source::rule_heads(source.get_contents()) {
            if head.function || !seen.insert(head.name.clone()) {
                continue;
            }
            let rule = format!("{package}.{}", head.name);
            let mut engine = regorus::Engine::clone(&policy.template);
            engine.set_input(input.clone());
            let (value, error) = match engine.eval_rule(rule.clone()) {
                Ok(regorus::Value::Undefined) => continue,
                Ok(value) => match decision::to_json(&value) {
                    Ok(json) => (Some(json), None),
                    Err(e) => (None, Some(e)),
                },
                Err(e) => (None, Some(RegoMessage::from(&e).full)),
            };
            rules.push(RuleValue {
                rule,
                at: format!("{}:{}", policy.dir.join(source.get_path()).display(), head.line),
                value,
                error,
            });
        }
    }
    Ok(Explanation { rules, lines })
}
