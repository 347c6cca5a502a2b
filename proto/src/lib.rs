//! sesame's wire protocol: sealed envelopes, requests, responses, the replay window and the stable
//! error codes shared by the daemon and its clients.
//!
//! The crate is sans-IO and deterministic. It opens no sockets and files, reads no clock and owns no
//! randomness: the current time (`now_ms`, Unix milliseconds) and a cryptographic RNG are parameters,
//! so every behaviour can be tested on virtual time.
//!
//! A request travels as follows (DESIGN §3):
//!
//! 1. the client builds a [`Request`], encodes it to JSON and [`Sealer::seal`]s it to the daemon's key;
//! 2. the daemon [`Envelope::decode`]s the bytes (structure only, no crypto), [`Sealer::open`]s it for a
//!    known sender, [`Request::decode`]s and validates the plaintext and asks its [`ReplayWindow`] to
//!    [`admit`](ReplayWindow::admit) it;
//! 3. the daemon answers with a sealed [`Response`] carrying an [`ErrorCode`].
//!
//! ```
//! use rand_core::OsRng;
//! use sesame_proto::{Envelope, ReplayWindow, Request, SecretKey, Sealer};
//!
//! let daemon = Sealer::new(SecretKey::generate(&mut OsRng));
//! let client = Sealer::new(SecretKey::generate(&mut OsRng));
//! let now_ms = 1_700_000_000_000;
//!
//! // Client side.
//! let request = Request::new(&mut OsRng, now_ms, "web-1", None, "uptime", vec![]);
//! let bytes = client.seal(&daemon.public_key(), &mut OsRng, &request.encode())?;
//!
//! // Daemon side.
//! let mut window = ReplayWindow::new(60_000, 1_000_000);
//! let envelope = Envelope::decode(&bytes)?;
//! let plaintext = daemon.open(&envelope, |sender| *sender == client.public_key())?;
//! let received = Request::decode(&plaintext)?;
//! window.admit(now_ms + 20, "web-1", &envelope.sender, &received)?;
//! assert_eq!(received.command, "uptime");
//! # Ok::<(), sesame_proto::ProtoError>(())
//! ```

#![forbid(unsafe_code)]

mod code;
mod envelope;
mod error;
mod hex_text;
mod keys;
mod message;
pub mod queues;
mod replay;
mod sealer;

pub use code::ErrorCode;
pub use envelope::{Envelope, HEADER_LEN, MAGIC, MAX_ENVELOPE_LEN, NONCE_LEN, TAG_LEN};
pub use error::{ProtoError, error_chain};
pub use keys::{PublicKey, SecretKey};
pub use message::{
    GrantNote, HostKeyNote, MAX_ARG_LEN, MAX_ARGS, MAX_NAME_LEN, MAX_REPLY_TO_LEN, Request, RequestId,
    Response, Status,
};
pub use replay::ReplayWindow;
pub use sealer::{DEFAULT_CACHE_CAPACITY, Sealer};

/// The protocol version carried in the `v` field of every request and response.
pub const PROTOCOL_VERSION: u8 = 1;

#[cfg(test)]
pub(crate) mod test_rng {
    //! A seeded, deterministic RNG for tests only. It is NOT cryptographically secure; it claims
    //! `CryptoRng` so tests can drive the same code paths as production callers passing `OsRng`.

    use rand_core::{CryptoRng, Error, RngCore};

    /// SplitMix64: tiny, seedable, good enough to give distinct keys, nonces and ids in tests.
    #[derive(Debug, Clone)]
    pub(crate) struct TestRng(u64);

    impl TestRng {
        pub(crate) fn seeded(seed: u64) -> Self {
            Self(seed)
        }
    }

    impl RngCore for TestRng {
        fn next_u32(&mut self) -> u32 {
            (self.next_u64() >> 32) as u32
        }

        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for chunk in dest.chunks_mut(8) {
                let bytes = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
        }

        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl CryptoRng for TestRng {}
}

#[cfg(test)]
mod tests {
    //! The whole request path, client to daemon and back, as the daemon and client drive it.

    use super::*;
    use crate::test_rng::TestRng;

    const NOW: u64 = 1_700_000_000_000;

    struct World {
        daemon: Sealer,
        client: Sealer,
        window: ReplayWindow,
        rng: TestRng,
    }

    fn world() -> World {
        let mut rng = TestRng::seeded(60);
        World {
            daemon: Sealer::new(SecretKey::generate(&mut rng)),
            client: Sealer::new(SecretKey::generate(&mut rng)),
            window: ReplayWindow::new(60_000, 1000),
            rng,
        }
    }

    /// What the daemon does with incoming bytes, up to the point where policy takes over.
    fn receive(world: &mut World, bytes: &[u8], now_ms: u64) -> Result<Request, ProtoError> {
        let envelope = Envelope::decode(bytes)?;
        let client_key = world.client.public_key();
        let plaintext = world.daemon.open(&envelope, |key| *key == client_key)?;
        let request = Request::decode(&plaintext)?;
        world.window.admit(now_ms, "web-1", &client_key, &request)?;
        Ok(request)
    }

    #[test]
    fn a_request_travels_and_is_answered_once() {
        let mut world = world();
        let request = Request::new(&mut world.rng, NOW, "web-1", None, "uptime", vec!["-p".into()]);
        let daemon_key = world.daemon.public_key();
        let sealed = world
            .client
            .seal(&daemon_key, &mut world.rng, &request.encode())
            .expect("seal");

        let received = receive(&mut world, &sealed, NOW + 5).expect("admitted");
        assert_eq!(received, request);
        assert_eq!(receive(&mut world, &sealed, NOW + 10), Err(ProtoError::Replay));

        let response = Response::ok(received.id, "up 3 days\n".into(), 420);
        let client_key = world.client.public_key();
        let reply = world
            .daemon
            .seal(&client_key, &mut world.rng, &response.encode())
            .expect("seal");
        let envelope = Envelope::decode(&reply).expect("decode");
        let plaintext = world
            .client
            .open(&envelope, |key| *key == daemon_key)
            .expect("open");
        assert_eq!(Response::decode(&plaintext), Ok(response));
    }

    #[test]
    fn a_reflected_envelope_is_rejected_by_shape() {
        let mut world = world();
        let request = Request::new(&mut world.rng, NOW, "web-1", None, "uptime", vec![]);
        let daemon_key = world.daemon.public_key();
        let mut sealed = world
            .client
            .seal(&daemon_key, &mut world.rng, &request.encode())
            .expect("seal");
        // Sent back to the client as if from the daemon: the pair's box key is symmetric, so it opens...
        sealed[4..36].copy_from_slice(daemon_key.as_bytes());
        let envelope = Envelope::decode(&sealed).expect("decode");
        let plaintext = world
            .client
            .open(&envelope, |key| *key == daemon_key)
            .expect("opens");
        // ...but it is not a response.
        assert!(matches!(
            Response::decode(&plaintext),
            Err(ProtoError::MalformedResponse(_))
        ));
    }

    #[test]
    fn mutated_sealed_requests_never_panic_and_never_pass() {
        let mut world = world();
        let request = Request::new(&mut world.rng, NOW, "web-1", Some("c"), "cmd", vec!["a".into()]);
        let daemon_key = world.daemon.public_key();
        let sealed = world
            .client
            .seal(&daemon_key, &mut world.rng, &request.encode())
            .expect("seal");
        let mut state = 0x9e37_79b9_u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as usize
        };
        for _ in 0..5_000 {
            let mut bytes = sealed.clone();
            let index = next() % bytes.len();
            bytes[index] ^= 1 << (next() % 8);
            if next() % 4 == 0 {
                bytes.truncate(next() % bytes.len());
            }
            assert!(receive(&mut world, &bytes, NOW).is_err());
        }
        assert_eq!(receive(&mut world, &sealed, NOW), Ok(request));
    }
}
