//! Masterless Salt, `salt-call --local` on the host (WIT interface `salt`).
//!
//! Needs the salt capability in the module's cluster, and a grant covering the state.

use crate::__private::bindings::sesame::host::salt as wit;
use crate::HostError;

// The imports, or on non-wasm targets (tests) the fake host that stands in for them.
#[cfg(not(target_family = "wasm"))]
use crate::testing::fake::salt as imports;
#[cfg(target_family = "wasm")]
use wit as imports;

/// The outcome of one state in an apply (`result` is `None` in test mode when the state
/// would change something).
pub use wit::StateOutcome;

/// The outcome of an apply: counts and one [`StateOutcome`] per state.
pub use wit::ApplyReport;

/// Applies `state` (an sls name such as `web.nginx`) with optional pillar data as JSON.
/// With `test`, reports what would change and changes nothing.
///
/// The host refuses with [`HostError::Invalid`] a malformed state name or a pillar that is not
/// a JSON object of at most 64 KiB, and with [`HostError::Denied`] a state or top-level pillar
/// key outside the grant (`grant.salt.states`, `grant.salt.pillar_keys`). A state that fails
/// is not an error: the report says so (`succeeded` false, `failed` > 0). Salt refusing to run
/// the state at all (no such sls, a render error), another state run in progress, or
/// `salt-call` failing is [`HostError::Failed`].
pub fn apply(state: &str, pillar_json: Option<&str>, test: bool) -> Result<ApplyReport, HostError> {
    imports::apply(state, pillar_json, test).map_err(HostError::from)
}
