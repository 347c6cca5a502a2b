//! Arbitrary bytes through what the daemon does first: `Envelope::decode`, then `Sealer::open` under
//! a fixed host key. Every sender is treated as known, so arbitrary (small-order, non-canonical)
//! public keys reach the key exchange. Never panics, and opens only genuine envelopes: whenever
//! `open` succeeds, sealing the plaintext again with the envelope's own nonce must reproduce the
//! input byte for byte, which a forged or tampered envelope cannot do.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sesame_fuzz::ReplayNonce;
use sesame_proto::{Envelope, ErrorCode, ProtoError, Sealer};

/// A small cache, so that the clear-when-full path runs too.
static HOST: LazyLock<Sealer> = LazyLock::new(|| sesame_fuzz::host(8));
static CLIENT: LazyLock<Sealer> = LazyLock::new(sesame_fuzz::client);

fuzz_target!(|bytes: &[u8]| {
    let Ok(envelope) = Envelope::decode(bytes) else {
        return;
    };
    match HOST.open(&envelope, |_| true) {
        Ok(plaintext) => {
            assert_eq!(
                envelope.sender,
                CLIENT.public_key(),
                "opened an envelope from a sender whose secret key nobody here holds"
            );
            let resealed = CLIENT
                .seal(
                    &HOST.public_key(),
                    &mut ReplayNonce::new(envelope.nonce),
                    &plaintext,
                )
                .expect("a plaintext that arrived in an envelope fits in one");
            assert_eq!(resealed, bytes, "opened something that is not a genuine envelope");
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
