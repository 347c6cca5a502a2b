//! How the daemon sets the exec capability up: its part of a grant, its section of
//! `sesamed.toml`, and its programs live, as a dry run and in `sesamed configtest`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Exec, ExecError, Program, ProgramDecl};
use crate::capability::{Capability, Check, DryRun, Start};

/// `grant.exec`: the declared programs a request may run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecGrant {
    /// Programs by name, each with the values its parameters may take: a parameter named here
    /// may take only the values listed (for a `path` parameter, paths at or below one listed);
    /// one left out may take any value its declaration allows. `{}` allows the program with
    /// every value its declaration allows.
    pub programs: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

/// `[exec]`: the programs modules may run, each `[exec.programs.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecConfig {
    /// The declared programs by name.
    pub programs: BTreeMap<String, ProgramDecl>,
}

impl Capability for Exec {
    type Grant = ExecGrant;
    type Config = ExecConfig;
    type Error = ExecError;

    /// Every declaration checked (paths absolute, placeholders declared, secrets out of the
    /// arguments, limits in range); accounts and files are checked when the daemon starts.
    fn configure(config: ExecConfig, _resolve: &dyn Fn(PathBuf) -> PathBuf) -> Result<ExecConfig, String> {
        for (name, decl) in &config.programs {
            Program::new(name, decl)?;
        }
        Ok(config)
    }

    fn start(cx: &Start<'_>) -> Result<Self, ExecError> {
        Exec::new(&cx.config.capabilities.exec, Path::new("/etc"), None)
    }

    fn dry_run(cx: &DryRun<'_>) -> Result<Self, ExecError> {
        Exec::new(&cx.config.capabilities.exec, Path::new("/etc"), Some(cx.recorder))
    }

    /// The stock module's `KEY=VALUE` arguments whose KEY is a secret parameter of the program
    /// named like the command.
    fn secret_args(&self, command: &str, args: &[String]) -> Vec<usize> {
        let Some(ready) = self.program(command) else {
            return Vec::new();
        };
        args.iter()
            .enumerate()
            .filter(|(_, a)| {
                a.split_once('=')
                    .is_some_and(|(key, _)| ready.program.is_secret(key))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Every program's file, account and group; a warning for each that runs as uid 0 or
    /// group 0, whatever the account is called.
    fn check(cx: &Start<'_>) -> Result<Check, ExecError> {
        let config = &cx.config.capabilities.exec;
        let exec = Exec::new(config, Path::new("/etc"), None)?;
        let warnings = exec
            .programs
            .iter()
            .filter(|(_, ready)| ready.uid == 0 || ready.gid == 0)
            .map(|(name, ready)| {
                format!(
                    "exec.programs.{name} runs as uid {} gid {}: root's powers",
                    ready.uid, ready.gid
                )
            })
            .collect();
        Ok(Check {
            summary: format!("{} programs", exec.len()),
            warnings,
        })
    }
}
