//! A real, local SQS: moto's server (`scripts/moto-venv` installs it), one per test, on a free
//! loopback port, with static dummy credentials.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sesame_sqs::{Queue, Settings};

/// The region the tests use.
pub const REGION: &str = "us-east-1";

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    rt: tokio::runtime::Runtime,
}

/// The moto_server program: `SESAME_MOTO_SERVER`, else where `scripts/moto-venv` puts it by default
/// (`$SESAME_TOOLS/moto-5`, `SESAME_TOOLS` defaulting to `~/.cache/sesame/tools` as in
/// `scripts/tools.sh`).
pub fn moto_server() -> PathBuf {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let path = var("SESAME_MOTO_SERVER").unwrap_or_else(|| {
        let tools = var("SESAME_TOOLS").unwrap_or_else(|| {
            var("XDG_CACHE_HOME")
                .or_else(|| var("HOME").map(|home| home.join(".cache")))
                .unwrap_or_default()
                .join("sesame/tools")
        });
        tools.join("moto-5/bin/moto_server")
    });
    assert!(
        path.exists(),
        "{} is missing: run scripts/moto-venv (scripts/test does), or set SESAME_MOTO_SERVER",
        path.display()
    );
    path
}

/// A free TCP port on loopback (free when this returns; the caller binds it soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The environment that makes the standard AWS credential chain find moto's dummy keys.
pub fn env() -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl Moto {
    /// Starts a server on a free port and waits until it answers.
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts a server on `port` and waits until it answers.
    pub fn start_on(port: u16) -> Self {
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let moto = Self {
            child: Some(child),
            port,
            rt,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a daemon or client needs to reach it: dummy static credentials (the
    /// standard variables, so the standard credential chain is what is exercised).
    pub fn env(&self) -> Vec<(String, String)> {
        env()
    }

    /// An `[sqs]` section for a daemon serving `queue` on this server.
    pub fn daemon_section(&self, queue: &str) -> String {
        format!(
            "[sqs]\nqueue = \"{queue}\"\nregion = \"{REGION}\"\nendpoint_url = \"{}\"\nvisibility_timeout_s = 10\nwait_time_s = 2\n",
            self.endpoint()
        )
    }

    /// Settings to reach it from this process (credentials come from [`Moto::env`]'s values,
    /// passed explicitly: tests do not change their own environment).
    pub fn settings(&self) -> Settings {
        Settings {
            region: Some(REGION.to_owned()),
            endpoint_url: Some(self.endpoint()),
            profile: None,
        }
    }

    /// Runs `f` with an SQS client for this server.
    pub fn with_client<T>(&self, f: impl AsyncFnOnce(&sesame_sqs::Client) -> T) -> T {
        self.rt.block_on(async {
            let client =
                sesame_sqs::client_with_keys(&self.settings(), Duration::from_secs(10), "test", "test").await;
            f(&client).await
        })
    }

    /// Creates a queue; returns it.
    pub fn create_queue(&self, name: &str) -> Queue {
        self.with_client(async |c| Queue::open_or_create(c, name, &[]).await.expect("create queue"))
    }

    /// Runs a future on this harness's runtime.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Stops the server (its queues are gone with it).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
