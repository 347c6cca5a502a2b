//! A declared program: `[exec.programs.NAME]` as written, checked into a [`Program`], and the
//! command line one request's parameters make of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::params::{Param, ParamDecl, SecretDecl, Value};

/// The longest a program may be allowed to run, seconds.
pub const MAX_TIMEOUT_S: u64 = 3600;
/// The most output a program may be allowed to keep, bytes per stream.
pub const MAX_OUTPUT: usize = 1 << 20;

/// `[exec.programs.NAME]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramDecl {
    /// The program, an absolute path.
    pub path: PathBuf,
    /// Its arguments; `{param}` in one is replaced by that parameter's value (`{{` and `}}`
    /// stand for braces). Each stays one argument whatever the value.
    #[serde(default)]
    pub args: Vec<String>,
    /// The account it runs as. `root` only when written so.
    pub user: String,
    /// The group it runs as (default: the account's primary group). Supplementary groups are
    /// always cleared.
    #[serde(default)]
    pub group: Option<String>,
    /// Its whole environment (nothing else is passed, not even `PATH`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Its working directory (default `/`).
    #[serde(default = "root_dir")]
    pub cwd: PathBuf,
    /// The longest it may run, seconds (default 30); the request's own time limit can cut it
    /// shorter. Past it, the program is killed with everything it started in its process group.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
    /// Output kept per stream, bytes (default 64 KiB); the rest is read and dropped.
    #[serde(default = "default_max_output")]
    pub max_output: usize,
    /// Its parameters by name.
    #[serde(default)]
    pub params: BTreeMap<String, ParamDecl>,
}

fn root_dir() -> PathBuf {
    PathBuf::from("/")
}

fn default_timeout_s() -> u64 {
    30
}

fn default_max_output() -> usize {
    64 * 1024
}

/// One piece of an argument template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Param(String),
}

/// A checked declaration.
#[derive(Debug, Clone)]
pub struct Program {
    /// Its name, as modules and grants name it.
    pub name: String,
    /// The declaration it was made from.
    pub decl: ProgramDecl,
    args: Vec<Vec<Piece>>,
    params: BTreeMap<String, Param>,
}

/// The command line one request makes of a program. Its `Debug` shows no environment value
/// and no input: secrets travel there.
#[derive(Clone)]
pub struct Invocation {
    /// The arguments, parameters substituted.
    pub args: Vec<String>,
    /// The environment: the declared one, plus secrets declared `env`.
    pub env: Vec<(String, String)>,
    /// Standard input: the secrets declared `stdin`, one per line, in parameter name order.
    pub stdin: Option<String>,
    /// The parameters as given, parsed (for the grant check and the audit record).
    pub params: BTreeMap<String, Value>,
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("args", &self.args)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field(
                "stdin",
                &self.stdin.as_ref().map(|s| format!("{} bytes", s.len())),
            )
            .field("params", &self.params)
            .finish()
    }
}

impl Invocation {
    /// The command line as logs and audit records show it: secrets never appear in the
    /// arguments, and are listed as `NAME=***`.
    pub fn shown(&self, path: &Path) -> String {
        let mut line = path.display().to_string();
        for a in &self.args {
            line.push(' ');
            line.push_str(&shell_quoted(a));
        }
        let secrets: Vec<&str> = self
            .params
            .iter()
            .filter(|(_, v)| v.is_secret())
            .map(|(k, _)| k.as_str())
            .collect();
        if !secrets.is_empty() {
            line.push_str(&format!(" (secrets: {})", secrets.join(", ")));
        }
        line
    }
}

/// `s` as a shell would need it to be one word (for showing a command line, never for running
/// one).
fn shell_quoted(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if safe {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl Program {
    /// Checks the declaration of program `name`: the path is absolute, every placeholder names
    /// a declared parameter, no secret appears in the arguments, limits are in range.
    pub fn new(name: &str, decl: &ProgramDecl) -> Result<Self, String> {
        let what = format!("exec.programs.{name}");
        super::check_program_name(name).map_err(|e| format!("{what}: {e}"))?;
        if !decl.path.is_absolute() {
            return Err(format!(
                "{what}.path: {} must be an absolute path",
                decl.path.display()
            ));
        }
        if !decl.cwd.is_absolute() {
            return Err(format!(
                "{what}.cwd: {} must be an absolute path",
                decl.cwd.display()
            ));
        }
        if decl.timeout_s == 0 || decl.timeout_s > MAX_TIMEOUT_S {
            return Err(format!("{what}.timeout_s: must be between 1 and {MAX_TIMEOUT_S}"));
        }
        if decl.max_output == 0 || decl.max_output > MAX_OUTPUT {
            return Err(format!("{what}.max_output: must be between 1 and {MAX_OUTPUT}"));
        }
        if decl.user.is_empty() {
            return Err(format!("{what}.user: must name an account"));
        }
        for (key, value) in &decl.env {
            let ok = !key.is_empty() && !key.contains('=') && !key.contains('\0') && !value.contains('\0');
            if !ok {
                return Err(format!("{what}.env: {key:?} is not a variable"));
            }
        }
        let mut params = BTreeMap::new();
        for (pname, pdecl) in &decl.params {
            super::check_program_name(pname).map_err(|e| format!("{what}.params: {e}"))?;
            let param = Param::new(&format!("{what}.params.{pname}"), pdecl)?;
            if let Some(SecretDecl::Env(var)) = param.secret()
                && decl.env.contains_key(var)
            {
                return Err(format!(
                    "{what}.params.{pname}: secret env {var} is also set in env"
                ));
            }
            params.insert(pname.clone(), param);
        }
        let mut args = Vec::new();
        for (i, arg) in decl.args.iter().enumerate() {
            let pieces = template(arg).map_err(|e| format!("{what}.args[{i}]: {e}"))?;
            for piece in &pieces {
                if let Piece::Param(p) = piece {
                    match params.get(p) {
                        None => return Err(format!("{what}.args[{i}]: {{{p}}} is not a declared parameter")),
                        Some(param) if param.secret().is_some() => {
                            return Err(format!(
                                "{what}.args[{i}]: {{{p}}} is a secret: secrets go on standard input or in the environment, never in arguments"
                            ));
                        }
                        Some(_) => {}
                    }
                }
            }
            args.push(pieces);
        }
        Ok(Self {
            name: name.to_owned(),
            decl: decl.clone(),
            args,
            params,
        })
    }

    /// Whether `name` is one of its secret parameters.
    pub fn is_secret(&self, name: &str) -> bool {
        self.params.get(name).is_some_and(|p| p.secret().is_some())
    }

    /// The names of its parameters.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.params.keys().map(String::as_str)
    }

    /// The command line for `given` (`name=value` pairs from the module): every declared
    /// parameter must be given once, each value parsed by its type; an unknown or repeated name
    /// is refused.
    pub fn invocation(&self, given: &[(String, String)]) -> Result<Invocation, String> {
        let mut values = BTreeMap::new();
        for (name, raw) in given {
            let Some(param) = self.params.get(name) else {
                return Err(format!("program {} has no parameter {name:?}", self.name));
            };
            let value = param.parse(raw).map_err(|why| format!("{name}: {why}"))?;
            if values.insert(name.clone(), value).is_some() {
                return Err(format!("{name}: given twice"));
            }
        }
        if let Some(missing) = self.params.keys().find(|p| !values.contains_key(*p)) {
            return Err(format!(
                "{missing}: missing (program {} takes {})",
                self.name,
                self.params.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        let args = self
            .args
            .iter()
            .map(|pieces| {
                pieces
                    .iter()
                    .map(|piece| match piece {
                        Piece::Text(t) => t.as_str(),
                        Piece::Param(p) => values[p].as_str(),
                    })
                    .collect::<String>()
            })
            .collect();
        let mut env: Vec<(String, String)> = self.decl.env.clone().into_iter().collect();
        let mut stdin = None::<String>;
        for (name, param) in &self.params {
            match param.secret() {
                Some(SecretDecl::Env(var)) => env.push((var.clone(), values[name].as_str().to_owned())),
                Some(SecretDecl::Stdin) => {
                    let input = stdin.get_or_insert_with(String::new);
                    input.push_str(values[name].as_str());
                    input.push('\n');
                }
                None => {}
            }
        }
        Ok(Invocation {
            args,
            env,
            stdin,
            params: values,
        })
    }
}

impl Program {
    /// Checks `invocation` against the grant's narrowing of this program (`allowed`: parameter
    /// name to the values it may take; for a `path` parameter, paths it may be at or below).
    /// A parameter the grant names but the program does not declare denies: a policy written
    /// for another declaration must not pass by accident.
    pub fn check_grant(
        &self,
        allowed: &BTreeMap<String, Vec<String>>,
        invocation: &Invocation,
    ) -> Result<(), String> {
        for (name, values) in allowed {
            let (Some(param), Some(value)) = (self.params.get(name), invocation.params.get(name)) else {
                return Err(format!(
                    "the grant narrows {name}, which program {} does not declare",
                    self.name
                ));
            };
            let admitted = if param.is_path() {
                values.iter().any(|v| Path::new(value.as_str()).starts_with(v))
            } else {
                values.iter().any(|v| v == value.as_str())
            };
            if !admitted {
                return Err(format!("{name}={} is not in the grant", value.shown()));
            }
        }
        Ok(())
    }
}

/// Splits an argument template into text and `{param}` placeholders.
fn template(arg: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = arg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(format!("{arg:?}: `{{` without `}}`")),
                    }
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Param(name));
            }
            '}' => return Err(format!("{arg:?}: `}}` without `{{` (write `}}}}` for a brace)")),
            '\0' => return Err(format!("{arg:?}: holds a NUL")),
            c => text.push(c),
        }
    }
    if !text.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(text: &str) -> Result<Program, String> {
        let decl: ProgramDecl = toml::from_str(text).map_err(|e| e.to_string())?;
        Program::new("p", &decl)
    }

    fn given(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const TAIL: &str = r#"
        path = "/usr/bin/tail"
        args = ["-n", "{lines}", "--", "{unit}.log", "x{{y}}"]
        user = "nobody"
        [params.lines]
        type = "int"
        min = 1
        max = 500
        [params.unit]
        type = "enum"
        values = ["web", "worker"]
    "#;

    #[test]
    fn every_parameter_becomes_part_of_exactly_one_argument() {
        let p = program(TAIL).expect("valid");
        let inv = p
            .invocation(&given(&[("lines", "20"), ("unit", "web")]))
            .expect("ok");
        assert_eq!(inv.args, ["-n", "20", "--", "web.log", "x{y}"]);
        assert!(inv.env.is_empty(), "no environment unless declared");
        assert_eq!(inv.stdin, None);
        assert_eq!(
            inv.shown(Path::new("/usr/bin/tail")),
            "/usr/bin/tail -n 20 -- web.log 'x{y}'"
        );
    }

    #[test]
    fn unknown_missing_repeated_and_ill_typed_parameters_are_refused() {
        let p = program(TAIL).expect("valid");
        for pairs in [
            vec![("lines", "20")],
            vec![("lines", "20"), ("unit", "web"), ("extra", "1")],
            vec![("lines", "20"), ("lines", "21"), ("unit", "web")],
            vec![("lines", "20; id"), ("unit", "web")],
            vec![("lines", "20"), ("unit", "web worker")],
        ] {
            assert!(p.invocation(&given(&pairs)).is_err(), "{pairs:?}");
        }
    }

    #[test]
    fn secrets_go_to_stdin_or_the_environment_and_are_never_shown() {
        let p = program(
            r#"
            path = "/usr/local/bin/set-token"
            args = ["--service", "{service}"]
            user = "deploy"
            env = { LANG = "C.UTF-8" }
            [params.service]
            type = "enum"
            values = ["api"]
            [params.token]
            type = "string"
            pattern = "[A-Za-z0-9]+"
            max_len = 64
            secret = "stdin"
            [params.key]
            type = "string"
            pattern = "[a-z]+"
            max_len = 8
            secret = { env = "API_KEY" }
        "#,
        )
        .expect("valid");
        let inv = p
            .invocation(&given(&[("service", "api"), ("token", "T0ken"), ("key", "abc")]))
            .expect("ok");
        assert_eq!(inv.args, ["--service", "api"]);
        assert_eq!(inv.stdin.as_deref(), Some("T0ken\n"));
        assert!(inv.env.contains(&("API_KEY".to_owned(), "abc".to_owned())));
        assert!(inv.env.contains(&("LANG".to_owned(), "C.UTF-8".to_owned())));
        let debug = format!("{inv:?}");
        assert!(!debug.contains("T0ken") && !debug.contains("abc"), "{debug}");
        let shown = inv.shown(Path::new("/usr/local/bin/set-token"));
        assert!(!shown.contains("T0ken") && !shown.contains("abc"), "{shown}");
        assert!(shown.ends_with("(secrets: key, token)"), "{shown}");
    }

    #[test]
    fn declarations_that_could_leak_or_mislead_are_refused() {
        let base = "path = \"/bin/echo\"\nuser = \"nobody\"\n";
        for (extra, why) in [
            ("args = [\"{nope}\"]", "not a declared parameter"),
            (
                "args = [\"{t}\"]\n[params.t]\ntype = \"string\"\npattern = \"a\"\nmax_len = 1\nsecret = \"stdin\"",
                "secret",
            ),
            ("args = [\"a}\"]", "without"),
            ("args = [\"{a\"]", "without"),
            ("timeout_s = 0", "timeout_s"),
            ("max_output = 0", "max_output"),
            ("cwd = \"tmp\"", "cwd"),
        ] {
            let err = program(&format!("{base}{extra}")).expect_err(extra);
            assert!(err.contains(why), "{extra}: {err}");
        }
        assert!(
            program("path = \"echo\"\nuser = \"nobody\"")
                .expect_err("relative")
                .contains("absolute")
        );
        assert!(
            program("path = \"/bin/echo\"").is_err(),
            "user is required: root only when said"
        );
        assert!(
            program("path = \"/bin/echo\"\nuser = \"nobody\"\nshell = true").is_err(),
            "unknown keys"
        );
    }
}
