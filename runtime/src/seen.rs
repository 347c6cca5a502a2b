//! Persistence for the replay window: every admitted request id is appended to a small log in
//! the state directory, so a restart does not reopen the freshness window to replays.
//!
//! Each line is `<id hex> <issued_at_ms>`. The line is written (not fsynced) before the command
//! runs, so it survives a daemon crash; it is fsynced at compaction and shutdown. On start the
//! live entries are loaded and the file is rewritten with only them.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sesame_proto::{ReplayWindow, RequestId};

use crate::files;

/// The seen-id log's file name in the state directory.
pub const SEEN_FILE: &str = "seen-ids";

/// An open seen-id log.
#[derive(Debug)]
pub struct SeenLog {
    path: PathBuf,
    file: File,
    lines: usize,
}

impl SeenLog {
    /// Opens the log at `path`, restores its live entries into `window` and compacts the file.
    /// Returns the log and the number of malformed lines skipped.
    pub fn open(path: &Path, now_ms: u64, window: &mut ReplayWindow) -> std::io::Result<(Self, usize)> {
        let mut entries = Vec::new();
        let mut skipped = 0;
        match File::open(path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    match parse_line(&line?) {
                        Some(e) => entries.push(e),
                        None => skipped += 1,
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        window.restore(now_ms, entries);
        let mut log = Self {
            path: path.to_owned(),
            file: open_append(path)?,
            lines: 0,
        };
        log.compact(window)?;
        Ok((log, skipped))
    }

    /// Appends an admitted id. Call before running the request.
    pub fn record(&mut self, id: &RequestId, issued_at_ms: u64) -> std::io::Result<()> {
        self.file.write_all(format!("{id} {issued_at_ms}\n").as_bytes())?;
        self.lines += 1;
        Ok(())
    }

    /// Rewrites the file with only the window's live entries when it has grown well past them.
    pub fn maybe_compact(&mut self, window: &ReplayWindow) -> std::io::Result<()> {
        if self.lines > 2 * window.len() + 10_000 {
            self.compact(window)
        } else {
            Ok(())
        }
    }

    /// Flushes the log to stable storage.
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    fn compact(&mut self, window: &ReplayWindow) -> std::io::Result<()> {
        let mut text = String::with_capacity(window.len() * 48);
        for (id, issued) in window.entries() {
            text.push_str(&format!("{id} {issued}\n"));
        }
        files::write_atomic(&self.path, text.as_bytes(), 0o600)?;
        self.file = open_append(&self.path)?;
        self.lines = window.len();
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

fn parse_line(line: &str) -> Option<(RequestId, u64)> {
    let (id, ts) = line.split_once(' ')?;
    Some((id.parse().ok()?, ts.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sesame_proto::{PublicKey, Request};

    #[test]
    fn a_restart_remembers_admitted_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(SEEN_FILE);
        let now = 1_000_000;
        let req = Request::new(&mut rand_core::OsRng, now, "h", None, "echo", vec![]);

        let mut window = ReplayWindow::new(60_000, 1000);
        let (mut log, _) = SeenLog::open(&path, now, &mut window).expect("open");
        window
            .admit(now, "h", &PublicKey::from_bytes([1; 32]), &req)
            .expect("fresh");
        log.record(&req.id, req.issued_at_ms).expect("record");
        drop(log);

        OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open")
            .write_all(b"garbage\n")
            .expect("w");
        let mut restarted = ReplayWindow::new(60_000, 1000);
        let (_log, skipped) = SeenLog::open(&path, now + 10, &mut restarted).expect("reopen");
        assert_eq!(skipped, 1);
        let err = restarted
            .admit(now + 10, "h", &PublicKey::from_bytes([1; 32]), &req)
            .expect_err("replay after restart");
        assert_eq!(err, sesame_proto::ProtoError::Replay);
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 1, "compacted to the live entry: {text}");
    }
}
