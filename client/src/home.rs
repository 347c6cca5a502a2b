//! The client's directory: `id.key` (its secret key, 0600) and `hosts.toml` (the hosts it
//! talks to, each pinned by public key and certificate fingerprint).
//!
//! The directory is `$SESAME_HOME`, else `$XDG_CONFIG_HOME/sesame`, else `~/.config/sesame`.
//!
//! ```toml
//! [hosts.web1]
//! addr = "203.0.113.10:7443"
//! key = "9b1c…"          # sesamed show: host key
//! cert_sha256 = "4e0a…"  # sesamed show: cert sha256
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

/// A host the client trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// `IP:PORT` or `NAME:PORT` of its QUIC listener.
    pub addr: String,
    /// Its crypto_box public key.
    pub key: PublicKey,
    /// SHA-256 of its TLS certificate, 64 hex characters.
    pub cert_sha256: String,
    /// The daemon's own host name when it differs from the name the client uses for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl HostEntry {
    /// The name requests must carry: the daemon's configured host name.
    pub fn daemon_name<'a>(&'a self, alias: &'a str) -> &'a str {
        self.name.as_deref().unwrap_or(alias)
    }
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

    /// All pinned hosts.
    pub fn hosts(&self) -> Result<BTreeMap<String, HostEntry>, HomeError> {
        let path = self.dir.join(HOSTS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(source) => return Err(HomeError::Io { path, source }),
        };
        let file: HostsFile = toml::from_str(&text).map_err(|e| HomeError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        for (name, entry) in &file.hosts {
            check_fingerprint(&entry.cert_sha256).map_err(|message| HomeError::Invalid {
                path: path.clone(),
                message: format!("hosts.{name}: {message}"),
            })?;
        }
        Ok(file.hosts)
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
        check_fingerprint(&entry.cert_sha256).map_err(|message| HomeError::Invalid {
            path: path.clone(),
            message: format!("--cert-sha256: {message}"),
        })?;
        let mut hosts = self.hosts()?;
        if hosts.contains_key(name) {
            return Err(HomeError::HostExists(name.to_owned()));
        }
        hosts.insert(
            name.to_owned(),
            HostEntry {
                cert_sha256: entry.cert_sha256.to_ascii_lowercase(),
                ..entry
            },
        );
        self.save_hosts(hosts)
    }

    /// Forgets a host.
    pub fn remove_host(&self, name: &str) -> Result<(), HomeError> {
        let mut hosts = self.hosts()?;
        hosts
            .remove(name)
            .ok_or_else(|| HomeError::UnknownHost(name.to_owned()))?;
        self.save_hosts(hosts)
    }

    fn create_dir(&self) -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
    }

    fn save_hosts(&self, hosts: BTreeMap<String, HostEntry>) -> Result<(), HomeError> {
        let path = self.dir.join(HOSTS_FILE);
        let io = |source| HomeError::Io {
            path: path.clone(),
            source,
        };
        self.create_dir().map_err(io)?;
        let text = toml::to_string_pretty(&HostsFile { hosts }).map_err(|e| HomeError::Invalid {
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
            addr: "127.0.0.1:7443".into(),
            key: PublicKey::from_bytes([7; 32]),
            cert_sha256: "AB".repeat(32),
            name: None,
        };
        home.add_host("web1", entry.clone()).expect("add");
        assert_eq!(home.host("web1").expect("host").cert_sha256, "ab".repeat(32));
        assert!(matches!(
            home.add_host("web1", entry.clone()),
            Err(HomeError::HostExists(_))
        ));
        let short = HostEntry {
            cert_sha256: "abcd".into(),
            ..entry
        };
        assert!(
            home.add_host("web2", short).is_err(),
            "a short fingerprint is refused"
        );
        home.remove_host("web1").expect("remove");
        assert!(matches!(home.host("web1"), Err(HomeError::UnknownHost(_))));
    }
}
