//! The `sesame` command line, as clap definitions: `main.rs` runs it, and the packaging
//! generates the man pages and shell completions from it (`sesame-dist`).

use crate::Transport;

/// sesame client: run narrow, policy-checked commands on hosts without a shell.
///
/// sesame keeps this user's key and the hosts it has pinned (each by its key, and by its QUIC
/// address and certificate fingerprint or its SQS queue), and runs commands on them through
/// their sesamed: `sesame run HOST COMMAND [ARGS...]`. What a command may do is decided by the
/// host's policy for this key. Start with `sesame keygen`, give the printed key to the host's
/// operator, and pin the host with `sesame host add` using what `sesamed show` prints there.
#[derive(Debug, clap::Parser)]
#[command(name = "sesame", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The `sesame` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create this client's key pair (refuses to overwrite one).
    Keygen,
    /// Show this client's key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Pin, list and forget hosts.
    #[command(subcommand)]
    Host(HostCommand),
    /// Run a command on a host: `sesame run web1 access::allow 22`; on many hosts at once:
    /// `sesame run --hosts web1,web2 whoami` or `sesame run --group web whoami`.
    Run(RunArgs),
    /// Name sets of hosts for `sesame run --group`.
    #[command(subcommand)]
    Group(GroupCommand),
}

/// `sesame run …`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// `HOST COMMAND [ARGS...]`, or `COMMAND [ARGS...]` with --hosts or --group. COMMAND is
    /// `COMMAND` or `CLUSTER::COMMAND`; options for sesame go before HOST.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "HOST COMMAND ARGS"
    )]
    pub words: Vec<String>,
    /// Run on these hosts (comma-separated), concurrently.
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Run on the hosts of this group (see `sesame group`), concurrently.
    #[arg(long)]
    pub group: Option<String>,
    /// The transport; by default QUIC for hosts with an address, else SQS.
    #[arg(long, value_enum)]
    pub via: Option<Transport>,
    /// Give up waiting for a host after this many seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Hosts asked at once.
    #[arg(long, default_value_t = 32)]
    pub parallel: usize,
    /// Print one JSON object per host instead of the table (many hosts).
    #[arg(long)]
    pub json: bool,
}

/// `sesame group …`.
#[derive(Debug, clap::Subcommand)]
pub enum GroupCommand {
    /// Define (or redefine) a group: `sesame group set web web1,web2`.
    Set {
        /// The group's name.
        name: String,
        /// Its hosts, comma-separated; each must be pinned.
        #[arg(value_delimiter = ',', required = true)]
        hosts: Vec<String>,
    },
    /// List groups.
    List,
    /// Forget a group (its hosts stay pinned).
    Remove {
        /// The group's name.
        name: String,
    },
}

/// `sesame key …`.
#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// Print the public key (give it to the host's operator for `sesamed client add`).
    Show,
    /// Print the name of this key's SQS reply queue (for its IAM policy).
    ReplyQueue,
}

/// `sesame host …`.
#[derive(Debug, clap::Subcommand)]
pub enum HostCommand {
    /// Pin a host by its key (from `sesamed show`), with its QUIC address and certificate
    /// fingerprint, its SQS request queue, or both.
    Add {
        /// The name you will use for it.
        name: String,
        /// Its public key, 64 hex characters.
        #[arg(long)]
        key: String,
        /// Its QUIC address, HOST:PORT.
        #[arg(long, requires = "cert_sha256")]
        addr: Option<String>,
        /// SHA-256 of its TLS certificate, 64 hex characters (with --addr).
        #[arg(long = "cert-sha256", requires = "addr")]
        cert_sha256: Option<String>,
        /// Its SQS request queue, a name (`sesame-req-HOST`) or URL.
        #[arg(long = "sqs-queue")]
        sqs_queue: Option<String>,
        /// The queue's AWS region (else AWS_REGION or the profile's).
        #[arg(long = "sqs-region", requires = "sqs_queue")]
        sqs_region: Option<String>,
        /// The SQS endpoint (else AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL, or AWS's own).
        #[arg(long = "sqs-endpoint", requires = "sqs_queue")]
        sqs_endpoint: Option<String>,
        /// The AWS profile for the queue (else AWS_PROFILE).
        #[arg(long = "sqs-profile", requires = "sqs_queue")]
        sqs_profile: Option<String>,
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
