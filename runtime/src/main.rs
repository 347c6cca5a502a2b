//! `sesamed`: the sesame host daemon and its administration commands.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use sesamed::audit::{AuditEvent, AuditLog};
use sesamed::capability::firewall::Firewall;
use sesamed::cli::{Cli, ClientCommand, Command, LogFormat};
use sesamed::clients::ClientRegistry;
use sesamed::config::Config;
use sesamed::control::{self, ControlSocket};
use sesamed::identity::HostIdentity;
use sesamed::runner::Runner;
use sesamed::sandbox::compile::Compiler;
use sesamed::transport::quic::QuicServer;
use sesamed::transport::sqs::SqsServer;

fn main() -> ExitCode {
    sesamed::system::close_inherited_descriptors();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Init { dir } => init(&dir),
        Command::Serve { config } => serve(&config.config),
        Command::Configtest { config } => return configtest(&config.config),
        Command::Show { config } => show(&config.config),
        Command::Status { json, config } => return status(&config.config, json),
        Command::RotateKey { grace, config } => rotate_key(&config.config, grace),
        Command::Client(cmd) => client(cmd),
        Command::Policy(cmd) => return cmd.run(),
        Command::Module(cmd) => return cmd.run(),
        Command::Grants(cmd) => sesamed::ledger::cli::grants(cmd),
        Command::Audit(cmd) => return sesamed::audit::cli::run(cmd),
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
    println!("next key:    {} (SHA-256)", report.next_key_sha256);
    println!("cert sha256: {}", report.cert_sha256);
    Ok(())
}

/// What clients pin, and the `sesame host add` line that pins it: the key and the SHA-256 of the
/// next key as one `KEY:NEXT_SHA256` token, so enrolment stays one copy and paste.
fn show(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)?;
    let id = HostIdentity::load(&config.state_dir)?;
    let key = id.secret.public_key();
    let next = sesamed::identity::load_next(&config.state_dir)?
        .map(|n| n.public_key())
        .filter(|n| *n != key)
        .map(|n| n.digest());
    println!("host:        {}", config.host_name);
    println!("host key:    {key}");
    println!(
        "receipt key: {} (signs its receipts; audit verify --receipt-key)",
        sesame_proto::ReceiptSigner::derive(&id.secret).key()
    );
    match next {
        Some(digest) => println!("next key:    {digest} (SHA-256 of the key rotate-key moves to)"),
        None => println!(
            "next key:    none yet: sesamed makes {} when it next starts; until clients pin its \
             digest, none can follow a rotation by itself",
            sesamed::identity::NEXT_HOST_KEY
        ),
    }
    println!("cert sha256: {}", id.cert_sha256());
    if let Some(old) = sesamed::identity::load_previous(&config.state_dir)? {
        let now = sesamed::now_ms();
        if old.until_ms > now {
            println!(
                "old key:     {} (accepted until {})",
                old.secret.public_key(),
                sesamed::format_utc(old.until_ms)
            );
        }
    }
    let token = next.map_or_else(|| key.to_string(), |d| format!("{key}:{d}"));
    let mut routes = String::new();
    if let Some(listen) = config.quic_listen {
        // A wildcard listener has no address a client could use: the operator fills it in.
        let addr = if listen.ip().is_unspecified() {
            format!("ADDRESS:{}", listen.port())
        } else {
            listen.to_string()
        };
        routes.push_str(&format!(" --addr {addr} --cert-sha256 {}", id.cert_sha256()));
    }
    if let Some(sqs) = &config.sqs {
        routes.push_str(&format!(" --sqs-queue {}", sqs.queue));
        if let Some(region) = &sqs.aws.region {
            routes.push_str(&format!(" --sqs-region {region}"));
        }
    }
    println!(
        "to pin:      sesame host add {} --key {token}{routes}",
        config.host_name
    );
    Ok(())
}

/// Exit status of `status` when no daemon serves the state directory (as LSB init scripts).
const EXIT_NOT_RUNNING: u8 = 3;
/// Exit status of `status` when the daemon's state could not be found out.
const EXIT_STATUS_UNKNOWN: u8 = 4;

fn status(config_path: &Path, json: bool) -> ExitCode {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sesamed: {}", sesame_proto::error_chain(&e));
            return ExitCode::from(EXIT_STATUS_UNKNOWN);
        }
    };
    let s = match control::query(&config.state_dir) {
        Ok(s) => s,
        Err(e @ control::ControlError::NotRunning { .. }) => {
            eprintln!("sesamed: {e}");
            return ExitCode::from(EXIT_NOT_RUNNING);
        }
        Err(e) => {
            eprintln!("sesamed: {}", sesame_proto::error_chain(&e));
            if matches!(&e, control::ControlError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied)
            {
                eprintln!("sesamed: only root (or the daemon's own user) may ask it: try sudo");
            }
            return ExitCode::from(EXIT_STATUS_UNKNOWN);
        }
    };
    if json {
        match serde_json::to_string(&s) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("sesamed: {e}");
                return ExitCode::from(EXIT_STATUS_UNKNOWN);
            }
        }
        return ExitCode::SUCCESS;
    }
    let c = &s.counters;
    println!("sesamed {} (pid {}) serving {}", s.version, s.pid, s.host);
    println!(
        "up:          {} (since {})",
        sesamed::format_remaining(s.now_ms.saturating_sub(s.started_ms)),
        sesamed::format_utc(s.started_ms)
    );
    let mut listening = Vec::new();
    if let Some(q) = &s.quic {
        listening.push(format!("quic {q}"));
    }
    if let Some(q) = &s.sqs {
        listening.push(format!("sqs {q}"));
    }
    println!("serving:     {}", listening.join(", "));
    let by_code: Vec<String> = c
        .by_code
        .iter()
        .filter(|(code, _)| **code != 0)
        .map(|(code, n)| {
            let name = sesame_proto::ErrorCode::ALL
                .iter()
                .find(|e| e.as_u16() == *code)
                .map_or("?", |e| e.summary());
            format!("{n} × {code} {name}")
        })
        .collect();
    println!(
        "requests:    {} answered, {} ok{}; {} in flight",
        c.answered,
        c.ok,
        if by_code.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_code.join(", "))
        },
        s.in_flight
    );
    println!(
        "unanswered:  {} rejected (unknown key, bad MAC, garbage), {} duplicates",
        c.rejected, c.duplicates
    );
    println!("clients:     {}", s.clients);
    let cache = s.policy.cache.map_or_else(
        || "decisions not cached".to_owned(),
        |k| {
            format!(
                "cache {} hits, {} misses, {} of {} held",
                k.hits, k.misses, k.entries, k.capacity
            )
        },
    );
    println!("policy:      {} ({cache})", s.policy.revision);
    if let Some(g) = &s.grants {
        match g.live {
            Some(n) => println!("grants:      {n} live ({})", g.backend),
            None => println!(
                "grants:      ledger unreadable, see the daemon's log ({})",
                g.backend
            ),
        }
    }
    println!("host key:    {}", s.host_key);
    match &s.next_host_key_sha256 {
        Some(next) => println!("next key:    {next} (SHA-256)"),
        None => println!("next key:    none (clients cannot follow a rotation by themselves)"),
    }
    if let Some(old) = &s.previous_host_key {
        println!(
            "old key:     {} accepted until {}; {} requests still sealed to it",
            old.key,
            sesamed::format_utc(old.until_ms),
            c.previous_host_key
        );
    }
    ExitCode::SUCCESS
}

fn rotate_key(config_path: &Path, grace_ms: u64) -> Result<()> {
    let config = Config::load(config_path)?;
    let report = sesamed::identity::rotate(&config.state_dir, sesamed::now_ms(), grace_ms)?;
    audit(
        &config,
        AuditEvent::HostKeyRotated {
            key: report.public_key.to_string(),
            receipt_key: report.receipt_key.to_string(),
            previous: report.previous.map(|(k, _)| k.to_string()).unwrap_or_default(),
            previous_until_ms: report.previous.map_or(0, |(_, until)| until),
            next_key_sha256: report.next_key_sha256.to_string(),
            committed: report.committed,
        },
    )?;
    if report.resumed {
        println!("finished an interrupted rotation: the new key was in place, its successor was not");
    }
    println!("host key:    {}", report.public_key);
    println!("receipt key: {}", report.receipt_key);
    println!("next key:    {} (SHA-256)", report.next_key_sha256);
    if let Some((old, until)) = report.previous {
        println!("old key:     {old} accepted until {}", sesamed::format_utc(until));
    }
    // A running daemon checks the key files every second; wait to see it take the new key.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match control::query(&config.state_dir) {
            Ok(s) if s.host_key == report.public_key.to_string() => {
                println!("the running daemon (pid {}) now uses the new key", s.pid);
                break;
            }
            Ok(s) if std::time::Instant::now() >= deadline => {
                bail!(
                    "the running daemon (pid {}) still uses {}; see its log, or send it SIGHUP",
                    s.pid,
                    s.host_key
                )
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(100)),
            Err(control::ControlError::NotRunning { .. }) => {
                println!("sesamed is not running; it will use the new key when it starts");
                break;
            }
            Err(e) => bail!("the new key is written, but asking the daemon failed: {e}"),
        }
    }
    let pin = format!(
        "sesame host repin {} --key {}:{}",
        config.host_name, report.public_key, report.next_key_sha256
    );
    if report.committed {
        println!(
            "clients that pinned the next key's digest follow by themselves at their next request \
             before the old key's time is up; others (pinned without it, or later): {pin}"
        );
    } else {
        eprintln!(
            "sesamed: warning: {} was missing, so this key was made now and no client committed \
             to it: none follows by itself. Give each client the new pin over a channel you \
             trust: {pin}",
            sesamed::identity::NEXT_HOST_KEY
        );
    }
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
    let loaded =
        sesamed::runner::sandbox_for(&config, Some(Compiler::this_executable()))?.load_config(&config)?;
    let mut backends = String::new();
    let audit = Arc::new(AuditLog::open(&config.audit_log)?);
    let checks = sesamed::capability::Services::check(&sesamed::capability::Start {
        config: &config,
        audit: &audit,
        now_ms: sesamed::now_ms(),
    })?;
    for (_, check) in checks {
        for warning in &check.warnings {
            eprintln!("sesamed: warning: {warning}");
        }
        if !check.summary.is_empty() {
            backends.push_str(&format!(", {}", check.summary));
        }
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
            // A grants ledger from before holders were keys is migrated with the registry as
            // it is now, so a name enrolled again does not inherit an old client's holds.
            if let Err(e) = with_firewall(&config, |fw| Ok(fw.list(sesamed::now_ms(), None).map(drop)?)) {
                eprintln!("sesamed: warning: reading the grants ledger: {e:#}");
            }
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
        ClientCommand::Rekey {
            name,
            key,
            grace,
            config,
        } => {
            let config = Config::load(&config.config)?;
            let key: sesame_proto::PublicKey = key.parse().context("--key")?;
            let mut reg = ClientRegistry::load(&config.clients_file)?;
            let now = sesamed::now_ms();
            let until = now.saturating_add(grace);
            let dropped = reg
                .iter()
                .find(|c| c.name == name)
                .and_then(|c| c.previous)
                .map(|(k, _)| k);
            let old = reg.rekey(&name, key, until)?;
            reg.save(&config.clients_file)?;
            audit(
                &config,
                AuditEvent::ClientRekeyed {
                    name: name.clone(),
                    key: key.to_string(),
                    previous: old.to_string(),
                    previous_until_ms: until,
                },
            )?;
            println!("{name} now has key {key}");
            println!(
                "its old key {old} is accepted until {}",
                sesamed::format_utc(until)
            );
            // The same client under a new key: its firewall openings go with it.
            let from: Vec<_> = std::iter::once(old).chain(dropped).collect();
            let moved = with_firewall(&config, |fw| Ok(fw.rekey_client(now, &name, &from, &key)?))
                .context("the key is changed, but its firewall openings were not moved to it")?;
            for id in moved {
                println!("{id} is held by the new key");
            }
            // And its temporary keys and group memberships.
            let moved = with_users(&config, |users| Ok(users.rekey_client(&name, &from, &key)?))
                .context("the key is changed, but its temporary account changes were not moved to it")?;
            for id in moved {
                println!("{id} is held by the new key");
            }
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
            // Its key is refused from the next request; what it held closes now (the daemon
            // sees the ledger change: both take its lock).
            let keys: Vec<_> = std::iter::once(gone.key)
                .chain(gone.previous.map(|(k, _)| k))
                .collect();
            let released = with_firewall(&config, |fw| {
                Ok(fw.remove_client(sesamed::now_ms(), &name, &keys)?)
            })
            .with_context(|| {
                format!("{name}'s firewall openings were not closed: see `sesamed grants list`")
            })?;
            for (id, rule) in &released.closed {
                println!("closed {id} ({rule})");
            }
            for (id, rule) in &released.released {
                println!("released {id} ({rule}): others still hold it");
            }
            for (id, why) in &released.failed {
                eprintln!("sesamed: closing {id} failed (the daemon retries it): {why}");
            }
            // Its temporary keys and group memberships go now, unless others hold them too.
            let (taken, kept) = with_users(&config, |users| Ok(users.remove_client(sesamed::now_ms(), &keys)?))
                .with_context(|| {
                    format!("{name}'s temporary keys and group memberships were not taken back: see `sesamed grants list`")
                })?;
            for u in &taken {
                println!("took back {} (a temporary change to {})", u.id, u.account);
            }
            for u in &kept {
                println!(
                    "released {} (a temporary change to {}): others still hold it",
                    u.id, u.account
                );
            }
            if !released.failed.is_empty() {
                bail!(
                    "{} of {name}'s openings are not closed yet",
                    released.failed.len()
                );
            }
        }
        ClientCommand::List { config } => {
            let config = Config::load(&config.config)?;
            let reg = ClientRegistry::load(&config.clients_file)?;
            let now = sesamed::now_ms();
            for c in reg.iter() {
                let old = c
                    .previous
                    .filter(|(_, until)| *until > now)
                    .map(|(k, until)| format!("\told key {k} until {}", sesamed::format_utc(until)))
                    .unwrap_or_default();
                println!("{}\t{}\t{}{old}", c.name, c.key, c.groups.join(","));
            }
        }
    }
    Ok(())
}

/// Runs `change` on the grants service when a cluster of `config` has the firewall
/// capability (and returns `T::default()` when none has), syncing its audit records after.
/// Runs `change` with the users service and its ledger when a cluster of `config` has the users
/// capability (temporary keys and memberships exist only then), `T::default()` otherwise.
fn with_users<T: Default>(
    config: &Config,
    change: impl FnOnce(&sesamed::capability::users::Users) -> Result<T>,
) -> Result<T> {
    if !config.uses("users") {
        return Ok(T::default());
    }
    let audit = Arc::new(AuditLog::open(&config.audit_log)?);
    let users =
        sesamed::capability::users::Users::new()?.with_ledger(sesamed::capability::users::KeyLedger {
            file: sesamed::ledger::LedgerFile::new(&config.state_dir, &config.clients_file),
            audit: Arc::clone(&audit),
            ceilings: config.capabilities.users,
        });
    let result = change(&users);
    audit.sync()?;
    result
}

fn with_firewall<T: Default>(config: &Config, change: impl FnOnce(&Firewall) -> Result<T>) -> Result<T> {
    if !config.uses("firewall") {
        return Ok(T::default());
    }
    let audit = Arc::new(AuditLog::open(&config.audit_log)?);
    let fw = Firewall::from_config(config, Arc::clone(&audit))?;
    let result = change(&fw);
    audit.sync()?;
    result
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
    // First, so a second daemon on this state directory stops before it touches anything.
    let control = ControlSocket::bind(&config.state_dir)?;
    // A state directory from before sesamed kept a next key pair gets one now, so clients can
    // pin its digest (`sesamed show`) and follow the next rotation.
    if let Some(next) = sesamed::identity::ensure_next(&config.state_dir)? {
        tracing::warn!(
            next_key_sha256 = %next,
            "made {}: clients pinned without its digest cannot follow a rotation by themselves; \
             give them the pin `sesamed show` prints",
            sesamed::identity::NEXT_HOST_KEY
        );
    }
    let runner = Arc::new(Runner::start(
        config,
        sesamed::now_ms(),
        Some(Compiler::this_executable()),
    )?);
    give_back_startup_heap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let drain = Duration::from_secs(30);
        let mut serving = Vec::new();
        let mut quic_addr = None;
        if let Some(listen) = runner.config().quic_listen {
            let server = QuicServer::bind(listen, &identity)?;
            let addr = server.local_addr()?;
            quic_addr = Some(addr.to_string());
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
        let sqs_queue = runner.config().sqs.as_ref().map(|s| s.queue.clone());
        let status_of = Arc::clone(&runner);
        let status = move || control::Status {
            quic: quic_addr.clone(),
            sqs: sqs_queue.clone(),
            ..status_of.status(sesamed::now_ms())
        };
        tokio::spawn(control.serve(status, stop_rx.clone()));
        tokio::spawn(housekeeping(Arc::clone(&runner), stop_rx));
        let reason = shutdown_signal().await?;
        tracing::info!("{reason}: finishing requests in flight");
        let _ = stop_tx.send(true);
        let stopping = tokio::time::Instant::now();
        for s in serving {
            let _ = s.await;
        }
        // Detached runs hold their place in the count of requests in hand: they get the same
        // drain time; one still running after it is reported interrupted at the next start.
        while runner.in_flight() > 0 && stopping.elapsed() < drain {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        runner.shutdown(sesamed::now_ms(), &reason);
        anyhow::Ok(())
    })
}

/// Returns to the kernel the heap that start-up used and freed: compiling modules and loading the
/// policy leave megabytes free but still mapped in glibc's heap, which a daemon that then idles on a
/// small host should not hold (measured on the demo host: 7.9 MiB of anonymous memory before, 5.9
/// after).
fn give_back_startup_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim only unmaps or discards pages that glibc's allocator holds free; it takes
    // no pointer and invalidates no allocation.
    unsafe {
        libc::malloc_trim(0);
    }
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

/// The daemon's once-a-second chores, on one timer so that an idle daemon wakes once a second
/// for them, not once per chore:
///
/// - closing expired firewall openings and expiring unapproved parked requests (the nftables
///   back end also has the kernel stop matching at expiry; ufw relies on this);
/// - reloading the policy and the host keys when their files change, and the client registry,
///   the policy and the keys on SIGHUP (a changed registry file is also picked up by the next
///   request, `Runner::refresh_clients`).
///
/// Each chore runs on a blocking thread of its own and is not waited for: a policy that takes long
/// to load never holds up the reaper. A chore still running at the next tick skips it, and a
/// SIGHUP that comes while the reloads are busy is done when they are free.
async fn housekeeping(runner: Arc<Runner>, mut stop: tokio::sync::watch::Receiver<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    use tokio::task::{JoinHandle, spawn_blocking};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!("no SIGHUP handler ({e}); reloads happen on file changes only");
            None
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let free = |job: &Option<JoinHandle<()>>| job.as_ref().is_none_or(JoinHandle::is_finished);
    let (mut reaping, mut reloading) = (None, None);
    let mut forced = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(()) = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => forced = true,
            _ = stop.changed() => break,
        }
        if free(&reaping) {
            let r = Arc::clone(&runner);
            reaping = Some(spawn_blocking(move || r.reap(sesamed::now_ms())));
        }
        if free(&reloading) {
            let r = Arc::clone(&runner);
            let hup = std::mem::take(&mut forced);
            reloading = Some(spawn_blocking(move || {
                let now = sesamed::now_ms();
                r.release_logs(now);
                if hup {
                    tracing::info!("SIGHUP: reloading clients, policy and host keys");
                    r.reload_clients(now);
                    let _ = r.reload_policy(now);
                    r.reload_keys(now);
                } else {
                    r.refresh_policy(now);
                    r.refresh_keys(now);
                }
            }));
        }
    }
    // Stopping: a chore under way finishes first, as it would have before the stop.
    for job in [reaping, reloading].into_iter().flatten() {
        let _ = job.await;
    }
}
