//! `sesame-bench`: measures sesame from the outside, in a process of its own, the way clients
//! see it, and the baselines it is compared with. `bench/run` drives it and writes
//! `bench/RESULTS.md`; every subcommand prints one `key=value` line per measurement.
//!
//! - `load HOST` — the load generator: `echo` requests at several concurrencies over QUIC,
//!   requests/s and latency percentiles; `--raw --addr` aims it at a `floor-server` instead.
//! - `connect HOST` — a new connection's cost: handshake, pin check, one request, close.
//! - `floor-server` — the floor (a bare QUIC echo with the daemon's QUIC settings) or, with
//!   `--exec`, a relay that runs a process per request.
//! - `time -- CMD...` — whole commands (`ssh`, `sesame run`) timed from outside.
//! - `sqs HOST` — sequential requests over SQS, and a bare SQS relay as the baseline.
//! - `policy`, `sandbox MODULE` — the daemon's parts in-process.
//! - `chart` — `bench/latency.svg` from `load` output.
//! - `fleet-run -- CMD...`, `create-queues`, `sqs-calls` — `bench/fleet`'s: one `sesame run` on
//!   many hosts timed from outside, the hosts' SQS queues, the SQS calls in a moto recording.
//!
//! The client key and pinned hosts come from `$SESAME_HOME`, as for `sesame`.

pub mod chart;
pub mod fleet;
pub mod floor;
pub mod inproc;
pub mod load;
pub mod process;
pub mod sqs;
pub mod stats;

use sesame_proto::Request;

/// A fresh request for `alias`'s daemon.
pub fn new_request(
    host: &sesame_client::HostEntry,
    alias: &str,
    cluster: Option<&str>,
    command: &str,
    args: &[String],
) -> Request {
    Request::new(
        &mut rand_core::OsRng,
        now_ms(),
        host.daemon_name(alias),
        cluster,
        command,
        args.to_vec(),
    )
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
