//! A real OpenSSH sshd for the system tests, and the real `ssh` to reach it.
//!
//! [`Sshd::start`] writes an sshd configuration of its own ([`SshdConfig`]: host keys, the
//! address, `AuthorizedKeysFile`, more lines) into a directory of its own, validates it with
//! `sshd -t`, starts `sshd -D -e` on a free port and waits until it listens. [`Sshd::stop`] (and
//! dropping it) kills it and every process it started (one per connection, and their
//! sessions), and waits until they are gone: no sshd outlives its test. [`Ssh`] runs `ssh`
//! with nothing of the machine's own configuration, keys, agent or known hosts.
//!
//! Only inside the private namespace ([`crate::require_private_namespace`]): sshd needs root,
//! and its privilege separation directory `/run/sshd` is made there, on the namespace's own
//! `/run`. Files sshd checks with `StrictModes` (an `AuthorizedKeysFile` outside a home) must
//! sit in directories only root can write: [`scratch_dir`] makes one.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The sshd the tests run.
pub const SSHD: &str = "/usr/sbin/sshd";

/// How an [`Sshd`] is configured.
#[derive(Debug, Clone)]
pub struct SshdConfig {
    /// The private host keys (`HostKey`); their `.pub` files are next to them.
    pub host_keys: Vec<PathBuf>,
    /// `AuthorizedKeysFile`: an absolute path, or one relative to the user's home
    /// (`.ssh/authorized_keys`, sshd's default); `%u` and `%h` are sshd's tokens.
    pub authorized_keys: String,
    /// The address it listens on.
    pub listen: IpAddr,
    /// More `sshd_config` lines. They come before the harness's own, and sshd takes the first
    /// value it reads for a keyword, so they override them (`PermitRootLogin no`,
    /// `LogLevel DEBUG3`); no `Match` blocks.
    pub extra: Vec<String>,
}

impl SshdConfig {
    /// Every `ssh_host_*_key` in `host_key_dir` as host keys, `authorized_keys` as
    /// `AuthorizedKeysFile`, on 127.0.0.1, with nothing extra.
    pub fn new(host_key_dir: &Path, authorized_keys: &str) -> Self {
        let mut host_keys: Vec<PathBuf> = std::fs::read_dir(host_key_dir)
            .expect("the host key directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("ssh_host_") && n.ends_with("_key"))
            })
            .collect();
        host_keys.sort();
        assert!(
            !host_keys.is_empty(),
            "no ssh_host_*_key in {}",
            host_key_dir.display()
        );
        Self {
            host_keys,
            authorized_keys: authorized_keys.to_owned(),
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            extra: Vec::new(),
        }
    }

    /// The `sshd_config` text for `port`: root may log in by key only, no password, no PAM
    /// (the namespace has no session to open), no DNS, logging what each login did.
    fn text(&self, port: u16) -> String {
        let mut lines = self.extra.clone();
        lines.push(format!("Port {port}"));
        lines.push(format!("ListenAddress {}", self.listen));
        for key in &self.host_keys {
            lines.push(format!("HostKey {}", key.display()));
        }
        lines.extend([
            format!("AuthorizedKeysFile {}", self.authorized_keys),
            "PermitRootLogin prohibit-password".to_owned(),
            "PubkeyAuthentication yes".to_owned(),
            "PasswordAuthentication no".to_owned(),
            "KbdInteractiveAuthentication no".to_owned(),
            "UsePAM no".to_owned(),
            "UseDNS no".to_owned(),
            "PidFile none".to_owned(),
            "PrintMotd no".to_owned(),
            "LogLevel VERBOSE".to_owned(),
        ]);
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }
}

/// A running sshd; stopped, with everything it started, when dropped.
#[derive(Debug)]
pub struct Sshd {
    child: Option<Child>,
    listen: IpAddr,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sshd {
    /// Starts sshd with `config` on a free port, once `sshd -t` accepts the configuration;
    /// returns when it listens.
    pub fn start(config: &SshdConfig) -> Self {
        crate::require_private_namespace();
        privilege_separation_dir();
        let dir = scratch_dir();
        let port = free_tcp_port(config.listen);
        let file = dir.path().join("sshd_config");
        std::fs::write(&file, config.text(port)).expect("write sshd_config");
        let test = Command::new(SSHD)
            .arg("-t")
            .arg("-f")
            .arg(&file)
            .output()
            .expect("sshd -t");
        assert!(
            test.status.success(),
            "sshd -t refuses the configuration: {}\n{}",
            String::from_utf8_lossy(&test.stderr),
            config.text(port)
        );
        let log = std::fs::File::create(dir.path().join("sshd.log")).expect("sshd.log");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let mut sshd = Self {
            child: Some(child),
            listen: config.listen,
            port,
            dir,
        };
        let listening = format!("Server listening on {} port {port}", config.listen);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sshd.log().contains(&listening) {
            let exited = sshd.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            assert!(exited.is_none(), "sshd exited ({exited:?}): {}", sshd.log());
            assert!(Instant::now() < deadline, "sshd is not listening: {}", sshd.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        sshd
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The ids of the listener and of every process it started (one per connection, and
    /// their sessions) that are alive now.
    pub fn processes(&self) -> Vec<u32> {
        let Some(child) = &self.child else {
            return Vec::new();
        };
        let mut pids = vec![child.id()];
        pids.extend(descendants(child.id()));
        pids.retain(|&p| alive(p));
        pids
    }

    /// What it has logged (`-e`: its log goes to standard error, kept in a file).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Kills sshd and every process it started, and waits until all are gone and the port takes
    /// no connection; panics if one is left.
    pub fn stop(&mut self) {
        let left = self.kill();
        assert!(
            left.is_empty(),
            "sshd processes left behind: {left:?}\n{}",
            self.log()
        );
        let probe = SocketAddr::new(
            if self.listen.is_unspecified() {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                self.listen
            },
            self.port,
        );
        assert!(
            TcpStream::connect_timeout(&probe, Duration::from_secs(1)).is_err(),
            "something still listens on {probe}"
        );
    }

    /// SIGKILLs the listener and its descendants (by process id, each one it started), reaps
    /// the listener, and returns the ids of those still alive after five seconds.
    fn kill(&mut self) -> Vec<u32> {
        let Some(mut child) = self.child.take() else {
            return Vec::new();
        };
        let mut pids = descendants(child.id());
        pids.push(child.id());
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status();
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let alive: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
            if alive.is_empty() || Instant::now() > deadline {
                return alive;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // No panic here (a failed test is already unwinding): stop() is the checked way.
        let left = self.kill();
        if !left.is_empty() {
            eprintln!("sshd processes left behind: {left:?}");
        }
    }
}

/// `ssh` with none of the machine's or the user's configuration: `-F /dev/null`, one identity,
/// no agent, batch mode, its own known hosts file, no global one.
#[derive(Debug, Clone)]
pub struct Ssh {
    identity: PathBuf,
    known_hosts: PathBuf,
    options: Vec<String>,
    env: Vec<(String, String)>,
}

impl Ssh {
    /// `ssh -i identity -o UserKnownHostsFile=known_hosts`, and nothing else of the machine's.
    pub fn new(identity: &Path, known_hosts: &Path) -> Self {
        Self {
            identity: identity.to_owned(),
            known_hosts: known_hosts.to_owned(),
            options: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Adds `-o OPTION` (`StrictHostKeyChecking=yes`, `ProxyCommand=…`).
    #[must_use]
    pub fn option(mut self, option: &str) -> Self {
        self.options.push(option.to_owned());
        self
    }

    /// Sets an environment variable for ssh and the commands it runs (`SESAME_HOME`).
    #[must_use]
    pub fn env(mut self, key: &str, value: &Path) -> Self {
        self.env.push((key.to_owned(), value.display().to_string()));
        self
    }

    /// Runs `ssh -p PORT DESTINATION COMMAND` (`root@web1`, `echo hi`) to its end.
    pub fn run(&self, port: u16, destination: &str, command: &str) -> Output {
        self.command(port, destination, command)
            .output()
            .expect("run ssh")
    }

    /// `ssh -p PORT DESTINATION COMMAND`, to start (standard input: nothing).
    pub fn command(&self, port: u16, destination: &str, command: &str) -> Command {
        let known_hosts = format!("UserKnownHostsFile={}", self.known_hosts.display());
        let mut ssh = Command::new("/usr/bin/ssh");
        ssh.args(["-F", "/dev/null", "-i"])
            .arg(&self.identity)
            .args(["-p", &port.to_string()])
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
            .args(["-o", &known_hosts, "-o", "GlobalKnownHostsFile=/dev/null"])
            .args(["-o", "UpdateHostKeys=no", "-o", "ConnectTimeout=10"]);
        for option in &self.options {
            ssh.args(["-o", option]);
        }
        ssh.args([destination, command])
            .env_remove("SSH_AUTH_SOCK")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        ssh
    }
}

/// A fresh directory under `/run` (the namespace's own tmpfs, writable by root only), for files
/// sshd checks with `StrictModes`; removed on drop.
pub fn scratch_dir() -> tempfile::TempDir {
    crate::require_private_namespace();
    tempfile::Builder::new()
        .prefix("sesame-sshd-")
        .tempdir_in("/run")
        .expect("a directory in /run")
}

/// Makes a login account `name` (bash, a password field sshd does not read as locked) whose
/// `~/.ssh/authorized_keys` holds `public`, for tests that log in through a real sshd started
/// with `AuthorizedKeysFile .ssh/authorized_keys`. Tests log in as such an account, never as
/// root: root's shell start-up belongs to the machine (its `.bashrc` may wait on things of its
/// own, as pyenv's rehash lock does for a minute).
pub fn login_account(name: &str, public: &str) {
    crate::require_private_namespace();
    crate::sh("useradd", &["--create-home", "--shell", "/bin/bash", name]);
    crate::sh("usermod", &["--password", "*", name]);
    let dir = format!("/home/{name}/.ssh");
    std::fs::create_dir(&dir).expect("mkdir ~/.ssh");
    std::fs::write(format!("{dir}/authorized_keys"), format!("{public}\n")).expect("authorized_keys");
    crate::sh("chown", &["-R", &format!("{name}:{name}"), &dir]);
    crate::sh("chmod", &["-R", "go-rwx", &dir]);
}

/// `/run/sshd`, which sshd needs to exist (root's, not writable by others) before it starts.
fn privilege_separation_dir() {
    let dir = Path::new("/run/sshd");
    if !dir.exists() {
        std::fs::create_dir(dir).expect("mkdir /run/sshd");
    }
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod /run/sshd");
}

/// A TCP port free on `addr` a moment ago.
fn free_tcp_port(addr: IpAddr) -> u16 {
    TcpListener::bind((addr, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The ids of every process descending from `pid`, from `/proc`.
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| {
            let id: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            Some((id, parent(id)?))
        })
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(child, _) in parents.iter().filter(|(_, parent)| *parent == p) {
            if !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// Process `pid`'s parent, from `/proc/PID/stat` (the field after the state, which follows
/// the command name's closing parenthesis).
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `pid` is a live process (not gone, not a zombie waiting to be reaped).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sesame_tests::ssh_keys;

    #[test]
    #[ignore = "starts a real sshd (needs root): run scripts/system-tests"]
    fn sshd_stops_with_every_session_it_started() {
        crate::require_private_namespace();
        let host_keys = tempfile::tempdir().expect("tempdir");
        let served = ssh_keys::host_keys(host_keys.path());
        let user = scratch_dir();
        let identity = user.path().join("id_ed25519");
        let public = ssh_keys::keygen(&identity, "ed25519", "test@laptop");
        login_account("lena", &public);
        let mut sshd = Sshd::start(&SshdConfig::new(host_keys.path(), ".ssh/authorized_keys"));
        let port = sshd.port();
        // The keys sshd serves, known beforehand: strict checking lets ssh in.
        let known_hosts = user.path().join("known_hosts");
        let lines: String = served
            .iter()
            .map(|k| format!("[127.0.0.1]:{port} {k}\n"))
            .collect();
        std::fs::write(&known_hosts, lines).expect("known_hosts");
        let ssh = Ssh::new(&identity, &known_hosts).option("StrictHostKeyChecking=yes");
        let out = ssh.run(port, "lena@127.0.0.1", "echo in");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "in\n",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        // A session still running when sshd is stopped goes with it.
        let mut session = ssh
            .command(port, "lena@127.0.0.1", "sleep 60")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh");
        let deadline = Instant::now() + Duration::from_secs(10);
        while sshd.log().matches("Accepted publickey").count() < 2 || sshd.processes().len() < 3 {
            assert!(Instant::now() < deadline, "no session: {}", sshd.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        let started = sshd.processes();
        sshd.stop();
        assert!(started.iter().all(|&p| !alive(p)), "{started:?}");
        let ended = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            session.try_wait().ok().flatten().is_some()
        });
        if !ended {
            let _ = session.kill();
        }
        let _ = session.wait();
        assert!(ended, "ssh's connection ended with sshd");
    }
}
