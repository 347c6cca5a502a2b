//! The `sesamed` command line, as clap definitions: `main.rs` runs it, and the packaging
//! generates the man pages and shell completions from it (`sesame-dist`).

use std::path::PathBuf;

use crate::config::ConfigArg;

/// sesame host daemon: runs narrow, policy-checked commands for enrolled clients.
///
/// sesamed lets enrolled clients run a narrow set of commands on this host without a VPN, a
/// shell or an SSH account. Each request arrives sealed end to end (crypto_box) over QUIC or
/// AWS SQS, is authenticated by the client's key, checked for freshness and replay, and judged
/// by the Rego policies in the policy directory. The decision is a grant: which host functions
/// the command's WebAssembly module may call (temporary firewall openings, accounts and SSH
/// keys, Salt states), with which arguments and limits. Every request, accepted or not, is
/// recorded in the audit log before anything runs.
///
/// Start with `sesamed init`, enrol clients with `sesamed client add`, check everything with
/// `sesamed configtest`, then `sesamed serve` (or `systemctl enable --now sesamed`).
#[derive(Debug, clap::Parser)]
#[command(name = "sesamed", version, about, propagate_version = true)]
pub struct Cli {
    /// How the daemon's own log (standard error) is written: `text` for people and journald,
    /// `json` (one object per line) for log shippers.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "SESAME_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event, coloured at a terminal.
    Text,
    /// One JSON object per event: `timestamp`, `level`, `fields` (with `message`), `target`.
    Json,
}

/// The `sesamed` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create the host's key pair, the key pair it will rotate to, and its TLS certificate in
    /// DIR (the config's state_dir).
    Init {
        /// The state directory (created 0700).
        dir: PathBuf,
    },
    /// Serve requests (QUIC) until SIGTERM or SIGINT.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Check the configuration, keys, registry, policy and every module; exit 0 "config OK" or 2.
    Configtest {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show what clients pin: the host's public key, the SHA-256 of its next key, and the
    /// certificate fingerprint, with the `sesame host add` line that pins them.
    ///
    /// The key and the next key's digest are printed as one token, `KEY:NEXT_SHA256`, which
    /// `sesame host add --key` takes. A client that pinned the digest follows the host's next
    /// rotation by itself; the old key alone cannot move it to any other key.
    Show {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show how the running daemon is doing.
    ///
    /// Uptime, requests answered by code, live grants, policy revision and decision cache, host
    /// keys. Asks the daemon over its control socket (`control.sock` in the state directory).
    /// Exit 0 running, 3 not running, 4 no sensible answer.
    Status {
        /// Print the daemon's answer as one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Replace the host's key pair with the one prepared for it; the old one stays accepted for
    /// a grace period.
    ///
    /// The key pair in host.key.next, whose public key's SHA-256 clients pinned (`sesamed
    /// show`), becomes the current one, and a new next key pair is made. Clients that still seal
    /// to the old key are answered under it and told the new key; `sesame` re-pins by itself
    /// only if the new key's SHA-256 is the one it pinned, so whoever holds only the old key
    /// cannot move clients to a key of theirs. If host.key.next is missing (a state directory
    /// from an older sesamed, never started since), the new key is made now and no client
    /// follows by itself. A running daemon picks the new keys up within a second. Removing
    /// host.key.previous from the state directory stops accepting the old key at once. The TLS
    /// certificate is kept.
    RotateKey {
        /// How long the old key stays accepted (`s`, `m`, `h` or `d`; `0s` refuses it at once).
        #[arg(long, default_value = "7d", value_parser = crate::parse_duration_ms, value_name = "DURATION")]
        grace: u64,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Enrol, remove and list clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Test, evaluate and check Rego policies (for security teams).
    #[command(subcommand)]
    Policy(crate::policy::cli::PolicyCommand),
    /// Inspect command modules, and run one locally against dry-run back ends (for authors).
    #[command(subcommand)]
    Module(crate::sandbox::cli::ModuleCommand),
    /// List and revoke live firewall openings (works while the daemon runs).
    #[command(subcommand)]
    Grants(GrantsCommand),
    /// Check the audit log's hash chain, or read it.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `sesamed audit …`.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check that the audit and decision logs are unbroken hash chains and end where their head
    /// files say: any line changed, removed, inserted or moved is reported; with clients'
    /// receipts, that the host signed each and that the records they name are still there
    /// unchanged, even where the chain after them was recomputed. Exit 0 intact, 1 not, 2 when
    /// a log or a receipts file cannot be read.
    Verify {
        /// The logs to check, a log's rotated files oldest first (default: the configuration's
        /// audit and decision logs, each on its own).
        files: Vec<PathBuf>,
        /// A head printed by an earlier verify (`SEQ:SHA256`), kept somewhere the host cannot
        /// change: the record with that seq must still have that hash. It is checked against
        /// the audit log (or the files given), not the decision log.
        #[arg(long, value_name = "SEQ:SHA256")]
        expect: Option<String>,
        /// Clients' receipts files (`receipts` in a client's directory; give the logs before
        /// this option): every receipt for this host (the configuration's host name, or
        /// `--host`; the others are counted and skipped) must be signed by the host's receipt
        /// key (the configured host key's, or `--receipt-key`, or one a `started`,
        /// `host-keys-reloaded` or `host-key-rotated` record in the log names) and name a
        /// record still in the audit log (or the files given), unchanged, of its request. Each
        /// receipt that is not or does not is named; a line that is not a receipt is a problem
        /// too.
        #[arg(long, value_name = "FILE", num_args = 1..)]
        receipts: Vec<PathBuf>,
        /// The host whose receipts to check, by its name (its `[host] name`, what its receipts
        /// record as `host_name`), in place of the configuration's: with the logs and
        /// `--receipt-key`, a copy of a host's log is verified without its configuration.
        #[arg(long, value_name = "NAME")]
        host: Option<String>,
        /// The host's receipt key (`sesamed show` prints it), in place of the one derived from
        /// the configured host key; may be given more than once. Keys the log's records name
        /// count as the host's too.
        #[arg(long = "receipt-key", value_name = "KEY")]
        receipt_keys: Vec<sesame_proto::ReceiptKey>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show the audit log for people, a sentence per record.
    ///
    /// The last records, optionally only one client's, optionally following the log as it is
    /// written (and across rotation).
    Tail {
        /// Only records about this client: its requests, enrolment and firewall openings.
        #[arg(long)]
        client: Option<String>,
        /// How many of the last records to show first.
        #[arg(short = 'n', long = "lines", default_value_t = 20)]
        lines: usize,
        /// Keep printing records as they are written, until interrupted.
        #[arg(short, long)]
        follow: bool,
        /// Print records as they are in the log, one JSON object per line.
        #[arg(long)]
        json: bool,
        /// The log to read (default: the configuration's audit log).
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// `sesamed grants …`.
#[derive(Debug, clap::Subcommand)]
pub enum GrantsCommand {
    /// Show every live grant: firewall openings, temporary SSH keys, group memberships and
    /// accounts, with when each ends and who holds it.
    List {
        /// One JSON object per grant instead of a table, with its `kind` (`opening`, `key`,
        /// `membership` or `account`).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Take grants back now, for every holder: close openings, remove temporary keys and group
    /// memberships.
    Revoke {
        /// Grant ids (`fw-…` openings, `key-…` temporary keys, `grp-…` group memberships,
        /// `acc-…` temporary accounts).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<String>,
        /// Every live grant (e.g. before taking sesamed off a host).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// `sesamed client …`.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Enrol a client key under NAME.
    Add {
        /// The client's name (policies and the audit log use it).
        name: String,
        /// The client's public key (`sesame key show`): 64 hex characters.
        #[arg(long)]
        key: String,
        /// A group for the client; repeat for several.
        #[arg(long = "group")]
        groups: Vec<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Give a client a new key; its current key stays accepted for a grace period.
    ///
    /// The new key comes from `sesame key rotate`; the client switches to it when every host
    /// knows it. A running daemon picks the change up at the next request.
    Rekey {
        /// The client's name.
        name: String,
        /// The client's new public key, 64 hex characters.
        #[arg(long)]
        key: String,
        /// How long the current key stays accepted (`s`, `m`, `h` or `d`; `0s` refuses it at
        /// once).
        #[arg(long, default_value = "7d", value_parser = crate::parse_duration_ms, value_name = "DURATION")]
        grace: u64,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Remove a client; a running daemon refuses its key from the next request on.
    Remove {
        /// The client's name.
        name: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List enrolled clients.
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
}
