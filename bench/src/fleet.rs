//! A fleet at once (`bench/fleet`): one `sesame run --group` fanning out to many daemons, timed
//! from outside, and the SQS calls it costs.
//!
//! - `fleet-run --out FILE -- sesame run --group … --json …` runs the client once, its standard
//!   output kept in FILE, and prints what the run cost (wall time, and the kernel's own account of
//!   the client's CPU time and peak RSS) and what it said (hosts by outcome, the latency of each
//!   answer by transport).
//! - `create-queues` makes the hosts' request queues (an operator's job: the daemon never creates
//!   queues).
//! - `sqs-calls FILE` counts the SQS calls in a moto recording (moto's request recorder, one JSON
//!   object per call), by queue kind and action.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::stats::percentile;

/// The transports `sesame run --json` names in `via`, in the order their fields are printed.
const TRANSPORTS: [&str; 2] = ["quic", "sqs"];

/// Runs `argv` (a `sesame run --json` on many hosts) once, its standard output into `out`, and
/// prints `fleet exit=… wall_ms=… user_ms=… sys_ms=… maxrss_kib=… hosts=… ok=… …` (see
/// [`Report::fields`]), then `fleet-stopped WHY` when the client says it stopped the rollout.
/// With `hosts`, the client must have reported on exactly that many. A non-zero exit is
/// reported, not an error: runs with hosts down are meant to have one.
pub fn run(out: &Path, hosts: Option<usize>, argv: &[String]) -> anyhow::Result<()> {
    let (program, args) = argv.split_first().context("no command to run")?;
    let stdout = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .status()
        .with_context(|| format!("starting {program}"))?;
    let wall = started.elapsed();
    // This process has one child, and has waited for it: the children's account is its own.
    let usage = children_usage().context("getrusage")?;
    let Some(exit) = status.code() else {
        bail!("{program} did not exit by itself: {status}");
    };
    let text = std::fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
    let report = Report::parse(&text)?;
    if let Some(n) = hosts
        && report.hosts() != n
    {
        bail!(
            "{program} reported on {} hosts, not {n} (its output is in {})",
            report.hosts(),
            out.display()
        );
    }
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    println!(
        "fleet exit={exit} wall_ms={:.1} user_ms={:.1} sys_ms={:.1} maxrss_kib={} {}",
        wall.as_secs_f64() * 1e3,
        ms(usage.ru_utime),
        ms(usage.ru_stime),
        usage.ru_maxrss,
        report.fields()
    );
    if let Some(why) = &report.stopped {
        println!("fleet-stopped {why}");
    }
    Ok(())
}

/// The kernel's resource account of this process's children that have been waited for.
#[allow(unsafe_code)]
fn children_usage() -> std::io::Result<libc::rusage> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` writes one `rusage` through the pointer, which points to one we own;
    // RUSAGE_CHILDREN is a valid `who`. The zeroed value is a valid `rusage` already (integers
    // only), and filled in when the call succeeds.
    let (rc, usage) = unsafe {
        let rc = libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        (rc, usage.assume_init())
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(usage)
}

/// What `sesame run --json` said about each host, and its summary line if it printed one.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    /// Hosts whose command ran and succeeded.
    pub ok: usize,
    /// Hosts that answered with an error.
    pub failed: usize,
    /// Hosts asked that gave no answer (unreachable, timed out).
    pub no_answer: usize,
    /// Hosts the client never asked (the rollout stopped first).
    pub not_started: usize,
    /// Each answer's `elapsed_ms`, by transport (`via`); hosts without an answer are left out,
    /// their time is the timeout.
    pub answered: BTreeMap<String, Vec<Duration>>,
    /// Why the client stopped the rollout, when its summary says it did.
    pub stopped: Option<String>,
}

impl Report {
    /// Reads `sesame run --json`'s lines: one object per host, objects with `progress` (output
    /// as it comes) skipped, and a last `{"summary": …}`. When there is a summary, its counts
    /// must be the ones the host lines add up to.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut report = Self::default();
        let mut summary = None;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).with_context(|| format!("not JSON: {line:?}"))?;
            if v.get("progress").is_some() {
                continue;
            }
            if let Some(s) = v.get("summary") {
                summary = Some(s.clone());
                continue;
            }
            let (Some(_), Some(via)) = (v["host"].as_str(), v["via"].as_str()) else {
                bail!("a line that is neither a host, output nor the summary: {line}");
            };
            if v["started"] == Value::Bool(false) {
                report.not_started += 1;
            } else if v["ok"] == Value::Bool(true) {
                report.ok += 1;
            } else if v.get("error").is_some() {
                report.no_answer += 1;
            } else {
                report.failed += 1;
            }
            if v.get("code").is_some() {
                let ms = v["elapsed_ms"]
                    .as_u64()
                    .with_context(|| format!("no elapsed_ms: {line}"))?;
                report
                    .answered
                    .entry(via.to_owned())
                    .or_default()
                    .push(Duration::from_millis(ms));
            }
        }
        if let Some(s) = summary {
            let said = |k: &str| s[k].as_u64().and_then(|n| usize::try_from(n).ok());
            let counted = [
                ("ok", report.ok),
                ("failed", report.failed),
                ("no_answer", report.no_answer),
                ("not_started", report.not_started),
            ];
            for (key, n) in counted {
                if said(key) != Some(n) {
                    bail!("the summary says {key}={}, the host lines add up to {n}", s[key]);
                }
            }
            report.stopped = s["stopped"].as_str().map(str::to_owned);
        }
        for samples in report.answered.values_mut() {
            samples.sort_unstable();
        }
        Ok(report)
    }

    /// How many hosts the client reported on.
    pub fn hosts(&self) -> usize {
        self.ok + self.failed + self.no_answer + self.not_started
    }

    /// `hosts=… ok=… failed=… no_answer=… not_started=… stopped=0|1`, then for each transport
    /// `VIA_n=…` and, when it had answers, `VIA_p50_ms=… VIA_p90_ms=… VIA_p99_ms=… VIA_max_ms=…`.
    pub fn fields(&self) -> String {
        let mut line = format!(
            "hosts={} ok={} failed={} no_answer={} not_started={} stopped={}",
            self.hosts(),
            self.ok,
            self.failed,
            self.no_answer,
            self.not_started,
            u8::from(self.stopped.is_some())
        );
        for via in TRANSPORTS {
            let samples = self.answered.get(via).map_or(&[][..], Vec::as_slice);
            line.push_str(&format!(" {via}_n={}", samples.len()));
            if let Some(max) = samples.last() {
                for (name, p) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99)] {
                    line.push_str(&format!(
                        " {via}_{name}_ms={}",
                        percentile(samples, p).as_millis()
                    ));
                }
                line.push_str(&format!(" {via}_max_ms={}", max.as_millis()));
            }
        }
        line
    }
}

/// Makes the request queues `names` (those that exist are left as they are); prints
/// `queues n=…`.
pub async fn create_queues(settings: &sesame_sqs::Settings, names: &[String]) -> anyhow::Result<()> {
    let client = sesame_sqs::client(settings, Duration::from_secs(10)).await;
    for name in names {
        sesame_sqs::Queue::open_or_create(&client, name, &[]).await?;
    }
    println!("queues n={}", names.len());
    Ok(())
}

/// Prints `sqs-calls total=… KIND_ACTION=…` for the calls in a moto recording (see
/// [`count_calls`]); no recording at all is no calls.
pub fn sqs_calls(recording: &Path) -> anyhow::Result<()> {
    let text = match std::fs::read_to_string(recording) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", recording.display())),
    };
    let counts = count_calls(&text)?;
    let total: usize = counts.values().sum();
    let mut line = format!("sqs-calls total={total}");
    for (key, n) in &counts {
        line.push_str(&format!(" {key}={n}"));
    }
    println!("{line}");
    Ok(())
}

/// The calls in moto's recording (`MOTO_RECORDER_FILEPATH`: one object per request, with its
/// `headers` and `body`, base64 when `body_encoded`), counted by `KIND_ACTION`: KIND is `req`
/// for a host's request queue (`sesame-req-…`), `reply` for a client's reply queue
/// (`sesame-reply-…`), else `other`; ACTION is the SQS action (`ReceiveMessage`…), from the
/// JSON protocol's `X-Amz-Target` header or the query protocol's `Action` parameter.
pub fn count_calls(text: &str) -> anyhow::Result<BTreeMap<String, usize>> {
    use base64::Engine as _;
    let mut counts = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("not a recorded request: {line:?}"))?;
        let raw = v["body"].as_str().unwrap_or_default();
        let body = if v["body_encoded"] == Value::Bool(true) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(raw)
                .context("a recorded body that is not base64")?;
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            raw.to_owned()
        };
        let header = |name: &str| {
            v["headers"].as_object().and_then(|h| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .and_then(|(_, v)| v.as_str())
            })
        };
        let query = |key: &str| {
            let url = v["url"].as_str().unwrap_or_default();
            let params = url.split_once('?').map_or("", |(_, q)| q);
            [params, body.as_str()]
                .into_iter()
                .flat_map(|s| s.split('&'))
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=').map(str::to_owned))
        };
        let action = match header("X-Amz-Target") {
            Some(target) => target.rsplit('.').next().unwrap_or(target).to_owned(),
            None => query("Action").unwrap_or_else(|| "unknown".to_owned()),
        };
        let json: Option<Value> = serde_json::from_str(&body).ok();
        let field = |key: &str| json.as_ref().and_then(|j| j[key].as_str().map(str::to_owned));
        let queue = field("QueueUrl")
            .or_else(|| field("QueueName"))
            .or_else(|| query("QueueUrl"))
            .or_else(|| query("QueueName"))
            .unwrap_or_default();
        let name = queue.rsplit(['/', '%']).next().unwrap_or_default();
        let kind = if name.starts_with("sesame-req-") {
            "req"
        } else if name.starts_with("sesame-reply-") {
            "reply"
        } else {
            "other"
        };
        *counts.entry(format!("{kind}_{action}")).or_insert(0) += 1;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_lines_add_up_and_output_is_skipped() {
        let text = r#"{"host":"h1","progress":1,"source":"log","text":"x"}
{"host":"h1","via":"quic","ok":true,"code":0,"output":"hi","message":"","elapsed_ms":7}
{"host":"h2","via":"quic","ok":false,"code":1010,"output":"","message":"denied","elapsed_ms":3}
{"host":"h3","via":"sqs","ok":false,"error":"no answer within 5s","elapsed_ms":5001}
{"host":"h4","via":"sqs","ok":true,"code":0,"output":"hi","message":"","elapsed_ms":40}
{"host":"h5","via":"sqs","ok":false,"started":false}
{"summary":{"ok":2,"failed":1,"no_answer":1,"not_started":1,"stopped":"max errors"}}
"#;
        let r = Report::parse(text).expect("parse");
        assert_eq!(
            (r.ok, r.failed, r.no_answer, r.not_started, r.hosts()),
            (2, 1, 1, 1, 5)
        );
        assert_eq!(r.stopped.as_deref(), Some("max errors"));
        assert_eq!(
            r.fields(),
            "hosts=5 ok=2 failed=1 no_answer=1 not_started=1 stopped=1 quic_n=2 quic_p50_ms=3 \
             quic_p90_ms=7 quic_p99_ms=7 quic_max_ms=7 sqs_n=1 sqs_p50_ms=40 sqs_p90_ms=40 \
             sqs_p99_ms=40 sqs_max_ms=40"
        );
        let wrong = text.replace(r#""ok":2"#, r#""ok":3"#);
        assert!(Report::parse(&wrong).is_err(), "a summary that disagrees");
        assert!(Report::parse("{\"x\":1}").is_err(), "a line of nothing known");
    }

    #[test]
    fn calls_are_counted_by_queue_kind_and_action() {
        use base64::Engine as _;
        let json = |target: &str, body: &str| {
            serde_json::json!({
                "headers": {"x-amz-target": target},
                "method": "POST",
                "url": "http://127.0.0.1:1/",
                "body": base64::engine::general_purpose::STANDARD.encode(body),
                "body_encoded": true,
            })
            .to_string()
        };
        let text = [
            json(
                "AmazonSQS.ReceiveMessage",
                r#"{"QueueUrl":"http://127.0.0.1:1/123/sesame-req-h101"}"#,
            ),
            json(
                "AmazonSQS.ReceiveMessage",
                r#"{"QueueUrl":"http://127.0.0.1:1/123/sesame-req-h102"}"#,
            ),
            json(
                "AmazonSQS.SendMessage",
                r#"{"QueueUrl":"http://127.0.0.1:1/123/sesame-reply-00ff"}"#,
            ),
            json("AmazonSQS.GetQueueUrl", r#"{"QueueName":"sesame-reply-00ff"}"#),
            r#"{"headers":{},"url":"http://127.0.0.1:1/?Action=ListQueues","body":"","body_encoded":false}"#
                .to_owned(),
        ]
        .join("\n");
        let counts = count_calls(&text).expect("count");
        let expected: BTreeMap<String, usize> = [
            ("other_ListQueues", 1),
            ("reply_GetQueueUrl", 1),
            ("reply_SendMessage", 1),
            ("req_ReceiveMessage", 2),
        ]
        .into_iter()
        .map(|(k, n)| (k.to_owned(), n))
        .collect();
        assert_eq!(counts, expected);
    }
}
