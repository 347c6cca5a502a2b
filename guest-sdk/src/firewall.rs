//! Temporary firewall openings that expire by themselves (WIT interface `firewall`).
//!
//! Needs the firewall capability in the module's cluster; every call is checked against the
//! request's grant. Grants belong to the calling client.

use crate::__private::bindings::sesame::host::firewall as wit;
use crate::HostError;

// The imports, or on non-wasm targets (tests) the fake host that stands in for them.
#[cfg(not(target_family = "wasm"))]
use crate::testing::fake::firewall as imports;
#[cfg(target_family = "wasm")]
use wit as imports;

/// The transport protocol of an opening.
pub use wit::Proto;

/// An opening to ask for: `source` is an IPv4/IPv6 address or CIDR, open to `port`/`proto`
/// for `ttl_secs` seconds.
pub use wit::Rule;

/// A live opening held by the calling client; `expires_at_ms` is Unix time in milliseconds.
pub use wit::Grant;

/// Opens `rule` until its ttl runs out and returns the grant id. Asking again for the same
/// source, port and proto extends the existing grant.
pub fn allow(rule: &Rule) -> Result<String, HostError> {
    imports::allow(rule).map_err(HostError::from)
}

/// Closes a grant of the calling client before it expires.
pub fn revoke(grant_id: &str) -> Result<(), HostError> {
    imports::revoke(grant_id).map_err(HostError::from)
}

/// The calling client's live grants.
pub fn list() -> Result<Vec<Grant>, HostError> {
    imports::list().map_err(HostError::from)
}
