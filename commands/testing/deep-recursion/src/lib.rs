//! Test module: recurses without end. The wasm stack overflows; the daemon must turn the trap
//! into an error reply (3001) and keep serving.

use sesame_guest::{Command, Invocation};

/// Recurses until the stack runs out.
#[derive(Debug)]
pub struct DeepRecursion;

/// Not a tail call: the addition after the call keeps every frame alive, and `black_box`
/// keeps the optimiser from turning the recursion into a loop. Only scalars live in a frame, so
/// it is wasmtime's native stack guard that stops it (a frame with arrays would instead run off
/// the shadow stack in linear memory, an out-of-bounds trap).
fn depth(n: u64) -> u64 {
    if std::hint::black_box(n) == u64::MAX {
        return 0; // never: the stack runs out long before
    }
    depth(std::hint::black_box(n + 1)).wrapping_add(std::hint::black_box(n))
}

impl Command for DeepRecursion {
    fn run(_inv: Invocation) -> Result<String, String> {
        Ok(depth(0).to_string())
    }
}

sesame_guest::export_command!(DeepRecursion);
