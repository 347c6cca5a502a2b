//! The caller's own view of the grants ledger: every live change it holds on this host, of
//! every kind the ledger keeps (firewall openings, temporary SSH keys, group memberships and
//! accounts), and taking one back early. The stock `grants` and `revoke` commands use it.
//!
//! It keeps nothing of its own: each capability that records changes in the ledger answers for
//! its kind ([`Capability::holds`], [`Capability::release`]), and this interface asks every
//! running one. A module sees and releases only the holds of the client whose request it runs,
//! so it can only ever shrink that client's access; that is why it needs no grant, and why it
//! comes with every capability that makes such changes ([`COMES_WITH`]): a cluster that may open
//! the firewall may also list and close what its caller opened.

mod calls;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::capability::{Capability, Check, DryRun, Start};

/// The capabilities whose clusters get this one too: those that keep changes in the ledger.
pub const COMES_WITH: &[&str] = &["firewall", "users"];

/// This capability's name, as clusters grant it.
pub const NAME: &str = "grants";

/// The service: stateless (the capabilities that keep the changes answer for them).
#[derive(Debug, Clone, Copy, Default)]
pub struct Grants;

/// `grant.grants`: nothing to grant (a client's own holds are always its to see and release);
/// an empty object is accepted, any key is an error.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsGrant {}

/// `[grants]`: no settings; an empty section is accepted, any key is an error.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsConfig {}

impl Capability for Grants {
    type Grant = GrantsGrant;
    type Config = GrantsConfig;
    type Error = std::convert::Infallible;

    fn configure(
        config: GrantsConfig,
        _resolve: &dyn Fn(PathBuf) -> PathBuf,
    ) -> Result<GrantsConfig, String> {
        Ok(config)
    }

    /// Nothing to start: there is nothing to fail.
    fn start(_cx: &Start<'_>) -> Result<Self, std::convert::Infallible> {
        Ok(Grants)
    }

    fn dry_run(_cx: &DryRun<'_>) -> Result<Self, std::convert::Infallible> {
        Ok(Grants)
    }

    fn check(_cx: &Start<'_>) -> Result<Check, std::convert::Infallible> {
        Ok(Check::default())
    }
}

/// A cluster's capabilities as the daemon grants them: as listed, plus `grants` when one of
/// [`COMES_WITH`] is there. A cluster may also name `grants` alone.
pub fn with_implied(mut capabilities: Vec<String>) -> Vec<String> {
    let implied = capabilities.iter().any(|c| COMES_WITH.contains(&c.as_str()));
    if implied && !capabilities.iter().any(|c| c == NAME) {
        capabilities.push(NAME.to_owned());
    }
    capabilities
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_capabilities_that_keep_changes_bring_grants_and_no_other_does() {
        assert_eq!(
            with_implied(caps(&["firewall", "hostkeys"])),
            caps(&["firewall", "hostkeys", "grants"])
        );
        assert_eq!(with_implied(caps(&["users"])), caps(&["users", "grants"]));
        assert_eq!(
            with_implied(caps(&["grants", "users"])),
            caps(&["grants", "users"])
        );
        assert_eq!(
            with_implied(caps(&["salt", "exec", "hostkeys"])),
            caps(&["salt", "exec", "hostkeys"])
        );
        assert_eq!(with_implied(caps(&[])), caps(&[]));
        assert_eq!(with_implied(caps(&["grants"])), caps(&["grants"]));
    }

    #[test]
    fn its_grant_and_section_accept_nothing_but_empty() {
        assert_eq!(
            serde_json::from_str::<GrantsGrant>("{}").expect("empty"),
            GrantsGrant {}
        );
        assert!(serde_json::from_str::<GrantsGrant>(r#"{"list": true}"#).is_err());
        assert!(toml::from_str::<GrantsConfig>("x = 1").is_err());
    }
}
