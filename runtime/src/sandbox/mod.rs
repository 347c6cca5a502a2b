//! The WebAssembly sandbox: one wasmtime [`Engine`] with epoch interruption, every configured
//! module compiled once at start into an [`InstancePre`](wasmtime::component::InstancePre), and a
//! fresh [`Store`] per request with memory, time and output limits.
//!
//! Linker membership is the capability. A module gets `sesame:host/log`, the host interfaces its
//! cluster grants, and the WASI interfaces a Rust `std` guest needs (io, cli, clocks, random)
//! backed by a closed context: no preopened directories, no sockets, no environment, no
//! arguments, stdin empty, stdout and stderr into small memory pipes. A module that imports
//! anything else (filesystem, sockets, HTTP, or a capability its cluster lacks) is refused when
//! it is loaded, with the offending imports named.
//!
//! A module's identity is the SHA-256 digest of its file: the policy sees it, the configuration
//! may pin it, and the [`cache`] of precompiled modules is keyed by it.

pub mod cache;
pub mod cli;
pub mod compile;
mod limits;
mod stdout;
mod wasi;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sesame_proto::ErrorCode;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::config::{CommandModule, Config};
use crate::deadline::{Stopped, Until};
use crate::host::bindings::{CommandPre, sesame::host as sesame_host};
use crate::host::{CallContext, HostCalls, Invocation};
use cache::ModuleCache;
use limits::{EpochTicker, MemoryCap};
use wasi::link_closed_wasi;

/// How often the epoch ticks; time limits are whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Bytes of stdout/stderr kept from a module (for the daemon log; clients never see them).
pub const STDIO_CAPTURE: usize = 16 * 1024;
/// Core instances, memories and tables one component run may use from the pool: a Rust `std`
/// component has a handful of core modules (the program and its WASI adapter shims).
const CORE_INSTANCES_PER_RUN: u32 = 16;
/// See [`CORE_INSTANCES_PER_RUN`].
const MEMORIES_PER_RUN: u32 = 2;
/// See [`CORE_INSTANCES_PER_RUN`].
const TABLES_PER_RUN: u32 = 8;
/// Bytes of each pooled memory and table kept mapped between runs.
const KEEP_RESIDENT: usize = 1 << 20;
/// Table elements a module may grow to.
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

/// WASI interfaces a `std` guest imports, all backed by the closed context.
const WASI_ALLOWED: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
];

/// How instances get their memory. The daemon uses [`Strategy::Pooling`]; the others exist so
/// the benchmark can measure what the tuning buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// wasmtime's default: `mmap` a fresh memory for every instance, `munmap` it after.
    OnDemand,
    /// The pooling allocator with wasmtime's defaults (memory is decommitted between runs).
    PoolingDefault,
    /// The pooling allocator tuned for short runs: the first 1 MiB of each memory and table
    /// stays resident (zeroed, not unmapped) and, on Linux 6.7+, only dirtied pages are reset.
    Pooling,
}

impl Strategy {
    fn allocation(self, slots: usize, max_memory_bytes: usize) -> InstanceAllocationStrategy {
        let slots = u32::try_from(slots.max(1)).unwrap_or(u32::MAX);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(CORE_INSTANCES_PER_RUN))
            .total_memories(slots.saturating_mul(MEMORIES_PER_RUN))
            .total_tables(slots.saturating_mul(TABLES_PER_RUN))
            .max_memory_size(max_memory_bytes);
        match self {
            Strategy::OnDemand => InstanceAllocationStrategy::OnDemand,
            Strategy::PoolingDefault => InstanceAllocationStrategy::Pooling(pool),
            Strategy::Pooling => {
                pool.linear_memory_keep_resident(KEEP_RESIDENT)
                    .table_keep_resident(KEEP_RESIDENT)
                    // Linux >= 6.7: reset only the pages a run dirtied (off elsewhere, by detection).
                    .pagemap_scan(wasmtime::Enabled::Auto);
                InstanceAllocationStrategy::Pooling(pool)
            }
        }
    }
}

/// Engine settings every sandbox shares (the cache's compatibility hash covers them).
fn engine_config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    config
}

/// `sha256:<hex>` of a module file.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The engine and the loaded modules.
pub struct Sandbox {
    engine: Engine,
    modules: HashMap<(String, String), Arc<LoadedModule>>,
    cache: Option<ModuleCache>,
    compiler: Option<compile::Compiler>,
    ticker: EpochTicker,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("modules", &self.modules.len())
            .finish_non_exhaustive()
    }
}

/// A module compiled, checked and ready to instantiate.
pub struct LoadedModule {
    /// `cluster::command`.
    pub name: String,
    /// The component file.
    pub path: PathBuf,
    /// `sha256:<hex>` of the file.
    pub digest: String,
    /// Its imports without versions, e.g. `sesame:host/log`.
    pub imports: Vec<String>,
    /// File size in bytes.
    pub size: usize,
    /// Loaded from the precompiled cache rather than compiled.
    pub cached: bool,
    pre: CommandPre<RunState>,
}

impl LoadedModule {
    /// `input.module` for the policy.
    pub fn policy_input(&self) -> crate::policy::ModuleInput {
        crate::policy::ModuleInput {
            name: self.name.clone(),
            digest: self.digest.clone(),
            imports: self.imports.clone(),
        }
    }
}

impl std::fmt::Debug for LoadedModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModule")
            .field("name", &self.name)
            .field("digest", &self.digest)
            .field("imports", &self.imports)
            .finish_non_exhaustive()
    }
}

/// Limits for one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Wall time.
    pub timeout: Duration,
    /// Linear memory, bytes.
    pub memory_bytes: usize,
    /// Output returned to the client, bytes.
    pub output_bytes: usize,
    /// Host calls (log lines included); the next one stops the module.
    pub host_calls: u32,
}

/// The result of one run, with what the module did on the way.
#[derive(Debug)]
pub struct RunOutcome {
    /// The output, or why there is none.
    pub result: Result<String, RunError>,
    /// Host calls, log lines and refusals.
    pub calls: CallContext,
    /// What the module wrote to stderr (a panic message, say), for the daemon log.
    pub stderr: String,
    /// Time spent in the sandbox.
    pub elapsed: Duration,
}

/// Why a run produced no output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The module trapped (panic, unreachable, bad memory access...).
    #[error("module trapped: {0}")]
    Trapped(String),
    /// The time limit ran out.
    #[error("time limit of {0} ms exceeded")]
    TimeLimit(u64),
    /// The module tried to grow memory past its limit.
    #[error("memory limit of {0} MiB exceeded")]
    MemoryLimit(usize),
    /// The module's output (or its error message) is larger than allowed.
    #[error("{what} of {len} bytes exceeds the limit of {limit} bytes")]
    OutputLimit {
        /// `output` (with what was streamed before it), `streamed output` or `error message`.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The module failed after the host refused a call it needed.
    #[error("host call denied: {0}")]
    HostCallDenied(String),
    /// The module made more host calls than its limit allows, and was stopped.
    #[error("host call limit of {0} calls exceeded")]
    HostCallLimit(u32),
    /// The module failed after a system tool it needed failed (its own message).
    #[error("{0}")]
    HostToolFailed(String),
    /// The module returned an error.
    #[error("{0}")]
    Module(String),
    /// The request's client cancelled it, and the module was stopped.
    #[error("cancelled by the client")]
    Cancelled,
    /// The host could not run the module at all.
    #[error("internal sandbox error")]
    Internal(String),
}

impl RunError {
    /// The protocol error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            RunError::Trapped(_) => ErrorCode::Trapped,
            RunError::TimeLimit(_) => ErrorCode::TimeLimit,
            RunError::MemoryLimit(_) | RunError::OutputLimit { .. } => ErrorCode::MemoryLimit,
            RunError::HostCallDenied(_) | RunError::HostCallLimit(_) => ErrorCode::HostCallDenied,
            RunError::HostToolFailed(_) => ErrorCode::HostToolFailed,
            RunError::Module(_) => ErrorCode::ModuleError,
            RunError::Cancelled => ErrorCode::Cancelled,
            RunError::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// Why a module could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("module {name}: cannot read {path}: {source}")]
    Read {
        /// `cluster::command`.
        name: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid component, or does not export `run` with the right type.
    #[error("module {name} ({path}): not a sesame command component: {message}")]
    Invalid {
        /// `cluster::command`.
        name: String,
        /// The file.
        path: PathBuf,
        /// wasmtime's message.
        message: String,
    },
    /// The module imports interfaces it may not have.
    #[error("module {name} ({path}) refused: {message}")]
    Refused {
        /// `cluster::command`.
        name: String,
        /// The file.
        path: PathBuf,
        /// Which imports, and why.
        message: String,
    },
    /// The file's digest is not the one the configuration pins.
    #[error(
        "module {name} ({path}) refused: its digest is {actual} but the configuration pins {pinned} (a changed or replaced file)"
    )]
    DigestMismatch {
        /// `cluster::command`.
        name: String,
        /// The file.
        path: PathBuf,
        /// The pinned digest.
        pinned: String,
        /// The file's digest.
        actual: String,
    },
    /// The engine could not be set up.
    #[error("wasmtime engine: {0}")]
    Engine(String),
}

/// What loading every configured module did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Modules loaded.
    pub modules: usize,
    /// Of those, loaded precompiled from the cache.
    pub cached: usize,
    /// Stale cache entries removed.
    pub pruned: usize,
    /// Time spent.
    pub elapsed: Duration,
}

/// What `sesamed module inspect` reports about a component file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModuleInfo {
    /// The file.
    pub path: PathBuf,
    /// `sha256:<hex>` of the file.
    pub digest: String,
    /// File size in bytes.
    pub size: usize,
    /// Every import, with its version.
    pub imports: Vec<String>,
    /// Every export, with its version.
    pub exports: Vec<String>,
    /// The sesame capabilities the module needs its cluster to grant.
    pub capabilities: Vec<String>,
    /// Why no cluster could run it (foreign imports, or no sesame `run` export).
    pub refused: Option<String>,
}

impl Sandbox {
    /// Creates the engine and starts the epoch ticker. `slots` instances (the daemon's
    /// concurrency bound) can run at once, each with up to `max_memory_bytes` of linear memory.
    ///
    /// Instances come from wasmtime's pooling allocator: memory slots are reserved once and
    /// reused, and the first 1 MiB of each memory stays mapped between runs (it is zeroed, not
    /// unmapped), so a request does not pay for `mmap`, `munmap` and page faults. Where the kernel
    /// has `PAGEMAP_SCAN`, only the pages a run dirtied are reset.
    pub fn new(slots: usize, max_memory_bytes: usize) -> Result<Self, LoadError> {
        Self::with_strategy(Strategy::Pooling, slots, max_memory_bytes)
    }

    /// [`Sandbox::new`] with another instance allocation strategy (for benchmarks).
    pub fn with_strategy(
        strategy: Strategy,
        slots: usize,
        max_memory_bytes: usize,
    ) -> Result<Self, LoadError> {
        let mut config = engine_config();
        config.allocation_strategy(strategy.allocation(slots, max_memory_bytes));
        let engine = Engine::new(&config).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let ticking = engine.clone();
        let ticker = EpochTicker::start(move || ticking.increment_epoch())
            .map_err(|e| LoadError::Engine(format!("epoch thread: {e}")))?;
        Ok(Self {
            engine,
            modules: HashMap::new(),
            cache: None,
            compiler: None,
            ticker,
        })
    }

    /// Keeps precompiled modules in `dir` (see [`cache`]); without it every start compiles.
    pub fn use_cache(&mut self, dir: &Path) -> Result<(), LoadError> {
        let cache = ModuleCache::open(dir, &self.engine)
            .map_err(|e| LoadError::Engine(format!("module cache: {e}")))?;
        self.cache = Some(cache);
        Ok(())
    }

    /// Compiles modules the cache lacks in child processes ([`compile`]), keeping the compiler out
    /// of this process. Only with a cache ([`Sandbox::use_cache`]), where the child leaves its work.
    pub fn compile_in_child(&mut self, compiler: compile::Compiler) {
        self.compiler = Some(compiler);
    }

    /// Loads every module the configuration names, checking pinned digests, and prunes cache
    /// entries no module uses any more.
    pub fn load_config(&mut self, config: &Config) -> Result<LoadSummary, LoadError> {
        let started = Instant::now();
        let mut summary = LoadSummary::default();
        let mut used = HashSet::new();
        for (cluster_name, cluster) in &config.clusters {
            for (command, module) in &cluster.commands {
                let loaded = self.load(cluster_name, command, module, &cluster.capabilities)?;
                tracing::debug!(module = %loaded.name, digest = %loaded.digest, cached = loaded.cached, "loaded");
                summary.modules += 1;
                summary.cached += usize::from(loaded.cached);
                if let Some(cache) = &self.cache {
                    used.insert(cache.entry(&loaded.digest));
                }
            }
        }
        if let Some(cache) = &self.cache {
            summary.pruned = cache.retain(&used);
        }
        summary.elapsed = started.elapsed();
        Ok(summary)
    }

    /// Reports a component file's digest, imports, exports and needed capabilities, and whether
    /// sesame would refuse it, without a configuration.
    pub fn inspect(path: &Path) -> Result<ModuleInfo, LoadError> {
        let engine = Engine::new(&engine_config()).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            name: name.clone(),
            path: path.to_owned(),
            source,
        })?;
        let component = Component::new(&engine, &bytes).map_err(|e| LoadError::Invalid {
            name,
            path: path.to_owned(),
            message: format!("{e:#}"),
        })?;
        let ty = component.component_type();
        let imports: Vec<String> = ty.imports(&engine).map(|(i, _)| i.to_owned()).collect();
        let exports: Vec<String> = ty.exports(&engine).map(|(e, _)| e.to_owned()).collect();
        let unversioned_imports: Vec<String> = imports.iter().map(|i| unversioned(i).to_owned()).collect();
        let capabilities: Vec<String> = unversioned_imports
            .iter()
            .filter_map(|i| i.strip_prefix("sesame:host/"))
            .filter(|c| !matches!(*c, "log" | "types"))
            .map(str::to_owned)
            .collect();
        let mut refused = check_imports("", &unversioned_imports, &capabilities).err();
        if refused.is_none() && !exports.iter().any(|e| e == "run") {
            refused =
                Some("it does not export `run` (build it with sesame-guest's export_command!)".to_owned());
        }
        Ok(ModuleInfo {
            path: path.to_owned(),
            digest: digest_of(&bytes),
            size: bytes.len(),
            imports,
            exports,
            capabilities,
            refused,
        })
    }

    /// Compiles, checks and links the module for `cluster::command`. `capabilities` are the host
    /// interfaces the cluster grants (`firewall`, `salt`, `users`, `exec`, `hostkeys`).
    pub fn load(
        &mut self,
        cluster: &str,
        command: &str,
        module: &CommandModule,
        capabilities: &[String],
    ) -> Result<Arc<LoadedModule>, LoadError> {
        let module = Arc::new(self.compile(cluster, command, module, capabilities)?);
        self.modules
            .insert((cluster.to_owned(), command.to_owned()), Arc::clone(&module));
        Ok(module)
    }

    /// The loaded module for `cluster::command`.
    pub fn module(&self, cluster: &str, command: &str) -> Option<Arc<LoadedModule>> {
        self.modules
            .get(&(cluster.to_owned(), command.to_owned()))
            .cloned()
    }

    /// Runs a module once, in a fresh store. Blocking: call it off the async runtime.
    pub fn run(
        &self,
        module: &LoadedModule,
        invocation: &Invocation,
        mut calls: CallContext,
        limits: RunLimits,
    ) -> RunOutcome {
        let started = Instant::now();
        let deadline = started + limits.timeout;
        calls.max_host_calls = limits.host_calls;
        if let Some(sink) = &calls.progress {
            sink.limit(limits.output_bytes);
        }
        let stdout = stdout::ModuleStdout::new(
            calls
                .progress
                .clone()
                .map(|sink| crate::progress::TextTap::new(sink, sesame_proto::ProgressSource::Output)),
            STDIO_CAPTURE,
        );
        let stderr = MemoryOutputPipe::new(STDIO_CAPTURE);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let until = Until::at(deadline).or_cancelled(calls.cancel.clone());
        let state = RunState {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap {
                max_bytes: limits.memory_bytes,
                hit: false,
            },
            calls,
            until: until.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        // Taken before the deadline is set, held until the run is over (this function returns).
        let _ticking = self.ticker.hold();
        // Wasm code is stopped by the epoch: the time limit in whole ticks, and a cancel at the
        // next tick (looked at on each one, only when the run can be cancelled).
        if until.cancel.is_some() {
            let bound = until.clone();
            store.epoch_deadline_callback(move |_| match bound.check() {
                Ok(()) => Ok(wasmtime::UpdateDeadline::Continue(1)),
                Err(stopped) => Err(wasmtime::Error::new(stopped)),
            });
            store.set_epoch_deadline(1);
        } else {
            let ticks = limits.timeout.as_millis().div_ceil(EPOCH_TICK.as_millis()) + 1;
            store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        }

        // Host code waiting for the module (WASI, tools, locks) ends by the same bound, set for
        // this thread.
        let result = crate::deadline::scope(until, || {
            module
                .pre
                .instantiate(&mut store)
                .and_then(|command| command.call_run(&mut store, invocation))
        });
        let state = store.into_data();
        let timeout_ms = u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX);
        let too_long = |what: &'static str, len: usize| RunError::OutputLimit {
            what,
            len,
            limit: limits.output_bytes,
        };
        // What was streamed counts: the output limit bounds all a request sends its client.
        let streamed = state
            .calls
            .progress
            .as_ref()
            .map_or(0, crate::progress::ProgressSink::sent);
        let stdout_over = stdout.finish();
        let result = match result {
            _ if let Some(over) = state.calls.streamed_over.or(stdout_over) => {
                Err(too_long("streamed output", over.len))
            }
            Ok(Ok(output)) if output.len().saturating_add(streamed) > limits.output_bytes => {
                Err(too_long("output", output.len().saturating_add(streamed)))
            }
            Ok(Ok(output)) => Ok(output),
            // The module's error message reaches the client as its output would, under the same limit.
            Ok(Err(message)) if message.len() > limits.output_bytes => {
                Err(too_long("error message", message.len()))
            }
            Ok(Err(message)) => match state.calls.denied.first() {
                Some(denied) => Err(RunError::HostCallDenied(denied.clone())),
                None if state.calls.tool_failures > 0 => Err(RunError::HostToolFailed(message)),
                None => Err(RunError::Module(message)),
            },
            Err(_) if state.memory.hit => Err(RunError::MemoryLimit(limits.memory_bytes >> 20)),
            Err(_) if state.calls.flooded => Err(RunError::HostCallLimit(limits.host_calls)),
            Err(err) => trap_outcome(&err, timeout_ms),
        };
        let stderr = String::from_utf8_lossy(&stderr.contents()).into_owned();
        RunOutcome {
            result,
            calls: state.calls,
            stderr,
            elapsed: started.elapsed(),
        }
    }

    fn compile(
        &self,
        cluster: &str,
        command: &str,
        module: &CommandModule,
        capabilities: &[String],
    ) -> Result<LoadedModule, LoadError> {
        let name = format!("{cluster}::{command}");
        let path = module.path.as_path();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            name: name.clone(),
            path: path.to_owned(),
            source,
        })?;
        let invalid = |message: String| LoadError::Invalid {
            name: name.clone(),
            path: path.to_owned(),
            message,
        };
        let refused = |message: String| LoadError::Refused {
            name: name.clone(),
            path: path.to_owned(),
            message,
        };
        let digest = digest_of(&bytes);
        if let Some(pinned) = &module.digest
            && *pinned != digest
        {
            return Err(LoadError::DigestMismatch {
                name,
                path: path.to_owned(),
                pinned: pinned.clone(),
                actual: digest,
            });
        }
        let cached = self.cache.as_ref().and_then(|c| c.get(&self.engine, &digest));
        let (component, from_cache, stored) = match (cached, &self.cache, &self.compiler) {
            (Some(component), _, _) => (component, true, true),
            (None, Some(cache), Some(compiler)) => {
                compiler
                    .compile(&bytes, &cache.entry(&digest))
                    .map_err(&invalid)?;
                let component = cache.get(&self.engine, &digest).ok_or_else(|| {
                    LoadError::Engine(format!(
                        "module {name}: the entry the compiler process wrote does not load (see the warning above)"
                    ))
                })?;
                (component, false, true)
            }
            (None, _, _) => {
                let component =
                    Component::new(&self.engine, &bytes).map_err(|e| invalid(format!("{e:#}")))?;
                (component, false, false)
            }
        };

        let imports: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .map(|(import, _)| unversioned(import).to_owned())
            .collect();
        check_imports(cluster, &imports, capabilities).map_err(refused)?;
        if !stored && let Some(cache) = &self.cache {
            cache.put(&digest, &component);
        }

        let mut linker: Linker<RunState> = Linker::new(&self.engine);
        link_closed_wasi(&mut linker).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let link = |r: wasmtime::Result<()>| r.map_err(|e| LoadError::Engine(format!("{e:#}")));
        link(sesame_host::types::add_to_linker::<_, HostCalls>(
            &mut linker,
            |s| &mut s.calls,
        ))?;
        link(sesame_host::log::add_to_linker::<_, HostCalls>(
            &mut linker,
            |s| &mut s.calls,
        ))?;
        for cap in capabilities {
            match crate::capability::link(cap, &mut linker, |s: &mut RunState| &mut s.calls) {
                Some(linked) => link(linked)?,
                None => {
                    return Err(refused(format!(
                        "cluster {cluster} names unknown capability {cap}"
                    )));
                }
            }
        }
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| refused(format!("{e:#}")))?;
        let pre = CommandPre::new(pre).map_err(|e| invalid(format!("{e:#}")))?;
        Ok(LoadedModule {
            name,
            path: path.to_owned(),
            digest,
            imports,
            size: bytes.len(),
            cached: from_cache,
            pre,
        })
    }
}

/// What a run that ended in `err` (a trap, or an error from host code) reports.
fn trap_outcome(err: &wasmtime::Error, timeout_ms: u64) -> Result<String, RunError> {
    match err.downcast_ref::<Stopped>() {
        Some(Stopped::Deadline) => return Err(RunError::TimeLimit(timeout_ms)),
        Some(Stopped::Cancelled) => return Err(RunError::Cancelled),
        None => {}
    }
    // `wasi:cli/exit`: the module ended itself; that is its outcome, not a fault of the host.
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return match exit.0 {
            0 => Ok(String::new()),
            status => Err(RunError::Module(format!(
                "the module exited with status {status}"
            ))),
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Err(RunError::TimeLimit(timeout_ms)),
        Some(trap) => Err(RunError::Trapped(trap.to_string())),
        None => Err(RunError::Internal(format!("{err:#}"))),
    }
}

/// Checks a module's imports (without versions) against what sesame provides and what the
/// cluster grants; the error says which imports are refused and why.
fn check_imports(cluster: &str, imports: &[String], capabilities: &[String]) -> Result<(), String> {
    let sesame_allowed = |iface: &str| match iface.strip_prefix("sesame:host/") {
        Some("log" | "types") => true,
        Some(cap) => capabilities.iter().any(|c| c == cap),
        None => false,
    };
    let (mut missing_caps, mut foreign) = (Vec::new(), Vec::new());
    for import in imports {
        if WASI_ALLOWED.contains(&import.as_str()) || sesame_allowed(import) {
            continue;
        }
        match import.strip_prefix("sesame:host/") {
            Some(cap) if crate::config::CAPABILITIES.contains(&cap) => missing_caps.push(cap.to_owned()),
            _ => foreign.push(import.clone()),
        }
    }
    if !foreign.is_empty() {
        return Err(format!(
            "it imports {} which sesame does not provide (modules get no filesystem, sockets or network)",
            foreign.join(", ")
        ));
    }
    if !missing_caps.is_empty() {
        return Err(format!(
            "it imports the {} capability but cluster {cluster} grants only [{}]",
            missing_caps.join(", "),
            capabilities.join(", ")
        ));
    }
    Ok(())
}

/// Per-request store data.
struct RunState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
    calls: CallContext,
    /// When the run's time limit runs out, and its cancel switch: every wait in host code ends
    /// by then.
    until: Until,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// `wasi:io/poll@0.2.6` -> `wasi:io/poll`.
fn unversioned(import: &str) -> &str {
    import.split_once('@').map_or(import, |(name, _)| name)
}
