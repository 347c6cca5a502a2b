//! sesame's wire protocol: sealed envelopes, requests, responses, the replay window and the stable
//! error codes shared by the daemon and its clients.
//!
//! The crate is sans-IO and deterministic. It opens no sockets and files, reads no clock and owns no
//! randomness: the current time (`now_ms`, Unix milliseconds) and a cryptographic RNG are parameters,
//! so every behaviour can be tested on virtual time.
//!
//! A request travels as follows (DESIGN §3):
//!
//! 1. the client builds a [`Request`], encodes it to JSON and [`Sealer::seal`]s it to the daemon's key
//!    as a [`Domain::Request`];
//! 2. the daemon [`Envelope::decode`]s the bytes (structure only, no crypto), [`Sealer::open`]s it for a
//!    known sender as a [`Domain::Request`] (an answer turned back at it opens as nothing),
//!    [`Request::decode`]s and validates the plaintext and asks its [`ReplayWindow`] to
//!    [`admit`](ReplayWindow::admit) it;
//! 3. the daemon answers with a [`Response`] carrying an [`ErrorCode`], sealed as a
//!    [`Domain::Response`], which the client opens as one and accepts only for its request's id.
//!
//! ```
//! use rand_core::OsRng;
//! use sesame_proto::{Domain, Envelope, ReplayWindow, Request, Response, SecretKey, Sealer};
//!
//! let daemon = Sealer::new(SecretKey::generate(&mut OsRng));
//! let client = Sealer::new(SecretKey::generate(&mut OsRng));
//! let now_ms = 1_700_000_000_000;
//!
//! // Client side.
//! let request = Request::new(&mut OsRng, now_ms, "web-1", None, "uptime", vec![]);
//! let bytes = client.seal(Domain::Request, &daemon.public_key(), &mut OsRng, &request.encode())?;
//!
//! // Daemon side.
//! let mut window = ReplayWindow::new(60_000, 1_000_000);
//! let envelope = Envelope::decode(&bytes)?;
//! let plaintext = daemon.open(Domain::Request, &envelope, |sender| *sender == client.public_key())?;
//! let received = Request::decode(&plaintext)?;
//! window.admit(now_ms + 20, "web-1", &envelope.sender, &received)?;
//! assert_eq!(received.command, "uptime");
//! let answer = Response::ok(received.id, "up 3 days".into(), 20);
//! let reply = daemon.seal(Domain::Response, &client.public_key(), &mut OsRng, &answer.encode())?;
//!
//! // Client side: the answer opens as a response; the request it sent would not.
//! let envelope = Envelope::decode(&reply)?;
//! let plaintext = client.open(Domain::Response, &envelope, |sender| *sender == daemon.public_key())?;
//! assert_eq!(Response::decode(&plaintext)?.id, request.id);
//! # Ok::<(), sesame_proto::ProtoError>(())
//! ```

#![forbid(unsafe_code)]

mod code;
mod domain;
mod envelope;
mod error;
mod hex_text;
mod host_key;
mod keys;
mod message;
mod progress;
pub mod queues;
mod receipt;
mod receipt_signing;
mod replay;
mod rotation;
mod sealer;
mod time_text;

pub use code::ErrorCode;
pub use domain::{DOMAIN_LEN, Domain};
pub use envelope::{Envelope, HEADER_LEN, MAGIC, MAX_ENVELOPE_LEN, NONCE_LEN, OLD_MAGIC, TAG_LEN};
pub use error::{ProtoError, error_chain};
pub use host_key::{HOST_KEY_TYPES, HostKey, HostKeyError, MAX_HOST_KEY_LINE};
pub use keys::{KeyDigest, PublicKey, SecretKey};
pub use message::{
    GrantNote, MAX_ARG_LEN, MAX_ARGS, MAX_NAME_LEN, MAX_REPLY_TO_LEN, MAX_REQUEST_REASON_LEN, PendingNote,
    Request, RequestId, Response, Status,
};
pub use progress::{
    FRAME_HEADER_LEN, Frame, FrameKind, FrameReader, MAX_PROGRESS_TEXT, Progress, ProgressSource,
    progress_pieces,
};
pub use receipt::{HeldReceipt, RECORD_HASH_LEN, Receipt, RecordHash};
pub use receipt_signing::{
    RECEIPT_KEY_LEN, RECEIPT_SIGNATURE_LEN, ReceiptKey, ReceiptSignature, ReceiptSigner,
};
pub use replay::ReplayWindow;
pub use rotation::{Followed, HostKeyNote, HostPin, RotationRefused, SEALED_NEXT_KEY_LEN, SealedNextKey};
pub use sealer::{DEFAULT_CACHE_CAPACITY, MAX_MESSAGE_LEN, Sealer};
pub use time_text::format_utc;

/// The protocol version carried in the `v` field of every request and response. Version 2 is the
/// wire format whose envelopes start with [`MAGIC`] (`SSM2`) and seal a [`Domain`] byte; version 1
/// (`SSM1`) is refused.
pub const PROTOCOL_VERSION: u8 = 2;

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
        /// The client's secret key, as text (a `Sealer` does not give its key out).
        client_secret: String,
        window: ReplayWindow,
        rng: TestRng,
    }

    fn world() -> World {
        let mut rng = TestRng::seeded(60);
        let daemon = Sealer::new(SecretKey::generate(&mut rng));
        let client_secret = SecretKey::generate(&mut rng).to_hex().to_string();
        World {
            daemon,
            client: Sealer::new(SecretKey::from_hex(&client_secret).expect("key")),
            client_secret,
            window: ReplayWindow::new(60_000, 1000),
            rng,
        }
    }

    /// What the daemon does with incoming bytes, up to the point where policy takes over.
    fn receive(world: &mut World, bytes: &[u8], now_ms: u64) -> Result<Request, ProtoError> {
        let envelope = Envelope::decode(bytes)?;
        let client_key = world.client.public_key();
        let plaintext = world
            .daemon
            .open(Domain::Request, &envelope, |key| *key == client_key)?;
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
            .seal(Domain::Request, &daemon_key, &mut world.rng, &request.encode())
            .expect("seal");

        let received = receive(&mut world, &sealed, NOW + 5).expect("admitted");
        assert_eq!(received, request);
        assert_eq!(receive(&mut world, &sealed, NOW + 10), Err(ProtoError::Replay));

        let response = Response::ok(received.id, "up 3 days\n".into(), 420);
        let client_key = world.client.public_key();
        let reply = world
            .daemon
            .seal(Domain::Response, &client_key, &mut world.rng, &response.encode())
            .expect("seal");
        let envelope = Envelope::decode(&reply).expect("decode");
        let plaintext = world
            .client
            .open(Domain::Response, &envelope, |key| *key == daemon_key)
            .expect("open");
        assert_eq!(Response::decode(&plaintext), Ok(response));
    }

    /// Issue 19: the box key is the same both ways, so a host's answer with its `sender`
    /// rewritten to the client passes the MAC at the host. It must not open as a request (the
    /// daemon would answer it, under the id of the client's real request), whatever it says.
    #[test]
    fn an_answer_turned_back_at_the_host_does_not_open_as_a_request() {
        let mut world = world();
        let request = Request::new(&mut world.rng, NOW, "web-1", None, "uptime", vec![]);
        let client_key = world.client.public_key();
        let answers = [
            Response::error(request.id, ErrorCode::Denied, "no"),
            Response::ok(request.id, "out".into(), 1),
        ];
        // Even an "answer" whose JSON is a request: only the domain byte decides.
        let bodies = answers.iter().map(Response::encode).chain([request.encode()]);
        for body in bodies {
            let mut sealed = world
                .daemon
                .seal(Domain::Response, &client_key, &mut world.rng, &body)
                .expect("seal");
            sealed[4..36].copy_from_slice(client_key.as_bytes());
            let got = receive(&mut world, &sealed, NOW);
            assert_eq!(
                got,
                Err(ProtoError::WrongDomain {
                    expected: Domain::Request,
                    found: Domain::Response
                })
            );
            assert_eq!(got.map_err(|e| e.code()), Err(ErrorCode::MalformedEnvelope));
        }
    }

    /// The mirror case: a request the client sealed, handed back to it as if the host had
    /// answered, opens as nothing at the client.
    #[test]
    fn a_request_turned_back_at_the_client_does_not_open_as_an_answer() {
        let mut world = world();
        let request = Request::new(&mut world.rng, NOW, "web-1", None, "uptime", vec![]);
        let daemon_key = world.daemon.public_key();
        // Even a "request" whose JSON is an answer to itself.
        let answer = Response::ok(request.id, "forged".into(), 1);
        for body in [request.encode(), answer.encode()] {
            let mut sealed = world
                .client
                .seal(Domain::Request, &daemon_key, &mut world.rng, &body)
                .expect("seal");
            sealed[4..36].copy_from_slice(daemon_key.as_bytes());
            let envelope = Envelope::decode(&sealed).expect("decode");
            assert_eq!(
                world
                    .client
                    .open(Domain::Response, &envelope, |key| *key == daemon_key),
                Err(ProtoError::WrongDomain {
                    expected: Domain::Response,
                    found: Domain::Request
                })
            );
        }
    }

    /// An envelope of the first wire format is refused by name before any cryptography, and its
    /// body under the new magic (a bare JSON request with a good MAC) has no domain byte.
    #[test]
    fn the_first_wire_format_is_refused_before_and_after_its_magic_is_changed() {
        use crypto_box::aead::Aead as _;
        let mut world = world();
        let request = Request::new(&mut world.rng, NOW, "web-1", None, "uptime", vec![]);
        let client_secret = SecretKey::from_hex(&world.client_secret).expect("key");
        let raw = crypto_box::SalsaBox::new(
            &world.daemon.public_key().to_crypto_box(),
            client_secret.as_crypto_box(),
        );
        let ciphertext = raw
            .encrypt(&crypto_box::Nonce::default(), request.encode().as_slice())
            .expect("encrypt");
        let mut old = OLD_MAGIC.to_vec();
        old.extend_from_slice(world.client.public_key().as_bytes());
        old.extend_from_slice(&[0; NONCE_LEN]);
        old.extend_from_slice(&ciphertext);
        assert_eq!(receive(&mut world, &old, NOW), Err(ProtoError::OldWireFormat));
        old[..4].copy_from_slice(&MAGIC);
        assert_eq!(
            receive(&mut world, &old, NOW),
            Err(ProtoError::NoDomain { found: Some(b'{') })
        );
    }

    #[test]
    fn mutated_sealed_requests_never_panic_and_never_pass() {
        let mut world = world();
        let request = Request::new(&mut world.rng, NOW, "web-1", Some("c"), "cmd", vec!["a".into()]);
        let daemon_key = world.daemon.public_key();
        let sealed = world
            .client
            .seal(Domain::Request, &daemon_key, &mut world.rng, &request.encode())
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
