//! Compiling modules in a child process: `sesamed module compile`, run by the daemon itself.
//!
//! Compiling a module maps a large part of Cranelift's code in, along with the compiler's heap; in
//! the daemon those pages stayed resident for its whole life although a running daemon never
//! compiles again (an idle daemon after a first start: 33.7 MiB RSS in `bench/run`'s set-up, 26.5
//! MiB in `bench/run --quick`'s once the compile moved out). A compile is also the one large piece
//! of code that a module's bytes steer before the module is trusted. So a daemon with a module
//! cache compiles each module it does not find there in a child: the same executable
//! (`/proc/self/exe`, which stays the daemon's own file even if the package was upgraded on disk
//! since), given the bytes the daemon read and hashed on standard input, writes the cache entry
//! for that digest, and exits. The daemon then loads the entry as it loads any other, with every
//! check of [`super::cache`]. A compiler that crashes, hangs past [`COMPILE_DEADLINE`] or fails
//! ends that module's load with an error, and the daemon stays up.
//!
//! The child gets the bytes, not the file's name, so what it compiles is what the daemon hashed
//! (and checked against a pinned digest), even if the file changes meanwhile.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::system::{Launch, MAX_TOOL_OUTPUT, Tool};

/// How long one module's compile may take before the child is killed: a module that takes
/// longer on a loaded host is far past any a command needs (the stock ones take under a second).
pub const COMPILE_DEADLINE: Duration = Duration::from_secs(120);

/// The largest component the child reads from its standard input (the daemon reads the file
/// whatever its size; this bounds only what a child is handed).
const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// Runs `sesamed module compile` in a child process.
#[derive(Debug, Clone)]
pub struct Compiler {
    sesamed: Tool,
}

impl Compiler {
    /// Compiles with this very executable. Only for the `sesamed` binary: any other program
    /// (a test harness, a benchmark) would not know the `module compile` command.
    pub fn this_executable() -> Self {
        Self::with(PathBuf::from("/proc/self/exe"))
    }

    /// Compiles with the `sesamed` at `path`, an absolute path (this executable, or a test's
    /// stand-in).
    fn with(path: PathBuf) -> Self {
        let sesamed = Tool::new(path)
            .unwrap_or_else(|_| unreachable!("an absolute path"))
            .with_deadline(COMPILE_DEADLINE);
        Self { sesamed }
    }

    /// Compiles `bytes` into the cache entry at `entry`; the error is the child's last line of
    /// error output, or how it ended.
    pub(super) fn compile(&self, bytes: &[u8], entry: &Path) -> Result<(), String> {
        let args = [
            "module".as_ref(),
            "compile".as_ref(),
            "--output".as_ref(),
            entry.as_os_str(),
        ];
        let launch = Launch {
            stdin: Some(bytes.to_vec()),
            max_output: MAX_TOOL_OUTPUT,
            ..Launch::default()
        };
        let out = self
            .sesamed
            .launch(&args, &launch)
            .map_err(|e| e.to_string())?
            .output;
        if out.status.success() {
            return Ok(());
        }
        let said = crate::system::last_line(&[&out.stderr, &out.stdout]);
        Err(format!("the compiler process failed ({}): {said}", out.status))
    }
}

/// The engine a child compiles with: the daemon's settings without its instance allocator, which
/// decides where instances live, not what code is made (wasmtime checks the compatibility when
/// the daemon loads the entry: `what_a_child_compiles_loads_in_the_daemons_engine`).
pub(super) fn compiling_engine() -> wasmtime::Result<Engine> {
    Engine::new(&super::engine_config())
}

/// The child's side (`sesamed module compile --output ENTRY`): reads a component from standard
/// input, compiles it, and writes the cache entry `entry` (see [`super::cache`]).
pub fn compile_stdin_into(entry: &Path) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_COMPONENT_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_COMPONENT_BYTES {
        anyhow::bail!("the component is larger than {MAX_COMPONENT_BYTES} bytes");
    }
    compile_into(&bytes, entry)
}

/// Compiles `bytes` and writes the cache entry `entry`.
fn compile_into(bytes: &[u8], entry: &Path) -> anyhow::Result<()> {
    let engine = compiling_engine()?;
    let component = Component::new(&engine, bytes).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let native = component.serialize().map_err(|e| anyhow::anyhow!("{e:#}"))?;
    super::cache::write_entry(entry, native)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::config::CommandModule;
    use crate::sandbox::cache::{CACHE_DIR, ModuleCache};
    use crate::sandbox::{LoadError, Sandbox, digest_of};

    /// The smallest component there is.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    /// A stand-in for `sesamed` at `dir/name`: a shell script (`$4` is the entry to write).
    fn fake_sesamed(dir: &Path, name: &str, script: &str) -> Compiler {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        Compiler::with(path)
    }

    #[test]
    fn what_a_child_compiles_loads_in_the_daemons_engine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sandbox = Sandbox::new(1, 64 << 20).expect("sandbox");
        let cache = ModuleCache::open(&dir.path().join(CACHE_DIR), &sandbox.engine).expect("cache");
        let digest = digest_of(EMPTY_COMPONENT);
        compile_into(EMPTY_COMPONENT, &cache.entry(&digest)).expect("compile");
        assert!(
            cache.get(&sandbox.engine, &digest).is_some(),
            "the daemon's (pooling) engine refused what the compiling engine made"
        );
    }

    #[test]
    fn the_child_is_handed_the_bytes_the_daemon_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let compiler = fake_sesamed(
            dir.path(),
            "copies-stdin",
            r#"[ "$1 $2 $3" = "module compile --output" ] && /bin/cat > "$4""#,
        );
        let entry = dir.path().join("entry");
        let bytes: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
        compiler.compile(&bytes, &entry).expect("compile");
        assert!(
            std::fs::read(&entry).expect("entry") == bytes,
            "the child got other bytes"
        );
    }

    #[test]
    fn a_compiler_that_fails_is_an_error_with_its_last_words() {
        let dir = tempfile::tempdir().expect("tempdir");
        let compiler = fake_sesamed(
            dir.path(),
            "fails",
            "echo 'cranelift: out of registers' >&2; exit 3",
        );
        let err = compiler
            .compile(EMPTY_COMPONENT, &dir.path().join("entry"))
            .expect_err("failed");
        assert!(
            err.contains("cranelift: out of registers") && err.contains("exit status: 3"),
            "{err}"
        );
        let killed = fake_sesamed(dir.path(), "crashes", "kill -SEGV $$");
        let err = killed
            .compile(EMPTY_COMPONENT, &dir.path().join("entry"))
            .expect_err("crashed");
        assert!(err.contains("signal"), "{err}");
    }

    /// A child that reports success but leaves a bad entry (a torn write, a bug): the module does
    /// not load, with an error; the daemon never compiles it itself instead.
    #[test]
    fn a_bad_entry_from_the_child_fails_the_load_and_nothing_is_compiled_in_process() {
        let dir = tempfile::tempdir().expect("tempdir");
        let module = dir.path().join("m.wasm");
        std::fs::write(&module, EMPTY_COMPONENT).expect("module");
        let mut sandbox = Sandbox::new(1, 64 << 20).expect("sandbox");
        sandbox.use_cache(&dir.path().join(CACHE_DIR)).expect("cache");
        sandbox.compile_in_child(fake_sesamed(dir.path(), "garbage", r#"echo garbage > "$4""#));
        let loaded = sandbox.load(
            "basic",
            "m",
            &CommandModule {
                path: module,
                digest: None,
            },
            &[],
        );
        match loaded {
            Err(LoadError::Engine(message)) => assert!(message.contains("does not load"), "{message}"),
            other => panic!("expected an engine error, got {other:?}"),
        }
    }
}
