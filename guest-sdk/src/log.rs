//! Messages for the daemon's log, tagged there with the request id.
//!
//! The client never sees them; return output from [`Command::run`](crate::Command::run).
//! The daemon keeps a bounded number of messages per request and cuts long ones.

use crate::__private::bindings::sesame::host::log as wit;

/// Logs `msg` at info level.
pub fn info(msg: &str) {
    wit::info(msg);
}

/// Logs `msg` at warn level.
pub fn warn(msg: &str) {
    wit::warn(msg);
}
