//! OpenSSH public keys, and the pure part of editing `authorized_keys`: which lines hold which
//! key. Writing the file safely is [`super::home`]'s job.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;

use super::names::InvalidArg;

/// Key types accepted in a key line.
pub const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// The longest key line accepted (a 16384-bit RSA key is about 2.8 KiB).
pub const MAX_KEY_LINE: usize = 8 * 1024;

/// A public key: `TYPE BASE64 [COMMENT]`, with no options (`command=`, `from=`, … are not
/// accepted from a client: they would let a caller change what the key may do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKey {
    kind: String,
    blob: String,
    comment: Option<String>,
}

impl SshKey {
    /// The key type.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Whether `line` (a line of an `authorized_keys` file, possibly with options in front)
    /// holds this key (same type and key data, whatever the comment and options).
    pub fn is_on(&self, line: &str) -> bool {
        let words: Vec<&str> = line.split_whitespace().collect();
        words.windows(2).any(|w| w[0] == self.kind && w[1] == self.blob)
    }

    /// The key itself, `TYPE BASE64`: what the grants ledger records of a temporary key.
    pub fn bare(&self) -> String {
        format!("{} {}", self.kind, self.blob)
    }

    /// A short, recognisable form for messages: type, the blob's last 12 characters, comment.
    pub fn summary(&self) -> String {
        let tail = &self.blob[self.blob.len().saturating_sub(12)..];
        match &self.comment {
            Some(c) => format!("{} …{tail} {c}", self.kind),
            None => format!("{} …{tail}", self.kind),
        }
    }
}

impl FromStr for SshKey {
    type Err = InvalidArg;

    fn from_str(s: &str) -> Result<Self, InvalidArg> {
        let bad = |why: &str| InvalidArg(format!("ssh key: {why}"));
        if s.len() > MAX_KEY_LINE {
            return Err(bad(&format!("longer than {MAX_KEY_LINE} bytes")));
        }
        if s.chars().any(|c| c.is_control() && c != ' ') {
            return Err(bad("one line of printable text expected"));
        }
        let mut words = s.split_whitespace();
        let kind = words.next().ok_or_else(|| bad("empty"))?;
        if !KEY_TYPES.contains(&kind) {
            return Err(bad(&format!(
                "type {kind:?} is not one of {} (options such as command= are not accepted)",
                KEY_TYPES.join(", ")
            )));
        }
        let blob = words.next().ok_or_else(|| bad("no key data after the type"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(blob)
            .map_err(|_| bad("the key data is not base64"))?;
        // The blob starts with the key type as an SSH string: u32 length, then the name.
        let inner = bytes
            .get(..4)
            .map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize)
            .and_then(|n| bytes.get(4..4 + n))
            .ok_or_else(|| bad("the key data is truncated"))?;
        if inner != kind.as_bytes() {
            return Err(bad(&format!("the key data is not a {kind} key")));
        }
        let comment: Vec<&str> = words.collect();
        Ok(Self {
            kind: kind.to_owned(),
            blob: blob.to_owned(),
            comment: (!comment.is_empty()).then(|| comment.join(" ")),
        })
    }
}

impl fmt::Display for SshKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.blob)?;
        if let Some(c) = &self.comment {
            write!(f, " {c}")?;
        }
        Ok(())
    }
}

/// `text` with `key` appended, or `None` when a line already holds it.
pub fn with_key(text: &str, key: &SshKey) -> Option<String> {
    if text.lines().any(|l| key.is_on(l)) {
        return None;
    }
    let mut out = text.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&key.to_string());
    out.push('\n');
    Some(out)
}

/// `text` without the lines holding `key`, or `None` when none does. Every other line (other
/// keys, comments, options) is kept as it was.
pub fn without_key(text: &str, key: &SshKey) -> Option<String> {
    if !text.lines().any(|l| key.is_on(l)) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    for line in text.lines().filter(|l| !key.is_on(l)) {
        out.push_str(line);
        out.push('\n');
    }
    Some(out)
}

/// The option that makes sshd refuse a key after `until_ms` (OpenSSH 8.2 and later):
/// `expiry-time="YYYYMMDDHHMMSSZ"`, rounded down to the second so the key never outlives it.
pub fn expiry_option(until_ms: u64) -> String {
    let digits: String = sesame_proto::format_utc(until_ms)
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    format!("expiry-time=\"{digits}Z\"")
}

/// Whether `line` is a temporary key line sesamed wrote: it starts with an `expiry-time` option.
fn is_temporary(line: &str) -> bool {
    line.trim_start().starts_with("expiry-time=\"")
}

/// What adding a temporary key did to `authorized_keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemporaryEdit {
    /// The key was not there: this text adds it, expiring.
    Added(String),
    /// It was there as a temporary key: this text gives it the new expiry.
    Retimed(String),
    /// A line without an expiry holds it: it stays as it is (a permanent key is not made
    /// temporary behind its owner's back), and nothing is written.
    Permanent,
}

/// `text` with `key` expiring at `until_ms`: sesamed's temporary line for it replaced, or added.
pub fn with_temporary_key(text: &str, key: &SshKey, until_ms: u64) -> TemporaryEdit {
    if text.lines().any(|l| key.is_on(l) && !is_temporary(l)) {
        return TemporaryEdit::Permanent;
    }
    let line = format!("{} {key}", expiry_option(until_ms));
    let mut out = String::with_capacity(text.len() + line.len() + 1);
    let mut replaced = false;
    for l in text.lines() {
        if key.is_on(l) {
            if !replaced {
                out.push_str(&line);
                out.push('\n');
                replaced = true;
            }
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    if replaced {
        TemporaryEdit::Retimed(out)
    } else {
        out.push_str(&line);
        out.push('\n');
        TemporaryEdit::Added(out)
    }
}

/// `text` without sesamed's temporary lines for `key`, or `None` when there is none. A
/// permanent line for the same key is kept: only what sesamed added is taken back.
pub fn without_temporary_key(text: &str, key: &SshKey) -> Option<String> {
    let gone = |l: &str| key.is_on(l) && is_temporary(l);
    if !text.lines().any(gone) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    for line in text.lines().filter(|l| !gone(l)) {
        out.push_str(line);
        out.push('\n');
    }
    Some(out)
}

/// Whether `text` holds `key` as a temporary key.
pub fn has_temporary_key(text: &str, key: &SshKey) -> bool {
    text.lines().any(|l| key.is_on(l) && is_temporary(l))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A real ed25519 public key (from ssh-keygen).
    pub(crate) const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpyo4ZeTj/fgjh+FvzKwzxzIh8WWnHh6ELIpKiD6cti alice@laptop";
    const OTHER: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBi2hgxVA803xRjMqlF+uGfp+mj7/l0aXp6LRfw+1T/p bob";

    #[test]
    fn keys_are_parsed_and_checked() {
        let k: SshKey = ED25519.parse().expect("valid");
        assert_eq!(k.kind(), "ssh-ed25519");
        assert_eq!(k.to_string(), ED25519);
        assert!(
            k.summary().ends_with("…6ELIpKiD6cti alice@laptop"),
            "{}",
            k.summary()
        );
        for (bad, why) in [
            ("", "empty"),
            ("ssh-dss AAAAB3NzaC1kc3M=", "is not one of"),
            (
                "command=\"/bin/sh\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
                "options such as command=",
            ),
            ("ssh-ed25519", "no key data"),
            ("ssh-ed25519 not*base64", "not base64"),
            ("ssh-ed25519 AAAA", "truncated"),
            (
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIDpyo4ZeTj/fgjh+FvzKwzxzIh8WWnHh6ELIpKiD6cti",
                "not a ssh-rsa key",
            ),
            (
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpyo4ZeTj/fgjh+FvzKwzxzIh8WWnHh6ELIpKiD6cti x\nssh-rsa y",
                "one line",
            ),
        ] {
            let err = bad.parse::<SshKey>().expect_err(bad).0;
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn adding_is_idempotent_and_removing_keeps_other_lines() {
        let k: SshKey = ED25519.parse().expect("valid");
        let start = format!("# managed by hand\n{OTHER}");
        let added = with_key(&start, &k).expect("added");
        assert_eq!(added, format!("# managed by hand\n{OTHER}\n{ED25519}\n"));
        assert_eq!(with_key(&added, &k), None, "no duplicate");
        // The same key with another comment or with options is the same key.
        let optioned = format!(
            "from=\"10.0.0.0/8\" {} other-comment\n",
            &ED25519[..ED25519.rfind(' ').expect("space")]
        );
        assert_eq!(with_key(&optioned, &k), None);
        let removed = without_key(&format!("{added}{optioned}"), &k).expect("removed");
        assert_eq!(removed, format!("# managed by hand\n{OTHER}\n"));
        assert_eq!(without_key(&removed, &k), None);
        assert_eq!(with_key("", &k).as_deref(), Some(format!("{ED25519}\n").as_str()));
    }

    #[test]
    fn temporary_keys_carry_sshds_expiry_and_only_they_are_taken_back() {
        let k: SshKey = ED25519.parse().expect("valid");
        // 2026-12-05 12:15:30.999 UTC
        let until = 1_796_472_930_999;
        assert_eq!(expiry_option(until), "expiry-time=\"20261205121530Z\"");
        let TemporaryEdit::Added(added) = with_temporary_key(&format!("{OTHER}\n"), &k, until) else {
            panic!("added");
        };
        assert_eq!(
            added,
            format!("{OTHER}\nexpiry-time=\"20261205121530Z\" {ED25519}\n")
        );
        assert!(has_temporary_key(&added, &k));
        // Again: one line, the new expiry.
        let TemporaryEdit::Retimed(retimed) = with_temporary_key(&added, &k, until + 3_600_000) else {
            panic!("retimed");
        };
        assert_eq!(
            retimed,
            format!("{OTHER}\nexpiry-time=\"20261205131530Z\" {ED25519}\n")
        );
        assert_eq!(retimed.lines().filter(|l| k.is_on(l)).count(), 1);
        // Taken back: only the temporary line.
        assert_eq!(without_temporary_key(&retimed, &k), Some(format!("{OTHER}\n")));
        assert_eq!(without_temporary_key(&format!("{OTHER}\n"), &k), None);
        // A permanent key stays permanent, and is never taken back.
        let permanent = format!("{ED25519}\n");
        assert_eq!(
            with_temporary_key(&permanent, &k, until),
            TemporaryEdit::Permanent
        );
        assert_eq!(without_temporary_key(&permanent, &k), None);
        assert!(!has_temporary_key(&permanent, &k));
        assert_eq!(
            k.bare(),
            ED25519[..ED25519.rfind(' ').expect("comment")].to_owned()
        );
    }
}
