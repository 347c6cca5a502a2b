//! `sesamed`: the sesame host daemon and its administration commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use sesamed::audit::chain::{self, Head};
use sesamed::audit::{AuditEvent, AuditLog};
use sesamed::cli::{AuditCommand, Cli, ClientCommand, Command, GrantsCommand, LogFormat};
use sesamed::clients::ClientRegistry;
use sesamed::config::Config;
use sesamed::firewall::{Firewall, GrantId, Revoker};
use sesamed::identity::HostIdentity;
use sesamed::runner::Runner;
use sesamed::transport::quic::QuicServer;
use sesamed::transport::sqs::SqsServer;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Init { dir } => init(&dir),
        Command::Serve { config } => serve(&config.config),
        Command::Configtest { config } => return configtest(&config.config),
        Command::Show { config } => show(&config.config),
        Command::Client(cmd) => client(cmd),
        Command::Policy(cmd) => return cmd.run(),
        Command::Module(cmd) => return cmd.run(),
        Command::Grants(cmd) => grants(cmd),
        Command::Audit(cmd) => return audit_command(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sesamed: {}", sesame_proto::error_chain(e.as_ref()));
            ExitCode::from(1)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SESAME_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colours for people at a terminal; plain text for journald and log files.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}

fn init(dir: &Path) -> Result<()> {
    let report = HostIdentity::init(dir)?;
    for f in &report.files {
        println!("wrote {}", f.display());
    }
    println!("host key:    {}", report.public_key);
    println!("cert sha256: {}", report.cert_sha256);
    Ok(())
}

fn show(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)?;
    let id = HostIdentity::load(&config.state_dir)?;
    println!("host:        {}", config.host_name);
    println!("host key:    {}", id.secret.public_key());
    println!("cert sha256: {}", id.cert_sha256());
    Ok(())
}

fn configtest(config_path: &Path) -> ExitCode {
    match check_everything(config_path) {
        Ok(summary) => {
            println!("config OK: {summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sesamed: config error: {}", sesame_proto::error_chain(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

/// Everything `serve` would load, without listening.
fn check_everything(config_path: &Path) -> Result<String> {
    let config = Config::load(config_path)?;
    HostIdentity::load(&config.state_dir)?;
    let clients = ClientRegistry::load(&config.clients_file)?;
    let policy = sesamed::policy::Policy::load(&config.policy_dir)
        .with_context(|| format!("policy {}", config.policy_dir.display()))?;
    let loaded = sesamed::runner::sandbox_for(&config)?.load_config(&config)?;
    let mut backends = String::new();
    if config.uses("firewall") {
        let audit = Arc::new(AuditLog::open(&config.audit_log)?);
        let fw = Firewall::from_config(&config, audit)?;
        for warning in fw.check()? {
            eprintln!("sesamed: warning: {warning}");
        }
        backends = format!(", firewall {}", fw.backend_name());
    }
    if config.uses("salt") {
        let salt = sesamed::salt::Salt::from_config(&config.salt)?;
        backends.push_str(&format!(", {}", salt.check()?));
    }
    if let Some(sqs) = config.sqs.clone() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let queue = rt
            .block_on(async { SqsServer::new(sqs).await.check().await })
            .context("sqs")?;
        backends.push_str(&format!(", sqs queue {}", queue.url()));
    }
    Ok(format!(
        "host {}, {} clients, {} modules ({} precompiled), policy {}{backends}",
        config.host_name,
        clients.len(),
        loaded.modules,
        loaded.cached,
        policy.revision()
    ))
}

fn client(cmd: ClientCommand) -> Result<()> {
    match cmd {
        ClientCommand::Add {
            name,
            key,
            groups,
            config,
        } => {
            let config = Config::load(&config.config)?;
            let key: sesame_proto::PublicKey = key.parse().context("--key")?;
            let mut reg = ClientRegistry::load(&config.clients_file)?;
            reg.add(&name, key, groups.clone())?;
            reg.save(&config.clients_file)?;
            audit(
                &config,
                AuditEvent::ClientAdded {
                    name: name.clone(),
                    key: key.to_string(),
                    groups,
                },
            )?;
            println!("enrolled {name} ({key})");
        }
        ClientCommand::Remove { name, config } => {
            let config = Config::load(&config.config)?;
            let mut reg = ClientRegistry::load(&config.clients_file)?;
            let gone = reg.remove(&name)?;
            reg.save(&config.clients_file)?;
            audit(
                &config,
                AuditEvent::ClientRemoved {
                    name: name.clone(),
                    key: gone.key.to_string(),
                },
            )?;
            println!("removed {name}");
        }
        ClientCommand::List { config } => {
            let config = Config::load(&config.config)?;
            let reg = ClientRegistry::load(&config.clients_file)?;
            for c in reg.iter() {
                println!("{}\t{}\t{}", c.name, c.key, c.groups.join(","));
            }
        }
    }
    Ok(())
}

fn grants(cmd: GrantsCommand) -> Result<()> {
    let (GrantsCommand::List { config, .. } | GrantsCommand::Revoke { config, .. }) = &cmd;
    let config = Config::load(&config.config)?;
    let audit = Arc::new(AuditLog::open(&config.audit_log)?);
    let fw = Firewall::from_config(&config, Arc::clone(&audit))?;
    let now = sesamed::now_ms();
    match cmd {
        GrantsCommand::List { json, .. } => {
            let grants = fw.list(now, None)?;
            if json {
                for g in &grants {
                    println!("{}", serde_json::to_string(g)?);
                }
            } else if grants.is_empty() {
                println!("no live grants ({} back end)", fw.backend_name());
            } else {
                println!("{:<20} {:<36} {:<34} HOLDERS", "ID", "RULE", "CLOSES");
                for g in &grants {
                    let holders: Vec<&str> = g.holders.iter().map(|h| h.client.as_str()).collect();
                    let closes = format!(
                        "{} ({} left)",
                        sesamed::format_utc(g.expires_ms),
                        sesamed::format_remaining(g.expires_ms.saturating_sub(now))
                    );
                    println!(
                        "{:<20} {:<36} {closes:<34} {}",
                        g.id.as_str(),
                        g.rule.to_string(),
                        holders.join(",")
                    );
                }
            }
        }
        GrantsCommand::Revoke { ids, all, .. } => {
            let ids: Vec<GrantId> = if all {
                fw.list(now, None)?.into_iter().map(|g| g.id).collect()
            } else {
                ids.iter()
                    .map(|s| s.parse().with_context(|| format!("{s:?}")))
                    .collect::<Result<_>>()?
            };
            let mut failed = 0;
            for id in &ids {
                match fw.revoke(now, Revoker::Operator, id) {
                    Ok(rule) => println!(
                        "revoked {id}{}",
                        rule.map(|r| format!(" ({r})")).unwrap_or_default()
                    ),
                    Err(e) => {
                        eprintln!("sesamed: {id}: {e}");
                        failed += 1;
                    }
                }
            }
            if all && ids.is_empty() {
                println!("no live grants");
            }
            audit.sync()?;
            if failed > 0 {
                bail!("{failed} of {} grants not revoked", ids.len());
            }
        }
    }
    Ok(())
}

fn audit_command(cmd: AuditCommand) -> ExitCode {
    let AuditCommand::Verify {
        files,
        expect,
        config,
    } = cmd;
    let run = || -> Result<bool> {
        let expect = expect
            .map(|e| Head::parse(&e).with_context(|| format!("--expect {e:?}: not SEQ:SHA256")))
            .transpose()?;
        // A saved head names a record of the audit log (or of the files given), never of the
        // decision log.
        let sets: Vec<(Vec<PathBuf>, Option<Head>)> = if files.is_empty() {
            let config = Config::load(&config.config)?;
            vec![
                (vec![config.audit_log], expect),
                (vec![config.decision_log], None),
            ]
        } else {
            vec![(files, expect)]
        };
        let mut intact = true;
        for (set, expect) in sets {
            let name = set
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" + ");
            let report = chain::verify(&set, expect).with_context(|| name.clone())?;
            let start = match report.first {
                Some((seq, true)) => format!("seq {seq}"),
                Some((seq, false)) => format!("seq {seq} (continues an earlier log)"),
                None => "no chained records".to_owned(),
            };
            let head_file = match report.head_file {
                Some(h) if h == report.head => ", matches its head file".to_owned(),
                Some(_) if report.behind > 0 => format!(
                    ", {} records past its head file (sesamed updates it within a second)",
                    report.behind
                ),
                Some(_) => ", DIFFERS from its head file".to_owned(),
                None => ", no head file yet".to_owned(),
            };
            if report.problems.is_empty() {
                println!(
                    "{name}: intact: {} records from {start} to head {}{head_file}",
                    report.lines,
                    report.head.text()
                );
            } else {
                intact = false;
                println!("{name}: NOT intact ({} problems):", report.problems.len());
                for p in report.problems.iter().take(50) {
                    println!("  {p}");
                }
                println!("  head {}{head_file}", report.head.text());
            }
            if report.unchained > 0 {
                println!(
                    "  {} lines before the chain began (written before sesamed kept one)",
                    report.unchained
                );
            }
        }
        Ok(intact)
    };
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sesamed: {}", sesame_proto::error_chain(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

fn audit(config: &Config, event: AuditEvent) -> Result<()> {
    let log = AuditLog::open(&config.audit_log)?;
    log.append(sesamed::now_ms(), &event)?;
    log.sync()?;
    Ok(())
}

fn serve(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)?;
    let identity = HostIdentity::load(&config.state_dir)?;
    let runner = Arc::new(Runner::start(config, sesamed::now_ms())?);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let drain = Duration::from_secs(30);
        let mut serving = Vec::new();
        if let Some(listen) = runner.config().quic_listen {
            let server = QuicServer::bind(listen, &identity)?;
            let addr = server.local_addr()?;
            tracing::info!(%addr, host = %runner.config().host_name, "serving QUIC");
            // Tests and scripts wait for this line on stdout.
            println!("listening on {addr}");
            serving.push(tokio::spawn(server.serve(
                Arc::clone(&runner),
                stop_rx.clone(),
                drain,
            )));
        }
        if let Some(sqs) = runner.config().sqs.clone() {
            println!("polling SQS queue {}", sqs.queue);
            let server = Arc::new(SqsServer::new(sqs).await);
            serving.push(tokio::spawn(server.serve(
                Arc::clone(&runner),
                stop_rx.clone(),
                drain,
            )));
        }
        tokio::spawn(watch_reloads(Arc::clone(&runner), stop_rx.clone()));
        tokio::spawn(reap_grants(Arc::clone(&runner), stop_rx));
        let reason = shutdown_signal().await?;
        tracing::info!("{reason}: finishing requests in flight");
        let _ = stop_tx.send(true);
        for s in serving {
            let _ = s.await;
        }
        runner.shutdown(sesamed::now_ms(), &reason);
        anyhow::Ok(())
    })
}

async fn shutdown_signal() -> Result<String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM".to_owned(),
        _ = int.recv() => "SIGINT".to_owned(),
    })
}

/// Closes expired firewall openings, checking every second (the nftables back end also has the
/// kernel stop matching at expiry; ufw relies on this).
async fn reap_grants(runner: Arc<Runner>, mut stop: tokio::sync::watch::Receiver<bool>) {
    if runner.firewall().is_none() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let r = Arc::clone(&runner);
        let _ = tokio::task::spawn_blocking(move || r.reap_grants(sesamed::now_ms())).await;
    }
}

/// Reloads the client registry and the policy on SIGHUP, and the policy when a file in its
/// directory changes (checked every second). A changed registry file is also picked up by the
/// next request (`Runner::refresh_clients`).
async fn watch_reloads(runner: Arc<Runner>, mut stop: tokio::sync::watch::Receiver<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!("no SIGHUP handler ({e}); reloads happen on file changes only");
            None
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
            _ = stop.changed() => return,
        };
        let r = Arc::clone(&runner);
        let _ = tokio::task::spawn_blocking(move || {
            let now = sesamed::now_ms();
            r.release_logs();
            if forced {
                tracing::info!("SIGHUP: reloading clients and policy");
                r.reload_clients(now);
                let _ = r.reload_policy(now);
            } else {
                r.refresh_policy(now);
            }
        })
        .await;
    }
}
