//! The host's word on a receipt: its Ed25519 receipt key ([`ReceiptKey`]), derived from its
//! X25519 host key ([`ReceiptSigner`]), and the signature ([`ReceiptSignature`]) over what a
//! receipt says, which only the host can make and anyone can check.
//!
//! crypto_box authenticates an answer with a key the client shares with the host, so a receipt
//! that is only sealed could have been made up by the client. A signature under a key only the
//! host holds cannot, which is what lets a missing record stand against the host.

use std::fmt;
use std::str::FromStr;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::error::ProtoError;
use crate::hex_text;
use crate::keys::SecretKey;
use crate::message::RequestId;
use crate::receipt::RecordHash;

/// Bytes in a [`ReceiptKey`] (an Ed25519 public key).
pub const RECEIPT_KEY_LEN: usize = 32;
/// Bytes in a [`ReceiptSignature`] (an Ed25519 signature).
pub const RECEIPT_SIGNATURE_LEN: usize = 64;

/// What the seed of the receipt key is derived with, before the host key's secret bytes: a
/// receipt key is never the host key's own bytes used twice, and a later scheme gets another.
const KEY_DERIVATION_CONTEXT: &[u8] = b"sesame receipt signing key v1\0";
/// What every signed message starts with, so that a receipt signature is never valid as
/// anything else this key might sign later.
const SIGNING_CONTEXT: &[u8] = b"sesame receipt v1\0";

/// A host's receipt key: the Ed25519 public key its receipts are signed with, derived from its
/// host key (see [`ReceiptSigner::derive`]), so it follows `sesamed rotate-key`.
///
/// Its text form ([`Display`](fmt::Display), [`FromStr`], serde) is exactly 64 hex characters;
/// output is lowercase, input may be either case. Any 32 bytes parse: one that is not a point
/// of the curve verifies nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReceiptKey([u8; RECEIPT_KEY_LEN]);

/// An Ed25519 signature by a host's [`ReceiptKey`] over a receipt (see [`ReceiptSigner::sign`]).
///
/// Its text form is exactly 128 hex characters; output is lowercase, input may be either case.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReceiptSignature([u8; RECEIPT_SIGNATURE_LEN]);

/// The host's receipt signing key pair.
///
/// `Debug` prints only the public key. ring does not wipe the key pair when it is dropped; the
/// daemon keeps it as long as the host key it was derived from, which is on disk beside it.
pub struct ReceiptSigner {
    pair: Ed25519KeyPair,
    key: ReceiptKey,
}

impl ReceiptKey {
    /// Wraps 32 raw key bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; RECEIPT_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; RECEIPT_KEY_LEN] {
        &self.0
    }

    /// Checks `signature` over a receipt for request `id` on host `host_name` naming the record
    /// `seq` with `hash`: [`ProtoError::BadReceiptSignature`] unless this key made it for
    /// exactly these.
    pub fn verify(
        &self,
        signature: &ReceiptSignature,
        host_name: &str,
        id: RequestId,
        seq: u64,
        hash: &RecordHash,
    ) -> Result<(), ProtoError> {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&signed_message(host_name, id, seq, hash), &signature.0)
            .map_err(|_| ProtoError::BadReceiptSignature)
    }
}

impl ReceiptSignature {
    /// Wraps 64 raw signature bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; RECEIPT_SIGNATURE_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw signature bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; RECEIPT_SIGNATURE_LEN] {
        &self.0
    }
}

impl ReceiptSigner {
    /// The receipt key pair of the host whose host key is `host_key`: its Ed25519 seed is the
    /// SHA-256 of a fixed context string and the host key's 32 secret bytes. The same host key
    /// always gives the same receipt key, and a rotated host key a new one.
    #[must_use]
    pub fn derive(host_key: &SecretKey) -> Self {
        let secret = host_key.to_bytes();
        let mut hasher = Sha256::new();
        hasher.update(KEY_DERIVATION_CONTEXT);
        hasher.update(&secret[..]);
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(hasher.finalize().into());
        let pair = Ed25519KeyPair::from_seed_unchecked(&*seed).expect("every 32 bytes are an Ed25519 seed");
        let mut key = [0u8; RECEIPT_KEY_LEN];
        key.copy_from_slice(pair.public_key().as_ref());
        Self {
            pair,
            key: ReceiptKey(key),
        }
    }

    /// The receipt key its signatures verify under.
    #[must_use]
    pub fn key(&self) -> ReceiptKey {
        self.key
    }

    /// Signs a receipt for request `id` on host `host_name` (the daemon's `[host] name`, what
    /// requests name) naming the record `seq` with `hash`.
    #[must_use]
    pub fn sign(&self, host_name: &str, id: RequestId, seq: u64, hash: &RecordHash) -> ReceiptSignature {
        let signature = self.pair.sign(&signed_message(host_name, id, seq, hash));
        let mut bytes = [0u8; RECEIPT_SIGNATURE_LEN];
        bytes.copy_from_slice(signature.as_ref());
        ReceiptSignature(bytes)
    }
}

impl fmt::Debug for ReceiptSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReceiptSigner({})", self.key)
    }
}

/// What a receipt signature is over: the context string, the host name's length (8 bytes,
/// big-endian) and bytes, the request id's 16 bytes, `seq` (8 bytes, big-endian) and the
/// record hash's 32 bytes. Every part has a fixed length or a length before it, so no two
/// receipts share a message.
fn signed_message(host_name: &str, id: RequestId, seq: u64, hash: &RecordHash) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNING_CONTEXT.len() + 8 + host_name.len() + 16 + 8 + 32);
    message.extend_from_slice(SIGNING_CONTEXT);
    message.extend_from_slice(&(host_name.len() as u64).to_be_bytes());
    message.extend_from_slice(host_name.as_bytes());
    message.extend_from_slice(id.as_bytes());
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(hash.as_bytes());
    message
}

/// Display as lower-case hex, `Debug` as `Name(hex)`, and parsing and serde from and to the
/// same text, for a newtype over `[u8; LEN]`; `error` makes the parse error.
macro_rules! hex_newtype {
    ($name:ident, $len:expr, $error:expr) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut text = String::with_capacity(2 * $len);
                hex_text::encode_lower_into(&self.0, &mut text);
                f.write_str(&text)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = ProtoError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                let mut bytes = [0u8; $len];
                if hex_text::decode_exact(text, &mut bytes) {
                    Ok(Self(bytes))
                } else {
                    Err($error)
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_newtype!(
    ReceiptKey,
    RECEIPT_KEY_LEN,
    ProtoError::BadKey("a receipt key must be exactly 64 hex characters (Ed25519)".into())
);
hex_newtype!(
    ReceiptSignature,
    RECEIPT_SIGNATURE_LEN,
    ProtoError::MalformedResponse("a receipt signature must be exactly 128 hex characters (Ed25519)".into())
);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_rng::TestRng;

    const HOST: &str = "web-1.prod";

    fn signer(seed: u64) -> ReceiptSigner {
        ReceiptSigner::derive(&SecretKey::generate(&mut TestRng::seeded(seed)))
    }

    fn hash(byte: u8) -> RecordHash {
        RecordHash::from_bytes([byte; 32])
    }

    #[test]
    fn a_signature_verifies_for_exactly_what_was_signed() {
        let signer = signer(1);
        let key = signer.key();
        let id = RequestId::from_bytes([7; 16]);
        let sig = signer.sign(HOST, id, 42, &hash(0xcd));
        assert_eq!(key.verify(&sig, HOST, id, 42, &hash(0xcd)), Ok(()));

        let other_id = RequestId::from_bytes([8; 16]);
        let other_key = self::signer(2).key();
        let fails = [
            key.verify(&sig, "web-2.prod", id, 42, &hash(0xcd)),
            key.verify(&sig, "web-1.pro", id, 42, &hash(0xcd)),
            key.verify(&sig, "", id, 42, &hash(0xcd)),
            key.verify(&sig, HOST, other_id, 42, &hash(0xcd)),
            key.verify(&sig, HOST, id, 43, &hash(0xcd)),
            key.verify(&sig, HOST, id, 42, &hash(0xce)),
            other_key.verify(&sig, HOST, id, 42, &hash(0xcd)),
            ReceiptKey::from_bytes([0; 32]).verify(&sig, HOST, id, 42, &hash(0xcd)),
        ];
        for (n, result) in fails.into_iter().enumerate() {
            assert_eq!(result, Err(ProtoError::BadReceiptSignature), "case {n}");
        }
        // Every bit of the signature counts.
        for bit in 0..8 * RECEIPT_SIGNATURE_LEN {
            let mut bytes = *sig.as_bytes();
            bytes[bit / 8] ^= 1 << (bit % 8);
            let flipped = ReceiptSignature::from_bytes(bytes);
            assert!(
                key.verify(&flipped, HOST, id, 42, &hash(0xcd)).is_err(),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn the_host_name_cannot_run_into_the_id() {
        // Moving a byte from the name into where the id starts changes the message.
        let signer = signer(3);
        let id = RequestId::from_bytes([b'x'; 16]);
        let sig = signer.sign("webx", id, 1, &hash(1));
        assert!(signer.key().verify(&sig, "web", id, 1, &hash(1)).is_err());
        assert_ne!(
            signed_message("webx", RequestId::from_bytes([b'x'; 16]), 1, &hash(1))[..],
            signed_message("web", RequestId::from_bytes([b'x'; 16]), 1, &hash(1))[..]
        );
    }

    /// Pinned: the derivation and the signed message are what receipts already held verify
    /// against, and what `sesamed show` prints; changing either breaks them.
    #[test]
    fn the_receipt_key_is_derived_from_the_host_key_and_pinned() {
        let host_key = SecretKey::from_hex(&"11".repeat(32)).expect("key");
        let signer = ReceiptSigner::derive(&host_key);
        assert_eq!(signer.key(), ReceiptSigner::derive(&host_key).key());
        assert_ne!(signer.key(), self::signer(4).key());
        assert_ne!(signer.key().as_bytes(), host_key.public_key().as_bytes());
        // Computed independently, with Python's `cryptography`, from the derivation and the
        // message as `ReceiptSigner::derive` and `signed_message` describe them.
        assert_eq!(
            signer.key().to_string(),
            "0258562fbdb4aa7f2f6cd916f1c8783ba91ccbfdcf59b969d6c09033bacb05c7"
        );
        let sig = signer.sign(HOST, RequestId::from_bytes([0xab; 16]), 42, &hash(0xcd));
        assert_eq!(
            sig.to_string(),
            "afc98fbc3f103629ef4c74ff85a27778394fb92ec79a61d4992c798d75b44019\
             4ba890bd2e0120ad90f2730a2117f1b0d9aaadb83d6403f2db4b7b8e9b2bbc01"
        );
        assert_eq!(format!("{signer:?}"), format!("ReceiptSigner({})", signer.key()));
    }

    #[test]
    fn keys_and_signatures_round_trip_as_hex_and_bad_text_is_refused() {
        let signer = signer(5);
        let key = signer.key();
        let sig = signer.sign(HOST, RequestId::from_bytes([1; 16]), 1, &hash(1));
        let key_text = key.to_string();
        let sig_text = sig.to_string();
        assert_eq!((key_text.len(), sig_text.len()), (64, 128));
        assert_eq!(key_text.parse(), Ok(key));
        assert_eq!(key_text.to_ascii_uppercase().parse(), Ok(key));
        assert_eq!(sig_text.parse(), Ok(sig));
        assert_eq!(sig_text.to_ascii_uppercase().parse(), Ok(sig));
        assert_eq!(ReceiptKey::from_bytes(*key.as_bytes()), key);
        assert_eq!(ReceiptSignature::from_bytes(*sig.as_bytes()), sig);
        assert_eq!(format!("{key:?}"), format!("ReceiptKey({key_text})"));
        assert_eq!(format!("{sig:?}"), format!("ReceiptSignature({sig_text})"));
        assert_eq!(serde_json::to_value(key).expect("json"), json!(key_text));
        assert_eq!(serde_json::to_value(sig).expect("json"), json!(sig_text));
        assert_eq!(
            serde_json::from_value::<ReceiptSignature>(json!(sig_text)).expect("json"),
            sig
        );
        for bad in [
            String::new(),
            key_text[..63].to_owned(),
            format!("{key_text}0"),
            format!("{}g", &key_text[..63]),
            sig_text.clone(),
        ] {
            assert!(
                matches!(bad.parse::<ReceiptKey>(), Err(ProtoError::BadKey(_))),
                "{bad:?}"
            );
            assert!(serde_json::from_value::<ReceiptKey>(json!(bad)).is_err());
        }
        for bad in [
            String::new(),
            sig_text[..127].to_owned(),
            format!("{sig_text}0"),
            format!("{}g", &sig_text[..127]),
            key_text,
        ] {
            assert!(bad.parse::<ReceiptSignature>().is_err(), "{bad:?}");
            assert!(serde_json::from_value::<ReceiptSignature>(json!(bad)).is_err());
        }
    }
}
