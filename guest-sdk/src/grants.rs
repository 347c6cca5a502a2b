//! The calling client's own temporary changes on the host, of every kind sesamed keeps in its
//! grants ledger (WIT interface `grants`): firewall openings, SSH keys, group memberships and
//! accounts; what they are, until when, and taking one back early.
//!
//! A module sees and releases only the holds of the client whose request it runs, so these
//! calls need no grant. Clusters with the firewall or users capability have this interface too;
//! a cluster can also name `grants` alone.

use crate::__private::bindings::sesame::host::grants as wit;
use crate::HostError;

// The imports, or on non-wasm targets (tests) the fake host that stands in for them.
#[cfg(not(target_family = "wasm"))]
use crate::testing::fake::grants as imports;
#[cfg(target_family = "wasm")]
use wit as imports;

/// What kind of change a grant is: an `Opening` (`fw-…`), a `Key` (`key-…`), a `Membership`
/// (`grp-…`) or an `Account` (`acc-…`).
pub use wit::ChangeKind;

/// One live grant the calling client holds: its `id`, `kind`, `what` it is for people
/// (`22/tcp from 203.0.113.5`, `key ssh-ed25519 …6ELIpKiD6cti on dave`, `dave in group sudo`,
/// `account cleo`) and `expires_at_ms`, when the client's hold ends (Unix milliseconds; another
/// client may hold the same change longer).
pub use wit::Held;

/// The calling client's live grants, soonest to end first.
///
/// [`HostError::Failed`]: one kind could not be read (the host logs why).
pub fn list() -> Result<Vec<Held>, HostError> {
    imports::list().map_err(HostError::from)
}

/// Releases the calling client's hold on grant `id`: the change is taken back at once unless
/// another client still holds it.
///
/// [`HostError::Invalid`]: the client holds no live grant `id` (it may have expired);
/// [`HostError::Failed`]: it could not be taken back now (sesamed retries; the host logs why).
pub fn revoke(id: &str) -> Result<(), HostError> {
    imports::revoke(id).map_err(HostError::from)
}
