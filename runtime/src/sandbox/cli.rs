//! `sesamed module ...`: the module author's toolkit — inspect a component file, and run it
//! locally as a client would, against dry-run host back ends.
//!
//! Exit status: 0 success, 1 the module was denied or failed (its error code is printed), 2 the
//! file, configuration or client could not be used.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use super::{ModuleInfo, Sandbox};
use crate::audit::AuditLog;
use crate::capability::{DryRun, Services};
use crate::clients::ClientRegistry;
use crate::config::{CommandModule, Config, ConfigArg};
use crate::host::{CallContext, Invocation};
use crate::policy::{Decision, Policy};
use crate::system::Recorder;

/// `sesamed module <command>`.
#[derive(Debug, clap::Subcommand)]
pub enum ModuleCommand {
    /// Show a component's digest, size, imports, exports and the capabilities it needs.
    ///
    /// The digest is what policies see as `input.module.digest` and what a configuration pins
    /// with `name = { path = "…", digest = "sha256:…" }`. Exit status 1 when no cluster could
    /// run the module (it imports what sesame does not provide).
    Inspect {
        /// The component file (`.wasm`).
        file: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a module locally, as a client's request would run it, against dry-run back ends.
    ///
    /// The request goes through the configuration's policy as if CLIENT (enrolled in the
    /// client registry) had sent it, with the grant and limits the daemon would use. Host calls
    /// are checked against that grant as in production, but nothing changes on this machine:
    /// firewall openings, account changes and salt-call runs are printed instead (what only reads,
    /// such as the host keys, reads for real). Prints the
    /// decision, every host call, what would have run, and the module's output or error.
    Run(RunArgs),
    /// Compile the component on standard input into a module cache entry (the daemon runs this
    /// in a child process for each module its cache lacks; see `sandbox::compile`).
    #[command(hide = true)]
    Compile {
        /// The cache entry to write.
        #[arg(long)]
        output: PathBuf,
    },
}

impl ModuleCommand {
    /// Runs the subcommand and returns the process exit status.
    pub fn run(self) -> ExitCode {
        let result = match self {
            ModuleCommand::Inspect { file, json } => inspect(&file, json),
            ModuleCommand::Run(args) => run_local(&args),
            ModuleCommand::Compile { output } => {
                super::compile::compile_stdin_into(&output).map(|()| ExitCode::SUCCESS)
            }
        };
        match result {
            Ok(code) => code,
            Err(e) => {
                eprintln!("sesamed: {}", sesame_proto::error_chain(e.as_ref()));
                ExitCode::from(2)
            }
        }
    }
}

fn inspect(file: &Path, json: bool) -> Result<ExitCode> {
    let info = Sandbox::inspect(file)?;
    if json {
        println!("{}", serde_json::to_string(&info)?);
    } else {
        print!("{}", describe(&info));
    }
    Ok(if info.refused.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `sesamed module inspect`'s text.
fn describe(info: &ModuleInfo) -> String {
    let mut text = format!(
        "file:         {}\ndigest:       {}\nsize:         {} bytes\n",
        info.path.display(),
        info.digest,
        info.size
    );
    let needs = if info.capabilities.is_empty() {
        "none (runs in any cluster)".to_owned()
    } else {
        info.capabilities.join(", ")
    };
    text.push_str(&format!("capabilities: {needs}\n"));
    text.push_str(&format!("exports:      {}\n", info.exports.join(", ")));
    text.push_str("imports:\n");
    for import in &info.imports {
        text.push_str(&format!("  {import}\n"));
    }
    match &info.refused {
        Some(why) => text.push_str(&format!("verdict:      refused: {why}\n")),
        None => text.push_str("verdict:      loadable\n"),
    }
    text
}

/// Arguments of `sesamed module run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The component file (`.wasm`); it need not be the configured one.
    file: PathBuf,
    /// The enrolled client to act as.
    #[arg(long = "as", value_name = "CLIENT")]
    client: String,
    /// The cluster to run in (its capabilities and policy); default: the cluster whose
    /// configuration names FILE.
    #[arg(long)]
    cluster: Option<String>,
    /// The command name the policy sees; default: FILE's name in the configuration, or its
    /// file stem.
    #[arg(long)]
    command: Option<String>,
    /// The caller's address as a transport would observe it (`"caller"` in a firewall grant).
    #[arg(long, value_name = "IP")]
    source_ip: Option<IpAddr>,
    /// The reason the client gives (`sesame run --reason`), as the policy sees it.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// The daemon's configuration (policy, client registry, clusters, limits).
    #[command(flatten)]
    config: ConfigArg,
    /// The command's arguments (after `--`).
    #[arg(last = true)]
    args: Vec<String>,
}

fn run_local(a: &RunArgs) -> Result<ExitCode> {
    let config = Config::load(&a.config.config)?;
    let registry = ClientRegistry::load(&config.clients_file)?;
    let Some(client) = registry.iter().find(|c| c.name == a.client) else {
        bail!(
            "no enrolled client {:?} in {} (sesamed client list shows them)",
            a.client,
            config.clients_file.display()
        );
    };
    let (cluster_name, command) = place(&config, &a.file, a.cluster.as_deref(), a.command.as_deref())?;
    let cluster = &config.clusters[&cluster_name];
    let request = sesame_proto::Request {
        reason: a.reason.clone(),
        ..sesame_proto::Request::new(
            &mut rand_core::OsRng,
            crate::now_ms(),
            &config.host_name,
            Some(&cluster_name),
            &command,
            a.args.clone(),
        )
    };
    request.validate().context("the request a client would send")?;

    let mut sandbox = Sandbox::new(1, crate::runner::memory_ceiling(&config))?;
    let module_spec = CommandModule {
        path: a.file.clone(),
        digest: None,
    };
    let module = sandbox.load(&cluster_name, &command, &module_spec, &cluster.capabilities)?;
    println!(
        "module:   {} ({}, {} bytes)",
        module.name, module.digest, module.size
    );
    println!("client:   {} [{}]", client.name, client.groups.join(", "));

    let policy = Policy::load(&config.policy_dir)
        .with_context(|| format!("policy {}", config.policy_dir.display()))?;
    let peer = crate::runner::Peer {
        transport: "local",
        source_ip: a.source_ip,
        progress: None,
    };
    let input = crate::runner::policy_input(
        &config,
        client,
        &request,
        &cluster_name,
        module.policy_input(),
        &peer,
        crate::now_ms(),
    );
    let grant = match policy.decide(&input) {
        Decision::Allow(grant) => *grant,
        Decision::Deny(reasons) => {
            println!("decision: deny (policy {})", policy.revision());
            for r in &reasons.0 {
                println!("  {r}");
            }
            println!("result:   error 1010 (denied by policy)");
            return Ok(ExitCode::from(1));
        }
    };
    println!("decision: allow (policy {})", policy.revision());
    for r in &grant.reasons {
        println!("  {r}");
    }
    println!("grant:    {}", serde_json::to_string(&grant.document())?);
    if let Some(rule) = &grant.approvals {
        println!(
            "approvals: {} from {} within {} s (the daemon parks the request until then; shown here as if approved)",
            rule.count,
            if rule.groups.is_empty() {
                "any other client".to_owned()
            } else {
                format!("group {}", rule.groups.join(" or "))
            },
            rule.ttl_s
        );
    }
    let limits = crate::runner::run_limits(&config.limits, &grant.limits);
    println!(
        "limits:   {} ms, {} MiB, {} KiB output, {} host calls",
        limits.timeout.as_millis(),
        limits.memory_bytes >> 20,
        limits.output_bytes >> 10,
        limits.host_calls
    );

    // Dry-run back ends in a scratch directory: nothing on this machine changes.
    let scratch = tempfile::tempdir().context("scratch directory")?;
    let recorder = Recorder::default();
    let audit = Arc::new(AuditLog::open(&scratch.path().join("audit.jsonl"))?);
    let services = Services::dry_run(&DryRun {
        config: &config,
        scratch: scratch.path(),
        audit: &audit,
        recorder: &recorder,
    })?;
    let invocation = Invocation {
        id: request.id.to_string(),
        cluster: cluster_name.clone(),
        command: command.clone(),
        args: a.args.clone(),
        client: client.name.clone(),
        groups: client.groups.clone(),
        source_ip: a.source_ip.map(|ip| ip.to_string()),
    };
    let outcome = sandbox.run(
        &module,
        &invocation,
        CallContext::new(request.id.to_string(), grant)
            .with_caller(client.name.clone(), a.source_ip)
            .with_client_key(client.key)
            .with_services(services)
            .with_trace(),
        limits,
    );
    let calls = &outcome.calls;
    println!("host calls ({}):", calls.host_calls);
    for call in calls.trace.iter().flatten() {
        println!("  {call}");
    }
    for (level, line) in &calls.log {
        println!("log:      [{level:?}] {line}");
    }
    for why in &calls.denied {
        println!("denied:   {why}");
    }
    for effect in &calls.effects {
        println!("effect:   {effect}");
    }
    for line in recorder.take() {
        println!("would:    {line}");
    }
    if !outcome.stderr.is_empty() {
        println!("stderr:   {}", outcome.stderr.trim_end());
    }
    let elapsed_us = outcome.elapsed.as_micros();
    match outcome.result {
        Ok(output) => {
            println!("result:   ok ({elapsed_us} µs), output:");
            println!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let code = e.code();
            println!(
                "result:   error {} ({}): {e} ({elapsed_us} µs)",
                code.as_u16(),
                code.summary()
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// The cluster and command name FILE runs as: as given, or as the configuration maps it.
fn place(
    config: &Config,
    file: &Path,
    cluster: Option<&str>,
    command: Option<&str>,
) -> Result<(String, String)> {
    let wanted = std::fs::canonicalize(file).with_context(|| format!("{}", file.display()))?;
    let configured: Vec<(&str, &str)> = config
        .clusters
        .iter()
        .flat_map(|(name, cl)| {
            cl.commands
                .iter()
                .filter(|(_, m)| std::fs::canonicalize(&m.path).is_ok_and(|p| p == wanted))
                .map(move |(cmd, _)| (name.as_str(), cmd.as_str()))
        })
        .filter(|(name, cmd)| cluster.is_none_or(|c| c == *name) && command.is_none_or(|c| c == *cmd))
        .collect();
    let cluster = match (cluster, configured.as_slice()) {
        (Some(c), _) => c.to_owned(),
        (None, [(c, _)]) => (*c).to_owned(),
        (None, []) => bail!(
            "{} is not configured in any cluster; name one with --cluster (known: {})",
            file.display(),
            config.clusters.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        (None, _) => bail!(
            "{} is configured for several commands ({}); name one with --cluster and --command",
            file.display(),
            configured
                .iter()
                .map(|(c, m)| format!("{c}::{m}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    if !config.clusters.contains_key(&cluster) {
        bail!("no cluster {cluster:?} in {}", config.path.display());
    }
    let command = match (command, configured.first()) {
        (Some(c), _) => c.to_owned(),
        (None, Some((_, c))) => (*c).to_owned(),
        (None, None) => file
            .file_stem()
            .map(|s| s.to_string_lossy().replace('_', "-"))
            .context("FILE has no name")?,
    };
    crate::config::check_name(&command).map_err(|e| anyhow::anyhow!("command name: {e}"))?;
    Ok((cluster, command))
}
