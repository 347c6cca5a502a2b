//! SQS queue names (DESIGN §9). One request queue per host, `sesame-req-<host>`; one reply
//! queue per client, `sesame-reply-<first 16 hex digits of SHA-256(client public key)>`.
//!
//! The reply queue is derived from the key that sealed the request, so the daemon never sends an
//! answer anywhere a client did not choose for itself, and the IAM policy can be written against
//! two fixed prefixes.

use sha2::{Digest, Sha256};

use crate::PublicKey;

/// The prefix of every request queue.
pub const REQUEST_QUEUE_PREFIX: &str = "sesame-req-";
/// The prefix of every reply queue.
pub const REPLY_QUEUE_PREFIX: &str = "sesame-reply-";
/// The longest queue name SQS accepts.
pub const MAX_QUEUE_NAME_LEN: usize = 80;

/// The default request queue of the daemon named `host`, or `None` when that name cannot be part
/// of a queue name (SQS allows only `A-Z a-z 0-9 _ -`, up to 80 bytes); such a host names its
/// queue in its configuration.
pub fn request_queue(host: &str) -> Option<String> {
    let name = format!("{REQUEST_QUEUE_PREFIX}{host}");
    is_queue_name(&name).then_some(name)
}

/// The reply queue of the client with key `client`.
pub fn reply_queue(client: &PublicKey) -> String {
    let digest = Sha256::digest(client.as_bytes());
    let mut name = String::from(REPLY_QUEUE_PREFIX);
    for b in &digest[..8] {
        name.push_str(&format!("{b:02x}"));
    }
    name
}

/// Whether `name` is a valid standard (not FIFO) SQS queue name.
pub fn is_queue_name(name: &str) -> bool {
    (1..=MAX_QUEUE_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_design() {
        assert_eq!(request_queue("web-1").as_deref(), Some("sesame-req-web-1"));
        assert_eq!(request_queue("web.example"), None, "dots are not allowed");
        assert_eq!(request_queue(&"a".repeat(70)), None, "too long");
        let key = PublicKey::from_bytes([0; 32]);
        // sha256 of 32 zero bytes starts 66687aadf862bd77.
        assert_eq!(reply_queue(&key), "sesame-reply-66687aadf862bd77");
        assert!(is_queue_name(&reply_queue(&key)));
        assert!(!is_queue_name(""));
        assert!(!is_queue_name("q.fifo"));
    }
}
