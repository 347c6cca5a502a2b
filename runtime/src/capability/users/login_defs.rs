//! The ordinary uid and gid ranges from `/etc/login.defs` (`UID_MIN`, `UID_MAX`, `GID_MIN`,
//! `GID_MAX`), read once when the users service starts.
//!
//! They decide which accounts and groups are system ones, which no grant reaches unless it
//! names them ([`super::reach`]). The file is read the way shadow's tools read it (a key, blanks,
//! a value; `#` starts a comment line; the last definition of a key wins; decimal, octal `0…`
//! or hex `0x…` numbers), so sesame draws the line where `useradd` does. A missing file or key
//! means shadow's default. A value shadow could not read either, or ranges that make no sense,
//! stop the service from starting: shadow would silently fall back to its default, but a guess
//! here could put a site's system accounts (say, below a `UID_MIN` of 5000 with a typo in it)
//! within reach of a grant.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// The keys read; shadow's other settings do not concern sesame.
const KEYS: [&str; 4] = ["UID_MIN", "UID_MAX", "GID_MIN", "GID_MAX"];

/// The ordinary id ranges of this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginDefs {
    /// `UID_MIN`: the first uid of an ordinary account.
    pub uid_min: u32,
    /// `UID_MAX`: the last uid of an ordinary account (`nobody`, 65534, is above it).
    pub uid_max: u32,
    /// `GID_MIN`: the first gid of an ordinary group.
    pub gid_min: u32,
    /// `GID_MAX`: the last gid of an ordinary group.
    pub gid_max: u32,
}

/// Why `/etc/login.defs` was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginDefsError {
    /// The file exists but could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A value is not a number shadow would read (it would fall back to its default).
    #[error("{path}:{line}: {key} {value:?} is not a number from 1 to 4294967294")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// Its line (1-based).
        line: usize,
        /// The key.
        key: &'static str,
        /// The value as written.
        value: String,
    },
    /// A minimum above its maximum.
    #[error("{path}: {min_key} {min} is above {max_key} {max}")]
    Inverted {
        /// The file.
        path: PathBuf,
        /// `UID_MIN` or `GID_MIN`.
        min_key: &'static str,
        /// Its value.
        min: u32,
        /// `UID_MAX` or `GID_MAX`.
        max_key: &'static str,
        /// Its value.
        max: u32,
    },
}

impl Default for LoginDefs {
    /// shadow's defaults, used for keys the file leaves out.
    fn default() -> Self {
        Self {
            uid_min: 1000,
            uid_max: 60000,
            gid_min: 1000,
            gid_max: 60000,
        }
    }
}

impl LoginDefs {
    /// Reads `path`; a missing file means the defaults (as for shadow's tools).
    pub fn read(path: &Path) -> Result<Self, LoginDefsError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(
                    "{}: not found; ordinary accounts are uids 1000-60000, groups gids 1000-60000",
                    path.display()
                );
                Ok(Self::default())
            }
            Err(source) => Err(LoginDefsError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Reads the text of a login.defs file (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, LoginDefsError> {
        let mut defs = Self::default();
        for (i, line) in text.lines().enumerate() {
            let Some((key, value)) = definition(line) else {
                continue;
            };
            let Some(key) = KEYS.into_iter().find(|k| *k == key) else {
                continue;
            };
            let slot = match key {
                "UID_MIN" => &mut defs.uid_min,
                "UID_MAX" => &mut defs.uid_max,
                "GID_MIN" => &mut defs.gid_min,
                _ => &mut defs.gid_max,
            };
            *slot = number(value).ok_or_else(|| LoginDefsError::BadValue {
                path: path.to_owned(),
                line: i + 1,
                key,
                value: value.to_owned(),
            })?;
        }
        for (min_key, min, max_key, max) in [
            ("UID_MIN", defs.uid_min, "UID_MAX", defs.uid_max),
            ("GID_MIN", defs.gid_min, "GID_MAX", defs.gid_max),
        ] {
            if min > max {
                return Err(LoginDefsError::Inverted {
                    path: path.to_owned(),
                    min_key,
                    min,
                    max_key,
                    max,
                });
            }
        }
        Ok(defs)
    }

    /// The uids of ordinary accounts.
    pub fn uids(&self) -> RangeInclusive<u32> {
        self.uid_min..=self.uid_max
    }

    /// The gids of ordinary groups.
    pub fn gids(&self) -> RangeInclusive<u32> {
        self.gid_min..=self.gid_max
    }
}

/// `(key, value)` of a line as shadow's `def_load` splits it: blanks, the key, blanks and
/// double quotes, then the value up to the next double quote, trailing blanks trimmed. `None`
/// for blank lines, comments and lines with a key only.
fn definition(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_start_matches([' ', '\t']).trim_end();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (key, rest) = line.split_once([' ', '\t'])?;
    let value = rest.trim_start_matches([' ', '\t', '"']);
    let value = value.split('"').next().unwrap_or(value);
    Some((key, value))
}

/// A uid or gid as shadow's `getulong` reads it (base 0: `0x` hex, `0` octal, else decimal),
/// between 1 and 4294967294 (0 would make root ordinary; 4294967295 is `(uid_t) -1`).
fn number(value: &str) -> Option<u32> {
    let n = if let Some(hex) = value.strip_prefix("0x").or_else(|| value.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()?
    } else if value.len() > 1
        && let Some(octal) = value.strip_prefix('0')
    {
        u32::from_str_radix(octal, 8).ok()?
    } else {
        value.parse().ok()?
    };
    // Rust's parsers take a leading '+' (strtoul does too); no sign is accepted here.
    (n != 0 && n != u32::MAX && !value.contains(['+', '-'])).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LoginDefs, LoginDefsError> {
        LoginDefs::parse(text, Path::new("/etc/login.defs"))
    }

    fn defs(uid_min: u32, uid_max: u32, gid_min: u32, gid_max: u32) -> LoginDefs {
        LoginDefs {
            uid_min,
            uid_max,
            gid_min,
            gid_max,
        }
    }

    #[test]
    fn debian_file_is_read() {
        let text = "#\n# /etc/login.defs\n#\nMAIL_DIR        /var/mail\nUID_MIN\t\t\t 1000\nUID_MAX\t\t\t60000\n#SYS_UID_MIN\t\t  100\nGID_MIN\t\t\t 1000\nGID_MAX\t\t\t60000\nENCRYPT_METHOD SHA512\n";
        assert_eq!(parse(text).expect("defs"), LoginDefs::default());
    }

    #[test]
    fn values_comments_quotes_and_repeats() {
        let text = "UID_MIN 500\n  # UID_MIN 9\n\tUID_MAX \"30000\"\nGID_MIN 0x3e8\nGID_MAX 077777\nUID_MIN 2000\nUID_MIN\n";
        assert_eq!(parse(text).expect("defs"), defs(2000, 30000, 1000, 32767));
    }

    #[test]
    fn missing_keys_and_file_take_the_defaults() {
        assert_eq!(parse("").expect("empty"), LoginDefs::default());
        assert_eq!(
            parse("UID_MIN 5000\n").expect("partial"),
            defs(5000, 60000, 1000, 60000)
        );
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            LoginDefs::read(&dir.path().join("login.defs")).expect("missing"),
            LoginDefs::default()
        );
        assert!(matches!(
            LoginDefs::read(dir.path()),
            Err(LoginDefsError::Io { .. })
        ));
    }

    #[test]
    fn bad_values_are_refused_with_file_and_line() {
        for (text, line) in [
            ("UID_MIN 1000 # ordinary\n", 1),
            ("UID_MAX 6e4\n", 1),
            ("\nGID_MIN -1\n", 2),
            ("GID_MAX 4294967296\n", 1),
            ("UID_MIN 0\n", 1),
            ("UID_MAX 4294967295\n", 1),
            ("UID_MIN 09\n", 1),
            ("UID_MIN 0x\n", 1),
            ("UID_MIN +-5\n", 1),
            ("UID_MIN \"\"\n", 1),
        ] {
            match parse(text) {
                Err(LoginDefsError::BadValue { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let err = parse("UID_MIN 1000 # ordinary\n").expect_err("comment after the value");
        assert_eq!(
            err.to_string(),
            "/etc/login.defs:1: UID_MIN \"1000 # ordinary\" is not a number from 1 to 4294967294"
        );
    }

    #[test]
    fn inverted_ranges_are_refused() {
        let err = parse("UID_MIN 70000\n").expect_err("above UID_MAX");
        assert_eq!(
            err.to_string(),
            "/etc/login.defs: UID_MIN 70000 is above UID_MAX 60000"
        );
        assert!(matches!(
            parse("GID_MAX 10\n"),
            Err(LoginDefsError::Inverted {
                min_key: "GID_MIN",
                ..
            })
        ));
        assert_eq!(parse("UID_MIN 7\nUID_MAX 7\n").expect("one uid").uids(), 7..=7);
    }
}
