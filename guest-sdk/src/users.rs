//! Local accounts, groups and SSH keys (WIT interface `users`).
//!
//! Needs the users capability in the module's cluster; the grant limits which accounts and
//! groups a request may touch or see.

use crate::__private::bindings::sesame::host::users as wit;
use crate::HostError;

// The imports, or on non-wasm targets (tests) the fake host that stands in for them.
#[cfg(not(target_family = "wasm"))]
use crate::testing::fake::users as imports;
#[cfg(target_family = "wasm")]
use wit as imports;

/// An account to create: login shell and GECOS comment default on the host when `None`;
/// supplementary `groups` must exist.
pub use wit::NewUser;

/// A local account as [`list`] reports it; `locked` means no password or key login.
pub use wit::Account;

/// Creates the account with a home directory.
pub fn create(user: &NewUser) -> Result<(), HostError> {
    imports::create(user).map_err(HostError::from)
}

/// Creates the account for `ttl_secs`: it gets shadow's expiry date (the day after its end), and
/// sesamed locks it at the end (its files stay). Asking again for an account made this way
/// extends it. Returns when it ends, Unix milliseconds.
pub fn create_temporary(user: &NewUser, ttl_secs: u32) -> Result<u64, HostError> {
    imports::create_temporary(user, ttl_secs).map_err(HostError::from)
}

/// Locks the password and expires the account, which also stops key logins.
pub fn lock(name: &str) -> Result<(), HostError> {
    imports::lock(name).map_err(HostError::from)
}

/// Undoes [`lock`].
pub fn unlock(name: &str) -> Result<(), HostError> {
    imports::unlock(name).map_err(HostError::from)
}

/// Removes the account and its home directory.
pub fn remove(name: &str) -> Result<(), HostError> {
    imports::remove(name).map_err(HostError::from)
}

/// Adds an OpenSSH public key line; `false` when it was already there.
pub fn add_key(name: &str, key: &str) -> Result<bool, HostError> {
    imports::add_key(name, key).map_err(HostError::from)
}

/// Adds an OpenSSH public key line that expires after `ttl_secs`: sshd refuses it then (the
/// line carries OpenSSH's `expiry-time`), even while sesamed is down, and sesamed takes it
/// back. Adding it again extends it. Returns when it expires, Unix milliseconds.
pub fn add_temporary_key(name: &str, key: &str, ttl_secs: u32) -> Result<u64, HostError> {
    imports::add_temporary_key(name, key, ttl_secs).map_err(HostError::from)
}

/// Removes a key (matched by type and key data); `false` when it was absent.
pub fn remove_key(name: &str, key: &str) -> Result<bool, HostError> {
    imports::remove_key(name, key).map_err(HostError::from)
}

/// Adds the account to a supplementary group.
pub fn add_to_group(name: &str, group: &str) -> Result<(), HostError> {
    imports::add_to_group(name, group).map_err(HostError::from)
}

/// Adds the account to a supplementary group for `ttl_secs`; sesamed takes the membership back
/// then (nothing else ends it: sesamed must run). Asking again extends it. Returns when it ends,
/// Unix milliseconds.
pub fn add_temporary_membership(name: &str, group: &str, ttl_secs: u32) -> Result<u64, HostError> {
    imports::add_temporary_membership(name, group, ttl_secs).map_err(HostError::from)
}

/// Removes the account from a supplementary group.
pub fn remove_from_group(name: &str, group: &str) -> Result<(), HostError> {
    imports::remove_from_group(name, group).map_err(HostError::from)
}

/// The accounts the grant lets this request see.
pub fn list() -> Result<Vec<Account>, HostError> {
    imports::list().map_err(HostError::from)
}
