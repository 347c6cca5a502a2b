//! A policy directory read into memory: its Rego and JSON files, in a stable order, with the
//! revision digest over them, and the regorus engine built from them, once the files have passed
//! the load-time checks ([`bounds`](super::bounds) on the text, [`graph`](super::graph) on the
//! rules) and with sesame's [`builtins`](super::builtins) bounds in place.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::walk::{self, ModuleSummary};
use super::{PolicyError, RegoMessage, bounds, builtins, graph};

/// The package whose `decision` rule sesamed evaluates, as regorus names packages.
pub(super) const DECISION_PACKAGE: &str = "data.sesame";

/// A top-level subdirectory that is not part of the policy set: it holds example policy sets, each
/// a directory of its own (`sesamed policy test policies/examples/office-hours`).
pub(super) const EXAMPLES_DIR: &str = "examples";

/// The files of one policy directory.
pub(super) struct Bundle {
    pub(super) dir: PathBuf,
    /// Sorted by relative name.
    pub(super) files: Vec<BundleFile>,
    /// `"sha256:<hex>"` over the names and contents of `files`.
    pub(super) revision: String,
}

/// One file of a bundle.
pub(super) struct BundleFile {
    /// The path as found (directory joined with `name`).
    pub(super) path: PathBuf,
    /// The path relative to the directory: what regorus calls the file in its messages, so that
    /// messages (which may reach clients as deny reasons) do not reveal where policies live.
    pub(super) name: String,
    pub(super) kind: FileKind,
    pub(super) contents: String,
}

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileKind {
    /// `*.rego`, not a test.
    Policy,
    /// `*_test.rego`.
    Test,
    /// `*.json`, merged into `data`.
    Data,
}

/// A regorus engine with a bundle's files added, and the modules the Rego files became.
pub(super) struct LoadedEngine {
    pub(super) engine: regorus::Engine,
    pub(super) modules: Vec<LoadedModule>,
    /// The deepest evaluation the rules may nest ([`graph::check`]).
    pub(super) eval_depth: u32,
}

/// One Rego file in a [`LoadedEngine`].
pub(super) struct LoadedModule {
    /// Index into [`Bundle::files`].
    pub(super) file: usize,
    /// The package, as regorus names it (`"data.sesame"`).
    pub(super) package: String,
    /// The source label regorus knows the file by.
    label: String,
    /// What the load-time checks read of it.
    pub(super) summary: ModuleSummary,
}

impl Bundle {
    /// Reads every `.rego` and `.json` file under `dir` (hidden entries and a top-level
    /// [`EXAMPLES_DIR`] skipped);
    /// `*_test.rego` only when `with_tests`.
    pub(super) fn read(dir: &Path, with_tests: bool) -> Result<Bundle, PolicyError> {
        let mut found = Vec::new();
        collect(dir, Path::new(""), &mut found)?;
        found.sort();
        let mut files = Vec::new();
        let mut digest = Sha256::new();
        for relative in found {
            let name = relative.to_string_lossy().into_owned();
            let kind = if name.ends_with("_test.rego") {
                FileKind::Test
            } else if name.ends_with(".rego") {
                FileKind::Policy
            } else {
                FileKind::Data
            };
            if kind == FileKind::Test && !with_tests {
                continue;
            }
            let path = dir.join(&relative);
            let contents = fs::read_to_string(&path).map_err(|source| PolicyError::Io {
                path: path.clone(),
                source,
            })?;
            for part in [name.as_bytes(), contents.as_bytes()] {
                digest.update((part.len() as u64).to_be_bytes());
                digest.update(part);
            }
            files.push(BundleFile {
                path,
                name,
                kind,
                contents,
            });
        }
        if !files
            .iter()
            .any(|f| f.kind == FileKind::Policy || f.kind == FileKind::Test)
        {
            return Err(PolicyError::NoPolicyFiles { dir: dir.to_owned() });
        }
        let revision = format!("sha256:{}", hex::encode(digest.finalize()));
        Ok(Bundle {
            dir: dir.to_owned(),
            files,
            revision,
        })
    }

    /// Builds an engine holding every file, checks the rules, and prepares it (so clones
    /// evaluate at once). Run it on a policy thread ([`stack`](super::stack)): parsing and
    /// preparing recurse as deeply as the files nest.
    pub(super) fn engine(&self) -> Result<LoadedEngine, PolicyError> {
        let mut engine = regorus::Engine::new();
        let mut modules = Vec::new();
        for (index, file) in self.files.iter().enumerate() {
            let label = file.name.clone();
            match file.kind {
                FileKind::Policy | FileKind::Test => {
                    bounds::check(&file.contents).map_err(|e| PolicyError::TooComplex {
                        path: file.path.clone(),
                        line: e.line,
                        message: e.message,
                    })?;
                    let package = engine
                        .add_policy(label.clone(), file.contents.clone())
                        .map_err(|e| parse_error(&file.path, &e))?;
                    modules.push(LoadedModule {
                        file: index,
                        package,
                        label,
                        summary: ModuleSummary::default(),
                    });
                }
                FileKind::Data => {
                    let data =
                        regorus::Value::from_json_str(&file.contents).map_err(|e| PolicyError::Data {
                            path: file.path.clone(),
                            message: one_line(&e),
                        })?;
                    engine.add_data(data).map_err(|e| PolicyError::Data {
                        path: file.path.clone(),
                        message: one_line(&e),
                    })?;
                }
            }
        }
        // regorus keeps the modules in the order they were added: the Rego files, in order.
        for (module, parsed) in modules.iter_mut().zip(engine.get_modules().iter()) {
            module.summary = walk::summarise(parsed);
        }
        let named: Vec<(String, ModuleSummary)> = modules
            .iter()
            .map(|m| (self.files[m.file].name.clone(), m.summary.clone()))
            .collect();
        let eval_depth = graph::check(&named).map_err(|refusal| {
            let (module, line) = refusal.at;
            let path = modules
                .get(module)
                .map_or_else(|| self.dir.clone(), |m| self.files[m.file].path.clone());
            match refusal.kind {
                graph::RefusalKind::Recursion => PolicyError::Recursion {
                    path,
                    line,
                    message: refusal.message,
                },
                graph::RefusalKind::TooDeep => PolicyError::TooDeep {
                    path,
                    line,
                    message: refusal.message,
                },
            }
        })?;
        builtins::install(&mut engine).map_err(|e| PolicyError::Compile {
            dir: self.dir.clone(),
            message: one_line(&e),
            summary: one_line(&e),
            location: None,
        })?;
        // Any evaluation prepares the engine: analysis, scheduling, rule gathering. Doing it here
        // turns compile-time problems into load errors and spares every clone the work.
        engine.eval_query("true".to_owned(), false).map_err(|e| {
            let message = RegoMessage::from(&e);
            PolicyError::Compile {
                dir: self.dir.clone(),
                location: message
                    .location
                    .map(|(file, line, col)| (self.dir.join(file), line, col)),
                summary: message.summary,
                message: message.full,
            }
        })?;
        Ok(LoadedEngine {
            engine,
            modules,
            eval_depth,
        })
    }
}

impl LoadedEngine {
    /// Whether some file of package `package` declares a rule named `rule`.
    pub(super) fn declares(&self, package: &str, rule: &str) -> bool {
        self.modules.iter().any(|m| {
            m.package == package
                && self
                    .engine
                    .has_declared_rule_rooted_at(&m.label, rule)
                    .unwrap_or(false)
        })
    }
}

/// Appends the relative paths of the `.rego` and `.json` files under `dir.join(relative)`.
fn collect(dir: &Path, relative: &Path, found: &mut Vec<PathBuf>) -> Result<(), PolicyError> {
    let here = dir.join(relative);
    let entries = fs::read_dir(&here).map_err(|source| PolicyError::Io {
        path: here.clone(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| PolicyError::Io {
            path: here.clone(),
            source,
        })?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if relative.as_os_str().is_empty() && name == EXAMPLES_DIR {
            continue; // policy sets of their own, tested on their own
        }
        let path = entry.path();
        // Follows symlinks, as a policy directory managed by configuration tools may use them.
        let meta = fs::metadata(&path).map_err(|source| PolicyError::Io {
            path: path.clone(),
            source,
        })?;
        let child = relative.join(&name);
        if meta.is_dir() {
            collect(dir, &child, found)?;
        } else if meta.is_file() && matches!(path.extension().and_then(|e| e.to_str()), Some("rego" | "json"))
        {
            found.push(child);
        }
    }
    Ok(())
}

pub(super) fn parse_error(path: &Path, error: &anyhow::Error) -> PolicyError {
    let message = RegoMessage::from(error);
    let (line, col) = message
        .location
        .as_ref()
        .map_or((None, None), |(_, l, c)| (Some(*l), Some(*c)));
    PolicyError::Parse {
        path: path.to_owned(),
        line,
        col,
        message: message.summary,
        detail: format!("{error:#}"),
    }
}

fn one_line(error: &anyhow::Error) -> String {
    RegoMessage::from(error).full
}
