//! Writing `~/.ssh/authorized_keys` as root without being tricked by the account's owner.
//!
//! The user owns their home directory, so anything in it may be a symlink planted to make root
//! write elsewhere (`.ssh -> /etc`, `authorized_keys -> /etc/shadow`). Every step here works on
//! directory file descriptors with `O_NOFOLLOW`, refuses anything that is not the expected kind
//! of file owned by the expected account, and replaces the file atomically (temporary file in the
//! same directory, fsync, rename, fsync of the directory). The result is `.ssh` 0700 and
//! `authorized_keys` 0600, both owned by the account, which is what sshd's StrictModes wants.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{
    AtFlags, CWD, FileType, Mode, OFlags, fchmod, fchown, fstat, fsync, mkdirat, openat, renameat, unlinkat,
};
use rustix::io::Errno;

/// The longest `authorized_keys` file read (larger ones are refused, not truncated).
pub const MAX_AUTHORIZED_KEYS: usize = 1 << 20;

const TMP_NAME: &str = ".authorized_keys.sesame-tmp";

/// Whose file it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The account's uid.
    pub uid: u32,
    /// The account's primary gid.
    pub gid: u32,
}

/// Why `authorized_keys` could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HomeError {
    /// Something in the way is not what it must be (a symlink, wrong owner, not a directory).
    #[error("{path}: {why}; refusing to write keys there")]
    Unsafe {
        /// The path concerned.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A system call failed.
    #[error("{path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path, e: Errno) -> HomeError {
    HomeError::Io {
        path: path.to_owned(),
        source: e.into(),
    }
}

fn unsafe_at(path: &Path, why: impl Into<String>) -> HomeError {
    HomeError::Unsafe {
        path: path.to_owned(),
        why: why.into(),
    }
}

/// Opens `name` in `dir` as a directory, never following a symlink, and checks it is owned by
/// `owner` (or root, when `root_ok`).
fn open_dir(
    dir: impl rustix::fd::AsFd,
    name: &Path,
    shown: &Path,
    owner: Owner,
    root_ok: bool,
) -> Result<OwnedFd, HomeError> {
    let fd = openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::LOOP | Errno::NOTDIR => unsafe_at(shown, "is a symlink or not a directory"),
        e => io(shown, e),
    })?;
    let st = fstat(&fd).map_err(|e| io(shown, e))?;
    if st.st_uid != owner.uid && !(root_ok && st.st_uid == 0) {
        return Err(unsafe_at(
            shown,
            format!("owned by uid {}, not {}", st.st_uid, owner.uid),
        ));
    }
    Ok(fd)
}

/// Applies `edit` to the account's `authorized_keys` (empty text when there is none) and writes
/// the result when `edit` returns `Some`. Returns whether the file changed.
pub fn edit_authorized_keys(
    home: &Path,
    owner: Owner,
    edit: impl FnOnce(&str) -> Option<String>,
) -> Result<bool, HomeError> {
    let home_fd = open_dir(CWD, home, home, owner, true)?;
    let ssh_path = home.join(".ssh");
    match mkdirat(&home_fd, ".ssh", Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(io(&ssh_path, e)),
    }
    let ssh = open_dir(&home_fd, Path::new(".ssh"), &ssh_path, owner, true)?;
    fchown(&ssh, Some(uid(owner.uid)), Some(gid(owner.gid))).map_err(|e| io(&ssh_path, e))?;
    fchmod(&ssh, Mode::from_raw_mode(0o700)).map_err(|e| io(&ssh_path, e))?;

    let keys_path = ssh_path.join("authorized_keys");
    let current = read_file(&ssh, "authorized_keys", &keys_path, owner)?;
    let Some(new) = edit(&current) else {
        return Ok(false);
    };

    let tmp_path = ssh_path.join(TMP_NAME);
    match unlinkat(&ssh, TMP_NAME, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(io(&tmp_path, e)),
    }
    let tmp = openat(
        &ssh,
        TMP_NAME,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| io(&tmp_path, e))?;
    fchown(&tmp, Some(uid(owner.uid)), Some(gid(owner.gid))).map_err(|e| io(&tmp_path, e))?;
    fchmod(&tmp, Mode::from_raw_mode(0o600)).map_err(|e| io(&tmp_path, e))?;
    let mut file = std::fs::File::from(tmp);
    file.write_all(new.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| HomeError::Io {
            path: tmp_path.clone(),
            source,
        })?;
    renameat(&ssh, TMP_NAME, &ssh, "authorized_keys").map_err(|e| io(&keys_path, e))?;
    fsync(&ssh).map_err(|e| io(&ssh_path, e))?;
    Ok(true)
}

/// Reads `name` in `dir` if it exists: a regular file (not a symlink) owned by `owner` or root.
fn read_file(dir: &OwnedFd, name: &str, shown: &Path, owner: Owner) -> Result<String, HomeError> {
    let fd = match openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(String::new()),
        Err(Errno::LOOP) => return Err(unsafe_at(shown, "is a symlink")),
        Err(e) => return Err(io(shown, e)),
    };
    let st = fstat(&fd).map_err(|e| io(shown, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(unsafe_at(shown, "is not a regular file"));
    }
    if st.st_uid != owner.uid && st.st_uid != 0 {
        return Err(unsafe_at(
            shown,
            format!("owned by uid {}, not {}", st.st_uid, owner.uid),
        ));
    }
    if usize::try_from(st.st_size).unwrap_or(usize::MAX) > MAX_AUTHORIZED_KEYS {
        return Err(unsafe_at(
            shown,
            format!("larger than {MAX_AUTHORIZED_KEYS} bytes"),
        ));
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .read_to_string(&mut text)
        .map_err(|source| HomeError::Io {
            path: shown.to_owned(),
            source,
        })?;
    Ok(text)
}

fn uid(raw: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(raw)
}

fn gid(raw: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(raw)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    use super::*;

    fn me() -> Owner {
        Owner {
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
        }
    }

    #[test]
    fn writes_ssh_dir_and_file_with_strict_modes() {
        let home = tempfile::tempdir().expect("home");
        let changed =
            edit_authorized_keys(home.path(), me(), |t| Some(format!("{t}key-1\n"))).expect("write");
        assert!(changed);
        let ssh = std::fs::metadata(home.path().join(".ssh")).expect("ssh");
        assert_eq!(ssh.permissions().mode() & 0o777, 0o700);
        let keys = home.path().join(".ssh/authorized_keys");
        let meta = std::fs::metadata(&keys).expect("keys");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.uid(), me().uid);
        assert_eq!(std::fs::read_to_string(&keys).expect("read"), "key-1\n");
        let changed =
            edit_authorized_keys(home.path(), me(), |t| Some(format!("{t}key-2\n"))).expect("again");
        assert!(changed);
        assert_eq!(std::fs::read_to_string(&keys).expect("read"), "key-1\nkey-2\n");
        assert!(!edit_authorized_keys(home.path(), me(), |_| None).expect("no change"));
        assert!(!home.path().join(".ssh").join(TMP_NAME).exists());
    }

    #[test]
    fn symlinks_planted_by_the_user_are_refused() {
        let home = tempfile::tempdir().expect("home");
        let target = tempfile::tempdir().expect("target");
        symlink(target.path(), home.path().join(".ssh")).expect("symlink");
        let err = edit_authorized_keys(home.path(), me(), |_| Some("x\n".into())).expect_err("refused");
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(
            std::fs::read_dir(target.path()).expect("dir").count(),
            0,
            "nothing written through it"
        );

        let home = tempfile::tempdir().expect("home");
        std::fs::create_dir(home.path().join(".ssh")).expect("mkdir");
        let victim = target.path().join("victim");
        std::fs::write(&victim, "precious\n").expect("victim");
        symlink(&victim, home.path().join(".ssh/authorized_keys")).expect("symlink");
        let err = edit_authorized_keys(home.path(), me(), |_| Some("x\n".into())).expect_err("refused");
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious\n");
    }

    #[test]
    fn a_home_owned_by_someone_else_is_refused() {
        let home = tempfile::tempdir().expect("home");
        let stranger = Owner {
            uid: me().uid + 4242,
            gid: me().gid,
        };
        if me().uid == 0 {
            // Root-owned homes are accepted (useradd may leave them so); use a subdirectory owned
            // by a third uid to see the refusal.
            let sub = home.path().join("h");
            std::fs::create_dir(&sub).expect("mkdir");
            std::os::unix::fs::chown(&sub, Some(4343), None).expect("chown");
            let err = edit_authorized_keys(&sub, stranger, |_| Some("x\n".into())).expect_err("refused");
            assert!(err.to_string().contains("owned by uid 4343"), "{err}");
        } else {
            let err =
                edit_authorized_keys(home.path(), stranger, |_| Some("x\n".into())).expect_err("refused");
            assert!(err.to_string().contains("owned by uid"), "{err}");
        }
    }
}
