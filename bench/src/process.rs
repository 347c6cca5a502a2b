//! Whole commands timed from the outside: `ssh host cmd`, `sesame run host cmd`, or a bare
//! fork/exec — what a person or a script waits for per command, process start included.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::stats::summary;

/// Runs `argv` `warmup + count` times, `concurrency` at once, each to completion; every run must
/// exit 0 and, with `expect`, print exactly that on stdout. Prints
/// `time c=… rps=… n=… p50_us=…` (latency per command; commands per second overall).
pub fn time(
    argv: &[String],
    count: usize,
    warmup: usize,
    concurrency: usize,
    expect: Option<&str>,
) -> anyhow::Result<()> {
    let (program, args) = argv.split_first().context("no command to time")?;
    if count == 0 || concurrency == 0 {
        bail!("--count and --concurrency must be at least 1");
    }
    let once = || -> anyhow::Result<Duration> {
        let started = Instant::now();
        let out = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("starting {program}"))?;
        let elapsed = started.elapsed();
        if !out.status.success() {
            bail!(
                "{program} exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        if let Some(expect) = expect
            && out.stdout != expect.as_bytes()
        {
            bail!("{program} printed {:?}", String::from_utf8_lossy(&out.stdout));
        }
        Ok(elapsed)
    };
    for _ in 0..warmup {
        once()?;
    }
    let per_thread = count.div_ceil(concurrency);
    let started = Instant::now();
    let samples = std::thread::scope(|s| {
        let threads: Vec<_> = (0..concurrency)
            .map(|_| {
                s.spawn(|| {
                    (0..per_thread)
                        .map(|_| once())
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().map_err(|_| anyhow::anyhow!("timing thread panicked"))?)
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let wall = started.elapsed();
    let samples: Vec<Duration> = samples.into_iter().flatten().collect();
    let rps = samples.len() as f64 / wall.as_secs_f64();
    println!("time c={concurrency} rps={rps:.0} {}", summary(samples));
    Ok(())
}

/// Runs `argv` once, reading its standard output as it comes: every `tick I UNIX_US` line (the
/// `ticker` test module's, `UNIX_US` its wall clock when it logged the line) is timed from then to
/// when it was read here, on the same machine's clock. Prints `stream n=… p50_us=…`; the command
/// must exit 0 and print at least one such line.
pub fn stream(argv: &[String]) -> anyhow::Result<()> {
    use std::io::BufRead as _;
    let (program, args) = argv.split_first().context("no command to run")?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let stdout = std::io::BufReader::new(child.stdout.take().context("stdout")?);
    let mut delays = Vec::new();
    for line in stdout.lines() {
        let line = line?;
        let arrived = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        let mut words = line.split(' ');
        if words.next() != Some("tick") {
            continue;
        }
        let logged: u64 = words
            .nth(1)
            .and_then(|w| w.parse().ok())
            .with_context(|| format!("a tick line without its time: {line:?}"))?;
        delays.push(arrived.saturating_sub(Duration::from_micros(logged)));
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{program} exited with {status}");
    }
    if delays.is_empty() {
        bail!("{program} printed no tick lines");
    }
    println!("stream {}", summary(delays));
    Ok(())
}
