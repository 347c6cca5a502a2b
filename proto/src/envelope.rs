//! The binary envelope: `magic "SSM2" | sender_pk[32] | nonce[24] | ciphertext`, where the
//! ciphertext seals a [`Domain`](crate::Domain) byte followed by the message.
//!
//! Decoding checks structure only (length bounds, then magic) and borrows the ciphertext; it never
//! touches cryptography, so malformed input is rejected as cheaply as possible (DESIGN §3, error 2001).
//!
//! The first wire format, `SSM1`, sealed the bare message, so a message could be turned back at its
//! sender and still open (issue 19). Its envelopes are refused by name
//! ([`ProtoError::OldWireFormat`]), never opened.

use std::fmt;

use crate::error::ProtoError;
use crate::hex_text;
use crate::keys::PublicKey;

/// The four bytes every envelope starts with: the wire format's version.
pub const MAGIC: [u8; 4] = *b"SSM2";
/// The magic of the first wire format, whose envelopes are refused as
/// [`ProtoError::OldWireFormat`].
pub const OLD_MAGIC: [u8; 4] = *b"SSM1";
/// Length of the nonce in bytes (XSalsa20).
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag that every ciphertext carries, in bytes.
pub const TAG_LEN: usize = 16;
/// Length of the fixed header: magic, sender key and nonce.
pub const HEADER_LEN: usize = MAGIC.len() + 32 + NONCE_LEN;
/// The largest envelope accepted or produced, header included.
pub const MAX_ENVELOPE_LEN: usize = 64 * 1024;

/// A structurally valid envelope whose ciphertext has not been authenticated yet.
///
/// Nothing in it can be trusted until [`Sealer::open`](crate::Sealer::open) succeeds: `sender` is only
/// a claim, checked by the MAC.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The key the envelope claims to be sealed with (the sender's public key).
    pub sender: PublicKey,
    /// The XSalsa20 nonce, chosen at random by the sender.
    pub nonce: [u8; NONCE_LEN],
    /// `crypto_box` output: the Poly1305 tag followed by the encrypted plaintext.
    pub ciphertext: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Splits `bytes` into an envelope, rejecting, in this order, anything longer than
    /// [`MAX_ENVELOPE_LEN`] ([`ProtoError::Oversize`]), shorter than a header plus a tag
    /// ([`ProtoError::Truncated`]), in the first wire format ([`OLD_MAGIC`],
    /// [`ProtoError::OldWireFormat`]) or otherwise not starting with [`MAGIC`]
    /// ([`ProtoError::BadMagic`]).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, ProtoError> {
        let len = bytes.len();
        if len > MAX_ENVELOPE_LEN {
            return Err(ProtoError::Oversize { len });
        }
        if len < HEADER_LEN + TAG_LEN {
            return Err(ProtoError::Truncated { len });
        }
        let truncated = ProtoError::Truncated { len };
        let (magic, rest) = bytes.split_first_chunk::<4>().ok_or_else(|| truncated.clone())?;
        if *magic == OLD_MAGIC {
            return Err(ProtoError::OldWireFormat);
        }
        if *magic != MAGIC {
            return Err(ProtoError::BadMagic);
        }
        let (sender, rest) = rest.split_first_chunk::<32>().ok_or_else(|| truncated.clone())?;
        let (nonce, ciphertext) = rest.split_first_chunk::<NONCE_LEN>().ok_or(truncated)?;
        Ok(Self {
            sender: PublicKey::from_bytes(*sender),
            nonce: *nonce,
            ciphertext,
        })
    }

    /// The wire bytes of this envelope. No limits are checked here; [`Sealer::seal`](crate::Sealer::seal)
    /// never builds an envelope that [`decode`](Self::decode) would reject.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_LEN + self.ciphertext.len());
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(self.sender.as_bytes());
        bytes.extend_from_slice(&self.nonce);
        bytes.extend_from_slice(self.ciphertext);
        bytes
    }
}

impl fmt::Debug for Envelope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut nonce = String::with_capacity(2 * NONCE_LEN);
        hex_text::encode_lower_into(&self.nonce, &mut nonce);
        f.debug_struct("Envelope")
            .field("sender", &self.sender)
            .field("nonce", &nonce)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ciphertext_len: usize) -> Vec<u8> {
        let ciphertext: Vec<u8> = (0..ciphertext_len).map(|i| i as u8).collect();
        Envelope {
            sender: PublicKey::from_bytes([9; 32]),
            nonce: [3; NONCE_LEN],
            ciphertext: &ciphertext,
        }
        .encode()
    }

    #[test]
    fn header_layout_is_pinned() {
        assert_eq!(HEADER_LEN, 60);
        let bytes = sample(TAG_LEN);
        assert_eq!(&bytes[..4], b"SSM2");
        assert_eq!(&bytes[4..36], &[9; 32]);
        assert_eq!(&bytes[36..60], &[3; 24]);
        assert_eq!(bytes.len(), HEADER_LEN + TAG_LEN);
    }

    #[test]
    fn round_trips() {
        for len in [TAG_LEN, TAG_LEN + 1, 1000, MAX_ENVELOPE_LEN - HEADER_LEN] {
            let bytes = sample(len);
            let envelope = Envelope::decode(&bytes).expect("decode");
            assert_eq!(envelope.sender, PublicKey::from_bytes([9; 32]));
            assert_eq!(envelope.nonce, [3; NONCE_LEN]);
            assert_eq!(envelope.ciphertext.len(), len);
            assert_eq!(envelope.encode(), bytes);
        }
    }

    #[test]
    fn truncated_input_is_rejected() {
        let bytes = sample(TAG_LEN);
        for len in [
            0,
            1,
            3,
            4,
            36,
            HEADER_LEN - 1,
            HEADER_LEN,
            HEADER_LEN + TAG_LEN - 1,
        ] {
            assert_eq!(
                Envelope::decode(&bytes[..len]),
                Err(ProtoError::Truncated { len }),
                "{len}"
            );
        }
    }

    #[test]
    fn truncation_is_reported_before_magic() {
        assert_eq!(Envelope::decode(b"XXXX"), Err(ProtoError::Truncated { len: 4 }));
    }

    #[test]
    fn oversize_input_is_rejected_before_anything_else() {
        let mut bytes = sample(MAX_ENVELOPE_LEN - HEADER_LEN + 1);
        assert_eq!(
            Envelope::decode(&bytes),
            Err(ProtoError::Oversize {
                len: MAX_ENVELOPE_LEN + 1
            })
        );
        bytes[0] = b'X';
        assert_eq!(
            Envelope::decode(&bytes),
            Err(ProtoError::Oversize {
                len: MAX_ENVELOPE_LEN + 1
            })
        );
    }

    #[test]
    fn bad_magic_is_rejected() {
        for (index, value) in [(0, b's'), (1, b'X'), (2, 0), (3, b'3')] {
            let mut bytes = sample(TAG_LEN);
            bytes[index] = value;
            assert_eq!(
                Envelope::decode(&bytes),
                Err(ProtoError::BadMagic),
                "byte {index}"
            );
        }
    }

    #[test]
    fn the_first_wire_format_is_refused_by_name() {
        let mut bytes = sample(TAG_LEN);
        bytes[..4].copy_from_slice(&OLD_MAGIC);
        assert_eq!(Envelope::decode(&bytes), Err(ProtoError::OldWireFormat));
        assert_eq!(
            ProtoError::OldWireFormat.code(),
            crate::ErrorCode::MalformedEnvelope
        );
    }

    #[test]
    fn debug_does_not_dump_the_ciphertext() {
        let bytes = sample(4096);
        let debug = format!("{:?}", Envelope::decode(&bytes).expect("decode"));
        assert!(debug.contains("ciphertext_len: 4096"), "{debug}");
        assert!(debug.len() < 300, "{debug}");
    }

    #[test]
    fn decode_never_panics_on_mutated_or_truncated_input() {
        let original = sample(64);
        let mut state = 0x1234_5678_u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as usize
        };
        for len in 0..=original.len() {
            let _ = Envelope::decode(&original[..len]);
        }
        for _ in 0..20_000 {
            let mut bytes = original.clone();
            for _ in 0..=next() % 4 {
                let index = next() % bytes.len();
                bytes[index] ^= 1 << (next() % 8);
            }
            bytes.truncate(next() % (bytes.len() + 1));
            if let Ok(envelope) = Envelope::decode(&bytes) {
                assert_eq!(
                    envelope.encode(),
                    bytes,
                    "decode then encode must be the identity"
                );
            }
        }
    }
}
