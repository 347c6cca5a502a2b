//! Messages for the daemon's log, tagged there with the request id.
//!
//! The client never sees them; return output from [`Command::run`](crate::Command::run).
//! The daemon keeps a bounded number of messages per request and cuts long ones.

// The imports, or on non-wasm targets (tests) the fake host that stands in for them.
#[cfg(target_family = "wasm")]
use crate::__private::bindings::sesame::host::log as imports;
#[cfg(not(target_family = "wasm"))]
use crate::testing::fake::log as imports;

/// Logs `msg` at info level.
pub fn info(msg: &str) {
    imports::info(msg);
}

/// Logs `msg` at warn level.
pub fn warn(msg: &str) {
    imports::warn(msg);
}
