//! The precompiled-module cache: components compiled by Cranelift once, kept as native code in
//! the state directory, keyed by the module's SHA-256 digest and the engine's compatibility
//! hash, so a restart loads modules in microseconds instead of compiling them again.
//!
//! Loading native code is the one `unsafe` operation in sesamed
//! ([`Component::deserialize`]): wasmtime runs the bytes as machine code, so they must be what
//! wasmtime itself serialized. The cache keeps that promise by construction and checks it on
//! every read:
//! - only sesamed writes the directory: it is created 0700, and refused unless owned by the
//!   daemon's user and closed to group and others;
//! - each entry is opened without following symlinks and refused unless it is a regular file
//!   owned by that user and not writable by group or others;
//! - each entry ends with the SHA-256 of what came before it, checked before the bytes reach
//!   wasmtime, so a torn or bit-rotten file is recompiled, never run;
//! - wasmtime itself refuses bytes from another version or with other engine settings, and the
//!   file name carries the engine's compatibility hash so such entries are not even read.
//!
//! Someone who can write this root-owned directory can also read the host's secret key beside
//! it; the cache does not try to defend against that user.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The cache's directory inside the state directory.
pub const CACHE_DIR: &str = "module-cache";

/// A directory of precompiled components.
#[derive(Debug)]
pub struct ModuleCache {
    dir: PathBuf,
    engine_tag: String,
    uid: u32,
}

impl ModuleCache {
    /// Opens (creating 0700) the cache directory for `engine`; fails when the directory is not
    /// private to this user.
    pub fn open(dir: &Path, engine: &Engine) -> Result<Self, String> {
        crate::files::create_private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let uid = rustix::process::geteuid().as_raw();
        let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
            return Err(format!(
                "{}: must be a directory owned by uid {uid} and not writable by group or others",
                dir.display()
            ));
        }
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_owned(),
            engine_tag: format!("{:016x}", hasher.finish()),
            uid,
        })
    }

    /// The entry for a module with this digest (`sha256:<hex>`).
    pub fn entry(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join(format!("{hex}.{}.cwasm", self.engine_tag))
    }

    /// The precompiled component for `digest`, when a sound entry exists. Anything wrong with an
    /// entry is logged and the module compiled again (a miss, not an error).
    pub fn get(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.entry(digest);
        let bytes = match self.read_entry(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(why) => {
                tracing::warn!(path = %path.display(), "module cache entry ignored: {why}");
                return None;
            }
        };
        match deserialize(engine, &bytes) {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "module cache entry refused by wasmtime: {e:#}");
                None
            }
        }
    }

    /// Reads and checks an entry; `None` when there is none.
    fn read_entry(&self, path: &Path) -> Result<Option<Vec<u8>>, String> {
        let nofollow = i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits()).unwrap_or_default();
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nofollow)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let meta = file.metadata().map_err(|e| e.to_string())?;
        if !meta.is_file() || meta.uid() != self.uid || meta.mode() & 0o022 != 0 {
            return Err(format!(
                "not a regular file owned by uid {} and closed to writes by others",
                self.uid
            ));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or_default());
        file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        let Some(split) = bytes.len().checked_sub(32) else {
            return Err("too short".into());
        };
        if Sha256::digest(&bytes[..split]).as_slice() != &bytes[split..] {
            return Err("checksum mismatch (torn or corrupted write)".into());
        }
        bytes.truncate(split);
        Ok(Some(bytes))
    }

    /// Stores the compiled `component` for `digest`; failures are logged, never fatal (the
    /// next start compiles again).
    pub fn put(&self, digest: &str, component: &Component) -> Option<PathBuf> {
        let path = self.entry(digest);
        let result = component
            .serialize()
            .map_err(|e| format!("{e:#}"))
            .and_then(|bytes| write_entry(&path, bytes).map_err(|e| e.to_string()));
        match result {
            Ok(()) => Some(path),
            Err(why) => {
                tracing::warn!(path = %path.display(), "could not write the module cache entry: {why}");
                None
            }
        }
    }

    /// Removes entries not in `keep` (modules no longer configured, other engine versions).
    /// Returns how many were removed.
    pub fn retain(&self, keep: &HashSet<PathBuf>) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            let is_entry = path.extension().is_some_and(|e| e == "cwasm");
            if is_entry && !keep.contains(&path) && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// Writes `native` (what [`Component::serialize`] made) as the entry at `path`, with the checksum
/// [`ModuleCache::get`] checks: private to this user, and whole or not at all.
pub fn write_entry(path: &Path, mut native: Vec<u8>) -> std::io::Result<()> {
    let sum = Sha256::digest(&native);
    native.extend_from_slice(&sum);
    crate::files::write_atomic(path, &native, 0o600)
}

/// Loads native code wasmtime serialized.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` requires bytes that wasmtime's own `serialize` produced
    // (they are run as machine code). `bytes` come from a private cache entry that only this
    // daemon's user can write, written by `ModuleCache::put` from `Component::serialize`, and
    // their SHA-256 checksum was verified just before; wasmtime checks version and engine
    // settings itself. See the module docs for the trust argument.
    unsafe { Component::deserialize(engine, bytes) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).expect("engine")
    }

    /// The smallest component there is.
    fn component(engine: &Engine) -> Component {
        Component::new(engine, b"\0asm\x0d\0\x01\0").expect("empty component")
    }

    #[test]
    fn a_stored_component_comes_back_and_a_damaged_one_is_a_miss() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = engine();
        let cache = ModuleCache::open(&dir.path().join(CACHE_DIR), &engine).expect("open");
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert!(cache.get(&engine, &digest).is_none(), "empty cache");
        let path = cache.put(&digest, &component(&engine)).expect("put");
        assert!(cache.get(&engine, &digest).is_some(), "stored entry loads");

        // One flipped byte anywhere: the checksum catches it before wasmtime sees the bytes.
        let mut bytes = std::fs::read(&path).expect("read");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        assert!(cache.get(&engine, &digest).is_none());

        // A symlink is not followed.
        std::fs::remove_file(&path).expect("rm");
        let elsewhere = dir.path().join("elsewhere.cwasm");
        cache.put(&format!("sha256:{}", "cd".repeat(32)), &component(&engine));
        std::fs::copy(cache.entry(&format!("sha256:{}", "cd".repeat(32))), &elsewhere).expect("copy");
        std::os::unix::fs::symlink(&elsewhere, &path).expect("symlink");
        assert!(cache.get(&engine, &digest).is_none(), "symlinked entry refused");
    }

    #[test]
    fn a_directory_open_to_others_is_refused_and_retain_prunes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = engine();
        let path = dir.path().join(CACHE_DIR);
        let cache = ModuleCache::open(&path, &engine).expect("open");
        let keep = cache
            .put(&format!("sha256:{}", "01".repeat(32)), &component(&engine))
            .expect("put");
        cache
            .put(&format!("sha256:{}", "02".repeat(32)), &component(&engine))
            .expect("put");
        assert_eq!(cache.retain(&HashSet::from([keep.clone()])), 1);
        assert!(keep.exists());

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = ModuleCache::open(&path, &engine).expect_err("world-writable");
        assert!(err.contains("not writable by group or others"), "{err}");
    }
}
