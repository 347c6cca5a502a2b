//! The `sesame-bench` command line; see the library's documentation for what each
//! subcommand measures.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, Subcommand};
use sesame_bench::{chart, fleet, floor, inproc, load, process, sqs};

#[derive(Debug, Parser)]
#[command(name = "sesame-bench", about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Requests at several concurrencies: requests/s and latency (one line per level).
    Load {
        #[command(flatten)]
        target: TargetArgs,
        /// Requests in flight, one level after another.
        #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 64, 256])]
        concurrency: Vec<usize>,
        /// Measured seconds per level.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Unmeasured seconds first, per level.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
    },
    /// New connections: handshake, pin check, one request, close, one after another.
    Connect {
        #[command(flatten)]
        target: TargetArgs,
        /// Measured connections.
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Unmeasured connections first.
        #[arg(long, default_value_t = 10)]
        warmup: usize,
    },
    /// A bare QUIC echo with the daemon's QUIC settings (or, with --exec, a process per
    /// request); serves until killed.
    FloorServer {
        /// The daemon's state directory (its certificate is used, so the pin is the same).
        #[arg(long)]
        state: PathBuf,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Run this program per request, request on its stdin, answer from its stdout.
        #[arg(long)]
        exec: Option<PathBuf>,
    },
    /// Runs a whole command many times and times each run.
    Time {
        /// Measured runs.
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// Unmeasured runs first.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Runs at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// What each run must print on stdout.
        #[arg(long)]
        expect: Option<String>,
        /// The command.
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
    /// Output as it comes: runs a command that logs `tick I UNIX_US` lines (the `ticker` test
    /// module) and times each line from the module's log call to its arrival here.
    Stream {
        /// The command; its standard output must hold the ticker's lines.
        #[arg(last = true, required = true)]
        argv: Vec<String>,
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
    /// Runs a `sesame run --json` on many hosts once: its wall time, CPU time and peak RSS, and
    /// its hosts by outcome and latency by transport (one `fleet …` line).
    FleetRun {
        /// Where the command's standard output goes (its JSON lines).
        #[arg(long)]
        out: PathBuf,
        /// The number of hosts the command must report on.
        #[arg(long)]
        hosts: Option<usize>,
        /// The command.
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
    /// Creates SQS queues (the hosts' request queues) where they do not exist.
    CreateQueues {
        /// The SQS endpoint.
        #[arg(long)]
        endpoint: String,
        /// The region.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// The queues' names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Counts the SQS calls in a moto recording, by queue kind and action (one `sqs-calls …` line).
    SqsCalls {
        /// The recording (moto's MOTO_RECORDER_FILEPATH).
        recording: PathBuf,
    },
    /// Policy decisions in-process: what the daemon spends per request on Rego.
    Policy {
        /// The policy directory.
        #[arg(long, default_value = "policies")]
        dir: PathBuf,
        /// The component whose imports go in the input (the daemon gives the policy those of
        /// the module that would run).
        #[arg(long, default_value = "commands/target/wasm32-wasip2/release/echo.wasm")]
        module: PathBuf,
        /// Measured decisions per case.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
    },
    /// The sandbox in-process: fresh store, instantiate and call, per request.
    Sandbox {
        /// The component to run.
        module: PathBuf,
        /// Measured runs.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
    },
    /// Draws latency and throughput by concurrency from `load` output files.
    Chart {
        /// The SVG to write.
        #[arg(long)]
        out: PathBuf,
        /// Its title.
        #[arg(long, default_value = "sesame echo over QUIC")]
        title: String,
        /// NAME=FILE: a series and the file holding its `load` lines.
        #[arg(required = true)]
        series: Vec<String>,
    },
}

/// Which host to load, and with what.
#[derive(Debug, clap::Args)]
struct TargetArgs {
    /// The pinned host.
    host: String,
    /// Send to this address instead of the host's (a floor server using the host's state).
    #[arg(long)]
    addr: Option<String>,
    /// Send unsealed bytes the size of the sealed request and expect them back (the floor).
    #[arg(long)]
    raw: bool,
    /// Append a counter to the last argument, so that no two requests are alike and the daemon
    /// evaluates every policy decision instead of remembering it.
    #[arg(long, conflicts_with = "raw")]
    distinct: bool,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, default_values_t = ["basic::echo".to_owned(), "hello".to_owned()])]
    command: Vec<String>,
}

impl TargetArgs {
    fn target(&self) -> anyhow::Result<load::Target> {
        let mut target = load::Target::from_home(&self.host, &self.command, self.raw, self.distinct)?;
        if let Some(addr) = &self.addr {
            target.set_addr(addr.clone());
        }
        Ok(target)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = || tokio::runtime::Builder::new_current_thread().enable_all().build();
    match cli.command {
        Command::Load {
            target,
            concurrency,
            seconds,
            warmup,
        } => {
            let finite = |v: f64| v.is_finite() && v >= 0.0;
            if concurrency.contains(&0) || !finite(seconds) || seconds == 0.0 || !finite(warmup) {
                bail!("--concurrency must be at least 1, --seconds positive, --warmup not negative");
            }
            let target = Arc::new(target.target()?);
            rt()?.block_on(async {
                for c in concurrency {
                    load::run_level(
                        &target,
                        c,
                        Duration::from_secs_f64(warmup),
                        Duration::from_secs_f64(seconds),
                    )
                    .await?;
                }
                anyhow::Ok(())
            })
        }
        Command::Connect {
            target,
            count,
            warmup,
        } => {
            if count == 0 {
                bail!("--count must be at least 1");
            }
            let target = target.target()?;
            rt()?.block_on(load::connect(&target, count, warmup))
        }
        Command::FloorServer { state, listen, exec } => floor::serve(&state, listen, exec),
        Command::Time {
            count,
            warmup,
            concurrency,
            expect,
            argv,
        } => process::time(&argv, count, warmup, concurrency, expect.as_deref()),
        Command::Stream { argv } => process::stream(&argv),
        Command::Sqs { host, count, warmup } => rt()?.block_on(sqs::run(&host, count, warmup)),
        Command::SqsRelay { host } => rt()?.block_on(sqs::relay(&host)),
        Command::FleetRun { out, hosts, argv } => fleet::run(&out, hosts, &argv),
        Command::CreateQueues {
            endpoint,
            region,
            names,
        } => {
            let settings = sesame_sqs::Settings {
                region: Some(region),
                endpoint_url: Some(endpoint),
                profile: None,
            };
            rt()?.block_on(fleet::create_queues(&settings, &names))
        }
        Command::SqsCalls { recording } => fleet::sqs_calls(&recording),
        Command::Policy { dir, module, count } => inproc::policy(&dir, &module, count),
        Command::Sandbox { module, count } => inproc::sandbox(&module, count),
        Command::Chart { out, title, series } => {
            let mut all = Vec::new();
            for s in series {
                let Some((name, file)) = s.split_once('=') else {
                    bail!("a series is NAME=FILE, not {s:?}");
                };
                let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
                all.push((name.to_owned(), chart::parse(&text)?));
            }
            chart::write(&out, &title, &all)
        }
    }
}
