//! Harness for the end-to-end tests: starts a real `sesamed` in a temporary directory with a
//! generated configuration, and drives the real `sesame` binary against it.
//!
//! The binaries come from the workspace's target directory (`cargo build --workspace --bins`
//! first; `scripts/test` does) and the modules from `commands/` (`commands/build`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod moto;
pub mod ssh_keys;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A workspace binary (`sesamed`, `sesame`), built next to the running test.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (scripts/test does)",
        path.display()
    );
    path
}

/// A command module built by `commands/build`.
pub fn module(name: &str) -> PathBuf {
    let path = repo_root()
        .join("commands/target/wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.exists(),
        "{} is missing: run commands/build (scripts/test does)",
        path.display()
    );
    path
}

/// How a test daemon is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// `[clusters.*]` sections, TOML, appended to the generated config.
    pub clusters: String,
    /// Replaces `policies/data.json` when set.
    pub policy_data: Option<String>,
    /// The `[firewall]` section. The default is the dry-run back end: tests outside a private
    /// network namespace must never change the machine's firewall.
    pub firewall: String,
    /// The QUIC listen address (port 0: any free port); empty for no `[quic]` section.
    pub listen: String,
    /// An `[sqs]` section, if the daemon serves a queue.
    pub sqs: Option<String>,
    /// Extra environment for the daemon (AWS credentials for a local SQS server).
    pub env: Vec<(String, String)>,
}

/// The `[firewall]` section tests use unless they run in a private network namespace.
pub const DRY_RUN_FIREWALL: &str = "[firewall]\nbackend = \"dry-run\"\n";

impl Default for Setup {
    fn default() -> Self {
        let clusters = format!(
            "[clusters.basic.commands]\necho = {:?}\nwhoami = {:?}\n\n[clusters.testing.commands]\nspin = {:?}\npanic = {:?}\n",
            module("echo"),
            module("whoami"),
            module("spin"),
            module("panic"),
        );
        Self {
            clusters,
            policy_data: None,
            firewall: DRY_RUN_FIREWALL.to_owned(),
            listen: "127.0.0.1:0".to_owned(),
            sqs: None,
            env: Vec::new(),
        }
    }
}

/// A running daemon in its own temporary directory.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    env: Vec<(String, String)>,
    /// The temporary directory holding config, state, policies and logs.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// The QUIC address it listens on.
    pub addr: SocketAddr,
    /// `sesamed show` output: host key.
    pub host_key: String,
    /// `sesamed show` output: the SHA-256 of the key the next `rotate-key` moves to.
    pub next_key_sha256: String,
    /// `sesamed show` output: certificate fingerprint.
    pub cert_sha256: String,
}

/// The daemon's host name in tests.
pub const HOST: &str = "testhost";

impl Daemon {
    /// Writes a config (port 0), initialises keys, and starts `sesamed serve`.
    pub fn start(setup: &Setup) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Self::prepare(dir.path(), setup);
        let (host_key, next_key_sha256, cert_sha256) = show(&config);
        let (child, addr) = spawn_serve(dir.path(), &config, &setup.env);
        Self {
            child: Some(child),
            env: setup.env.clone(),
            dir,
            config,
            addr,
            host_key,
            next_key_sha256,
            cert_sha256,
        }
    }

    /// Kills the daemon with SIGKILL (no shutdown of any kind) and waits for it to be gone.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL sesamed");
            child.wait().expect("reap sesamed");
        }
    }

    /// Stops the daemon with SIGTERM (a graceful shutdown) and returns how it exited.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the daemon is running");
        let out = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .output()
            .expect("run kill");
        assert!(
            out.status.success(),
            "kill -TERM: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        child.wait().expect("reap sesamed")
    }

    /// What `sesame host add --key` takes: `KEY:NEXT_SHA256`.
    pub fn pin_token(&self) -> String {
        format!("{}:{}", self.host_key, self.next_key_sha256)
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the daemon is running").id()
    }

    /// `sesamed ARGS --config CONFIG`.
    pub fn sesamed(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.push("--config");
        sesamed(&all, &[self.config.as_os_str()])
    }

    /// Starts the daemon again on the same directory (after [`Daemon::kill_hard`]); it listens
    /// on a new port, so clients must pin it again.
    pub fn restart(&mut self) {
        self.kill_hard();
        let (child, addr) = spawn_serve(self.dir.path(), &self.config, &self.env);
        self.child = Some(child);
        self.addr = addr;
    }

    /// Writes the config, policies and keys into `dir`; returns the config path.
    pub fn prepare(dir: &Path, setup: &Setup) -> PathBuf {
        let policies = dir.join("policies");
        std::fs::create_dir_all(&policies).expect("mkdir");
        for entry in std::fs::read_dir(repo_root().join("policies")).expect("policies/") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_file() {
                std::fs::copy(entry.path(), policies.join(entry.file_name())).expect("copy policy");
            }
        }
        if let Some(data) = &setup.policy_data {
            std::fs::write(policies.join("data.json"), data).expect("write data");
        }
        let config = dir.join("sesamed.toml");
        let quic = if setup.listen.is_empty() {
            String::new()
        } else {
            format!("[quic]\nlisten = \"{}\"\n", setup.listen)
        };
        let text = format!(
            "[host]\nname = \"{HOST}\"\nstate_dir = \"state\"\npolicies = \"policies\"\n\n{quic}\n{}\n{}\n{}",
            setup.sqs.as_deref().unwrap_or_default(),
            setup.firewall,
            setup.clusters
        );
        std::fs::write(&config, text).expect("write config");
        let out = sesamed(&["init"], &[dir.join("state").as_os_str()]);
        assert!(
            out.status.success(),
            "sesamed init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        config
    }

    /// A new client enrolled as `name` in `groups`, with this daemon pinned as `web`.
    pub fn client(&self, name: &str, groups: &[&str]) -> Client {
        let client = Client::new();
        self.enrol(name, &client.key, groups);
        client.pin(self, "web");
        client
    }

    /// Enrols `key` as client `name` in `groups`.
    pub fn enrol(&self, name: &str, key: &str, groups: &[&str]) {
        let mut args = vec!["client", "add", name, "--key", key, "--config"];
        let cfg = self.config.to_str().expect("utf-8 path");
        args.push(cfg);
        for g in groups {
            args.extend(["--group", g]);
        }
        let out = sesamed(&args, &[]);
        assert!(
            out.status.success(),
            "client add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Removes a client.
    pub fn remove(&self, name: &str) {
        let cfg = self.config.to_str().expect("utf-8 path");
        let out = sesamed(&["client", "remove", name, "--config", cfg], &[]);
        assert!(
            out.status.success(),
            "client remove: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The audit log's records.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("state/audit.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    /// Waits until an audit record satisfies `pred` (records are written as requests finish).
    pub fn wait_audit(&self, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = self.audit().into_iter().find(|r| pred(r)) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no audit record for {what}: {:#?}",
                self.audit()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Waits (up to 30 s) until the daemon's log contains `what`.
    pub fn wait_log(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log().contains(what) {
            assert!(
                Instant::now() < deadline,
                "the daemon never logged {what:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the daemon process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `sesamed serve` for `config`, logging (appending) to `dir/daemon.log`; returns it and
/// the address it announced.
fn spawn_serve(dir: &Path, config: &Path, env: &[(String, String)]) -> (Child, SocketAddr) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("daemon.log"))
        .expect("log");
    let mut child = Command::new(binary("sesamed"))
        .args(["serve", "--config"])
        .arg(config)
        .env("SESAME_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn sesamed");
    let addr = wait_listening(&mut child, dir);
    (child, addr)
}

/// The `[clusters.access]` section with the stock firewall modules (allow, revoke, grants).
pub fn access_cluster() -> String {
    format!(
        "[clusters.access]\ncapabilities = [\"firewall\"]\n[clusters.access.commands]\nallow = {:?}\nrevoke = {:?}\ngrants = {:?}\n",
        module("allow"),
        module("revoke"),
        module("grants"),
    )
}

/// The `[clusters.accounts]` section with the stock account modules.
pub fn accounts_cluster() -> String {
    let mut text =
        "[clusters.accounts]\ncapabilities = [\"users\"]\n[clusters.accounts.commands]\n".to_owned();
    for name in [
        "user-add",
        "user-lock",
        "user-unlock",
        "user-remove",
        "key-add",
        "key-remove",
        "group-add",
        "group-remove",
    ] {
        text.push_str(&format!("{name} = {:?}\n", module(name)));
    }
    text
}

/// The `[clusters.config]` section with the stock `salt-apply` module, and a `[salt]` section
/// that runs `salt_call` with the minion configuration in `config_dir`.
pub fn config_cluster(salt_call: &Path, config_dir: &Path) -> String {
    format!(
        "[clusters.config]\ncapabilities = [\"salt\"]\n[clusters.config.commands]\nsalt-apply = {:?}\n\n[salt]\nsalt_call = {:?}\nconfig_dir = {:?}\n",
        module("salt-apply"),
        salt_call,
        config_dir,
    )
}

/// A daemon with the default setup and one client enrolled in `groups`, pinned as `web`.
pub fn daemon_with_client(name: &str, groups: &[&str]) -> (Daemon, Client) {
    let daemon = Daemon::start(&Setup::default());
    let client = daemon.client(name, groups);
    (daemon, client)
}

/// A client with its own `SESAME_HOME`.
#[derive(Debug)]
pub struct Client {
    /// The client's directory.
    pub home: tempfile::TempDir,
    /// Its public key.
    pub key: String,
    /// Extra environment for `sesame` (AWS credentials for a local SQS server).
    pub env: Vec<(String, String)>,
}

impl Client {
    /// A client with a fresh key.
    pub fn new() -> Self {
        let home = tempfile::tempdir().expect("tempdir");
        let c = Self {
            home,
            key: String::new(),
            env: Vec::new(),
        };
        let out = c.sesame(&["keygen"]);
        assert!(
            out.status.success(),
            "keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        Self { key, ..c }
    }

    /// Pins `daemon` under `alias`.
    pub fn pin(&self, daemon: &Daemon, alias: &str) {
        self.pin_with(daemon, alias, &daemon.cert_sha256);
    }

    /// Pins `daemon` with a given certificate fingerprint (to test mismatches).
    pub fn pin_with(&self, daemon: &Daemon, alias: &str, cert_sha256: &str) {
        self.pin_at(daemon, alias, daemon.addr, cert_sha256);
    }

    /// Pins `daemon`, reached at `addr` (when it listens on a wildcard address), by its key and
    /// its next key's digest, as `sesamed show` prints them.
    pub fn pin_at(&self, daemon: &Daemon, alias: &str, addr: SocketAddr, cert_sha256: &str) {
        let addr = addr.to_string();
        let key = daemon.pin_token();
        let mut args = vec![
            "host",
            "add",
            alias,
            "--addr",
            &addr,
            "--key",
            &key,
            "--cert-sha256",
            cert_sha256,
        ];
        if alias != HOST {
            args.extend(["--host-name", HOST]);
        }
        let out = self.sesame(&args);
        assert!(
            out.status.success(),
            "host add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `sesame ARGS` with this client's home.
    pub fn sesame(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run sesame")
    }

    /// `sesame ARGS` as this client, to spawn (to read its output as it comes, or stop it).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary("sesame"));
        command
            .args(args)
            .env("SESAME_HOME", self.home.path())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs `sesame ARGS`, which must succeed; returns its standard output.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self.sesame(args);
        assert!(
            out.status.success(),
            "sesame {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `sesame ARGS`, which must fail; returns its standard error.
    pub fn run_err(&self, args: &[&str]) -> String {
        let out = self.sesame(args);
        assert!(!out.status.success(), "sesame {args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Runs `sesame ARGS` with this client's home inside the named network namespace
    /// (`ip netns exec NETNS`), as a client on another machine would.
    pub fn sesame_in(&self, netns: &str, args: &[&str]) -> Output {
        Command::new("/usr/sbin/ip")
            .args(["netns", "exec", netns])
            .arg(binary("sesame"))
            .args(args)
            .env("SESAME_HOME", self.home.path())
            .output()
            .expect("run sesame in a network namespace")
    }

    /// The client's library view of its home (for raw-envelope tests).
    pub fn home(&self) -> sesame_client::ClientHome {
        sesame_client::ClientHome::at(self.home.path())
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `sesamed ARGS EXTRA`.
pub fn sesamed(args: &[&str], extra: &[&std::ffi::OsStr]) -> Output {
    Command::new(binary("sesamed"))
        .args(args)
        .args(extra)
        .output()
        .expect("run sesamed")
}

/// `sesamed show`'s host key, next key digest and certificate fingerprint.
fn show(config: &Path) -> (String, String, String) {
    let out = sesamed(&["show", "--config"], &[config.as_os_str()]);
    assert!(
        out.status.success(),
        "sesamed show: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(label))
            .and_then(|v| v.split_whitespace().next())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no {label} in {text}"))
    };
    (field("host key:"), field("next key:"), field("cert sha256:"))
}

fn wait_listening(child: &mut Child, dir: &Path) -> SocketAddr {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.trim().to_owned());
            } else if line.starts_with("polling SQS queue ") {
                // An SQS-only daemon listens nowhere (with QUIC too, its line came first).
                let _ = tx.send("0.0.0.0:0".to_owned());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => addr.parse().expect("address"),
        Err(_) => {
            let _ = child.kill();
            panic!(
                "sesamed did not start: {}",
                std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
            )
        }
    }
}
