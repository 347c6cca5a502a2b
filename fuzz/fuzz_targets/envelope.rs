//! `Envelope::decode` on arbitrary bytes: never panics, rejects exactly what its docs say in the
//! documented order (the first wire format, `SSM1`, by name), and anything it accepts re-encodes to
//! the very same bytes.
//!
//! libFuzzer rarely grows an input to 64 KiB, so each input is also checked stretched (zero-padded)
//! to within 128 bytes of [`MAX_ENVELOPE_LEN`], the last byte choosing where: that covers the limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sesame_proto::{
    Envelope, ErrorCode, HEADER_LEN, MAGIC, MAX_ENVELOPE_LEN, NONCE_LEN, OLD_MAGIC, ProtoError, TAG_LEN,
};

fuzz_target!(|bytes: &[u8]| {
    check(bytes);
    let offset = bytes.last().map_or(0, |&last| i8::from_ne_bytes([last]));
    let mut stretched = bytes.to_vec();
    stretched.resize(MAX_ENVELOPE_LEN.saturating_add_signed(offset.into()), 0);
    check(&stretched);
});

fn check(bytes: &[u8]) {
    let len = bytes.len();
    match Envelope::decode(bytes) {
        Ok(envelope) => {
            assert!((HEADER_LEN + TAG_LEN..=MAX_ENVELOPE_LEN).contains(&len));
            assert_eq!(bytes[..MAGIC.len()], MAGIC);
            assert_eq!(envelope.sender.as_bytes()[..], bytes[4..36]);
            assert_eq!(envelope.nonce[..], bytes[36..36 + NONCE_LEN]);
            assert_eq!(envelope.ciphertext, &bytes[HEADER_LEN..]);
            assert!(envelope.ciphertext.len() >= TAG_LEN);
            assert_eq!(
                envelope.encode(),
                bytes,
                "decode then encode must give the input back"
            );
            assert_eq!(Envelope::decode(&envelope.encode()), Ok(envelope));
        }
        Err(error) => {
            let expected = if len > MAX_ENVELOPE_LEN {
                ProtoError::Oversize { len }
            } else if len < HEADER_LEN + TAG_LEN {
                ProtoError::Truncated { len }
            } else if bytes[..OLD_MAGIC.len()] == OLD_MAGIC {
                ProtoError::OldWireFormat
            } else {
                assert_ne!(
                    bytes[..MAGIC.len()],
                    MAGIC,
                    "a well-sized envelope with magic was refused"
                );
                ProtoError::BadMagic
            };
            assert_eq!(error, expected);
            assert_eq!(error.code(), ErrorCode::MalformedEnvelope);
        }
    }
}
