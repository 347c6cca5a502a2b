//! What a [`FakeHost`](super::FakeHost) records: [`Call`]s to the host functions, in order,
//! and [`LogLine`]s.

use crate::firewall::Rule;
use crate::users::NewUser;

/// One call the code under test made to a host function, with its arguments.
///
/// Every call is recorded, also the ones answered with an error (not scripted, or scripted to
/// fail), so a test can check what the module asked for as well as what it made of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Call {
    /// [`firewall::allow`](crate::firewall::allow).
    FirewallAllow(Rule),
    /// [`firewall::revoke`](crate::firewall::revoke).
    FirewallRevoke {
        /// The grant to close.
        grant_id: String,
    },
    /// [`firewall::list`](crate::firewall::list).
    FirewallList,
    /// [`salt::apply`](crate::salt::apply).
    SaltApply {
        /// The sls name.
        state: String,
        /// The pillar data, as JSON.
        pillar_json: Option<String>,
        /// Test mode: report, change nothing.
        test: bool,
    },
    /// [`users::create`](crate::users::create).
    UsersCreate(NewUser),
    /// [`users::create_temporary`](crate::users::create_temporary).
    UsersCreateTemporary {
        /// The account asked for.
        user: NewUser,
        /// How long it lasts, seconds.
        ttl_secs: u32,
    },
    /// [`users::lock`](crate::users::lock).
    UsersLock {
        /// The account.
        name: String,
    },
    /// [`users::unlock`](crate::users::unlock).
    UsersUnlock {
        /// The account.
        name: String,
    },
    /// [`users::remove`](crate::users::remove).
    UsersRemove {
        /// The account.
        name: String,
    },
    /// [`users::add_key`](crate::users::add_key).
    UsersAddKey {
        /// The account.
        name: String,
        /// The public key line.
        key: String,
    },
    /// [`users::add_temporary_key`](crate::users::add_temporary_key).
    UsersAddTemporaryKey {
        /// The account.
        name: String,
        /// The public key line.
        key: String,
        /// How long it lasts, seconds.
        ttl_secs: u32,
    },
    /// [`users::add_temporary_membership`](crate::users::add_temporary_membership).
    UsersAddTemporaryMembership {
        /// The account.
        name: String,
        /// The group.
        group: String,
        /// How long it lasts, seconds.
        ttl_secs: u32,
    },
    /// [`users::remove_key`](crate::users::remove_key).
    UsersRemoveKey {
        /// The account.
        name: String,
        /// The public key line.
        key: String,
    },
    /// [`users::add_to_group`](crate::users::add_to_group).
    UsersAddToGroup {
        /// The account.
        name: String,
        /// The supplementary group.
        group: String,
    },
    /// [`users::remove_from_group`](crate::users::remove_from_group).
    UsersRemoveFromGroup {
        /// The account.
        name: String,
        /// The supplementary group.
        group: String,
    },
    /// [`users::list`](crate::users::list).
    UsersList,
    /// [`exec::run`](crate::exec::run).
    ExecRun {
        /// The declared program.
        name: String,
        /// The parameters, name and value pairs, in the order given.
        params: Vec<(String, String)>,
    },
    /// [`hostkeys::list`](crate::hostkeys::list).
    HostkeysList,
    /// [`grants::list`](crate::grants::list).
    GrantsList,
    /// [`grants::revoke`](crate::grants::revoke).
    GrantsRevoke {
        /// The grant whose hold to release.
        id: String,
    },
}

impl Call {
    /// The host function's WIT name, `interface.function`: `firewall.allow`, `users.add-key`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::FirewallAllow(_) => "firewall.allow",
            Self::FirewallRevoke { .. } => "firewall.revoke",
            Self::FirewallList => "firewall.list",
            Self::SaltApply { .. } => "salt.apply",
            Self::UsersCreate(_) => "users.create",
            Self::UsersCreateTemporary { .. } => "users.create-temporary",
            Self::UsersLock { .. } => "users.lock",
            Self::UsersUnlock { .. } => "users.unlock",
            Self::UsersRemove { .. } => "users.remove",
            Self::UsersAddKey { .. } => "users.add-key",
            Self::UsersAddTemporaryKey { .. } => "users.add-temporary-key",
            Self::UsersAddTemporaryMembership { .. } => "users.add-temporary-membership",
            Self::UsersRemoveKey { .. } => "users.remove-key",
            Self::UsersAddToGroup { .. } => "users.add-to-group",
            Self::UsersRemoveFromGroup { .. } => "users.remove-from-group",
            Self::UsersList => "users.list",
            Self::ExecRun { .. } => "exec.run",
            Self::HostkeysList => "hostkeys.list",
            Self::GrantsList => "grants.list",
            Self::GrantsRevoke { .. } => "grants.revoke",
        }
    }
}

/// A message the code under test sent to the daemon's log ([`log`](crate::log)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// [`log::info`](crate::log::info) or [`log::warn`](crate::log::warn).
    pub level: LogLevel,
    /// The message, as given.
    pub message: String,
}

impl LogLine {
    /// An info line, to compare with: `assert_eq!(run.logs, [LogLine::info("opened 22/tcp")])`.
    pub fn info(message: &str) -> Self {
        Self {
            level: LogLevel::Info,
            message: message.to_owned(),
        }
    }

    /// A warn line.
    pub fn warn(message: &str) -> Self {
        Self {
            level: LogLevel::Warn,
            message: message.to_owned(),
        }
    }
}

/// The level of a [`LogLine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// [`log::info`](crate::log::info).
    Info,
    /// [`log::warn`](crate::log::warn).
    Warn,
}
