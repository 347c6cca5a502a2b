//! Labels on pinned hosts (`role=web`, `env=prod`), and choosing hosts by them: `sesame run
//! --where role=web,env=prod`. They live in this client's `hosts.toml` only: no host sees them
//! (a host's own `[host] labels` are another thing, given to its policy).
//!
//! A label's key and value are each 1 to 63 characters of letters, digits, `.`, `_` and `-`,
//! starting and ending with a letter or digit, so that `KEY=VALUE`, `KEY!=VALUE`, `KEY-` and
//! commas never read two ways.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest key or value.
pub const MAX_LEN: usize = 63;

/// Checks a label's key or value (`what` names it in the error).
fn check(what: &str, text: &str) -> Result<(), String> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if text.is_empty() || text.len() > MAX_LEN {
        return Err(format!("{what} {text:?} must be 1 to {MAX_LEN} characters"));
    }
    if !text.chars().all(inner) || !edge(text.chars().next()) || !edge(text.chars().last()) {
        return Err(format!(
            "{what} {text:?} may hold only letters, digits, '.', '_' and '-', and must start and \
             end with a letter or digit"
        ));
    }
    Ok(())
}

/// One label, `KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    key: String,
    value: String,
}

impl FromStr for Label {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((key, value)) = s.split_once('=') else {
            return Err(format!("{s:?}: a label is KEY=VALUE (role=web)"));
        };
        check("the key", key)?;
        check("the value", value)?;
        Ok(Self {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// A host's labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
pub struct Labels(BTreeMap<String, String>);

impl TryFrom<BTreeMap<String, String>> for Labels {
    type Error = String;

    fn try_from(map: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        for (key, value) in &map {
            check("the label key", key)?;
            check(&format!("label {key}'s value"), value)?;
        }
        Ok(Self(map))
    }
}

impl From<Labels> for BTreeMap<String, String> {
    fn from(labels: Labels) -> Self {
        labels.0
    }
}

impl fmt::Display for Labels {
    /// `env=prod,role=web` (by key), or nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, value)) in self.0.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            write!(f, "{comma}{key}={value}")?;
        }
        Ok(())
    }
}

impl Labels {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of label `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Applies `edits` in order.
    pub fn apply(&mut self, edits: &[LabelEdit]) {
        for edit in edits {
            match edit {
                LabelEdit::Set(label) => {
                    self.0.insert(label.key.clone(), label.value.clone());
                }
                LabelEdit::Remove(key) => {
                    self.0.remove(key);
                }
            }
        }
    }

    /// As JSON: an object of keys to values.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!(self.0)
    }
}

/// A change to a host's labels: `KEY=VALUE` sets one, `KEY-` removes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelEdit {
    /// Set (or replace) a label.
    Set(Label),
    /// Remove the label with this key (nothing if there is none).
    Remove(String),
}

impl FromStr for LabelEdit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains('=') {
            return s.parse().map(Self::Set);
        }
        match s.strip_suffix('-') {
            Some(key) => check("the key", key).map(|()| Self::Remove(key.to_owned())),
            None => Err(format!(
                "{s:?}: give KEY=VALUE to set a label, or KEY- to remove it"
            )),
        }
    }
}

/// One condition of a [`Selector`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    /// The host has the label with this value.
    Is(Label),
    /// The host has not this label with this value (another value, or none).
    IsNot(Label),
}

/// Which hosts to run on, by their labels: `role=web,env!=prod`, every condition met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

impl FromStr for Selector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let requirements = s
            .split(',')
            .map(|part| match part.split_once("!=") {
                Some((key, value)) => format!("{key}={value}").parse().map(Requirement::IsNot),
                None => part.parse().map(Requirement::Is),
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| format!("{e}; --where takes KEY=VALUE or KEY!=VALUE, comma-separated"))?;
        Ok(Self(requirements))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            match r {
                Requirement::Is(l) => write!(f, "{comma}{}={}", l.key, l.value)?,
                Requirement::IsNot(l) => write!(f, "{comma}{}!={}", l.key, l.value)?,
            }
        }
        Ok(())
    }
}

impl Selector {
    /// Whether a host with `labels` meets every condition.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Is(l) => labels.get(&l.key) == Some(l.value.as_str()),
            Requirement::IsNot(l) => labels.get(&l.key) != Some(l.value.as_str()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Labels::try_from(map).expect("labels")
    }

    #[test]
    fn labels_are_key_value_pairs_of_a_safe_alphabet() {
        let l: Label = "role=web".parse().expect("label");
        assert_eq!((l.key.as_str(), l.value.as_str()), ("role", "web"));
        assert!("app.kubernetes_io-name=A1.b_c-D".parse::<Label>().is_ok());
        let long = "k".repeat(MAX_LEN);
        assert!(format!("{long}={long}").parse::<Label>().is_ok());
        for bad in [
            "role",
            "=web",
            "role=",
            "role=web=x",
            "-role=web",
            "role-=web",
            "role=web-",
            "ro le=web",
            "role=wéb",
            "role=a,b",
            "role=a!b",
            "role\n=web",
        ] {
            assert!(bad.parse::<Label>().is_err(), "{bad:?}");
        }
        assert!(format!("{long}k=v").parse::<Label>().is_err());
    }

    #[test]
    fn edits_set_replace_and_remove() {
        let mut l = labels(&[("role", "web"), ("env", "test")]);
        let edits: Vec<LabelEdit> = ["env=prod", "role-", "dc=fra1", "absent-"]
            .iter()
            .map(|e| e.parse().expect("edit"))
            .collect();
        l.apply(&edits);
        assert_eq!(l.to_string(), "dc=fra1,env=prod");
        assert!("role".parse::<LabelEdit>().is_err());
        assert!("-".parse::<LabelEdit>().is_err());
        assert!("ro le-".parse::<LabelEdit>().is_err());
    }

    #[test]
    fn a_selector_wants_every_condition() {
        let s: Selector = "role=web,env!=prod".parse().expect("selector");
        assert_eq!(s.to_string(), "role=web,env!=prod");
        assert!(s.matches(&labels(&[("role", "web"), ("env", "test")])));
        assert!(s.matches(&labels(&[("role", "web")])), "no env is not env=prod");
        assert!(!s.matches(&labels(&[("role", "web"), ("env", "prod")])));
        assert!(!s.matches(&labels(&[("role", "db")])));
        assert!(!s.matches(&Labels::default()));
        for bad in [
            "",
            "role",
            "role=web,",
            ",role=web",
            "role==web",
            "role=web;env=prod",
            "role!=",
            "!=web",
        ] {
            assert!(bad.parse::<Selector>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn labels_read_from_hosts_toml_are_checked() {
        #[derive(Deserialize)]
        struct Entry {
            labels: Labels,
        }
        let ok: Entry = toml::from_str("labels = { role = \"web\" }").expect("toml");
        assert_eq!(ok.labels.get("role"), Some("web"));
        let bad = toml::from_str::<Entry>("labels = { role = \"a b\" }");
        assert!(bad.is_err_and(|e| e.to_string().contains("may hold only")));
    }
}
