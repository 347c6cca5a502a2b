//! The client's directory: `id.key` (its secret key, 0600), `hosts.toml` (the hosts it
//! talks to, each pinned by public key, the SHA-256 of the key it will rotate to, and
//! certificate fingerprint: [`crate::hosts`]) and `receipts` (the hosts' audit records of its answers, see
//! [`crate::receipts`]).
//!
//! The directory is `$SESAME_HOME`, else `$XDG_CONFIG_HOME/sesame`, else `~/.config/sesame`.
//!
//! ```toml
//! [hosts.web1]                 # reached over QUIC
//! addr = "203.0.113.10:7443"
//! key = "9b1c…"                # sesamed show: host key
//! next_key_sha256 = "5d2f…"    # sesamed show: next key (without it, rotations are not followed)
//! cert_sha256 = "4e0a…"        # sesamed show: cert sha256
//!
//! labels = { role = "web" }   # sesame host label; sesame run --where role=web
//!
//! [hosts.db1]                  # reached over SQS (nothing listens on it)
//! key = "77d0…"
//! sqs = { queue = "sesame-req-db1", region = "eu-west-1" }
//!
//! [groups]
//! web = ["web1", "web2"]
//! ```

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sesame_proto::{HostKeyNote, HostPin, PublicKey, Sealer, SecretKey};

pub use crate::hosts::{HostEntry, SqsRoute, Transport};
use crate::labels::{LabelEdit, Labels};
use crate::pin::Rotation;
use crate::receipts::{RECEIPTS_FILE, ReceiptsFile};

/// The secret key file's name.
pub const KEY_FILE: &str = "id.key";
/// A new key staged by `sesame key rotate`, not yet in use.
pub const NEXT_KEY_FILE: &str = "id.key.next";
/// The key replaced by `sesame key rotate --finish`, kept until the next rotation.
pub const PREVIOUS_KEY_FILE: &str = "id.key.previous";
/// The hosts file's name.
pub const HOSTS_FILE: &str = "hosts.toml";

/// The client's directory.
#[derive(Debug, Clone)]
pub struct ClientHome {
    dir: PathBuf,
}

/// Why the client's files could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HomeError {
    /// No home directory could be found.
    #[error("cannot find the client directory: set SESAME_HOME")]
    NoHome,
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file's contents are wrong.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No key yet.
    #[error("no client key at {0}: run `sesame keygen` first")]
    NoKey(PathBuf),
    /// Refusing to overwrite a key.
    #[error("{0} already exists; refusing to overwrite your key (move it away first)")]
    KeyExists(PathBuf),
    /// The host is not in hosts.toml.
    #[error("unknown host {0:?}: add it with `sesame host add`")]
    UnknownHost(String),
    /// The group is not in hosts.toml.
    #[error("unknown host group {0:?}: define it with `sesame group set`")]
    UnknownGroup(String),
    /// The host is already in hosts.toml.
    #[error("host {0:?} is already pinned; remove it first to change its keys")]
    HostExists(String),
}

impl ClientHome {
    /// The directory from the environment.
    pub fn from_env() -> Result<Self, HomeError> {
        if let Some(dir) = std::env::var_os("SESAME_HOME") {
            return Ok(Self::at(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME") {
            return Ok(Self::at(Path::new(&dir).join("sesame")));
        }
        let home = std::env::var_os("HOME").ok_or(HomeError::NoHome)?;
        Ok(Self::at(Path::new(&home).join(".config").join("sesame")))
    }

    /// A specific directory.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The receipts file.
    pub fn receipts(&self) -> ReceiptsFile {
        ReceiptsFile::at(self.dir.join(RECEIPTS_FILE))
    }

    /// Creates a new key pair; refuses to overwrite one.
    pub fn keygen(&self) -> Result<SecretKey, HomeError> {
        let path = self.dir.join(KEY_FILE);
        let io = |source| HomeError::Io {
            path: path.clone(),
            source,
        };
        self.create_dir().map_err(io)?;
        let secret = SecretKey::generate(&mut rand_core::OsRng);
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(HomeError::KeyExists(path));
            }
            Err(e) => return Err(io(e)),
        };
        let mut text = secret.to_hex();
        text.push('\n');
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io)?;
        Ok(secret)
    }

    /// Loads the secret key, refusing one others can read.
    pub fn key(&self) -> Result<SecretKey, HomeError> {
        read_key(self.dir.join(KEY_FILE))
    }

    /// The key staged by `sesame key rotate`: the one there, or a new one written now (0600).
    /// Returns it and whether it was made now.
    pub fn stage_key(&self) -> Result<(SecretKey, bool), HomeError> {
        self.key()?;
        let path = self.dir.join(NEXT_KEY_FILE);
        match read_key(path.clone()) {
            Ok(staged) => return Ok((staged, false)),
            Err(HomeError::NoKey(_)) => {}
            Err(e) => return Err(e),
        }
        let secret = SecretKey::generate(&mut rand_core::OsRng);
        write_key(&path, &secret)?;
        Ok((secret, true))
    }

    /// Puts the staged key in use: the current key moves to `id.key.previous` (replacing one
    /// kept by an earlier rotation), the staged one to `id.key`. Returns (old, new) public keys.
    ///
    /// The old key is copied before the staged one is renamed over it, so a crash in between
    /// leaves the old key in use and the new one still staged: run it again.
    pub fn finish_rotation(&self) -> Result<(PublicKey, PublicKey), HomeError> {
        let next_path = self.dir.join(NEXT_KEY_FILE);
        let next = match read_key(next_path.clone()) {
            Err(HomeError::NoKey(_)) => {
                return Err(HomeError::Invalid {
                    path: next_path,
                    message: "no key is staged: run `sesame key rotate` first".into(),
                });
            }
            other => other?,
        };
        let current = self.key()?;
        write_key(&self.dir.join(PREVIOUS_KEY_FILE), &current)?;
        let key_path = self.dir.join(KEY_FILE);
        std::fs::rename(&next_path, &key_path)
            .and_then(|()| std::fs::File::open(&self.dir)?.sync_all())
            .map_err(|source| HomeError::Io {
                path: key_path,
                source,
            })?;
        Ok((current.public_key(), next.public_key()))
    }

    /// Follows the rotation `note` announces for host `name`, whose answer opened under `old`,
    /// as the client `sealer`: re-pins the host only as [`HostPin::follow`] allows (to the key
    /// whose digest is pinned, taking the next digest only from that key).
    pub fn follow_rotation(
        &self,
        name: &str,
        old: &PublicKey,
        note: &HostKeyNote,
        sealer: &Sealer,
    ) -> Result<Rotation, HomeError> {
        let mut file = self.load()?;
        let Some(entry) = file.hosts.get_mut(name).filter(|e| e.key == *old) else {
            return Ok(Rotation::Stale);
        };
        match entry.pin().follow(note, sealer) {
            Ok(followed) => {
                entry.key = followed.pin.key;
                entry.next_key_sha256 = followed.pin.next_key_sha256;
                self.save(&file)?;
                Ok(Rotation::Followed(followed))
            }
            Err(refused) => Ok(Rotation::Refused(refused)),
        }
    }

    /// Re-pins host `name` by hand (`sesame host repin`): its key and next key's digest; its
    /// routes, certificate pin and groups stay.
    pub fn set_pin(&self, name: &str, pin: HostPin) -> Result<(), HomeError> {
        let mut file = self.load()?;
        let entry = file
            .hosts
            .get_mut(name)
            .ok_or_else(|| HomeError::UnknownHost(name.to_owned()))?;
        entry.key = pin.key;
        entry.next_key_sha256 = pin.next_key_sha256;
        self.save(&file)
    }

    /// Changes the labels of pinned host `name`; its labels after the change.
    pub fn edit_labels(&self, name: &str, edits: &[LabelEdit]) -> Result<Labels, HomeError> {
        let mut file = self.load()?;
        let entry = file
            .hosts
            .get_mut(name)
            .ok_or_else(|| HomeError::UnknownHost(name.to_owned()))?;
        entry.labels.apply(edits);
        let labels = entry.labels.clone();
        self.save(&file)?;
        Ok(labels)
    }

    fn load(&self) -> Result<HostsFile, HomeError> {
        let path = self.dir.join(HOSTS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HostsFile::default()),
            Err(source) => return Err(HomeError::Io { path, source }),
        };
        let file: HostsFile = toml::from_str(&text).map_err(|e| HomeError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        for (name, entry) in &file.hosts {
            entry.check().map_err(|message| HomeError::Invalid {
                path: path.clone(),
                message: format!("hosts.{name}: {message}"),
            })?;
        }
        for (group, members) in &file.groups {
            if let Some(m) = members.iter().find(|m| !file.hosts.contains_key(*m)) {
                return Err(HomeError::Invalid {
                    path: path.clone(),
                    message: format!("groups.{group}: no host {m:?}"),
                });
            }
        }
        Ok(file)
    }

    /// All pinned hosts.
    pub fn hosts(&self) -> Result<BTreeMap<String, HostEntry>, HomeError> {
        Ok(self.load()?.hosts)
    }

    /// All host groups.
    pub fn groups(&self) -> Result<BTreeMap<String, Vec<String>>, HomeError> {
        Ok(self.load()?.groups)
    }

    /// Sets (replaces) group `name` to `members`, which must all be pinned hosts.
    pub fn set_group(&self, name: &str, members: &[String]) -> Result<(), HomeError> {
        let mut file = self.load()?;
        if let Some(m) = members.iter().find(|m| !file.hosts.contains_key(*m)) {
            return Err(HomeError::UnknownHost(m.clone()));
        }
        file.groups.insert(name.to_owned(), members.to_vec());
        self.save(&file)
    }

    /// Removes group `name`.
    pub fn remove_group(&self, name: &str) -> Result<(), HomeError> {
        let mut file = self.load()?;
        file.groups
            .remove(name)
            .ok_or_else(|| HomeError::UnknownGroup(name.to_owned()))?;
        self.save(&file)
    }

    /// The hosts of group `name`.
    pub fn group(&self, name: &str) -> Result<Vec<String>, HomeError> {
        self.load()?
            .groups
            .remove(name)
            .ok_or_else(|| HomeError::UnknownGroup(name.to_owned()))
    }

    /// One pinned host.
    pub fn host(&self, name: &str) -> Result<HostEntry, HomeError> {
        self.hosts()?
            .remove(name)
            .ok_or_else(|| HomeError::UnknownHost(name.to_owned()))
    }

    /// Pins a new host.
    pub fn add_host(&self, name: &str, entry: HostEntry) -> Result<(), HomeError> {
        let path = self.dir.join(HOSTS_FILE);
        let entry = HostEntry {
            cert_sha256: entry.cert_sha256.map(|fp| fp.to_ascii_lowercase()),
            ..entry
        };
        entry
            .check()
            .map_err(|message| HomeError::Invalid { path, message })?;
        let mut file = self.load()?;
        if file.hosts.contains_key(name) {
            return Err(HomeError::HostExists(name.to_owned()));
        }
        file.hosts.insert(name.to_owned(), entry);
        self.save(&file)
    }

    /// Forgets a host (and takes it out of its groups).
    pub fn remove_host(&self, name: &str) -> Result<(), HomeError> {
        let mut file = self.load()?;
        file.hosts
            .remove(name)
            .ok_or_else(|| HomeError::UnknownHost(name.to_owned()))?;
        for members in file.groups.values_mut() {
            members.retain(|m| m != name);
        }
        self.save(&file)
    }

    fn create_dir(&self) -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
    }

    fn save(&self, file: &HostsFile) -> Result<(), HomeError> {
        let path = self.dir.join(HOSTS_FILE);
        let io = |source| HomeError::Io {
            path: path.clone(),
            source,
        };
        self.create_dir().map_err(io)?;
        let text = toml::to_string_pretty(file).map_err(|e| HomeError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let tmp = self.dir.join(format!(".{HOSTS_FILE}.tmp.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostsFile {
    #[serde(default)]
    hosts: BTreeMap<String, HostEntry>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    groups: BTreeMap<String, Vec<String>>,
}

/// Reads a secret key file, refusing one others can read.
fn read_key(path: PathBuf) -> Result<SecretKey, HomeError> {
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => zeroize::Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(HomeError::NoKey(path)),
        Err(source) => return Err(HomeError::Io { path, source }),
    };
    let mode = std::fs::metadata(&path)
        .map_err(|source| HomeError::Io {
            path: path.clone(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(HomeError::Invalid {
            path,
            message: format!(
                "mode {:04o} lets others read your key; chmod 600 it",
                mode & 0o777
            ),
        });
    }
    SecretKey::from_hex(&text).map_err(|e| HomeError::Invalid {
        path,
        message: e.to_string(),
    })
}

/// Writes a secret key file atomically (0600, synced).
fn write_key(path: &Path, secret: &SecretKey) -> Result<(), HomeError> {
    let io = |source| HomeError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    let mut text = secret.to_hex();
    text.push('\n');
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use sesame_proto::RotationRefused;

    use super::*;

    #[test]
    fn a_rotation_stages_a_key_then_swaps_it_in_keeping_the_old_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = ClientHome::at(dir.path().join("h"));
        assert!(
            matches!(home.stage_key(), Err(HomeError::NoKey(_))),
            "nothing to rotate"
        );
        let first = home.keygen().expect("keygen").public_key();
        assert!(home.finish_rotation().is_err(), "nothing staged");
        let (staged, fresh) = home.stage_key().expect("stage");
        assert!(fresh);
        let (again, fresh) = home.stage_key().expect("stage again");
        assert!(!fresh, "the staged key is kept, not replaced");
        assert_eq!(again.public_key(), staged.public_key());
        assert_eq!(home.key().expect("key").public_key(), first, "still in use");
        let (old, new) = home.finish_rotation().expect("finish");
        assert_eq!((old, new), (first, staged.public_key()));
        assert_eq!(home.key().expect("key").public_key(), new);
        let kept = read_key(home.dir().join(PREVIOUS_KEY_FILE)).expect("previous");
        assert_eq!(kept.public_key(), first);
        assert!(!home.dir().join(NEXT_KEY_FILE).exists());
        for f in [KEY_FILE, PREVIOUS_KEY_FILE] {
            let mode = std::fs::metadata(home.dir().join(f))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }

    /// Issue 19 (9): whoever holds only the host's old key writes a note naming a key of theirs;
    /// the client re-pins only to the key whose digest it pinned, and takes the digest after
    /// that from the new key.
    #[test]
    fn a_rotation_is_followed_only_to_the_committed_key() {
        use rand_core::OsRng;
        let dir = tempfile::tempdir().expect("tempdir");
        let home = ClientHome::at(dir.path());
        let sealer = |_: u8| Sealer::new(SecretKey::generate(&mut OsRng));
        let (k0, k1, k2, thief) = (sealer(0), sealer(1), sealer(2), sealer(3));
        let client = Sealer::new(SecretKey::generate(&mut OsRng));
        let me = client.public_key();
        let entry = HostEntry {
            addr: Some("127.0.0.1:1".into()),
            next_key_sha256: Some(k1.public_key().digest()),
            cert_sha256: Some("ab".repeat(32)),
            ..HostEntry::new(k0.public_key())
        };
        home.add_host("web", entry.clone()).expect("add");
        home.set_group("all", &["web".into()]).expect("group");

        let forged =
            HostKeyNote::new(&mut OsRng, &thief, &me, Some(thief.public_key().digest()), 9).expect("note");
        let got = home
            .follow_rotation("web", &k0.public_key(), &forged, &client)
            .expect("follow");
        assert!(
            matches!(got, Rotation::Refused(RotationRefused::NotCommitted { .. })),
            "{got:?}"
        );
        assert_eq!(home.host("web").expect("host"), entry, "untouched");

        let genuine =
            HostKeyNote::new(&mut OsRng, &k1, &me, Some(k2.public_key().digest()), 9).expect("note");
        let got = home
            .follow_rotation("web", &k0.public_key(), &genuine, &client)
            .expect("follow");
        assert!(matches!(got, Rotation::Followed(_)), "{got:?}");
        let moved = home.host("web").expect("host");
        assert_eq!(moved.key, k1.public_key());
        assert_eq!(moved.next_key_sha256, Some(k2.public_key().digest()));
        assert_eq!(moved.addr, entry.addr, "routes stay");
        assert_eq!(home.group("all").expect("group"), ["web"]);
        // The same note again, or for a host no longer pinned to the old key: nothing to do.
        let again = home
            .follow_rotation("web", &k0.public_key(), &genuine, &client)
            .expect("follow");
        assert_eq!(again, Rotation::Stale);
        assert_eq!(
            home.follow_rotation("nope", &k0.public_key(), &genuine, &client)
                .expect("follow"),
            Rotation::Stale
        );

        // A pin made without the digest never follows by itself.
        home.set_pin(
            "web",
            HostPin {
                key: k0.public_key(),
                next_key_sha256: None,
            },
        )
        .expect("repin");
        let got = home
            .follow_rotation("web", &k0.public_key(), &genuine, &client)
            .expect("follow");
        assert_eq!(got, Rotation::Refused(RotationRefused::NoCommitment));
        assert_eq!(home.host("web").expect("host").key, k0.public_key());
    }

    #[test]
    fn keygen_once_then_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = ClientHome::at(dir.path().join("h"));
        assert!(matches!(home.key(), Err(HomeError::NoKey(_))));
        let k = home.keygen().expect("keygen");
        assert_eq!(home.key().expect("load").public_key(), k.public_key());
        assert!(matches!(home.keygen(), Err(HomeError::KeyExists(_))));
    }

    #[test]
    fn hosts_are_pinned_once_with_full_fingerprints() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = ClientHome::at(dir.path());
        let entry = HostEntry {
            addr: Some("127.0.0.1:7443".into()),
            cert_sha256: Some("AB".repeat(32)),
            ..HostEntry::new(PublicKey::from_bytes([7; 32]))
        };
        home.add_host("web1", entry.clone()).expect("add");
        assert_eq!(
            home.host("web1").expect("host").cert_sha256,
            Some("ab".repeat(32))
        );
        assert!(matches!(
            home.add_host("web1", entry.clone()),
            Err(HomeError::HostExists(_))
        ));
        let short = HostEntry {
            cert_sha256: Some("abcd".into()),
            ..entry.clone()
        };
        assert!(
            home.add_host("web2", short).is_err(),
            "a short fingerprint is refused"
        );
        let unpinned = HostEntry {
            cert_sha256: None,
            ..entry
        };
        assert!(home.add_host("web3", unpinned).is_err(), "an address needs a pin");
        let json = home.host("web1").expect("host").to_json("web1");
        assert_eq!(
            json,
            serde_json::json!({"name": "web1", "host_name": "web1", "key": "07".repeat(32),
                "next_key_sha256": null, "addr": "127.0.0.1:7443", "cert_sha256": "ab".repeat(32),
                "sqs": null, "labels": {}})
        );
        home.remove_host("web1").expect("remove");
        assert!(matches!(home.host("web1"), Err(HomeError::UnknownHost(_))));
    }

    #[test]
    fn sqs_hosts_and_groups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = ClientHome::at(dir.path());
        let sqs = |queue: &str| HostEntry {
            sqs: Some(SqsRoute {
                queue: queue.into(),
                region: None,
                endpoint_url: None,
                profile: None,
            }),
            ..HostEntry::new(PublicKey::from_bytes([7; 32]))
        };
        home.add_host("db1", sqs("sesame-req-db1")).expect("sqs host");
        assert_eq!(
            home.host("db1").expect("host").default_transport(),
            Transport::Sqs
        );
        assert!(home.add_host("db2", sqs("bad.name")).is_err());
        let nothing = HostEntry {
            sqs: None,
            ..sqs("x")
        };
        assert!(home.add_host("db3", nothing).is_err(), "a host needs a route");

        assert!(matches!(
            home.set_group("dbs", &["db1".into(), "db9".into()]),
            Err(HomeError::UnknownHost(_))
        ));
        home.set_group("dbs", &["db1".into()]).expect("group");
        assert_eq!(home.group("dbs").expect("group"), vec!["db1".to_owned()]);
        home.remove_host("db1").expect("remove");
        assert!(
            home.group("dbs").expect("group").is_empty(),
            "removed hosts leave their groups"
        );
        home.remove_group("dbs").expect("remove group");
        assert!(matches!(home.group("dbs"), Err(HomeError::UnknownGroup(_))));
    }
}
