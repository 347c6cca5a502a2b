//! The sesame client: its key, the hosts it trusts (pinned), and sending a request to one.
//!
//! The `sesame` command is a thin layer over this library; other programs can use it too.
#![forbid(unsafe_code)]

pub mod home;
pub mod quic;

pub use home::{ClientHome, HomeError, HostEntry};
pub use quic::{ClientError, Session, exchange, send_request};
