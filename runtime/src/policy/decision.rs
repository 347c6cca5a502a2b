//! Reading the value of `data.sesame.decision` into a [`Decision`], strictly: an unknown key or a
//! value of the wrong type anywhere denies, naming what was wrong.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json};

use super::{ApprovalRule, Decision, Grant, GrantDocument, Limits, Reasons};

/// The largest decision sesame reads, as JSON text: a decision past it is denied unread. A value
/// built by sharing (`a2 := [a1, a1]`, …) can be small in memory and astronomically large written
/// out; this is checked before anything writes it out.
pub const MAX_DECISION_BYTES: u64 = 1 << 20;

/// The keys a decision object may have.
const DECISION_KEYS: [&str; 5] = ["allow", "reasons", "grant", "limits", "approvals"];

/// Turns the value of the decision rule into a [`Decision`]; anything but a well-formed
/// `{"allow": true, ...}` is a denial.
pub(super) fn interpret(value: &regorus::Value) -> Decision {
    if *value == regorus::Value::Undefined {
        return deny("policy decision data.sesame.decision is undefined for this request");
    }
    let json = match to_json(value) {
        Ok(json) => json,
        Err(e) => return deny(&e),
    };
    match read(&json) {
        Ok((true, reasons, mut grant)) => {
            grant.reasons = reasons;
            Decision::Allow(Box::new(grant))
        }
        Ok((false, reasons, _)) if reasons.is_empty() => deny("denied by policy (no reason given)"),
        Ok((false, reasons, _)) => Decision::Deny(Reasons(reasons)),
        Err(problem) => deny(&format!("malformed policy decision: {problem}")),
    }
}

/// The value as JSON, unless it is larger than [`MAX_DECISION_BYTES`] written out.
pub(super) fn to_json(value: &regorus::Value) -> Result<Json, String> {
    let limit = MAX_DECISION_BYTES as f64;
    if super::builtins::json_size(value, limit) > limit {
        return Err(format!(
            "policy decision is larger than {MAX_DECISION_BYTES} bytes written out"
        ));
    }
    serde_json::to_value(value).map_err(|e| format!("policy decision is not JSON: {e}"))
}

fn deny(reason: &str) -> Decision {
    Decision::Deny(Reasons(vec![reason.to_owned()]))
}

/// `(allow, reasons, grant without reasons)`, or what is wrong with the decision.
fn read(json: &Json) -> Result<(bool, Vec<String>, Grant), String> {
    let Json::Object(fields) = json else {
        return Err(format!("decision must be an object, not {}", kind(json)));
    };
    if let Some(key) = fields.keys().find(|k| !DECISION_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown key `{key}` in decision (expected {})",
            DECISION_KEYS.map(|k| format!("`{k}`")).join(", ")
        ));
    }
    let allow = match fields.get("allow") {
        Some(Json::Bool(allow)) => *allow,
        Some(other) => return Err(format!("decision.allow must be a boolean, not {}", kind(other))),
        None => return Err("decision has no `allow` key".to_owned()),
    };
    let reasons: Vec<String> = field(fields, "reasons")?;
    let grant: GrantDocument = field(fields, "grant")?;
    let limits: Limits = field(fields, "limits")?;
    let approvals: Option<ApprovalRule> = field(fields, "approvals")?;
    Ok((
        allow,
        reasons,
        Grant {
            approvals,
            ..Grant::new(grant, limits)
        },
    ))
}

/// `decision.<key>` read as a `T`, or `T::default()` when absent.
fn field<T: DeserializeOwned + Default>(fields: &Map<String, Json>, key: &str) -> Result<T, String> {
    match fields.get(key) {
        None => Ok(T::default()),
        Some(value) => T::deserialize(value).map_err(|e| format!("decision.{key}: {e}")),
    }
}

fn kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}
