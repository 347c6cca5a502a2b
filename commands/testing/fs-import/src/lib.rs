//! Test module: uses `std::fs`, so the component imports `wasi:filesystem`. The daemon must
//! refuse to load it.

use sesame_guest::{Command, Invocation};

/// Reads a file.
#[derive(Debug)]
pub struct FsImport;

impl Command for FsImport {
    fn run(_inv: Invocation) -> Result<String, String> {
        std::fs::read_to_string("/etc/hostname").map_err(|e| e.to_string())
    }
}

sesame_guest::export_command!(FsImport);
