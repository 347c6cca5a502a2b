//! The sesame client: its key, the hosts it trusts (pinned), and sending requests to them over
//! QUIC or SQS, one host or many at once.
//!
//! The `sesame` command is a thin layer over this library; other programs can use it too.
#![forbid(unsafe_code)]

pub mod approvals;
pub mod asker;
pub mod cancel;
pub mod cli;
pub mod detached;
pub mod diagnostic;
pub mod fleet;
pub mod home;
pub mod hosts;
pub mod known_hosts;
pub mod labels;
pub mod local;
pub mod pin;
pub mod quic;
pub mod receipts;
pub mod rollout;
pub mod sqs;
pub mod ssh_proxy;
pub mod stream;
pub mod table;

pub use home::{ClientHome, HomeError, HostEntry, SqsRoute, Transport};
pub use quic::{ClientError, Session, exchange, open_response, send_request, send_request_streaming};
pub use sqs::SqsLink;
