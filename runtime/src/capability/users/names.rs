//! Account and group names, login shells and GECOS comments, parsed before any tool sees them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Why a name, shell, comment or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidArg(pub String);

/// Checks a user or group name: 1–32 of `a-z 0-9 _ -`, starting with a letter or `_` (the
/// portable subset shadow's tools accept; never an option, never a path).
fn check(kind: &str, s: &str) -> Result<(), InvalidArg> {
    let ok = (1..=32).contains(&s.len())
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(InvalidArg(format!(
            "{kind} name {s:?}: expected 1-32 of a-z 0-9 _ -, starting with a letter or _"
        )))
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidArg;

            fn from_str(s: &str) -> Result<Self, InvalidArg> {
                check($kind, s)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A login name.
    UserName,
    "user"
);
name_type!(
    /// A group name.
    GroupName,
    "group"
);

impl From<&UserName> for GroupName {
    /// The group of an account's own name (`useradd --user-group`); both follow one syntax.
    fn from(user: &UserName) -> Self {
        Self(user.0.clone())
    }
}

/// A login shell: an absolute path listed in `/etc/shells` (checked when used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell(PathBuf);

impl Shell {
    /// The shell's path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// Whether `shells` (the text of `/etc/shells`) lists this shell.
    pub fn is_listed_in(&self, shells: &str) -> bool {
        shells
            .lines()
            .map(str::trim)
            .any(|l| !l.starts_with('#') && std::path::Path::new(l) == self.0)
    }
}

impl FromStr for Shell {
    type Err = InvalidArg;

    fn from_str(s: &str) -> Result<Self, InvalidArg> {
        let ok = s.starts_with('/')
            && s.len() <= 256
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b))
            && !s.split('/').any(|c| c == "..");
        if ok {
            Ok(Self(PathBuf::from(s)))
        } else {
            Err(InvalidArg(format!(
                "shell {s:?}: expected an absolute path such as /bin/bash"
            )))
        }
    }
}

/// A GECOS comment (full name): printable, no `:` (the passwd field separator), at most 256 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment(String);

impl Comment {
    /// The comment as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Comment {
    type Err = InvalidArg;

    fn from_str(s: &str) -> Result<Self, InvalidArg> {
        let ok = s.len() <= 256 && !s.contains(':') && !s.chars().any(char::is_control);
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidArg(format!(
                "comment {s:?}: at most 256 printable characters, no ':'"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_the_portable_subset_only() {
        for good in ["alice", "_svc", "deploy-2", "a", "x_y-z9"] {
            good.parse::<UserName>().expect(good);
            good.parse::<GroupName>().expect(good);
        }
        for bad in [
            "",
            "Alice",
            "-r",
            "9lives",
            "alice bob",
            "a/b",
            "../x",
            "al:ce",
            "alice\n",
            "x".repeat(33).as_str(),
            "root;id",
            "alice$",
        ] {
            assert!(bad.parse::<UserName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shells_and_comments() {
        let sh: Shell = "/bin/bash".parse().expect("bash");
        assert!(sh.is_listed_in("# /etc/shells\n/bin/sh\n/bin/bash\n"));
        assert!(!sh.is_listed_in("/bin/sh\n# /bin/bash\n"));
        for bad in ["bash", "/bin/../tmp/x", "/bin/ba sh", "/bin/sh;id", ""] {
            assert!(bad.parse::<Shell>().is_err(), "{bad:?}");
        }
        "Alice Example, room 4".parse::<Comment>().expect("comment");
        for bad in ["a:b", "line\nbreak", "tab\there"] {
            assert!(bad.parse::<Comment>().is_err(), "{bad:?}");
        }
    }
}
