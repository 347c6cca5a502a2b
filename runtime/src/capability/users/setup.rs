//! How the daemon sets the users capability up: its part of a grant, its (empty) section of
//! `sesamed.toml`, and shadow's tools live, as a dry run and in `sesamed configtest`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use super::{KeyLedger, Users, UsersError};
use crate::capability::{Capability, Check, DryRun, Held, HeldKind, ReleaseError, Start};
use crate::ledger::LedgerFile;
use crate::ledger::{UserChange, UserGrantId};

/// `grant.users`: the accounts a command may manage. The host decides what these reach
/// (`crate::capability::users::reach`): system accounts and groups only through the `system_*` fields, and
/// an existing account only when it is a member of one of the groups the grant reaches.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersGrant {
    /// Account names that may be created, changed or removed (`"*"`: any ordinary account).
    pub names: Vec<String>,
    /// Groups accounts may be added to or removed from, and whose members may be managed
    /// (`"*"`: any ordinary group).
    pub groups: Vec<String>,
    /// `"self"`: self service, the calling client's own account (the account named like the
    /// client, when that is not a system account), whatever `names` and `groups` say.
    #[serde(rename = "self")]
    pub self_service: bool,
    /// System accounts (root, ids outside `UID_MIN..=UID_MAX`, non-login shells, reserved
    /// names) that may be managed, each by its exact name: `"*"` matches none.
    pub system_accounts: Vec<String>,
    /// System groups (gid 0, gids outside `GID_MIN..=GID_MAX`, reserved names) that may be
    /// used, and whose members may be managed, each by its exact name.
    pub system_groups: Vec<String>,
    /// The longest any temporary change (a key, a group membership, an account) may last,
    /// seconds; `None`: up to the host's ceilings (`[users] max_ttl_s` and the per-kind ones),
    /// which no grant can raise.
    pub max_ttl_s: Option<u64>,
    /// The longest a temporary SSH key may last (`add-temporary-key`), under `max_ttl_s`.
    pub max_key_ttl_s: Option<u64>,
    /// The longest a temporary group membership may last (`add-temporary-membership`).
    pub max_group_ttl_s: Option<u64>,
    /// The longest a temporary account may last (`create-temporary`).
    pub max_account_ttl_s: Option<u64>,
    /// Groups an account may join only for a while (`sudo`, `adm`): a permanent membership of
    /// one of these is refused. Each must also be reachable through `groups` or `system_groups`.
    pub temporary_groups: Vec<String>,
}

/// The host's ceiling on temporary changes when `sesamed.toml` does not set one: a week.
pub const DEFAULT_MAX_TTL_S: u64 = 7 * 24 * 3600;

/// `[users]` (the tools are shadow's, at their standard paths, and the ids ordinary accounts
/// take come from `/etc/login.defs`); any other key is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersConfig {
    /// The longest any temporary change may last, seconds, whatever a grant says.
    pub max_ttl_s: u64,
    /// The longest a temporary SSH key may last, when lower than `max_ttl_s`.
    pub max_key_ttl_s: Option<u64>,
    /// The longest a temporary group membership may last, when lower than `max_ttl_s`.
    pub max_group_ttl_s: Option<u64>,
    /// The longest a temporary account may last, when lower than `max_ttl_s`.
    pub max_account_ttl_s: Option<u64>,
}

impl Default for UsersConfig {
    fn default() -> Self {
        Self {
            max_ttl_s: DEFAULT_MAX_TTL_S,
            max_key_ttl_s: None,
            max_group_ttl_s: None,
            max_account_ttl_s: None,
        }
    }
}

/// The kinds of temporary change, each with its own bound in `[users]` and in a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemporaryKind {
    /// An SSH key (`max_key_ttl_s`).
    Key,
    /// A group membership (`max_group_ttl_s`).
    Group,
    /// An account (`max_account_ttl_s`).
    Account,
}

impl TemporaryKind {
    /// The one of `key`, `group` and `account` (the bounds per kind) that is this kind's.
    fn pick<T>(self, key: T, group: T, account: T) -> T {
        match self {
            TemporaryKind::Key => key,
            TemporaryKind::Group => group,
            TemporaryKind::Account => account,
        }
    }
}

impl UsersConfig {
    /// The host's ceiling for `kind`: `max_ttl_s`, or the kind's own when lower.
    pub fn ceiling(&self, kind: TemporaryKind) -> u64 {
        let own = kind.pick(self.max_key_ttl_s, self.max_group_ttl_s, self.max_account_ttl_s);
        own.map_or(self.max_ttl_s, |k| k.min(self.max_ttl_s))
    }
}

impl UsersGrant {
    /// The grant's bound for `kind` (the lower of `max_ttl_s` and the kind's own), if any.
    pub fn ttl_bound(&self, kind: TemporaryKind) -> Option<u64> {
        let own = kind.pick(self.max_key_ttl_s, self.max_group_ttl_s, self.max_account_ttl_s);
        match (self.max_ttl_s, own) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Capability for Users {
    type Grant = UsersGrant;
    type Config = UsersConfig;
    type Error = UsersError;

    fn configure(config: UsersConfig, _resolve: &dyn Fn(PathBuf) -> PathBuf) -> Result<UsersConfig, String> {
        for (key, value) in [
            ("max_ttl_s", Some(config.max_ttl_s)),
            ("max_key_ttl_s", config.max_key_ttl_s),
            ("max_group_ttl_s", config.max_group_ttl_s),
            ("max_account_ttl_s", config.max_account_ttl_s),
        ] {
            if value == Some(0) {
                return Err(format!("{key}: must be at least 1 second"));
            }
        }
        Ok(config)
    }

    /// The tools, and the temporary changes the grants ledger holds made to agree with the
    /// accounts: what expired while the daemon was down is taken back, what was lost made again.
    fn start(cx: &Start<'_>) -> Result<Self, UsersError> {
        let users = Users::new()?.with_ledger(KeyLedger {
            file: LedgerFile::new(&cx.config.state_dir, &cx.config.clients_file),
            audit: Arc::clone(cx.audit),
            ceilings: cx.config.capabilities.users,
        });
        let report = users.reconcile_temporary(cx.now_ms)?;
        if report.expired + report.restored > 0 || !report.errors.is_empty() {
            tracing::info!(expired = report.expired, restored = report.restored, errors = ?report.errors, "temporary account changes reconciled");
        }
        Ok(users)
    }

    fn dry_run(cx: &DryRun<'_>) -> Result<Self, UsersError> {
        Ok(Users::dry_run(cx.recorder.clone())?.with_ledger(KeyLedger {
            file: LedgerFile::new(cx.scratch, &cx.config.clients_file),
            audit: Arc::clone(cx.audit),
            ceilings: cx.config.capabilities.users,
        }))
    }

    /// Takes back the temporary keys and group memberships nobody holds any more.
    fn reap(&self, now_ms: u64) {
        match self.reap_temporary(now_ms) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                taken_back = n,
                "expired temporary keys and group memberships taken back"
            ),
            Err(e) => tracing::error!("taking back expired temporary account changes: {e} (retrying)"),
        }
    }

    /// The client's live temporary keys, memberships and accounts (`key-…`, `grp-…`, `acc-…`),
    /// each until its own hold ends.
    fn holds(&self, key: &sesame_proto::PublicKey, now_ms: u64) -> Result<Vec<Held>, String> {
        let holds = self.temporary_holds(key, now_ms).map_err(|e| e.to_string())?;
        Ok(holds
            .into_iter()
            .map(|(u, expires_ms)| Held {
                id: u.id.to_string(),
                kind: match u.change {
                    UserChange::Key(_) => HeldKind::Key,
                    UserChange::Group(_) => HeldKind::Membership,
                    UserChange::Account => HeldKind::Account,
                },
                what: super::describe(&u),
                expires_ms,
            })
            .collect())
    }

    /// Releases the client's hold on temporary change `id` (`key-…`, `grp-…`, `acc-…`); it is
    /// taken back when nobody else holds it.
    fn release(
        &self,
        key: &sesame_proto::PublicKey,
        id: &str,
        now_ms: u64,
    ) -> Option<Result<(), ReleaseError>> {
        if !["key-", "grp-", "acc-"].iter().any(|p| id.starts_with(p)) {
            return None;
        }
        let Ok(grant) = id.parse::<UserGrantId>() else {
            return Some(Err(ReleaseError::NotHeld(id.to_owned())));
        };
        Some(match self.release_temporary(now_ms, key, &grant) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ReleaseError::NotHeld(id.to_owned())),
            Err(e) => Err(ReleaseError::Failed(e.to_string())),
        })
    }

    /// shadow's tools are installed and `/etc/login.defs` reads as they read it.
    fn check(_cx: &Start<'_>) -> Result<Check, UsersError> {
        Users::new().map(|_| Check::default())
    }
}
