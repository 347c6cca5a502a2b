//! Sealing and opening envelopes with `crypto_box` (X25519 + XSalsa20-Poly1305), with one precomputed
//! box cached per peer key.
//!
//! The Diffie-Hellman step costs about 44 µs and a cached box about 2 µs, so the daemon keeps boxes for
//! the clients it talks to. Only peers the caller vouches for (see [`Sealer::open`]) enter the cache, the
//! cache is bounded, and nothing depends on it for correctness.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crypto_box::aead::Aead;
use crypto_box::{Nonce, SalsaBox};
use rand_core::CryptoRngCore;

use crate::domain::{DOMAIN_LEN, Domain};
use crate::envelope::{Envelope, HEADER_LEN, MAX_ENVELOPE_LEN, NONCE_LEN, TAG_LEN};
use crate::error::ProtoError;
use crate::keys::{PublicKey, SecretKey};

/// How many peers' boxes a [`Sealer`] keeps by default before it clears its cache.
pub const DEFAULT_CACHE_CAPACITY: usize = 4096;

/// The longest message [`Sealer::seal`] takes: what fits in [`MAX_ENVELOPE_LEN`] after the header,
/// the tag and the domain byte.
pub const MAX_MESSAGE_LEN: usize = MAX_ENVELOPE_LEN - HEADER_LEN - TAG_LEN - DOMAIN_LEN;

/// Seals envelopes to peers and opens envelopes from them, under one secret key.
///
/// `Sealer` is `Send + Sync`; share it behind an `Arc`. `crypto_box` keys are symmetric within a pair
/// of peers, so an envelope turned back at its sender with a rewritten `sender` field still passes
/// the MAC. Every plaintext is therefore sealed behind a [`Domain`] byte, and [`open`](Self::open)
/// returns only plaintexts of the domain its caller expects: a host opens only
/// [`Domain::Request`], a client only [`Domain::Response`]. A client must still check that a
/// response's id is the id it sent.
pub struct Sealer {
    secret: SecretKey,
    public: PublicKey,
    capacity: usize,
    boxes: RwLock<HashMap<PublicKey, Arc<SalsaBox>>>,
}

impl Sealer {
    /// A sealer for `secret`, caching up to [`DEFAULT_CACHE_CAPACITY`] peers.
    #[must_use]
    pub fn new(secret: SecretKey) -> Self {
        Self::with_cache_capacity(secret, DEFAULT_CACHE_CAPACITY)
    }

    /// A sealer for `secret` caching up to `capacity` peers (0 disables the cache). When the cache is
    /// full and a new peer arrives, the whole cache is cleared: simple, bounded, and only costs time.
    #[must_use]
    pub fn with_cache_capacity(secret: SecretKey, capacity: usize) -> Self {
        let public = secret.public_key();
        Self {
            secret,
            public,
            capacity,
            boxes: RwLock::new(HashMap::new()),
        }
    }

    /// This sealer's own public key, which goes in the `sender` field of every envelope it seals.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Seals `plaintext`, a message of `domain`, to `recipient` under a fresh random nonce; returns
    /// the full envelope bytes. The domain byte is sealed with the message, ahead of it.
    ///
    /// Fails with [`ProtoError::TooLarge`] if the envelope would exceed [`MAX_ENVELOPE_LEN`] (the
    /// plaintext may be at most [`MAX_MESSAGE_LEN`] bytes), and with
    /// [`ProtoError::BadKey`] if `recipient` has small order (anyone could read the result) or is not
    /// [canonically encoded](PublicKey::is_canonical). Seal only to peers you already trust: each new
    /// recipient takes a cache slot.
    pub fn seal(
        &self,
        domain: Domain,
        recipient: &PublicKey,
        rng: &mut impl CryptoRngCore,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ProtoError> {
        let len = plaintext.len().saturating_add(HEADER_LEN + TAG_LEN + DOMAIN_LEN);
        if len > MAX_ENVELOPE_LEN {
            return Err(ProtoError::TooLarge { len });
        }
        let peer_box = self.box_for(recipient)?;
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut message = Vec::with_capacity(DOMAIN_LEN + plaintext.len());
        message.push(domain.as_byte());
        message.extend_from_slice(plaintext);
        // XSalsa20-Poly1305 only fails to encrypt inputs far beyond MAX_ENVELOPE_LEN.
        let ciphertext = peer_box
            .encrypt(&Nonce::from(nonce), message.as_slice())
            .map_err(|_| ProtoError::TooLarge { len })?;
        Ok(Envelope {
            sender: self.public,
            nonce,
            ciphertext: &ciphertext,
        }
        .encode())
    }

    /// Authenticates and decrypts `envelope`, which must seal a message of `domain`; returns that
    /// message (the plaintext after its domain byte).
    ///
    /// `is_known` is asked about the claimed sender before any cryptography or caching; if it says no
    /// the result is [`ProtoError::UnknownSender`], so strangers cost no DH and cannot grow the cache.
    /// A failed MAC (tampering, wrong nonce, sealed to another key, forged sender) is
    /// [`ProtoError::BadMac`]; a known sender whose key has small order or is not
    /// [canonically encoded](PublicKey::is_canonical) is [`ProtoError::BadKey`], so the `sender` of an
    /// envelope that opens is exactly the key that sealed it, or the key it was sealed to, turned
    /// back: an authentic envelope of another domain is [`ProtoError::WrongDomain`] (one without a
    /// domain byte [`ProtoError::NoDomain`]), and nothing of its content is returned.
    pub fn open(
        &self,
        domain: Domain,
        envelope: &Envelope<'_>,
        is_known: impl FnOnce(&PublicKey) -> bool,
    ) -> Result<Vec<u8>, ProtoError> {
        if !is_known(&envelope.sender) {
            return Err(ProtoError::UnknownSender);
        }
        let peer_box = self.box_for(&envelope.sender)?;
        let mut plaintext = peer_box
            .decrypt(&Nonce::from(envelope.nonce), envelope.ciphertext)
            .map_err(|_| ProtoError::BadMac)?;
        let found = plaintext.first().copied();
        match found.and_then(Domain::from_byte) {
            Some(sealed) if sealed == domain => {
                plaintext.drain(..DOMAIN_LEN);
                Ok(plaintext)
            }
            Some(sealed) => Err(ProtoError::WrongDomain {
                expected: domain,
                found: sealed,
            }),
            None => Err(ProtoError::NoDomain { found }),
        }
    }

    /// Drops the cached box for `peer` (client removed, key rotated). Harmless if none is cached.
    ///
    /// This is memory hygiene, not access control: [`open`](Self::open) asks `is_known` before it
    /// looks at the cache, so a box re-cached by a request racing with the removal is never used.
    pub fn forget(&self, peer: &PublicKey) {
        self.write_cache().remove(peer);
    }

    /// How many peers currently have a cached box (for metrics and tests).
    #[must_use]
    pub fn cached_peers(&self) -> usize {
        self.read_cache().len()
    }

    /// The box shared with `peer`, from the cache or computed (and cached) now.
    fn box_for(&self, peer: &PublicKey) -> Result<Arc<SalsaBox>, ProtoError> {
        if let Some(cached) = self.read_cache().get(peer) {
            return Ok(Arc::clone(cached));
        }
        if peer.is_small_order() {
            return Err(ProtoError::BadKey("peer public key has small order".into()));
        }
        if !peer.is_canonical() {
            return Err(ProtoError::BadKey(
                "peer public key is not canonically encoded".into(),
            ));
        }
        let fresh = Arc::new(SalsaBox::new(&peer.to_crypto_box(), self.secret.as_crypto_box()));
        if self.capacity > 0 {
            let mut cache = self.write_cache();
            if cache.len() >= self.capacity && !cache.contains_key(peer) {
                cache.clear();
            }
            cache.insert(*peer, Arc::clone(&fresh));
        }
        Ok(fresh)
    }

    fn read_cache(&self) -> RwLockReadGuard<'_, HashMap<PublicKey, Arc<SalsaBox>>> {
        // A panic while holding the lock cannot leave the map inconsistent, and the cache is only an
        // optimisation, so a poisoned lock is used as is.
        self.boxes.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_cache(&self) -> RwLockWriteGuard<'_, HashMap<PublicKey, Arc<SalsaBox>>> {
        self.boxes.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("public", &self.public)
            .field("cached_peers", &self.cached_peers())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::keys::SMALL_ORDER_POINTS;
    use crate::test_rng::TestRng;

    struct Pair {
        daemon: Sealer,
        client: Sealer,
        rng: TestRng,
    }

    fn pair(seed: u64) -> Pair {
        let mut rng = TestRng::seeded(seed);
        let daemon = Sealer::new(SecretKey::generate(&mut rng));
        let client = Sealer::new(SecretKey::generate(&mut rng));
        Pair { daemon, client, rng }
    }

    /// Opens `bytes` as a request from `sender`, as a host does.
    fn open_from(receiver: &Sealer, bytes: &[u8], sender: PublicKey) -> Result<Vec<u8>, ProtoError> {
        receiver.open(Domain::Request, &Envelope::decode(bytes)?, |key| *key == sender)
    }

    #[test]
    fn seal_then_open_round_trips_both_ways() {
        let Pair {
            daemon,
            client,
            mut rng,
        } = pair(10);
        let request = client
            .seal(Domain::Request, &daemon.public_key(), &mut rng, b"hello daemon")
            .expect("seal");
        assert_eq!(
            open_from(&daemon, &request, client.public_key()).expect("open"),
            b"hello daemon"
        );
        let reply = daemon
            .seal(Domain::Response, &client.public_key(), &mut rng, b"hello client")
            .expect("seal");
        assert_eq!(
            client
                .open(
                    Domain::Response,
                    &Envelope::decode(&reply).expect("decode"),
                    |k| { *k == daemon.public_key() }
                )
                .expect("open"),
            b"hello client"
        );
        assert_eq!(
            Envelope::decode(&request).expect("decode").sender,
            client.public_key()
        );
    }

    #[test]
    fn a_message_opens_only_in_the_domain_it_was_sealed_in() {
        let Pair {
            daemon,
            client,
            mut rng,
        } = pair(24);
        for &sealed_as in Domain::ALL {
            let bytes = daemon
                .seal(sealed_as, &client.public_key(), &mut rng, b"body")
                .expect("seal");
            let envelope = Envelope::decode(&bytes).expect("decode");
            for &opened_as in Domain::ALL {
                let got = client.open(opened_as, &envelope, |k| *k == daemon.public_key());
                if opened_as == sealed_as {
                    assert_eq!(got.expect("its own domain"), b"body");
                } else {
                    assert_eq!(
                        got,
                        Err(ProtoError::WrongDomain {
                            expected: opened_as,
                            found: sealed_as
                        })
                    );
                }
            }
        }
    }

    /// What the first wire format sealed (a bare JSON message), or nothing at all, under the right
    /// key and with a good MAC, is still refused: no domain byte says what it is.
    #[test]
    fn a_plaintext_without_a_domain_byte_is_refused() {
        use crypto_box::aead::Aead as _;
        let Pair {
            daemon,
            client,
            rng: _,
        } = pair(25);
        let raw = SalsaBox::new(
            &daemon.public_key().to_crypto_box(),
            client.secret.as_crypto_box(),
        );
        for (plaintext, found) in [
            (&b"{\"v\":1}"[..], Some(b'{')),
            (b"", None),
            (b"\xff", Some(0xff)),
        ] {
            let ciphertext = raw.encrypt(&Nonce::default(), plaintext).expect("encrypt");
            let envelope = Envelope {
                sender: client.public_key(),
                nonce: [0; NONCE_LEN],
                ciphertext: &ciphertext,
            };
            assert_eq!(
                daemon.open(Domain::Request, &envelope, |_| true),
                Err(ProtoError::NoDomain { found })
            );
        }
    }

    #[test]
    fn empty_and_maximal_plaintexts_seal() {
        let Pair {
            daemon,
            client,
            mut rng,
        } = pair(11);
        let max = MAX_MESSAGE_LEN;
        for len in [0, 1, max] {
            let plaintext = vec![0x42; len];
            let bytes = client
                .seal(Domain::Request, &daemon.public_key(), &mut rng, &plaintext)
                .expect("seal");
            assert_eq!(bytes.len(), HEADER_LEN + TAG_LEN + DOMAIN_LEN + len);
            assert_eq!(
                open_from(&daemon, &bytes, client.public_key()).expect("open"),
                plaintext
            );
        }
        let too_big = vec![0; max + 1];
        assert_eq!(
            client.seal(Domain::Request, &daemon.public_key(), &mut rng, &too_big),
            Err(ProtoError::TooLarge {
                len: MAX_ENVELOPE_LEN + 1
            })
        );
    }

    #[test]
    fn nonces_are_fresh() {
        let Pair {
            daemon,
            client,
            mut rng,
        } = pair(12);
        let a = client
            .seal(Domain::Request, &daemon.public_key(), &mut rng, b"same")
            .expect("seal");
        let b = client
            .seal(Domain::Request, &daemon.public_key(), &mut rng, b"same")
            .expect("seal");
        assert_ne!(a[36..60], b[36..60]);
        assert_ne!(a, b);
    }

    #[test]
    fn flipped_ciphertext_bits_fail_the_mac() {
        let Pair {
            daemon,
            client,
            mut rng,
        } = pair(13);
        let bytes = client
            .seal(Domain::Request, &daemon.public_key(), &mut rng, b"payload")
            .expect("seal");
        for index in HEADER_LEN..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[index] ^= 0x01;
            assert_eq!(
                open_from(&daemon, &tampered, client.public_key()),
                Err(ProtoError::BadMac),
                "{index}"
            );
        }
    }

    #[test]
    fn flipped_nonce_bits_fail_the_mac() {
        let Pair {
            daemon,
            client,
            mut rng,
        } = pair(14);
        let bytes = client
            .seal(Domain::Request, &daemon.public_key(), &mut rng, b"payload")
            .expect("seal");
        for index in 36..HEADER_LEN {
            let mut tampered = bytes.clone();
            tampered[index] ^= 0x80;
            assert_eq!(
                open_from(&daemon, &tampered, client.public_key()),
                Err(ProtoError::BadMac),
                "{index}"
            );
        }
    }

    #[test]
    fn an_envelope_for_another_recipient_fails_the_mac() {
        let Pair {
            daemon,
            client,
            mut rng,
        } = pair(15);
        let other_daemon = Sealer::new(SecretKey::generate(&mut rng));
        let bytes = client
            .seal(Domain::Request, &other_daemon.public_key(), &mut rng, b"payload")
            .expect("seal");
        assert_eq!(
            open_from(&daemon, &bytes, client.public_key()),
            Err(ProtoError::BadMac)
        );
    }

    #[test]
    fn a_forged_sender_fails_the_mac() {
        let Pair {
            daemon,
            client,
            mut rng,
        } = pair(16);
        let impostor = Sealer::new(SecretKey::generate(&mut rng));
        let mut bytes = impostor
            .seal(Domain::Request, &daemon.public_key(), &mut rng, b"payload")
            .expect("seal");
        bytes[4..36].copy_from_slice(client.public_key().as_bytes());
        assert_eq!(
            open_from(&daemon, &bytes, client.public_key()),
            Err(ProtoError::BadMac)
        );
    }

    #[test]
    fn unknown_senders_are_refused_before_crypto_and_not_cached() {
        let Pair {
            daemon,
            client,
            mut rng,
        } = pair(17);
        let bytes = client
            .seal(Domain::Request, &daemon.public_key(), &mut rng, b"payload")
            .expect("seal");
        let envelope = Envelope::decode(&bytes).expect("decode");
        let mut asked = None;
        let result = daemon.open(Domain::Request, &envelope, |key| {
            asked = Some(*key);
            false
        });
        assert_eq!(result, Err(ProtoError::UnknownSender));
        assert_eq!(asked, Some(client.public_key()));
        assert_eq!(daemon.cached_peers(), 0);

        // Garbage from a stranger is refused the same way, MAC never checked.
        let mut garbage = bytes.clone();
        garbage[HEADER_LEN] ^= 0xff;
        assert_eq!(
            open_from(&daemon, &garbage, PublicKey::from_bytes([1; 32])),
            Err(ProtoError::UnknownSender)
        );
        assert_eq!(daemon.cached_peers(), 0);
    }

    #[test]
    fn known_peers_are_cached_and_can_be_forgotten() {
        let Pair {
            daemon,
            client,
            mut rng,
        } = pair(18);
        for _ in 0..3 {
            let bytes = client
                .seal(Domain::Request, &daemon.public_key(), &mut rng, b"x")
                .expect("seal");
            open_from(&daemon, &bytes, client.public_key()).expect("open");
        }
        assert_eq!(daemon.cached_peers(), 1);
        daemon.forget(&client.public_key());
        assert_eq!(daemon.cached_peers(), 0);
        daemon.forget(&client.public_key());
        let bytes = client
            .seal(Domain::Request, &daemon.public_key(), &mut rng, b"again")
            .expect("seal");
        assert_eq!(
            open_from(&daemon, &bytes, client.public_key()).expect("open"),
            b"again"
        );
    }

    #[test]
    fn the_cache_is_bounded_and_clears_when_full() {
        let mut rng = TestRng::seeded(19);
        let daemon = Sealer::with_cache_capacity(SecretKey::generate(&mut rng), 3);
        let clients: Vec<Sealer> = (0..7)
            .map(|_| Sealer::new(SecretKey::generate(&mut rng)))
            .collect();
        for (index, client) in clients.iter().enumerate() {
            let bytes = client
                .seal(Domain::Request, &daemon.public_key(), &mut rng, b"x")
                .expect("seal");
            open_from(&daemon, &bytes, client.public_key()).expect("open");
            assert!(daemon.cached_peers() <= 3, "after client {index}");
        }
        assert_eq!(
            daemon.cached_peers(),
            1,
            "7 peers into 3 slots: cleared after the 3rd and 6th"
        );

        let uncached = Sealer::with_cache_capacity(SecretKey::generate(&mut rng), 0);
        let bytes = clients[0]
            .seal(Domain::Request, &uncached.public_key(), &mut rng, b"x")
            .expect("seal");
        assert_eq!(
            open_from(&uncached, &bytes, clients[0].public_key()).expect("open"),
            b"x"
        );
        assert_eq!(uncached.cached_peers(), 0);
    }

    #[test]
    fn small_order_keys_are_refused_before_caching() {
        let Pair {
            daemon,
            client: _,
            mut rng,
        } = pair(20);
        for point in SMALL_ORDER_POINTS {
            for top_bit in [0, 0x80] {
                let mut bytes = point;
                bytes[31] |= top_bit;
                let weak = PublicKey::from_bytes(bytes);
                assert!(
                    matches!(
                        daemon.seal(Domain::Response, &weak, &mut rng, b"secret"),
                        Err(ProtoError::BadKey(_))
                    ),
                    "{weak}"
                );
                let forged = Envelope {
                    sender: weak,
                    nonce: [0; NONCE_LEN],
                    ciphertext: &[0; TAG_LEN],
                };
                assert!(
                    matches!(
                        daemon.open(Domain::Request, &forged, |_| true),
                        Err(ProtoError::BadKey(_))
                    ),
                    "{weak}"
                );
            }
        }
        assert_eq!(daemon.cached_peers(), 0);
    }

    /// Found by the `open` fuzz target: X25519 ignores the top bit of a key, so an envelope whose
    /// sender had that bit flipped used to open, naming a "sender" that is not the sealer's key.
    #[test]
    fn non_canonical_sender_encodings_are_refused() {
        let Pair {
            daemon,
            client,
            mut rng,
        } = pair(23);
        let bytes = client
            .seal(Domain::Request, &daemon.public_key(), &mut rng, b"payload")
            .expect("seal");
        let mut twin = bytes.clone();
        twin[35] |= 0x80;
        let envelope = Envelope::decode(&twin).expect("decode");
        assert!(
            matches!(
                daemon.open(Domain::Request, &envelope, |_| true),
                Err(ProtoError::BadKey(_))
            ),
            "{envelope:?}"
        );
        assert!(matches!(
            daemon.seal(Domain::Response, &envelope.sender, &mut rng, b"x"),
            Err(ProtoError::BadKey(_))
        ));
        assert_eq!(
            open_from(&daemon, &bytes, client.public_key()).expect("the canonical sender opens"),
            b"payload"
        );
        assert_eq!(daemon.cached_peers(), 1);
    }

    /// Checks the blocklist itself: with a small-order peer key the shared secret takes at most five
    /// values whatever our secret key (the u-coordinates of the points of order 1, 2, 4 and 8), so the
    /// box keys collide; with a real key they never do.
    #[test]
    fn the_small_order_blocklist_really_is_small_order() {
        use crypto_box::aead::AeadInPlace;

        let probe = |peer: &PublicKey, secret: &SecretKey| {
            let peer_box = SalsaBox::new(&peer.to_crypto_box(), secret.as_crypto_box());
            let tag = peer_box
                .encrypt_in_place_detached(&Nonce::default(), b"", &mut [])
                .expect("probe");
            tag.to_vec()
        };
        let mut rng = TestRng::seeded(22);
        let secrets: Vec<SecretKey> = (0..40).map(|_| SecretKey::generate(&mut rng)).collect();
        for point in SMALL_ORDER_POINTS {
            let weak = PublicKey::from_bytes(point);
            let tags: HashSet<Vec<u8>> = secrets.iter().map(|secret| probe(&weak, secret)).collect();
            assert!(tags.len() <= 5, "{weak}: {} distinct box keys", tags.len());
        }
        let honest = SecretKey::generate(&mut rng).public_key();
        assert!(!honest.is_small_order());
        let tags: HashSet<Vec<u8>> = secrets.iter().map(|secret| probe(&honest, secret)).collect();
        assert_eq!(tags.len(), secrets.len());
    }

    #[test]
    fn sealer_is_send_and_sync_and_debug_hides_the_secret() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Sealer>();
        let Pair { daemon, .. } = pair(21);
        let debug = format!("{daemon:?}");
        assert!(debug.contains(&daemon.public_key().to_string()), "{debug}");
        assert!(!debug.contains("secret"), "{debug}");
    }
}
