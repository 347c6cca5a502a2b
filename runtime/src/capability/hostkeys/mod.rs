//! The host's SSH host public keys, read-only: the `ssh_host_*_key.pub` files in `[hostkeys]
//! dir` (default `/etc/ssh`), for `sesame known-hosts` to print in `known_hosts` form.
//!
//! Every file is read afresh for each call (a key the host regenerates is served at once), and
//! strictly: a regular file of at most [`MAX_HOST_KEY_LINE`] bytes holding one key of a served
//! type whose key data is exactly that type's ([`HostKey`]); the comment is dropped. A file that
//! does not parse is skipped and reported, never passed on. Nothing here writes.

mod calls;
mod setup;

use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

pub use sesame_proto::{HostKey, MAX_HOST_KEY_LINE};
pub use setup::{HostKeysConfig, HostKeysGrant};

/// The most key files read from the directory; later ones (by name) are skipped.
pub const MAX_KEY_FILES: usize = 16;

/// Why the host keys could not be read at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostKeysError {
    /// The directory could not be listed.
    #[error("{}: {source}", dir.display())]
    Dir {
        /// The directory (`[hostkeys] dir`).
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The host keys service: the directory they are read from.
#[derive(Debug, Clone)]
pub struct HostKeys {
    dir: PathBuf,
}

/// What one reading of the directory found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The keys, sorted by type then key data, each once.
    pub keys: Vec<HostKey>,
    /// The files that matched `ssh_host_*_key.pub` but were not read as a key, with why.
    pub skipped: Vec<(PathBuf, String)>,
}

impl HostKeys {
    /// The service reading `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The directory read.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads every `ssh_host_*_key.pub` file in the directory (at most [`MAX_KEY_FILES`], in
    /// name order).
    pub fn list(&self) -> Result<Listing, HostKeysError> {
        let dir_error = |source| HostKeysError::Dir {
            dir: self.dir.clone(),
            source,
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(dir_error)? {
            let name = entry.map_err(dir_error)?.file_name();
            if name.to_str().is_some_and(is_host_key_file) {
                names.push(name);
            }
        }
        names.sort();
        let mut listing = Listing::default();
        for (i, name) in names.into_iter().enumerate() {
            let path = self.dir.join(name);
            if i >= MAX_KEY_FILES {
                listing
                    .skipped
                    .push((path, format!("more than {MAX_KEY_FILES} host key files")));
                continue;
            }
            match read_key(&path) {
                Ok(key) => listing.keys.push(key),
                Err(why) => listing.skipped.push((path, why)),
            }
        }
        listing.keys.sort();
        listing.keys.dedup();
        Ok(listing)
    }
}

/// Whether `name` matches `ssh_host_*_key.pub`, the public halves `ssh-keygen -A` writes.
fn is_host_key_file(name: &str) -> bool {
    const PREFIX: &str = "ssh_host_";
    const SUFFIX: &str = "_key.pub";
    name.len() >= PREFIX.len() + SUFFIX.len() && name.starts_with(PREFIX) && name.ends_with(SUFFIX)
}

/// The key in the file at `path`: a regular file (a FIFO or device put in its place is never
/// waited on: it is opened without blocking and refused), at most [`MAX_HOST_KEY_LINE`] bytes
/// of text that parse as a [`HostKey`].
fn read_key(path: &Path) -> Result<HostKey, String> {
    let nonblocking = i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or_default();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nonblocking)
        .open(path)
        .map_err(|e| format!("cannot be opened: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".to_owned());
    }
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_HOST_KEY_LINE).unwrap_or(u64::MAX) + 1;
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() > MAX_HOST_KEY_LINE {
        return Err(format!("is longer than {MAX_HOST_KEY_LINE} bytes"));
    }
    let text = String::from_utf8(bytes).map_err(|_| "is not text".to_owned())?;
    text.parse()
        .map_err(|e: sesame_proto::HostKeyError| e.to_string())
}

#[cfg(test)]
mod tests;
