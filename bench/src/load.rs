//! The load generator: many requests in flight at once against one host, from this process,
//! over QUIC, the way `sesame` sends them (one stream per request, sealed end to end).
//!
//! The same code drives the floor (`floor-server`, a bare QUIC echo with the daemon's QUIC
//! settings) in *raw* mode: the payload is sent as it is, with no sealing, no policy and no
//! sandbox on either side, so the difference between the two is sesame's own cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sesame_client::{ClientHome, HostEntry, Session};
use sesame_proto::{Domain, Envelope, Response, Sealer, Status};

use crate::stats::{percentile, summary};

/// Requests in flight per QUIC connection: more concurrency opens more connections (as more
/// clients would), at least one.
pub const STREAMS_PER_CONNECTION: usize = 32;
/// How long one request may take before the run is abandoned.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What to send and what to expect back.
#[derive(Debug)]
pub struct Target {
    host: HostEntry,
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    /// A sealed request for a command whose output is known.
    Sesame {
        sealer: Arc<Sealer>,
        alias: String,
        cluster: Option<String>,
        command: String,
        args: Vec<String>,
        /// Whether `echo`'s output is checked (it answers with its arguments).
        echo: bool,
        /// When set, a counter appended to the last argument so no two requests are alike.
        distinct: Option<AtomicU64>,
    },
    /// Bytes to send to the floor, which sends them back.
    Raw { payload: Vec<u8> },
}

impl Target {
    /// The pinned host `alias` from `$SESAME_HOME`. `command` is `[cluster::]name args...`; in
    /// raw mode it only sets the payload's size (that of the sealed request), and the answer must
    /// be the payload itself.
    ///
    /// With `distinct`, the last argument (one is added if there is none) gets a counter appended,
    /// so no two requests have the same input and the daemon evaluates every policy decision
    /// rather than remembering one.
    pub fn from_home(alias: &str, command: &[String], raw: bool, distinct: bool) -> anyhow::Result<Self> {
        let home = ClientHome::from_env()?;
        let host = home.host(alias)?;
        let sealer = Arc::new(Sealer::new(home.key()?));
        let (name, args) = command.split_first().context("no command")?;
        let (cluster, name) = name
            .split_once("::")
            .map_or((None, name.as_str()), |(c, n)| (Some(c.to_owned()), n));
        let mut args = args.to_vec();
        if distinct && args.is_empty() {
            args.push(String::new());
        }
        let mode = Mode::Sesame {
            sealer,
            alias: alias.to_owned(),
            cluster,
            command: name.to_owned(),
            args,
            echo: name == "echo",
            distinct: distinct.then(|| AtomicU64::new(0)),
        };
        let mut target = Self { host, mode };
        if raw {
            let size = target.sealed()?.0.len();
            let mut payload = vec![0u8; size];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut payload);
            target.mode = Mode::Raw { payload };
        }
        Ok(target)
    }

    /// The next request, sealed, and the output `echo` must answer it with (when checked).
    fn sealed(&self) -> anyhow::Result<(Vec<u8>, Option<String>)> {
        match &self.mode {
            Mode::Sesame {
                sealer,
                alias,
                cluster,
                command,
                args,
                echo,
                distinct,
            } => {
                let mut args = args.clone();
                if let (Some(counter), Some(last)) = (distinct, args.last_mut()) {
                    last.push_str(&format!("-{}", counter.fetch_add(1, Ordering::Relaxed)));
                }
                let request = crate::new_request(&self.host, alias, cluster.as_deref(), command, &args);
                let sealed = sealer.seal(
                    Domain::Request,
                    &self.host.key,
                    &mut rand_core::OsRng,
                    &request.encode(),
                )?;
                Ok((sealed, echo.then(|| args.join(" "))))
            }
            Mode::Raw { payload } => Ok((payload.clone(), None)),
        }
    }

    /// One request on `session`, checked. Returns the host's own time for it (the response's
    /// `duration_us`: from decoding the envelope to the response being built), or `None` from
    /// the floor, which does not say.
    pub async fn one(&self, session: &Session) -> anyhow::Result<Option<Duration>> {
        let (sealed, expect) = self.sealed()?;
        let reply = session.exchange(&sealed, REQUEST_TIMEOUT).await?;
        match &self.mode {
            Mode::Raw { payload } => {
                if reply != *payload {
                    bail!("the floor answered {} bytes, not the payload", reply.len());
                }
                Ok(None)
            }
            Mode::Sesame { sealer, .. } => {
                let host_key = self.host.key;
                let plaintext =
                    sealer.open(Domain::Response, &Envelope::decode(&reply)?, |k| *k == host_key)?;
                let response = Response::decode(&plaintext)?;
                if response.status != Status::Ok {
                    bail!("error {}: {}", response.code.as_u16(), response.message);
                }
                if let Some(expect) = expect
                    && response.output != expect
                {
                    bail!("unexpected output {:?}", response.output);
                }
                Ok(Some(Duration::from_micros(response.duration_us)))
            }
        }
    }

    /// Sends to `addr` instead of the host's own address (a floor server with its certificate).
    pub fn set_addr(&mut self, addr: String) {
        self.host.addr = Some(addr);
    }

    /// The host entry (to open sessions).
    pub fn host(&self) -> &HostEntry {
        &self.host
    }
}

/// Runs `concurrency` requests in flight at once for `warmup` and then `measure`, and prints
/// `load c=… conns=… n=… rps=… p50_us=…` for the measured part.
pub async fn run_level(
    target: &Arc<Target>,
    concurrency: usize,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<()> {
    let conns = concurrency.div_ceil(STREAMS_PER_CONNECTION).max(1);
    let mut sessions = Vec::with_capacity(conns);
    for _ in 0..conns {
        sessions.push(Arc::new(Session::connect(target.host()).await?));
    }
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measure;
    let mut workers = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let target = Arc::clone(target);
        let session = Arc::clone(&sessions[i % conns]);
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut host = Vec::new();
            loop {
                let started = Instant::now();
                if started >= end {
                    return Ok::<_, anyhow::Error>((samples, host));
                }
                let host_time = target.one(&session).await?;
                if started >= measure_from {
                    samples.push(started.elapsed());
                    host.extend(host_time);
                }
            }
        }));
    }
    let (mut samples, mut host) = (Vec::new(), Vec::new());
    for w in workers {
        let (s, h) = w.await.context("load worker")??;
        samples.extend(s);
        host.extend(h);
    }
    for s in sessions {
        if let Ok(s) = Arc::try_unwrap(s) {
            s.close().await;
        }
    }
    if samples.is_empty() {
        bail!("no request completed in {measure:?}");
    }
    let rps = samples.len() as f64 / measure.as_secs_f64();
    // The host's share of the latency, when it reports one: the rest is the wire, QUIC and the
    // hand-offs between tasks and threads on both sides.
    let host = if host.is_empty() {
        String::new()
    } else {
        host.sort_unstable();
        format!(
            " host_p50_us={} host_p99_us={}",
            percentile(&host, 0.50).as_micros(),
            percentile(&host, 0.99).as_micros()
        )
    };
    println!(
        "load c={concurrency} conns={conns} rps={rps:.0} {}{host}",
        summary(samples)
    );
    Ok(())
}

/// The cost of a new connection: `count` times connect (handshake, certificate pin), one
/// request, close. Prints `connect n=… p50_us=…`.
pub async fn connect(target: &Target, count: usize, warmup: usize) -> anyhow::Result<()> {
    let mut samples = Vec::with_capacity(count);
    for i in 0..warmup + count {
        let started = Instant::now();
        let session = Session::connect(target.host()).await?;
        target.one(&session).await?;
        let elapsed = started.elapsed();
        session.close().await;
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    println!("connect {}", summary(samples));
    Ok(())
}
