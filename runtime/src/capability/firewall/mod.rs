//! Temporary firewall openings that always expire.
//!
//! A command module asks for an opening through the `firewall` host interface; the host checks
//! the request's grant ([`check_grant`]) and hands a parsed [`Rule`] to the [`Firewall`] service,
//! which:
//!
//! - records the grant in the [`ledger`](crate::ledger) (durably) *before* the rule is added, so a rule never
//!   exists that the ledger does not know how to expire;
//! - tags the rule with the grant id (`sesame:fw-…`) and never touches a rule without that tag;
//! - gives one rule per (source, port, protocol): asking again extends the existing grant, and
//!   several clients asking for the same opening share the rule as separate holders;
//! - records each hold under the client's enrolled key, never its name ([`holders`]): removing
//!   a client closes what it held, a name enrolled again under another key holds nothing, and a
//!   rekeyed client keeps its holds under its new key;
//! - keeps an opening the back end failed to make (or re-time) in the ledger, held by nobody and
//!   marked uncertain, until the back end confirms its rule is gone: a tool that fails or is
//!   killed after its rule went in never leaves a rule the ledger has forgotten;
//! - closes a rule when its last holder's time runs out ([`Firewall::reap`], run every second by
//!   the daemon), when revoked, and on start for anything that expired while the daemon was down
//!   ([`Firewall::reconcile`]).
//!
//! The nftables back end also puts the expiry into the rule itself (`meta time <`), so the kernel
//! stops accepting at expiry even if the daemon is dead; ufw has no such match and relies on the
//! reaper and the reconciliation at start.

pub mod backend;
mod calls;
pub mod holders;
pub mod nft;
mod reconcile;
pub mod rule;
mod setup;
pub mod ufw;

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;
use sesame_proto::PublicKey;

use crate::audit::{AuditEvent, AuditLog};
use crate::clients::RegistryError;
use crate::config::Config;
use crate::ledger::{Grant, Holder, LedgerError, LedgerFile, Locked};
use backend::{Backend, BackendError};
pub use holders::ClientRelease;
use holders::Enrolled;
pub use reconcile::ReconcileReport;
pub use rule::{GrantId, Proto, Rule, RuleError, Source};
pub use setup::{FirewallBackendKind, FirewallConfig, FirewallGrant};

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

impl FirewallLimits {
    /// The ceilings `[firewall]` sets.
    pub fn of(config: &FirewallConfig) -> Self {
        Self {
            max_ttl_s: config.max_ttl_s,
            max_grants: config.max_grants,
            max_grants_per_client: config.max_grants_per_client,
        }
    }
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
    /// The firewall tool failed after the ledger recorded the change, so the rule may be in the
    /// firewall or not. The ledger keeps the grant (held by nobody and marked uncertain, when no
    /// one else holds it) until the back end confirms its rule is gone; the daemon's reaper
    /// closes it within a second.
    #[error("firewall ({backend}): {source} (grant {grant} stays in the ledger until its rule is closed)")]
    Unsettled {
        /// The back end's name.
        backend: &'static str,
        /// The grant kept.
        grant: GrantId,
        /// What went wrong.
        source: BackendError,
    },
    /// A ceiling from the daemon's configuration.
    #[error("{0}")]
    Limit(String),
    /// No live grant with this id (held by this client, when a client asked).
    #[error("no live grant {0}")]
    NotFound(GrantId),
    /// The key is not (or no longer) enrolled: it may hold nothing.
    #[error("the client is no longer enrolled")]
    NotEnrolled,
    /// The client registry, which says which key a hold belongs to, could not be read.
    #[error("client registry: {0}")]
    Registry(#[from] RegistryError),
}

/// Who is closing a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoker<'a> {
    /// A client, through a command module, by the key that sealed its request: only its own
    /// hold is released.
    Client(&'a PublicKey),
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
    /// For a grant awaiting closure: the back end failed while making it, so its rule may be
    /// in the firewall or not.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub uncertain: bool,
}

/// One firewall audit record.
#[derive(Debug, Clone, Serialize)]
pub struct FirewallRecord {
    /// `opened`, `extended`, `open-failed`, `extend-failed`, `released`, `revoked`, `expired`,
    /// `undone` (an uncertain opening closed), `rekeyed`, `reopened`, `orphan-removed`,
    /// `close-failed`, `ledger-migrated`, `ledger-quarantined` or `reconciled`.
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
    /// That client's key (a hold belongs to it), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The request that acted, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// When the rule now closes (Unix ms), for openings and extensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// `request`, `operator`, `reaper`, `reconcile` or `migration`.
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
            key: None,
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

    fn holder(mut self, name: &str, key: &PublicKey) -> Self {
        self.client = Some(name.to_owned());
        self.key = Some(key.to_string());
        self
    }
}

/// A hold the back end failed to put in place (see [`Firewall::unsettle`]).
struct FailedHold<'a> {
    /// `open-failed` (a new opening) or `extend-failed` (one already there).
    action: &'static str,
    /// The grant.
    grant: &'a GrantId,
    /// Whose hold.
    who: &'a Enrolled,
    /// The hold as it was before (none for a new holder).
    previous: Option<Holder>,
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
        let settings = &config.capabilities.firewall;
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
        Ok(Self::new(
            backend,
            LedgerFile::new(&config.state_dir, &config.clients_file),
            FirewallLimits::of(settings),
            audit,
        ))
    }

    /// A service over `backend`, keeping its ledger in `ledger` (whose holders are the keys of
    /// the registry it names) and its records in `audit`.
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

    /// Opens `rule` for the client whose request `key` sealed, for `ttl_s` seconds, or extends
    /// its hold on the same opening. The caller has checked the policy's grant
    /// ([`check_grant`]). The hold is recorded under the client's current key, read from the
    /// registry under the ledger lock, so a client removed or rekeyed meanwhile is seen.
    pub fn allow(
        &self,
        now_ms: u64,
        key: &PublicKey,
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
        let mut locked = self.lock(now_ms)?;
        let who = self.enrolled(key)?.ok_or(FirewallError::NotEnrolled)?;
        let held = locked
            .ledger
            .grants
            .iter()
            .filter(|g| g.holder(&who.key).is_some_and(|h| h.expires_ms > now_ms))
            .count();
        let live = locked.ledger.grants.iter().filter(|g| g.is_live(now_ms)).count();
        let hold = Holder {
            client: who.name.clone(),
            key: who.key,
            expires_ms: until,
            request_id: request_id.to_owned(),
        };

        if let Some(grant) = locked.ledger.by_rule_mut(&rule) {
            let before = grant.expires_ms();
            if before <= now_ms && live >= self.limits.max_grants {
                // Held by nobody (ended, or a failed opening): reviving it is a new opening.
                return Err(self.too_many_on_host(live));
            }
            let previous = grant.holder(&who.key).cloned();
            match grant.holders.iter_mut().find(|h| h.key == who.key) {
                Some(h) => {
                    *h = Holder {
                        expires_ms: h.expires_ms.max(until),
                        ..hold
                    };
                }
                None => {
                    if held >= self.limits.max_grants_per_client {
                        return Err(self.too_many_for(&who.name));
                    }
                    grant.holders.push(hold);
                }
            }
            let grant = grant.clone();
            let expires_ms = grant.holder(&who.key).map_or(until, |h| h.expires_ms);
            // Ledger first: if the back end then fails, the hold is put back as it was.
            locked.save()?;
            if grant.expires_ms() != before || before <= now_ms || grant.uncertain {
                if let Err(e) = self.backend.extend(&grant.id, &grant.rule, grant.expires_ms()) {
                    let failed = FailedHold {
                        action: "extend-failed",
                        grant: &grant.id,
                        who: &who,
                        previous,
                    };
                    return Err(self.unsettle(now_ms, &mut locked, failed, e));
                }
                if grant.uncertain {
                    if let Some(g) = locked.ledger.get_mut(&grant.id) {
                        g.uncertain = false;
                    }
                    locked.save()?;
                }
            }
            drop(locked);
            let mut rec = FirewallRecord::new("extended", "request")
                .grant(&grant)
                .holder(&who.name, &who.key);
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
            return Err(self.too_many_for(&who.name));
        }
        if live >= self.limits.max_grants {
            return Err(self.too_many_on_host(live));
        }
        let grant = Grant {
            id: GrantId::random(),
            rule,
            created_ms: now_ms,
            holders: vec![hold],
            uncertain: false,
        };
        // Ledger first, durably: a crash after this never leaves a rule the ledger cannot expire.
        locked.ledger.grants.push(grant.clone());
        locked.save()?;
        if let Err(e) = self.backend.open(&grant.id, &grant.rule, until) {
            let failed = FailedHold {
                action: "open-failed",
                grant: &grant.id,
                who: &who,
                previous: None,
            };
            return Err(self.unsettle(now_ms, &mut locked, failed, e));
        }
        drop(locked);
        let mut rec = FirewallRecord::new("opened", "request")
            .grant(&grant)
            .holder(&who.name, &who.key);
        rec.request_id = Some(request_id.to_owned());
        rec.expires_ms = Some(until);
        self.record(now_ms, rec);
        Ok(Opened {
            id: grant.id,
            expires_ms: until,
            extended: false,
        })
    }

    /// After the back end failed on a change the ledger already records (it may have made it or
    /// not): puts the hold back as it was before, since the client is told it failed, and marks
    /// the grant uncertain when that leaves nobody holding it, so the reaper closes it at once.
    /// The grant itself stays until the back end confirms its rule is gone.
    fn unsettle(
        &self,
        now_ms: u64,
        locked: &mut Locked,
        failed: FailedHold<'_>,
        source: BackendError,
    ) -> FirewallError {
        let FailedHold {
            action,
            grant: id,
            who,
            previous,
        } = failed;
        if let Some(grant) = locked.ledger.get_mut(id) {
            let request_id = grant.holder(&who.key).map(|h| h.request_id.clone());
            match (grant.holders.iter().position(|h| h.key == who.key), previous) {
                (Some(at), Some(before)) => grant.holders[at] = before,
                (Some(at), None) => {
                    grant.holders.remove(at);
                }
                (None, _) => {}
            }
            if !grant.is_live(now_ms) {
                grant.uncertain = true;
            }
            let grant = grant.clone();
            if let Err(e) = locked.save() {
                // The entry stays as last saved, held until the time just asked for: the
                // reaper still closes whatever went in, at that time.
                tracing::error!(grant = %id, "putting a hold back after a failed change: {e}");
            }
            let mut rec = FirewallRecord::new(action, "request")
                .grant(&grant)
                .holder(&who.name, &who.key);
            rec.request_id = request_id;
            rec.detail = Some(if grant.uncertain {
                format!("{source}; the rule may be in the firewall: closing it now")
            } else {
                format!(
                    "{source}; the rule closes at {}",
                    crate::format_utc(grant.expires_ms())
                )
            });
            self.record(now_ms, rec);
        }
        FirewallError::Unsettled {
            backend: self.backend.name(),
            grant: id.clone(),
            source,
        }
    }

    fn too_many_on_host(&self, live: usize) -> FirewallError {
        FirewallError::Limit(format!(
            "this host already has {live} openings (its ceiling is {})",
            self.limits.max_grants
        ))
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
        let mut locked = self.lock(now_ms)?;
        let who = match by {
            Revoker::Client(key) => Some(
                self.enrolled(key)?
                    .ok_or_else(|| FirewallError::NotFound(id.clone()))?,
            ),
            Revoker::Operator => None,
        };
        let Some(grant) = locked.ledger.get_mut(id) else {
            return Err(FirewallError::NotFound(id.clone()));
        };
        match &who {
            Some(who) => {
                let Some(pos) = grant
                    .holders
                    .iter()
                    .position(|h| h.key == who.key && h.expires_ms > now_ms)
                else {
                    return Err(FirewallError::NotFound(id.clone()));
                };
                grant.holders.remove(pos);
            }
            None => grant.holders.clear(),
        }
        let by = if who.is_some() { "request" } else { "operator" };
        let grant = grant.clone();
        let record = |action| {
            let rec = FirewallRecord::new(action, by).grant(&grant);
            match &who {
                Some(who) => rec.holder(&who.name, &who.key),
                None => rec,
            }
        };
        if grant.is_live(now_ms) {
            // Others still hold it: only the ledger changes.
            locked.save()?;
            drop(locked);
            self.record(now_ms, record("released"));
            return Ok(None);
        }
        // Record the intent first: if the daemon dies mid-way, start-up closes it (never re-opens).
        locked.save()?;
        self.close(now_ms, &mut locked, &grant, record("revoked"))?;
        drop(locked);
        Ok(Some(grant.rule))
    }

    /// Closes `grant`'s rule and drops it from the ledger once the back end confirms it is gone;
    /// audits `done` on success and `close-failed` (keeping the entry for a retry) on failure.
    fn close(
        &self,
        now_ms: u64,
        locked: &mut Locked,
        grant: &Grant,
        done: FirewallRecord,
    ) -> Result<(), FirewallError> {
        match self.backend.close(&grant.id, &grant.rule) {
            Ok(()) => {
                locked.ledger.remove(&grant.id);
                locked.save()?;
                self.record(now_ms, done);
                Ok(())
            }
            Err(e) => {
                let mut rec = FirewallRecord::new("close-failed", done.by).grant(grant);
                rec.detail = Some(e.to_string());
                self.record(now_ms, rec);
                Err(self.backend_error(e))
            }
        }
    }

    /// The record for closing `grant` because nobody holds it any more: `expired`, or `undone`
    /// for an opening the back end failed to make.
    fn ended(grant: &Grant, by: &'static str) -> FirewallRecord {
        let action = if grant.uncertain { "undone" } else { "expired" };
        FirewallRecord::new(action, by).grant(grant)
    }

    /// Live grants: all of them (`holder` = `None`, for operators) or those the client whose
    /// request `holder` sealed holds.
    pub fn list(&self, now_ms: u64, holder: Option<&PublicKey>) -> Result<Vec<GrantView>, FirewallError> {
        let locked = self.lock(now_ms)?;
        let key = match holder {
            Some(key) => match self.enrolled(key)? {
                Some(who) => Some(who.key),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        let views = locked
            .ledger
            .grants
            .iter()
            .filter_map(|g| {
                let holders: Vec<Holder> = g
                    .holders
                    .iter()
                    .filter(|h| h.expires_ms > now_ms && key.is_none_or(|k| h.key == k))
                    .cloned()
                    .collect();
                let expires_ms = holders.iter().map(|h| h.expires_ms).max()?;
                Some(GrantView {
                    id: g.id.clone(),
                    rule: g.rule,
                    expires_ms,
                    holders,
                    uncertain: false,
                })
            })
            .collect();
        Ok(views)
    }

    /// Grants nobody holds any more whose rule is still to be closed: the reaper's next round,
    /// or ones whose closing failed and is being retried (uncertain ones the back end failed to
    /// make). For operators.
    pub fn closing(&self, now_ms: u64) -> Result<Vec<GrantView>, FirewallError> {
        let locked = self.lock(now_ms)?;
        Ok(locked
            .ledger
            .grants
            .iter()
            .filter(|g| !g.is_live(now_ms))
            .map(|g| GrantView {
                id: g.id.clone(),
                rule: g.rule,
                expires_ms: g.expires_ms(),
                holders: g.holders.clone(),
                uncertain: g.uncertain,
            })
            .collect())
    }

    /// Drops expired holds and closes every rule no one holds any more. Returns how many rules
    /// were closed. A rule that fails to close stays in the ledger and is retried next time.
    pub fn reap(&self, now_ms: u64) -> Result<usize, FirewallError> {
        let mut locked = match self.lock(now_ms) {
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
            match self.close(now_ms, &mut locked, &grant, Self::ended(&grant, "reaper")) {
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
