//! The host's SSH host public keys (WIT interface `hostkeys`), read-only: what its sshd
//! presents, for clients to check it without trusting it on first use.
//!
//! Needs the hostkeys capability in the module's cluster, and a grant allowing the call
//! (`grant.hostkeys.list`).

use crate::__private::bindings::sesame::host::hostkeys as wit;
use crate::HostError;

// The imports, or on non-wasm targets (tests) the fake host that stands in for them.
#[cfg(not(target_family = "wasm"))]
use crate::testing::fake::hostkeys as imports;
#[cfg(target_family = "wasm")]
use wit as imports;

/// One SSH host public key: `kind` is the key type as OpenSSH names it (`ssh-ed25519`,
/// `ecdsa-sha2-nistp256`, `ecdsa-sha2-nistp384`, `ecdsa-sha2-nistp521`, `ssh-rsa`), `key` the
/// key data in base64, as in a `.pub` file (the comment left out).
pub use wit::HostKey;

/// The host's SSH host public keys (its `ssh_host_*_key.pub` files), sorted by type then key
/// data, each once. The host reads each file strictly and leaves out, and logs, one that does
/// not hold exactly one key of a type above; so the list may be empty.
///
/// The host refuses with [`HostError::Denied`] a request whose grant does not allow it, and
/// answers [`HostError::Failed`] when the key directory could not be read.
pub fn list() -> Result<Vec<HostKey>, HostError> {
    imports::list().map_err(HostError::from)
}
