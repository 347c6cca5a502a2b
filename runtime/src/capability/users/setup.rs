//! How the daemon sets the users capability up: its part of a grant, its (empty) section of
//! `sesamed.toml`, and shadow's tools live, as a dry run and in `sesamed configtest`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Users, UsersError};
use crate::capability::{Capability, Check, DryRun, Start};

/// `grant.users`: the accounts a command may manage. The host decides what these reach
/// (`crate::capability::users::reach`): system accounts and groups only through the `system_*` fields, and
/// an existing account only when it is a member of one of the groups the grant reaches.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersGrant {
    /// Account names that may be created, changed or removed (`"*"`: any ordinary account).
    pub names: Vec<String>,
    /// Groups accounts may be added to or removed from, and whose members may be managed
    /// (`"*"`: any ordinary group).
    pub groups: Vec<String>,
    /// `"self"`: self service, the calling client's own account (the account named like the
    /// client, when that is not a system account), whatever `names` and `groups` say.
    #[serde(rename = "self")]
    pub self_service: bool,
    /// System accounts (root, ids outside `UID_MIN..=UID_MAX`, non-login shells, reserved
    /// names) that may be managed, each by its exact name: `"*"` matches none.
    pub system_accounts: Vec<String>,
    /// System groups (gid 0, gids outside `GID_MIN..=GID_MAX`, reserved names) that may be
    /// used, and whose members may be managed, each by its exact name.
    pub system_groups: Vec<String>,
}

/// `[users]`: nothing to set yet (the tools are shadow's, at their standard paths, and the ids
/// ordinary accounts take come from `/etc/login.defs`); any key is an error.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersConfig {}

impl Capability for Users {
    type Grant = UsersGrant;
    type Config = UsersConfig;
    type Error = UsersError;

    fn configure(config: UsersConfig, _resolve: &dyn Fn(PathBuf) -> PathBuf) -> Result<UsersConfig, String> {
        Ok(config)
    }

    fn start(_cx: &Start<'_>) -> Result<Self, UsersError> {
        Users::new()
    }

    fn dry_run(cx: &DryRun<'_>) -> Result<Self, UsersError> {
        Users::dry_run(cx.recorder.clone())
    }

    /// shadow's tools are installed and `/etc/login.defs` reads as they read it.
    fn check(_cx: &Start<'_>) -> Result<Check, UsersError> {
        Users::new().map(|_| Check::default())
    }
}
