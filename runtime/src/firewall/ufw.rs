//! The ufw back end.
//!
//! Rules are added with `ufw allow from SRC to any port PORT proto PROTO comment sesame:<id>`
//! and removed with `ufw delete allow from SRC to any port PORT proto PROTO`. ufw keeps the
//! comment only in its own rule files (hex-encoded, in the `### tuple ###` lines of `user.rules`
//! and `user6.rules`), so that is where this back end reads which rules are ours.
//!
//! ufw has no expiry: the grants service's reaper closes rules on time, and start-up
//! reconciliation closes what expired while the daemon was down.
//!
//! Measured on ufw 0.36.2 (Debian 12): `ufw allow` takes ~0.16 s and `ufw delete` ~0.25 s.
//! Adding a rule that exists answers "Skipping adding existing rule"; adding an existing rule
//! with another comment (or none) answers "Rule updated" and replaces the comment, so a rule an
//! operator re-adds by hand stops being ours and is then left alone.

use std::path::PathBuf;

use super::backend::{Backend, BackendError, OwnedRule};
use super::rule::{GrantId, Proto, Rule, Source};
use crate::system::Tool;

/// Where ufw is and where it keeps its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UfwConfig {
    /// The ufw program.
    pub ufw: PathBuf,
    /// The directory holding `user.rules` and `user6.rules`.
    pub rules_dir: PathBuf,
}

impl Default for UfwConfig {
    fn default() -> Self {
        Self {
            ufw: PathBuf::from("/usr/sbin/ufw"),
            rules_dir: PathBuf::from("/etc/ufw"),
        }
    }
}

/// The ufw back end.
#[derive(Debug)]
pub struct Ufw {
    tool: Tool,
    rules_dir: PathBuf,
}

/// One `### tuple ###` line of ufw's rule files: an `allow … in` rule with a single port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tuple {
    rule: Rule,
    comment: Option<String>,
}

impl Ufw {
    /// The back end for the ufw at `config.ufw`, which must exist.
    pub fn new(config: UfwConfig) -> Result<Self, BackendError> {
        let tool = Tool::new(config.ufw)?;
        if !tool.exists() {
            return Err(BackendError::Unusable(format!(
                "{} not found: install ufw, or choose another firewall back end",
                tool.path().display()
            )));
        }
        Ok(Self {
            tool,
            rules_dir: config.rules_dir,
        })
    }

    /// Every single-port `allow … in` rule in ufw's rule files.
    fn tuples(&self) -> Result<Vec<Tuple>, BackendError> {
        let mut all = Vec::new();
        for name in ["user.rules", "user6.rules"] {
            let path = self.rules_dir.join(name);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(BackendError::Io { path, source }),
            };
            all.extend(text.lines().filter_map(parse_tuple));
        }
        Ok(all)
    }

    /// The rule tagged `id`, if ufw has it.
    fn find(&self, id: &GrantId) -> Result<Option<Tuple>, BackendError> {
        let tag = id.tag();
        Ok(self
            .tuples()?
            .into_iter()
            .find(|t| t.comment.as_deref() == Some(tag.as_str())))
    }

    fn add(&self, id: &GrantId, rule: &Rule) -> Result<(), BackendError> {
        let tag = id.tag();
        if let Some(theirs) = self
            .tuples()?
            .into_iter()
            .find(|t| t.rule == *rule && t.comment.as_deref() != Some(tag.as_str()))
        {
            return Err(BackendError::Conflict(format!(
                "ufw already has a rule for {rule} (comment {:?}) that sesamed does not own; \
                 it would be changed and later deleted with this grant, so nothing was added",
                theirs.comment.unwrap_or_default()
            )));
        }
        let mut args = spec_args(false, rule);
        args.extend(["comment".to_owned(), tag]);
        self.tool.run(&args)?;
        Ok(())
    }
}

/// `[delete] allow from SRC to any port PORT proto PROTO`, one argument per word.
fn spec_args(delete: bool, rule: &Rule) -> Vec<String> {
    let verb: &[&str] = if delete { &["delete", "allow"] } else { &["allow"] };
    let mut args: Vec<String> = verb.iter().map(|&w| w.to_owned()).collect();
    args.extend(
        [
            "from",
            &rule.source.to_string(),
            "to",
            "any",
            "port",
            &rule.port.to_string(),
            "proto",
            rule.proto.as_str(),
        ]
        .map(str::to_owned),
    );
    args
}

/// Parses `### tuple ### allow tcp 22 0.0.0.0/0 any 203.0.113.5 in comment=HEX` (ufw 0.36: action,
/// protocol, destination port, destination, source port, source, direction, then optional
/// `comment=` with the comment hex-encoded). Anything else (other actions, port ranges, `any`
/// protocol, outgoing or routed rules, application profiles) is not a rule sesamed writes.
fn parse_tuple(line: &str) -> Option<Tuple> {
    let rest = line.strip_prefix("### tuple ### ")?;
    let mut words = rest.split_whitespace();
    let (action, proto, dport, _dst, _sport, src, dir) = (
        words.next()?,
        words.next()?,
        words.next()?,
        words.next()?,
        words.next()?,
        words.next()?,
        words.next()?,
    );
    if action != "allow" || dir != "in" {
        return None;
    }
    let proto: Proto = proto.parse().ok()?;
    let port: u16 = dport.parse().ok()?;
    let source: Source = src.parse().ok()?;
    let mut comment = None;
    for word in words {
        if let Some(hex_text) = word.strip_prefix("comment=") {
            comment = hex::decode(hex_text).ok().and_then(|b| String::from_utf8(b).ok());
        }
    }
    Some(Tuple {
        rule: Rule::new(source, port, proto).ok()?,
        comment,
    })
}

impl Backend for Ufw {
    fn name(&self) -> &'static str {
        "ufw"
    }

    fn check(&self) -> Result<Vec<String>, BackendError> {
        let out = self.tool.run(&["status"])?;
        self.tuples()?;
        if out.stdout.lines().any(|l| l.trim() == "Status: active") {
            Ok(Vec::new())
        } else {
            Ok(vec![
                "ufw is inactive: openings are recorded but nothing is filtered; run `ufw enable`".to_owned(),
            ])
        }
    }

    fn open(&self, id: &GrantId, rule: &Rule, _expires_ms: u64) -> Result<(), BackendError> {
        if self.find(id)?.is_some() {
            return Ok(());
        }
        self.add(id, rule)
    }

    fn extend(&self, id: &GrantId, rule: &Rule, expires_ms: u64) -> Result<(), BackendError> {
        // ufw rules carry no expiry: only make sure the rule is still there.
        self.open(id, rule, expires_ms)
    }

    fn close(&self, id: &GrantId, rule: &Rule) -> Result<(), BackendError> {
        let Some(ours) = self.find(id)? else {
            return Ok(());
        };
        if ours.rule != *rule {
            tracing::warn!(%id, found = %ours.rule, expected = %rule, "ufw rule tagged with this grant differs from the ledger; removing what ufw has");
        }
        self.tool.run(&spec_args(true, &ours.rule))?;
        Ok(())
    }

    fn owned(&self) -> Result<Vec<OwnedRule>, BackendError> {
        Ok(self
            .tuples()?
            .into_iter()
            .filter_map(|t| {
                let id = GrantId::from_tag(t.comment.as_deref()?)?;
                Some(OwnedRule {
                    id,
                    rule: Some(t.rule),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As written by ufw 0.36.2 for: a tagged IPv4 rule, an untagged one, a tagged IPv6 network,
    /// a rule with someone else's comment, a deny, a port range, an outgoing rule.
    const USER_RULES: &str = "\
### tuple ### allow tcp 22 0.0.0.0/0 any 203.0.113.5 in comment=736573616d653a66772d30313233343536373839616263646566
-A ufw-user-input -p tcp --dport 22 -s 203.0.113.5 -j ACCEPT
### tuple ### allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in
### tuple ### allow udp 443 ::/0 any 2001:db8::/64 in comment=736573616d653a66772d30313233343536373839616263646565
### tuple ### allow tcp 8080 0.0.0.0/0 any 198.51.100.0/24 in comment=6f70657261746f72
### tuple ### deny tcp 23 0.0.0.0/0 any 0.0.0.0/0 in comment=736573616d653a66772d30313233343536373839616263646564
### tuple ### allow tcp 6000:6007 0.0.0.0/0 any 0.0.0.0/0 in
### tuple ### allow tcp 25 0.0.0.0/0 any 0.0.0.0/0 out
";

    fn tuples() -> Vec<Tuple> {
        USER_RULES.lines().filter_map(parse_tuple).collect()
    }

    #[test]
    fn tuples_are_parsed_with_their_comments() {
        let t = tuples();
        assert_eq!(t.len(), 4, "{t:?}");
        assert_eq!(t[0].rule.to_string(), "22/tcp from 203.0.113.5");
        assert_eq!(t[0].comment.as_deref(), Some("sesame:fw-0123456789abcdef"));
        assert_eq!(t[1].rule.to_string(), "80/tcp from 0.0.0.0/0");
        assert_eq!(t[1].comment, None);
        assert_eq!(t[2].rule.to_string(), "443/udp from 2001:db8::/64");
        assert_eq!(t[3].comment.as_deref(), Some("operator"));
    }

    #[test]
    fn only_tagged_allow_rules_are_ours() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("user.rules"), USER_RULES).expect("write");
        let ufw = Ufw {
            tool: Tool::new("/usr/sbin/ufw").expect("absolute"),
            rules_dir: dir.path().to_owned(),
        };
        let owned = ufw.owned().expect("owned");
        let ids: Vec<&str> = owned.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["fw-0123456789abcdef", "fw-0123456789abcdee"]);
        let id: GrantId = "fw-0123456789abcdef".parse().expect("id");
        assert_eq!(
            ufw.find(&id)
                .expect("find")
                .map(|t| t.rule.to_string())
                .as_deref(),
            Some("22/tcp from 203.0.113.5")
        );
        // No rule files at all: nothing is ours.
        let empty = Ufw {
            tool: Tool::new("/usr/sbin/ufw").expect("absolute"),
            rules_dir: dir.path().join("missing"),
        };
        assert!(empty.owned().expect("owned").is_empty());
    }

    #[test]
    fn commands_are_argument_vectors() {
        let rule = Rule::new("2001:db8::/64".parse().expect("src"), 443, Proto::Udp).expect("rule");
        assert_eq!(
            spec_args(true, &rule).join(" "),
            "delete allow from 2001:db8::/64 to any port 443 proto udp"
        );
        assert_eq!(
            spec_args(false, &rule).join(" "),
            "allow from 2001:db8::/64 to any port 443 proto udp"
        );
    }

    #[test]
    fn a_missing_ufw_is_unusable() {
        let err = Ufw::new(UfwConfig {
            ufw: PathBuf::from("/nonexistent/ufw"),
            rules_dir: PathBuf::from("/etc/ufw"),
        })
        .expect_err("missing");
        assert!(err.to_string().contains("install ufw"), "{err}");
    }
}
