//! Programs the operator declared: `[exec.programs.NAME]` in `sesamed.toml` names an absolute
//! path, an argument template whose `{placeholders}` are typed parameters, the account to run
//! as, the whole environment, a working directory and limits.
//!
//! A module asks for a program by name with `name=value` parameters (`calls.rs`). Before anything
//! runs: the grant must name the program (`grant.exec.programs.NAME`, which may narrow each
//! parameter further), every parameter is parsed by its declared type ([`params`]) and becomes
//! part of exactly one argument ([`program`]), secrets go on standard input or into one
//! environment variable and are masked everywhere, and the program starts through
//! [`crate::system`] - no shell - as the declared account with supplementary groups cleared, in
//! a process group of its own that is killed at its time limit or the request's.
//!
//! Programs are checked when the daemon starts and by `sesamed configtest`: each must exist, be a
//! regular file owned by root and writable by no one else, in directories that are the same; its
//! account and group must exist.

mod calls;
pub mod params;
pub mod program;
mod setup;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use program::{Invocation, Program, ProgramDecl};
pub use setup::{ExecConfig, ExecGrant};

use crate::system::{Launch, Launched, OutputTap, Recorder, Tool, ToolError};

/// The longest program or parameter name.
pub const MAX_NAME: usize = 64;

/// Why a program could not be prepared or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// A declaration is wrong (the daemon does not start; configtest says so).
    #[error("{0}")]
    Config(String),
    /// The program file, or a directory above it, could be changed by someone other than root.
    #[error("{path}: {why}")]
    Unsafe {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The run failed: it could not start, or was killed at its time limit.
    #[error(transparent)]
    Tool(#[from] ToolError),
}

/// A program and how it is started.
#[derive(Debug)]
pub struct Ready {
    /// The checked declaration.
    pub program: Program,
    tool: Tool,
    uid: u32,
    gid: u32,
}

/// The exec service: the declared programs, ready to run (or to be recorded, in a dry run).
#[derive(Debug)]
pub struct Exec {
    programs: BTreeMap<String, Ready>,
}

impl Exec {
    /// The programs `config` declares, checked as the daemon runs them; `recorder` makes it a
    /// dry run (accounts need not exist, files are not checked, nothing runs).
    pub fn new(config: &ExecConfig, etc: &Path, recorder: Option<&Recorder>) -> Result<Self, ExecError> {
        let accounts = Accounts::read(etc).map_err(ExecError::Config)?;
        let mut programs = BTreeMap::new();
        for (name, decl) in &config.programs {
            let program = Program::new(name, decl).map_err(ExecError::Config)?;
            let what = format!("exec.programs.{name}");
            let (tool, uid, gid) = match recorder {
                Some(recorder) => {
                    // As the live service would show it: the file the path leads to.
                    let real = std::fs::canonicalize(&decl.path).unwrap_or_else(|_| decl.path.clone());
                    (Tool::new(&real)?.recording(recorder.clone()), 0, 0)
                }
                None => {
                    // The file a symlink leads to, and every directory on the way to it, is what
                    // is checked and what runs: a link cannot be turned elsewhere later.
                    let real = std::fs::canonicalize(&decl.path).map_err(|e| ExecError::Unsafe {
                        path: decl.path.clone(),
                        why: format!("cannot be resolved: {e}"),
                    })?;
                    check_owned_by_root(&real)?;
                    let tool = Tool::new(&real)?;
                    let (uid, primary) = accounts.user(&decl.user).ok_or_else(|| {
                        ExecError::Config(format!("{what}.user: no account {:?}", decl.user))
                    })?;
                    let gid = match &decl.group {
                        Some(g) => accounts
                            .group(g)
                            .ok_or_else(|| ExecError::Config(format!("{what}.group: no group {g:?}")))?,
                        None => primary,
                    };
                    (tool, uid, gid)
                }
            };
            let tool = tool.with_deadline(Duration::from_secs(decl.timeout_s));
            programs.insert(
                name.clone(),
                Ready {
                    program,
                    tool,
                    uid,
                    gid,
                },
            );
        }
        Ok(Self { programs })
    }

    /// The declared program `name`.
    pub fn program(&self, name: &str) -> Option<&Ready> {
        self.programs.get(name)
    }

    /// How many programs are declared.
    pub fn len(&self) -> usize {
        self.programs.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.programs.is_empty()
    }
}

impl Ready {
    /// Runs the program for `invocation`, as its account; what it writes is also handed to
    /// `tap` as it comes.
    pub fn run(&self, invocation: &Invocation, tap: Option<OutputTap>) -> Result<Launched, ToolError> {
        let decl = &self.program.decl;
        self.tool.launch(
            &invocation.args,
            &Launch {
                uid: Some(self.uid),
                gid: Some(self.gid),
                env: invocation.env.clone(),
                cwd: Some(decl.cwd.clone()),
                stdin: invocation.stdin.clone().map(String::into_bytes),
                max_output: decl.max_output,
                tap,
            },
        )
    }

    /// The program's path.
    pub fn path(&self) -> &Path {
        self.tool.path()
    }
}

/// A program or parameter name: 1 to [`MAX_NAME`] of `a-z 0-9 _ -`, starting with a letter.
pub(crate) fn check_program_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a name (1-{MAX_NAME} of a-z 0-9 _ -, starting with a letter)"
        ))
    }
}

/// `path` is a regular file owned by root and writable by no one else, and so is every
/// directory above it: otherwise whoever could write there could choose what runs.
pub fn check_owned_by_root(path: &Path) -> Result<(), ExecError> {
    let unsafe_path = |p: &Path, why: String| ExecError::Unsafe {
        path: p.to_owned(),
        why,
    };
    let meta = std::fs::metadata(path).map_err(|e| unsafe_path(path, format!("cannot be read: {e}")))?;
    if !meta.is_file() {
        return Err(unsafe_path(path, "is not a regular file".to_owned()));
    }
    let mut current = Some(path);
    while let Some(p) = current {
        let meta = std::fs::metadata(p).map_err(|e| unsafe_path(p, format!("cannot be read: {e}")))?;
        if meta.uid() != 0 {
            return Err(unsafe_path(
                p,
                format!("is owned by uid {}, not root", meta.uid()),
            ));
        }
        // A directory writable by others is safe only with the sticky bit (like /tmp), and then
        // only for files it does not own: a program is never trusted there.
        if meta.mode() & 0o022 != 0 {
            return Err(unsafe_path(
                p,
                format!("is writable by group or others (mode {:o})", meta.mode() & 0o7777),
            ));
        }
        current = p.parent();
    }
    Ok(())
}

/// Accounts and groups by name, from `passwd` and `group`.
#[derive(Debug, Default)]
struct Accounts {
    users: BTreeMap<String, (u32, u32)>,
    groups: BTreeMap<String, u32>,
}

impl Accounts {
    fn read(etc: &Path) -> Result<Self, String> {
        let read = |name: &str| {
            std::fs::read_to_string(etc.join(name)).map_err(|e| format!("{}: {e}", etc.join(name).display()))
        };
        let mut accounts = Accounts::default();
        for line in read("passwd")?.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if let [name, _, uid, gid, ..] = f[..]
                && let (Ok(uid), Ok(gid)) = (uid.parse(), gid.parse())
            {
                accounts.users.entry(name.to_owned()).or_insert((uid, gid));
            }
        }
        for line in read("group")?.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if let [name, _, gid, ..] = f[..]
                && let Ok(gid) = gid.parse()
            {
                accounts.groups.entry(name.to_owned()).or_insert(gid);
            }
        }
        Ok(accounts)
    }

    fn user(&self, name: &str) -> Option<(u32, u32)> {
        self.users.get(name).copied()
    }

    fn group(&self, name: &str) -> Option<u32> {
        self.groups.get(name).copied()
    }
}
