//! The daemon's configuration file (TOML): who the host is, where its state lives, what it
//! listens on, the default limits, and the command clusters that map names to components.
//!
//! Relative paths are resolved against the directory of the configuration file, so a config and
//! its modules can travel together.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capability::Capability;

/// Host interfaces a cluster may grant its modules, beyond `log` which every module has.
pub use crate::capability::NAMES as CAPABILITIES;
pub use limits::Limits;

mod limits;

/// The most decisions `host.decision_cache` may ask to keep. An entry is its key (the input as
/// JSON, at most [`MAX_CACHE_KEY_BYTES`](crate::policy::MAX_CACHE_KEY_BYTES)) and a decision, so this
/// bounds the cache below about 500 MiB however clients vary their requests.
pub const MAX_DECISION_CACHE: usize = 100_000;

/// The `-c/--config FILE` option every `sesamed` command that reads the configuration takes
/// (also `$SESAMED_CONFIG`; default `/etc/sesame/sesamed.toml`).
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// The configuration file.
    #[arg(
        long,
        short = 'c',
        env = "SESAMED_CONFIG",
        default_value = "/etc/sesame/sesamed.toml"
    )]
    pub config: PathBuf,
}

/// A parsed and checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the file was read from.
    pub path: PathBuf,
    /// The host's name; a request must name it (no cross-host replays).
    pub host_name: String,
    /// Free-form labels handed to the policy (`input.host.labels`).
    pub host_labels: BTreeMap<String, String>,
    /// Keys, certificate and the replay log live here (`sesamed init` fills it).
    pub state_dir: PathBuf,
    /// The client registry (`sesamed client add|remove|list` edit it).
    pub clients_file: PathBuf,
    /// The directory of `.rego` policies and `.json` data.
    pub policy_dir: PathBuf,
    /// The JSON-lines audit log.
    pub audit_log: PathBuf,
    /// The JSON-lines decision log: every policy decision with its input and result.
    pub decision_log: PathBuf,
    /// The QUIC listener, if any.
    pub quic_listen: Option<SocketAddr>,
    /// The SQS request queue, if any (`[sqs]`).
    pub sqs: Option<SqsConfig>,
    /// Limits that apply when the policy's grant names none, and their ceilings.
    pub limits: Limits,
    /// Accepted clock difference between client and daemon, in milliseconds.
    pub freshness_window_ms: u64,
    /// Policy decisions remembered per policy revision (`0`: every request is evaluated).
    pub decision_cache: usize,
    /// Command clusters by name.
    pub clusters: BTreeMap<String, Cluster>,
    /// The capabilities' sections (`[firewall]`, `[salt]`, ...), each checked by its capability.
    pub capabilities: crate::capability::Configs,
}

/// `[sqs]`: serve requests from the host's SQS queue (nothing listens; the daemon polls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsConfig {
    /// The request queue's name or URL (default `sesame-req-<host.name>`).
    pub queue: String,
    /// Region, endpoint and profile; unset ones come from the standard AWS chain.
    pub aws: sesame_sqs::Settings,
    /// Messages handled at once.
    pub max_in_flight: usize,
    /// How long a received message stays invisible to other receivers, seconds; it is extended
    /// while its command runs.
    pub visibility_timeout_s: u32,
    /// How long one long poll waits for a message, seconds (1 to 20). Shorter polls cost more
    /// calls when idle; a stop waits for the poll under way.
    pub wait_time_s: u32,
    /// A message received more often than this without its answer getting through is dropped
    /// and audited as poison.
    pub max_receives: u32,
}

impl Config {
    /// Whether any cluster grants `capability` (and so needs its back end: a firewall,
    /// shadow's tools, salt-call).
    pub fn uses(&self, capability: &str) -> bool {
        self.clusters
            .values()
            .any(|c| c.capabilities.iter().any(|cap| cap == capability))
    }
}

/// A named group of commands that share a set of host capabilities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Host interfaces (from [`CAPABILITIES`]) this cluster's modules may import: those listed,
    /// and `grants` with `firewall` or `users` ([`crate::capability::grants::with_implied`]).
    pub capabilities: Vec<String>,
    /// Command name to component file.
    pub commands: BTreeMap<String, CommandModule>,
}

/// A command's component file, and the digest the configuration pins it to, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandModule {
    /// The component file.
    pub path: PathBuf,
    /// `sha256:<64 hex>`: the daemon refuses to start when the file's digest differs.
    pub digest: Option<String>,
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has unknown or mistyped keys.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file parses but says something that cannot work.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
}

impl Config {
    /// Reads and checks a configuration file.
    ///
    /// Checks what can be checked without acting: names are well formed, capabilities are known,
    /// limits are non-zero. Whether module files load is the sandbox's job (`sesamed configtest`
    /// does both).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses configuration text as if read from `path` (used for relative paths and messages).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let capabilities = raw.capabilities(&resolve).map_err(invalid)?;

        let host_name = match raw.host.name {
            Some(name) => {
                check_name(&name).map_err(|e| invalid(format!("host.name: {e}")))?;
                name
            }
            None => machine_host_name().map_err(|e| invalid(format!("host.name: {e}")))?,
        };
        let limits = raw.limits;
        limits.check().map_err(invalid)?;
        if raw.host.freshness_window_s == 0 || raw.host.freshness_window_s > 3600 {
            return Err(invalid(
                "host.freshness_window_s: must be between 1 and 3600".into(),
            ));
        }
        if raw.host.decision_cache > MAX_DECISION_CACHE {
            return Err(invalid(format!(
                "host.decision_cache: at most {MAX_DECISION_CACHE} decisions (0 turns the cache off)"
            )));
        }
        let quic_listen = match raw.quic {
            Some(q) => Some(
                q.listen
                    .parse()
                    .map_err(|e| invalid(format!("quic.listen {:?}: {e}", q.listen)))?,
            ),
            None => None,
        };
        let sqs = raw
            .sqs
            .map(|q| q.check(&host_name, &limits))
            .transpose()
            .map_err(invalid)?;
        if quic_listen.is_none() && sqs.is_none() {
            return Err(invalid(
                "no transport: add [quic] listen = \"ADDR:PORT\", or [sqs] (optionally with queue = \"NAME\")".into(),
            ));
        }
        if raw.clusters.is_empty() {
            return Err(invalid(
                "no [clusters.*] defined: the daemon would have nothing to run".into(),
            ));
        }
        let mut clusters = BTreeMap::new();
        for (name, cluster) in raw.clusters {
            check_name(&name).map_err(|e| invalid(format!("clusters.{name}: {e}")))?;
            if name == crate::approvals::CLUSTER {
                return Err(invalid(format!(
                    "clusters.{name}: the name is the daemon's own (its pending, approve, reject and result commands)"
                )));
            }
            if name == crate::runs::CLUSTER {
                return Err(invalid(format!(
                    "clusters.{name}: the name is the daemon's own (its {} commands)",
                    crate::runs::COMMANDS.join(", ")
                )));
            }
            for cap in &cluster.capabilities {
                if !CAPABILITIES.contains(&cap.as_str()) {
                    return Err(invalid(format!(
                        "clusters.{name}.capabilities: unknown capability {cap:?} (known: {})",
                        CAPABILITIES.join(", ")
                    )));
                }
            }
            if cluster.commands.is_empty() {
                return Err(invalid(format!("clusters.{name}.commands: empty")));
            }
            let mut commands = BTreeMap::new();
            for (cmd, raw) in cluster.commands {
                let at = format!("clusters.{name}.commands.{cmd}");
                check_name(&cmd).map_err(|e| invalid(format!("{at}: {e}")))?;
                let (file, digest) = match raw {
                    RawCommand::Path(file) => (file, None),
                    RawCommand::Pinned { path, digest } => {
                        let digest =
                            parse_digest(&digest).map_err(|e| invalid(format!("{at}.digest: {e}")))?;
                        (path, Some(digest))
                    }
                };
                commands.insert(
                    cmd,
                    CommandModule {
                        path: resolve(file),
                        digest,
                    },
                );
            }
            clusters.insert(
                name,
                Cluster {
                    capabilities: crate::capability::grants::with_implied(cluster.capabilities),
                    commands,
                },
            );
        }
        let state_dir = resolve(raw.host.state_dir);
        Ok(Config {
            capabilities,
            path: path.to_owned(),
            host_name,
            host_labels: raw.host.labels,
            clients_file: raw
                .host
                .clients
                .map_or_else(|| state_dir.join("clients.toml"), resolve),
            audit_log: raw
                .host
                .audit_log
                .map_or_else(|| state_dir.join("audit.jsonl"), resolve),
            decision_log: raw
                .host
                .decision_log
                .map_or_else(|| state_dir.join("decisions.jsonl"), resolve),
            policy_dir: resolve(raw.host.policies),
            state_dir,
            quic_listen,
            sqs,
            limits,
            freshness_window_ms: raw.host.freshness_window_s * 1000,
            decision_cache: raw.host.decision_cache,
            clusters,
        })
    }

    /// Finds the cluster and module for a command. With no cluster named, the command must exist
    /// in exactly one cluster.
    pub fn resolve_command<'a>(
        &'a self,
        cluster: Option<&'a str>,
        command: &str,
    ) -> Result<(&'a str, &'a Path), CommandLookupError> {
        match cluster {
            Some(c) => {
                let cl = self
                    .clusters
                    .get(c)
                    .ok_or_else(|| CommandLookupError::UnknownCluster(c.into()))?;
                let module = cl
                    .commands
                    .get(command)
                    .ok_or_else(|| CommandLookupError::UnknownCommand(format!("{c}::{command}")))?;
                Ok((c, &module.path))
            }
            None => {
                let mut found = self.clusters.iter().filter_map(|(name, cl)| {
                    cl.commands
                        .get(command)
                        .map(|m| (name.as_str(), m.path.as_path()))
                });
                match (found.next(), found.next()) {
                    (Some(hit), None) => Ok(hit),
                    (None, _) => Err(CommandLookupError::UnknownCommand(command.into())),
                    (Some(_), Some(_)) => Err(CommandLookupError::Ambiguous(command.into())),
                }
            }
        }
    }
}

/// A request named a command the configuration does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandLookupError {
    /// No such cluster.
    #[error("unknown cluster {0:?}")]
    UnknownCluster(String),
    /// No such command (in the named cluster, or in any).
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// No cluster named, and several clusters have the command.
    #[error("command {0:?} exists in several clusters; name one as CLUSTER::COMMAND")]
    Ambiguous(String),
}

/// Checks a host, cluster or command name: 1 to 64 bytes of `[a-z0-9._-]`, starting alphanumeric.
/// The same rule `sesame-proto` applies to request fields, so every configured name is reachable.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_len = (1..=64).contains(&name.len());
    let ok_first = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok_len && ok_first && ok_chars {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a name (1-64 of a-z 0-9 . _ -, starting with a letter or digit)"
        ))
    }
}

/// `host.name` when the file sets none: the machine's host name (`uname -n`), lowercased,
/// if it is a valid name.
fn machine_host_name() -> Result<String, String> {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy().to_lowercase();
    check_name(&name)
        .map(|()| name)
        .map_err(|e| format!("not set, and the machine's host name will not do: {e}; set name = \"NAME\""))
}

/// The file as written: the daemon's own sections, then one per capability (its `Config`).
macro_rules! raw_config {
    ($($name:ident: $ty:ty),* $(,)?) => {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawConfig {
            host: RawHost,
            quic: Option<RawQuic>,
            sqs: Option<RawSqs>,
            #[serde(default)]
            limits: Limits,
            #[serde(default)]
            clusters: BTreeMap<String, RawCluster>,
            $(
                #[serde(default)]
                $name: <$ty as Capability>::Config,
            )*
        }

        impl RawConfig {
            /// The capabilities' sections, each checked (and its paths resolved) by its own.
            fn capabilities(
                &mut self,
                resolve: &dyn Fn(PathBuf) -> PathBuf,
            ) -> Result<crate::capability::Configs, String> {
                Ok(crate::capability::Configs {
                    $($name: <$ty as Capability>::configure(std::mem::take(&mut self.$name), resolve)?,)*
                })
            }
        }
    };
}
crate::capability::for_each_capability!(raw_config);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    state_dir: PathBuf,
    policies: PathBuf,
    clients: Option<PathBuf>,
    audit_log: Option<PathBuf>,
    decision_log: Option<PathBuf>,
    #[serde(default = "default_window_s")]
    freshness_window_s: u64,
    #[serde(default = "default_decision_cache")]
    decision_cache: usize,
}

fn default_decision_cache() -> usize {
    crate::policy::DEFAULT_DECISION_CACHE
}

fn default_window_s() -> u64 {
    60
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuic {
    listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSqs {
    queue: Option<String>,
    region: Option<String>,
    endpoint_url: Option<String>,
    profile: Option<String>,
    max_in_flight: Option<usize>,
    #[serde(default = "default_visibility_timeout_s")]
    visibility_timeout_s: u32,
    #[serde(default = "default_max_receives")]
    max_receives: u32,
    #[serde(default = "default_wait_time_s")]
    wait_time_s: u32,
}

fn default_wait_time_s() -> u32 {
    20
}

fn default_visibility_timeout_s() -> u32 {
    30
}

fn default_max_receives() -> u32 {
    5
}

impl RawSqs {
    fn check(self, host: &str, limits: &Limits) -> Result<SqsConfig, String> {
        let queue = match self.queue {
            Some(q) => q,
            None => sesame_sqs::request_queue(host).ok_or_else(|| {
                format!("sqs.queue: host name {host:?} cannot be part of a queue name; set queue = \"NAME\"")
            })?,
        };
        if sesame_sqs::queue_name(&queue).is_none() {
            return Err(format!(
                "sqs.queue: {queue:?} is not a queue name (1-80 of A-Z a-z 0-9 _ -) or queue URL"
            ));
        }
        let max_in_flight = self.max_in_flight.unwrap_or(limits.max_concurrent);
        if !(1..=1024).contains(&max_in_flight) {
            return Err("sqs.max_in_flight: must be between 1 and 1024".into());
        }
        if !(10..=43_200).contains(&self.visibility_timeout_s) {
            return Err("sqs.visibility_timeout_s: must be between 10 and 43200".into());
        }
        if !(1..=20).contains(&self.wait_time_s) {
            return Err("sqs.wait_time_s: must be between 1 and 20".into());
        }
        if !(1..=1000).contains(&self.max_receives) {
            return Err("sqs.max_receives: must be between 1 and 1000".into());
        }
        Ok(SqsConfig {
            queue,
            aws: sesame_sqs::Settings {
                region: self.region,
                endpoint_url: self.endpoint_url,
                profile: self.profile,
            },
            max_in_flight,
            visibility_timeout_s: self.visibility_timeout_s,
            wait_time_s: self.wait_time_s,
            max_receives: self.max_receives,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    #[serde(default)]
    capabilities: Vec<String>,
    commands: BTreeMap<String, RawCommand>,
}

/// `name = "file.wasm"`, or `name = { path = "file.wasm", digest = "sha256:…" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum RawCommand {
    Path(PathBuf),
    Pinned { path: PathBuf, digest: String },
}

/// Checks a pinned digest: `sha256:` and 64 hex digits (either case; kept lower case).
pub fn parse_digest(text: &str) -> Result<String, String> {
    let hex = text
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            format!("{text:?} is not a module digest (sha256: and 64 hex digits, as `sesamed module inspect` prints)")
        })?;
    Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::firewall::{FirewallBackendKind, FirewallConfig};

    const GOOD: &str = r#"
        [host]
        name = "web1"
        state_dir = "state"
        policies = "/etc/sesame/policies"
        [quic]
        listen = "127.0.0.1:7443"
        [limits]
        timeout_ms = 2000
        [clusters.basic.commands]
        echo = "modules/echo.wasm"
        [clusters.access]
        capabilities = ["firewall"]
        commands = { allow = "/opt/allow.wasm", echo = "modules/echo.wasm" }
    "#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/sesame/sesamed.toml"), text)
    }

    #[test]
    fn a_command_may_pin_its_module_digest() {
        let hex = "AB".repeat(32);
        let pinned = GOOD.replace(
            r#"echo = "modules/echo.wasm"
        [clusters.access]"#,
            &format!(
                "echo = {{ path = \"modules/echo.wasm\", digest = \"sha256:{hex}\" }}\n[clusters.access]"
            ),
        );
        let c = parse(&pinned).expect("valid");
        let echo = &c.clusters["basic"].commands["echo"];
        assert_eq!(echo.path, Path::new("/etc/sesame/modules/echo.wasm"));
        assert_eq!(
            echo.digest.as_deref(),
            Some(format!("sha256:{}", "ab".repeat(32)).as_str())
        );

        let short = pinned.replace(&hex, "abcd");
        let err = parse(&short).expect_err("short digest").to_string();
        assert!(
            err.contains("clusters.basic.commands.echo.digest") && err.contains("64 hex"),
            "{err}"
        );
        let unknown = pinned.replace("digest =", "sha =");
        assert!(parse(&unknown).is_err(), "an unknown key is refused");
    }

    #[test]
    fn parses_and_resolves_relative_paths() {
        let c = parse(GOOD).expect("valid config");
        assert_eq!(c.host_name, "web1");
        assert_eq!(c.state_dir, Path::new("/etc/sesame/state"));
        assert_eq!(c.clients_file, Path::new("/etc/sesame/state/clients.toml"));
        assert_eq!(c.limits.timeout_ms, 2000);
        assert_eq!(c.limits.memory_mb, 64, "unset limits keep their defaults");
        assert_eq!(
            c.clusters["basic"].commands["echo"].path,
            Path::new("/etc/sesame/modules/echo.wasm")
        );
        assert_eq!(
            c.clusters["access"].commands["allow"].path,
            Path::new("/opt/allow.wasm")
        );
        assert_eq!(c.clusters["access"].commands["allow"].digest, None);
        assert_eq!(c.freshness_window_ms, 60_000);
        assert_eq!(c.decision_cache, crate::policy::DEFAULT_DECISION_CACHE);
        assert_eq!(
            c.capabilities.firewall,
            FirewallConfig::default(),
            "ufw unless configured"
        );
        assert!(c.uses("firewall"));
        assert_eq!(
            c.clusters["access"].capabilities,
            ["firewall", "grants"],
            "a cluster that may open the firewall may list and take back its caller's grants"
        );
        assert!(c.clusters["basic"].capabilities.is_empty());
    }

    #[test]
    fn an_unset_host_name_is_the_machines() {
        let c = parse(&GOOD.replace("name = \"web1\"", "")).expect("valid without a name");
        let machine = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
        assert_eq!(c.host_name, machine.trim().to_lowercase());
        let err = parse(&GOOD.replace("name = \"web1\"", "name = \"\""))
            .expect_err("an empty name is not unset")
            .to_string();
        assert!(err.contains("host.name"), "{err}");
    }

    #[test]
    fn firewall_settings() {
        let c = parse(&format!(
            "{GOOD}\n[firewall]\nbackend = \"nftables\"\nnft_table = \"inet host\"\nmax_ttl_s = 600"
        ))
        .expect("valid config");
        assert_eq!(c.capabilities.firewall.backend, FirewallBackendKind::Nftables);
        assert_eq!(c.capabilities.firewall.nft_table, "inet host");
        assert_eq!(c.capabilities.firewall.nft_chain, "sesame");
        assert_eq!(c.capabilities.firewall.max_ttl_s, 600);
        let dry = parse(&format!("{GOOD}\n[firewall]\nbackend = \"dry-run\"")).expect("valid");
        assert_eq!(dry.capabilities.firewall.backend, FirewallBackendKind::DryRun);
    }

    #[test]
    fn salt_settings() {
        let c = parse(GOOD).expect("valid config");
        assert_eq!(
            c.capabilities.salt,
            crate::capability::salt::SaltConfig::default()
        );
        assert!(!c.uses("salt"));
        let c = parse(&format!(
            "{GOOD}\n[salt]\nsalt_call = \"venv/bin/salt-call\"\nconfig_dir = \"salt\"\ntimeout_s = 60"
        ))
        .expect("valid config");
        assert_eq!(
            c.capabilities.salt.salt_call,
            Path::new("/etc/sesame/venv/bin/salt-call")
        );
        assert_eq!(c.capabilities.salt.config_dir, Path::new("/etc/sesame/salt"));
        assert_eq!(c.capabilities.salt.timeout_s, 60);
    }

    #[test]
    fn hostkeys_settings() {
        let c = parse(GOOD).expect("valid config");
        assert_eq!(c.capabilities.hostkeys.dir, Path::new("/etc/ssh"));
        assert!(!c.uses("hostkeys"));
        let c = parse(&format!("{GOOD}\n[hostkeys]\ndir = \"ssh\"")).expect("valid config");
        assert_eq!(c.capabilities.hostkeys.dir, Path::new("/etc/sesame/ssh"));
    }

    #[test]
    fn sqs_settings() {
        let c = parse(&format!("{GOOD}\n[sqs]\n")).expect("valid config");
        let q = c.sqs.expect("sqs");
        assert_eq!(q.queue, "sesame-req-web1", "named after the host by default");
        assert_eq!(q.max_in_flight, c.limits.max_concurrent);
        assert_eq!(
            (q.visibility_timeout_s, q.wait_time_s, q.max_receives),
            (30, 20, 5)
        );
        assert_eq!(q.aws, sesame_sqs::Settings::default());

        let url = "https://sqs.eu-west-1.amazonaws.com/111122223333/sesame-req-db";
        let c = parse(&format!(
            "{GOOD}\n[sqs]\nqueue = \"{url}\"\nregion = \"eu-west-1\"\n"
        ))
        .expect("a queue URL");
        assert_eq!(c.sqs.as_ref().map(|q| q.queue.as_str()), Some(url));

        let sqs_only = GOOD
            .replace("[quic]", "[sqs]")
            .replace("listen = \"127.0.0.1:7443\"", "");
        assert!(parse(&sqs_only).expect("SQS only").quic_listen.is_none());
        let neither = GOOD
            .replace("[quic]", "")
            .replace("listen = \"127.0.0.1:7443\"", "");
        for (text, key) in [
            (neither, "no transport"),
            (format!("{GOOD}\n[sqs]\nqueue = \"a.b\"\n"), "sqs.queue"),
            (format!("{GOOD}\n[sqs]\nwait_time_s = 21\n"), "sqs.wait_time_s"),
            (
                format!("{GOOD}\n[sqs]\nvisibility_timeout_s = 5\n"),
                "sqs.visibility_timeout_s",
            ),
            (format!("{GOOD}\n[sqs]\nmax_receives = 0\n"), "sqs.max_receives"),
            (format!("{GOOD}\n[sqs]\nmax_in_flight = 0\n"), "sqs.max_in_flight"),
        ] {
            let err = parse(&text).expect_err(key).to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let dotted = GOOD.replace("name = \"web1\"", "name = \"web1.example\"");
        let err = parse(&format!("{dotted}\n[sqs]\n"))
            .expect_err("dotted host")
            .to_string();
        assert!(err.contains("set queue"), "{err}");
    }

    #[test]
    fn resolves_commands() {
        let c = parse(GOOD).expect("valid config");
        assert_eq!(c.resolve_command(None, "allow").map(|(cl, _)| cl), Ok("access"));
        assert_eq!(
            c.resolve_command(Some("basic"), "echo").map(|(cl, _)| cl),
            Ok("basic")
        );
        assert_eq!(
            c.resolve_command(None, "echo"),
            Err(CommandLookupError::Ambiguous("echo".into()))
        );
        assert_eq!(
            c.resolve_command(Some("nope"), "echo"),
            Err(CommandLookupError::UnknownCluster("nope".into()))
        );
        assert_eq!(
            c.resolve_command(Some("basic"), "allow"),
            Err(CommandLookupError::UnknownCommand("basic::allow".into()))
        );
    }

    #[test]
    fn rejects_bad_configs_with_the_key_named() {
        let cases = [
            (GOOD.replace("name = \"web1\"", "name = \"Web1\""), "host.name"),
            (
                GOOD.replace("[\"firewall\"]", "[\"shell\"]"),
                "unknown capability \"shell\"",
            ),
            (
                GOOD.replace("timeout_ms = 2000", "timeout_ms = 0"),
                "greater than zero",
            ),
            (
                GOOD.replace("timeout_ms = 2000", "timeout = 2000"),
                "unknown field `timeout`",
            ),
            (GOOD.replace("127.0.0.1:7443", "localhost"), "quic.listen"),
            (
                GOOD.replace("name = \"web1\"", "name = \"web1\"\ndecision_cache = 100001"),
                "host.decision_cache: at most 100000 decisions",
            ),
            (
                GOOD.replace("echo = \"modules/echo.wasm\"\n", "\"Echo!\" = \"x.wasm\"\n"),
                "clusters.basic.commands",
            ),
            (
                format!("{GOOD}\n[firewall]\nbackend = \"iptables\""),
                "unknown variant `iptables`",
            ),
            (
                format!("{GOOD}\n[firewall]\nmax_ttl_s = 0"),
                "firewall: max_ttl_s",
            ),
            (
                format!("{GOOD}\n[firewall]\nufw = \"ufw\""),
                "firewall.ufw: ufw must be an absolute path",
            ),
            (
                format!("{GOOD}\n[firewall]\nports = [22]"),
                "unknown field `ports`",
            ),
            (
                format!("{GOOD}\n[salt]\ntimeout_s = 0"),
                "salt.timeout_s: must be between 1 and 3600",
            ),
            (
                format!("{GOOD}\n[salt]\nstates = [\"motd\"]"),
                "unknown field `states`",
            ),
            (
                format!("{GOOD}\n[hostkeys]\nfiles = [\"a.pub\"]"),
                "unknown field `files`",
            ),
        ];
        for (text, needle) in cases {
            let err = parse(&text).expect_err(needle).to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
            assert!(
                err.starts_with("/etc/sesame/sesamed.toml"),
                "{err:?} names the file"
            );
        }
    }
}
