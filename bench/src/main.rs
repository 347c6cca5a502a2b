//! `sesame-bench`: measures request round trips against a running `sesamed`, from its own
//! process, the way a client sees them.
//!
//! `sesame-bench rtt HOST [--count N] [--warmup N] [COMMAND ARGS...]` sends N requests one after
//! the other on one QUIC connection (one stream each, as `sesame` does) and prints latency
//! percentiles. The client key and pinned host come from `$SESAME_HOME`, as for `sesame`.
//!
//! `sesame-bench policy [--dir policies] [--count N]` measures one policy decision
//! (`Policy::decide`, as the daemon calls it) for an allowed and a denied request.
//!
//! `sesame-bench sqs HOST [--count N]` measures sequential requests over SQS to a daemon polling
//! the host's queue, and, in the same run against the same SQS, the baseline they cannot beat:
//! a bare relay that receives each message, sends it back on another queue and
//! deletes it (in a process of its own, as the daemon is), the same six SQS calls with no crypto,
//! policy or sandbox. The difference is the daemon's own cost. The host's queue is created if
//! missing.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sesame_client::{ClientHome, Session};
use sesame_proto::{Envelope, Request, Response, Sealer, Status};

#[derive(Debug, Parser)]
#[command(name = "sesame-bench", about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sequential round trips on one connection: latency of one request.
    Rtt {
        /// The pinned host.
        host: String,
        /// Measured requests.
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Unmeasured requests first.
        #[arg(long, default_value_t = 50)]
        warmup: usize,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, default_values_t = ["basic::echo".to_owned(), "hello".to_owned()])]
        command: Vec<String>,
    },
    /// The sandbox in-process: fresh store, instantiate and call, per request.
    Sandbox {
        /// The component to run.
        module: std::path::PathBuf,
        /// Measured runs.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
    },
    /// Sequential requests over SQS, and a bare SQS relay as the baseline.
    Sqs {
        /// The pinned host (with an SQS route).
        host: String,
        /// Measured requests (each way).
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Unmeasured requests first.
        #[arg(long, default_value_t = 20)]
        warmup: usize,
    },
    /// The baseline relay of `sqs`, run as its own process (as the daemon is); runs until killed.
    #[command(hide = true)]
    SqsRelay {
        /// The pinned host whose SQS settings to use.
        host: String,
    },
    /// Policy decisions in-process: what the daemon spends per request on Rego.
    Policy {
        /// The policy directory.
        #[arg(long, default_value = "policies")]
        dir: std::path::PathBuf,
        /// Measured decisions per case.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Rtt {
            host,
            count,
            warmup,
            command,
        } => rt.block_on(rtt(&host, count, warmup, &command)),
        Command::Sqs { host, count, warmup } => rt.block_on(sqs(&host, count, warmup)),
        Command::SqsRelay { host } => rt.block_on(sqs_relay(&host)),
        Command::Policy { dir, count } => policy(&dir, count),
        Command::Sandbox { module, count } => sandbox(&module, count),
    }
}

async fn rtt(alias: &str, count: usize, warmup: usize, command: &[String]) -> anyhow::Result<()> {
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let home = ClientHome::from_env()?;
    let host = home.host(alias)?;
    let sealer = Sealer::new(home.key()?);
    let (name, args) = command.split_first().context("no command")?;
    let (cluster, name) = name
        .split_once("::")
        .map_or((None, name.as_str()), |(c, n)| (Some(c), n));
    let session = Session::connect(&host).await?;
    let mut samples = Vec::with_capacity(count);
    for i in 0..warmup + count {
        let request = new_request(&host, alias, cluster, name, args);
        let started = Instant::now();
        let sealed = sealer.seal(&host.key, &mut rand_core::OsRng, &request.encode())?;
        let reply = session.exchange(&sealed, Duration::from_secs(10)).await?;
        let plaintext = sealer.open(&Envelope::decode(&reply)?, |k| *k == host.key)?;
        let response = Response::decode(&plaintext)?;
        let elapsed = started.elapsed();
        if response.status != Status::Ok {
            bail!("request failed: {} {}", response.code, response.message);
        }
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    session.close().await;
    println!("rtt {}", summary(samples));
    Ok(())
}

async fn sqs(alias: &str, count: usize, warmup: usize) -> anyhow::Result<()> {
    use sesame_sqs::Queue;
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let home = ClientHome::from_env()?;
    let host = home.host(alias)?;
    let route = host.sqs.clone().context("the host has no SQS route")?;
    let sealer = std::sync::Arc::new(Sealer::new(home.key()?));
    let settings = route.settings();
    let client = sesame_sqs::client(&settings, Duration::from_secs(10)).await;
    Queue::open_or_create(&client, &route.queue, &[]).await?;

    // sesame over SQS: the daemon must be polling the host's queue.
    let link = sesame_client::SqsLink::connect(&settings, std::sync::Arc::clone(&sealer)).await?;
    let mut samples = Vec::with_capacity(count);
    for i in 0..warmup + count {
        let request = new_request(&host, alias, Some("basic"), "echo", &["hello".to_owned()]);
        let started = Instant::now();
        // The first requests may wait for a daemon still backing off from a missing queue.
        let response = link
            .send_request(&host, &sealer, &request, Duration::from_secs(60))
            .await?;
        let elapsed = started.elapsed();
        if response.status != Status::Ok {
            bail!("request failed: {} {}", response.code, response.message);
        }
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    drop(link);
    println!("sqs-sesame {}", summary(samples));

    // The baseline: the same SQS calls through a relay, in its own process like the daemon,
    // that does nothing else.
    let (inbound, outbound) = relay_queues(&client).await?;
    let mut relay = std::process::Command::new(std::env::current_exe()?)
        .args(["sqs-relay", alias])
        .spawn()
        .context("starting the relay")?;
    let payload = vec![0u8; 200];
    let mut samples = Vec::with_capacity(count);
    for i in 0..warmup + count {
        let started = Instant::now();
        inbound.send(&payload).await?;
        let reply = loop {
            if let Some(m) = outbound.receive(10, 20, 30).await?.into_iter().next() {
                break m;
            }
        };
        outbound.delete(&reply.receipt).await?;
        let elapsed = started.elapsed();
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    let _ = relay.kill();
    let _ = relay.wait();
    println!("sqs-relay {}", summary(samples));
    Ok(())
}

async fn relay_queues(client: &sesame_sqs::Client) -> anyhow::Result<(sesame_sqs::Queue, sesame_sqs::Queue)> {
    use sesame_sqs::Queue;
    Ok((
        Queue::open_or_create(client, "sesame-bench-relay-in", &[]).await?,
        Queue::open_or_create(client, "sesame-bench-relay-out", &[]).await?,
    ))
}

/// Receives each message on the relay's inbound queue, sends it to the outbound one, deletes it.
async fn sqs_relay(alias: &str) -> anyhow::Result<()> {
    let host = ClientHome::from_env()?.host(alias)?;
    let route = host.sqs.context("the host has no SQS route")?;
    let client = sesame_sqs::client(&route.settings(), Duration::from_secs(10)).await;
    let (inbound, outbound) = relay_queues(&client).await?;
    loop {
        for m in inbound.receive(10, 20, 30).await? {
            if let Ok(body) = m.envelope {
                outbound.send(&body).await?;
            }
            inbound.delete(&m.receipt).await?;
        }
    }
}

fn policy(dir: &std::path::Path, count: usize) -> anyhow::Result<()> {
    use sesamed::policy::{ClientInput, HostInput, ModuleInput, Policy, PolicyInput, RequestInput};
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let policy = Policy::load(dir)?;
    let input = |command: &str, cluster: &str| PolicyInput {
        client: ClientInput {
            name: "alice".into(),
            key: "00".repeat(32),
            groups: vec!["users".into()],
        },
        request: RequestInput {
            id: "00".repeat(16),
            cluster: cluster.into(),
            command: command.into(),
            args: vec!["hello".into()],
            transport: "quic".into(),
            source_ip: Some("127.0.0.1".into()),
        },
        host: HostInput {
            name: "demo".into(),
            labels: Default::default(),
        },
        module: ModuleInput {
            name: format!("{cluster}::{command}"),
            digest: format!("sha256:{}", "0".repeat(64)),
            imports: vec![],
        },
        now_ns: 0,
    };
    for (case, input, allowed) in [
        ("allow", input("echo", "basic"), true),
        ("deny", input("spin", "testing"), false),
    ] {
        let mut samples = Vec::with_capacity(count);
        for i in 0..count + count / 10 {
            let started = Instant::now();
            let decision = policy.decide(&input);
            let elapsed = started.elapsed();
            if decision.is_allowed() != allowed {
                bail!("{case}: unexpected decision {decision:?}");
            }
            if i >= count / 10 {
                samples.push(elapsed);
            }
        }
        println!("policy-{case} {}", summary(samples));
    }
    Ok(())
}

fn sandbox(module: &std::path::Path, count: usize) -> anyhow::Result<()> {
    use sesamed::config::CommandModule;
    use sesamed::host::{CallContext, Invocation};
    use sesamed::policy::Grant;
    use sesamed::sandbox::{RunLimits, Sandbox, Strategy};
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let spec = CommandModule {
        path: module.to_owned(),
        digest: None,
    };
    // Start-up: compiling the module, then loading it from the precompiled cache.
    let cache = std::env::temp_dir().join(format!("sesame-bench-cache-{}", std::process::id()));
    for (label, round) in [("compile", 0), ("cached", 1)] {
        let mut sandbox = Sandbox::new(1, 64 << 20)?;
        sandbox.use_cache(&cache)?;
        let started = Instant::now();
        let loaded = sandbox.load("bench", "module", &spec, &[])?;
        let elapsed = started.elapsed();
        if loaded.cached != (round == 1) {
            bail!("cache round {round}: cached = {}", loaded.cached);
        }
        println!("load-{label} us={:.1}", elapsed.as_secs_f64() * 1e6);
    }
    let _ = std::fs::remove_dir_all(&cache);

    let invocation = Invocation {
        id: "00".repeat(16),
        cluster: "bench".into(),
        command: "module".into(),
        args: vec!["hello".into()],
        client: "alice".into(),
        groups: vec!["users".into()],
        source_ip: None,
    };
    let limits = RunLimits {
        timeout: Duration::from_secs(5),
        memory_bytes: 64 << 20,
        output_bytes: 64 << 10,
        host_calls: sesamed::host::DEFAULT_MAX_HOST_CALLS,
    };
    // The same run with each instance allocation strategy, in rounds so that machine noise
    // falls on all three alike.
    let strategies = [
        ("on-demand", Strategy::OnDemand),
        ("pooling-default", Strategy::PoolingDefault),
        ("pooling", Strategy::Pooling),
    ];
    let mut sandboxes = Vec::new();
    for (label, strategy) in strategies {
        let mut sandbox = Sandbox::with_strategy(strategy, 4, 64 << 20)?;
        let loaded = sandbox.load("bench", "module", &spec, &[])?;
        sandboxes.push((label, sandbox, loaded, Vec::with_capacity(count)));
    }
    let rounds = 10;
    let per_round = count.div_ceil(rounds);
    for round in 0..=rounds {
        for (_, sandbox, loaded, samples) in &mut sandboxes {
            for _ in 0..per_round {
                let calls = CallContext::new(invocation.id.clone(), Grant::default());
                let started = Instant::now();
                let outcome = sandbox.run(loaded, &invocation, calls, limits);
                let elapsed = started.elapsed();
                if let Err(e) = outcome.result {
                    bail!("run failed: {e}");
                }
                // Round 0 warms up.
                if round > 0 {
                    samples.push(elapsed);
                }
            }
        }
    }
    for (label, _, _, samples) in sandboxes {
        println!("sandbox-{label} {}", summary(samples));
    }
    Ok(())
}

/// `n=… p50_us=… p90_us=… p99_us=… max_us=… mean_us=…` of latency samples (not empty).
fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    format!(
        "n={} p50_us={:.1} p90_us={:.1} p99_us={:.1} max_us={:.0} mean_us={:.1}",
        samples.len(),
        us(pct(0.50)),
        us(pct(0.90)),
        us(pct(0.99)),
        us(samples[samples.len() - 1]),
        us(samples.iter().sum::<Duration>()) / samples.len() as f64,
    )
}

/// A fresh request for `alias`'s daemon.
fn new_request(
    host: &sesame_client::HostEntry,
    alias: &str,
    cluster: Option<&str>,
    command: &str,
    args: &[String],
) -> Request {
    Request::new(
        &mut rand_core::OsRng,
        now_ms(),
        host.daemon_name(alias),
        cluster,
        command,
        args.to_vec(),
    )
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
