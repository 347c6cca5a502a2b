//! Receipts: the audit record of a request's answer, as the daemon gives it to the client in the
//! answer ([`Receipt`], in [`Response::receipt`](crate::Response::receipt)), and as the client
//! keeps it ([`HeldReceipt`], one line of its `receipts` file) for whoever verifies the host's
//! audit log.
//!
//! A receipt names one line of the host's hash-chained audit log: its `seq` and the SHA-256 of
//! its bytes, the value the next line's `prev` holds. Whoever is root on the host can rewrite the
//! chain from any point on, recomputing every `prev` after it, but cannot make another line hash
//! to a receipt a client already holds: `sesamed audit verify --receipts` finds the difference.
//! And the host signs every receipt with its receipt key (see [`ReceiptSigner`]), so it cannot
//! say a receipt that names a missing record was made up by the client.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ProtoError;
use crate::hex_text;
use crate::message::RequestId;
use crate::receipt_signing::{
    RECEIPT_KEY_LEN, RECEIPT_SIGNATURE_LEN, ReceiptKey, ReceiptSignature, ReceiptSigner,
};

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
/// request and the SHA-256 of that line, exactly as the log's hash chain has them, signed by the
/// host's receipt key for the host's name and the request's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The record's `seq`.
    pub seq: u64,
    /// The SHA-256 of the record's line.
    pub hash: RecordHash,
    /// The host's receipt key, which made `sig`.
    pub key: ReceiptKey,
    /// The signature by `key` over the host's name, the request's id, `seq` and `hash`.
    pub sig: ReceiptSignature,
}

impl Receipt {
    /// The receipt with the longest encoding (every hash, key and signature encodes to the same
    /// length): what a daemon makes room for in an answer before it has written the record the
    /// real one names.
    pub const LARGEST: Receipt = Receipt {
        seq: u64::MAX,
        hash: RecordHash([0xff; RECORD_HASH_LEN]),
        key: ReceiptKey::from_bytes([0xff; RECEIPT_KEY_LEN]),
        sig: ReceiptSignature::from_bytes([0xff; RECEIPT_SIGNATURE_LEN]),
    };

    /// The receipt of record `seq` with `hash`, for request `id` on host `host_name` (the
    /// daemon's `[host] name`), signed by `signer`.
    #[must_use]
    pub fn signed(
        signer: &ReceiptSigner,
        host_name: &str,
        id: RequestId,
        seq: u64,
        hash: RecordHash,
    ) -> Self {
        Self {
            seq,
            hash,
            key: signer.key(),
            sig: signer.sign(host_name, id, seq, &hash),
        }
    }

    /// Checks that `key` signed this receipt for request `id` on host `host_name`:
    /// [`ProtoError::BadReceiptSignature`] if not. Whose key `key` is, is the caller's to know
    /// (the client: it came sealed from the pinned host; a verifier: the host's receipt keys).
    pub fn verify(&self, host_name: &str, id: RequestId) -> Result<(), ProtoError> {
        self.key.verify(&self.sig, host_name, id, self.seq, &self.hash)
    }
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
    /// The host's receipt key, which made `sig`.
    pub key: ReceiptKey,
    /// The host's signature over `host_name`, `id`, `seq` and `hash` (not over the client's
    /// notes: `time_ms`, `host`, `command`, `code`; the record holds the host's word on those).
    pub sig: ReceiptSignature,
}

impl HeldReceipt {
    /// The receipt it holds.
    #[must_use]
    pub fn receipt(&self) -> Receipt {
        Receipt {
            seq: self.seq,
            hash: self.hash,
            key: self.key,
            sig: self.sig,
        }
    }

    /// Checks that its key signed it for its host name and request (see [`Receipt::verify`]).
    pub fn verify(&self) -> Result<(), ProtoError> {
        self.receipt().verify(&self.host_name, self.id)
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
    use crate::keys::SecretKey;
    use crate::test_rng::TestRng;

    fn signer(seed: u64) -> ReceiptSigner {
        ReceiptSigner::derive(&SecretKey::generate(&mut TestRng::seeded(seed)))
    }

    /// A receipt for request `[0x11; 16]` on host `web-1.prod`, signed by `signer(1)`.
    fn held() -> HeldReceipt {
        let id = RequestId::from_bytes([0x11; 16]);
        let receipt = Receipt::signed(
            &signer(1),
            "web-1.prod",
            id,
            42,
            RecordHash::from_bytes([0xcd; RECORD_HASH_LEN]),
        );
        HeldReceipt {
            time_ms: 1_700_000_000_000,
            host: "web1".into(),
            host_name: "web-1.prod".into(),
            id,
            command: "access::allow".into(),
            code: 0,
            seq: receipt.seq,
            hash: receipt.hash,
            key: receipt.key,
            sig: receipt.sig,
        }
    }

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
        let signer = signer(2);
        for seq in [0, 1, 4_294_967_296, u64::MAX - 1, u64::MAX] {
            let receipt = Receipt::signed(
                &signer,
                "web",
                RequestId::from_bytes([0; 16]),
                seq,
                RecordHash::from_bytes([0; RECORD_HASH_LEN]),
            );
            assert!(serde_json::to_vec(&receipt).expect("encode").len() <= largest);
        }
        assert_eq!(
            serde_json::to_value(Receipt::LARGEST).expect("encode"),
            json!({"seq": u64::MAX, "hash": "ff".repeat(32), "key": "ff".repeat(32),
                   "sig": "ff".repeat(64)})
        );
    }

    #[test]
    fn a_signed_receipt_verifies_for_its_host_and_request_only() {
        let held = held();
        let receipt = held.receipt();
        assert_eq!(receipt.key, signer(1).key());
        assert_eq!(receipt.verify("web-1.prod", held.id), Ok(()));
        assert_eq!(held.verify(), Ok(()));
        let bad = Err(ProtoError::BadReceiptSignature);
        assert_eq!(receipt.verify("web-2.prod", held.id), bad);
        assert_eq!(
            receipt.verify("web-1.prod", RequestId::from_bytes([0x12; 16])),
            bad
        );
        // Any signed field changed, or the key swapped for another's, and it does not verify.
        let other = signer(3);
        type Change = fn(&mut HeldReceipt);
        let changes: [(&str, Change); 6] = [
            ("host_name", |h| h.host_name.push('x')),
            ("id", |h| h.id = RequestId::from_bytes([0x12; 16])),
            ("seq", |h| h.seq += 1),
            ("hash", |h| {
                h.hash = RecordHash::from_bytes([0xce; RECORD_HASH_LEN])
            }),
            ("key", |h| h.key = signer(3).key()),
            ("sig", |h| {
                let mut bytes = *h.sig.as_bytes();
                bytes[17] ^= 0x04;
                h.sig = ReceiptSignature::from_bytes(bytes);
            }),
        ];
        for (field, change) in changes {
            let mut changed = held.clone();
            change(&mut changed);
            assert_eq!(changed.verify(), bad, "{field}");
        }
        // Signed by another key, naming that key: it verifies. Whose key it is, is for the
        // verifier to know (the host's receipt keys), not the receipt.
        let forged = Receipt::signed(&other, "web-1.prod", held.id, held.seq, held.hash);
        assert_eq!(forged.verify("web-1.prod", held.id), Ok(()));
        assert_ne!(forged.key, receipt.key);
        // The client's own notes are not signed.
        let mut noted = held.clone();
        noted.time_ms = 1;
        noted.host = "elsewhere".into();
        noted.command = "x".into();
        noted.code = 1010;
        assert_eq!(noted.verify(), Ok(()));
    }

    #[test]
    fn held_receipts_round_trip_and_their_line_is_pinned() {
        let held = held();
        let line = held.encode();
        assert!(!line.contains(&b'\n'));
        let value: serde_json::Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(
            value,
            json!({"time_ms": 1_700_000_000_000_u64, "host": "web1", "host_name": "web-1.prod",
                   "id": "11".repeat(16), "command": "access::allow", "code": 0, "seq": 42,
                   "hash": "cd".repeat(32), "key": held.key.to_string(),
                   "sig": held.sig.to_string()})
        );
        assert_eq!(
            serde_json::from_slice::<HeldReceipt>(&line).expect("decode"),
            held
        );
        assert_eq!(
            held.receipt(),
            Receipt {
                seq: 42,
                hash: held.hash,
                key: held.key,
                sig: held.sig,
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
            ("key", json!("ab".repeat(31))),
            ("sig", json!("ab".repeat(63))),
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
