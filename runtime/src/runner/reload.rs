//! Reloading what the daemon reads from files while it runs: the policy directory, the client
//! registry and the host keys, each when its files changed (checked every second, and per
//! request for the registry) or on SIGHUP. A reload that fails leaves what was loaded in force,
//! and is logged and audited either way.

use std::path::PathBuf;
use std::sync::Arc;

use crate::audit::AuditEvent;
use crate::clients::ClientRegistry;
use crate::config::Config;
use crate::identity::{HostKeys, PREVIOUS_HOST_KEY};
use crate::policy::Policy;

use super::{Runner, lock};

impl Runner {
    /// The policy in force.
    pub fn current_policy(&self) -> Arc<Policy> {
        Arc::clone(
            &self
                .policy
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Reloads the policy if any file in its directory changed since the last (attempted) load.
    pub fn refresh_policy(&self, now_ms: u64) {
        let mut stamp = lock(&self.policy_stamp);
        let current = dir_stamp(&self.config.policy_dir);
        if *stamp == current {
            return;
        }
        *stamp = current;
        let _ = self.reload_policy(now_ms);
    }

    /// Loads the policy directory again. A policy that fails to load is rejected: the old one
    /// keeps serving (never fail open), and the failure is logged and audited.
    pub fn reload_policy(&self, now_ms: u64) -> Result<String, crate::policy::PolicyError> {
        let previous = self.current_policy().revision().to_owned();
        let result = load_policy(&self.config);
        let (event, outcome) = match result {
            Ok(fresh) => {
                let revision = fresh.revision().to_owned();
                if revision != previous {
                    let cache = fresh.cache_summary();
                    *self
                        .policy
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
                    tracing::info!(%revision, %previous, %cache, "policy reloaded");
                }
                (
                    AuditEvent::PolicyReloaded {
                        revision: revision.clone(),
                        previous,
                        error: None,
                    },
                    Ok(revision),
                )
            }
            Err(e) => {
                tracing::error!("policy reload rejected, keeping revision {previous}: {e}");
                let event = AuditEvent::PolicyReloaded {
                    revision: previous.clone(),
                    previous,
                    error: Some(e.to_string()),
                };
                (event, Err(e))
            }
        };
        if let Err(e) = self.audit.append(now_ms, &event) {
            tracing::error!("{e}");
        }
        outcome
    }

    /// Reloads the client registry if its file changed since it was last read. Called for every
    /// request (one `stat`), so enrolling or removing a client takes effect at the next request.
    ///
    /// The stamp stays locked through the reload: a request that arrives meanwhile waits for the
    /// new registry. (Swapping the stamp first and loading after let a concurrent request see the
    /// new stamp with the old registry, and a just-enrolled client was turned away as unknown.)
    pub fn refresh_clients(&self, now_ms: u64) {
        let mut stamp = lock(&self.clients_stamp);
        let current = FileStamp::of(&self.config.clients_file);
        if *stamp == current {
            return;
        }
        *stamp = current;
        self.reload_clients(now_ms);
    }

    /// Re-reads the client registry. A registry that fails to load leaves the old one in force.
    pub fn reload_clients(&self, now_ms: u64) {
        let result = ClientRegistry::load(&self.config.clients_file);
        let event = match result {
            Ok(fresh) => {
                let old = self
                    .clients
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                let keys = self.host_keys();
                for gone in old.iter().filter(|c| fresh.by_key(&c.key).is_none()) {
                    keys.forget(&gone.key);
                }
                let clients = fresh.len();
                *self
                    .clients
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
                tracing::info!(clients, "client registry reloaded");
                AuditEvent::RegistryReloaded { clients, error: None }
            }
            Err(e) => {
                tracing::error!("client registry reload failed, keeping the old one: {e}");
                let clients = self
                    .clients
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .len();
                AuditEvent::RegistryReloaded {
                    clients,
                    error: Some(e.to_string()),
                }
            }
        };
        if let Err(e) = self.audit.append(now_ms, &event) {
            tracing::error!("{e}");
        }
    }

    /// The host keys in force.
    pub fn host_keys(&self) -> Arc<HostKeys> {
        Arc::clone(
            &self
                .keys
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Reloads the host keys if `host.key` or `host.key.previous` changed since they were last
    /// read (`sesamed rotate-key`; removing the previous key's file stops accepting it). The
    /// daemon checks every second and on SIGHUP.
    pub fn refresh_keys(&self, now_ms: u64) {
        let mut stamp = lock(&self.keys_stamp);
        let current = key_stamps(&self.config);
        if *stamp == current {
            return;
        }
        *stamp = current;
        self.reload_keys(now_ms);
    }

    /// Reads the host keys again. Keys that fail to load leave the old ones in force.
    pub fn reload_keys(&self, now_ms: u64) {
        let (in_force, error) = match HostKeys::load(&self.config.state_dir) {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                let old = self.host_keys();
                if old.public_key() != fresh.public_key() || old.previous() != fresh.previous() {
                    tracing::info!(key = %fresh.public_key(), previous = ?fresh.previous().map(|(k, _)| k.to_string()), "host keys reloaded");
                }
                *self
                    .keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::clone(&fresh);
                (fresh, None)
            }
            Err(e) => {
                tracing::error!("host keys not reloaded, keeping the loaded ones: {e}");
                (self.host_keys(), Some(e.to_string()))
            }
        };
        let event = AuditEvent::HostKeysReloaded {
            key: in_force.public_key().to_string(),
            receipt_key: in_force.receipt_signer().key().to_string(),
            previous: in_force.previous().map(|(k, _)| k.to_string()),
            previous_until_ms: in_force.previous().map(|(_, until)| until),
            error,
        };
        if let Err(e) = self.audit.append(now_ms, &event) {
            tracing::error!("{e}");
        }
    }
}

/// Identity of a file's contents as the file system reports it: modification time, size, inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    ino: u64,
}

impl FileStamp {
    pub(super) fn of(path: &std::path::Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(path).ok()?;
        Some(Self {
            modified: m.modified().ok(),
            len: m.len(),
            ino: m.ino(),
        })
    }
}

/// The stamps of the host key files, in the order `host.key`, `host.key.previous`,
/// `host.key.next`.
pub(super) fn key_stamps(config: &Config) -> [Option<FileStamp>; 3] {
    [
        FileStamp::of(&config.state_dir.join(crate::identity::HOST_KEY)),
        FileStamp::of(&config.state_dir.join(PREVIOUS_HOST_KEY)),
        FileStamp::of(&config.state_dir.join(crate::identity::NEXT_HOST_KEY)),
    ]
}

/// The configured policy directory, with the configured decision cache.
pub(super) fn load_policy(config: &Config) -> Result<Policy, crate::policy::PolicyError> {
    Ok(Policy::load(&config.policy_dir)?.with_decision_cache(config.decision_cache))
}

/// The stamps of every non-hidden file under `dir`, sorted: any edit, addition or removal
/// changes it.
pub(super) fn dir_stamp(dir: &std::path::Path) -> Vec<(PathBuf, FileStamp)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                todo.push(path);
            } else if let Some(stamp) = FileStamp::of(&path) {
                out.push((path, stamp));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
