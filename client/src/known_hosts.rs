//! `sesame known-hosts`: a host's SSH host public keys, from its sealed answer, in `known_hosts`
//! form for OpenSSH's `KnownHostsCommand`: `NAME TYPE KEY`, one key a line.
//!
//! The answer is trusted only as far as it is the pinned host's word, and read as strictly as
//! the host reads its own key files ([`HostKey`]): a line that is not exactly a key of a served
//! type refuses the whole answer, so nothing else (a marker such as `@cert-authority`, another
//! host's name, a second line in one) ever reaches ssh. The name in front is this client's,
//! checked before anything is sent.

use std::fmt;
use std::str::FromStr;

use sesame_proto::{HostKey, HostKeyError};

/// The longest name accepted (ssh's `HostKeyAlias`, or `[host]:port`).
pub const MAX_NAME_LEN: usize = 1024;

/// What ssh looks a host's keys up by (`%H`): the first field of each line printed. Printable
/// ASCII without spaces, not starting with `@` (a marker), `#` (a comment) or `|` (a hashed
/// name), at most [`MAX_NAME_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHostsName(String);

impl FromStr for KnownHostsName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        let why = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_NAME_LEN {
            Some("it is too long")
        } else if !name.bytes().all(|b| b.is_ascii_graphic()) {
            Some("it holds a space, a control character or non-ASCII text")
        } else if name.starts_with(['@', '#', '|']) {
            Some("a known_hosts line starting with @, # or | is a marker, a comment or a hashed name")
        } else {
            None
        };
        match why {
            Some(why) => Err(format!(
                "{:?} cannot name a host in known_hosts: {why}",
                name.chars().take(80).collect::<String>()
            )),
            None => Ok(Self(name.to_owned())),
        }
    }
}

impl fmt::Display for KnownHostsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a host's answer holds no keys to print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// The answer is empty.
    #[error("its answer holds no SSH host key")]
    NoKeys,
    /// A line of the answer is not an SSH host public key.
    #[error("line {line} of its answer is not an SSH host key ({source}); none is printed")]
    NotAKey {
        /// The line, counting from 1.
        line: usize,
        /// Why.
        #[source]
        source: HostKeyError,
    },
}

/// The `known_hosts` lines for the keys in `output` (the stock `known-hosts` module's answer,
/// one `TYPE KEY` line each), under `name`; every line ends in a newline.
pub fn lines(name: &KnownHostsName, output: &str) -> Result<String, AnswerError> {
    let mut text = String::new();
    if output.is_empty() {
        return Err(AnswerError::NoKeys);
    }
    // Split at `\n` only: a `\r` is not part of a line ending here, and is refused with it.
    let body = output.strip_suffix('\n').unwrap_or(output);
    for (i, line) in body.split('\n').enumerate() {
        let key: HostKey = line
            .parse()
            .map_err(|source| AnswerError::NotAKey { line: i + 1, source })?;
        text.push_str(&format!("{name} {key}\n"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKKLn/q97bFQU3fk4Kir6HIV21r27Mp6Hs8MEGbcvL4n";
    const NISTP256: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBM44TwVzCFz65fzcjdOjTY5YUOaLLn/qvYM1/H6xyJ2lgyNqNc9Qt8vHrkVP1oByCE/IWUg1KVMXZMTKpLDvi34=";

    fn name(text: &str) -> KnownHostsName {
        text.parse().expect("a name")
    }

    #[test]
    fn each_key_is_a_line_under_the_name_ssh_looks_for() {
        let output = format!("{NISTP256}\n{ED25519}");
        assert_eq!(
            lines(&name("web1"), &output),
            Ok(format!("web1 {NISTP256}\nweb1 {ED25519}\n"))
        );
        assert_eq!(
            lines(&name("[web1]:2222"), &format!("{ED25519}\n")),
            Ok(format!("[web1]:2222 {ED25519}\n")),
            "a port other than 22, as %H gives it"
        );
        assert_eq!(
            lines(
                &name("web1,203.0.113.10"),
                &format!("{ED25519} a comment the host left\n")
            ),
            Ok(format!("web1,203.0.113.10 {ED25519}\n"))
        );
    }

    #[test]
    fn an_answer_with_anything_but_keys_prints_nothing() {
        let n = name("web1");
        assert_eq!(lines(&n, ""), Err(AnswerError::NoKeys));
        assert_eq!(
            lines(&n, "\n"),
            Err(AnswerError::NotAKey {
                line: 1,
                source: HostKeyError::Missing
            })
        );
        for (output, line) in [
            (format!("{ED25519}\n@cert-authority * {ED25519}"), 2),
            (format!("@revoked {ED25519}"), 1),
            (format!("{ED25519}\nssh-dss AAAAB3NzaC1kc3MAAACBAKIA"), 2),
            (format!("ssh-rsa {}", &ED25519[12..]), 1),
            (format!("{ED25519}\r\n{NISTP256}"), 1),
            ("opened 22/tcp for 203.0.113.5".to_owned(), 1),
        ] {
            match lines(&n, &output) {
                Err(AnswerError::NotAKey { line: got, .. }) => assert_eq!(got, line, "{output:?}"),
                other => panic!("{output:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn names_that_would_change_what_a_line_means_are_refused() {
        for good in [
            "web1",
            "[web1]:2222",
            "203.0.113.10",
            "[2001:db8::5]:22",
            "*.example.com",
            "web1,web1.example.com",
        ] {
            assert_eq!(name(good).to_string(), good);
        }
        for (bad, why) in [
            ("", "empty"),
            ("web 1", "a space"),
            ("web1\tx", "a space"),
            ("web1\n@cert-authority", "control character"),
            ("wéb1", "non-ASCII"),
            ("@cert-authority", "marker"),
            ("#web1", "marker"),
            ("|1|c2FsdA==|aGFzaA==", "hashed"),
        ] {
            let err = bad.parse::<KnownHostsName>().expect_err(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!("w".repeat(MAX_NAME_LEN).parse::<KnownHostsName>().is_ok());
        assert!("w".repeat(MAX_NAME_LEN + 1).parse::<KnownHostsName>().is_err());
    }
}
