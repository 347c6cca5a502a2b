//! Start-up reconciliation: making the firewall agree with the grants ledger after the daemon
//! was down (a crash, a reboot that lost the nftables rules) or the ledger turned out to be
//! unreadable.

use serde::Serialize;

use super::{Firewall, FirewallError, FirewallRecord};
use crate::ledger::LedgerError;

/// What start-up reconciliation found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Live grants whose rule was present (and re-timed).
    pub kept: usize,
    /// Live grants whose rule was missing and was added again.
    pub reopened: usize,
    /// Grants nobody held any more (expired while the daemon was down, or openings the back
    /// end failed to make), now closed.
    pub expired: usize,
    /// Tagged rules the ledger did not know, now removed.
    pub orphans_removed: usize,
    /// Where an unreadable ledger was moved, if it was.
    pub quarantined: Option<String>,
    /// Problems that left something undone (retried by the reaper or at the next start).
    pub errors: Vec<String>,
}

impl Firewall {
    /// Makes the firewall agree with the ledger, on start (and whenever the ledger turns out to be
    /// unreadable): expired grants are closed, live ones present (added again if missing, re-timed
    /// if present) and tagged rules the ledger does not know removed. Rules without our tag are
    /// never touched.
    pub fn reconcile(&self, now_ms: u64) -> Result<ReconcileReport, FirewallError> {
        let mut report = ReconcileReport::default();
        let mut locked = match self.lock(now_ms) {
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
                self.lock(now_ms)?
            }
            other => other?,
        };
        let owned = self.backend.owned().map_err(|e| self.backend_error(e))?;

        let grants = locked.ledger.grants.clone();
        for grant in &grants {
            let present = owned.iter().any(|o| o.id == grant.id);
            if !grant.is_live(now_ms) {
                match self.close(now_ms, &mut locked, grant, Self::ended(grant, "reconcile")) {
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
