//! Typed parameters of a declared program: what a module's `name=value` may be, parsed before
//! anything else looks at it.
//!
//! Whatever the type, a value becomes exactly one argument of the program (or its standard input,
//! or one environment variable, when it is a secret), so it can never be split into two, and no
//! value a client chooses can start with `-` (an option) or hold a NUL, a newline or another
//! control character. Enum values are the operator's own and are used as written.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

/// The longest string parameter an operator may allow (`max_len`).
pub const MAX_STRING_LEN: usize = 4096;

/// How a parameter is declared in `[exec.programs.NAME.params.PARAM]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ParamDecl {
    /// One of `values`, exactly.
    Enum {
        /// The values allowed.
        values: Vec<String>,
        /// How the value reaches the program when it is a secret.
        #[serde(default)]
        secret: Option<SecretDecl>,
    },
    /// A decimal integer in `min..=max` (both at least 0: a value starting with `-` would read
    /// as an option).
    Int {
        /// The smallest value.
        min: u64,
        /// The largest value.
        max: u64,
        /// How the value reaches the program when it is a secret.
        #[serde(default)]
        secret: Option<SecretDecl>,
    },
    /// A string matching `pattern` as a whole (it is anchored for you) of at most `max_len`
    /// bytes.
    String {
        /// A regular expression (Rust's `regex` syntax, RE2-like).
        pattern: String,
        /// The longest value, bytes (at most [`MAX_STRING_LEN`]).
        max_len: usize,
        /// How the value reaches the program when it is a secret.
        #[serde(default)]
        secret: Option<SecretDecl>,
    },
    /// A path under `root`: relative to it or absolute, resolved with every symlink followed, and
    /// refused unless the result is `root` or below it. The program gets the resolved path.
    Path {
        /// An absolute directory.
        root: PathBuf,
        /// How the value reaches the program when it is a secret.
        #[serde(default)]
        secret: Option<SecretDecl>,
    },
}

/// `secret = "stdin"` or `secret = { env = "NAME" }`: the value is handed to the program on its
/// standard input or in that environment variable, never in its arguments (which every local
/// user can read in `/proc`), and is masked in every log, audit record and dry run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum SecretDecl {
    /// On standard input, followed by a newline.
    Stdin,
    /// In this environment variable.
    Env(String),
}

/// A parameter's checked declaration.
#[derive(Debug, Clone)]
pub struct Param {
    kind: Kind,
    secret: Option<SecretDecl>,
}

#[derive(Debug, Clone)]
enum Kind {
    Enum(Vec<String>),
    Int { min: u64, max: u64 },
    String { pattern: Regex, max_len: usize },
    Path { root: PathBuf },
}

/// A parsed parameter value, ready to be substituted.
#[derive(Clone, PartialEq, Eq)]
pub struct Value {
    text: String,
    secret: bool,
}

impl Value {
    /// The value as the program gets it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it is a secret (never shown).
    pub fn is_secret(&self) -> bool {
        self.secret
    }

    /// The value as logs, audit records and dry runs show it: secrets as `***`.
    pub fn shown(&self) -> &str {
        if self.secret { "***" } else { &self.text }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.shown())
    }
}

impl Param {
    /// Checks a declaration (`what` names it in errors: `exec.programs.NAME.params.PARAM`).
    pub fn new(what: &str, decl: &ParamDecl) -> Result<Self, String> {
        let (kind, secret) = match decl {
            ParamDecl::Enum { values, secret } => {
                if values.is_empty() {
                    return Err(format!("{what}: an enum needs at least one value"));
                }
                if let Some(v) = values.iter().find(|v| v.bytes().any(|b| b == 0)) {
                    return Err(format!("{what}: value {v:?} holds a NUL"));
                }
                (Kind::Enum(values.clone()), secret)
            }
            ParamDecl::Int { min, max, secret } => {
                if min > max {
                    return Err(format!("{what}: min {min} is greater than max {max}"));
                }
                (Kind::Int { min: *min, max: *max }, secret)
            }
            ParamDecl::String {
                pattern,
                max_len,
                secret,
            } => {
                if *max_len == 0 || *max_len > MAX_STRING_LEN {
                    return Err(format!("{what}: max_len must be between 1 and {MAX_STRING_LEN}"));
                }
                let pattern =
                    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("{what}: pattern: {e}"))?;
                (
                    Kind::String {
                        pattern,
                        max_len: *max_len,
                    },
                    secret,
                )
            }
            ParamDecl::Path { root, secret } => {
                if !root.is_absolute() {
                    return Err(format!(
                        "{what}: root {} must be an absolute path",
                        root.display()
                    ));
                }
                (Kind::Path { root: root.clone() }, secret)
            }
        };
        if let Some(SecretDecl::Env(name)) = secret {
            let ok = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(format!("{what}: secret env {name:?} is not a variable name"));
            }
            if steers_what_runs(name) {
                return Err(format!(
                    "{what}: secret env {name}: the loader, a shell or an interpreter reads it to choose what runs; a client's value must not go there"
                ));
            }
        }
        Ok(Self {
            kind,
            secret: secret.clone(),
        })
    }

    /// Whether it is a `path` parameter (a grant narrows it by prefix).
    pub fn is_path(&self) -> bool {
        matches!(self.kind, Kind::Path { .. })
    }

    /// How the value reaches the program when it is a secret.
    pub fn secret(&self) -> Option<&SecretDecl> {
        self.secret.as_ref()
    }

    /// Parses a value a module passed; the error says why it is refused (without the value when
    /// it is a secret).
    pub fn parse(&self, raw: &str) -> Result<Value, String> {
        let shown = if self.secret.is_some() { "the value" } else { raw };
        let refuse = |why: &str| format!("{shown:?} {why}");
        let text = match &self.kind {
            Kind::Enum(values) => {
                if !values.iter().any(|v| v == raw) {
                    return Err(refuse(&format!("is not one of {}", values.join(", "))));
                }
                raw.to_owned()
            }
            Kind::Int { min, max } => {
                let ok_digits = !raw.is_empty()
                    && raw.len() <= 20
                    && raw.bytes().all(|b| b.is_ascii_digit())
                    && (raw == "0" || !raw.starts_with('0'));
                let Some(n) = ok_digits.then(|| raw.parse::<u64>().ok()).flatten() else {
                    return Err(refuse(
                        "is not a decimal integer (digits only, no sign, no leading 0)",
                    ));
                };
                if n < *min || n > *max {
                    return Err(refuse(&format!("is outside {min}..={max}")));
                }
                n.to_string()
            }
            Kind::String { pattern, max_len } => {
                plain(raw).map_err(|why| refuse(&why))?;
                if raw.len() > *max_len {
                    return Err(refuse(&format!("is longer than {max_len} bytes")));
                }
                if !pattern.is_match(raw) {
                    return Err(refuse("does not match the declared pattern"));
                }
                raw.to_owned()
            }
            Kind::Path { root } => {
                plain(raw).map_err(|why| refuse(&why))?;
                resolve_under(root, raw).map_err(|why| refuse(&why))?
            }
        };
        Ok(Value {
            text,
            secret: self.secret.is_some(),
        })
    }
}

/// Whether the dynamic loader, a shell or a common interpreter reads variable `name` to decide
/// what code runs or where it is found (a client's value there could run code as the program).
pub fn steers_what_runs(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "PATH",
        "IFS",
        "ENV",
        "BASH_ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "CDPATH",
        "GCONV_PATH",
        "LOCPATH",
        "NLSPATH",
        "HOSTALIASES",
        "RESOLV_HOST_CONF",
        "TMPDIR",
        "HOME",
        "SHELL",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_EXEC_PATH",
        "EDITOR",
        "VISUAL",
        "PAGER",
        "LESSOPEN",
        "NODE_OPTIONS",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "OPENSSL_CONF",
        "SSL_CERT_FILE",
    ];
    const PREFIXES: &[&str] = &[
        "LD_",
        "DYLD_",
        "GLIBC_",
        "MALLOC_",
        "BASH_FUNC_",
        "PYTHON",
        "PERL",
        "RUBY",
        "GEM_",
        "NODE_",
        "LUA_",
        "TCL",
        "PHP",
        "JAVA_",
        "CLASSPATH",
        "LC_",
        "LANG",
    ];
    NAMES.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// A value a client chose may not hold a control character, nor start with `-` (an option).
fn plain(raw: &str) -> Result<(), String> {
    if raw.is_empty() {
        return Err("is empty".to_owned());
    }
    if raw.chars().any(char::is_control) {
        return Err("holds a control character (NUL, newline, ...)".to_owned());
    }
    if raw.starts_with('-') {
        return Err("starts with `-` (it would read as an option)".to_owned());
    }
    Ok(())
}

/// `raw` (relative to `root`, or absolute) with every symlink resolved, as long as the result is
/// `root` or below it; `..` is refused outright, even where it would stay inside.
fn resolve_under(root: &Path, raw: &str) -> Result<String, String> {
    let path = Path::new(raw);
    if path.components().any(|c| c == Component::ParentDir) {
        return Err("holds `..`".to_owned());
    }
    // One answer for "missing" and "outside", and no lookup at all for an absolute path that is
    // not written below the root: a client must not learn which files exist elsewhere.
    let refused = || format!("is not an existing path below {}", root.display());
    if path.is_absolute() && !path.starts_with(root) {
        return Err(refused());
    }
    let joined = root.join(path);
    let real_root = std::fs::canonicalize(root).map_err(|_| refused())?;
    let resolved = std::fs::canonicalize(&joined).map_err(|_| refused())?;
    if !resolved.starts_with(&real_root) {
        return Err(refused());
    }
    resolved
        .into_os_string()
        .into_string()
        .map_err(|_| "resolves to a path that is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(toml_text: &str) -> Param {
        let decl: ParamDecl = toml::from_str(toml_text).expect("declaration");
        Param::new("p", &decl).expect("valid")
    }

    #[test]
    fn enums_take_only_their_values() {
        let p = param("type = \"enum\"\nvalues = [\"web\", \"worker\"]");
        assert_eq!(p.parse("web").expect("web").as_str(), "web");
        for bad in ["Web", "web ", "", "web;id", "-x"] {
            assert!(p.parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ints_are_plain_decimals_in_range() {
        let p = param("type = \"int\"\nmin = 1\nmax = 1000");
        assert_eq!(p.parse("20").expect("20").as_str(), "20");
        for bad in [
            "0",
            "1001",
            "-1",
            "+5",
            "05",
            "1e3",
            "0x10",
            " 5",
            "5\n",
            "",
            "99999999999999999999999",
        ] {
            assert!(p.parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn strings_match_their_pattern_whole_and_never_read_as_options() {
        let p = param("type = \"string\"\npattern = \"[a-z0-9.-]+\"\nmax_len = 16");
        assert_eq!(p.parse("v1.2-rc").expect("ok").as_str(), "v1.2-rc");
        for bad in [
            "-rf",
            "a b",
            "a;b",
            "$(id)",
            "a\nb",
            "a\0b",
            "abcdefghijklmnopq",
            "",
            "ABC",
        ] {
            assert!(p.parse(bad).is_err(), "{bad:?}");
        }
        // Anchored for the operator: a pattern that matches a part does not admit the whole.
        let p = param("type = \"string\"\npattern = \"[0-9]+\"\nmax_len = 8");
        assert!(p.parse("12x").is_err());
    }

    #[test]
    fn paths_stay_under_their_root_with_symlinks_resolved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("logs");
        std::fs::create_dir_all(root.join("app")).expect("mkdir");
        std::fs::write(root.join("app/web.log"), "x").expect("file");
        std::fs::write(dir.path().join("secret"), "x").expect("file");
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("escape")).expect("symlink");
        std::os::unix::fs::symlink(root.join("app/web.log"), root.join("inside")).expect("symlink");
        let p = Param::new(
            "p",
            &ParamDecl::Path {
                root: root.clone(),
                secret: None,
            },
        )
        .expect("valid");
        let canonical = std::fs::canonicalize(root.join("app/web.log")).expect("canonical");
        assert_eq!(
            p.parse("app/web.log").expect("relative").as_str(),
            canonical.to_str().expect("utf-8")
        );
        assert_eq!(
            p.parse(canonical.to_str().expect("utf-8"))
                .expect("absolute")
                .as_str(),
            canonical.to_str().expect("utf-8")
        );
        assert_eq!(
            p.parse("inside").expect("symlink inside").as_str(),
            canonical.to_str().expect("utf-8")
        );
        for bad in [
            "escape",
            "../secret",
            "app/../../secret",
            "/etc/passwd",
            "missing.log",
            "-x",
            "app/web.log\n",
        ] {
            assert!(p.parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_masked_and_their_values_stay_out_of_errors() {
        let p = param("type = \"string\"\npattern = \"[A-Za-z0-9]+\"\nmax_len = 64\nsecret = \"stdin\"");
        let v = p.parse("s3cr3t").expect("ok");
        assert_eq!(v.shown(), "***");
        assert_eq!(format!("{v:?}"), "\"***\"");
        let why = p.parse("s3cr3t!").expect_err("refused");
        assert!(!why.contains("s3cr3t"), "{why}");
        let p = param("type = \"string\"\npattern = \".+\"\nmax_len = 64\nsecret = { env = \"API_TOKEN\" }");
        assert_eq!(p.secret(), Some(&SecretDecl::Env("API_TOKEN".to_owned())));
    }

    #[test]
    fn bad_declarations_are_refused() {
        for (text, why) in [
            ("type = \"enum\"\nvalues = []", "at least one value"),
            ("type = \"int\"\nmin = 5\nmax = 1", "greater than max"),
            ("type = \"string\"\npattern = \"(\"\nmax_len = 4", "pattern"),
            ("type = \"string\"\npattern = \"a\"\nmax_len = 0", "max_len"),
            ("type = \"path\"\nroot = \"logs\"", "absolute"),
            (
                "type = \"string\"\npattern = \"a\"\nmax_len = 4\nsecret = { env = \"1X\" }",
                "variable name",
            ),
        ] {
            let decl: ParamDecl = toml::from_str(text).expect("parses");
            let err = Param::new("p", &decl).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
        assert!(
            toml::from_str::<ParamDecl>("type = \"int\"\nmin = -5\nmax = 5").is_err(),
            "negative"
        );
        assert!(
            toml::from_str::<ParamDecl>("type = \"shell\"").is_err(),
            "unknown type"
        );
    }
}
