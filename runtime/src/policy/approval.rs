//! `decision.approvals`: a request the policy allows only once other people have approved it
//! (two-person rule). The daemon parks such a request instead of running it (`crate::approvals`).

use serde::{Deserialize, Serialize};

/// Most approvals a decision may ask for.
pub const MAX_APPROVALS: u32 = 5;
/// Longest a parked request may wait for its approvals, seconds (a day).
pub const MAX_APPROVAL_TTL_S: u64 = 86_400;
/// How long a parked request waits when the decision does not say, seconds.
pub const DEFAULT_APPROVAL_TTL_S: u64 = 900;

/// Who must approve a request before it runs, and by when.
///
/// Read from the decision strictly: `count` is 1 to [`MAX_APPROVALS`], `ttl_s` 1 to
/// [`MAX_APPROVAL_TTL_S`] (default [`DEFAULT_APPROVAL_TTL_S`]), `groups` names client groups (an
/// approver must be in one; none: any enrolled client). Anything else denies the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRule")]
pub struct ApprovalRule {
    /// How many different clients, other than the requester, must approve.
    pub count: u32,
    /// The groups an approver must belong to (one of them); empty: any enrolled client.
    pub groups: Vec<String>,
    /// How long the request waits for them, seconds, from when it was made.
    pub ttl_s: u64,
}

impl ApprovalRule {
    /// Whether a client in `groups` may approve under this rule (the requester never may: the
    /// caller checks that).
    pub fn admits(&self, groups: &[String]) -> bool {
        self.groups.is_empty() || groups.iter().any(|g| self.groups.contains(g))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    count: u32,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default = "default_ttl")]
    ttl_s: u64,
}

fn default_ttl() -> u64 {
    DEFAULT_APPROVAL_TTL_S
}

impl TryFrom<RawRule> for ApprovalRule {
    type Error = String;

    fn try_from(raw: RawRule) -> Result<Self, String> {
        if !(1..=MAX_APPROVALS).contains(&raw.count) {
            return Err(format!("count must be 1 to {MAX_APPROVALS}, not {}", raw.count));
        }
        if !(1..=MAX_APPROVAL_TTL_S).contains(&raw.ttl_s) {
            return Err(format!(
                "ttl_s must be 1 to {MAX_APPROVAL_TTL_S}, not {}",
                raw.ttl_s
            ));
        }
        if raw.groups.iter().any(String::is_empty) {
            return Err("groups must be group names, not empty strings".to_owned());
        }
        Ok(Self {
            count: raw.count,
            groups: raw.groups,
            ttl_s: raw.ttl_s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<ApprovalRule, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_rule_is_read_strictly_with_a_default_time() {
        let rule = read(r#"{"count": 2, "groups": ["security"]}"#).expect("valid");
        assert_eq!(
            rule,
            ApprovalRule {
                count: 2,
                groups: vec!["security".into()],
                ttl_s: DEFAULT_APPROVAL_TTL_S
            }
        );
        assert!(rule.admits(&["ops".into(), "security".into()]));
        assert!(!rule.admits(&["ops".into()]));
        assert!(read(r#"{"count": 1}"#).expect("valid").admits(&[]));
        for bad in [
            r#"{"count": 0}"#,
            r#"{"count": 6}"#,
            r#"{"count": -1}"#,
            r#"{"count": 1, "ttl_s": 0}"#,
            r#"{"count": 1, "ttl_s": 86401}"#,
            r#"{"count": 1, "groups": [""]}"#,
            r#"{"count": 1, "groups": "security"}"#,
            r#"{"count": 1, "approvers": ["bob"]}"#,
            r#"{"groups": ["security"]}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
        let text = serde_json::to_string(&rule).expect("serialise");
        assert_eq!(read(&text), Ok(rule));
    }
}
