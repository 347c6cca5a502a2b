//! Temporary firewall openings that always expire.
//!
//! A command module asks for an opening through the `firewall` host interface; the host checks
//! the request's grant ([`check_grant`]) and hands a parsed [`Rule`] to the [`Firewall`] service,
//! which:
//!
//! - records the grant in the [`ledger`] (durably) *before* the rule is added, so a rule never
//!   exists that the ledger does not know how to expire;
//! - tags the rule with the grant id (`sesame:fw-…`) and never touches a rule without that tag;
//! - gives one rule per (source, port, protocol): asking again extends the existing grant, and
//!   several clients asking for the same opening share the rule as separate holders;
//! - closes a rule when its last holder's time runs out ([`Firewall::reap`], run every second by
//!   the daemon), when revoked, and on start for anything that expired while the daemon was down
//!   ([`Firewall::reconcile`]).
//!
//! The nftables back end also puts the expiry into the rule itself (`meta time <`), so the kernel
//! stops accepting at expiry even if the daemon is dead; ufw has no such match and relies on the
//! reaper and the reconciliation at start.

pub mod backend;
pub mod ledger;
pub mod nft;
pub mod rule;
pub mod ufw;

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::audit::{AuditEvent, AuditLog};
use crate::config::{Config, FirewallBackendKind};
use crate::policy::FirewallGrant;
use backend::{Backend, BackendError};
use ledger::{Grant, Holder, LedgerError, LedgerFile, Locked};
pub use rule::{GrantId, Proto, Rule, RuleError, Source};

/// The dry-run back end's record, in the state directory.
pub const DRY_RUN_RECORD: &str = "firewall-dry-run.jsonl";

/// Ceilings that hold whatever a policy grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirewallLimits {
    /// The longest an opening may last, seconds.
    pub max_ttl_s: u32,
    /// Openings live at once, all clients together.
    pub max_grants: usize,
    /// Openings one client may hold at once.
    pub max_grants_per_client: usize,
}

impl Default for FirewallLimits {
    fn default() -> Self {
        Self {
            max_ttl_s: 86_400,
            max_grants: 1_024,
            max_grants_per_client: 32,
        }
    }
}

/// Why a firewall operation did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FirewallError {
    /// The ledger could not be read or written; nothing was changed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The firewall tool failed.
    #[error("firewall ({backend}): {source}")]
    Backend {
        /// The back end's name.
        backend: &'static str,
        /// What went wrong.
        source: BackendError,
    },
    /// A ceiling from the daemon's configuration.
    #[error("{0}")]
    Limit(String),
    /// No live grant with this id (held by this client, when a client asked).
    #[error("no live grant {0}")]
    NotFound(GrantId),
}

/// Who is closing a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoker<'a> {
    /// A client, through a command module: only its own hold is released.
    Client(&'a str),
    /// An operator (`sesamed grants revoke`): the rule is closed for every holder.
    Operator,
}

/// The outcome of [`Firewall::allow`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The grant's id.
    pub id: GrantId,
    /// When the caller's hold ends (Unix ms).
    pub expires_ms: u64,
    /// Whether an existing grant was extended rather than a rule added.
    pub extended: bool,
}

/// A live grant as shown to clients and operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantView {
    /// The grant id.
    pub id: GrantId,
    /// What the rule lets in.
    pub rule: Rule,
    /// When the rule closes (the viewing client's hold, for a client; the last hold otherwise).
    pub expires_ms: u64,
    /// The holders (all of them for operators; only the viewer for a client).
    pub holders: Vec<Holder>,
}

/// What start-up reconciliation found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Live grants whose rule was present (and re-timed).
    pub kept: usize,
    /// Live grants whose rule was missing and was added again.
    pub reopened: usize,
    /// Grants that expired while the daemon was down, now closed.
    pub expired: usize,
    /// Tagged rules the ledger did not know, now removed.
    pub orphans_removed: usize,
    /// Where an unreadable ledger was moved, if it was.
    pub quarantined: Option<String>,
    /// Problems that left something undone (retried by the reaper or at the next start).
    pub errors: Vec<String>,
}

/// One firewall audit record.
#[derive(Debug, Clone, Serialize)]
pub struct FirewallRecord {
    /// `opened`, `extended`, `released`, `revoked`, `expired`, `reopened`, `orphan-removed`,
    /// `close-failed`, `ledger-quarantined` or `reconciled`.
    pub action: &'static str,
    /// The grant, when one is concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantId>,
    /// The rule, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    /// The client concerned, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The request that acted, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// When the rule now closes (Unix ms), for openings and extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// `request`, `operator`, `reaper` or `reconcile`.
    pub by: &'static str,
    /// Detail: an error, or the reconciliation report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl FirewallRecord {
    fn new(action: &'static str, by: &'static str) -> Self {
        Self {
            action,
            grant: None,
            rule: None,
            client: None,
            request_id: None,
            expires_ms: None,
            by,
            detail: None,
        }
    }

    fn grant(mut self, g: &Grant) -> Self {
        self.grant = Some(g.id.clone());
        self.rule = Some(g.rule);
        self
    }
}

/// The grants service: the one way rules are added to and removed from the firewall.
#[derive(Debug)]
pub struct Firewall {
    backend: Box<dyn Backend>,
    ledger: LedgerFile,
    limits: FirewallLimits,
    audit: Arc<AuditLog>,
}

impl Firewall {
    /// The service the configuration describes: its back end, ceilings, and the ledger in the
    /// state directory.
    pub fn from_config(config: &Config, audit: Arc<AuditLog>) -> Result<Self, FirewallError> {
        let settings = &config.firewall;
        let unusable = |source| FirewallError::Backend {
            backend: "config",
            source,
        };
        let backend: Box<dyn Backend> = match settings.backend {
            FirewallBackendKind::Ufw => Box::new(
                ufw::Ufw::new(ufw::UfwConfig {
                    ufw: settings.ufw.clone(),
                    rules_dir: settings.ufw_rules_dir.clone(),
                })
                .map_err(unusable)?,
            ),
            FirewallBackendKind::Nftables => {
                let Some((family, table)) = settings.nft_table.split_once(' ') else {
                    return Err(unusable(BackendError::Unusable(format!(
                        "firewall.nft_table {:?}: expected a family and a name, such as \"inet filter\"",
                        settings.nft_table
                    ))));
                };
                Box::new(
                    nft::Nft::new(nft::NftConfig {
                        nft: settings.nft.clone(),
                        family: family.trim().to_owned(),
                        table: table.trim().to_owned(),
                        chain: settings.nft_chain.clone(),
                    })
                    .map_err(unusable)?,
                )
            }
            FirewallBackendKind::DryRun => {
                Box::new(backend::DryRun::new(config.state_dir.join(DRY_RUN_RECORD)))
            }
        };
        let limits = FirewallLimits {
            max_ttl_s: settings.max_ttl_s,
            max_grants: settings.max_grants,
            max_grants_per_client: settings.max_grants_per_client,
        };
        Ok(Self::new(
            backend,
            LedgerFile::in_dir(&config.state_dir),
            limits,
            audit,
        ))
    }

    /// A service over `backend`, keeping its ledger in `ledger` and its records in `audit`.
    pub fn new(
        backend: Box<dyn Backend>,
        ledger: LedgerFile,
        limits: FirewallLimits,
        audit: Arc<AuditLog>,
    ) -> Self {
        Self {
            backend,
            ledger,
            limits,
            audit,
        }
    }

    /// The back end's name.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// The configured ceilings.
    pub fn limits(&self) -> FirewallLimits {
        self.limits
    }

    /// Checks the back end can work; returns warnings for the operator.
    pub fn check(&self) -> Result<Vec<String>, FirewallError> {
        self.backend.check().map_err(|e| self.backend_error(e))
    }

    fn backend_error(&self, source: BackendError) -> FirewallError {
        FirewallError::Backend {
            backend: self.backend.name(),
            source,
        }
    }

    fn record(&self, now_ms: u64, record: FirewallRecord) {
        if let Err(e) = self.audit.append(now_ms, &AuditEvent::Firewall(Box::new(record))) {
            tracing::error!("{e}");
        }
    }

    /// Opens `rule` for `client` for `ttl_s` seconds, or extends the client's hold on the same
    /// opening. The caller has checked the policy's grant ([`check_grant`]).
    pub fn allow(
        &self,
        now_ms: u64,
        client: &str,
        request_id: &str,
        rule: Rule,
        ttl_s: u32,
    ) -> Result<Opened, FirewallError> {
        if ttl_s == 0 || ttl_s > self.limits.max_ttl_s {
            return Err(FirewallError::Limit(format!(
                "ttl {ttl_s}s is outside 1..={}s (this host's ceiling)",
                self.limits.max_ttl_s
            )));
        }
        let until = now_ms.saturating_add(u64::from(ttl_s) * 1_000);
        let mut locked = self.ledger.lock()?;
        let held = locked
            .ledger
            .grants
            .iter()
            .filter(|g| g.holder(client).is_some_and(|h| h.expires_ms > now_ms))
            .count();

        if let Some(grant) = locked.ledger.by_rule_mut(&rule) {
            let before = grant.expires_ms();
            match grant.holders.iter_mut().find(|h| h.client == client) {
                Some(h) => {
                    h.expires_ms = h.expires_ms.max(until);
                    h.request_id = request_id.to_owned();
                }
                None => {
                    if held >= self.limits.max_grants_per_client {
                        return Err(self.too_many_for(client));
                    }
                    grant.holders.push(Holder {
                        client: client.to_owned(),
                        expires_ms: until,
                        request_id: request_id.to_owned(),
                    });
                }
            }
            let grant = grant.clone();
            let expires_ms = grant.holder(client).map_or(until, |h| h.expires_ms);
            // Ledger first: if the back end then fails the rule closes at the old time at worst.
            locked.save()?;
            if grant.expires_ms() != before || before <= now_ms {
                self.backend
                    .extend(&grant.id, &grant.rule, grant.expires_ms())
                    .map_err(|e| self.backend_error(e))?;
            }
            drop(locked);
            let mut rec = FirewallRecord::new("extended", "request").grant(&grant);
            rec.client = Some(client.to_owned());
            rec.request_id = Some(request_id.to_owned());
            rec.expires_ms = Some(expires_ms);
            self.record(now_ms, rec);
            return Ok(Opened {
                id: grant.id,
                expires_ms,
                extended: true,
            });
        }

        if held >= self.limits.max_grants_per_client {
            return Err(self.too_many_for(client));
        }
        let live = locked.ledger.grants.iter().filter(|g| g.is_live(now_ms)).count();
        if live >= self.limits.max_grants {
            return Err(FirewallError::Limit(format!(
                "this host already has {live} openings (its ceiling is {})",
                self.limits.max_grants
            )));
        }
        let grant = Grant {
            id: GrantId::random(),
            rule,
            created_ms: now_ms,
            holders: vec![Holder {
                client: client.to_owned(),
                expires_ms: until,
                request_id: request_id.to_owned(),
            }],
        };
        // Ledger first, durably: a crash after this never leaves a rule the ledger cannot expire.
        locked.ledger.grants.push(grant.clone());
        locked.save()?;
        if let Err(e) = self.backend.open(&grant.id, &grant.rule, until) {
            locked.ledger.remove(&grant.id);
            if let Err(save) = locked.save() {
                // The entry stays; the reaper closes (a no-op) and drops it at expiry.
                tracing::error!(grant = %grant.id, "undoing a failed opening in the ledger: {save}");
            }
            return Err(self.backend_error(e));
        }
        drop(locked);
        let mut rec = FirewallRecord::new("opened", "request").grant(&grant);
        rec.client = Some(client.to_owned());
        rec.request_id = Some(request_id.to_owned());
        rec.expires_ms = Some(until);
        self.record(now_ms, rec);
        Ok(Opened {
            id: grant.id,
            expires_ms: until,
            extended: false,
        })
    }

    fn too_many_for(&self, client: &str) -> FirewallError {
        FirewallError::Limit(format!(
            "{client} already holds {} openings (the ceiling per client)",
            self.limits.max_grants_per_client
        ))
    }

    /// Ends a grant: a client releases its own hold (the rule closes when no one else holds it);
    /// an operator closes the rule for everyone.
    pub fn revoke(&self, now_ms: u64, by: Revoker<'_>, id: &GrantId) -> Result<Option<Rule>, FirewallError> {
        let mut locked = self.ledger.lock()?;
        let Some(grant) = locked.ledger.get_mut(id) else {
            return Err(FirewallError::NotFound(id.clone()));
        };
        let (who, client) = match by {
            Revoker::Client(client) => {
                let Some(pos) = grant
                    .holders
                    .iter()
                    .position(|h| h.client == client && h.expires_ms > now_ms)
                else {
                    return Err(FirewallError::NotFound(id.clone()));
                };
                grant.holders.remove(pos);
                ("request", Some(client.to_owned()))
            }
            Revoker::Operator => {
                grant.holders.clear();
                ("operator", None)
            }
        };
        let grant = grant.clone();
        if grant.is_live(now_ms) {
            // Others still hold it: only the ledger changes.
            locked.save()?;
            drop(locked);
            let mut rec = FirewallRecord::new("released", who).grant(&grant);
            rec.client = client;
            self.record(now_ms, rec);
            return Ok(None);
        }
        // Record the intent first: if the daemon dies mid-way, start-up closes it (never re-opens).
        locked.save()?;
        self.close(now_ms, &mut locked, &grant, "revoked", who)?;
        drop(locked);
        Ok(Some(grant.rule))
    }

    /// Closes `grant`'s rule and drops it from the ledger; audits `action` on success and
    /// `close-failed` (keeping the entry for a retry) on failure.
    fn close(
        &self,
        now_ms: u64,
        locked: &mut Locked,
        grant: &Grant,
        action: &'static str,
        by: &'static str,
    ) -> Result<(), FirewallError> {
        match self.backend.close(&grant.id, &grant.rule) {
            Ok(()) => {
                locked.ledger.remove(&grant.id);
                locked.save()?;
                self.record(now_ms, FirewallRecord::new(action, by).grant(grant));
                Ok(())
            }
            Err(e) => {
                let mut rec = FirewallRecord::new("close-failed", by).grant(grant);
                rec.detail = Some(e.to_string());
                self.record(now_ms, rec);
                Err(self.backend_error(e))
            }
        }
    }

    /// Live grants: all of them (`client` = `None`, for operators) or those `client` holds.
    pub fn list(&self, now_ms: u64, client: Option<&str>) -> Result<Vec<GrantView>, FirewallError> {
        let locked = self.ledger.lock()?;
        let views = locked
            .ledger
            .grants
            .iter()
            .filter_map(|g| {
                let holders: Vec<Holder> = g
                    .holders
                    .iter()
                    .filter(|h| h.expires_ms > now_ms && client.is_none_or(|c| h.client == c))
                    .cloned()
                    .collect();
                let expires_ms = holders.iter().map(|h| h.expires_ms).max()?;
                Some(GrantView {
                    id: g.id.clone(),
                    rule: g.rule,
                    expires_ms,
                    holders,
                })
            })
            .collect();
        Ok(views)
    }

    /// Drops expired holds and closes every rule no one holds any more. Returns how many rules
    /// were closed. A rule that fails to close stays in the ledger and is retried next time.
    pub fn reap(&self, now_ms: u64) -> Result<usize, FirewallError> {
        let mut locked = match self.ledger.lock() {
            Err(LedgerError::Corrupt { .. }) => {
                // Never leave openings without a known end: start over from the firewall.
                self.reconcile(now_ms)?;
                return Ok(0);
            }
            other => other?,
        };
        let due: Vec<Grant> = locked
            .ledger
            .grants
            .iter()
            .filter(|g| !g.is_live(now_ms) || g.holders.iter().any(|h| h.expires_ms <= now_ms))
            .cloned()
            .collect();
        if due.is_empty() {
            return Ok(0);
        }
        let mut closed = 0;
        let mut first_error = None;
        for grant in due {
            if grant.is_live(now_ms) {
                // Some holds ended, others go on: trim the ledger only.
                if let Some(g) = locked.ledger.get_mut(&grant.id) {
                    g.holders.retain(|h| h.expires_ms > now_ms);
                }
                locked.save()?;
                continue;
            }
            match self.close(now_ms, &mut locked, &grant, "expired", "reaper") {
                Ok(()) => closed += 1,
                Err(e) => {
                    tracing::error!(grant = %grant.id, "closing an expired opening failed (will retry): {e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if closed == 0 => Err(e),
            _ => Ok(closed),
        }
    }

    /// Makes the firewall agree with the ledger, on start (and whenever the ledger turns out to be
    /// unreadable): expired grants are closed, live ones present (added again if missing, re-timed
    /// if present) and tagged rules the ledger does not know removed. Rules without our tag are
    /// never touched.
    pub fn reconcile(&self, now_ms: u64) -> Result<ReconcileReport, FirewallError> {
        let mut report = ReconcileReport::default();
        let mut locked = match self.ledger.lock() {
            Err(LedgerError::Corrupt { message, .. }) => {
                let aside = self.ledger.quarantine(now_ms)?;
                tracing::error!(
                    "grants ledger unreadable ({message}); moved to {} and closing every tagged rule",
                    aside.display()
                );
                let mut rec = FirewallRecord::new("ledger-quarantined", "reconcile");
                rec.detail = Some(format!("{message}; moved to {}", aside.display()));
                self.record(now_ms, rec);
                report.quarantined = Some(aside.display().to_string());
                self.ledger.lock()?
            }
            other => other?,
        };
        let owned = self.backend.owned().map_err(|e| self.backend_error(e))?;

        let grants = locked.ledger.grants.clone();
        for grant in &grants {
            let present = owned.iter().any(|o| o.id == grant.id);
            if !grant.is_live(now_ms) {
                match self.close(now_ms, &mut locked, grant, "expired", "reconcile") {
                    Ok(()) => report.expired += 1,
                    Err(e) => report.errors.push(format!("closing {}: {e}", grant.id)),
                }
                continue;
            }
            let (result, action) = if present {
                (
                    self.backend.extend(&grant.id, &grant.rule, grant.expires_ms()),
                    None,
                )
            } else {
                (
                    self.backend.open(&grant.id, &grant.rule, grant.expires_ms()),
                    Some("reopened"),
                )
            };
            match result {
                Ok(()) if action.is_some() => {
                    report.reopened += 1;
                    let mut rec = FirewallRecord::new("reopened", "reconcile").grant(grant);
                    rec.expires_ms = Some(grant.expires_ms());
                    self.record(now_ms, rec);
                }
                Ok(()) => report.kept += 1,
                Err(e) => report.errors.push(format!("{}: {e}", grant.id)),
            }
        }
        for orphan in owned.iter().filter(|o| !grants.iter().any(|g| g.id == o.id)) {
            let Some(rule) = orphan.rule else {
                report.errors.push(format!(
                    "rule tagged {} is not in the ledger and could not be read back; remove it by hand",
                    orphan.id
                ));
                continue;
            };
            match self.backend.close(&orphan.id, &rule) {
                Ok(()) => {
                    report.orphans_removed += 1;
                    let mut rec = FirewallRecord::new("orphan-removed", "reconcile");
                    rec.grant = Some(orphan.id.clone());
                    rec.rule = Some(rule);
                    self.record(now_ms, rec);
                }
                Err(e) => report.errors.push(format!("removing orphan {}: {e}", orphan.id)),
            }
        }
        drop(locked);
        for e in &report.errors {
            tracing::error!("firewall reconciliation: {e}");
        }
        let mut rec = FirewallRecord::new("reconciled", "reconcile");
        rec.detail = serde_json::to_string(&report).ok();
        self.record(now_ms, rec);
        Ok(report)
    }
}

/// Checks an opening against the request's firewall grant: the port, protocol and source must be
/// granted (`"caller"` in the grant's sources stands for the caller's observed address, which
/// must then be known) and the ttl within `1..=max_ttl_s`. Returns why not.
pub fn check_grant(
    grant: &FirewallGrant,
    caller: Option<IpAddr>,
    rule: &Rule,
    ttl_s: u32,
) -> Result<(), String> {
    if !grant.ports.contains(&rule.port) {
        return Err(format!(
            "port {} is not granted (granted: {:?})",
            rule.port, grant.ports
        ));
    }
    if !grant.protos.iter().any(|p| p == rule.proto.as_str()) {
        return Err(format!(
            "protocol {} is not granted (granted: {:?})",
            rule.proto, grant.protos
        ));
    }
    let covered = grant.sources.iter().any(|s| match s.as_str() {
        "caller" => caller.is_some_and(|ip| Source::host(ip).contains(&rule.source)),
        cidr => cidr.parse::<Source>().is_ok_and(|net| net.contains(&rule.source)),
    });
    if !covered {
        let caller = caller.map_or_else(|| "none observed".to_owned(), |ip| Source::host(ip).to_string());
        return Err(format!(
            "source {} is not granted (granted: {:?}; caller address: {caller})",
            rule.source, grant.sources
        ));
    }
    if ttl_s == 0 {
        return Err("ttl must be at least 1 second".to_owned());
    }
    if ttl_s > grant.max_ttl_s {
        return Err(format!(
            "ttl {ttl_s}s exceeds the granted maximum of {}s",
            grant.max_ttl_s
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
