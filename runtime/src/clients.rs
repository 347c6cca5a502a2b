//! The client registry (`clients.toml`): which public keys are enrolled, under which name, in
//! which groups. Enrolment is explicit; there is no trust on first use.
//!
//! ```toml
//! [clients.alice]
//! key = "3f0c…"            # 64 hex characters: `sesame key show`
//! groups = ["users"]
//! ```
//!
//! `sesamed client rekey` replaces a client's key and keeps the old one for a grace period
//! (`previous_key`, `previous_key_until_ms`), so the client can switch when it is ready.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sesame_proto::PublicKey;

use crate::config::check_name;
use crate::files;

/// An enrolled client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Its enrolled name (audit logs and policies use it).
    pub name: String,
    /// Its crypto_box public key.
    pub key: PublicKey,
    /// Its groups, for policy.
    pub groups: Vec<String>,
    /// The key it had before a rekey, and until when (Unix ms) that key is still accepted.
    pub previous: Option<(PublicKey, u64)>,
}

impl Client {
    /// Whether `key` speaks for this client at `now_ms`: its key, or its previous key before
    /// that one's time is up.
    pub fn accepts(&self, key: &PublicKey, now_ms: u64) -> bool {
        *key == self.key
            || self
                .previous
                .is_some_and(|(old, until)| *key == old && now_ms < until)
    }
}

/// All enrolled clients, indexed by key.
#[derive(Debug, Clone, Default)]
pub struct ClientRegistry {
    by_name: BTreeMap<String, Client>,
    by_key: HashMap<PublicKey, String>,
}

/// Why the registry could not be read, changed or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The registry file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid registry.
    #[error("{path}: {message}")]
    Parse {
        /// The registry file.
        path: PathBuf,
        /// What is wrong, with line and column when known.
        message: String,
    },
    /// The change asked for is not allowed.
    #[error("{0}")]
    Conflict(String),
}

impl ClientRegistry {
    /// Loads the registry; a missing file is an empty registry.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(RegistryError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let parse_err = |message: String| RegistryError::Parse {
            path: path.to_owned(),
            message,
        };
        let raw: RawRegistry = toml::from_str(&text).map_err(|e| parse_err(e.to_string()))?;
        let mut reg = Self::default();
        for (name, entry) in raw.clients {
            let key = entry
                .key
                .parse()
                .map_err(|e| parse_err(format!("clients.{name}.key: {e}")))?;
            let previous = match (entry.previous_key, entry.previous_key_until_ms) {
                (Some(k), Some(until)) => Some((
                    k.parse()
                        .map_err(|e| parse_err(format!("clients.{name}.previous_key: {e}")))?,
                    until,
                )),
                (None, None) => None,
                _ => {
                    return Err(parse_err(format!(
                        "clients.{name}: previous_key and previous_key_until_ms go together"
                    )));
                }
            };
            reg.add(&name, key, entry.groups)
                .map_err(|e| parse_err(e.to_string()))?;
            if let Some((old, until)) = previous {
                reg.keep_previous(&name, old, until)
                    .map_err(|e| parse_err(e.to_string()))?;
            }
        }
        Ok(reg)
    }

    /// Writes the registry atomically (mode 0600).
    pub fn save(&self, path: &Path) -> Result<(), RegistryError> {
        let raw = RawRegistry {
            clients: self
                .by_name
                .values()
                .map(|c| {
                    (
                        c.name.clone(),
                        RawClient {
                            key: c.key.to_string(),
                            groups: c.groups.clone(),
                            previous_key: c.previous.map(|(k, _)| k.to_string()),
                            previous_key_until_ms: c.previous.map(|(_, until)| until),
                        },
                    )
                })
                .collect(),
        };
        let text = toml::to_string_pretty(&raw).map_err(|e| RegistryError::Conflict(e.to_string()))?;
        let header = "# sesame client registry: edit with `sesamed client add|remove`.\n";
        files::write_atomic(path, format!("{header}{text}").as_bytes(), 0o600).map_err(|source| {
            RegistryError::Io {
                path: path.to_owned(),
                source,
            }
        })
    }

    /// Enrols a client. Names and groups must be names; a name or key may be enrolled once.
    pub fn add(&mut self, name: &str, key: PublicKey, groups: Vec<String>) -> Result<&Client, RegistryError> {
        check_name(name).map_err(|e| RegistryError::Conflict(format!("client name: {e}")))?;
        for g in &groups {
            check_name(g).map_err(|e| RegistryError::Conflict(format!("group of {name}: {e}")))?;
        }
        check_key(name, &key)?;
        if self.by_name.contains_key(name) {
            return Err(RegistryError::Conflict(format!(
                "client {name:?} is already enrolled"
            )));
        }
        if let Some(other) = self.by_key.get(&key) {
            return Err(RegistryError::Conflict(format!(
                "that key is already enrolled as {other:?}"
            )));
        }
        self.by_key.insert(key, name.to_owned());
        Ok(self.by_name.entry(name.to_owned()).or_insert(Client {
            name: name.to_owned(),
            key,
            groups,
            previous: None,
        }))
    }

    /// Gives client `name` the key `key`; its current key stays accepted until `until_ms`
    /// (a key kept by an earlier rekey is dropped). Returns the replaced key.
    pub fn rekey(&mut self, name: &str, key: PublicKey, until_ms: u64) -> Result<PublicKey, RegistryError> {
        check_key(name, &key)?;
        let client = self
            .by_name
            .get(name)
            .ok_or_else(|| RegistryError::Conflict(format!("no client named {name:?}")))?;
        if client.key == key {
            return Err(RegistryError::Conflict(format!("{name} already has that key")));
        }
        if let Some(other) = self.by_key.get(&key).filter(|other| *other != name) {
            return Err(RegistryError::Conflict(format!(
                "that key is already enrolled as {other:?}"
            )));
        }
        let old = client.key;
        if let Some((dropped, _)) = client.previous {
            self.by_key.remove(&dropped);
        }
        self.by_key.insert(key, name.to_owned());
        let client = self.by_name.get_mut(name).expect("looked up above");
        client.key = key;
        client.previous = Some((old, until_ms));
        Ok(old)
    }

    /// Records `old` as client `name`'s previous key, accepted until `until_ms` (loading).
    fn keep_previous(&mut self, name: &str, old: PublicKey, until_ms: u64) -> Result<(), RegistryError> {
        check_key(name, &old)?;
        if let Some(other) = self.by_key.get(&old) {
            return Err(RegistryError::Conflict(format!(
                "the previous key of {name} is already enrolled as {other:?}"
            )));
        }
        self.by_key.insert(old, name.to_owned());
        if let Some(c) = self.by_name.get_mut(name) {
            c.previous = Some((old, until_ms));
        }
        Ok(())
    }

    /// Removes a client by name and returns it.
    pub fn remove(&mut self, name: &str) -> Result<Client, RegistryError> {
        let client = self
            .by_name
            .remove(name)
            .ok_or_else(|| RegistryError::Conflict(format!("no client named {name:?}")))?;
        self.by_key.remove(&client.key);
        if let Some((old, _)) = client.previous {
            self.by_key.remove(&old);
        }
        Ok(client)
    }

    /// The client enrolled with `key`, if any.
    pub fn by_key(&self, key: &PublicKey) -> Option<&Client> {
        self.by_key.get(key).and_then(|name| self.by_name.get(name))
    }

    /// Clients in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Client> {
        self.by_name.values()
    }

    /// How many clients are enrolled.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether no client is enrolled.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Refuses keys that are weak or a second spelling of another key.
fn check_key(name: &str, key: &PublicKey) -> Result<(), RegistryError> {
    if key.is_small_order() {
        return Err(RegistryError::Conflict(format!(
            "the key of {name} is a weak (small-order) key; refusing it"
        )));
    }
    if !key.is_canonical() {
        // Another spelling of some key (top bit set, or not reduced mod p): it would let one
        // secret key be enrolled under two names.
        return Err(RegistryError::Conflict(format!(
            "the key of {name} is not in canonical form; refusing it"
        )));
    }
    Ok(())
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    #[serde(default)]
    clients: BTreeMap<String, RawClient>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    key: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_key_until_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PublicKey {
        PublicKey::from_bytes([b; 32])
    }

    #[test]
    fn add_save_load_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("clients.toml");
        let mut reg = ClientRegistry::load(&path).expect("missing file is empty");
        assert!(reg.is_empty());
        reg.add("alice", key(1), vec!["users".into()]).expect("add");
        reg.add("bob", key(2), vec![]).expect("add");
        reg.save(&path).expect("save");
        let mut back = ClientRegistry::load(&path).expect("load");
        assert_eq!(back.len(), 2);
        assert_eq!(back.by_key(&key(1)).map(|c| c.name.as_str()), Some("alice"));
        assert_eq!(
            back.by_key(&key(1)).map(|c| c.groups.clone()),
            Some(vec!["users".to_owned()])
        );
        back.remove("alice").expect("remove");
        assert!(back.by_key(&key(1)).is_none());
        assert!(back.remove("alice").is_err());
    }

    #[test]
    fn refuses_duplicates_and_bad_names() {
        let mut reg = ClientRegistry::default();
        reg.add("alice", key(1), vec![]).expect("add");
        assert!(reg.add("alice", key(3), vec![]).is_err(), "same name");
        assert!(reg.add("carol", key(1), vec![]).is_err(), "same key");
        assert!(reg.add("-rf", key(4), vec![]).is_err(), "bad name");
        assert!(
            reg.add("dave", key(5), vec!["Bad Group".into()]).is_err(),
            "bad group"
        );
    }

    #[test]
    fn refuses_other_spellings_of_a_key() {
        let mut reg = ClientRegistry::default();
        let real = sesame_proto::SecretKey::generate(&mut rand_core::OsRng).public_key();
        reg.add("alice", real, vec![])
            .expect("a generated key is canonical");
        // The same key with the top bit set: X25519 ignores that bit, so this is alice's key.
        let mut bytes = *real.as_bytes();
        bytes[31] |= 0x80;
        let err = reg
            .add("mallory", PublicKey::from_bytes(bytes), vec![])
            .expect_err("top bit set")
            .to_string();
        assert!(err.contains("canonical"), "{err}");
        // p + 2 is another spelling of u = 2 (p itself, 0, is refused as small-order anyway).
        let mut p2 = [0xff; 32];
        p2[0] = 0xef;
        p2[31] = 0x7f;
        let p2 = PublicKey::from_bytes(p2);
        assert!(!p2.is_small_order());
        assert!(reg.add("p2", p2, vec![]).is_err(), "u = p + 2");
        assert_eq!(reg.len(), 1);
    }

    #[test]
    fn a_corrupt_registry_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("clients.toml");
        std::fs::write(&path, "[clients.alice]\nkey = \"zz\"\n").expect("write");
        let err = ClientRegistry::load(&path).expect_err("bad key").to_string();
        assert!(
            err.contains("clients.toml") && err.contains("clients.alice.key"),
            "{err}"
        );
    }

    #[test]
    fn a_rekeyed_client_keeps_its_old_key_until_the_deadline_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("clients.toml");
        let fresh = || sesame_proto::SecretKey::generate(&mut rand_core::OsRng).public_key();
        let (k1, k2, k3) = (fresh(), fresh(), fresh());
        let mut reg = ClientRegistry::default();
        reg.add("alice", k1, vec!["users".into()]).expect("add");
        reg.add("bob", k3, vec![]).expect("add");
        assert_eq!(reg.rekey("alice", k2, 5_000).expect("rekey"), k1);
        assert!(reg.rekey("alice", k2, 5_000).is_err(), "same key again");
        assert!(reg.rekey("alice", k3, 5_000).is_err(), "bob's key");
        assert!(reg.rekey("carol", fresh(), 5_000).is_err(), "no such client");
        assert!(
            reg.add("mallory", k1, vec![]).is_err(),
            "the old key is still alice's"
        );
        reg.save(&path).expect("save");

        let back = ClientRegistry::load(&path).expect("load");
        let alice = back.by_key(&k1).expect("old key finds alice").clone();
        assert_eq!(back.by_key(&k2).map(|c| c.name.as_str()), Some("alice"));
        assert_eq!((alice.key, alice.previous), (k2, Some((k1, 5_000))));
        assert!(alice.accepts(&k2, 9_999));
        assert!(alice.accepts(&k1, 4_999));
        assert!(!alice.accepts(&k1, 5_000), "grace over");
        assert!(!alice.accepts(&k3, 0));

        // A second rekey keeps only the key it replaces; removal forgets both.
        let mut back = back;
        let k4 = fresh();
        back.rekey("alice", k4, 9_000).expect("rekey again");
        assert!(back.by_key(&k1).is_none());
        back.remove("alice").expect("remove");
        assert!(back.by_key(&k2).is_none() && back.by_key(&k4).is_none());

        std::fs::write(
            &path,
            format!("[clients.alice]\nkey = \"{k1}\"\nprevious_key = \"{k2}\"\n"),
        )
        .expect("write");
        let err = ClientRegistry::load(&path)
            .expect_err("half a previous key")
            .to_string();
        assert!(err.contains("go together"), "{err}");
    }
}
