//! Receipts: the audit record of a request's answer, as the daemon gives it to the client in the
//! answer ([`Receipt`], in [`Response::receipt`](crate::Response::receipt)), and as the client
//! keeps it ([`HeldReceipt`], one line of its `receipts` file) for whoever verifies the host's
//! audit log.
//!
//! A receipt names one line of the host's hash-chained audit log: its `seq` and the SHA-256 of
//! its bytes, the value the next line's `prev` holds. Whoever is root on the host can rewrite the
//! chain from any point on, recomputing every `prev` after it, but cannot make another line hash
//! to a receipt a client already holds: `sesamed audit verify --receipts` finds the difference.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ProtoError;
use crate::hex_text;
use crate::message::RequestId;

/// Bytes in a [`RecordHash`].
pub const RECORD_HASH_LEN: usize = 32;

/// The SHA-256 of one audit log line (its bytes without the newline), as the log's hash chain
/// computes it.
///
/// Its text form ([`Display`](fmt::Display), [`FromStr`], serde) is exactly 64 hex characters;
/// output is lowercase, input may be either case.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordHash([u8; RECORD_HASH_LEN]);

impl RecordHash {
    /// Wraps 32 raw digest bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; RECORD_HASH_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; RECORD_HASH_LEN] {
        &self.0
    }
}

impl fmt::Display for RecordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::with_capacity(2 * RECORD_HASH_LEN);
        hex_text::encode_lower_into(&self.0, &mut text);
        f.write_str(&text)
    }
}

impl fmt::Debug for RecordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordHash({self})")
    }
}

impl FromStr for RecordHash {
    type Err = ProtoError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; RECORD_HASH_LEN];
        if hex_text::decode_exact(text, &mut bytes) {
            Ok(Self(bytes))
        } else {
            Err(ProtoError::MalformedResponse(
                "a record hash must be exactly 64 hex characters (SHA-256)".into(),
            ))
        }
    }
}

impl Serialize for RecordHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RecordHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom("a record hash must be exactly 64 hex characters"))
    }
}

/// The audit record of a request's answer: the `seq` of the daemon's `end` record for the
/// request and the SHA-256 of that line, exactly as the log's hash chain has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The record's `seq`.
    pub seq: u64,
    /// The SHA-256 of the record's line.
    pub hash: RecordHash,
}

impl Receipt {
    /// The receipt with the longest encoding (every hash encodes to the same length): what a
    /// daemon makes room for in an answer before it has written the record the real one names.
    pub const LARGEST: Receipt = Receipt {
        seq: u64::MAX,
        hash: RecordHash([0xff; RECORD_HASH_LEN]),
    };
}

/// A receipt as a client keeps it: one JSON object per line of its `receipts` file, written
/// when the answer came and read by `sesame receipts` and `sesamed audit verify --receipts`.
///
/// Fields a later version adds are ignored when reading.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldReceipt {
    /// When the answer came, Unix milliseconds by the client's clock.
    pub time_ms: u64,
    /// The name the client knows the host by (its entry in `hosts.toml`).
    pub host: String,
    /// The daemon's own host name (`[host] name`, what requests name): whose log holds the
    /// record.
    pub host_name: String,
    /// The request the record is of.
    pub id: RequestId,
    /// What was asked: `CLUSTER::COMMAND`, or `COMMAND` when no cluster was named.
    pub command: String,
    /// The answer's code (0 ok).
    pub code: u16,
    /// The record's `seq`.
    pub seq: u64,
    /// The SHA-256 of the record's line.
    pub hash: RecordHash,
}

impl HeldReceipt {
    /// The receipt it holds.
    #[must_use]
    pub fn receipt(&self) -> Receipt {
        Receipt {
            seq: self.seq,
            hash: self.hash,
        }
    }

    /// Its line in the `receipts` file, without the newline.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a HeldReceipt is strings and integers: JSON encoding cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn record_hash_text_round_trips_and_bad_text_is_refused() {
        let hash = RecordHash::from_bytes([0xab; RECORD_HASH_LEN]);
        let text = hash.to_string();
        assert_eq!(text, "ab".repeat(32));
        assert_eq!(text.parse::<RecordHash>(), Ok(hash));
        assert_eq!(text.to_ascii_uppercase().parse::<RecordHash>(), Ok(hash));
        assert_eq!(RecordHash::from_bytes(*hash.as_bytes()), hash);
        assert_eq!(format!("{hash:?}"), format!("RecordHash({text})"));
        assert_eq!(serde_json::to_value(hash).expect("serialize"), json!(text));
        for bad in [
            String::new(),
            text[..63].to_owned(),
            format!("{text}0"),
            format!("{}g", &text[..63]),
            format!(" {}", &text[..63]),
        ] {
            assert!(bad.parse::<RecordHash>().is_err(), "{bad:?}");
            assert!(
                serde_json::from_value::<RecordHash>(json!(bad)).is_err(),
                "{bad:?}"
            );
        }
        assert!(serde_json::from_value::<RecordHash>(json!(7)).is_err());
    }

    #[test]
    fn the_largest_receipt_is_the_longest_encoding() {
        let largest = serde_json::to_vec(&Receipt::LARGEST).expect("encode").len();
        for seq in [0, 1, 4_294_967_296, u64::MAX - 1, u64::MAX] {
            let receipt = Receipt {
                seq,
                hash: RecordHash::from_bytes([0; RECORD_HASH_LEN]),
            };
            assert!(serde_json::to_vec(&receipt).expect("encode").len() <= largest);
        }
    }

    #[test]
    fn held_receipts_round_trip_and_their_line_is_pinned() {
        let held = HeldReceipt {
            time_ms: 1_700_000_000_000,
            host: "web1".into(),
            host_name: "web-1.prod".into(),
            id: RequestId::from_bytes([0x11; 16]),
            command: "access::allow".into(),
            code: 0,
            seq: 42,
            hash: RecordHash::from_bytes([0xcd; RECORD_HASH_LEN]),
        };
        let line = held.encode();
        assert!(!line.contains(&b'\n'));
        let value: serde_json::Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(
            value,
            json!({"time_ms": 1_700_000_000_000_u64, "host": "web1", "host_name": "web-1.prod",
                   "id": "11".repeat(16), "command": "access::allow", "code": 0, "seq": 42,
                   "hash": "cd".repeat(32)})
        );
        assert_eq!(
            serde_json::from_slice::<HeldReceipt>(&line).expect("decode"),
            held
        );
        assert_eq!(
            held.receipt(),
            Receipt {
                seq: 42,
                hash: held.hash
            }
        );
        // A later client's extra field is ignored; a missing or malformed one is an error.
        let mut newer = value.clone();
        newer["via"] = json!("quic");
        assert_eq!(
            serde_json::from_value::<HeldReceipt>(newer).expect("decode"),
            held
        );
        for (field, bad) in [
            ("seq", json!(-1)),
            ("hash", json!("cd")),
            ("id", json!("not an id")),
            ("code", json!(70_000)),
        ] {
            let mut v = value.clone();
            v[field] = bad;
            assert!(serde_json::from_value::<HeldReceipt>(v).is_err(), "{field}");
            let mut v = value.clone();
            v.as_object_mut().expect("object").remove(field);
            assert!(
                serde_json::from_value::<HeldReceipt>(v).is_err(),
                "{field} missing"
            );
        }
    }
}
