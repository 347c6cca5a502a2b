//! The ufw back end.
//!
//! Each opening is one ufw rule, added with
//! `ufw allow from SRC to any port PORT proto PROTO comment sesame:<id>` and removed with the same
//! words after `ufw delete` (the comment included, so ufw deletes only the rule carrying our tag).
//! ufw has no expiry of its own: the grants service's reaper closes the rule.
//!
//! The rules are read back from ufw's own record, `user.rules` (IPv4) and `user6.rules` (IPv6),
//! where each rule has a line
//!
//! ```text
//! ### tuple ### allow tcp 22 0.0.0.0/0 any 203.0.113.5 in comment=736573616d653a66772d…
//! ```
//!
//! holding action, protocol, destination port, destination, source port, source, direction and
//! the hex-encoded comment (application rules have two more words before the direction).
//!
//! ufw treats two rules that differ only in action, logging or comment as the same rule: adding
//! ours would silently replace the other one (turning someone's `deny` into our `allow`), and
//! deleting ours later would leave nothing. So an opening is refused when such a rule is there.
//!
//! `user.rules` must exist: ufw always keeps it, so a missing one means the rules directory is
//! wrong, and reading it as "no rules" would let a close seem done while ufw's rule stays. It is
//! an error everywhere (at start, from [`Backend::check`]), never an empty firewall.

use std::path::PathBuf;
use std::time::Duration;

use super::backend::{Backend, BackendError, OwnedRule};
use super::rule::{GrantId, Proto, Rule, Source};
use crate::system::Tool;

/// Where the ufw back end finds ufw and its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UfwConfig {
    /// The ufw program (absolute path).
    pub ufw: PathBuf,
    /// The directory holding ufw's `user.rules` and `user6.rules`.
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

/// Opens and closes ports with ufw.
#[derive(Debug)]
pub struct Ufw {
    tool: Tool,
    rules_dir: PathBuf,
}

impl Ufw {
    /// The ufw back end for `config`; fails when the ufw program is not there.
    pub fn new(config: UfwConfig) -> Result<Self, BackendError> {
        let tool = Tool::new(config.ufw)?;
        if !tool.exists() {
            return Err(BackendError::Unusable(format!(
                "ufw not found at {}: install ufw, or point the firewall configuration at it",
                tool.path().display()
            )));
        }
        Ok(Self {
            tool,
            rules_dir: config.rules_dir,
        })
    }

    /// The same back end with ufw killed after `deadline` (30 s unless told otherwise).
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.tool = self.tool.with_deadline(deadline);
        self
    }

    /// ufw's record of its IPv4 or IPv6 rules.
    fn rules_file(&self, v6: bool) -> PathBuf {
        self.rules_dir.join(if v6 { "user6.rules" } else { "user.rules" })
    }

    /// The rule lines of one family's record. A missing `user.rules` is an error (a wrong
    /// rules directory, see the module documentation); a missing `user6.rules` holds no rules
    /// (ufw writes it when it adds the first IPv6 rule).
    fn tuples(&self, v6: bool) -> Result<Vec<Tuple>, BackendError> {
        let path = self.rules_file(v6);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(parse_tuples(&text, v6)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && v6 => Ok(Vec::new()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(self.no_record()),
            Err(source) => Err(BackendError::Io { path, source }),
        }
    }

    /// The error for a rules directory without ufw's `user.rules`.
    fn no_record(&self) -> BackendError {
        BackendError::Unusable(format!(
            "{} does not exist: ufw keeps its rules there, so sesamed cannot tell which of its \
             openings are open; set firewall.ufw_rules_dir to ufw's directory (/etc/ufw unless \
             ufw was built otherwise; now {})",
            self.rules_file(false).display(),
            self.rules_dir.display()
        ))
    }

    /// The rule lines of both families.
    fn all_tuples(&self) -> Result<Vec<Tuple>, BackendError> {
        let mut all = self.tuples(false)?;
        all.extend(self.tuples(true)?);
        Ok(all)
    }

    /// The rule lines tagged `id`.
    fn tagged(&self, id: &GrantId) -> Result<Vec<Tuple>, BackendError> {
        let mut all = self.all_tuples()?;
        all.retain(|t| t.id().as_ref() == Some(id));
        Ok(all)
    }

    /// Adds `rule` tagged `id` unless it is there already; refuses when a rule ufw would take
    /// for the same one is there without our tag.
    fn add(&self, id: &GrantId, rule: &Rule) -> Result<(), BackendError> {
        let v6 = rule.source.is_ipv6();
        let same: Vec<Tuple> = self.tuples(v6)?.into_iter().filter(|t| t.same_as(rule)).collect();
        if let Some(other) = same.iter().find(|t| !t.is_ours(id)) {
            return Err(BackendError::Conflict(format!(
                "ufw already has a rule for {rule} ({}): sesamed does not add its own, because \
                 ufw keeps one rule for both (ours would replace it) and closing the opening would \
                 remove it; remove or change that rule (`ufw status numbered`)",
                other.describe()
            )));
        }
        if !same.is_empty() {
            return Ok(());
        }
        let out = self.tool.run(&allow_args(id, rule))?;
        if !self.tuples(v6)?.iter().any(|t| t.is_ours(id) && t.same_as(rule)) {
            return Err(BackendError::Unreadable(format!(
                "ufw accepted the rule for {rule} but it is not in {} ({}): is the rules \
                 directory right?",
                self.rules_file(v6).display(),
                out.stdout.trim()
            )));
        }
        Ok(())
    }
}

impl Backend for Ufw {
    fn name(&self) -> &'static str {
        "ufw"
    }

    fn check(&self) -> Result<Vec<String>, BackendError> {
        if !self.rules_file(false).is_file() {
            return Err(self.no_record());
        }
        let mut warnings = Vec::new();
        let status = self.tool.run(&["status"])?;
        if is_inactive(&status.stdout) {
            warnings.push(
                "ufw is inactive: openings are recorded but nothing is filtered; run `ufw enable`".to_owned(),
            );
        }
        self.all_tuples()?;
        Ok(warnings)
    }

    fn open(&self, id: &GrantId, rule: &Rule, _expires_ms: u64) -> Result<(), BackendError> {
        self.add(id, rule)
    }

    fn extend(&self, id: &GrantId, rule: &Rule, _expires_ms: u64) -> Result<(), BackendError> {
        if self.tagged(id)?.is_empty() {
            self.add(id, rule)?;
        }
        Ok(())
    }

    fn close(&self, id: &GrantId, _rule: &Rule) -> Result<(), BackendError> {
        let tagged = self.tagged(id)?;
        for t in &tagged {
            let Some(rule) = t.rule() else {
                return Err(BackendError::Unreadable(format!(
                    "the ufw rule tagged {id} ({}) is not one sesamed writes; remove it by hand",
                    t.describe()
                )));
            };
            let out = self.tool.run(&delete_args(id, &rule))?;
            if self.tagged(id)?.iter().any(|left| left.rule() == Some(rule)) {
                return Err(BackendError::Unreadable(format!(
                    "ufw did not remove the rule for {rule} tagged {id}: {}",
                    out.stdout.trim()
                )));
            }
        }
        Ok(())
    }

    fn owned(&self) -> Result<Vec<OwnedRule>, BackendError> {
        Ok(self
            .all_tuples()?
            .iter()
            .filter_map(|t| {
                Some(OwnedRule {
                    id: t.id()?,
                    rule: t.rule(),
                })
            })
            .collect())
    }
}

/// The words after `ufw` that add `rule` tagged `id`.
fn allow_args(id: &GrantId, rule: &Rule) -> Vec<String> {
    let mut args = vec!["allow".to_owned()];
    args.extend(rule_words(id, rule));
    args
}

/// The words after `ufw` that delete the rule `allow_args` added (only that one: ufw matches the
/// comment too).
fn delete_args(id: &GrantId, rule: &Rule) -> Vec<String> {
    let mut args = vec!["delete".to_owned(), "allow".to_owned()];
    args.extend(rule_words(id, rule));
    args
}

/// `from SRC to any port PORT proto PROTO comment TAG`, one word each.
fn rule_words(id: &GrantId, rule: &Rule) -> Vec<String> {
    vec![
        "from".to_owned(),
        rule.source.to_string(),
        "to".to_owned(),
        "any".to_owned(),
        "port".to_owned(),
        rule.port.to_string(),
        "proto".to_owned(),
        rule.proto.as_str().to_owned(),
        "comment".to_owned(),
        id.tag(),
    ]
}

/// Whether `ufw status` says the firewall is off.
fn is_inactive(status: &str) -> bool {
    status
        .lines()
        .any(|l| l.trim().eq_ignore_ascii_case("Status: inactive"))
}

/// One `### tuple ###` line of ufw's record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tuple {
    /// Whether it came from the IPv6 record.
    v6: bool,
    /// The words: action proto dport dst sport src [dapp sapp] direction.
    words: Vec<String>,
    /// The decoded comment, when there is one.
    comment: Option<String>,
}

/// Every rule line in the text of `user.rules` (`v6` false) or `user6.rules` (`v6` true).
fn parse_tuples(text: &str, v6: bool) -> Vec<Tuple> {
    text.lines().filter_map(|line| parse_tuple(line, v6)).collect()
}

/// One rule line, or `None` for any other line.
fn parse_tuple(line: &str, v6: bool) -> Option<Tuple> {
    let rest = line.strip_prefix("### tuple ###")?;
    let (words, comment) = match rest.split_once(" comment=") {
        Some((words, hex)) => (words, Some(decode_comment(hex.trim()))),
        None => (rest, None),
    };
    Some(Tuple {
        v6,
        words: words.split_whitespace().map(str::to_owned).collect(),
        comment,
    })
}

/// A comment as ufw stores it (hex of the UTF-8 text); undecodable text becomes empty.
fn decode_comment(hex: &str) -> String {
    hex::decode(hex)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

impl Tuple {
    /// The grant id in the comment, when the comment is one of our tags.
    fn id(&self) -> Option<GrantId> {
        GrantId::from_tag(self.comment.as_deref()?)
    }

    /// Whether this is our plain `allow` rule tagged `id`.
    fn is_ours(&self, id: &GrantId) -> bool {
        self.id().as_ref() == Some(id) && self.words.first().is_some_and(|a| a == "allow")
    }

    /// "Any address" in this record's family.
    fn any(&self) -> &'static str {
        if self.v6 { "::/0" } else { "0.0.0.0/0" }
    }

    /// Protocol, port and source of an incoming rule on no particular interface, to any local
    /// address from any source port, whatever its action (routed and application rules and
    /// port ranges or lists give `None`).
    fn shape(&self) -> Option<(Proto, u16, Source)> {
        let [action, proto, dport, dst, sport, src, direction] = self.words.as_slice() else {
            return None;
        };
        let plain = !action.starts_with("route:")
            && dst == self.any()
            && sport == "any"
            && direction == "in"
            && dport.bytes().all(|b| b.is_ascii_digit());
        if !plain {
            return None;
        }
        let source: Source = src.parse().ok()?;
        if source.is_ipv6() != self.v6 {
            return None;
        }
        Some((proto.parse().ok()?, dport.parse().ok()?, source))
    }

    /// Whether ufw would take this rule and `rule` for the same one (they differ at most in
    /// action, logging and comment).
    fn same_as(&self, rule: &Rule) -> bool {
        self.shape() == Some((rule.proto, rule.port, rule.source))
    }

    /// The opening this line lets in, when it is a plain `allow` of the shape sesamed writes.
    fn rule(&self) -> Option<Rule> {
        if self.words.first()? != "allow" {
            return None;
        }
        let (proto, port, source) = self.shape()?;
        Rule::new(source, port, proto).ok()
    }

    /// The line as ufw's words, for messages.
    fn describe(&self) -> String {
        let mut text = self.words.join(" ");
        match self.comment.as_deref() {
            Some(c) => text.push_str(&format!(" comment {c:?}")),
            None => text.push_str(", no comment"),
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// `user.rules` as ufw 0.36.2 wrote it (trimmed after the rules), for rules added with:
    /// `allow from 203.0.113.5 to any port 22 proto tcp comment sesame:fw-0123456789abcdef`,
    /// `allow 80/tcp`, `allow from 198.51.100.0/24 to any port 443 proto tcp comment "admin
    /// thing"`, `deny from 192.0.2.1 … comment sesame:fw-00000000000000bb`, an outgoing rule, one
    /// on `lo`, one to 10.1.1.1, a `route allow`, one with a source port, `allow log`, `limit`, a
    /// port range, a port list, no protocol, an application (`app WWW`), and a comment with
    /// more after the tag.
    const USER_RULES: &str = r#"*filter
:ufw-user-input - [0:0]
:ufw-user-output - [0:0]
:ufw-user-forward - [0:0]
:ufw-user-limit - [0:0]
:ufw-user-limit-accept - [0:0]
### RULES ###

### tuple ### allow tcp 22 0.0.0.0/0 any 203.0.113.5 in comment=736573616d653a66772d30313233343536373839616263646566
-A ufw-user-input -p tcp --dport 22 -s 203.0.113.5 -j ACCEPT

### tuple ### allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in
-A ufw-user-input -p tcp --dport 80 -j ACCEPT

### tuple ### allow tcp 443 0.0.0.0/0 any 198.51.100.0/24 in comment=61646d696e207468696e67
-A ufw-user-input -p tcp --dport 443 -s 198.51.100.0/24 -j ACCEPT

### tuple ### allow tcp 22 0.0.0.0/0 any 198.51.100.7 in
-A ufw-user-input -p tcp --dport 22 -s 198.51.100.7 -j ACCEPT

### tuple ### deny tcp 22 0.0.0.0/0 any 192.0.2.1 in comment=736573616d653a66772d30303030303030303030303030306262
-A ufw-user-input -p tcp --dport 22 -s 192.0.2.1 -j DROP

### tuple ### allow tcp 25 0.0.0.0/0 any 0.0.0.0/0 in comment=736573616d653a66772d30303030303030303030303030306363
-A ufw-user-input -p tcp --dport 25 -j ACCEPT

### tuple ### allow tcp 9 1.2.3.4 any 0.0.0.0/0 out comment=736573616d653a66772d30303030303030303030303030306666
-A ufw-user-output -p tcp -d 1.2.3.4 --dport 9 -j ACCEPT

### tuple ### allow tcp 22 0.0.0.0/0 any 10.0.0.1 in_lo comment=736573616d653a66772d30303030303030303030303030303131
-A ufw-user-input -i lo -p tcp --dport 22 -s 10.0.0.1 -j ACCEPT

### tuple ### allow tcp 22 10.1.1.1 any 10.0.0.0/8 in comment=736573616d653a66772d30303030303030303030303030303132
-A ufw-user-input -p tcp -d 10.1.1.1 --dport 22 -s 10.0.0.0/8 -j ACCEPT

### tuple ### route:allow tcp 22 0.0.0.0/0 any 10.0.0.1 in comment=736573616d653a66772d30303030303030303030303030303133
-A ufw-user-forward -p tcp --dport 22 -s 10.0.0.1 -j ACCEPT

### tuple ### allow tcp 22 0.0.0.0/0 1000 10.0.0.2 in comment=736573616d653a66772d30303030303030303030303030303134
-A ufw-user-input -p tcp --dport 22 -s 10.0.0.2 --sport 1000 -j ACCEPT

### tuple ### allow_log tcp 22 0.0.0.0/0 any 203.0.113.6 in comment=736573616d653a66772d30303030303030303030303030306131
### tuple ### limit tcp 22 0.0.0.0/0 any 203.0.113.7 in comment=736573616d653a66772d30303030303030303030303030306132
### tuple ### allow tcp 6000:6010 0.0.0.0/0 any 203.0.113.8 in comment=736573616d653a66772d30303030303030303030303030306133
### tuple ### allow tcp 80,443 0.0.0.0/0 any 203.0.113.9 in comment=736573616d653a66772d30303030303030303030303030306134
### tuple ### allow any 22 0.0.0.0/0 any 203.0.113.10 in comment=736573616d653a66772d30303030303030303030303030306135
### tuple ### allow tcp 80 0.0.0.0/0 any 203.0.113.11 WWW - in comment=736573616d653a66772d30303030303030303030303030306136
### tuple ### allow tcp 22 0.0.0.0/0 any 203.0.113.12 in comment=736573616d653a66772d3030303030303030303030303030613820657874726120776f726473
### tuple ### allow tcp 22 0.0.0.0/0 any 203.0.113.13 in comment=636166c3a9
### END RULES ###

### LOGGING ###
-A ufw-after-logging-input -j LOG --log-prefix "[UFW BLOCK] " -m limit --limit 3/min --limit-burst 10
### END LOGGING ###
COMMIT
"#;

    /// `user6.rules` as ufw 0.36.2 wrote it (trimmed), for `allow from 2001:db8::/32 to any port
    /// 53 proto udp comment sesame:fw-00000000000000aa`, `allow 80/tcp`, `allow from ::/0 … 26
    /// … udp comment sesame:fw-00000000000000dd`, `allow from 2001:db8::5 … 22 … tcp comment
    /// sesame:fw-00000000000000ee`, `allow from ::ffff:1.2.3.4 … 22 … tcp` and a `reject`.
    const USER6_RULES: &str = r"*filter
:ufw6-user-input - [0:0]
### RULES ###

### tuple ### allow udp 53 ::/0 any 2001:db8::/32 in comment=736573616d653a66772d30303030303030303030303030306161
-A ufw6-user-input -p udp --dport 53 -s 2001:db8::/32 -j ACCEPT

### tuple ### allow tcp 80 ::/0 any ::/0 in
-A ufw6-user-input -p tcp --dport 80 -j ACCEPT

### tuple ### allow udp 26 ::/0 any ::/0 in comment=736573616d653a66772d30303030303030303030303030306464
-A ufw6-user-input -p udp --dport 26 -j ACCEPT

### tuple ### allow tcp 22 ::/0 any 2001:db8::5 in comment=736573616d653a66772d30303030303030303030303030306565
-A ufw6-user-input -p tcp --dport 22 -s 2001:db8::5 -j ACCEPT

### tuple ### allow tcp 22 ::/0 any ::ffff:1.2.3.4 in
### tuple ### reject tcp 22 ::/0 any 2001:db8::9 in comment=736573616d653a66772d30303030303030303030303030306137
### END RULES ###
COMMIT
";

    fn id(s: &str) -> GrantId {
        s.parse().expect("grant id")
    }

    fn rule(src: &str, port: u16, proto: Proto) -> Rule {
        Rule::new(src.parse().expect("source"), port, proto).expect("rule")
    }

    /// A back end over a rules directory holding the two captured records; ufw itself is never
    /// run by the tests that use it.
    fn with_records() -> (tempfile::TempDir, Ufw) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("user.rules"), USER_RULES).expect("write");
        std::fs::write(dir.path().join("user6.rules"), USER6_RULES).expect("write");
        let ufw = Ufw::new(UfwConfig {
            ufw: PathBuf::from("/bin/false"),
            rules_dir: dir.path().to_owned(),
        })
        .expect("/bin/false exists");
        (dir, ufw)
    }

    #[test]
    fn tuples_are_split_into_words_and_a_decoded_comment() {
        let tuples = parse_tuples(USER_RULES, false);
        assert_eq!(tuples.len(), 19);
        assert_eq!(
            tuples[0].words,
            ["allow", "tcp", "22", "0.0.0.0/0", "any", "203.0.113.5", "in"]
        );
        assert_eq!(tuples[0].comment.as_deref(), Some("sesame:fw-0123456789abcdef"));
        assert_eq!(tuples[1].comment, None);
        assert_eq!(tuples[2].comment.as_deref(), Some("admin thing"));
        assert_eq!(tuples[18].comment.as_deref(), Some("café"));
        assert_eq!(tuples[16].words.len(), 9, "application rules have two more words");
    }

    #[test]
    fn owned_rules_are_the_tagged_ones_read_back_when_they_have_our_shape() {
        let (_dir, ufw) = with_records();
        let owned = ufw.owned().expect("owned");
        let expect = [
            ("fw-0123456789abcdef", Some(rule("203.0.113.5", 22, Proto::Tcp))),
            ("fw-00000000000000bb", None), // deny
            ("fw-00000000000000cc", Some(rule("0.0.0.0/0", 25, Proto::Tcp))),
            ("fw-00000000000000ff", None), // outgoing
            ("fw-0000000000000011", None), // on an interface
            ("fw-0000000000000012", None), // to one address
            ("fw-0000000000000013", None), // routed
            ("fw-0000000000000014", None), // from one source port
            ("fw-00000000000000a1", None), // logged
            ("fw-00000000000000a2", None), // limit
            ("fw-00000000000000a3", None), // port range
            ("fw-00000000000000a4", None), // port list
            ("fw-00000000000000a5", None), // any protocol
            ("fw-00000000000000a6", None), // application
            ("fw-00000000000000aa", Some(rule("2001:db8::/32", 53, Proto::Udp))),
            ("fw-00000000000000dd", Some(rule("::/0", 26, Proto::Udp))),
            ("fw-00000000000000ee", Some(rule("2001:db8::5", 22, Proto::Tcp))),
            ("fw-00000000000000a7", None), // reject
        ];
        let expect: Vec<OwnedRule> = expect
            .into_iter()
            .map(|(i, rule)| OwnedRule { id: id(i), rule })
            .collect();
        assert_eq!(owned, expect);
    }

    #[test]
    fn a_mapped_address_in_the_ipv6_record_is_not_read_as_an_ipv4_rule() {
        let tuples = parse_tuples(USER6_RULES, true);
        let mapped = tuples
            .iter()
            .find(|t| t.words[5] == "::ffff:1.2.3.4")
            .expect("captured");
        assert_eq!(mapped.shape(), None);
        assert!(!mapped.same_as(&rule("1.2.3.4", 22, Proto::Tcp)));
    }

    /// A rules directory that does not hold ufw's record (a wrong `ufw_rules_dir`): reading it
    /// as "no rules" would let a close "succeed" and drop the ledger entry while ufw's rule
    /// stays, and hide every tagged rule from reconciliation.
    #[test]
    fn a_missing_rules_file_is_an_error_never_an_empty_firewall() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ufw = Ufw::new(UfwConfig {
            ufw: PathBuf::from("/bin/true"),
            rules_dir: dir.path().join("absent"),
        })
        .expect("/bin/true exists");
        let err = ufw.check().expect_err("a start error");
        assert!(
            matches!(err, BackendError::Unusable(ref m) if m.contains("user.rules") && m.contains("ufw_rules_dir")),
            "{err:?}"
        );
        assert!(ufw.owned().is_err(), "owned");
        let r = rule("203.0.113.5", 22, Proto::Tcp);
        assert!(
            ufw.close(&GrantId::random(), &r).is_err(),
            "close confirms nothing"
        );
        assert!(ufw.open(&GrantId::random(), &r, 0).is_err(), "open");
    }

    #[test]
    fn a_missing_ufw_is_unusable() {
        let err = Ufw::new(UfwConfig {
            ufw: PathBuf::from("/nonexistent/ufw"),
            rules_dir: PathBuf::from("/nonexistent"),
        })
        .expect_err("missing");
        assert!(matches!(err, BackendError::Unusable(ref m) if m.contains("/nonexistent/ufw")));
    }

    #[test]
    fn opening_next_to_an_untagged_or_differently_acting_rule_is_a_conflict() {
        let (_dir, ufw) = with_records();
        let mine = GrantId::random();
        for (other, what) in [
            (rule("198.51.100.7", 22, Proto::Tcp), "no comment"),
            (rule("192.0.2.1", 22, Proto::Tcp), "deny tcp 22"),
            (rule("203.0.113.5", 22, Proto::Tcp), "sesame:fw-0123456789abcdef"),
            (rule("203.0.113.6", 22, Proto::Tcp), "allow_log"),
            (rule("2001:db8::9", 22, Proto::Tcp), "reject"),
        ] {
            // /bin/false would fail the add: the refusal comes before ufw is run.
            let err = ufw.open(&mine, &other, 0).expect_err("conflict");
            match err {
                BackendError::Conflict(m) => assert!(m.contains(what), "{m}"),
                e => panic!("{other}: unexpected {e:?}"),
            }
        }
    }

    #[test]
    fn rules_ufw_keeps_apart_are_no_conflict() {
        let (_dir, ufw) = with_records();
        let mine = GrantId::random();
        // Same source and port as rules on an interface, routed, to one address, with a source
        // port, for any protocol or an application: ufw adds ours beside them, so it runs
        // (here /bin/false, which fails).
        for other in [
            rule("10.0.0.1", 22, Proto::Tcp),
            rule("10.0.0.0/8", 22, Proto::Tcp),
            rule("10.0.0.2", 22, Proto::Tcp),
            rule("203.0.113.10", 22, Proto::Tcp),
            rule("203.0.113.11", 80, Proto::Tcp),
            rule("1.2.3.4", 22, Proto::Tcp),
        ] {
            let err = ufw.open(&mine, &other, 0).expect_err("/bin/false");
            assert!(matches!(err, BackendError::Tool(_)), "{other}: {err:?}");
        }
    }

    #[test]
    fn present_rules_are_not_added_again_and_absent_ones_need_no_closing() {
        let (_dir, ufw) = with_records();
        let present = id("fw-0123456789abcdef");
        let r = rule("203.0.113.5", 22, Proto::Tcp);
        ufw.open(&present, &r, 0).expect("already there: ufw not run");
        ufw.extend(&present, &r, 0).expect("already there: ufw not run");
        ufw.close(&GrantId::random(), &r)
            .expect("nothing tagged: ufw not run");
    }

    #[test]
    fn a_tagged_rule_of_another_shape_is_left_for_a_human() {
        let (_dir, ufw) = with_records();
        let err = ufw
            .close(&id("fw-00000000000000bb"), &rule("192.0.2.1", 22, Proto::Tcp))
            .expect_err("deny");
        assert!(matches!(err, BackendError::Unreadable(ref m) if m.contains("by hand")));
    }

    #[test]
    fn arguments_are_one_word_each() {
        let i = id("fw-0123456789abcdef");
        let r = rule("2001:db8::/32", 53, Proto::Udp);
        assert_eq!(
            allow_args(&i, &r),
            [
                "allow",
                "from",
                "2001:db8::/32",
                "to",
                "any",
                "port",
                "53",
                "proto",
                "udp",
                "comment",
                "sesame:fw-0123456789abcdef"
            ]
        );
        assert_eq!(delete_args(&i, &r)[..2], ["delete", "allow"]);
        assert_eq!(delete_args(&i, &r)[2..], allow_args(&i, &r)[1..]);
    }

    #[test]
    fn status_inactive_is_recognised() {
        assert!(is_inactive("Status: inactive\n"));
        assert!(!is_inactive(
            "Status: active\n\nTo                         Action      From\n"
        ));
    }

    /// Whether `path` is a mount point in this process's mount table.
    fn is_mount_point(path: &Path) -> bool {
        std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| {
            info.lines()
                .filter_map(|l| l.split(' ').nth(4))
                .any(|target| Path::new(target) == path)
        })
    }

    /// Why the live test must not run here, if it must not.
    fn live_refusal() -> Option<&'static str> {
        if std::env::var_os("SESAME_FW_LIVE").is_none_or(|v| v != "1") {
            return Some("set SESAME_FW_LIVE=1, in a private namespace, to run it");
        }
        let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
        if ns("self").is_none() || ns("self") == ns("1") {
            return Some("not in a private network namespace");
        }
        if !is_mount_point(Path::new("/etc")) {
            return Some("/etc is not a private mount (ufw writes /etc/ufw)");
        }
        None
    }

    /// Drives the real ufw. Run it only inside a private namespace with a throwaway /etc:
    ///
    /// ```text
    /// unshare --net --mount --propagation private sh -c 'mount -t tmpfs tmpfs /run; \
    ///   S=$(mktemp -d); mkdir $S/u $S/w; \
    ///   mount -t overlay overlay -o lowerdir=/etc,upperdir=$S/u,workdir=$S/w /etc; \
    ///   SESAME_FW_LIVE=1 cargo test -p sesamed --lib firewall::ufw -- --ignored'
    /// ```
    #[test]
    #[ignore = "changes the firewall: run in a private namespace with SESAME_FW_LIVE=1"]
    fn live_ufw() {
        if let Some(why) = live_refusal() {
            println!("skipped: {why}");
            return;
        }
        let ufw = Ufw::new(UfwConfig::default()).expect("ufw installed");
        let run = |args: &[&str]| ufw.tool.run(args).expect("ufw runs");
        run(&["--force", "disable"]);
        let warnings = ufw.check().expect("check");
        assert!(warnings.iter().any(|w| w.contains("inactive")), "{warnings:?}");
        run(&["--force", "enable"]);
        assert!(ufw.check().expect("check").is_empty());

        let (a, b) = (GrantId::random(), GrantId::random());
        let ra = rule("203.0.113.5", 22, Proto::Tcp);
        let rb = rule("2001:db8::/48", 5353, Proto::Udp);
        let started = std::time::Instant::now();
        ufw.open(&a, &ra, 0).expect("open v4");
        println!("one open took {:?}", started.elapsed());
        ufw.open(&b, &rb, 0).expect("open v6");
        ufw.open(&a, &ra, 0).expect("opening again is a no-op");
        let mut owned = ufw.owned().expect("owned");
        owned.sort_by(|x, y| x.id.cmp(&y.id));
        let mut expect = vec![
            OwnedRule {
                id: a.clone(),
                rule: Some(ra),
            },
            OwnedRule {
                id: b.clone(),
                rule: Some(rb),
            },
        ];
        expect.sort_by(|x, y| x.id.cmp(&y.id));
        assert_eq!(owned, expect);
        let status = run(&["status"]).stdout;
        assert!(status.contains(&a.tag()) && status.contains(&b.tag()), "{status}");

        // Someone else's rule for the same opening: refused, and theirs is left alone.
        run(&[
            "deny",
            "from",
            "198.51.100.9",
            "to",
            "any",
            "port",
            "22",
            "proto",
            "tcp",
        ]);
        let err = ufw
            .open(&GrantId::random(), &rule("198.51.100.9", 22, Proto::Tcp), 0)
            .expect_err("conflict");
        assert!(matches!(err, BackendError::Conflict(_)), "{err:?}");
        let theirs = ufw.tuples(false).expect("read").into_iter().find(|t| {
            t.words.first().is_some_and(|a| a == "deny")
                && t.words.get(5).is_some_and(|s| s == "198.51.100.9")
        });
        assert!(
            theirs.is_some_and(|t| t.comment.is_none()),
            "their deny is untouched"
        );

        // A rule removed behind our back comes back on extend.
        run(&[
            "delete",
            "allow",
            "from",
            "203.0.113.5",
            "to",
            "any",
            "port",
            "22",
            "proto",
            "tcp",
        ]);
        assert_eq!(ufw.owned().expect("owned").len(), 1);
        ufw.extend(&a, &ra, 0).expect("extend");
        assert_eq!(ufw.owned().expect("owned").len(), 2);

        let started = std::time::Instant::now();
        ufw.close(&a, &ra).expect("close v4");
        println!("one close took {:?}", started.elapsed());
        ufw.close(&b, &rb).expect("close v6");
        ufw.close(&b, &rb).expect("closing again is a no-op");
        assert!(ufw.owned().expect("owned").is_empty());
        let status = run(&["status"]).stdout;
        assert!(!status.contains("sesame:"), "{status}");
        assert!(status.contains("198.51.100.9"), "the other rule stays: {status}");
    }
}
