//! How the daemon sets the firewall capability up: its part of a grant, its section of
//! `sesamed.toml`, and its service live, as a dry run and in `sesamed configtest`.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::backend::DryRun as DryRunBackend;
use super::{DRY_RUN_RECORD, Firewall, FirewallError, FirewallLimits, GrantId, Revoker};
use crate::capability::{Capability, Check, DryRun, Held, HeldKind, ReleaseError, Start};
use crate::ledger::LedgerFile;

/// `grant.firewall`: the openings a command may make.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FirewallGrant {
    /// Ports that may be opened.
    pub ports: Vec<u16>,
    /// Protocols that may be opened (`"tcp"`, `"udp"`).
    pub protos: Vec<String>,
    /// Sources that may be let in: CIDRs, or the literal `"caller"` meaning the request's observed
    /// source address (the daemon resolves it; there is none over SQS).
    pub sources: Vec<String>,
    /// The longest lifetime of an opening, in seconds (0 = none may be made).
    pub max_ttl_s: u32,
}

/// `[firewall]`: which firewall grants are made in, and ceilings no policy can raise.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirewallConfig {
    /// `ufw` (the default), `nftables` or `dry-run` (records what it would do, opens nothing).
    pub backend: FirewallBackendKind,
    /// The longest an opening may last, seconds.
    pub max_ttl_s: u32,
    /// Openings live at once, all clients together.
    pub max_grants: usize,
    /// Openings one client may hold at once.
    pub max_grants_per_client: usize,
    /// The ufw program.
    pub ufw: PathBuf,
    /// Where ufw keeps its rules (`user.rules`, `user6.rules`).
    pub ufw_rules_dir: PathBuf,
    /// The nft program.
    pub nft: PathBuf,
    /// The nftables table sesamed adds its chain to: family and name (`inet filter`).
    pub nft_table: String,
    /// The regular chain sesamed owns in that table; the table's input chain must jump to it.
    pub nft_chain: String,
}

/// The firewall back ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FirewallBackendKind {
    /// ufw (iptables or nftables underneath).
    Ufw,
    /// Native nftables.
    Nftables,
    /// Records what it would do and changes nothing (demos, trying policies).
    DryRun,
}

impl Default for FirewallConfig {
    fn default() -> Self {
        Self {
            backend: FirewallBackendKind::Ufw,
            max_ttl_s: 86_400,
            max_grants: 1_024,
            max_grants_per_client: 32,
            ufw: PathBuf::from("/usr/sbin/ufw"),
            ufw_rules_dir: PathBuf::from("/etc/ufw"),
            nft: PathBuf::from("/usr/sbin/nft"),
            nft_table: "inet filter".to_owned(),
            nft_chain: "sesame".to_owned(),
        }
    }
}

impl Capability for Firewall {
    type Grant = FirewallGrant;
    type Config = FirewallConfig;
    type Error = FirewallError;

    /// Closes the openings whose time is up (the nftables back end also has the kernel stop
    /// matching at expiry; ufw relies on this).
    fn reap(&self, now_ms: u64) {
        match Firewall::reap(self, now_ms) {
            Ok(0) => {}
            Ok(n) => tracing::info!(closed = n, "expired firewall openings closed"),
            Err(e) => tracing::error!("closing expired firewall openings: {e} (retrying)"),
        }
    }

    /// The client's live openings (`fw-…`), each until its own hold ends.
    fn holds(&self, key: &sesame_proto::PublicKey, now_ms: u64) -> Result<Vec<Held>, String> {
        let views = self.list(now_ms, Some(key)).map_err(|e| e.to_string())?;
        Ok(views
            .into_iter()
            .map(|v| Held {
                id: v.id.to_string(),
                kind: HeldKind::Opening,
                what: v.rule.to_string(),
                expires_ms: v.expires_ms,
            })
            .collect())
    }

    /// Releases the client's hold on opening `id` (`fw-…`); the rule closes when nobody else
    /// holds it.
    fn release(
        &self,
        key: &sesame_proto::PublicKey,
        id: &str,
        now_ms: u64,
    ) -> Option<Result<(), ReleaseError>> {
        if !id.starts_with("fw-") {
            return None;
        }
        let Ok(grant) = id.parse::<GrantId>() else {
            return Some(Err(ReleaseError::NotHeld(id.to_owned())));
        };
        Some(match self.revoke(now_ms, Revoker::Client(key), &grant) {
            Ok(_) => Ok(()),
            Err(FirewallError::NotFound(_)) => Err(ReleaseError::NotHeld(id.to_owned())),
            Err(e) => Err(ReleaseError::Failed(e.to_string())),
        })
    }

    fn configure(
        config: FirewallConfig,
        _resolve: &dyn Fn(PathBuf) -> PathBuf,
    ) -> Result<FirewallConfig, String> {
        if config.max_ttl_s == 0 || config.max_grants == 0 || config.max_grants_per_client == 0 {
            return Err(
                "firewall: max_ttl_s, max_grants and max_grants_per_client must be greater than zero".into(),
            );
        }
        for (key, p) in [
            ("ufw", &config.ufw),
            ("ufw_rules_dir", &config.ufw_rules_dir),
            ("nft", &config.nft),
        ] {
            if !p.is_absolute() {
                return Err(format!(
                    "firewall.{key}: {} must be an absolute path",
                    p.display()
                ));
            }
        }
        Ok(config)
    }

    /// The configured back end, checked (its warnings go to the daemon log) and reconciled with
    /// the ledger: openings that outlived a restart are kept, reopened or expired.
    fn start(cx: &Start<'_>) -> Result<Self, FirewallError> {
        let fw = Firewall::from_config(cx.config, Arc::clone(cx.audit))?;
        for warning in fw.check()? {
            tracing::warn!(backend = fw.backend_name(), "{warning}");
        }
        let report = fw.reconcile(cx.now_ms)?;
        tracing::info!(
            backend = fw.backend_name(),
            kept = report.kept,
            reopened = report.reopened,
            expired = report.expired,
            orphans_removed = report.orphans_removed,
            "firewall reconciled"
        );
        Ok(fw)
    }

    /// The dry-run back end, its ledger in the scratch directory; what it would do is recorded
    /// as `firewall {"action":…}` lines.
    fn dry_run(cx: &DryRun<'_>) -> Result<Self, FirewallError> {
        let settings = &cx.config.capabilities.firewall;
        let backend = DryRunBackend::new(cx.scratch.join(DRY_RUN_RECORD)).recording(cx.recorder.clone());
        Ok(Firewall::new(
            Box::new(backend),
            LedgerFile::new(cx.scratch, &cx.config.clients_file),
            FirewallLimits::of(settings),
            Arc::clone(cx.audit),
        ))
    }

    /// The back end checked, without reconciling anything.
    fn check(cx: &Start<'_>) -> Result<Check, FirewallError> {
        let fw = Firewall::from_config(cx.config, Arc::clone(cx.audit))?;
        Ok(Check {
            warnings: fw.check()?,
            summary: format!("firewall {}", fw.backend_name()),
        })
    }
}
