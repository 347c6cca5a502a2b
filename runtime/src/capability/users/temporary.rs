//! Changes to accounts that expire: an SSH key, membership of a group (temporary `sudo` through a
//! group), or the account itself (locked at the end, its files kept). Each is recorded in the grants ledger ([`crate::ledger`]) before it is
//! made. The reaper takes it back at expiry; at start, what expired while the daemon was down
//! is taken back, and a live change that was lost is made again. Making it again extends it
//! (one entry); each client's hold is its own, and the change goes when the last one ends.
//!
//! Where the system can enforce the expiry without sesamed, it does: a temporary key's line
//! carries OpenSSH's `expiry-time` option, so sshd refuses it after then even while sesamed is
//! down; a temporary account gets shadow's expiry date, the day after its end. Group memberships
//! have no such mechanism: they end when sesamed takes them back.
//!
//! Only what sesamed added is ever taken back: a key line without `expiry-time`, or a
//! membership the account had before (no ledger entry), stays whatever happens.

use std::sync::Arc;

use serde::Serialize;

use super::keys::{self, SshKey, TemporaryEdit};
use super::{GroupName, UserName, Users, UsersError, home, owner};
use crate::audit::{AuditEvent, AuditLog};
use crate::ledger::{Holder, LedgerFile, Locked, UserChange, UserGrant, UserGrantId};

/// Where temporary changes are recorded and audited, and how long they may last.
#[derive(Debug, Clone)]
pub struct KeyLedger {
    /// The grants ledger.
    pub file: LedgerFile,
    /// The audit log (the daemon's, or a scratch one for a dry run).
    pub audit: Arc<AuditLog>,
    /// `[users]`: the longest each kind of temporary change may last, whatever a grant says.
    pub ceilings: super::UsersConfig,
}

/// A temporary change asked for.
#[derive(Debug, Clone, Copy)]
pub enum Temporary<'a> {
    /// An SSH key on the account.
    Key(&'a SshKey),
    /// Membership of a group.
    Group(&'a GroupName),
}

impl Temporary<'_> {
    fn change(&self) -> UserChange {
        match self {
            Temporary::Key(k) => UserChange::Key(k.bare()),
            Temporary::Group(g) => UserChange::Group(g.to_string()),
        }
    }
}

/// What making a temporary change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporaryGrant {
    /// Its entry in the ledger.
    pub id: UserGrantId,
    /// When it is taken back (the latest hold, Unix ms).
    pub expires_ms: u64,
    /// The account had it already, for good: it stays, untouched, and nothing was recorded.
    pub permanent: bool,
}

/// One step of a temporary change, as an audit line (`event: "account-grant"`).
#[derive(Debug, Clone, Serialize)]
pub struct AccountGrantRecord {
    /// `added`, `extended`, `released` (a client gave its hold up early), `expired`,
    /// `restored`, `revoked`.
    pub action: &'static str,
    /// The ledger entry.
    pub id: String,
    /// The account.
    pub account: String,
    /// What: `{"key": "TYPE BASE64"}` or `{"group": NAME}`.
    pub change: UserChange,
    /// What acted: a request id (for `released`: the one that made the hold), `reaper`,
    /// `reconcile`, `operator`, or the client that took its own change back.
    pub by: String,
    /// The client whose hold it was, when one asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// When it ends, for `added`, `extended` and `restored`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
}

/// What start-up reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reconciled {
    /// Expired while the daemon was down: taken back.
    pub expired: usize,
    /// Live, but lost (a key line removed, a membership dropped): made again.
    pub restored: usize,
    /// Problems left for the reaper to retry.
    pub errors: Vec<String>,
}

impl Users {
    /// Makes `change` on the account `name` until `holder.expires_ms` (extending it when it
    /// was made already): the ledger first, then the change.
    pub fn add_temporary(
        &self,
        now_ms: u64,
        name: &UserName,
        change: Temporary<'_>,
        holder: Holder,
    ) -> Result<TemporaryGrant, UsersError> {
        let ledger = self.key_ledger()?;
        let account = self.existing(name)?;
        if let Temporary::Group(g) = change
            && self.group_id(g)?.is_none()
        {
            return Err(UsersError::NoSuchGroup(g.to_string()));
        }
        let mut locked = ledger.file.lock()?;
        let what = change.change();
        let known = locked
            .ledger
            .users
            .iter()
            .position(|u| u.account == name.as_str() && u.change == what);
        // A membership the account has with no entry of ours is its own: not ours to time.
        if known.is_none()
            && let Temporary::Group(g) = change
            && account.groups.iter().any(|m| m.name == g.as_str())
        {
            return Ok(TemporaryGrant {
                id: UserGrantId::random(&what),
                expires_ms: 0,
                permanent: true,
            });
        }
        let index = known.unwrap_or_else(|| {
            locked.ledger.users.push(UserGrant {
                id: UserGrantId::random(&what),
                account: name.to_string(),
                change: what.clone(),
                created_ms: now_ms,
                holders: Vec::new(),
            });
            locked.ledger.users.len() - 1
        });
        let entry = &mut locked.ledger.users[index];
        let extended = known.is_some();
        match entry.holders.iter_mut().find(|h| h.key == holder.key) {
            Some(h) => {
                h.expires_ms = h.expires_ms.max(holder.expires_ms);
                h.request_id.clone_from(&holder.request_id);
                h.client.clone_from(&holder.client);
            }
            None => entry.holders.push(holder.clone()),
        }
        let (id, until) = (entry.id.clone(), entry.expires_ms());
        // On record before the change is made: a crash now leaves an entry the reaper or the
        // next start settles, never a change nobody will take back.
        locked.save()?;
        let made = match change {
            Temporary::Key(key) => self.write_key(&account, key, until),
            Temporary::Group(group) => self.join(name, group).map(|()| true),
        };
        let permanent = match made {
            Ok(written) => !written,
            Err(e) => {
                // Nothing changed: the entry this call made goes again (a made one stays:
                // the change it records is still there, held by others).
                if !extended {
                    locked.ledger.users.retain(|u| u.id != id);
                    locked.save()?;
                }
                return Err(e);
            }
        };
        if permanent {
            // The key is on the account for good: nothing was written, and nothing recorded.
            if !extended {
                locked.ledger.users.retain(|u| u.id != id);
                locked.save()?;
            }
            return Ok(TemporaryGrant {
                id,
                expires_ms: until,
                permanent,
            });
        }
        drop(locked);
        record(
            &ledger,
            now_ms,
            AccountGrantRecord {
                action: if extended { "extended" } else { "added" },
                id: id.to_string(),
                account: name.to_string(),
                change: what,
                by: holder.request_id,
                client: Some(holder.client),
                expires_ms: Some(until),
            },
        );
        Ok(TemporaryGrant {
            id,
            expires_ms: until,
            permanent,
        })
    }

    /// Creates the account `name` for a while: on record first, then `useradd --expiredate` the
    /// day after `holder.expires_ms` (the shadow expiry: logins stop by then even while sesamed is
    /// down, to the day), and sesamed locks it at the exact time. Asking again for an account
    /// created this way extends it (a new expiry date); an account that exists otherwise is
    /// refused, as by [`Users::create`].
    pub fn create_temporary(
        &self,
        now_ms: u64,
        name: &UserName,
        shell: Option<&super::Shell>,
        comment: Option<&super::Comment>,
        groups: &[GroupName],
        holder: Holder,
    ) -> Result<TemporaryGrant, UsersError> {
        let ledger = self.key_ledger()?;
        let mut locked = ledger.file.lock()?;
        let known = locked
            .ledger
            .users
            .iter()
            .position(|u| u.account == name.as_str() && u.change == UserChange::Account);
        if known.is_none() && self.account(name)?.is_some() {
            return Err(UsersError::Exists(name.to_string()));
        }
        let index = known.unwrap_or_else(|| {
            locked.ledger.users.push(UserGrant {
                id: UserGrantId::random(&UserChange::Account),
                account: name.to_string(),
                change: UserChange::Account,
                created_ms: now_ms,
                holders: Vec::new(),
            });
            locked.ledger.users.len() - 1
        });
        let entry = &mut locked.ledger.users[index];
        match entry.holders.iter_mut().find(|h| h.key == holder.key) {
            Some(h) => {
                h.expires_ms = h.expires_ms.max(holder.expires_ms);
                h.request_id.clone_from(&holder.request_id);
            }
            None => entry.holders.push(holder.clone()),
        }
        let (id, until) = (entry.id.clone(), entry.expires_ms());
        locked.save()?;
        let day = expiry_day(until);
        let made = if known.is_some() {
            self.usermod
                .run(&["--expiredate", &day, "--", name.as_str()])
                .map(drop)
                .map_err(UsersError::from)
        } else {
            self.create_expiring(name, shell, comment, groups, Some(&day))
        };
        if let Err(e) = made {
            if known.is_none() {
                locked.ledger.users.retain(|u| u.id != id);
                locked.save()?;
            }
            return Err(e);
        }
        drop(locked);
        record(
            &ledger,
            now_ms,
            AccountGrantRecord {
                action: if known.is_some() { "extended" } else { "added" },
                id: id.to_string(),
                account: name.to_string(),
                change: UserChange::Account,
                by: holder.request_id,
                client: Some(holder.client),
                expires_ms: Some(until),
            },
        );
        Ok(TemporaryGrant {
            id,
            expires_ms: until,
            permanent: false,
        })
    }

    /// Takes back the temporary changes nobody holds any more; how many were. One that fails is
    /// logged and left for the next call; the others are taken back all the same.
    pub fn reap_temporary(&self, now_ms: u64) -> Result<usize, UsersError> {
        let ledger = self.key_ledger()?;
        let mut locked = ledger.file.lock()?;
        let ended: Vec<UserGrant> = locked
            .ledger
            .users
            .iter()
            .filter(|u| !u.is_live(now_ms))
            .cloned()
            .collect();
        let mut taken = 0;
        for u in &ended {
            // One that cannot be taken back (its home unsafe, a tool failing) must not hold up
            // the others: it is logged and retried at the next call.
            match self.take_back(&ledger, &mut locked, now_ms, u, "expired", "reaper") {
                Ok(()) => taken += 1,
                Err(e) => {
                    tracing::error!(id = %u.id, account = %u.account, "taking back a temporary change: {e} (retrying)")
                }
            }
        }
        Ok(taken)
    }

    /// Makes the accounts agree with the ledger at start: expired changes taken back, live
    /// changes that were lost made again.
    pub fn reconcile_temporary(&self, now_ms: u64) -> Result<Reconciled, UsersError> {
        let ledger = self.key_ledger()?;
        let mut locked = ledger.file.lock()?;
        let mut report = Reconciled::default();
        for u in locked.ledger.users.clone() {
            if !u.is_live(now_ms) {
                match self.take_back(&ledger, &mut locked, now_ms, &u, "expired", "reconcile") {
                    Ok(()) => report.expired += 1,
                    Err(e) => report.errors.push(format!("{}: {e}", u.id)),
                }
                continue;
            }
            match self.restore(&u) {
                Ok(true) => {
                    report.restored += 1;
                    record(
                        &ledger,
                        now_ms,
                        AccountGrantRecord {
                            action: "restored",
                            id: u.id.to_string(),
                            account: u.account.clone(),
                            change: u.change.clone(),
                            by: "reconcile".into(),
                            client: None,
                            expires_ms: Some(u.expires_ms()),
                        },
                    );
                }
                Ok(false) => {}
                Err(e) => report.errors.push(format!("{}: {e}", u.id)),
            }
        }
        Ok(report)
    }

    /// Takes the temporary change `id` back now, for every holder (`sesamed grants revoke`);
    /// the entry, or `None` when the ledger has no such change.
    pub fn revoke_temporary(&self, now_ms: u64, id: &UserGrantId) -> Result<Option<UserGrant>, UsersError> {
        let ledger = self.key_ledger()?;
        let mut locked = ledger.file.lock()?;
        let Some(u) = locked.ledger.users.iter().find(|u| &u.id == id).cloned() else {
            return Ok(None);
        };
        self.take_back(&ledger, &mut locked, now_ms, &u, "revoked", "operator")?;
        Ok(Some(u))
    }

    /// The live temporary changes the client with `key` holds, each until its own hold ends.
    pub fn temporary_holds(
        &self,
        key: &sesame_proto::PublicKey,
        now_ms: u64,
    ) -> Result<Vec<(UserGrant, u64)>, UsersError> {
        let Ok(ledger) = self.key_ledger() else {
            return Ok(Vec::new());
        };
        let locked = ledger.file.lock()?;
        Ok(locked
            .ledger
            .users
            .iter()
            .filter_map(|u| {
                let mine = u
                    .holders
                    .iter()
                    .find(|h| &h.key == key && h.expires_ms > now_ms)?;
                Some((u.clone(), mine.expires_ms))
            })
            .collect())
    }

    /// Releases the live hold the client with `key` has on temporary change `id`, and takes the
    /// change back now when nobody else holds it (the release is on record first, so a failure
    /// leaves it to the reaper). `false` when the client holds no such live change.
    pub fn release_temporary(
        &self,
        now_ms: u64,
        key: &sesame_proto::PublicKey,
        id: &UserGrantId,
    ) -> Result<bool, UsersError> {
        let ledger = self.key_ledger()?;
        let mut locked = ledger.file.lock()?;
        let Some(entry) = locked.ledger.users.iter_mut().find(|u| &u.id == id) else {
            return Ok(false);
        };
        let Some(pos) = entry
            .holders
            .iter()
            .position(|h| &h.key == key && h.expires_ms > now_ms)
        else {
            return Ok(false);
        };
        let hold = entry.holders.remove(pos);
        let entry = entry.clone();
        locked.save()?;
        record(
            &ledger,
            now_ms,
            AccountGrantRecord {
                action: "released",
                id: entry.id.to_string(),
                account: entry.account.clone(),
                change: entry.change.clone(),
                by: hold.request_id.clone(),
                client: Some(hold.client.clone()),
                expires_ms: None,
            },
        );
        if !entry.is_live(now_ms) {
            self.take_back(&ledger, &mut locked, now_ms, &entry, "revoked", &hold.client)?;
        }
        Ok(true)
    }

    /// Forgets the temporary entry of `change` on `name`: it was undone by hand (`key-remove`,
    /// `group-remove`) and must not come back at the next start.
    pub fn forget_temporary(&self, name: &UserName, change: Temporary<'_>) -> Result<(), UsersError> {
        let Ok(ledger) = self.key_ledger() else {
            return Ok(());
        };
        let mut locked = ledger.file.lock()?;
        let what = change.change();
        let before = locked.ledger.users.len();
        locked
            .ledger
            .users
            .retain(|u| !(u.account == name.as_str() && u.change == what));
        if locked.ledger.users.len() != before {
            locked.save()?;
        }
        Ok(())
    }

    /// Drops every hold of a removed client (by any of `keys`, its current and previous ones)
    /// and takes back at once what nobody else holds: a removed client keeps no key and no
    /// membership until its time. Returns the entries taken back and those others still hold.
    pub fn remove_client(
        &self,
        now_ms: u64,
        keys: &[sesame_proto::PublicKey],
    ) -> Result<(Vec<UserGrant>, Vec<UserGrant>), UsersError> {
        let ledger = self.key_ledger()?;
        let mut locked = ledger.file.lock()?;
        let (mut taken, mut kept) = (Vec::new(), Vec::new());
        let theirs: Vec<UserGrantId> = locked
            .ledger
            .users
            .iter()
            .filter(|u| u.holders.iter().any(|h| keys.contains(&h.key)))
            .map(|u| u.id.clone())
            .collect();
        for id in theirs {
            let Some(entry) = locked.ledger.users.iter_mut().find(|u| u.id == id) else {
                continue;
            };
            entry.holders.retain(|h| !keys.contains(&h.key));
            let entry = entry.clone();
            // The intent on record first: a crash from here on takes it back at the next start.
            locked.save()?;
            if entry.is_live(now_ms) {
                kept.push(entry);
            } else {
                self.take_back(&ledger, &mut locked, now_ms, &entry, "revoked", "operator")?;
                taken.push(entry);
            }
        }
        Ok((taken, kept))
    }

    /// Moves every hold by one of the keys `from` (a rekeyed client's replaced keys) to its new
    /// key `to`: it is the same client. Where it already holds the change under `to`, the later
    /// end is kept. Returns the entries changed.
    pub fn rekey_client(
        &self,
        name: &str,
        from: &[sesame_proto::PublicKey],
        to: &sesame_proto::PublicKey,
    ) -> Result<Vec<UserGrantId>, UsersError> {
        let ledger = self.key_ledger()?;
        let mut locked = ledger.file.lock()?;
        let mut moved = Vec::new();
        for entry in &mut locked.ledger.users {
            let mut hold: Option<Holder> = None;
            while let Some(i) = entry.holders.iter().position(|h| from.contains(&h.key)) {
                let old = entry.holders.remove(i);
                hold = Some(match hold {
                    Some(h) if h.expires_ms >= old.expires_ms => h,
                    _ => old,
                });
            }
            let Some(mut hold) = hold else {
                continue;
            };
            hold.key = *to;
            hold.client = name.to_owned();
            match entry.holders.iter_mut().find(|h| h.key == *to) {
                Some(h) if h.expires_ms >= hold.expires_ms => {}
                Some(h) => *h = hold,
                None => entry.holders.push(hold),
            }
            moved.push(entry.id.clone());
        }
        if !moved.is_empty() {
            locked.save()?;
        }
        Ok(moved)
    }

    /// The longest a temporary change of `kind` may last on this host (`[users] max_ttl_s`, or
    /// the kind's own ceiling when lower); `None` without a ledger (none may be made).
    pub fn max_ttl_s(&self, kind: super::TemporaryKind) -> Option<u64> {
        self.ledger.as_ref().map(|l| l.ceilings.ceiling(kind))
    }

    /// Undoes `u` (if its account is still there), then drops its entry.
    fn take_back(
        &self,
        ledger: &KeyLedger,
        locked: &mut Locked,
        now_ms: u64,
        u: &UserGrant,
        action: &'static str,
        by: &str,
    ) -> Result<(), UsersError> {
        let name: UserName = u.account.parse()?;
        // An account that is gone took its keys and memberships with it.
        if let Some(account) = self.account(&name)? {
            match &u.change {
                UserChange::Key(k) => {
                    let key: SshKey = k.parse()?;
                    if let Some(recorder) = &self.dry_run {
                        recorder.record(format!(
                            "remove {} from {}/.ssh/authorized_keys",
                            key.summary(),
                            account.home.display()
                        ));
                    } else {
                        home::edit_authorized_keys(&account.home, owner(&account), |text| {
                            keys::without_temporary_key(text, &key)
                        })?;
                    }
                }
                UserChange::Group(g) => {
                    let group: GroupName = g.parse()?;
                    match self.remove_from_group(&name, &group) {
                        Ok(()) | Err(UsersError::NoSuchGroup(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                // Locked and expired, as `user-lock` does: no login of any kind, its files kept
                // for whoever removes it.
                UserChange::Account => self.lock(&name)?,
            }
        }
        locked.ledger.users.retain(|e| e.id != u.id);
        locked.save()?;
        record(
            ledger,
            now_ms,
            AccountGrantRecord {
                action,
                id: u.id.to_string(),
                account: u.account.clone(),
                change: u.change.clone(),
                by: by.to_owned(),
                client: None,
                expires_ms: None,
            },
        );
        Ok(())
    }

    /// Makes `u` again when it is missing; whether it was.
    fn restore(&self, u: &UserGrant) -> Result<bool, UsersError> {
        let name: UserName = u.account.parse()?;
        let Some(account) = self.account(&name)? else {
            return Ok(false);
        };
        if self.dry_run.is_some() {
            return Ok(false);
        }
        match &u.change {
            UserChange::Key(k) => {
                let key: SshKey = k.parse()?;
                let until = u.expires_ms();
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
            UserChange::Group(g) => {
                if account.groups.iter().any(|m| &m.name == g) {
                    return Ok(false);
                }
                let group: GroupName = g.parse()?;
                self.join(&name, &group)?;
                Ok(true)
            }
            // An account is never made again: a new one would be another uid.
            UserChange::Account => Ok(false),
        }
    }

    /// Writes `key` expiring at `until`; `false` when the account has it for good.
    fn write_key(&self, account: &super::Account, key: &SshKey, until: u64) -> Result<bool, UsersError> {
        if let Some(recorder) = &self.dry_run {
            recorder.record(format!(
                "add {} to {}/.ssh/authorized_keys until {}",
                key.summary(),
                account.home.display(),
                crate::format_utc(until)
            ));
            return Ok(true);
        }
        let mut permanent = false;
        home::edit_authorized_keys(
            &account.home,
            owner(account),
            |text| match keys::with_temporary_key(text, key, until) {
                TemporaryEdit::Added(t) | TemporaryEdit::Retimed(t) => Some(t),
                TemporaryEdit::Permanent => {
                    permanent = true;
                    None
                }
            },
        )?;
        Ok(!permanent)
    }

    /// Adds the account to `group` unless it is a member already.
    fn join(&self, name: &UserName, group: &GroupName) -> Result<(), UsersError> {
        let member = self
            .existing(name)?
            .groups
            .iter()
            .any(|m| m.name == group.as_str());
        if member {
            return Ok(());
        }
        self.add_to_group(name, group)
    }

    fn key_ledger(&self) -> Result<KeyLedger, UsersError> {
        self.ledger.clone().ok_or(UsersError::NoLedger)
    }
}

/// The shadow expiry date (`YYYY-MM-DD`, UTC) for a change ending at `until_ms`: the day after
/// it, so that shadow's day-granular expiry never cuts the time short.
fn expiry_day(until_ms: u64) -> String {
    crate::format_utc(until_ms.saturating_add(86_400_000))
        .chars()
        .take(10)
        .collect()
}

fn record(ledger: &KeyLedger, now_ms: u64, record: AccountGrantRecord) {
    if let Err(e) = ledger
        .audit
        .append(now_ms, &AuditEvent::AccountGrant(Box::new(record)))
    {
        tracing::error!("{e}");
    }
}

/// What a temporary change is, for people: `key ssh-ed25519 …6ELIpKiD6cti on dave`,
/// `dave in group sudo`, `account cleo`.
pub fn describe(u: &UserGrant) -> String {
    match &u.change {
        UserChange::Key(key) => format!(
            "key {} on {}",
            key.parse::<SshKey>()
                .map_or_else(|_| key.clone(), |key| key.summary()),
            u.account
        ),
        UserChange::Group(g) => format!("{} in group {g}", u.account),
        UserChange::Account => format!("account {}", u.account),
    }
}
