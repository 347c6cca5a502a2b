//! `sesame`: the client. Make a key, pin hosts, run commands on them.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use sesame_client::cli::{Cli, Command, GroupCommand, HostCommand, KeyCommand, RunArgs};
use sesame_client::fleet::{self, Outcome, Target};
use sesame_client::{ClientHome, HostEntry, SqsRoute, Transport};
use sesame_proto::{ErrorCode, Sealer, Status};

/// Exit status when the host answered with an error code.
const EXIT_REMOTE_ERROR: u8 = 1;
/// Exit status for usage and local configuration errors.
const EXIT_LOCAL_ERROR: u8 = 2;
/// Exit status when no answer came (unreachable, refused key, pin mismatch, timeout).
const EXIT_NO_ANSWER: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sesame: {}", sesame_proto::error_chain(e.as_ref()));
            ExitCode::from(EXIT_LOCAL_ERROR)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let home = ClientHome::from_env()?;
    match cli.command {
        Command::Keygen => {
            let key = home.keygen()?;
            println!(
                "wrote {}",
                home.dir().join(sesame_client::home::KEY_FILE).display()
            );
            println!("{}", key.public_key());
        }
        Command::Key(KeyCommand::Show) => println!("{}", home.key()?.public_key()),
        Command::Key(KeyCommand::ReplyQueue) => {
            println!("{}", sesame_sqs::reply_queue(&home.key()?.public_key()));
        }
        Command::Host(HostCommand::Add {
            name,
            key,
            addr,
            cert_sha256,
            sqs_queue,
            sqs_region,
            sqs_endpoint,
            sqs_profile,
            host_name,
        }) => {
            let key = key.parse().map_err(|e| anyhow::anyhow!("--key: {e}"))?;
            if addr.is_none() && sqs_queue.is_none() {
                anyhow::bail!("give --addr and --cert-sha256 (QUIC), --sqs-queue (SQS), or both");
            }
            home.add_host(
                &name,
                HostEntry {
                    addr,
                    key,
                    cert_sha256,
                    name: host_name,
                    sqs: sqs_queue.map(|queue| SqsRoute {
                        queue,
                        region: sqs_region,
                        endpoint_url: sqs_endpoint,
                        profile: sqs_profile,
                    }),
                },
            )?;
            println!("pinned {name}");
        }
        Command::Host(HostCommand::List) => {
            for (name, h) in home.hosts()? {
                let mut routes = Vec::new();
                if let Some((addr, fp)) = h.quic() {
                    routes.push(format!("quic {addr} cert {fp}"));
                }
                if let Some(sqs) = &h.sqs {
                    routes.push(format!("sqs {}", sqs.queue));
                }
                println!("{name}\t{}\t{}", h.key, routes.join("\t"));
            }
        }
        Command::Host(HostCommand::Remove { name }) => {
            home.remove_host(&name)?;
            println!("forgot {name}");
        }
        Command::Run(args) => return run_command(&home, args),
        Command::Group(GroupCommand::Set { name, hosts }) => {
            home.set_group(&name, &hosts)?;
            println!("group {name}: {}", hosts.join(", "));
        }
        Command::Group(GroupCommand::List) => {
            for (name, hosts) in home.groups()? {
                println!("{name}\t{}", hosts.join(","));
            }
        }
        Command::Group(GroupCommand::Remove { name }) => {
            home.remove_group(&name)?;
            println!("forgot group {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_command(home: &ClientHome, args: RunArgs) -> anyhow::Result<ExitCode> {
    let fan_out = !args.hosts.is_empty() || args.group.is_some();
    let mut words = args.words.into_iter();
    let mut aliases = args.hosts;
    if let Some(group) = &args.group {
        aliases.extend(home.group(group)?);
    }
    if !fan_out {
        aliases.push(words.next().unwrap_or_default());
    }
    let mut seen = std::collections::HashSet::new();
    aliases.retain(|a| seen.insert(a.clone()));
    if aliases.is_empty() {
        anyhow::bail!("no hosts to run on (the group is empty)");
    }
    let Some(spec) = words.next() else {
        anyhow::bail!("no command given: sesame run HOST COMMAND [ARGS...]");
    };
    let (cluster, command) = match spec.split_once("::") {
        Some((cluster, command)) => (Some(cluster.to_owned()), command.to_owned()),
        None => (None, spec),
    };
    let command = fleet::Command {
        cluster,
        command,
        args: words.collect(),
    };
    let mut targets = Vec::new();
    for alias in aliases {
        let entry = home.host(&alias)?;
        let via = args.via.unwrap_or_else(|| entry.default_transport());
        let routed = match via {
            Transport::Quic => entry.quic().is_some(),
            Transport::Sqs => entry.sqs.is_some(),
        };
        if !routed {
            anyhow::bail!(
                "host {alias} has no {} route (see `sesame host list`)",
                if via == Transport::Quic { "QUIC" } else { "SQS" }
            );
        }
        targets.push(Target { alias, entry, via });
    }
    let sealer = Arc::new(Sealer::new(home.key()?));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let timeout = Duration::from_secs(args.timeout);
    if !fan_out {
        let outcomes = rt.block_on(fleet::run_all(targets, sealer, &command, timeout, 1, |_| {}));
        return Ok(outcomes
            .first()
            .map_or(ExitCode::from(EXIT_NO_ANSWER), |o| report_one(o, &command)));
    }
    let total = targets.len();
    let mut progress = Progress::new(total);
    let outcomes = rt.block_on(fleet::run_all(
        targets,
        sealer,
        &command,
        timeout,
        args.parallel,
        |o| {
            progress.done(o.succeeded());
        },
    ));
    progress.finish();
    if args.json {
        for o in &outcomes {
            println!("{}", outcome_json(o));
        }
    } else {
        print_table(&outcomes);
    }
    let failed = outcomes.iter().filter(|o| !o.succeeded()).count();
    let unanswered = outcomes.iter().filter(|o| o.result.is_err()).count();
    eprintln!("{} of {total} hosts succeeded", total - failed);
    Ok(if unanswered > 0 {
        ExitCode::from(EXIT_NO_ANSWER)
    } else if failed > 0 {
        ExitCode::from(EXIT_REMOTE_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints one host's answer as `sesame run HOST` always has; returns the exit code.
fn report_one(o: &Outcome, command: &fleet::Command) -> ExitCode {
    let alias = &o.alias;
    match &o.result {
        Ok(response) if response.status == Status::Ok => {
            print!("{}", response.output);
            if !response.output.is_empty() && !response.output.ends_with('\n') {
                println!();
            }
            ExitCode::SUCCESS
        }
        Ok(response) => {
            eprintln!(
                "sesame: {alias}: error {} ({}): {}",
                response.code.as_u16(),
                response.code.summary(),
                response.message
            );
            if response.code == ErrorCode::Denied {
                eprintln!(
                    "hint: ask the host's security team which group grants {}",
                    command_label(command)
                );
            }
            ExitCode::from(EXIT_REMOTE_ERROR)
        }
        Err(e) => {
            eprintln!("sesame: {alias}: {e}");
            ExitCode::from(EXIT_NO_ANSWER)
        }
    }
}

/// One line about a host's outcome: `ok`, `error CODE (summary)` or `no answer`, and a detail.
fn summarise(o: &Outcome) -> (String, String) {
    match &o.result {
        Ok(r) if r.status == Status::Ok => ("ok".into(), first_line(&r.output)),
        Ok(r) => (
            format!("error {} ({})", r.code.as_u16(), r.code.summary()),
            first_line(&r.message),
        ),
        Err(e) => ("no answer".into(), first_line(&e.to_string())),
    }
}

fn first_line(text: &str) -> String {
    const MAX: usize = 72;
    let line = text.lines().next().unwrap_or_default();
    let more = text.lines().nth(1).is_some();
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None if more => format!("{line} …"),
        None => line.to_owned(),
    }
}

fn print_table(outcomes: &[Outcome]) {
    let rows: Vec<_> = outcomes
        .iter()
        .map(|o| {
            let (result, detail) = summarise(o);
            let via = match o.via {
                Transport::Quic => "quic",
                Transport::Sqs => "sqs",
            };
            (
                o.alias.clone(),
                via,
                result,
                format!("{} ms", o.elapsed.as_millis()),
                detail,
            )
        })
        .collect();
    let w_host = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0).max(4);
    let w_result = rows.iter().map(|r| r.2.chars().count()).max().unwrap_or(0).max(6);
    let w_time = rows.iter().map(|r| r.3.len()).max().unwrap_or(0).max(4);
    println!(
        "{:w_host$}  {:4}  {:w_result$}  {:>w_time$}  OUTPUT",
        "HOST", "VIA", "RESULT", "TIME"
    );
    for (host, via, result, time, detail) in rows {
        println!("{host:w_host$}  {via:4}  {result:w_result$}  {time:>w_time$}  {detail}");
    }
}

fn outcome_json(o: &Outcome) -> serde_json::Value {
    let via = match o.via {
        Transport::Quic => "quic",
        Transport::Sqs => "sqs",
    };
    let mut v = serde_json::json!({
        "host": o.alias,
        "via": via,
        "ok": o.succeeded(),
        "elapsed_ms": u64::try_from(o.elapsed.as_millis()).unwrap_or(u64::MAX),
    });
    match &o.result {
        Ok(r) => {
            v["code"] = r.code.as_u16().into();
            v["output"] = r.output.clone().into();
            v["message"] = r.message.clone().into();
        }
        Err(e) => v["error"] = e.to_string().into(),
    }
    v
}

/// A one-line progress bar on standard error, drawn only when it is a terminal.
struct Progress {
    total: usize,
    done: usize,
    failed: usize,
    draw: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        let p = Self {
            total,
            done: 0,
            failed: 0,
            draw: std::io::stderr().is_terminal(),
        };
        p.render();
        p
    }

    fn done(&mut self, ok: bool) {
        self.done += 1;
        if !ok {
            self.failed += 1;
        }
        self.render();
    }

    fn render(&self) {
        if !self.draw {
            return;
        }
        const WIDTH: usize = 30;
        let filled = (self.done * WIDTH).checked_div(self.total).unwrap_or(WIDTH);
        eprint!(
            "\r[{}{}] {}/{} hosts, {} failed",
            "#".repeat(filled),
            " ".repeat(WIDTH - filled),
            self.done,
            self.total,
            self.failed
        );
    }

    fn finish(&self) {
        if self.draw {
            eprint!("\r\x1b[2K");
        }
    }
}

fn command_label(c: &fleet::Command) -> String {
    match &c.cluster {
        Some(cluster) => format!("{cluster}::{}", c.command),
        None => c.command.clone(),
    }
}
