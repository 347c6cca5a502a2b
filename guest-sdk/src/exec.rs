//! Programs the operator declared in `sesamed.toml` (`[exec.programs.NAME]`), run on the host
//! (WIT interface `exec`).
//!
//! Needs the exec capability in the module's cluster, and a grant naming the program (which may
//! narrow the values of its parameters).

use crate::__private::bindings::sesame::host::exec as wit;
use crate::HostError;

// The imports, or on non-wasm targets (tests) the fake host that stands in for them.
#[cfg(not(target_family = "wasm"))]
use crate::testing::fake::exec as imports;
#[cfg(target_family = "wasm")]
use wit as imports;

/// How a run ended: the exit code (`None` when a signal ended the program), standard output and
/// standard error up to the program's `max_output` (lossy UTF-8), the wall time in milliseconds,
/// and whether output past `max_output` was dropped.
pub use wit::RunOutput;

/// Runs the declared program `name` with `params`, name and value pairs: every parameter the
/// program declares, exactly once. The host parses each value by its declared type; it reaches
/// the program as part of one argument (or on its standard input, or in one environment
/// variable, for a secret), never through a shell.
///
/// The host refuses with [`HostError::Denied`] a program the grant does not name, or a value
/// outside the grant's narrowing of its parameter (`grant.exec.programs`); with
/// [`HostError::Invalid`] a program or parameter the host does not declare, a parameter missing
/// or given twice, or a value its type refuses; and with [`HostError::Failed`] a program that
/// could not start, or was killed at its time limit. A program that ran and exited non-zero is
/// `Ok`, with its exit code.
pub fn run(name: &str, params: &[(String, String)]) -> Result<RunOutput, HostError> {
    imports::run(name, params).map_err(HostError::from)
}
