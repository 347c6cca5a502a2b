//! The `sesame` command line, as clap definitions: `main.rs` runs it, and the packaging
//! generates the man pages and shell completions from it (`sesame-dist`).

use crate::Transport;
use crate::labels::{Label, LabelEdit, Selector};
use crate::rollout::Share;

/// sesame client: run narrow, policy-checked commands on hosts without a shell.
///
/// sesame keeps this user's key and the hosts it has pinned (each by its key, and by its QUIC
/// address and certificate fingerprint or its SQS queue), and runs commands on them through
/// their sesamed: `sesame run HOST COMMAND [ARGS...]`. What a command may do is decided by the
/// host's policy for this key. Start with `sesame keygen`, give the printed key to the host's
/// operator, and pin the host with `sesame host add` using what `sesamed show` prints there.
///
/// Errors are printed on standard error as `sesame: …`, often with a `hint: …` line saying
/// what to do; they are coloured on a terminal unless NO_COLOR is set. Exit status: 0 success;
/// 1 the host answered with an error; 2 a local problem (no key, unknown host, bad arguments);
/// 3 no answer came (host unreachable, certificate not the pinned one, key not enrolled,
/// timeout); 4 a run on many hosts stopped before starting them all (--max-errors, --batch,
/// Ctrl-C).
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
    /// `sesame run --hosts web1,web2 whoami`, `sesame run --group web whoami` or
    /// `sesame run --where role=web whoami`, with --max-concurrency, --max-errors and --batch
    /// to roll it out.
    Run(RunArgs),
    /// List the requests waiting on a host for approval that this client may approve.
    ///
    /// A host's policy may ask for other people's approval before a command runs (two-person
    /// rule): the request is then parked on the host (`sesame run` says so, with its id). This
    /// lists those this client may approve: who asked, what, why, how long it has left.
    Pending(PendingArgs),
    /// Approve a request waiting on a host: with enough approvals it runs, as its requester
    /// asked it, and its requester gets the answer. Nobody approves their own request, and
    /// each approver counts once.
    Approve(DecideArgs),
    /// Reject a request waiting on a host (its requester may withdraw its own): it will not run.
    Reject(DecideArgs),
    /// The output and answer of a detached run (`sesame run --detach`), as far as it has got;
    /// or the answer to a request that waited for approval: its output once it ran, or why it
    /// did not run. With --follow (--wait), wait for the end.
    Result(ResultArgs),
    /// Stop a request of this client's while it runs on a host: the module is stopped and any
    /// program it runs killed with everything it started; the request answers 3008. (Ctrl-C
    /// during `sesame run` does this for every host still running.) Only the key that sent a
    /// request can cancel it.
    Cancel(CancelArgs),
    /// Name sets of hosts for `sesame run --group`.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Open a port on a host for this machine, then carry one TCP connection to it over
    /// standard input and output: ssh's ProxyCommand.
    ///
    /// With `ProxyCommand sesame ssh-proxy %h %p` in ~/.ssh/config (the example below),
    /// `ssh web1` first asks the pinned host web1 to run `allow 22 --ttl 60` (the opening
    /// is for the address the host sees this machine at), and only if the host grants it,
    /// connects to web1's address on port 22 and pipes ssh's traffic through. If the host
    /// refuses, or does not answer, nothing is connected: the reason, with a hint, goes to
    /// standard error and ssh stops. Nothing but the connection's bytes is ever written to
    /// standard output.
    ///
    /// HOST is what ssh passes for %h (the name given to ssh, or its HostName): a pinned host's
    /// name (`sesame host list`); else the pinned host whose daemon name (`--host-name`) is
    /// HOST; else the one whose QUIC address is HOST, compared as written, then by the IP
    /// addresses both resolve to. Where several pinned hosts share a HostName, use %n (the
    /// name as given to ssh) instead of %h.
    ///
    /// The opening only has to last until ssh has connected, hence the short default --ttl.
    /// The connection outlives it wherever the firewall accepts established traffic before its
    /// own rules: ufw's stock before.rules do, and so does the nftables set-up in sesame's
    /// README (`ct state established,related accept`). Closing a rule does not cut a
    /// connection it let in.
    ///
    /// The TCP connection goes to the host part of the host's pinned QUIC address (to HOST
    /// itself for a host reached only over SQS; SQS requests carry no source address, so give
    /// --from there). Connecting is retried for --connect-timeout seconds while the opening
    /// takes effect.
    ///
    /// Exit status: 0 once the connection has closed; 1 the host refused (its error code and
    /// a hint on standard error); 2 a local problem (HOST not pinned, no key, bad arguments);
    /// 3 no answer from the host, or access was granted but the port did not take the
    /// connection (or it broke).
    #[command(after_long_help = SSH_PROXY_EXAMPLE)]
    SshProxy(SshProxyArgs),
    /// Print a host's SSH host public keys in known_hosts form, fetched from the pinned host
    /// through sesame: ssh's KnownHostsCommand, so that ssh trusts no key on first use.
    ///
    /// Asks the host to run `known-hosts` (the stock module prints the keys of its
    /// `ssh_host_*_key.pub` files) and prints one `NAME TYPE KEY` line per key, exactly what
    /// KnownHostsCommand must print, and nothing else on standard output. The answer is sealed by
    /// the host's pinned key, like every answer: whoever sits between this machine and the
    /// host's sshd cannot change it. Each line of it must be exactly an SSH host public key of
    /// a type ssh uses (ed25519, ecdsa, rsa), or nothing is printed.
    ///
    /// HOST is found as ssh-proxy finds it (a pinned name, then a daemon's name, then a pinned
    /// QUIC address): give ssh's %n. NAME is what ssh looks the keys up by, ssh's %H
    /// (`web1`, or `[web1]:2222` for another port); it defaults to HOST.
    ///
    /// OpenSSH runs KnownHostsCommand only by an absolute path, and may run it twice per
    /// connection (to order its key algorithms, then to check the key): each run is one request
    /// in the host's audit log. If it fails, ssh stops.
    ///
    /// Exit status: 0 the keys were printed; 1 the host refused, or its answer holds no key or
    /// something else (its error code, or what is wrong, and a hint on standard error); 2 a local
    /// problem (HOST not pinned, no key, a NAME known_hosts cannot hold); 3 no answer.
    #[command(after_long_help = KNOWN_HOSTS_EXAMPLE)]
    KnownHosts(KnownHostsArgs),
    /// List the receipts this client keeps: for each answer, the host's audit record of it.
    ///
    /// Every answer from a host carries the sequence number and SHA-256 of the host's audit
    /// record of it; `sesame` appends them to `receipts` in its directory (one JSON object per
    /// line). Whoever audits a host runs `sesamed audit verify --receipts FILE` with copies of
    /// its clients' files: a record one of them names that was removed or changed is found,
    /// even when the host's root recomputed the log's hash chain after it.
    Receipts {
        /// Only this host's receipts: its name here, or the daemon's host name.
        host: Option<String>,
        /// Print the receipts' lines as the file has them (one JSON object each: `time_ms`,
        /// `host`, `host_name`, `id`, `command`, `code`, `seq`, `hash`) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// The end of `sesame ssh-proxy --help`: the ssh configuration, verbatim.
pub const SSH_PROXY_EXAMPLE: &str = "\
Example, in ~/.ssh/config:

    Host web1 web2
        ProxyCommand sesame ssh-proxy %h %p
        KnownHostsCommand /usr/bin/sesame known-hosts --name %H %n
        StrictHostKeyChecking yes

then `ssh web1` as usual. Its messages appear on ssh's standard error; with
`ProxyCommand sesame ssh-proxy --verbose %h %p` they also say what the host opened. The
KnownHostsCommand line has ssh check the host's key against what the host vouched for
through sesame, from the first connection (see `sesame known-hosts --help`).";

/// The end of `sesame known-hosts --help`: the ssh configuration, verbatim.
pub const KNOWN_HOSTS_EXAMPLE: &str = "\
Example, in ~/.ssh/config (KnownHostsCommand needs sesame's absolute path):

    Host web1 web2
        ProxyCommand sesame ssh-proxy %h %p
        KnownHostsCommand /usr/bin/sesame known-hosts --name %H %n
        StrictHostKeyChecking yes

then the first `ssh web1` checks web1's host key against what web1 vouched for through
sesame, and asks nobody to trust a fingerprint.";

/// `sesame known-hosts …`.
#[derive(Debug, clap::Args)]
pub struct KnownHostsArgs {
    /// The host (%n): a pinned name, a daemon's name, or the host part of a pinned QUIC
    /// address.
    pub host: String,
    /// The name to print in front of each key: what ssh looks the host up by (%H). Default:
    /// HOST.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The command that prints the keys, `COMMAND` or `CLUSTER::COMMAND`: one `TYPE KEY` line
    /// each, like the stock `known-hosts`.
    #[arg(long, default_value = "known-hosts", value_name = "CLUSTER::COMMAND")]
    pub command: String,
    /// Why (a ticket id, a sentence), sealed in the request: the host's policy may require one,
    /// and its audit log keeps it.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub reach: Reach,
}

/// `sesame ssh-proxy …`.
#[derive(Debug, clap::Args)]
pub struct SshProxyArgs {
    /// The host, as ssh passes it (%h): a pinned name, a daemon's name, or the host part of a
    /// pinned QUIC address.
    pub host: String,
    /// The TCP port to open and connect to (%p).
    #[arg(value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// The command that opens the port, `COMMAND` or `CLUSTER::COMMAND`. It is run as
    /// `COMMAND PORT --ttl SECONDS [--from ADDR]`, like the stock `allow`.
    #[arg(long, default_value = "allow", value_name = "CLUSTER::COMMAND")]
    pub command: String,
    /// How long the opening lasts, seconds: only until ssh has connected.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub ttl: u64,
    /// Open the port for this source address (or CIDR) instead of the one the host sees;
    /// needed over SQS, whose requests carry none.
    #[arg(long, value_name = "ADDR")]
    pub from: Option<String>,
    /// The transport for the request; by default QUIC for hosts with an address, else SQS.
    #[arg(long, value_enum)]
    pub via: Option<Transport>,
    /// Give up waiting for the host's answer after this many seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
    /// Why access is needed (a ticket id, a sentence), sealed in the request: the host's
    /// policy may require one, and its audit log keeps it.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Give up connecting to PORT after this many seconds (retrying meanwhile).
    #[arg(long = "connect-timeout", default_value_t = 5, value_name = "SECS")]
    pub connect_timeout: u64,
    /// Say on standard error what the host opened and where the connection goes.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `sesame run …`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("fleet").multiple(true)))]
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
    #[arg(long, value_delimiter = ',', group = "fleet")]
    pub hosts: Vec<String>,
    /// Run on the hosts of this group (see `sesame group`), concurrently.
    #[arg(long, group = "fleet")]
    pub group: Option<String>,
    /// Run on the pinned hosts whose labels match (`sesame host label`): KEY=VALUE or
    /// KEY!=VALUE, comma-separated, all must hold. With --hosts or --group, only those of them
    /// that match; alone, every pinned host that matches (by name).
    #[arg(long = "where", value_name = "KEY=VALUE,KEY!=VALUE", group = "fleet")]
    pub selector: Option<Selector>,
    /// The transport; by default QUIC for hosts with an address, else SQS.
    #[arg(long, value_enum)]
    pub via: Option<Transport>,
    /// Give up waiting for a host after this many seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// On many hosts: how many are asked at once, a number or a percentage of them (`10%`,
    /// at least one host).
    #[arg(
        long,
        alias = "parallel",
        default_value = "32",
        value_parser = Share::parse_positive,
        value_name = "N|P%"
    )]
    pub max_concurrency: Share,
    /// On many hosts: how many may fail (answer with an error, or not at all) before the rollout
    /// stops: one more, and no new host is started (those running are waited for; the rest are
    /// reported as not started). A number, or a percentage of the hosts rounded down (`0`: stop
    /// at the first failure). Default: never stop.
    #[arg(long, value_name = "N|P%", requires = "fleet")]
    pub max_errors: Option<Share>,
    /// On many hosts: a canary batch. The first N hosts (in the order given) run first, and the
    /// rest start only once every one of them has succeeded. A number, or a percentage of the
    /// hosts rounded up.
    #[arg(long, value_name = "N|P%", value_parser = Share::parse_positive, requires = "fleet")]
    pub batch: Option<Share>,
    /// Why you run it (a ticket id, a sentence; at most 512 bytes on one line), sealed in
    /// every host's request: a host's policy may require one (of a shape, such as a ticket id),
    /// and its audit and decision logs keep it.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// When the host parks the request for approval (code 1020), print its id and return at
    /// once instead of waiting for it to be approved and run (`sesame result HOST ID` fetches
    /// the answer later). Runs on many hosts never wait.
    #[arg(long)]
    pub no_wait: bool,
    /// Print only the answer, not the command's output as it comes. By default (over QUIC and
    /// SQS) what the command logs and what the programs it runs write are printed as they happen
    /// (prefixed by the host's name on many hosts), then its output.
    #[arg(long)]
    pub no_stream: bool,
    /// Start the command and return at once, printing its request id (on many hosts, each
    /// host's name and id): it runs on, and `sesame result HOST ID [--follow]` prints its output
    /// and answer, as far as it has got or when it ends. Hosts keep a result a day by default
    /// (`[limits] results_keep_s`); `sesame cancel HOST ID` stops it.
    #[arg(long, conflicts_with = "no_wait")]
    pub detach: bool,
    /// Print JSON for scripts instead of the output (one host) or the table (many hosts): one
    /// object per host and line, with `host`, `via`, `ok`, `code`, `output`, `message` (or
    /// `error` when no answer came) and `elapsed_ms`, each chunk of output as it comes before
    /// them as an object with `host`, `progress` (its number), `source` and `text`. Errors still
    /// go to standard error as text; the exit status is the same as without --json.
    #[arg(long)]
    pub json: bool,
}

/// How to reach one host.
#[derive(Debug, clap::Args)]
pub struct Reach {
    /// The transport; by default QUIC for hosts with an address, else SQS.
    #[arg(long, value_enum)]
    pub via: Option<Transport>,
    /// Give up waiting for the host's answer after this many seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

/// `sesame pending HOST`.
#[derive(Debug, clap::Args)]
pub struct PendingArgs {
    /// The host.
    pub host: String,
    /// Print the host's list as JSON (an array of objects with `id`, `client`, `call`,
    /// `reason`, `created_ms`, `expires_ms`, `approvals`, `required`, `approved_by`).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub reach: Reach,
}

/// `sesame approve|reject HOST ID`.
#[derive(Debug, clap::Args)]
pub struct DecideArgs {
    /// The host.
    pub host: String,
    /// The waiting request's id (`sesame pending` shows it), or its first 8 or more characters.
    pub id: String,
    /// Why (kept in the host's audit log; a rejection's reason is shown to the requester).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub reach: Reach,
}

/// `sesame result HOST ID`.
#[derive(Debug, clap::Args)]
pub struct ResultArgs {
    /// The host.
    pub host: String,
    /// The id `sesame run --detach` (or `--no-wait`, for a parked request) printed, or its
    /// first 8 or more characters.
    pub id: String,
    /// Wait until it has run (or was rejected, or expired), asking every few seconds; for a
    /// detached run, print its output as it comes until it ends.
    #[arg(long, visible_alias = "follow")]
    pub wait: bool,
    #[command(flatten)]
    pub reach: Reach,
}

/// `sesame cancel HOST ID`.
#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// The host.
    pub host: String,
    /// The running request's id, or its first 8 or more characters.
    pub id: String,
    /// Why (kept in the host's audit log).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub reach: Reach,
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
    List {
        /// One JSON object per group and line: `name`, `hosts`.
        #[arg(long)]
        json: bool,
    },
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
    Show {
        /// Print one JSON object: `public_key`, `reply_queue` (its SQS reply queue).
        #[arg(long)]
        json: bool,
    },
    /// Print the name of this key's SQS reply queue (for its IAM policy).
    ReplyQueue,
    /// Replace this client's key, in two steps.
    ///
    /// `sesame key rotate` stages a new key (`id.key.next`) and prints it, while the current
    /// key stays in use: give the new key to
    /// each host's operator for `sesamed client rekey NAME --key NEW`, which keeps the current
    /// one accepted for a grace period. Then `sesame key rotate --finish` puts the new key in
    /// use and keeps the old one as `id.key.previous`. Running it again before --finish prints
    /// the same staged key.
    Rotate {
        /// Put the staged key in use.
        #[arg(long)]
        finish: bool,
    },
}

/// `sesame host …`.
#[derive(Debug, clap::Subcommand)]
pub enum HostCommand {
    /// Pin a host by its key and its next key's digest (from `sesamed show`), with its QUIC
    /// address and certificate fingerprint, its SQS request queue, or both.
    ///
    /// `sesamed show` prints the whole line. With the next key's digest pinned, this client
    /// follows the host's next key rotation by itself, and only to that key: whoever holds just
    /// the old key cannot move it elsewhere. Without it, rotations are never followed by
    /// themselves (re-pin by hand with `sesame host repin`).
    Add {
        /// The name you will use for it.
        name: String,
        /// Its public key, 64 hex characters, optionally followed by `:` and the SHA-256 of its
        /// next key (`KEY:NEXT_SHA256`, as `sesamed show` prints it).
        #[arg(long, value_name = "KEY[:NEXT_SHA256]")]
        key: String,
        /// The SHA-256 of the host's next key, 64 hex characters (unless given in --key).
        #[arg(long = "next-key-sha256", value_name = "SHA256")]
        next_key_sha256: Option<String>,
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
        /// A label, KEY=VALUE, to choose hosts by (`sesame run --where role=web`); repeat it or
        /// separate them with commas. They stay in this client: the host never sees them.
        #[arg(long = "label", value_name = "KEY=VALUE", value_delimiter = ',')]
        labels: Vec<Label>,
    },
    /// Set, remove or show a pinned host's labels: `sesame host label web1 role=web env=prod`,
    /// `sesame host label web1 env-` (removes env). Prints the host's labels after the change.
    ///
    /// Keys and values are 1 to 63 letters, digits, '.', '_' and '-', starting and ending with a
    /// letter or digit. `sesame run --where role=web,env!=test` chooses hosts by them.
    Label {
        /// The host's name.
        name: String,
        /// KEY=VALUE sets a label (replacing its value), KEY- removes it; none: show them.
        #[arg(value_name = "KEY=VALUE|KEY-")]
        edits: Vec<LabelEdit>,
    },
    /// List pinned hosts.
    List {
        /// One JSON object per host and line: `name`, `host_name` (the daemon's), `key`,
        /// `next_key_sha256`, `addr` and `cert_sha256` (QUIC), `sqs` (`queue`, `region`,
        /// `endpoint_url`, `profile`), `labels` (an object); what the host lacks is null.
        #[arg(long)]
        json: bool,
    },
    /// Re-pin a pinned host's key by hand: after a rotation this client could not verify, or
    /// to add the next key's digest to a pin made without it. Its routes, certificate pin and
    /// groups stay.
    ///
    /// Take the new `KEY:NEXT_SHA256` from `sesamed show` on the host, over a channel you trust:
    /// the pin is what every later answer is checked against.
    Repin {
        /// The host's name.
        name: String,
        /// Its public key, optionally with `:` and the SHA-256 of its next key.
        #[arg(long, value_name = "KEY[:NEXT_SHA256]")]
        key: String,
        /// The SHA-256 of the host's next key (unless given in --key).
        #[arg(long = "next-key-sha256", value_name = "SHA256")]
        next_key_sha256: Option<String>,
    },
    /// Forget a host.
    Remove {
        /// The host's name.
        name: String,
    },
}
