//! Who holds an opening: an enrolled client's key, never its name.
//!
//! A name can be enrolled again under another key, and that client must not inherit what the
//! first one held; a key is the client. So a hold is recorded under the client's current key,
//! looked up in the client registry under the ledger lock (a request sealed with a rekeyed
//! client's previous key, during its grace period, holds under the new one), and the registry
//! commands keep the ledger in step: `sesamed client remove` closes what the client held
//! ([`Firewall::remove_client`]) and `sesamed client rekey` moves its holds to the new key
//! ([`Firewall::rekey_client`]).
//!
//! Both commands change the registry first and the ledger after, under its lock, and an opening
//! reads the registry under the same lock: an opening made before the removal is closed by it,
//! one asked for after it finds the key gone, so none slips between them.

use sesame_proto::PublicKey;

use super::{Firewall, FirewallError, FirewallRecord, GrantId, Rule};
use crate::clients::ClientRegistry;
use crate::ledger::{LedgerError, Locked};

/// The client a key speaks for: its current key and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Enrolled {
    /// The key its holds are recorded under (its current key).
    pub key: PublicKey,
    /// Its enrolled name.
    pub name: String,
}

/// What removing a client did to the openings it held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRelease {
    /// Openings closed: the client was their last holder.
    pub closed: Vec<(GrantId, Rule)>,
    /// Openings others still hold: only the client's hold was dropped.
    pub released: Vec<(GrantId, Rule)>,
    /// Openings whose rule could not be closed now, with why: they stay in the ledger, held by
    /// nobody, and the daemon's reaper retries every second.
    pub failed: Vec<(GrantId, String)>,
}

impl Firewall {
    /// The client `key` speaks for, from the registry as it is now, or `None` when no enrolled
    /// client has that key (current or previous).
    pub(super) fn enrolled(&self, key: &PublicKey) -> Result<Option<Enrolled>, FirewallError> {
        let registry = ClientRegistry::load(self.ledger.clients())?;
        Ok(registry.by_key(key).map(|c| Enrolled {
            key: c.key,
            name: c.name.clone(),
        }))
    }

    /// Takes the ledger lock; audits a migration from an older format when reading made one.
    pub(super) fn lock(&self, now_ms: u64) -> Result<Locked, LedgerError> {
        let locked = self.ledger.lock()?;
        if let Some(m) = &locked.migrated {
            tracing::info!(
                from = m.from_version,
                kept = m.holders_kept,
                dropped = m.holders_dropped.len(),
                "grants ledger migrated: holders are keys now"
            );
            for (id, name) in &m.holders_dropped {
                let mut rec = FirewallRecord::new("released", "migration");
                rec.grant = Some(id.clone());
                rec.client = Some(name.clone());
                rec.detail = Some(format!("{name} is not enrolled any more"));
                self.record(now_ms, rec);
            }
            let mut rec = FirewallRecord::new("ledger-migrated", "migration");
            rec.detail = Some(if m.from_version == 1 {
                format!(
                    "version 1 to {}: {} holders now held by their key, {} dropped (not enrolled)",
                    crate::ledger::LEDGER_VERSION,
                    m.holders_kept,
                    m.holders_dropped.len()
                )
            } else {
                format!(
                    "version {} to {}: room for temporary keys; nothing else changed",
                    m.from_version,
                    crate::ledger::LEDGER_VERSION
                )
            });
            self.record(now_ms, rec);
        }
        Ok(locked)
    }

    /// Drops every hold of client `name` by any of `keys` (its current and previous keys), after
    /// it was removed from the registry, and closes the openings nobody else holds. A rule that
    /// fails to close stays in the ledger, held by nobody, for the reaper to retry.
    pub fn remove_client(
        &self,
        now_ms: u64,
        name: &str,
        keys: &[PublicKey],
    ) -> Result<ClientRelease, FirewallError> {
        let mut locked = self.lock(now_ms)?;
        let mut report = ClientRelease::default();
        let theirs: Vec<GrantId> = locked
            .ledger
            .grants
            .iter()
            .filter(|g| g.holders.iter().any(|h| keys.contains(&h.key)))
            .map(|g| g.id.clone())
            .collect();
        for id in theirs {
            let Some(grant) = locked.ledger.get_mut(&id) else {
                continue;
            };
            let Some(key) = grant.holders.iter().map(|h| h.key).find(|k| keys.contains(k)) else {
                continue;
            };
            grant.holders.retain(|h| !keys.contains(&h.key));
            let grant = grant.clone();
            let rec = |action| {
                let mut rec = FirewallRecord::new(action, "operator")
                    .grant(&grant)
                    .holder(name, &key);
                rec.detail = Some(format!("client {name} removed"));
                rec
            };
            // Record the intent first: a crash from here on closes it at the next start.
            locked.save()?;
            if grant.is_live(now_ms) {
                self.record(now_ms, rec("released"));
                report.released.push((grant.id.clone(), grant.rule));
                continue;
            }
            match self.close(now_ms, &mut locked, &grant, rec("revoked")) {
                Ok(()) => report.closed.push((grant.id.clone(), grant.rule)),
                Err(e) => report.failed.push((grant.id.clone(), e.to_string())),
            }
        }
        Ok(report)
    }

    /// Moves every hold of client `name` by one of the keys `from` (its replaced keys) to its
    /// new key `to`, after `sesamed client rekey`: it is the same client. Where it already
    /// holds the same opening under `to`, the later end is kept. Returns the grants changed.
    pub fn rekey_client(
        &self,
        now_ms: u64,
        name: &str,
        from: &[PublicKey],
        to: &PublicKey,
    ) -> Result<Vec<GrantId>, FirewallError> {
        let mut locked = self.lock(now_ms)?;
        let mut moved = Vec::new();
        for grant in &mut locked.ledger.grants {
            let Some(old) = grant.holders.iter().position(|h| from.contains(&h.key)) else {
                continue;
            };
            let mut hold = grant.holders.remove(old);
            let previous = hold.key;
            // Any further hold under a replaced key (there is one per key) merges in as well.
            while let Some(more) = grant.holders.iter().position(|h| from.contains(&h.key)) {
                let extra = grant.holders.remove(more);
                hold.expires_ms = hold.expires_ms.max(extra.expires_ms);
            }
            hold.key = *to;
            hold.client = name.to_owned();
            match grant.holders.iter_mut().find(|h| h.key == *to) {
                Some(h) if h.expires_ms >= hold.expires_ms => {}
                Some(h) => *h = hold,
                None => grant.holders.push(hold),
            }
            moved.push((grant.clone(), previous));
        }
        if moved.is_empty() {
            return Ok(Vec::new());
        }
        locked.save()?;
        drop(locked);
        for (grant, previous) in &moved {
            let mut rec = FirewallRecord::new("rekeyed", "operator")
                .grant(grant)
                .holder(name, to);
            rec.detail = Some(format!("held by {previous} until the rekey"));
            self.record(now_ms, rec);
        }
        Ok(moved.into_iter().map(|(g, _)| g.id).collect())
    }
}
