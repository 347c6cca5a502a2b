//! The grants ledger: every change sesamed made that must be reverted, with who holds it and
//! until when: firewall openings (`grants`) and temporary changes to accounts (`users`: SSH keys
//! and group memberships). It is the one source
//! of truth the capabilities' reapers and start-up reconciliations act on; an entry is written
//! before the change it records is made, so a crash leaves nothing unrecorded.
//!
//! The ledger is one JSON file replaced atomically (temporary file, fsync, rename, fsync of the
//! directory), so a crash leaves the old or the new version and never half of one. Every change
//! happens under an exclusive lock on a separate lock file, which the daemon and `sesamed grants`
//! and `sesamed client` all take, so a change made by an operator is never overwritten by the
//! daemon or the reverse.
//!
//! A hold belongs to the client's key, never to its name: a name can be enrolled again under
//! another key, and that client must not inherit what the first one held. Version 1 of the file
//! kept holders by name; it is read once, with the client registry, and written back as the
//! current version ([`Migration`]). Version 2 had no `users`; it is read as having none and
//! written back as version 3, which an older sesamed refuses rather than drop entries it does
//! not know.

pub mod cli;

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sesame_proto::PublicKey;

use crate::capability::firewall::rule::{GrantId, Rule};
use crate::clients::{ClientRegistry, RegistryError};

/// The ledger's format version.
pub const LEDGER_VERSION: u32 = 3;

/// One opening: a firewall rule and the clients holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The id the rule is tagged with.
    pub id: GrantId,
    /// What the rule lets in.
    pub rule: Rule,
    /// When it was first opened (Unix ms).
    pub created_ms: u64,
    /// Who holds it and until when. A grant with no live holder is closed.
    pub holders: Vec<Holder>,
    /// The back end failed while adding or re-timing the rule, after this entry was written:
    /// the rule may be in the firewall or not. Such a grant is held by nobody, so it is closed
    /// at once, and dropped only once the back end confirms the rule is gone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uncertain: bool,
}

/// A client's hold on an opening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    /// The client's enrolled name when it last asked (for people: the hold is the key's).
    pub client: String,
    /// The client's key: the hold belongs to it (its current key: `sesamed client rekey` moves
    /// holds to the new key).
    pub key: PublicKey,
    /// When this hold ends (Unix ms).
    pub expires_ms: u64,
    /// The request that asked for it (or last extended it).
    pub request_id: String,
}

impl Grant {
    /// When the rule must be closed: the latest end among its holders (0 when none).
    pub fn expires_ms(&self) -> u64 {
        self.holders.iter().map(|h| h.expires_ms).max().unwrap_or(0)
    }

    /// Whether anyone still holds the opening at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_ms() > now_ms
    }

    /// The hold of the client with `key`, if any.
    pub fn holder(&self, key: &PublicKey) -> Option<&Holder> {
        self.holders.iter().find(|h| &h.key == key)
    }
}

/// The ledger's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ledger {
    /// [`LEDGER_VERSION`].
    pub version: u32,
    /// Open grants, in the order they were made.
    pub grants: Vec<Grant>,
    /// Temporary changes to accounts (keys, group memberships), in the order they were made.
    #[serde(default)]
    pub users: Vec<UserGrant>,
}

/// A temporary change to an account: a key whose line carries OpenSSH's `expiry-time` option
/// (so sshd refuses it after then, whether or not sesamed runs), or a group membership. The
/// users capability's reaper takes it back once nobody holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserGrant {
    /// Its id: `key-` or `grp-` and 16 hex digits.
    pub id: UserGrantId,
    /// The account changed.
    pub account: String,
    /// What was added to it.
    pub change: UserChange,
    /// When it was first made (Unix ms).
    pub created_ms: u64,
    /// Who holds it and until when; it is taken back once nobody does.
    pub holders: Vec<Holder>,
}

/// What a [`UserGrant`] added to an account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum UserChange {
    /// An SSH key, `TYPE BASE64` (no comment, no options).
    Key(String),
    /// A supplementary group.
    Group(String),
    /// The account itself, created for a while: locked at the end.
    Account,
}

impl UserChange {
    /// The prefix of the ids of this kind of change.
    pub fn id_prefix(&self) -> &'static str {
        match self {
            UserChange::Key(_) => "key",
            UserChange::Group(_) => "grp",
            UserChange::Account => "acc",
        }
    }
}

impl UserGrant {
    /// When it must be taken back: the latest end among its holders (0 when none).
    pub fn expires_ms(&self) -> u64 {
        self.holders.iter().map(|h| h.expires_ms).max().unwrap_or(0)
    }

    /// Whether anyone still holds it at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_ms() > now_ms
    }
}

/// A temporary account change's id: `key-` (a key), `grp-` (a group membership) or `acc-` (an
/// account) and 16 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserGrantId(String);

impl UserGrantId {
    /// A fresh random id for a change of `change`'s kind.
    pub fn random(change: &UserChange) -> Self {
        use rand_core::RngCore;
        let mut bytes = [0u8; 8];
        rand_core::OsRng.fill_bytes(&mut bytes);
        Self(format!("{}-{}", change.id_prefix(), hex::encode(bytes)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for UserGrantId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let hex = s
            .strip_prefix("key-")
            .or_else(|| s.strip_prefix("grp-"))
            .or_else(|| s.strip_prefix("acc-"))
            .unwrap_or_default();
        if hex.len() == 16
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "{s:?} is not a temporary grant id (key-, grp- or acc- and 16 hex digits)"
            ))
        }
    }
}

impl TryFrom<String> for UserGrantId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<UserGrantId> for String {
    fn from(id: UserGrantId) -> String {
        id.0
    }
}

impl std::fmt::Display for UserGrantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Ledger {
    /// The grant tagged `id`.
    pub fn get(&self, id: &GrantId) -> Option<&Grant> {
        self.grants.iter().find(|g| &g.id == id)
    }

    /// The grant tagged `id`, to change.
    pub fn get_mut(&mut self, id: &GrantId) -> Option<&mut Grant> {
        self.grants.iter_mut().find(|g| &g.id == id)
    }

    /// The grant for exactly `rule`.
    pub fn by_rule_mut(&mut self, rule: &Rule) -> Option<&mut Grant> {
        self.grants.iter_mut().find(|g| &g.rule == rule)
    }

    /// Drops the grant tagged `id`.
    pub fn remove(&mut self, id: &GrantId) {
        self.grants.retain(|g| &g.id != id);
    }
}

/// What reading a version 1 ledger changed: each holder, kept by name there, became the key its
/// name is enrolled with now; a holder whose name is no longer enrolled (a client removed
/// before the upgrade) holds nothing any more. No grant is dropped: one left without a holder
/// is closed by the reaper like any other.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Migration {
    /// The version read.
    pub from_version: u32,
    /// Holders now held by a key.
    pub holders_kept: usize,
    /// Holders dropped, by grant and name.
    pub holders_dropped: Vec<(GrantId, String)>,
}

/// Why the ledger could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// Reading, writing or locking failed.
    #[error("grants ledger {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file exists but is not a ledger this daemon understands.
    #[error("grants ledger {path} is unreadable: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A version 1 ledger needs the client registry to be read, and the registry is unreadable.
    #[error("grants ledger {path} (version 1, holders by name) cannot be migrated: {source}")]
    Migration {
        /// The ledger.
        path: PathBuf,
        /// Why the registry could not be read.
        source: RegistryError,
    },
}

/// The ledger file, its lock, and the client registry its holders' keys are enrolled in.
#[derive(Debug, Clone)]
pub struct LedgerFile {
    path: PathBuf,
    lock_path: PathBuf,
    clients: PathBuf,
}

/// The ledger, read under its exclusive lock; dropping this releases the lock.
#[derive(Debug)]
pub struct Locked {
    /// The ledger as read.
    pub ledger: Ledger,
    /// Set when the file was an older version, now migrated (and written back).
    pub migrated: Option<Migration>,
    file: LedgerFile,
    _lock: File,
}

impl LedgerFile {
    /// The ledger `grants.json` and its lock `grants.lock` in `state_dir`, for the clients
    /// enrolled in `clients` (the registry, `clients.toml`).
    pub fn new(state_dir: &Path, clients: &Path) -> Self {
        Self {
            path: state_dir.join("grants.json"),
            lock_path: state_dir.join("grants.lock"),
            clients: clients.to_owned(),
        }
    }

    /// The ledger's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The client registry the holders are enrolled in.
    pub fn clients(&self) -> &Path {
        &self.clients
    }

    fn io(&self, path: &Path, source: std::io::Error) -> LedgerError {
        LedgerError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// Takes the lock (waiting for any other holder) and reads the ledger. A missing file is an
    /// empty ledger; a version 1 file is migrated and written back before this returns.
    pub fn lock(&self) -> Result<Locked, LedgerError> {
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.lock_path)
            .map_err(|e| self.io(&self.lock_path, e))?;
        // Bounded by the request's deadline when a module's host call waits here.
        crate::deadline::lock_file(&lock).map_err(|e| self.io(&self.lock_path, e))?;
        let (ledger, migrated) = self.read()?;
        let locked = Locked {
            ledger,
            migrated,
            file: self.clone(),
            _lock: lock,
        };
        if locked.migrated.is_some() {
            locked.save()?;
        }
        Ok(locked)
    }

    fn read(&self) -> Result<(Ledger, Option<Migration>), LedgerError> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((
                    Ledger {
                        version: LEDGER_VERSION,
                        grants: Vec::new(),
                        users: Vec::new(),
                    },
                    None,
                ));
            }
            Err(e) => return Err(self.io(&self.path, e)),
        };
        let corrupt = |message: String| LedgerError::Corrupt {
            path: self.path.clone(),
            message,
        };
        let version: Versioned = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        let (ledger, migrated) = match version.version {
            LEDGER_VERSION => (
                serde_json::from_slice::<Ledger>(&text).map_err(|e| corrupt(e.to_string()))?,
                None,
            ),
            2 => {
                let old: LedgerV2 = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
                let ledger = Ledger {
                    version: LEDGER_VERSION,
                    grants: old.grants,
                    users: Vec::new(),
                };
                let migration = Migration {
                    from_version: 2,
                    ..Migration::default()
                };
                (ledger, Some(migration))
            }
            1 => {
                let old: LedgerV1 = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
                check_unique(old.grants.iter().map(|g| (&g.id, g.rule))).map_err(corrupt)?;
                let registry =
                    ClientRegistry::load(&self.clients).map_err(|source| LedgerError::Migration {
                        path: self.path.clone(),
                        source,
                    })?;
                let (ledger, migration) = old.migrate(&registry);
                (ledger, Some(migration))
            }
            other => {
                return Err(corrupt(format!(
                    "version {other} (this sesamed reads versions 1 to {LEDGER_VERSION})"
                )));
            }
        };
        check_unique(ledger.grants.iter().map(|g| (&g.id, g.rule))).map_err(corrupt)?;
        check_unique_users(&ledger.users).map_err(corrupt)?;
        Ok((ledger, migrated))
    }

    /// Moves an unreadable ledger aside (to `grants.json.corrupt-<now_ms>`) and returns where.
    pub fn quarantine(&self, now_ms: u64) -> Result<PathBuf, LedgerError> {
        let aside = self.path.with_file_name(format!("grants.json.corrupt-{now_ms}"));
        std::fs::rename(&self.path, &aside).map_err(|e| self.io(&self.path, e))?;
        Ok(aside)
    }
}

impl Locked {
    /// Writes the ledger durably (atomic replace with fsync) before returning.
    pub fn save(&self) -> Result<(), LedgerError> {
        let mut text = serde_json::to_vec_pretty(&self.ledger).map_err(|e| LedgerError::Corrupt {
            path: self.file.path.clone(),
            message: e.to_string(),
        })?;
        text.push(b'\n');
        crate::files::write_atomic(&self.file.path, &text, 0o600)
            .map_err(|e| self.file.io(&self.file.path, e))
    }
}

/// Refuses a ledger naming a grant id or a rule twice (one rule per opening).
fn check_unique<'a>(grants: impl Iterator<Item = (&'a GrantId, Rule)>) -> Result<(), String> {
    let mut ids = BTreeSet::new();
    let mut rules = BTreeSet::new();
    for (id, rule) in grants {
        if !ids.insert(id) || !rules.insert(rule) {
            return Err(format!("grant {id} appears twice"));
        }
    }
    Ok(())
}

/// Refuses a ledger naming a temporary grant id, or an account's change, twice, or a change
/// under an id of the other kind.
fn check_unique_users(grants: &[UserGrant]) -> Result<(), String> {
    let mut ids = BTreeSet::new();
    let mut entries = BTreeSet::new();
    for g in grants {
        if !ids.insert(&g.id) || !entries.insert((&g.account, &g.change)) {
            return Err(format!("temporary grant {} appears twice", g.id));
        }
        if !g.id.as_str().starts_with(g.change.id_prefix()) {
            return Err(format!(
                "temporary grant {} is not a {} id",
                g.id,
                g.change.id_prefix()
            ));
        }
    }
    Ok(())
}

/// Version 2: firewall openings only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerV2 {
    #[serde(rename = "version")]
    _version: u32,
    grants: Vec<Grant>,
}

/// Just the version, to pick the format.
#[derive(Deserialize)]
struct Versioned {
    version: u32,
}

/// Version 1: holders by name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerV1 {
    #[serde(rename = "version")]
    _version: u32,
    grants: Vec<GrantV1>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantV1 {
    id: GrantId,
    rule: Rule,
    created_ms: u64,
    holders: Vec<HolderV1>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HolderV1 {
    client: String,
    expires_ms: u64,
    request_id: String,
}

impl LedgerV1 {
    /// The same grants with each holder's name replaced by the key it is enrolled with in
    /// `registry`; holders whose name is not enrolled are dropped.
    fn migrate(self, registry: &ClientRegistry) -> (Ledger, Migration) {
        let mut migration = Migration {
            from_version: 1,
            ..Migration::default()
        };
        let grants = self
            .grants
            .into_iter()
            .map(|g| {
                let mut holders: Vec<Holder> = Vec::new();
                for h in g.holders {
                    let Some(client) = registry.iter().find(|c| c.name == h.client) else {
                        migration.holders_dropped.push((g.id.clone(), h.client));
                        continue;
                    };
                    migration.holders_kept += 1;
                    holders.push(Holder {
                        client: h.client,
                        key: client.key,
                        expires_ms: h.expires_ms,
                        request_id: h.request_id,
                    });
                }
                Grant {
                    id: g.id,
                    rule: g.rule,
                    created_ms: g.created_ms,
                    holders,
                    uncertain: false,
                }
            })
            .collect();
        (
            Ledger {
                version: LEDGER_VERSION,
                grants,
                users: Vec::new(),
            },
            migration,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::firewall::rule::Proto;

    fn key(b: u8) -> PublicKey {
        sesame_proto::SecretKey::from_hex(&hex::encode([b; 32]))
            .expect("hex")
            .public_key()
    }

    fn grant(id: &str, port: u16) -> Grant {
        Grant {
            id: id.parse().expect("id"),
            rule: Rule::new("203.0.113.5".parse().expect("ip"), port, Proto::Tcp).expect("rule"),
            created_ms: 1,
            holders: vec![Holder {
                client: "alice".into(),
                key: key(1),
                expires_ms: 100,
                request_id: "r".into(),
            }],
            uncertain: false,
        }
    }

    fn file(dir: &Path) -> LedgerFile {
        LedgerFile::new(dir, &dir.join("clients.toml"))
    }

    #[test]
    fn saves_and_reads_back_under_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = file(dir.path());
        let mut locked = file.lock().expect("lock");
        assert!(locked.ledger.grants.is_empty());
        locked.ledger.grants.push(grant("fw-0000000000000001", 22));
        let mut unsure = grant("fw-0000000000000002", 23);
        unsure.holders.clear();
        unsure.uncertain = true;
        locked.ledger.grants.push(unsure.clone());
        locked.save().expect("save");
        drop(locked);
        let again = file.lock().expect("lock");
        assert_eq!(
            again.ledger.grants,
            vec![grant("fw-0000000000000001", 22), unsure]
        );
        assert_eq!(again.migrated, None);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(file.path()).expect("meta").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(file.path()).expect("read");
        assert_eq!(text.matches("\"uncertain\"").count(), 1, "only when set: {text}");
        assert!(text.contains(&key(1).to_string()), "holders are keys: {text}");
    }

    #[test]
    fn the_lock_excludes_other_holders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = file(dir.path());
        let held = file.lock().expect("lock");
        let other = file.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let _l = other.lock().expect("lock");
            tx.send(()).expect("send");
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200)).is_err(),
            "got the lock while held"
        );
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("lock after release");
        t.join().expect("thread");
    }

    #[test]
    fn corrupt_ledgers_are_refused_and_can_be_moved_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = file(dir.path());
        let holder = format!(
            r#"{{"client":"a","key":"{}","expires_ms":1,"request_id":"r"}}"#,
            key(1)
        );
        for bad in [
            "not json".to_owned(),
            r#"{"version":4,"grants":[]}"#.to_owned(),
            r#"{"version":3,"grants":[],"users":[{"id":"key-0000000000000001","account":"dave","change":{"key":"ssh-ed25519 AAAA"},"created_ms":1,"holders":[],"extra":1}]}"#.to_owned(),
            r#"{"version":3,"grants":[],"users":[{"id":"fw-0000000000000001","account":"dave","change":{"key":"ssh-ed25519 AAAA"},"created_ms":1,"holders":[]}]}"#.to_owned(),
            r#"{"version":3,"grants":[],"users":[{"id":"key-0000000000000001","account":"dave","change":{"shell":"/bin/sh"},"created_ms":1,"holders":[]}]}"#.to_owned(),
            r#"{"version":2,"grants":[],"users":[]}"#.to_owned(),
            r#"{"version":2,"grants":[],"extra":1}"#.to_owned(),
            r#"{"version":1,"grants":[],"extra":1}"#.to_owned(),
            r#"{"version":2,"grants":[{"id":"fw-x","rule":{"source":"1.2.3.4","port":22,"proto":"tcp"},"created_ms":1,"holders":[]}]}"#.to_owned(),
            // A version 2 holder without its key, or with a key that is not one.
            r#"{"version":2,"grants":[{"id":"fw-0000000000000001","rule":{"source":"1.2.3.4","port":22,"proto":"tcp"},"created_ms":1,"holders":[{"client":"a","expires_ms":1,"request_id":"r"}]}]}"#.to_owned(),
            format!(r#"{{"version":2,"grants":[{{"id":"fw-0000000000000001","rule":{{"source":"1.2.3.4","port":22,"proto":"tcp"}},"created_ms":1,"holders":[{}]}}]}}"#, holder.replace(&key(1).to_string(), "zz")),
            // A version 1 holder with a key is neither version.
            format!(r#"{{"version":1,"grants":[{{"id":"fw-0000000000000001","rule":{{"source":"1.2.3.4","port":22,"proto":"tcp"}},"created_ms":1,"holders":[{holder}]}}]}}"#),
        ] {
            std::fs::write(file.path(), &bad).expect("write");
            let err = file.lock().expect_err(&bad);
            assert!(matches!(err, LedgerError::Corrupt { .. }), "{bad}: {err}");
        }
        let twice = Ledger {
            version: LEDGER_VERSION,
            grants: vec![grant("fw-0000000000000001", 22), grant("fw-0000000000000002", 22)],
            users: Vec::new(),
        };
        std::fs::write(file.path(), serde_json::to_vec(&twice).expect("json")).expect("write");
        assert!(
            file.lock()
                .expect_err("same rule twice")
                .to_string()
                .contains("appears twice")
        );
        let aside = file.quarantine(7).expect("quarantine");
        assert!(aside.ends_with("grants.json.corrupt-7") && aside.exists());
        assert!(file.lock().expect("fresh").ledger.grants.is_empty());
    }

    #[test]
    fn a_version_1_ledger_is_migrated_once_to_the_keys_the_names_have_now() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = file(dir.path());
        let mut registry = ClientRegistry::default();
        registry.add("alice", key(1), vec![]).expect("alice");
        registry.add("bob", key(2), vec![]).expect("bob");
        registry.save(file.clients()).expect("registry");
        let v1 = r#"{"version": 1, "grants": [
            {"id": "fw-0000000000000001", "rule": {"source": "203.0.113.5", "port": 22, "proto": "tcp"},
             "created_ms": 1, "holders": [
                {"client": "alice", "expires_ms": 100, "request_id": "r1"},
                {"client": "gone", "expires_ms": 300, "request_id": "r2"}]},
            {"id": "fw-0000000000000002", "rule": {"source": "203.0.113.6", "port": 22, "proto": "tcp"},
             "created_ms": 2, "holders": [{"client": "gone", "expires_ms": 300, "request_id": "r3"}]}]}"#;
        std::fs::write(file.path(), v1).expect("v1");
        let locked = file.lock().expect("migrates");
        let mut first = grant("fw-0000000000000001", 22);
        first.holders[0].request_id = "r1".into();
        assert_eq!(locked.ledger.version, LEDGER_VERSION);
        assert_eq!(locked.ledger.grants[0], first);
        assert_eq!(locked.ledger.grants[1].id.as_str(), "fw-0000000000000002");
        assert!(locked.ledger.grants[1].holders.is_empty(), "kept, held by nobody");
        let id = |s: &str| s.parse::<GrantId>().expect("id");
        assert_eq!(
            locked.migrated,
            Some(Migration {
                from_version: 1,
                holders_kept: 1,
                holders_dropped: vec![
                    (id("fw-0000000000000001"), "gone".into()),
                    (id("fw-0000000000000002"), "gone".into())
                ],
            })
        );
        drop(locked);
        // Written back as version 2: read once.
        let again = file.lock().expect("lock");
        assert_eq!(again.migrated, None);
        assert_eq!(again.ledger.grants.len(), 2);

        // Without a readable registry nothing is guessed (and nothing is quarantined).
        std::fs::write(file.path(), v1).expect("v1");
        std::fs::write(file.clients(), "not toml [").expect("break registry");
        drop(again);
        let err = file.lock().expect_err("no registry");
        assert!(matches!(err, LedgerError::Migration { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(file.path()).expect("kept"), v1);
    }

    fn key_grant(id: &str, account: &str) -> UserGrant {
        UserGrant {
            id: id.parse().expect("id"),
            account: account.into(),
            change: UserChange::Key(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpyo4ZeTj/fgjh+FvzKwzxzIh8WWnHh6ELIpKiD6cti".into(),
            ),
            created_ms: 1,
            holders: vec![Holder {
                client: "dave".into(),
                key: key(1),
                expires_ms: 500,
                request_id: "r".into(),
            }],
        }
    }

    #[test]
    fn a_version_2_ledger_is_read_with_no_keys_and_written_back_as_version_3() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = file(dir.path());
        let v2 = serde_json::json!({"version": 2, "grants": [grant("fw-0000000000000001", 22)]});
        std::fs::write(file.path(), v2.to_string()).expect("v2");
        let mut locked = file.lock().expect("reads");
        assert_eq!(locked.ledger.grants, [grant("fw-0000000000000001", 22)]);
        assert!(locked.ledger.users.is_empty());
        assert_eq!(locked.migrated.as_ref().map(|m| m.from_version), Some(2));
        locked
            .ledger
            .users
            .push(key_grant("key-0000000000000001", "dave"));
        locked.save().expect("save");
        drop(locked);
        let again = file.lock().expect("reads");
        assert_eq!(again.migrated, None);
        assert_eq!(again.ledger.version, 3);
        assert_eq!(again.ledger.users, [key_grant("key-0000000000000001", "dave")]);
        let k = &again.ledger.users[0];
        assert!(
            std::fs::read_to_string(file.path()).expect("read").contains(
                r#""change": {
        "key": "ssh-ed25519"#
            ),
            "the change names its kind"
        );
        assert_eq!(k.expires_ms(), 500);
        assert!(k.is_live(499) && !k.is_live(500));
    }

    #[test]
    fn the_same_change_of_an_account_is_one_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = file(dir.path());
        let mut sudo = key_grant("grp-0000000000000003", "dave");
        sudo.change = UserChange::Group("sudo".into());
        let mut mislabelled = sudo.clone();
        mislabelled.id = "key-0000000000000004".parse().expect("id");
        for users in [
            vec![
                key_grant("key-0000000000000001", "dave"),
                key_grant("key-0000000000000002", "dave"),
            ],
            vec![
                key_grant("key-0000000000000001", "dave"),
                key_grant("key-0000000000000001", "erin"),
            ],
            vec![sudo.clone(), sudo.clone()],
            vec![mislabelled],
        ] {
            let ledger = Ledger {
                version: LEDGER_VERSION,
                grants: Vec::new(),
                users,
            };
            std::fs::write(file.path(), serde_json::to_vec(&ledger).expect("json")).expect("write");
            let err = file.lock().expect_err("twice");
            assert!(
                err.to_string().contains("appears twice") || err.to_string().contains("is not a grp id"),
                "{err}"
            );
        }
        let ledger = Ledger {
            version: LEDGER_VERSION,
            grants: Vec::new(),
            users: vec![
                key_grant("key-0000000000000001", "dave"),
                key_grant("key-0000000000000002", "erin"),
                sudo,
            ],
        };
        std::fs::write(file.path(), serde_json::to_vec(&ledger).expect("json")).expect("write");
        assert_eq!(file.lock().expect("two accounts").ledger.users.len(), 3);
        for bad in [
            "key-00",
            "fw-0000000000000001",
            "key-000000000000000G",
            "key-00000000000000001",
            "usr-0000000000000001",
        ] {
            assert!(bad.parse::<UserGrantId>().is_err(), "{bad}");
        }
        let group = UserChange::Group("adm".into());
        assert!(UserGrantId::random(&group).as_str().starts_with("grp-"));
        assert!(
            UserGrantId::random(&group)
                .as_str()
                .parse::<UserGrantId>()
                .is_ok()
        );
    }

    #[test]
    fn expiry_is_the_latest_hold() {
        let mut g = grant("fw-0000000000000001", 22);
        g.holders.push(Holder {
            client: "bob".into(),
            key: key(2),
            expires_ms: 300,
            request_id: "s".into(),
        });
        assert_eq!(g.expires_ms(), 300);
        assert!(g.is_live(299) && !g.is_live(300));
        assert_eq!(g.holder(&key(2)).map(|h| h.expires_ms), Some(300));
        assert_eq!(g.holder(&key(3)), None);
        g.holders.clear();
        assert!(!g.is_live(0));
    }
}
