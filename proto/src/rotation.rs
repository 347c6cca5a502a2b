//! Following a host key rotation (`sesamed rotate-key`) without trusting the key it replaces.
//!
//! A host rotates its key because the old one may have leaked, so nothing the old key says on its
//! own may move a client. The host keeps its next key pair ready from its first start, and clients
//! pin that key's [`KeyDigest`] beside the current key (pre-rotation, as in KERI). The answer to a
//! request still sealed to the old key carries a [`HostKeyNote`]: the new key, and the digest of
//! the key after it *sealed by the new key itself*. [`HostPin::follow`] moves a pin only to a key
//! whose digest it holds, and takes the next digest only from that key, so the old key can choose
//! neither where a client goes nor what it will trust after that.

use std::fmt;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::{DOMAIN_LEN, Domain};
use crate::envelope::{Envelope, HEADER_LEN, TAG_LEN};
use crate::error::ProtoError;
use crate::hex_text;
use crate::keys::{KeyDigest, PublicKey};
use crate::sealer::Sealer;

/// Length of a [`SealedNextKey`]: an envelope sealing one domain byte and a 32-byte digest.
pub const SEALED_NEXT_KEY_LEN: usize = HEADER_LEN + TAG_LEN + DOMAIN_LEN + 32;

/// A host's new key, told to a client that still seals to the old one (see
/// [`Response::host_key_rotated`](crate::Response::host_key_rotated)).
///
/// The note travels inside an answer sealed under the *old* key: [`key`](Self::key) and
/// [`old_key_until_ms`](Self::old_key_until_ms) are only as authentic as that key. What the new
/// key says about its own successor is in [`next_key_sha256_sealed`](Self::next_key_sha256_sealed),
/// which only the new key (or the client) can seal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostKeyNote {
    /// The host's current key.
    pub key: PublicKey,
    /// Until when (Unix milliseconds) the host still accepts the old key.
    pub old_key_until_ms: u64,
    /// The digest of the key the host will rotate to next, sealed by [`key`](Self::key) to this
    /// client ([`Domain::NextKey`]); absent when the host keeps no next key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_key_sha256_sealed: Option<SealedNextKey>,
}

impl HostKeyNote {
    /// The note for `client`, written by the host's new key `current`: it names `current` and, if
    /// the host keeps one, the digest `next` of the key after it, sealed by `current` to `client`.
    pub fn new(
        rng: &mut impl CryptoRngCore,
        current: &Sealer,
        client: &PublicKey,
        next: Option<KeyDigest>,
        old_key_until_ms: u64,
    ) -> Result<Self, ProtoError> {
        let next_key_sha256_sealed = match next {
            Some(digest) => {
                let sealed = current.seal(Domain::NextKey, client, rng, digest.as_bytes())?;
                let bytes = <[u8; SEALED_NEXT_KEY_LEN]>::try_from(sealed.as_slice())
                    .map_err(|_| ProtoError::TooLarge { len: sealed.len() })?;
                Some(SealedNextKey(bytes))
            }
            None => None,
        };
        Ok(Self {
            key: current.public_key(),
            old_key_until_ms,
            next_key_sha256_sealed,
        })
    }

    /// The digest of the key after [`key`](Self::key), as `key` sealed it to `client` (`Ok(None)`
    /// when the note carries none). An error when it does not open as sealed by `key`: then
    /// whoever wrote the note does not hold the new key.
    pub fn next_key_sha256(&self, client: &Sealer) -> Result<Option<KeyDigest>, ProtoError> {
        let Some(sealed) = &self.next_key_sha256_sealed else {
            return Ok(None);
        };
        let envelope = Envelope::decode(&sealed.0)?;
        let plaintext = client.open(Domain::NextKey, &envelope, |sender| *sender == self.key)?;
        let bytes = <[u8; 32]>::try_from(plaintext.as_slice()).map_err(|_| {
            ProtoError::MalformedResponse(format!("a next-key digest of {} bytes", plaintext.len()))
        })?;
        Ok(Some(KeyDigest::from_bytes(bytes)))
    }
}

/// The digest of a host's next key, sealed by its current key to one client: an envelope of
/// exactly [`SEALED_NEXT_KEY_LEN`] bytes, written as hex in JSON.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SealedNextKey([u8; SEALED_NEXT_KEY_LEN]);

impl SealedNextKey {
    /// The envelope's bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; SEALED_NEXT_KEY_LEN] {
        &self.0
    }

    /// Wraps envelope bytes (tests and fuzzing; [`HostKeyNote::new`] seals real ones).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; SEALED_NEXT_KEY_LEN]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for SealedNextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::with_capacity(2 * SEALED_NEXT_KEY_LEN);
        hex_text::encode_lower_into(&self.0, &mut text);
        write!(f, "SealedNextKey({text})")
    }
}

impl Serialize for SealedNextKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = String::with_capacity(2 * SEALED_NEXT_KEY_LEN);
        hex_text::encode_lower_into(&self.0, &mut text);
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for SealedNextKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut bytes = [0u8; SEALED_NEXT_KEY_LEN];
        if hex_text::decode_exact(&text, &mut bytes) {
            Ok(Self(bytes))
        } else {
            Err(serde::de::Error::custom(format_args!(
                "a sealed next-key digest is exactly {} hex characters",
                2 * SEALED_NEXT_KEY_LEN
            )))
        }
    }
}

/// What a client pins for a host's keys: the key it seals to and, when it has one, the digest
/// of the key the host will rotate to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostPin {
    /// The key requests are sealed to.
    pub key: PublicKey,
    /// The digest of the host's next key (`sesamed show`); `None` for a pin made without it,
    /// which never follows a rotation by itself.
    pub next_key_sha256: Option<KeyDigest>,
}

/// A rotation [`HostPin::follow`] accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Followed {
    /// The pin to keep from now on: the new key, and the digest the new key sealed for its
    /// successor (`None` if it sealed none, or what came did not open under it).
    pub pin: HostPin,
    /// Why the note's sealed next-key digest was not taken, when it was there but did not open
    /// under the new key (a note written by someone who holds only the old key).
    pub next_key_refused: Option<ProtoError>,
}

/// Why a client does not follow a [`HostKeyNote`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RotationRefused {
    /// The pin holds no next-key digest, so no new key can be checked against one.
    #[error("this client pinned no digest of the host's next key, so it cannot verify a new one")]
    NoCommitment,
    /// The announced key is not the one the pinned digest commits to: the note was not written
    /// by the host's planned rotation (whoever holds the old key can write one), or the host lost
    /// the next key it had committed to.
    #[error("the new key's SHA-256 is {got}, not the pinned next-key digest {pinned}")]
    NotCommitted {
        /// The digest the client pinned.
        pinned: KeyDigest,
        /// The digest of the key the note names.
        got: KeyDigest,
    },
    /// The note names the key already pinned.
    #[error("the note names the key already pinned")]
    NotNew,
}

impl HostPin {
    /// Follows `note`, which came in an answer that opened under this pin's key, as the client
    /// `client`: the new pin, or why the note does not move it.
    ///
    /// The new key must be the one [`next_key_sha256`](Self::next_key_sha256) commits to. The
    /// digest of the key after it is taken only as the new key sealed it
    /// ([`HostKeyNote::next_key_sha256`]), never from the old key's word; if that does not open,
    /// the pin still moves (its new key is the committed one) but holds no next digest.
    pub fn follow(&self, note: &HostKeyNote, client: &Sealer) -> Result<Followed, RotationRefused> {
        if note.key == self.key {
            return Err(RotationRefused::NotNew);
        }
        let pinned = self.next_key_sha256.ok_or(RotationRefused::NoCommitment)?;
        if !pinned.commits_to(&note.key) {
            return Err(RotationRefused::NotCommitted {
                pinned,
                got: note.key.digest(),
            });
        }
        let (next_key_sha256, next_key_refused) = match note.next_key_sha256(client) {
            Ok(next) => (next, None),
            Err(e) => (None, Some(e)),
        };
        Ok(Followed {
            pin: HostPin {
                key: note.key,
                next_key_sha256,
            },
            next_key_refused,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;
    use crate::test_rng::TestRng;

    /// A host with its current key and its next key ready, and a client.
    struct World {
        keys: Vec<Sealer>,
        client: Sealer,
        rng: TestRng,
    }

    fn world(seed: u64) -> World {
        let mut rng = TestRng::seeded(seed);
        let keys = (0..4)
            .map(|_| Sealer::new(SecretKey::generate(&mut rng)))
            .collect();
        let client = Sealer::new(SecretKey::generate(&mut rng));
        World { keys, client, rng }
    }

    impl World {
        /// The note the host sends after rotating from key `i - 1` to key `i`, as the daemon
        /// builds it: written by key `i`, committing to key `i + 1`.
        fn note(&mut self, i: usize) -> HostKeyNote {
            let next = self.keys.get(i + 1).map(|k| k.public_key().digest());
            HostKeyNote::new(&mut self.rng, &self.keys[i], &self.client.public_key(), next, 99).expect("note")
        }

        /// A client's pin on key `i`, committed to key `i + 1`.
        fn pin(&self, i: usize) -> HostPin {
            HostPin {
                key: self.keys[i].public_key(),
                next_key_sha256: Some(self.keys[i + 1].public_key().digest()),
            }
        }
    }

    #[test]
    fn a_planned_rotation_is_followed_and_the_next_one_too() {
        let mut w = world(70);
        let mut pin = w.pin(0);
        for i in 1..=2 {
            let note = w.note(i);
            let followed = pin.follow(&note, &w.client).expect("followed");
            assert_eq!(followed.next_key_refused, None);
            assert_eq!(followed.pin, w.pin(i), "rotation {i}");
            pin = followed.pin;
        }
    }

    #[test]
    fn a_note_forged_under_the_old_key_naming_another_key_is_refused() {
        let mut w = world(71);
        let pin = w.pin(0);
        // The thief holds key 0 only, and names a key of their own (3), sealing its own
        // successor digest with it.
        let thief = &w.keys[3];
        let forged = HostKeyNote::new(
            &mut w.rng,
            thief,
            &w.client.public_key(),
            Some(thief.public_key().digest()),
            99,
        )
        .expect("note");
        assert_eq!(
            pin.follow(&forged, &w.client),
            Err(RotationRefused::NotCommitted {
                pinned: w.keys[1].public_key().digest(),
                got: thief.public_key().digest(),
            })
        );
    }

    /// The thief names the genuine next key (public once the host has rotated) but its own
    /// successor digest: the pin moves to the genuine key and takes no digest from the thief.
    #[test]
    fn the_old_key_cannot_choose_the_digest_a_client_pins_next() {
        let mut w = world(72);
        let pin = w.pin(0);
        let genuine = w.note(1);
        let thiefs_own = HostKeyNote::new(
            &mut w.rng,
            &w.keys[3],
            &w.client.public_key(),
            Some(w.keys[3].public_key().digest()),
            99,
        )
        .expect("note");
        // Sealed by the thief's key: either claiming its own sender, or the new key's.
        let mut rewritten = thiefs_own.next_key_sha256_sealed.expect("sealed");
        let mut bytes = *rewritten.as_bytes();
        bytes[4..36].copy_from_slice(genuine.key.as_bytes());
        rewritten = SealedNextKey::from_bytes(bytes);
        for (sealed, error) in [
            (thiefs_own.next_key_sha256_sealed, ProtoError::UnknownSender),
            (Some(rewritten), ProtoError::BadMac),
        ] {
            let forged = HostKeyNote {
                next_key_sha256_sealed: sealed,
                ..genuine
            };
            let followed = pin
                .follow(&forged, &w.client)
                .expect("the key is the committed one");
            assert_eq!(followed.pin.key, w.keys[1].public_key());
            assert_eq!(followed.pin.next_key_sha256, None);
            assert_eq!(followed.next_key_refused, Some(error));
        }
        // Nor can a digest sealed for another client be lifted into this one's note.
        let other = Sealer::new(SecretKey::generate(&mut w.rng));
        let for_other = HostKeyNote::new(
            &mut w.rng,
            &w.keys[1],
            &other.public_key(),
            Some(w.keys[3].public_key().digest()),
            99,
        )
        .expect("note");
        let lifted = HostKeyNote {
            next_key_sha256_sealed: for_other.next_key_sha256_sealed,
            ..genuine
        };
        let followed = pin.follow(&lifted, &w.client).expect("followed");
        assert_eq!(followed.pin.next_key_sha256, None);
        assert_eq!(followed.next_key_refused, Some(ProtoError::BadMac));
    }

    #[test]
    fn a_pin_without_a_digest_never_follows_and_a_note_naming_the_pin_is_no_rotation() {
        let mut w = world(73);
        let note = w.note(1);
        let bare = HostPin {
            key: w.keys[0].public_key(),
            next_key_sha256: None,
        };
        assert_eq!(bare.follow(&note, &w.client), Err(RotationRefused::NoCommitment));
        let same = HostKeyNote {
            key: w.keys[0].public_key(),
            ..note
        };
        assert_eq!(w.pin(0).follow(&same, &w.client), Err(RotationRefused::NotNew));
    }

    #[test]
    fn a_host_without_a_next_key_is_followed_to_a_pin_without_a_digest() {
        let mut w = world(74);
        let note = HostKeyNote::new(&mut w.rng, &w.keys[1], &w.client.public_key(), None, 5).expect("note");
        assert_eq!(note.next_key_sha256_sealed, None);
        let followed = w.pin(0).follow(&note, &w.client).expect("followed");
        assert_eq!(followed.pin.next_key_sha256, None);
        assert_eq!(followed.next_key_refused, None);
    }

    #[test]
    fn notes_round_trip_through_json_and_refuse_other_lengths() {
        let mut w = world(75);
        let note = w.note(1);
        let json = serde_json::to_value(note).expect("serialize");
        let sealed = json["next_key_sha256_sealed"].as_str().expect("hex").to_owned();
        assert_eq!(sealed.len(), 2 * SEALED_NEXT_KEY_LEN);
        let back: HostKeyNote = serde_json::from_value(json.clone()).expect("deserialize");
        assert_eq!(back, note);
        for bad in [&sealed[2..], &format!("{sealed}00"), "", "zz"] {
            let mut value = json.clone();
            value["next_key_sha256_sealed"] = bad.into();
            assert!(serde_json::from_value::<HostKeyNote>(value).is_err(), "{bad:?}");
        }
        let bare = HostKeyNote {
            next_key_sha256_sealed: None,
            ..note
        };
        let value = serde_json::to_value(bare).expect("serialize");
        assert!(value.get("next_key_sha256_sealed").is_none(), "{value}");
        assert_eq!(
            serde_json::from_value::<HostKeyNote>(value).expect("deserialize"),
            bare
        );
    }
}
