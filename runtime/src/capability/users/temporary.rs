//! Keys that expire. A temporary key is recorded in the grants ledger ([`crate::ledger`]) before
//! its line is written, and its line carries OpenSSH's `expiry-time` option, so sshd refuses it
//! after then even while sesamed is down. The reaper takes the line back at expiry; at start,
//! what expired while the daemon was down is taken back, and a live key whose line was lost is
//! written again. Adding a key again extends it (one entry, one line); each client's hold is
//! its own, and the key goes when the last one ends.
//!
//! Only lines sesamed wrote (those with `expiry-time`) are ever taken back: a key its owner
//! added for good stays, whatever the ledger says.

use std::sync::Arc;

use serde::Serialize;

use super::keys::{self, SshKey, TemporaryEdit};
use super::{UserName, Users, UsersError, home, owner};
use crate::audit::{AuditEvent, AuditLog};
use crate::ledger::{Holder, KeyGrant, KeyId, LedgerFile, Locked};

/// Where temporary keys are recorded and their changes audited, and how long they may last.
#[derive(Debug, Clone)]
pub struct KeyLedger {
    /// The grants ledger.
    pub file: LedgerFile,
    /// The audit log (the daemon's, or a scratch one for a dry run).
    pub audit: Arc<AuditLog>,
    /// `[users] max_ttl_s`: the longest any temporary change may last, whatever a grant says.
    pub max_ttl_s: u64,
}

/// What adding a temporary key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporaryKey {
    /// Its entry in the ledger.
    pub id: KeyId,
    /// When it goes (the latest hold, Unix ms).
    pub expires_ms: u64,
    /// The key was on the account without an expiry: it stays there for good, untouched.
    pub permanent: bool,
}

/// One change to a temporary key, as an audit line (`event: "key"`).
#[derive(Debug, Clone, Serialize)]
pub struct KeyRecord {
    /// `added`, `extended`, `expired`, `restored`, `removed`.
    pub action: &'static str,
    /// The ledger entry.
    pub id: String,
    /// The account.
    pub account: String,
    /// `TYPE BASE64`.
    pub key: String,
    /// What acted: a request id, `reaper`, `reconcile`.
    pub by: String,
    /// The client whose hold it was, when one asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// When it goes, for `added`, `extended` and `restored`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
}

/// What start-up reconciliation did to temporary keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeysReconciled {
    /// Expired while the daemon was down: taken back.
    pub expired: usize,
    /// Live, their line lost: written again.
    pub restored: usize,
    /// Problems left for the reaper to retry.
    pub errors: Vec<String>,
}

impl Users {
    /// Adds `key` to the account `name` until `holder.expires_ms` (extending it when it is
    /// there already): the ledger first, then the line with its `expiry-time`.
    pub fn add_temporary_key(
        &self,
        now_ms: u64,
        name: &UserName,
        key: &SshKey,
        holder: Holder,
    ) -> Result<TemporaryKey, UsersError> {
        let ledger = self.key_ledger()?;
        let account = self.existing(name)?;
        let mut locked = ledger.file.lock()?;
        let bare = key.bare();
        let index = match locked
            .ledger
            .keys
            .iter()
            .position(|k| k.account == name.as_str() && k.key == bare)
        {
            Some(i) => i,
            None => {
                locked.ledger.keys.push(KeyGrant {
                    id: KeyId::random(),
                    account: name.to_string(),
                    key: bare.clone(),
                    created_ms: now_ms,
                    holders: Vec::new(),
                });
                locked.ledger.keys.len() - 1
            }
        };
        let entry = &mut locked.ledger.keys[index];
        let extended = !entry.holders.is_empty();
        match entry.holders.iter_mut().find(|h| h.key == holder.key) {
            Some(h) => {
                h.expires_ms = h.expires_ms.max(holder.expires_ms);
                h.request_id.clone_from(&holder.request_id);
                h.client.clone_from(&holder.client);
            }
            None => entry.holders.push(holder.clone()),
        }
        let (id, until) = (entry.id.clone(), entry.expires_ms());
        // On record before the line is written: a crash now leaves an entry the reaper or the
        // next start settles, never a line nobody will take back.
        locked.save()?;
        let mut permanent = false;
        if let Some(recorder) = &self.dry_run {
            recorder.record(format!(
                "add {} to {}/.ssh/authorized_keys until {}",
                key.summary(),
                account.home.display(),
                crate::format_utc(until)
            ));
        } else {
            home::edit_authorized_keys(
                &account.home,
                owner(&account),
                |text| match keys::with_temporary_key(text, key, until) {
                    TemporaryEdit::Added(t) | TemporaryEdit::Retimed(t) => Some(t),
                    TemporaryEdit::Permanent => {
                        permanent = true;
                        None
                    }
                },
            )?;
        }
        if permanent {
            // Nothing was written: the entry this call made goes again (one another client
            // holds stays, and takes back nothing but a line sesamed wrote).
            if !extended {
                locked.ledger.keys.retain(|k| k.id != id);
                locked.save()?;
            }
            return Ok(TemporaryKey {
                id,
                expires_ms: until,
                permanent,
            });
        }
        drop(locked);
        self.record_key(
            &ledger,
            now_ms,
            KeyRecord {
                action: if extended { "extended" } else { "added" },
                id: id.to_string(),
                account: name.to_string(),
                key: bare,
                by: holder.request_id,
                client: Some(holder.client),
                expires_ms: Some(until),
            },
        );
        Ok(TemporaryKey {
            id,
            expires_ms: until,
            permanent,
        })
    }

    /// Takes back the temporary keys nobody holds any more; how many.
    pub fn reap_keys(&self, now_ms: u64) -> Result<usize, UsersError> {
        let ledger = self.key_ledger()?;
        let mut locked = ledger.file.lock()?;
        let ended: Vec<KeyGrant> = locked
            .ledger
            .keys
            .iter()
            .filter(|k| !k.is_live(now_ms))
            .cloned()
            .collect();
        let mut taken = 0;
        for k in &ended {
            self.take_back(&ledger, &mut locked, now_ms, k, "expired", "reaper")?;
            taken += 1;
        }
        Ok(taken)
    }

    /// Makes the accounts agree with the ledger at start: expired keys taken back, live keys
    /// whose line was lost written again.
    pub fn reconcile_keys(&self, now_ms: u64) -> Result<KeysReconciled, UsersError> {
        let ledger = self.key_ledger()?;
        let mut locked = ledger.file.lock()?;
        let mut report = KeysReconciled::default();
        for k in locked.ledger.keys.clone() {
            if !k.is_live(now_ms) {
                match self.take_back(&ledger, &mut locked, now_ms, &k, "expired", "reconcile") {
                    Ok(()) => report.expired += 1,
                    Err(e) => report.errors.push(format!("{}: {e}", k.id)),
                }
                continue;
            }
            match self.restore(&k) {
                Ok(true) => {
                    report.restored += 1;
                    self.record_key(
                        &ledger,
                        now_ms,
                        KeyRecord {
                            action: "restored",
                            id: k.id.to_string(),
                            account: k.account.clone(),
                            key: k.key.clone(),
                            by: "reconcile".into(),
                            client: None,
                            expires_ms: Some(k.expires_ms()),
                        },
                    );
                }
                Ok(false) => {}
                Err(e) => report.errors.push(format!("{}: {e}", k.id)),
            }
        }
        Ok(report)
    }

    /// Takes back the temporary key `id` now, for every holder (`sesamed grants revoke`); the
    /// entry, or `None` when the ledger has no such key.
    pub fn revoke_temporary_key(&self, now_ms: u64, id: &KeyId) -> Result<Option<KeyGrant>, UsersError> {
        let ledger = self.key_ledger()?;
        let mut locked = ledger.file.lock()?;
        let Some(k) = locked.ledger.keys.iter().find(|k| &k.id == id).cloned() else {
            return Ok(None);
        };
        self.take_back(&ledger, &mut locked, now_ms, &k, "revoked", "operator")?;
        Ok(Some(k))
    }

    /// Forgets the temporary entry of `key` on `name` (the key was removed by hand, through
    /// `key-remove`): it must not come back at the next start.
    pub fn forget_temporary_key(&self, name: &UserName, key: &SshKey) -> Result<(), UsersError> {
        let Ok(ledger) = self.key_ledger() else {
            return Ok(());
        };
        let mut locked = ledger.file.lock()?;
        let bare = key.bare();
        let before = locked.ledger.keys.len();
        locked
            .ledger
            .keys
            .retain(|k| !(k.account == name.as_str() && k.key == bare));
        if locked.ledger.keys.len() != before {
            locked.save()?;
        }
        Ok(())
    }

    /// Removes `k`'s temporary line (if its account and line are still there), then its entry.
    fn take_back(
        &self,
        ledger: &KeyLedger,
        locked: &mut Locked,
        now_ms: u64,
        k: &KeyGrant,
        action: &'static str,
        by: &str,
    ) -> Result<(), UsersError> {
        let key: SshKey = k.key.parse()?;
        let name: UserName = k.account.parse()?;
        match self.account(&name)? {
            Some(account) if self.dry_run.is_none() => {
                home::edit_authorized_keys(&account.home, owner(&account), |text| {
                    keys::without_temporary_key(text, &key)
                })?;
            }
            Some(account) => {
                if let Some(recorder) = &self.dry_run {
                    recorder.record(format!(
                        "remove {} from {}/.ssh/authorized_keys",
                        key.summary(),
                        account.home.display()
                    ));
                }
            }
            // The account is gone, and its keys with it.
            None => {}
        }
        locked.ledger.keys.retain(|e| e.id != k.id);
        locked.save()?;
        self.record_key(
            ledger,
            now_ms,
            KeyRecord {
                action,
                id: k.id.to_string(),
                account: k.account.clone(),
                key: k.key.clone(),
                by: by.to_owned(),
                client: None,
                expires_ms: None,
            },
        );
        Ok(())
    }

    /// Writes `k`'s line again when it is missing; whether it was.
    fn restore(&self, k: &KeyGrant) -> Result<bool, UsersError> {
        let key: SshKey = k.key.parse()?;
        let name: UserName = k.account.parse()?;
        let Some(account) = self.account(&name)? else {
            return Ok(false);
        };
        if self.dry_run.is_some() {
            return Ok(false);
        }
        let until = k.expires_ms();
        Ok(home::edit_authorized_keys(
            &account.home,
            owner(&account),
            |text| {
                if keys::has_temporary_key(text, &key) {
                    return None;
                }
                match keys::with_temporary_key(text, &key, until) {
                    TemporaryEdit::Added(t) | TemporaryEdit::Retimed(t) => Some(t),
                    TemporaryEdit::Permanent => None,
                }
            },
        )?)
    }

    /// The longest a temporary change may last on this host (`[users] max_ttl_s`).
    pub fn max_ttl_s(&self) -> Option<u64> {
        self.ledger.as_ref().map(|l| l.max_ttl_s)
    }

    fn key_ledger(&self) -> Result<KeyLedger, UsersError> {
        self.ledger.clone().ok_or(UsersError::NoLedger)
    }

    fn record_key(&self, ledger: &KeyLedger, now_ms: u64, record: KeyRecord) {
        if let Err(e) = ledger.audit.append(now_ms, &AuditEvent::Key(Box::new(record))) {
            tracing::error!("{e}");
        }
    }
}
