//! What a request's users grant reaches: which existing accounts it may change, which new
//! accounts it may create and which groups it may use. The host checks every users call here,
//! whatever the policy wrote, so these rules hold for any policy:
//!
//! - **System accounts** are reached only through the grant's `system_accounts`, which names
//!   them one by one (`"*"` matches nothing there): root and every uid-0 account, uids outside
//!   `UID_MIN..=UID_MAX` (`nobody` is 65534), accounts whose shell is not a login shell (not in
//!   `/etc/shells`: `nologin`, `false`, `sync`), accounts whose primary group is a system group,
//!   and [reserved names](is_reserved). Listing one in `names`, or `"*"`, is not enough; and a
//!   named one must still be a member of a group the grant reaches.
//! - **System groups** likewise only through `system_groups`: gid 0, gids outside
//!   `GID_MIN..=GID_MAX`, and reserved names (`sudo`, `wheel`, `admin`, `docker`...).
//! - **An existing account** is reached when `names` covers it (its name or `"*"`) and it is a
//!   member (primary or supplementary) of a group the grant reaches; and, unless
//!   `system_accounts` names it, it is in no system group that `system_groups` leaves out. So an
//!   administrator (in `sudo`) stays out of a grant for `developers` even if also a developer.
//! - **Self service** (`"self": true`) reaches the calling client's own account, named like the
//!   client, without `names` or groups: never a system account, so a client enrolled as `daemon`
//!   gets nothing. Its supplementary groups do not matter here: an administrator may manage
//!   their own keys.
//! - **A new account** is reached when `names` covers its name and the name is not reserved (or
//!   `system_accounts` names it); that it does not exist yet is the service's check.

use std::fmt;

use super::UsersGrant;
use super::{Account, LoginDefs, UserName};

/// Names no grant reaches unless `system_accounts` or `system_groups` names them, whether or not
/// such an account or group exists: root and its aliases, the accounts and groups Debian's
/// base-passwd and common services create, and groups that confer privilege where they exist
/// (`admin` is in Ubuntu's sudoers, `wheel` in many PAM and sudo set-ups). Creating an account
/// also creates a group of its name (`useradd --user-group`), so an account `admin` would be
/// a sudoer on such a host. Names starting with `_` or `systemd-` are reserved as well
/// ([`is_reserved`]).
#[rustfmt::skip]
pub const RESERVED_NAMES: &[&str] = &[
    // root, and names used for it
    "root", "toor", "admin", "administrator", "superuser",
    // groups that confer privilege
    "sudo", "wheel", "adm", "shadow", "staff", "disk", "kmem", "docker", "lxd", "libvirt", "kvm",
    "utmp", "tty", "operator", "lpadmin", "netdev", "plugdev", "input", "render", "video", "audio",
    // Debian's base-passwd
    "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
    "www-data", "backup", "list", "irc", "gnats", "nobody", "nogroup", "src", "voice", "cdrom",
    "floppy", "tape", "dialout", "dip", "fax", "sasl", "scanner", "users",
    // common services, and sesame itself
    "sshd", "messagebus", "polkitd", "syslog", "uuidd", "tcpdump", "dnsmasq", "avahi", "ftp",
    "halt", "shutdown", "postfix", "postgres", "mysql", "redis", "nginx", "ntp", "chrony",
    "sesame",
];

/// Whether `name` is reserved for the system ([`RESERVED_NAMES`], or a name starting with `_`
/// or `systemd-`, as Debian's and systemd's service accounts do).
pub fn is_reserved(name: &str) -> bool {
    RESERVED_NAMES.contains(&name) || name.starts_with('_') || name.starts_with("systemd-")
}

/// What makes an account a system account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemKind {
    /// Uid 0 (root, or another name for it such as `toor`), or the name `root`.
    Root,
    /// A uid outside `UID_MIN..=UID_MAX`.
    Uid(u32),
    /// A shell not listed in `/etc/shells`.
    NoLoginShell,
    /// A reserved name.
    ReservedName,
    /// The primary group is a system group.
    PrimaryGroup(u32),
}

impl fmt::Display for SystemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SystemKind::Root => f.write_str("root, uid 0"),
            SystemKind::Uid(uid) => write!(f, "uid {uid} is outside UID_MIN..UID_MAX"),
            SystemKind::NoLoginShell => f.write_str("its shell is not a login shell"),
            SystemKind::ReservedName => f.write_str("a reserved name"),
            SystemKind::PrimaryGroup(gid) => write!(f, "its primary group {gid} is a system group"),
        }
    }
}

/// Why a grant does not reach an account or group. The message goes to the module (as the
/// reason of a 3004) and the daemon log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A system account that `system_accounts` does not name.
    #[error("{name} is a system account ({kind}); only a grant naming it in system_accounts reaches it")]
    SystemAccount {
        /// The account.
        name: String,
        /// What makes it one.
        kind: SystemKind,
    },
    /// A system group that `system_groups` does not name.
    #[error("group {name} is a system group; only a grant naming it in system_groups reaches it")]
    SystemGroup {
        /// The group.
        name: String,
    },
    /// The account is not in `names` (nor is `"*"`).
    #[error("account {name} is not granted (granted: {granted:?})")]
    NotNamed {
        /// The account.
        name: String,
        /// The grant's `names`.
        granted: Vec<String>,
    },
    /// The account is a member of a system group the grant does not name.
    #[error("{name} is a member of system group {group}, which the grant's system_groups do not name")]
    PrivilegedMember {
        /// The account.
        name: String,
        /// The group.
        group: String,
    },
    /// The account is a member of none of the groups the grant reaches.
    #[error("{name} is a member of none of the grant's groups ({granted:?})")]
    OutsideGroups {
        /// The account.
        name: String,
        /// The grant's `groups`.
        granted: Vec<String>,
    },
    /// The group is not in `groups` (nor is `"*"`).
    #[error("group {name} is not granted (granted: {granted:?})")]
    GroupNotGranted {
        /// The group.
        name: String,
        /// The grant's `groups`.
        granted: Vec<String>,
    },
}

/// One request's users grant, seen from this host.
#[derive(Debug, Clone, Copy)]
pub struct Reach<'a> {
    grant: &'a UsersGrant,
    defs: LoginDefs,
    /// The calling client's name, when the grant gives self service.
    caller: Option<&'a str>,
}

impl<'a> Reach<'a> {
    /// What `grant` reaches on a host with `defs`, for the client called `client`.
    pub fn new(grant: &'a UsersGrant, defs: LoginDefs, client: &'a str) -> Self {
        let caller = (grant.self_service && client.parse::<UserName>().is_ok()).then_some(client);
        Self { grant, defs, caller }
    }

    /// Whether the grant reaches the existing account `a` (to lock, unlock, remove it, manage
    /// its keys or groups, or list it).
    pub fn account(&self, a: &Account) -> Result<(), Refusal> {
        let kind = self.system_kind(a);
        if kind.is_none() && self.caller == Some(a.name.as_str()) {
            return Ok(());
        }
        let explicit = self.grant.system_accounts.contains(&a.name);
        if let Some(kind) = kind
            && !explicit
        {
            return Err(Refusal::SystemAccount {
                name: a.name.clone(),
                kind,
            });
        }
        if !explicit && !self.names(&a.name) {
            return Err(Refusal::NotNamed {
                name: a.name.clone(),
                granted: self.grant.names.clone(),
            });
        }
        let member_of = || {
            let primary = a.primary_group.as_deref().map(|name| (name, a.gid));
            primary
                .into_iter()
                .chain(a.groups.iter().map(|g| (g.name.as_str(), g.gid)))
        };
        if !explicit
            && let Some((group, _)) = member_of().find(|&(name, gid)| {
                self.is_system_group(name, Some(gid)) && !self.grant.system_groups.iter().any(|g| g == name)
            })
        {
            return Err(Refusal::PrivilegedMember {
                name: a.name.clone(),
                group: group.to_owned(),
            });
        }
        if !member_of().any(|(name, gid)| self.group_by_name(name, Some(gid)).is_ok()) {
            return Err(Refusal::OutsideGroups {
                name: a.name.clone(),
                granted: self.grant.groups.clone(),
            });
        }
        Ok(())
    }

    /// Whether the grant may create an account called `name` (self service never does).
    pub fn new_account(&self, name: &UserName) -> Result<(), Refusal> {
        let name = name.as_str();
        if self.grant.system_accounts.iter().any(|n| n == name) {
            return Ok(());
        }
        if is_reserved(name) {
            return Err(Refusal::SystemAccount {
                name: name.to_owned(),
                kind: SystemKind::ReservedName,
            });
        }
        if !self.names(name) {
            return Err(Refusal::NotNamed {
                name: name.to_owned(),
                granted: self.grant.names.clone(),
            });
        }
        Ok(())
    }

    /// Whether the grant may add accounts to group `name` (gid `gid` when it exists) or take
    /// them out of it.
    pub fn group(&self, name: &super::GroupName, gid: Option<u32>) -> Result<(), Refusal> {
        self.group_by_name(name.as_str(), gid)
    }

    /// What makes `a` a system account, if anything.
    pub fn system_kind(&self, a: &Account) -> Option<SystemKind> {
        if a.uid == 0 || a.name == "root" {
            Some(SystemKind::Root)
        } else if !self.defs.uids().contains(&a.uid) {
            Some(SystemKind::Uid(a.uid))
        } else if !a.login_shell {
            Some(SystemKind::NoLoginShell)
        } else if is_reserved(&a.name) {
            Some(SystemKind::ReservedName)
        } else if self.is_system_group(a.primary_group.as_deref().unwrap_or(""), Some(a.gid)) {
            Some(SystemKind::PrimaryGroup(a.gid))
        } else {
            None
        }
    }

    /// Whether group `name` (gid `gid`, when it exists) is a system group.
    pub fn is_system_group(&self, name: &str, gid: Option<u32>) -> bool {
        gid.is_some_and(|gid| gid == 0 || !self.defs.gids().contains(&gid))
            || name == "root"
            || is_reserved(name)
    }

    fn group_by_name(&self, name: &str, gid: Option<u32>) -> Result<(), Refusal> {
        if self.grant.system_groups.iter().any(|g| g == name) {
            return Ok(());
        }
        if self.is_system_group(name, gid) {
            return Err(Refusal::SystemGroup {
                name: name.to_owned(),
            });
        }
        if self.grant.groups.iter().any(|g| g == name || g == "*") {
            return Ok(());
        }
        Err(Refusal::GroupNotGranted {
            name: name.to_owned(),
            granted: self.grant.groups.clone(),
        })
    }

    /// Whether `names` covers `name` (listed, or `"*"`).
    fn names(&self, name: &str) -> bool {
        self.grant.names.iter().any(|n| n == name || n == "*")
    }
}

#[cfg(test)]
#[path = "reach_tests.rs"]
mod tests;
