//! `sesame`: the client. Make a key, pin hosts, run commands on them.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sesame_client::asker::Asker;
use sesame_client::cli::{
    CancelArgs, Cli, Command, DecideArgs, KnownHostsArgs, PendingArgs, Reach, ResultArgs, RunArgs,
    SshProxyArgs,
};
use sesame_client::diagnostic::{self, Diagnostics};
use sesame_client::fleet::{self, Outcome, Target};
use sesame_client::known_hosts::{self, KnownHostsName};
use sesame_client::labels::Selector;
use sesame_client::local;
use sesame_client::rollout::Rollout;
use sesame_client::ssh_proxy::{self, Granted};
use sesame_client::table::{Progress, print_table};
use sesame_client::{ClientHome, HostEntry, Transport};
use sesame_client::{approvals, detached};
use sesame_proto::Status;

/// Exit status when the host answered with an error code.
const EXIT_REMOTE_ERROR: u8 = 1;
/// Exit status for usage and local configuration errors.
const EXIT_LOCAL_ERROR: u8 = 2;
/// Exit status when no answer came (unreachable, refused key, pin mismatch, timeout).
const EXIT_NO_ANSWER: u8 = 3;
/// Exit status when a run on many hosts stopped before starting them all (`--max-errors`, the
/// canary batch failed, Ctrl-C).
const EXIT_STOPPED: u8 = 4;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let diagnostics = Diagnostics::from_env();
    match run(cli, diagnostics) {
        Ok(code) => code,
        Err(e) => {
            diagnostics.error(
                &sesame_proto::error_chain(e.as_ref()),
                diagnostic::error_hint(e.as_ref()),
            );
            ExitCode::from(EXIT_LOCAL_ERROR)
        }
    }
}

fn run(cli: Cli, diagnostics: Diagnostics) -> anyhow::Result<ExitCode> {
    let home = ClientHome::from_env()?;
    match cli.command {
        Command::Keygen
        | Command::Key(_)
        | Command::Host(_)
        | Command::Group(_)
        | Command::Receipts { .. } => local::run(&home, cli.command, diagnostics)?,
        Command::Run(args) => return run_command(&home, args, diagnostics),
        Command::SshProxy(args) => return ssh_proxy(&home, args, diagnostics),
        Command::KnownHosts(args) => return known_hosts(&home, args, diagnostics),
        Command::Pending(args) => return pending(&home, &args, diagnostics),
        Command::Approve(args) => return decide(&home, "approve", args, diagnostics),
        Command::Reject(args) => return decide(&home, "reject", args, diagnostics),
        Command::Result(args) => return result(&home, &args, diagnostics),
        Command::Cancel(args) => return cancel(&home, args, diagnostics),
    }
    Ok(ExitCode::SUCCESS)
}

fn run_command(home: &ClientHome, args: RunArgs, diagnostics: Diagnostics) -> anyhow::Result<ExitCode> {
    let named = !args.hosts.is_empty() || args.group.is_some();
    let fan_out = named || args.selector.is_some();
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
    if let Some(selector) = &args.selector {
        // --where alone chooses among every pinned host; with --hosts or --group, only among
        // those (an empty group chooses nothing, never the whole list).
        aliases = chosen(home, named.then_some(aliases), selector)?;
    } else if aliases.is_empty() {
        anyhow::bail!("no hosts to run on (the group is empty)");
    }
    let Some(spec) = words.next() else {
        anyhow::bail!("no command given: sesame run HOST COMMAND [ARGS...]");
    };
    let printer = sesame_client::stream::Printer::new(fan_out, args.json);
    let on_progress = {
        let printer = printer.clone();
        sesame_client::stream::OnProgress::new(move |alias, p| printer.print(alias, p))
    };
    let rt = runtime()?;
    // Ctrl-C asks each host still running the request to cancel it, and the wait goes on for
    // their answers (3008); a second Ctrl-C leaves at once. (A detached run is not waited for:
    // Ctrl-C keeps its usual meaning.)
    let ctrl_c = if args.detach {
        None
    } else {
        Some(rt.block_on(async {
            sesame_client::cancel::on_ctrl_c(move || {
                diagnostics.note("stopping: hosts still running the command are asked to cancel it (Ctrl-C again leaves without waiting)");
            })
        })?)
    };
    let canceller = ctrl_c.clone().map(|signal| {
        sesame_client::cancel::Canceller::new(signal, move |alias, answer| match answer {
            Ok(r) if r.status == Status::Ok => {}
            Ok(r) => diagnostics.note(&format!(
                "{alias}: the cancel was refused: {}: {}",
                r.code, r.message
            )),
            Err(e) => diagnostics.note(&format!("{alias}: the cancel got no answer: {e}")),
        })
    });
    let command = fleet::Command {
        reason: args.reason,
        progress: (!args.no_stream && !args.detach).then_some(on_progress),
        cancel: canceller,
        detach: args.detach,
        ..fleet::Command::parse(&spec, words.collect())
    };
    // hosts.toml is read once: per host, 10,000 hosts took minutes of parsing (bench/fleet).
    let mut pinned = home.hosts()?;
    let mut targets = Vec::new();
    for alias in aliases {
        let entry = pinned
            .remove(&alias)
            .ok_or_else(|| sesame_client::HomeError::UnknownHost(alias.clone()))?;
        targets.push(target(alias, entry, args.via)?);
    }
    let asker = Asker::new(home, diagnostics)?;
    command
        .check(&targets, &asker.sealer.public_key())
        .map_err(anyhow::Error::msg)?;
    let timeout = Duration::from_secs(args.timeout);
    if !fan_out {
        let target = targets.first().cloned();
        let Some(mut o) = asker.ask(&rt, targets, &command, timeout, 1, |_| {}).pop() else {
            return Ok(ExitCode::from(EXIT_NO_ANSWER));
        };
        if let (Some(note), Some(target)) = (approvals::pending(&o).cloned(), target) {
            if let Ok(r) = &o.result {
                diagnostics.note(&format!("{}: {}", o.alias, r.message));
            }
            if args.no_wait {
                if args.json {
                    println!("{}", o.to_json());
                } else {
                    println!("{}", note.id);
                }
                return Ok(ExitCode::SUCCESS);
            }
            o = wait_for(&asker, &rt, &target, &note, timeout, diagnostics, ctrl_c.as_ref());
        }
        if let Ok(r) = &o.result
            && r.detached
        {
            if args.json {
                println!("{}", o.to_json());
            } else {
                println!("{}", r.id);
            }
            diagnostics.note(&format!(
                "{}: started; `sesame result {} {}` prints its output (--follow until it ends)",
                o.alias, o.alias, r.id
            ));
            return Ok(ExitCode::SUCCESS);
        }
        let shown = o
            .result
            .as_ref()
            .is_ok_and(|r| printer.already_printed(&o.alias, &r.output));
        if args.json {
            println!("{}", o.to_json());
        } else if o.succeeded() && !shown {
            print_output(&o);
        }
        return Ok(report_failure(&o, diagnostics));
    }
    let rollout = Rollout {
        max_concurrency: args.max_concurrency,
        max_errors: args.max_errors,
        batch: args.batch,
    };
    let mut progress = Progress::new(targets.len());
    let report = asker.roll_out(&rt, targets, &command, timeout, &rollout, |o| {
        progress.done(o.succeeded());
    });
    progress.finish();
    print!("{}", printer.finish());
    if args.json {
        for o in &report.outcomes {
            println!("{}", o.to_json());
        }
        for (alias, via) in &report.not_started {
            println!("{}", fleet::not_started_json(alias, *via));
        }
        println!("{}", report.summary_json());
    } else {
        print_table(&report);
    }
    diagnostics.note(&report.summary());
    let tally = report.tally();
    Ok(if tally.not_started > 0 {
        ExitCode::from(EXIT_STOPPED)
    } else if tally.no_answer > 0 {
        ExitCode::from(EXIT_NO_ANSWER)
    } else if tally.failed > 0 {
        ExitCode::from(EXIT_REMOTE_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

/// Of `named` (every pinned host, by name, when `None`), those whose labels `selector` matches.
fn chosen(home: &ClientHome, named: Option<Vec<String>>, selector: &Selector) -> anyhow::Result<Vec<String>> {
    let hosts = home.hosts()?;
    let among = named.is_none();
    let candidates = named.unwrap_or_else(|| hosts.keys().cloned().collect());
    let mut chosen = Vec::new();
    for alias in candidates {
        let entry = hosts
            .get(&alias)
            .ok_or_else(|| sesame_client::HomeError::UnknownHost(alias.clone()))?;
        if selector.matches(&entry.labels) {
            chosen.push(alias);
        }
    }
    if chosen.is_empty() {
        let of = if among { "pinned host" } else { "host given" };
        anyhow::bail!("no {of} has labels matching --where {selector} (`sesame host list` shows them)");
    }
    Ok(chosen)
}

/// Waits for parked request `note` on `target` to be approved and run, saying so on standard
/// error; the answer that ends the wait (the command's, a refusal, or none).
fn wait_for(
    asker: &Asker<'_>,
    rt: &tokio::runtime::Runtime,
    target: &Target,
    note: &sesame_proto::PendingNote,
    timeout: Duration,
    diagnostics: Diagnostics,
    ctrl_c: Option<&tokio::sync::watch::Receiver<bool>>,
) -> Outcome {
    let alias = &target.alias;
    diagnostics.note(&format!(
        "{alias}: waiting for approval ({} of {}; Ctrl-C stops waiting, the request stays parked: \
         sesame result {alias} {} fetches its answer later)",
        note.approvals, note.required, note.id
    ));
    let mut seen = note.approvals;
    approvals::wait(
        note.id,
        note.expires_at_ms,
        |question| ask_one(asker, rt, target, question, timeout),
        |pause| match ctrl_c {
            // The Ctrl-C handler runs on the runtime: the pause is spent there, so that it
            // hears one and the wait ends at once.
            Some(ctrl_c) => rt.block_on(async {
                let mut signal = ctrl_c.clone();
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    Ok(_) = signal.wait_for(|set| *set) => {
                        diagnostics.note(&format!(
                            "{alias}: stopped waiting; the request stays parked (sesame result {alias} {})",
                            note.id
                        ));
                        std::process::exit(130);
                    }
                }
            }),
            None => std::thread::sleep(pause),
        },
        |now| {
            if now.approvals != seen {
                seen = now.approvals;
                diagnostics.note(&format!(
                    "{alias}: {} of {} approvals",
                    now.approvals, now.required
                ));
            }
        },
    )
}

/// Asks one host one question (see [`Asker::ask`]).
fn ask_one(
    asker: &Asker<'_>,
    rt: &tokio::runtime::Runtime,
    target: &Target,
    command: &fleet::Command,
    timeout: Duration,
) -> Outcome {
    let mut outcomes = asker.ask(rt, vec![target.clone()], command, timeout, 1, |_| {});
    outcomes.pop().unwrap_or_else(|| Outcome {
        alias: target.alias.clone(),
        via: target.via,
        result: Err(sesame_client::ClientError::Timeout(timeout)),
        elapsed: timeout,
    })
}

/// The host `host` names, reached as `reach` says, with the asker and runtime to ask it.
fn one_host<'a>(
    home: &'a ClientHome,
    host: &str,
    reach: &Reach,
    diagnostics: Diagnostics,
) -> anyhow::Result<(Target, Asker<'a>, tokio::runtime::Runtime)> {
    let target = target(host.to_owned(), home.host(host)?, reach.via)?;
    Ok((target, Asker::new(home, diagnostics)?, runtime()?))
}

/// `sesame pending HOST`: what waits there for this client's approval.
fn pending(home: &ClientHome, args: &PendingArgs, diagnostics: Diagnostics) -> anyhow::Result<ExitCode> {
    let (target, asker, rt) = one_host(home, &args.host, &args.reach, diagnostics)?;
    let timeout = Duration::from_secs(args.reach.timeout);
    let o = ask_one(
        &asker,
        &rt,
        &target,
        &approvals::command("pending", None, None),
        timeout,
    );
    let response = match &o.result {
        Ok(r) if o.succeeded() => r,
        _ => return Ok(report_failure(&o, diagnostics)),
    };
    if args.json {
        println!("{}", response.output.trim_end());
        return Ok(ExitCode::SUCCESS);
    }
    let list = approvals::parse_pending(&response.output).map_err(anyhow::Error::msg)?;
    if list.is_empty() {
        diagnostics.note(&format!("{}: nothing waits for your approval", args.host));
    } else {
        print!("{}", approvals::pending_table(&list, fleet::now_ms()));
    }
    Ok(ExitCode::SUCCESS)
}

/// `sesame approve|reject HOST ID`.
fn decide(
    home: &ClientHome,
    verb: &str,
    args: DecideArgs,
    diagnostics: Diagnostics,
) -> anyhow::Result<ExitCode> {
    let (target, asker, rt) = one_host(home, &args.host, &args.reach, diagnostics)?;
    let command = approvals::command(verb, Some(&args.id), args.reason);
    command
        .check(std::slice::from_ref(&target), &asker.sealer.public_key())
        .map_err(anyhow::Error::msg)?;
    let o = ask_one(
        &asker,
        &rt,
        &target,
        &command,
        Duration::from_secs(args.reach.timeout),
    );
    if o.succeeded() {
        print_output(&o);
    }
    Ok(report_failure(&o, diagnostics))
}

/// `sesame result HOST ID [--follow]`: a detached run's output and answer, else a parked
/// request's answer.
fn result(home: &ClientHome, args: &ResultArgs, diagnostics: Diagnostics) -> anyhow::Result<ExitCode> {
    let (target, asker, rt) = one_host(home, &args.host, &args.reach, diagnostics)?;
    let timeout = Duration::from_secs(args.reach.timeout);
    let mut printer = detached::Printer::default();
    let mut from = 0;
    let mut pause = Duration::from_millis(250);
    loop {
        let o = ask_one(&asker, &rt, &target, &detached::command(&args.id, from), timeout);
        let fetched = match detached::page(&o) {
            detached::Page::Fetched(fetched) => fetched,
            detached::Page::Unknown if from == 0 => break,
            detached::Page::Unknown | detached::Page::Failed => return Ok(report_failure(&o, diagnostics)),
        };
        printer.print(&fetched.chunks);
        from = fetched.next;
        if let Some(answer) = fetched.answer {
            if let Some(output) = printer.finish() {
                print!("{output}");
                if !output.ends_with('\n') {
                    println!();
                }
            }
            if answer.code == sesame_proto::ErrorCode::Ok {
                return Ok(ExitCode::SUCCESS);
            }
            let ended = Outcome {
                result: Ok(sesame_proto::Response::error(
                    fetched.id,
                    answer.code,
                    answer.message,
                )),
                ..o
            };
            return Ok(report_failure(&ended, diagnostics));
        }
        // A page that brought output may not be the last one there is: ask again at once.
        if fetched.chunks.is_empty() && !args.wait {
            diagnostics.note(&format!(
                "{}: {} still runs (started {} ago); --follow waits for the end",
                target.alias,
                fetched.call,
                detached::age(fetched.started_ms)
            ));
            return Ok(ExitCode::SUCCESS);
        }
        if fetched.chunks.is_empty() {
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(2));
        } else {
            pause = Duration::from_millis(250);
        }
    }
    // Not a detached run of ours: perhaps a request parked for approval.
    let mut o = ask_one(
        &asker,
        &rt,
        &target,
        &approvals::command("result", Some(&args.id), None),
        timeout,
    );
    if let Some(note) = approvals::pending(&o).cloned()
        && args.wait
    {
        o = wait_for(&asker, &rt, &target, &note, timeout, diagnostics, None);
    }
    if o.succeeded() {
        print_output(&o);
    }
    Ok(report_failure(&o, diagnostics))
}

/// `sesame cancel HOST ID`.
fn cancel(home: &ClientHome, args: CancelArgs, diagnostics: Diagnostics) -> anyhow::Result<ExitCode> {
    let (target, asker, rt) = one_host(home, &args.host, &args.reach, diagnostics)?;
    let command = fleet::Command {
        reason: args.reason,
        ..sesame_client::cancel::command(&args.id)
    };
    let o = ask_one(
        &asker,
        &rt,
        &target,
        &command,
        Duration::from_secs(args.reach.timeout),
    );
    if o.succeeded() {
        print_output(&o);
    }
    Ok(report_failure(&o, diagnostics))
}

/// `sesame ssh-proxy`: asks the host for access and, only once it has granted it, pipes a TCP
/// connection to it through standard input and output. Nothing else goes to standard output.
fn ssh_proxy(home: &ClientHome, args: SshProxyArgs, diagnostics: Diagnostics) -> anyhow::Result<ExitCode> {
    let hosts = home.hosts()?;
    let (alias, entry) = ssh_proxy::resolve(&hosts, &args.host, ssh_proxy::system_lookup)?;
    let target = target(alias.to_owned(), entry.clone(), args.via)?;
    let asker = Asker::new(home, diagnostics)?;
    let mut words = vec![args.port.to_string(), "--ttl".to_owned(), args.ttl.to_string()];
    if let Some(from) = args.from {
        words.extend(["--from".to_owned(), from]);
    }
    let command = fleet::Command {
        reason: args.reason,
        ..fleet::Command::parse(&args.command, words)
    };
    command
        .check(std::slice::from_ref(&target), &asker.sealer.public_key())
        .map_err(anyhow::Error::msg)?;
    let rt = runtime()?;
    let timeout = Duration::from_secs(args.timeout);
    let outcomes = asker.ask(&rt, vec![target], &command, timeout, 1, |_| {});
    let Some(outcome) = outcomes.first() else {
        return Ok(ExitCode::from(EXIT_NO_ANSWER));
    };
    let Some(granted) = Granted::from_outcome(outcome) else {
        return Ok(report_failure(outcome, diagnostics));
    };
    if args.verbose {
        diagnostics.note(&format!("{alias}: {}", granted.output().trim_end()));
    }
    let host = ssh_proxy::connect_host(entry, &args.host);
    let within = Duration::from_secs(args.connect_timeout);
    let piped = rt.block_on(async {
        let stream = ssh_proxy::connect(&granted, &host, args.port, within)
            .await
            .map_err(|e| (false, e))?;
        if args.verbose {
            let peer = stream
                .peer_addr()
                .map_or_else(|_| host.clone(), |a| a.to_string());
            diagnostics.note(&format!("{alias}: connected to {peer}"));
        }
        ssh_proxy::pipe(stream, tokio::io::stdin(), tokio::io::stdout())
            .await
            .map_err(|e| (true, e))
    });
    // Reading standard input blocks a thread that cannot be cancelled: do not wait for it.
    rt.shutdown_background();
    let port = args.port;
    match piped {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err((false, e)) => {
            diagnostics.error(
                &format!(
                    "{alias}: access to port {port} was granted, but connecting to {host} port {port} \
                     failed within {}s: {e}",
                    args.connect_timeout
                ),
                Some(CONNECT_HINT),
            );
            Ok(ExitCode::from(EXIT_NO_ANSWER))
        }
        Err((true, e)) => {
            diagnostics.error(
                &format!("{alias}: connection to {host} port {port} broke: {e}"),
                None,
            );
            Ok(ExitCode::from(EXIT_NO_ANSWER))
        }
    }
}

/// `sesame known-hosts`: asks the host for its SSH host keys and prints them as `known_hosts`
/// lines under the name ssh looks for. Nothing else goes to standard output.
fn known_hosts(
    home: &ClientHome,
    args: KnownHostsArgs,
    diagnostics: Diagnostics,
) -> anyhow::Result<ExitCode> {
    let name: KnownHostsName = args
        .name
        .as_deref()
        .unwrap_or(&args.host)
        .parse()
        .map_err(anyhow::Error::msg)?;
    let hosts = home.hosts()?;
    let (alias, entry) = ssh_proxy::resolve(&hosts, &args.host, ssh_proxy::system_lookup)?;
    let target = target(alias.to_owned(), entry.clone(), args.reach.via)?;
    let asker = Asker::new(home, diagnostics)?;
    let command = fleet::Command {
        reason: args.reason,
        ..fleet::Command::parse(&args.command, Vec::new())
    };
    command
        .check(std::slice::from_ref(&target), &asker.sealer.public_key())
        .map_err(anyhow::Error::msg)?;
    let rt = runtime()?;
    let timeout = Duration::from_secs(args.reach.timeout);
    let outcomes = asker.ask(&rt, vec![target], &command, timeout, 1, |_| {});
    let Some(outcome) = outcomes.first() else {
        return Ok(ExitCode::from(EXIT_NO_ANSWER));
    };
    let output = match &outcome.result {
        Ok(response) if response.status == Status::Ok => &response.output,
        _ => return Ok(report_failure(outcome, diagnostics)),
    };
    let text = match known_hosts::lines(&name, output) {
        Ok(text) => text,
        Err(e) => {
            diagnostics.error(&format!("{alias}: {e}"), Some(KNOWN_HOSTS_HINT));
            return Ok(ExitCode::from(EXIT_REMOTE_ERROR));
        }
    };
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// What to do when a host's answer to `known-hosts` holds no key to print.
const KNOWN_HOSTS_HINT: &str = "the host's `sesamed configtest` says how many SSH host keys it serves from \
     [hostkeys] dir; --command must name a command that prints one `TYPE KEY` line per key";

/// Why a granted port may still refuse the connection.
const CONNECT_HINT: &str = "is anything (sshd) listening on that port there? The opening is for the address the host \
     saw this machine at: a NAT or proxy on the way to that port may use another one (see --from)";

/// How to reach `alias`: the asked-for transport (default: QUIC when it has an address).
fn target(alias: String, entry: HostEntry, via: Option<Transport>) -> anyhow::Result<Target> {
    let via = via.unwrap_or_else(|| entry.default_transport());
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
    Ok(Target { alias, entry, via })
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// Prints a successful command's output, ending in a newline.
fn print_output(o: &Outcome) {
    if let Ok(response) = &o.result {
        print!("{}", response.output);
        if !response.output.is_empty() && !response.output.ends_with('\n') {
            println!();
        }
    }
}

/// Reports a host's error answer, or why none came, on standard error; returns the exit code
/// (success when the command succeeded: nothing to report).
fn report_failure(o: &Outcome, diagnostics: Diagnostics) -> ExitCode {
    let alias = &o.alias;
    match &o.result {
        Ok(response) if response.status == Status::Ok => ExitCode::SUCCESS,
        Ok(response) => {
            diagnostics.error(
                &format!(
                    "{alias}: error {} ({}): {}",
                    response.code.as_u16(),
                    response.code.summary(),
                    response.message
                ),
                diagnostic::answer_hint(response.code, &response.message),
            );
            ExitCode::from(EXIT_REMOTE_ERROR)
        }
        Err(e) => {
            diagnostics.error(&format!("{alias}: {e}"), diagnostic::client_hint(e));
            ExitCode::from(EXIT_NO_ANSWER)
        }
    }
}
