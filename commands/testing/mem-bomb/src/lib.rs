//! Test module: allocates 1 MiB blocks, touching every page, and never frees them. The
//! daemon's memory limit must stop it (3003) without harming other requests.

use sesame_guest::{Command, Invocation};

/// Grows memory forever.
#[derive(Debug)]
pub struct MemBomb;

impl Command for MemBomb {
    fn run(_inv: Invocation) -> Result<String, String> {
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        loop {
            // Written, not just reserved: the pages are really used.
            blocks.push(std::hint::black_box(vec![0xa5; 1 << 20]));
            if blocks.len() > 1 << 16 {
                // 64 GiB: unreachable under any limit; keeps the loop finite for the optimiser.
                return Ok(format!("allocated {} MiB", blocks.len()));
            }
        }
    }
}

sesame_guest::export_command!(MemBomb);
