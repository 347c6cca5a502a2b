//! Local accounts, groups and SSH keys, through shadow's tools (`useradd`, `usermod`,
//! `userdel`, `gpasswd`) and a careful writer for `authorized_keys` ([`home`]).
//!
//! Names, shells, comments and keys are parsed into types ([`names`], [`keys`]) before the grant
//! is checked ([`check_user`], [`check_group`]) and before any tool runs. System accounts and
//! groups (id below 1000, and root) are never touched unless the grant names them explicitly:
//! the wildcard `"*"` in a grant covers ordinary accounts only.
//!
//! Locking sets both a locked password (`usermod --lock`) and an expiry in the past
//! (`--expiredate 1`): a locked password alone still lets SSH keys in.

pub mod home;
pub mod keys;
pub mod login_defs;
pub mod names;

use std::path::PathBuf;

use crate::policy::UsersGrant;
use crate::system::{Tool, ToolError};
pub use keys::SshKey;
pub use names::{Comment, GroupName, InvalidArg, Shell, UserName};

/// The first uid and gid of ordinary accounts and groups (shadow's `UID_MIN`, `GID_MIN`).
pub const FIRST_ORDINARY_ID: u32 = 1000;

/// A local account as the grant lets a request see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// Uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
    /// Login shell.
    pub shell: String,
    /// Supplementary groups.
    pub groups: Vec<String>,
    /// Password locked and account expired: no password or key login.
    pub locked: bool,
}

impl Account {
    /// Whether this is a system account (root, or a uid below [`FIRST_ORDINARY_ID`]).
    pub fn is_system(&self) -> bool {
        self.uid < FIRST_ORDINARY_ID
    }
}

/// Why an account operation did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsersError {
    /// An argument is malformed.
    #[error(transparent)]
    Invalid(#[from] InvalidArg),
    /// No such account.
    #[error("no account {0}")]
    NoSuchUser(String),
    /// No such group.
    #[error("no group {0}")]
    NoSuchGroup(String),
    /// The account exists already.
    #[error("account {0} exists already")]
    Exists(String),
    /// The shell is not listed in /etc/shells.
    #[error("shell {0} is not listed in /etc/shells")]
    UnlistedShell(String),
    /// A tool failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// Reading the account databases failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Writing keys was refused or failed.
    #[error(transparent)]
    Home(#[from] home::HomeError),
}

/// The shadow tools and the account databases.
#[derive(Debug)]
pub struct Users {
    useradd: Tool,
    usermod: Tool,
    userdel: Tool,
    gpasswd: Tool,
    etc: PathBuf,
    /// Dry run: tools record their command lines here and key files are not written.
    dry_run: Option<crate::system::Recorder>,
}

impl Users {
    /// The service over the standard tool paths and `/etc`; fails when a tool is missing.
    pub fn new() -> Result<Self, UsersError> {
        let tool = |p: &str| -> Result<Tool, UsersError> {
            let t = Tool::new(p)?;
            if !t.exists() {
                return Err(UsersError::Tool(ToolError::Spawn {
                    path: t.path().to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "not installed (package passwd)",
                    ),
                }));
            }
            Ok(t)
        };
        Ok(Self {
            useradd: tool("/usr/sbin/useradd")?,
            usermod: tool("/usr/sbin/usermod")?,
            userdel: tool("/usr/sbin/userdel")?,
            gpasswd: tool("/usr/bin/gpasswd")?,
            etc: PathBuf::from("/etc"),
            dry_run: None,
        })
    }

    /// A dry run over this machine's account databases (read, never written): the shadow
    /// tools' command lines and key-file edits are recorded in `recorder`, nothing runs.
    pub fn dry_run(recorder: crate::system::Recorder) -> Self {
        let tool = |p: &str| {
            Tool::new(p)
                .unwrap_or_else(|_| unreachable!("{p} is absolute"))
                .recording(recorder.clone())
        };
        Self {
            useradd: tool("/usr/sbin/useradd"),
            usermod: tool("/usr/sbin/usermod"),
            userdel: tool("/usr/sbin/userdel"),
            gpasswd: tool("/usr/bin/gpasswd"),
            etc: PathBuf::from("/etc"),
            dry_run: Some(recorder),
        }
    }

    fn read_db(&self, name: &str) -> Result<String, UsersError> {
        let path = self.etc.join(name);
        std::fs::read_to_string(&path).map_err(|source| UsersError::Io { path, source })
    }

    /// Every account in `/etc/passwd`, with groups from `/etc/group` and lock state from
    /// `/etc/shadow`.
    pub fn accounts(&self) -> Result<Vec<Account>, UsersError> {
        let passwd = self.read_db("passwd")?;
        let group = self.read_db("group")?;
        let shadow = self.read_db("shadow").unwrap_or_default();
        let today = crate::now_ms() / 86_400_000;
        Ok(passwd
            .lines()
            .filter_map(parse_passwd)
            .map(|mut a| {
                a.groups = member_of(&group, &a.name);
                a.locked = is_locked(&shadow, &a.name, today);
                a
            })
            .collect())
    }

    /// The account called `name`, if it exists.
    pub fn account(&self, name: &UserName) -> Result<Option<Account>, UsersError> {
        Ok(self.accounts()?.into_iter().find(|a| a.name == name.as_str()))
    }

    fn existing(&self, name: &UserName) -> Result<Account, UsersError> {
        self.account(name)?
            .ok_or_else(|| UsersError::NoSuchUser(name.to_string()))
    }

    /// The gid of group `name`, if it exists.
    pub fn group_id(&self, name: &GroupName) -> Result<Option<u32>, UsersError> {
        let group = self.read_db("group")?;
        Ok(group.lines().find_map(|l| {
            let mut f = l.split(':');
            (f.next()? == name.as_str()).then_some(())?;
            f.nth(1)?.parse().ok()
        }))
    }

    /// Creates the account with a home directory and a group of its own.
    pub fn create(
        &self,
        name: &UserName,
        shell: Option<&Shell>,
        comment: Option<&Comment>,
        groups: &[GroupName],
    ) -> Result<(), UsersError> {
        if self.account(name)?.is_some() {
            return Err(UsersError::Exists(name.to_string()));
        }
        for g in groups {
            if self.group_id(g)?.is_none() {
                return Err(UsersError::NoSuchGroup(g.to_string()));
            }
        }
        let mut args: Vec<String> = vec!["--create-home".into(), "--user-group".into()];
        if let Some(shell) = shell {
            if !shell.is_listed_in(&self.read_db("shells").unwrap_or_default()) {
                return Err(UsersError::UnlistedShell(shell.path().display().to_string()));
            }
            args.extend(["--shell".into(), shell.path().display().to_string()]);
        }
        if let Some(c) = comment {
            args.extend(["--comment".into(), c.as_str().to_owned()]);
        }
        if !groups.is_empty() {
            let list: Vec<&str> = groups.iter().map(GroupName::as_str).collect();
            args.extend(["--groups".into(), list.join(",")]);
        }
        args.extend(["--".into(), name.to_string()]);
        self.useradd.run(&args)?;
        Ok(())
    }

    /// Locks the password and expires the account: neither passwords nor keys let anyone in.
    pub fn lock(&self, name: &UserName) -> Result<(), UsersError> {
        self.existing(name)?;
        self.usermod
            .run(&["--lock", "--expiredate", "1", "--", name.as_str()])?;
        Ok(())
    }

    /// Undoes [`Users::lock`]: clears the expiry and unlocks the password (an account that never
    /// had a password keeps a locked one; key logins work again).
    pub fn unlock(&self, name: &UserName) -> Result<(), UsersError> {
        self.existing(name)?;
        self.usermod.run(&["--expiredate", "", "--", name.as_str()])?;
        let shadow = self.read_db("shadow")?;
        let hash = shadow
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{name}:"))?
                    .split(':')
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        // `usermod --unlock` refuses (rightly) to leave an empty password; only strip a lock `!`
        // when something remains behind it.
        if hash.starts_with('!') && hash.len() > 1 {
            self.usermod.run(&["--unlock", "--", name.as_str()])?;
        }
        Ok(())
    }

    /// Removes the account, its home directory and mail spool.
    pub fn remove(&self, name: &UserName) -> Result<(), UsersError> {
        self.existing(name)?;
        let out = self.userdel.output(&["--remove", "--", name.as_str()])?;
        // 12: the home directory or mail spool was already gone; the account is removed.
        match out.status.code() {
            Some(0 | 12) => Ok(()),
            _ => Err(UsersError::Tool(ToolError::Failed {
                command: self.userdel.command_line(&["--remove", "--", name.as_str()]),
                status: out.status,
                detail: out.stderr.lines().last().unwrap_or("").to_owned(),
            })),
        }
    }

    /// Adds `key` to the account's `authorized_keys`; `false` when it was there already.
    pub fn add_key(&self, name: &UserName, key: &SshKey) -> Result<bool, UsersError> {
        let a = self.existing(name)?;
        if let Some(recorder) = &self.dry_run {
            recorder.record(format!(
                "add {} to {}/.ssh/authorized_keys",
                key.summary(),
                a.home.display()
            ));
            return Ok(true);
        }
        Ok(home::edit_authorized_keys(&a.home, owner(&a), |text| {
            keys::with_key(text, key)
        })?)
    }

    /// Removes `key` from the account's `authorized_keys`; `false` when it was not there.
    pub fn remove_key(&self, name: &UserName, key: &SshKey) -> Result<bool, UsersError> {
        let a = self.existing(name)?;
        if let Some(recorder) = &self.dry_run {
            recorder.record(format!(
                "remove {} from {}/.ssh/authorized_keys",
                key.summary(),
                a.home.display()
            ));
            return Ok(true);
        }
        Ok(home::edit_authorized_keys(&a.home, owner(&a), |text| {
            keys::without_key(text, key)
        })?)
    }

    /// Adds the account to `group`.
    pub fn add_to_group(&self, name: &UserName, group: &GroupName) -> Result<(), UsersError> {
        self.existing(name)?;
        if self.group_id(group)?.is_none() {
            return Err(UsersError::NoSuchGroup(group.to_string()));
        }
        self.gpasswd.run(&["--add", name.as_str(), group.as_str()])?;
        Ok(())
    }

    /// Removes the account from `group` (not an error when it was not a member).
    pub fn remove_from_group(&self, name: &UserName, group: &GroupName) -> Result<(), UsersError> {
        let a = self.existing(name)?;
        if self.group_id(group)?.is_none() {
            return Err(UsersError::NoSuchGroup(group.to_string()));
        }
        if a.groups.iter().any(|g| g == group.as_str()) {
            self.gpasswd.run(&["--delete", name.as_str(), group.as_str()])?;
        }
        Ok(())
    }
}

fn owner(a: &Account) -> home::Owner {
    home::Owner {
        uid: a.uid,
        gid: a.gid,
    }
}

/// `name:x:uid:gid:gecos:home:shell`.
fn parse_passwd(line: &str) -> Option<Account> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() != 7 {
        return None;
    }
    Some(Account {
        name: f[0].to_owned(),
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        home: PathBuf::from(f[5]),
        shell: f[6].to_owned(),
        groups: Vec::new(),
        locked: false,
    })
}

/// The groups in `/etc/group` text that list `name` as a member.
fn member_of(group: &str, name: &str) -> Vec<String> {
    group
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() == 4 && f[3].split(',').any(|m| m == name)).then(|| f[0].to_owned())
        })
        .collect()
}

/// Locked as [`Users::lock`] leaves it: password locked (`!`) and expired on or before `today`
/// (days since the epoch).
fn is_locked(shadow: &str, name: &str, today: u64) -> bool {
    shadow.lines().any(|l| {
        let f: Vec<&str> = l.split(':').collect();
        f.len() >= 8
            && f[0] == name
            && f[1].starts_with('!')
            && f[7].parse::<u64>().is_ok_and(|day| day <= today)
    })
}

/// Checks the grant covers account `name` (`existing` when it exists): named explicitly, or
/// covered by `"*"` when it is not a system account.
pub fn check_user(grant: &UsersGrant, name: &UserName, existing: Option<&Account>) -> Result<(), String> {
    if grant.names.iter().any(|n| n == name.as_str()) {
        return Ok(());
    }
    let system = name.as_str() == "root" || existing.is_some_and(Account::is_system);
    if grant.names.iter().any(|n| n == "*") && !system {
        return Ok(());
    }
    if system {
        return Err(format!("{name} is a system account; the grant must name it"));
    }
    Err(format!(
        "account {name} is not granted (granted: {:?})",
        grant.names
    ))
}

/// Checks the grant covers group `group` (`gid` when it exists), as [`check_user`] does.
pub fn check_group(grant: &UsersGrant, group: &GroupName, gid: Option<u32>) -> Result<(), String> {
    if grant.groups.iter().any(|g| g == group.as_str()) {
        return Ok(());
    }
    let system = gid.is_some_and(|id| id < FIRST_ORDINARY_ID) || group.as_str() == "root";
    if grant.groups.iter().any(|g| g == "*") && !system {
        return Ok(());
    }
    if system {
        return Err(format!("{group} is a system group; the grant must name it"));
    }
    Err(format!(
        "group {group} is not granted (granted: {:?})",
        grant.groups
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserName {
        s.parse().expect("name")
    }

    fn account(name: &str, uid: u32) -> Account {
        Account {
            name: name.into(),
            uid,
            gid: uid,
            home: PathBuf::from("/home").join(name),
            shell: "/bin/bash".into(),
            groups: vec![],
            locked: false,
        }
    }

    #[test]
    fn databases_are_read() {
        let a = parse_passwd("alice:x:1001:1001:Alice,,,:/home/alice:/bin/bash").expect("line");
        assert_eq!((a.uid, a.gid, a.home.to_str()), (1001, 1001, Some("/home/alice")));
        assert!(parse_passwd("broken:x:1").is_none());
        let group = "sudo:x:27:alice,bob\ndevelopers:x:1002:alice\nbob:x:1003:\n";
        assert_eq!(member_of(group, "alice"), ["sudo", "developers"]);
        assert!(member_of(group, "carol").is_empty());
        let shadow = "alice:!$y$j9T$x:19000:0:99999:7::1:\nbob:!:19000:0:99999:7:::\ncarol:$y$abc:19000:0:99999:7::1:\n";
        assert!(is_locked(shadow, "alice", 20_000));
        assert!(
            !is_locked(shadow, "bob", 20_000),
            "password locked but not expired: keys still work"
        );
        assert!(
            !is_locked(shadow, "carol", 20_000),
            "expired but password usable is not what lock does"
        );
    }

    #[test]
    fn grants_cover_named_accounts_and_wildcards_spare_system_ones() {
        let named = UsersGrant {
            names: vec!["alice".into()],
            groups: vec!["developers".into()],
        };
        check_user(&named, &user("alice"), Some(&account("alice", 1001))).expect("named");
        assert!(
            check_user(&named, &user("bob"), None)
                .expect_err("bob")
                .contains("not granted")
        );
        let any = UsersGrant {
            names: vec!["*".into()],
            groups: vec!["*".into()],
        };
        check_user(&any, &user("carol"), None).expect("new account");
        check_user(&any, &user("carol"), Some(&account("carol", 1005))).expect("ordinary");
        let err = check_user(&any, &user("daemon"), Some(&account("daemon", 1))).expect_err("system");
        assert!(err.contains("system account"), "{err}");
        assert!(check_user(&any, &user("root"), None).is_err());
        let root = UsersGrant {
            names: vec!["root".into()],
            groups: vec![],
        };
        check_user(&root, &user("root"), Some(&account("root", 0))).expect("named explicitly");

        let g = |s: &str| s.parse::<GroupName>().expect("group");
        check_group(&named, &g("developers"), Some(1002)).expect("named");
        assert!(check_group(&named, &g("sudo"), Some(27)).is_err());
        assert!(
            check_group(&any, &g("sudo"), Some(27))
                .expect_err("system")
                .contains("system group")
        );
        check_group(&any, &g("ops"), Some(1010)).expect("ordinary");
    }
}
