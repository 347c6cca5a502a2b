//! How the daemon sets the salt capability up: its part of a grant, its section of
//! `sesamed.toml`, and salt-call live, as a dry run and in `sesamed configtest`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Salt, SaltError};
use crate::capability::{Capability, Check, DryRun, Start};

/// `grant.salt`: the Salt states a command may apply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SaltGrant {
    /// States that may be applied: exact sls names, `"PREFIX.*"` for any state below PREFIX, or
    /// `"*"`.
    pub states: Vec<String>,
    /// Top-level pillar keys a caller may pass (`"*"`: any). None by default: pillar data can
    /// steer what a state does (a path, a package), so it is granted key by key.
    pub pillar_keys: Vec<String>,
}

/// `[salt]`: where salt-call is and which minion configuration it uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SaltConfig {
    /// The salt-call program.
    pub salt_call: PathBuf,
    /// The minion configuration directory (`--config-dir`): its `minion` file sets
    /// `file_roots`, `pillar_roots` and, for a masterless minion, `file_client: local`.
    pub config_dir: PathBuf,
    /// The longest one apply may take, seconds; the request's own time limit can cut it shorter.
    pub timeout_s: u64,
}

impl Default for SaltConfig {
    fn default() -> Self {
        Self {
            salt_call: PathBuf::from("/usr/bin/salt-call"),
            config_dir: PathBuf::from("/etc/salt"),
            timeout_s: 300,
        }
    }
}

impl Capability for Salt {
    type Grant = SaltGrant;
    type Config = SaltConfig;
    type Error = SaltError;

    fn configure(mut config: SaltConfig, resolve: &dyn Fn(PathBuf) -> PathBuf) -> Result<SaltConfig, String> {
        if config.timeout_s == 0 || config.timeout_s > 3600 {
            return Err("salt.timeout_s: must be between 1 and 3600".into());
        }
        config.salt_call = resolve(config.salt_call);
        config.config_dir = resolve(config.config_dir);
        Ok(config)
    }

    fn start(cx: &Start<'_>) -> Result<Self, SaltError> {
        Salt::from_config(&cx.config.capabilities.salt)
    }

    fn dry_run(cx: &DryRun<'_>) -> Result<Self, SaltError> {
        Salt::dry_run(&cx.config.capabilities.salt, cx.recorder.clone())
    }

    /// salt-call's version, after a `test.ping` with the minion configuration.
    fn check(cx: &Start<'_>) -> Result<Check, SaltError> {
        Ok(Check {
            summary: Salt::from_config(&cx.config.capabilities.salt)?.check()?,
            warnings: Vec::new(),
        })
    }
}
