//! X25519 key types: [`PublicKey`] (a plain, printable value) and [`SecretKey`] (redacted, wiped on drop),
//! and [`KeyDigest`], the SHA-256 of a public key by which a host commits to its next key.
//!
//! All use 64 hex characters as their text form; secret key text is encoded and decoded in constant
//! time and never appears in an error or a `Debug` string.

use std::fmt;
use std::str::FromStr;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::error::ProtoError;
use crate::hex_text;

/// Length of a key in bytes.
const KEY_LEN: usize = 32;

/// A peer's X25519 public key: a client's identity, or the daemon's.
///
/// Its text form ([`Display`](fmt::Display), [`FromStr`], serde) is exactly 64 hex characters; output
/// is lowercase, input may be either case. No whitespace is trimmed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// Wraps 32 raw key bytes. Any 32 bytes are accepted here; keys of small order (see
    /// [`is_small_order`](Self::is_small_order)) and non-canonical encodings (see
    /// [`is_canonical`](Self::is_canonical)) are refused when a [`Sealer`](crate::Sealer) uses them.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Whether this is one of the points of small order (0, 1, 2, 4 or 8), in any encoding.
    ///
    /// A Diffie-Hellman result with such a key takes only a handful of values whatever the other
    /// secret key is, so anyone could read what is sealed with it. [`Sealer`](crate::Sealer) refuses
    /// these keys; a daemon should also refuse to register them. The list is libsodium's.
    #[must_use]
    pub fn is_small_order(&self) -> bool {
        let (last, rest) = (self.0[KEY_LEN - 1] & 0x7f, &self.0[..KEY_LEN - 1]);
        SMALL_ORDER_POINTS
            .iter()
            .any(|point| point[..KEY_LEN - 1] == *rest && point[KEY_LEN - 1] == last)
    }

    /// Whether these bytes are the one canonical encoding of their key: top bit clear and the
    /// u-coordinate below p = 2^255 - 19. Keys made by [`SecretKey::public_key`] always are.
    ///
    /// X25519 ignores the top bit and reduces modulo p, so every key has other encodings giving the
    /// same Diffie-Hellman results. [`Sealer`](crate::Sealer) refuses the others,
    /// so the `sender` of an envelope that opens cannot be rewritten; a daemon should also refuse to
    /// register them, or one secret key could be enrolled under two names.
    #[must_use]
    pub fn is_canonical(&self) -> bool {
        // p little-endian is ed ff ff .. ff 7f.
        let (first, middle, last) = (self.0[0], &self.0[1..KEY_LEN - 1], self.0[KEY_LEN - 1]);
        let at_least_p = last == 0x7f && middle.iter().all(|&b| b == 0xff) && first >= 0xed;
        last & 0x80 == 0 && !at_least_p
    }

    /// Its SHA-256: what a host commits to before this key is in use (see [`KeyDigest`]).
    #[must_use]
    pub fn digest(&self) -> KeyDigest {
        KeyDigest(Sha256::digest(self.0).into())
    }

    /// The key as `crypto_box` wants it.
    pub(crate) fn to_crypto_box(self) -> crypto_box::PublicKey {
        crypto_box::PublicKey::from(self.0)
    }
}

/// The SHA-256 of a public key's 32 bytes.
///
/// A host keeps its next key pair ready and lets clients pin this digest of its public key next to
/// the current key (`sesamed show`, `sesame host add --next-key-sha256`). When the host rotates,
/// a client moves to the announced key only if its digest is the pinned one, so the old key alone,
/// which seals the announcement, cannot choose where clients go. The text form is 64 hex
/// characters, lowercase on output, either case on input: the same as `sha256sum` prints for the
/// key's raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; KEY_LEN]);

impl KeyDigest {
    /// Wraps 32 raw digest bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Whether this is the digest of `key`.
    #[must_use]
    pub fn commits_to(&self, key: &PublicKey) -> bool {
        key.digest() == *self
    }
}

/// Display as 64 lower-case hex digits, `Debug` as `Name(hex)`, and parsing and serde from and
/// to the same text, for a newtype over `[u8; KEY_LEN]`; `what` names it in parse errors.
macro_rules! hex_text_type {
    ($name:ident, $what:literal) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut text = String::with_capacity(2 * KEY_LEN);
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
                let mut bytes = [0u8; KEY_LEN];
                if hex_text::decode_exact(text, &mut bytes) {
                    Ok(Self(bytes))
                } else {
                    Err(ProtoError::BadKey($what.into()))
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

hex_text_type!(
    KeyDigest,
    "a key digest must be exactly 64 hex characters (SHA-256)"
);
hex_text_type!(PublicKey, "public key must be exactly 64 hex characters");

/// The u-coordinates of small order, as libsodium lists them (`has_small_order`), with the top bit of
/// the last byte clear; X25519 ignores that bit, so keys are compared with it masked off. Together with
/// the non-canonical encodings p and p + 1 of 0 and 1, these are every encoding of a small-order point.
pub(crate) const SMALL_ORDER_POINTS: [[u8; KEY_LEN]; 7] = [
    // 0 (order 4)
    [0; KEY_LEN],
    // 1 (order 1)
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ],
    // 325606250916557431795983626356110631294008115727848805560023387167927233504 (order 8)
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda,
        0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
    ],
    // 39382357235489614581723060781553021112529911719440698176882885853963445705823 (order 8)
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04,
        0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57,
    ],
    // p - 1 (order 2)
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
    // p (= 0, order 4)
    [
        0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
    // p + 1 (= 1, order 1)
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
];

/// An X25519 secret key: the daemon's host key or a client's identity key.
///
/// `Debug` prints `SecretKey(<redacted>)`. The key is not `Clone`, and is wiped when dropped. It lives
/// in one heap allocation so the wipe reaches the copy that was used; copies made on the stack while
/// generating or parsing it are short-lived and cannot be reached from safe Rust.
pub struct SecretKey {
    inner: Box<crypto_box::SecretKey>,
}

impl SecretKey {
    /// Generates a fresh key from `rng` (pass `rand_core::OsRng` outside tests).
    #[must_use]
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self {
            inner: Box::new(crypto_box::SecretKey::generate(rng)),
        }
    }

    /// The matching public key.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.inner.public_key().as_bytes())
    }

    /// The key as 64 lowercase hex characters, for writing to a key file. The text is wiped on drop.
    #[must_use]
    pub fn to_hex(&self) -> Zeroizing<String> {
        let bytes = Zeroizing::new(self.inner.to_bytes());
        let mut text = Zeroizing::new(String::with_capacity(2 * KEY_LEN));
        hex_text::encode_lower_into(&*bytes, &mut text);
        text
    }

    /// Parses 64 hex characters (either case) as read from a key file; trailing whitespace (such as
    /// the final newline) is ignored. The error never echoes the input.
    pub fn from_hex(text: &str) -> Result<Self, ProtoError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        if !hex_text::decode_exact(text.trim_ascii_end(), &mut bytes) {
            return Err(ProtoError::BadKey(
                "secret key must be exactly 64 hex characters".into(),
            ));
        }
        Ok(Self {
            inner: Box::new(crypto_box::SecretKey::from_bytes(*bytes)),
        })
    }

    /// The key's 32 secret bytes, wiped on drop (to derive the receipt key from).
    pub(crate) fn to_bytes(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.inner.to_bytes())
    }

    /// The key as `crypto_box` wants it.
    pub(crate) fn as_crypto_box(&self) -> &crypto_box::SecretKey {
        &self.inner
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        // crypto_box 0.9.1 zeroizes its scalar on drop but not its copy of the key bytes. Overwrite the
        // whole value in place (the assignment drops, and so zeroizes, the old scalar first) and make the
        // store observable so it is not elided ahead of the deallocation. Best effort without `unsafe`.
        *self.inner = crypto_box::SecretKey::from_bytes([0u8; KEY_LEN]);
        std::hint::black_box(&mut *self.inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::TestRng;

    fn key_text(byte: u8) -> String {
        hex::encode([byte; KEY_LEN])
    }

    #[test]
    fn public_key_text_round_trips() {
        let key = SecretKey::generate(&mut TestRng::seeded(1)).public_key();
        let text = key.to_string();
        assert_eq!(text.len(), 64);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(text.parse::<PublicKey>(), Ok(key));
        assert_eq!(text.to_ascii_uppercase().parse::<PublicKey>(), Ok(key));
        assert_eq!(PublicKey::from_bytes(*key.as_bytes()), key);
        assert_eq!(format!("{key:?}"), format!("PublicKey({text})"));
    }

    #[test]
    fn only_canonical_encodings_are_canonical() {
        for seed in 0..20 {
            let key = SecretKey::generate(&mut TestRng::seeded(seed)).public_key();
            assert!(key.is_canonical(), "{key}");
            let mut twin = *key.as_bytes();
            twin[KEY_LEN - 1] |= 0x80;
            assert!(!PublicKey::from_bytes(twin).is_canonical(), "{key}");
        }
        let p_plus = |n: u8| {
            let mut bytes = [0xff; KEY_LEN];
            bytes[0] = 0xed + n;
            bytes[KEY_LEN - 1] = 0x7f;
            PublicKey::from_bytes(bytes)
        };
        assert!(PublicKey::from_bytes([0; KEY_LEN]).is_canonical());
        assert!(!PublicKey::from_bytes([0xff; KEY_LEN]).is_canonical());
        let mut below_p = [0xff; KEY_LEN];
        below_p[0] = 0xec;
        below_p[KEY_LEN - 1] = 0x7f;
        assert!(PublicKey::from_bytes(below_p).is_canonical(), "p - 1");
        for n in 0..=18 {
            assert!(!p_plus(n).is_canonical(), "p + {n}");
        }
    }

    #[test]
    fn a_key_digest_is_the_sha256_of_the_key_bytes_and_round_trips() {
        // sha256 of 32 zero bytes, as `sha256sum` prints it.
        let zero = PublicKey::from_bytes([0; KEY_LEN]).digest();
        assert_eq!(
            zero.to_string(),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
        let key = SecretKey::generate(&mut TestRng::seeded(6)).public_key();
        let digest = key.digest();
        assert!(digest.commits_to(&key));
        assert!(!digest.commits_to(&zero_key()));
        let text = digest.to_string();
        assert_eq!(text.parse::<KeyDigest>(), Ok(digest));
        assert_eq!(text.to_ascii_uppercase().parse::<KeyDigest>(), Ok(digest));
        assert_eq!(KeyDigest::from_bytes(*digest.as_bytes()), digest);
        assert_eq!(format!("{digest:?}"), format!("KeyDigest({text})"));
        let json = serde_json::to_string(&digest).expect("serialize");
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(
            serde_json::from_str::<KeyDigest>(&json).expect("deserialize"),
            digest
        );
        for bad in ["", &text[..63], &format!("{text}0"), &format!("{}g", &text[..63])] {
            assert!(
                matches!(bad.parse::<KeyDigest>(), Err(ProtoError::BadKey(_))),
                "{bad:?}"
            );
        }
    }

    fn zero_key() -> PublicKey {
        PublicKey::from_bytes([0; KEY_LEN])
    }

    #[test]
    fn public_key_parsing_is_exact() {
        let good = key_text(0xab);
        for bad in [
            String::new(),
            good[..63].to_owned(),
            format!("{good}0"),
            format!("{good}\n"),
            format!(" {}", &good[1..]),
            format!("{}g", &good[..63]),
        ] {
            assert!(
                matches!(bad.parse::<PublicKey>(), Err(ProtoError::BadKey(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn public_key_serde_is_the_hex_string() {
        let key = PublicKey::from_bytes([7; KEY_LEN]);
        let json = serde_json::to_string(&key).expect("serialize");
        assert_eq!(json, format!("\"{}\"", key_text(7)));
        assert_eq!(
            serde_json::from_str::<PublicKey>(&json).expect("deserialize"),
            key
        );
        assert!(serde_json::from_str::<PublicKey>("\"abcd\"").is_err());
        assert!(serde_json::from_str::<PublicKey>("[7,7]").is_err());
    }

    #[test]
    fn secret_key_hex_round_trips_and_tolerates_a_trailing_newline() {
        let key = SecretKey::generate(&mut TestRng::seeded(2));
        let text = key.to_hex();
        assert_eq!(text.len(), 64);
        for variant in [
            text.to_string(),
            format!("{}\n", *text),
            format!("{}\r\n \t", *text),
        ] {
            let parsed = SecretKey::from_hex(&variant).expect("parse");
            assert_eq!(parsed.public_key(), key.public_key());
        }
        let upper = SecretKey::from_hex(&text.to_ascii_uppercase()).expect("parse upper case");
        assert_eq!(upper.public_key(), key.public_key());
    }

    #[test]
    fn secret_key_errors_do_not_echo_the_input() {
        let almost = format!("{}zz", &key_text(0x5a)[..62]);
        for bad in [
            String::new(),
            almost.clone(),
            format!(" {}", key_text(0x5a)),
            key_text(1)[..60].into(),
        ] {
            let error = SecretKey::from_hex(&bad).expect_err("must reject");
            assert!(matches!(error, ProtoError::BadKey(_)));
            assert!(!error.to_string().contains("5a5a"), "{error}");
        }
    }

    #[test]
    fn secret_key_debug_is_redacted() {
        let key = SecretKey::generate(&mut TestRng::seeded(3));
        assert_eq!(format!("{key:?}"), "SecretKey(<redacted>)");
    }

    #[test]
    fn distinct_seeds_give_distinct_keys() {
        let a = SecretKey::generate(&mut TestRng::seeded(4)).public_key();
        let b = SecretKey::generate(&mut TestRng::seeded(5)).public_key();
        assert_ne!(a, b);
    }
}
