//! `sesamed audit verify|tail`: checking the hash chain (and clients' receipts) of the audit and
//! decision logs, and showing the audit log for people.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::chain::{self, Head};
use super::receipts::Receipts;
use crate::cli::AuditCommand;
use crate::config::Config;

/// Runs `sesamed audit …` and returns the exit status.
pub fn run(cmd: AuditCommand) -> ExitCode {
    match cmd {
        AuditCommand::Verify {
            files,
            expect,
            receipts,
            host,
            receipt_keys,
            config,
        } => audit_verify(
            files,
            expect,
            &ReceiptsArgs {
                files: receipts,
                host,
                keys: receipt_keys,
            },
            &config.config,
        ),
        AuditCommand::Tail {
            client,
            lines,
            follow,
            json,
            file,
            config,
        } => {
            let run = || -> Result<()> {
                let path = match file {
                    Some(f) => f,
                    None => Config::load(&config.config)?.audit_log,
                };
                let options = crate::audit::tail::TailOptions { client, lines, json };
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                let unreadable = crate::audit::tail::tail(&path, &options, follow, &mut out, || true)
                    .with_context(|| path.display().to_string())?;
                if unreadable > 0 {
                    eprintln!(
                        "sesamed: {unreadable} lines of {} are not records (a torn last line?); `sesamed audit verify` checks the log",
                        path.display()
                    );
                }
                Ok(())
            };
            match run() {
                Ok(()) => ExitCode::SUCCESS,
                // The reader went away (`| head`): not an error.
                Err(e)
                    if e.downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
                {
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sesamed: {}", sesame_proto::error_chain(e.as_ref()));
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// What `audit verify` is told about receipts: the files, and whose they are.
struct ReceiptsArgs {
    /// Clients' receipts files.
    files: Vec<PathBuf>,
    /// `--host`: the host's name, in place of the configuration's.
    host: Option<String>,
    /// `--receipt-key`: the host's receipt keys, in place of the configured host key's.
    keys: Vec<sesame_proto::ReceiptKey>,
}

fn audit_verify(
    files: Vec<PathBuf>,
    expect: Option<String>,
    receipt_args: &ReceiptsArgs,
    config_path: &Path,
) -> ExitCode {
    let run = || -> Result<bool> {
        let expect = expect
            .map(|e| Head::parse(&e).with_context(|| format!("--expect {e:?}: not SEQ:SHA256")))
            .transpose()?;
        let checking = !receipt_args.files.is_empty();
        // The configuration is needed for the logs' paths, and for the host's name unless
        // `--host` gives it (an auditor with a copy of the log has no configuration).
        let needs_config = files.is_empty() || (checking && receipt_args.host.is_none());
        let config = if needs_config {
            Some(Config::load(config_path)?)
        } else {
            None
        };
        // Receipts are for this host's records only: its name is what every request names.
        let receipts = if checking {
            let host = receipt_args
                .host
                .clone()
                .or_else(|| config.as_ref().map(|c| c.host_name.clone()))
                .context("whose receipts: give --host, or a configuration")?;
            // Given, or derived from the configured host key; else only those the log names.
            let keys =
                match (&receipt_args.keys[..], &config) {
                    ([], Some(config)) => vec![crate::identity::receipt_key(&config.state_dir).context(
                        "the host's receipt key (derived from its host key; or give --receipt-key)",
                    )?],
                    (keys, _) => keys.to_vec(),
                };
            let mut receipts = Receipts::for_host(&host, keys);
            for path in &receipt_args.files {
                receipts
                    .read(path)
                    .with_context(|| format!("receipts {}", path.display()))?;
            }
            Some(receipts)
        } else {
            None
        };
        // A saved head and receipts name records of the audit log (or of the files given),
        // never of the decision log.
        let sets: Vec<(Vec<PathBuf>, bool)> = match (files.is_empty(), config) {
            (true, Some(config)) => vec![(vec![config.audit_log], true), (vec![config.decision_log], false)],
            _ => vec![(files, true)],
        };
        let mut intact = true;
        for (set, audit) in sets {
            let name = set
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" + ");
            let (held, keys) = receipts
                .as_ref()
                .filter(|_| audit)
                .map_or((&[][..], &[][..]), |r| (&r.held[..], r.host_keys()));
            let report =
                chain::verify(&set, expect.filter(|_| audit), held, keys).with_context(|| name.clone())?;
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
            if let Some(receipts) = receipts.as_ref().filter(|_| audit) {
                intact &= print_receipts(&name, receipts, &report);
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

/// What `audit verify --receipts` found about the receipts; whether all is well.
fn print_receipts(name: &str, receipts: &Receipts, report: &chain::Report) -> bool {
    let skipped = match receipts.other_hosts {
        0 => String::new(),
        n => format!("; {n} for other hosts skipped"),
    };
    let checked = receipts.held.len();
    let host = receipts.host_name();
    let unsigned = report
        .receipts
        .iter()
        .filter(|p| !p.fault.signed_by_host())
        .count();
    let missing = report.receipts.len() - unsigned;
    if receipts.host_keys().is_empty() && checked > 0 {
        println!(
            "receipts: no receipt key given (--receipt-key): only keys the log's records name are host {host}'s"
        );
    }
    if report.receipts.is_empty() && receipts.malformed.is_empty() {
        if checked == 0 {
            println!("receipts: none is for host {host}{skipped}");
        } else {
            println!(
                "receipts: all {checked} for host {host} are signed by it and in {name}, unchanged{skipped}"
            );
        }
        return true;
    }
    let mut found = Vec::new();
    if missing > 0 {
        found.push(format!(
            "{missing} of {checked} for host {host}, signed by it, NOT in {name} as their clients were told"
        ));
    }
    if unsigned > 0 {
        found.push(format!(
            "{unsigned} of {checked} for host {host} NOT signed by it"
        ));
    }
    if !receipts.malformed.is_empty() {
        found.push(format!("{} lines are not receipts", receipts.malformed.len()));
    }
    println!("receipts: {}{skipped}:", found.join("; "));
    for p in receipts.malformed.iter().take(50) {
        println!("  {p}");
    }
    for p in report.receipts.iter().take(50) {
        println!("  {p}");
    }
    false
}
