//! `sesame`: the client. Make a key, pin hosts, run commands on them.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sesame_client::{ClientError, ClientHome, HostEntry, send_request};
use sesame_proto::{ErrorCode, Request, Sealer, Status};

/// Exit status when the host answered with an error code.
const EXIT_REMOTE_ERROR: u8 = 1;
/// Exit status for usage and local configuration errors.
const EXIT_LOCAL_ERROR: u8 = 2;
/// Exit status when no answer came (unreachable, refused key, pin mismatch, timeout).
const EXIT_NO_ANSWER: u8 = 3;

/// sesame client: run narrow, policy-checked commands on hosts without a shell.
#[derive(Debug, Parser)]
#[command(name = "sesame", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create this client's key pair (refuses to overwrite one).
    Keygen,
    /// Show this client's key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Pin, list and forget hosts.
    #[command(subcommand)]
    Host(HostCommand),
    /// Run a command on a host: `sesame run web1 access::allow 22`.
    Run {
        /// The host, as pinned with `sesame host add`.
        host: String,
        /// `COMMAND` or `CLUSTER::COMMAND`.
        command: String,
        /// Arguments for the command.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Print the public key (give it to the host's operator for `sesamed client add`).
    Show,
}

#[derive(Debug, Subcommand)]
enum HostCommand {
    /// Pin a host by its key and certificate fingerprint (from `sesamed show`).
    Add {
        /// The name you will use for it.
        name: String,
        /// Its QUIC address, HOST:PORT.
        #[arg(long)]
        addr: String,
        /// Its public key, 64 hex characters.
        #[arg(long)]
        key: String,
        /// SHA-256 of its TLS certificate, 64 hex characters.
        #[arg(long = "cert-sha256")]
        cert_sha256: String,
        /// The daemon's configured host name, if it differs from NAME.
        #[arg(long = "host-name")]
        host_name: Option<String>,
    },
    /// List pinned hosts.
    List,
    /// Forget a host.
    Remove {
        /// The host's name.
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sesame: {e:#}");
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
        Command::Host(HostCommand::Add {
            name,
            addr,
            key,
            cert_sha256,
            host_name,
        }) => {
            let key = key.parse().map_err(|e| anyhow::anyhow!("--key: {e}"))?;
            home.add_host(
                &name,
                HostEntry {
                    addr,
                    key,
                    cert_sha256,
                    name: host_name,
                },
            )?;
            println!("pinned {name}");
        }
        Command::Host(HostCommand::List) => {
            for (name, h) in home.hosts()? {
                println!("{name}\t{}\t{}\t{}", h.addr, h.key, h.cert_sha256);
            }
        }
        Command::Host(HostCommand::Remove { name }) => {
            home.remove_host(&name)?;
            println!("forgot {name}");
        }
        Command::Run {
            host,
            command,
            args,
            timeout,
        } => {
            return run_command(&home, &host, &command, args, Duration::from_secs(timeout));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_command(
    home: &ClientHome,
    alias: &str,
    command: &str,
    args: Vec<String>,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let entry = home.host(alias)?;
    let sealer = Sealer::new(home.key()?);
    let (cluster, command) = match command.split_once("::") {
        Some((cluster, command)) => (Some(cluster), command),
        None => (None, command),
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let request = Request::new(
        &mut rand_core::OsRng,
        now_ms,
        entry.daemon_name(alias),
        cluster,
        command,
        args,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match rt.block_on(send_request(&entry, &sealer, &request, timeout)) {
        Ok(response) if response.status == Status::Ok => {
            print!("{}", response.output);
            if !response.output.is_empty() && !response.output.ends_with('\n') {
                println!();
            }
            Ok(ExitCode::SUCCESS)
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
                    request_label(&request)
                );
            }
            Ok(ExitCode::from(EXIT_REMOTE_ERROR))
        }
        Err(e @ (ClientError::BadResponse(_) | ClientError::WrongId { .. })) => {
            eprintln!("sesame: {alias}: {e}");
            Ok(ExitCode::from(EXIT_NO_ANSWER))
        }
        Err(e) => {
            eprintln!("sesame: {alias}: {e}");
            Ok(ExitCode::from(EXIT_NO_ANSWER))
        }
    }
}

fn request_label(r: &Request) -> String {
    match &r.cluster {
        Some(c) => format!("{c}::{}", r.command),
        None => r.command.clone(),
    }
}
