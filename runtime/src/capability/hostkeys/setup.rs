//! How the daemon sets the hostkeys capability up: its part of a grant, its section of
//! `sesamed.toml`, and its service live, as a dry run (the same: it only reads) and in
//! `sesamed configtest`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{HostKeys, HostKeysError};
use crate::capability::{Capability, Check, DryRun, Start};

/// `grant.hostkeys`: whether a request may read the host's SSH host public keys.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostKeysGrant {
    /// `hostkeys.list`: the public keys of the `ssh_host_*_key.pub` files.
    pub list: bool,
}

/// `[hostkeys]`: where the host's SSH host keys are.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostKeysConfig {
    /// The directory holding `ssh_host_*_key.pub` (sshd's `HostKey` files).
    pub dir: PathBuf,
}

impl Default for HostKeysConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/etc/ssh"),
        }
    }
}

impl Capability for HostKeys {
    type Grant = HostKeysGrant;
    type Config = HostKeysConfig;
    type Error = HostKeysError;

    fn configure(
        mut config: HostKeysConfig,
        resolve: &dyn Fn(PathBuf) -> PathBuf,
    ) -> Result<HostKeysConfig, String> {
        config.dir = resolve(config.dir);
        Ok(config)
    }

    /// Starts whatever the directory holds: the keys are read at each call.
    fn start(cx: &Start<'_>) -> Result<Self, HostKeysError> {
        Ok(HostKeys::new(cx.config.capabilities.hostkeys.dir.clone()))
    }

    /// The live service: reading the keys changes nothing.
    fn dry_run(cx: &DryRun<'_>) -> Result<Self, HostKeysError> {
        Ok(HostKeys::new(cx.config.capabilities.hostkeys.dir.clone()))
    }

    /// How many keys the directory holds; a warning when none, for each file skipped, and when
    /// the directory cannot be read (the daemon starts anyway: it reads at each call).
    fn check(cx: &Start<'_>) -> Result<Check, HostKeysError> {
        let service = HostKeys::new(cx.config.capabilities.hostkeys.dir.clone());
        let dir = service.dir().display();
        let listing = match service.list() {
            Ok(listing) => listing,
            Err(e) => {
                return Ok(Check {
                    summary: "0 host keys".to_owned(),
                    warnings: vec![format!("hostkeys: {e}: sesame known-hosts will fail")],
                });
            }
        };
        let mut warnings: Vec<String> = listing
            .skipped
            .iter()
            .map(|(file, why)| format!("hostkeys: {} {why}: skipped", file.display()))
            .collect();
        if listing.keys.is_empty() {
            warnings.push(format!(
                "hostkeys: no SSH host key in {dir} (ssh_host_*_key.pub): sesame known-hosts \
                 will have none to print (set [hostkeys] dir)"
            ));
        }
        Ok(Check {
            summary: format!("{} host keys in {dir}", listing.keys.len()),
            warnings,
        })
    }
}
