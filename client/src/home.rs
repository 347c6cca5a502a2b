//! The client's directory: `id.key` (its secret key, 0600) and `hosts.toml` (the hosts it
//! talks to, each pinned by public key and certificate fingerprint).
//!
//! The directory is `$SESAME_HOME`, else `$XDG_CONFIG_HOME/sesame`, else `~/.config/sesame`.
//!
//! ```toml
//! [hosts.web1]                 # reached over QUIC
//! addr = "203.0.113.10:7443"
//! key = "9b1c…"                # sesamed show: host key
//! cert_sha256 = "4e0a…"        # sesamed show: cert sha256
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
use sesame_proto::{PublicKey, SecretKey};

/// The secret key file's name.
pub const KEY_FILE: &str = "id.key";
/// The hosts file's name.
pub const HOSTS_FILE: &str = "hosts.toml";

/// A host the client trusts: its key, and how to reach it (QUIC, SQS or both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// `IP:PORT` or `NAME:PORT` of its QUIC listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// Its crypto_box public key.
    pub key: PublicKey,
    /// SHA-256 of its TLS certificate, 64 hex characters (with `addr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
    /// The daemon's own host name when it differs from the name the client uses for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its SQS request queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqs: Option<SqsRoute>,
}

/// Where a host's SQS request queue is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsRoute {
    /// The queue's name (`sesame-req-<host>`) or URL.
    pub queue: String,
    /// Its region (else `AWS_REGION` or the profile's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The SQS endpoint (else `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL` or AWS's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// The AWS profile (else `AWS_PROFILE` or `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl SqsRoute {
    /// The AWS settings it names.
    pub fn settings(&self) -> sesame_sqs::Settings {
        sesame_sqs::Settings {
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            profile: self.profile.clone(),
        }
    }
}

impl HostEntry {
    /// The name requests must carry: the daemon's configured host name.
    pub fn daemon_name<'a>(&'a self, alias: &'a str) -> &'a str {
        self.name.as_deref().unwrap_or(alias)
    }

    /// Its QUIC address and pinned certificate fingerprint, if it is reached over QUIC.
    pub fn quic(&self) -> Option<(&str, &str)> {
        Some((self.addr.as_deref()?, self.cert_sha256.as_deref()?))
    }

    /// The transport used when none is asked for: QUIC if the host has an address, else SQS.
    pub fn default_transport(&self) -> Transport {
        if self.addr.is_some() {
            Transport::Quic
        } else {
            Transport::Sqs
        }
    }

    fn check(&self) -> Result<(), String> {
        match (&self.addr, &self.cert_sha256) {
            (Some(_), Some(fp)) => check_fingerprint(fp)?,
            (None, None) => {}
            (Some(_), None) => return Err("addr needs cert_sha256 (the pinned certificate)".into()),
            (None, Some(_)) => return Err("cert_sha256 without addr".into()),
        }
        if let Some(sqs) = &self.sqs
            && sesame_sqs::queue_name(&sqs.queue).is_none()
        {
            return Err(format!("sqs.queue {:?} is not a queue name or URL", sqs.queue));
        }
        if self.addr.is_none() && self.sqs.is_none() {
            return Err("no route: give it addr (QUIC) or sqs (a queue)".into());
        }
        Ok(())
    }
}

/// How a request travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// QUIC to the host's address.
    Quic,
    /// The host's SQS request queue.
    Sqs,
}

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
        let path = self.dir.join(KEY_FILE);
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

fn check_fingerprint(fp: &str) -> Result<(), String> {
    if fp.len() == 64 && fp.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!(
            "{fp:?} is not a full SHA-256 fingerprint (64 hex characters)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            key: PublicKey::from_bytes([7; 32]),
            cert_sha256: Some("AB".repeat(32)),
            name: None,
            sqs: None,
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
        home.remove_host("web1").expect("remove");
        assert!(matches!(home.host("web1"), Err(HomeError::UnknownHost(_))));
    }

    #[test]
    fn sqs_hosts_and_groups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = ClientHome::at(dir.path());
        let sqs = |queue: &str| HostEntry {
            addr: None,
            key: PublicKey::from_bytes([7; 32]),
            cert_sha256: None,
            name: None,
            sqs: Some(SqsRoute {
                queue: queue.into(),
                region: None,
                endpoint_url: None,
                profile: None,
            }),
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
