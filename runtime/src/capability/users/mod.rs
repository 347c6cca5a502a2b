//! Local accounts, groups and SSH keys, through shadow's tools (`useradd`, `usermod`,
//! `userdel`, `gpasswd`) and a careful writer for `authorized_keys` ([`home`]).
//!
//! Names, shells, comments and keys are parsed into types ([`names`], [`keys`]) before the grant
//! is checked ([`reach`]) and before any tool runs. System accounts and groups (root, ids outside
//! the ordinary ranges of `/etc/login.defs` ([`login_defs`]), non-login shells, reserved names)
//! are never touched unless the grant names them in its own fields, and an existing account only
//! when it is a member of one of the grant's groups (or is the caller's own, by self service).
//!
//! Locking sets both a locked password (`usermod --lock`) and an expiry in the past
//! (`--expiredate 1`): a locked password alone still lets SSH keys in.

mod calls;
pub mod home;
pub mod keys;
pub mod login_defs;
pub mod names;
pub mod reach;
mod setup;
pub mod temporary;

#[cfg(test)]
mod host_tests;

use std::path::{Path, PathBuf};

use crate::system::{Tool, ToolError};
pub use keys::SshKey;
pub use login_defs::{LoginDefs, LoginDefsError};
pub use names::{Comment, GroupName, InvalidArg, Shell, UserName};
pub use reach::{Reach, Refusal};
pub use setup::{TemporaryKind, UsersConfig, UsersGrant};
pub use temporary::{AccountGrantRecord, KeyLedger, Reconciled, Temporary, TemporaryGrant, describe};

/// A local account, as `/etc/passwd`, `/etc/group`, `/etc/shadow` and `/etc/shells` describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// Uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// The name of the primary group, when `/etc/group` has one with that gid.
    pub primary_group: Option<String>,
    /// Home directory.
    pub home: PathBuf,
    /// Login shell (empty in `/etc/passwd` means `/bin/sh`).
    pub shell: String,
    /// Whether the shell is listed in `/etc/shells` (`nologin` and `false` are not).
    pub login_shell: bool,
    /// Supplementary groups.
    pub groups: Vec<Group>,
    /// Password locked and account expired: no password or key login.
    pub locked: bool,
}

/// A group an account belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Its name.
    pub name: String,
    /// Its gid.
    pub gid: u32,
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
    /// A group of the new account's name exists already (`useradd --user-group` would fail, or
    /// the account would join a group it was not granted).
    #[error("a group {0} exists already; a new account gets a group of its own name")]
    GroupExists(String),
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
    /// The grants ledger could not be read or written: nothing was changed.
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// Temporary keys need the grants ledger, and this service has none.
    #[error("temporary keys are not available here (no grants ledger)")]
    NoLedger,
    /// Writing keys was refused or failed.
    #[error(transparent)]
    Home(#[from] home::HomeError),
    /// `/etc/login.defs` could not be read or makes no sense.
    #[error(transparent)]
    LoginDefs(#[from] LoginDefsError),
}

/// The shadow tools and the account databases.
#[derive(Debug)]
pub struct Users {
    useradd: Tool,
    usermod: Tool,
    userdel: Tool,
    gpasswd: Tool,
    etc: PathBuf,
    /// The ordinary id ranges, read once at start.
    defs: LoginDefs,
    /// Dry run: tools record their command lines here and key files are not written.
    dry_run: Option<crate::system::Recorder>,
    /// Where temporary keys are recorded (the grants ledger); none in tests of the rest.
    ledger: Option<KeyLedger>,
}

impl Users {
    /// The service over the standard tool paths and `/etc`; fails when a tool is missing or
    /// `/etc/login.defs` has a value shadow's tools could not read ([`LoginDefs::read`]).
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
            defs: LoginDefs::read(Path::new("/etc/login.defs"))?,
            dry_run: None,
            ledger: None,
        })
    }

    /// A dry run over this machine's account databases (read, never written): the shadow
    /// tools' command lines and key-file edits are recorded in `recorder`, nothing runs.
    pub fn dry_run(recorder: crate::system::Recorder) -> Result<Self, UsersError> {
        Self::dry_run_at(PathBuf::from("/etc"), recorder)
    }

    /// A dry run over the account databases in `etc` (`passwd`, `group`, `shadow`, `shells`,
    /// `login.defs`).
    pub fn dry_run_at(etc: PathBuf, recorder: crate::system::Recorder) -> Result<Self, UsersError> {
        let tool = |p: &str| {
            Tool::new(p)
                .unwrap_or_else(|_| unreachable!("{p} is absolute"))
                .recording(recorder.clone())
        };
        Ok(Self {
            useradd: tool("/usr/sbin/useradd"),
            usermod: tool("/usr/sbin/usermod"),
            userdel: tool("/usr/sbin/userdel"),
            gpasswd: tool("/usr/bin/gpasswd"),
            defs: LoginDefs::read(&etc.join("login.defs"))?,
            etc,
            dry_run: Some(recorder),
            ledger: None,
        })
    }

    /// The same service, recording temporary keys in `ledger`.
    #[must_use]
    pub fn with_ledger(mut self, ledger: KeyLedger) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// The ordinary id ranges this service was started with.
    pub fn login_defs(&self) -> LoginDefs {
        self.defs
    }

    fn read_db(&self, name: &str) -> Result<String, UsersError> {
        let path = self.etc.join(name);
        std::fs::read_to_string(&path).map_err(|source| UsersError::Io { path, source })
    }

    /// Every account in `/etc/passwd`, with groups from `/etc/group`, lock state from
    /// `/etc/shadow` and whether its shell is in `/etc/shells` (a missing or unreadable
    /// `/etc/shells` lists none, so every account then counts as a system account).
    pub fn accounts(&self) -> Result<Vec<Account>, UsersError> {
        let passwd = self.read_db("passwd")?;
        let group = self.read_db("group")?;
        let groups = parse_groups(&group);
        let shadow = self.read_db("shadow").unwrap_or_default();
        let shells = self.read_db("shells").unwrap_or_default();
        let today = crate::now_ms() / 86_400_000;
        Ok(passwd
            .lines()
            .filter_map(parse_passwd)
            .map(|mut a| {
                a.primary_group = groups.iter().find(|g| g.gid == a.gid).map(|g| g.name.to_owned());
                a.groups = groups
                    .iter()
                    .filter(|g| g.members.contains(&a.name.as_str()))
                    .map(|g| Group {
                        name: g.name.to_owned(),
                        gid: g.gid,
                    })
                    .collect();
                a.login_shell = is_login_shell(&a.shell, &shells);
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
        self.create_expiring(name, shell, comment, groups, None)
    }

    /// [`Users::create`], with the shadow expiry date `expires` (`YYYY-MM-DD`) when given.
    fn create_expiring(
        &self,
        name: &UserName,
        shell: Option<&Shell>,
        comment: Option<&Comment>,
        groups: &[GroupName],
        expires: Option<&str>,
    ) -> Result<(), UsersError> {
        if self.account(name)?.is_some() {
            return Err(UsersError::Exists(name.to_string()));
        }
        if self.group_id(&GroupName::from(name))?.is_some() {
            return Err(UsersError::GroupExists(name.to_string()));
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
        if let Some(day) = expires {
            args.extend(["--expiredate".into(), day.to_owned()]);
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
        if a.groups.iter().any(|g| g.name == group.as_str()) {
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
        primary_group: None,
        home: PathBuf::from(f[5]),
        shell: f[6].to_owned(),
        login_shell: false,
        groups: Vec::new(),
        locked: false,
    })
}

/// A line of `/etc/group`.
struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// `name:x:gid:member,member` lines; malformed ones are skipped.
fn parse_groups(group: &str) -> Vec<GroupEntry<'_>> {
    group
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() == 4).then_some(())?;
            Some(GroupEntry {
                name: f[0],
                gid: f[2].parse().ok()?,
                members: f[3].split(',').filter(|m| !m.is_empty()).collect(),
            })
        })
        .collect()
}

/// Whether `shell` (a passwd field; empty means `/bin/sh`) is listed in `shells` (the text of
/// `/etc/shells`).
fn is_login_shell(shell: &str, shells: &str) -> bool {
    let shell = if shell.is_empty() { "/bin/sh" } else { shell };
    shells
        .lines()
        .map(str::trim)
        .any(|l| !l.starts_with('#') && l == shell)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databases_are_read() {
        let a = parse_passwd("alice:x:1001:1001:Alice,,,:/home/alice:/bin/bash").expect("line");
        assert_eq!((a.uid, a.gid, a.home.to_str()), (1001, 1001, Some("/home/alice")));
        assert!(parse_passwd("broken:x:1").is_none());
        let group = "sudo:x:27:alice,bob\ndevelopers:x:1002:alice\nbob:x:1003:\nbad:x:x:alice\n";
        let groups = parse_groups(group);
        let names: Vec<(&str, u32)> = groups.iter().map(|g| (g.name, g.gid)).collect();
        assert_eq!(names, [("sudo", 27), ("developers", 1002), ("bob", 1003)]);
        assert_eq!(groups[0].members, ["alice", "bob"]);
        assert!(groups[2].members.is_empty());
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
    fn login_shells_are_those_in_etc_shells() {
        let shells = "# /etc/shells\n/bin/sh\n/bin/bash\n  /usr/bin/zsh  \n# /usr/bin/fish\n";
        for shell in ["/bin/bash", "/bin/sh", "", "/usr/bin/zsh"] {
            assert!(is_login_shell(shell, shells), "{shell:?}");
        }
        for shell in [
            "/usr/sbin/nologin",
            "/bin/false",
            "/bin/sync",
            "/usr/bin/fish",
            "bash",
            "/bin/bash ",
        ] {
            assert!(!is_login_shell(shell, shells), "{shell:?}");
        }
        assert!(
            !is_login_shell("/bin/bash", ""),
            "no /etc/shells: no login shells"
        );
    }

    #[test]
    fn accounts_carry_their_groups_and_shell() {
        let etc = tempfile::tempdir().expect("tempdir");
        for (name, text) in [
            (
                "passwd",
                "dave:x:1001:1001::/home/dave:/bin/bash\nsvc:x:1002:4242::/srv:/usr/sbin/nologin\n",
            ),
            (
                "group",
                "dave:x:1001:\ndevelopers:x:2000:svc,dave\nsudo:x:27:dave\n",
            ),
            ("shells", "/bin/bash\n"),
        ] {
            std::fs::write(etc.path().join(name), text).expect("write");
        }
        let users = Users::dry_run_at(etc.path().to_owned(), crate::system::Recorder::default())
            .expect("no login.defs: defaults");
        assert_eq!(users.login_defs(), LoginDefs::default());
        let accounts = users.accounts().expect("accounts");
        let group = |name: &str, gid| Group {
            name: name.into(),
            gid,
        };
        assert_eq!(accounts[0].primary_group.as_deref(), Some("dave"));
        assert_eq!(accounts[0].groups, [group("developers", 2000), group("sudo", 27)]);
        assert!(accounts[0].login_shell);
        assert_eq!(accounts[1].primary_group, None, "gid 4242 has no group entry");
        assert_eq!(accounts[1].groups, [group("developers", 2000)]);
        assert!(!accounts[1].login_shell);

        std::fs::write(etc.path().join("login.defs"), "UID_MIN 1000 # ordinary\n").expect("write");
        let err = Users::dry_run_at(etc.path().to_owned(), crate::system::Recorder::default())
            .expect_err("a bad login.defs stops the service");
        assert!(
            err.to_string()
                .ends_with("login.defs:1: UID_MIN \"1000 # ordinary\" is not a number from 1 to 4294967294"),
            "{err}"
        );
    }
}
