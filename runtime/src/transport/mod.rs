//! Transports carry sealed envelopes to [`Runner::handle`](crate::runner::Runner::handle) and its
//! answers back. They hold no protocol logic: a transport that behaves differently from another
//! is a bug.

pub mod quic;
pub mod sqs;

/// The ALPN protocol id sesame speaks over QUIC.
pub const ALPN: &[u8] = b"sesame/1";
