//! Durable, private file writes: secrets are created 0600 and never overwritten by accident;
//! registries are replaced atomically (temporary file, fsync, rename, fsync of the directory) so a
//! crash leaves either the old or the new file, never half of one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and parents) with mode 0700 if it does not exist.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Writes a new secret file with mode 0600; fails if the file exists.
pub fn write_new_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()?;
    sync_parent(path)
}

/// Replaces `path` atomically with `contents`, created with `mode`.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_parent(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Opens `path` for appending, creating it with mode 0600.
pub fn open_append_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

/// Checks that a secret file is not readable or writable by group or others.
pub fn check_private(path: &Path) -> Result<(), String> {
    let mode = std::fs::metadata(path)
        .map_err(|e| e.to_string())?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "mode {mode:04o} lets others read the secret; chmod 600 it"
        ));
    }
    Ok(())
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_0600_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("secret");
        write_new_private(&p, b"x").expect("write");
        assert_eq!(
            std::fs::metadata(&p).expect("stat").permissions().mode() & 0o777,
            0o600
        );
        assert!(write_new_private(&p, b"y").is_err());
        assert_eq!(std::fs::read(&p).expect("read"), b"x");
        assert!(check_private(&p).is_ok());
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("reg.toml");
        write_atomic(&p, b"one", 0o600).expect("write");
        write_atomic(&p, b"two", 0o600).expect("write");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    }
}
