//! Arbitrary bytes through what the daemon does first: `Envelope::decode`, then `Sealer::open` of a
//! request under a fixed host key. Every sender is treated as known, so arbitrary (small-order,
//! non-canonical) public keys reach the key exchange. Never panics, and opens only genuine envelopes:
//! whenever the MAC holds (the envelope opens, or is refused for sealing another domain than a
//! request), sealing its plaintext again with the envelope's own nonce and domain must reproduce
//! the input byte for byte, which a forged or tampered envelope cannot do. An envelope that is
//! authentic but not a request (an answer turned back at the host) is refused, never opened.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sesame_fuzz::ReplayNonce;
use sesame_proto::{Domain, Envelope, ErrorCode, ProtoError, Sealer};

/// A small cache, so that the clear-when-full path runs too.
static HOST: LazyLock<Sealer> = LazyLock::new(|| sesame_fuzz::host(8));
static CLIENT: LazyLock<Sealer> = LazyLock::new(sesame_fuzz::client);

fuzz_target!(|bytes: &[u8]| {
    let Ok(envelope) = Envelope::decode(bytes) else {
        return;
    };
    match HOST.open(Domain::Request, &envelope, |_| true) {
        Ok(plaintext) => assert_genuine(bytes, &envelope, Domain::Request, &plaintext),
        Err(error @ ProtoError::WrongDomain { expected, found }) => {
            assert_eq!(expected, Domain::Request);
            assert_ne!(found, Domain::Request);
            assert_eq!(error.code(), ErrorCode::MalformedEnvelope);
            let plaintext = HOST
                .open(found, &envelope, |_| true)
                .expect("an envelope refused for its domain opens in that domain");
            assert_genuine(bytes, &envelope, found, &plaintext);
        }
        Err(ProtoError::BadMac) => {}
        Err(ProtoError::BadKey(reason)) => {
            let sender = envelope.sender;
            assert!(sender.is_small_order() || !sender.is_canonical(), "{reason}");
            assert_eq!(ProtoError::BadKey(reason).code(), ErrorCode::Internal);
        }
        Err(other) => panic!("unexpected error from open: {other:?}"),
    }
});

/// `bytes` passed the MAC between the fixture keys: it must be exactly what one of them seals.
fn assert_genuine(bytes: &[u8], envelope: &Envelope<'_>, domain: Domain, plaintext: &[u8]) {
    assert_eq!(
        envelope.sender,
        CLIENT.public_key(),
        "opened an envelope from a sender whose secret key nobody here holds"
    );
    let resealed = CLIENT
        .seal(
            domain,
            &HOST.public_key(),
            &mut ReplayNonce::new(envelope.nonce),
            plaintext,
        )
        .expect("a plaintext that arrived in an envelope fits in one");
    assert_eq!(resealed, bytes, "opened something that is not a genuine envelope");
}
