//! `sesamed`: the sesame host daemon as a library.
//!
//! A request travels one path whatever its transport: [`transport`] hands sealed bytes to
//! [`runner::Runner::handle`], which opens them ([`sesame_proto`]), checks freshness and replay,
//! asks the [`policy`] for a grant, runs the command's WebAssembly component in the [`sandbox`]
//! and seals the answer. Every step lands in the [`audit`] log.
#![forbid(unsafe_code)]

pub mod audit;
pub mod clients;
pub mod config;
pub mod files;
pub mod firewall;
pub mod host;
pub mod identity;
pub mod policy;
pub mod runner;
pub mod sandbox;
pub mod seen;
pub mod system;
pub mod transport;

/// Milliseconds since the Unix epoch, from the system clock.
///
/// The one place the daemon reads wall-clock time for protocol decisions; everything below takes
/// `now` as a parameter.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
