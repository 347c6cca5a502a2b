//! What a sealed message is, and so which way it travels: the first byte of every plaintext
//! [`Sealer`](crate::Sealer) seals, checked by [`Sealer::open`](crate::Sealer::open).
//!
//! `crypto_box` derives one key per *pair* of peers, the same in both directions, and the envelope's
//! header (magic, sender) is not authenticated. Without a domain inside the ciphertext, an answer the
//! host sealed to a client opens at the host as if the client had sent it (its `sender` rewritten),
//! and a request opens at the client as if it were an answer. The domain byte is inside what the MAC
//! covers, so it cannot be changed, and each side opens only the domain it expects.

use std::fmt;

/// The kind of a sealed message; its byte leads the plaintext inside the ciphertext.
///
/// A request travels from a client to a host, everything else from a host to a client; each side
/// opens only what may travel towards it, so a message turned back at its sender never opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Domain {
    /// A [`Request`](crate::Request), sealed by a client to a host.
    Request,
    /// A [`Response`](crate::Response), sealed by a host to a client.
    Response,
    /// The digest of a host's next key, sealed by the host's new key to a client, inside a
    /// [`HostKeyNote`](crate::HostKeyNote).
    NextKey,
    /// A [`Progress`](crate::Progress) chunk of a running command's output, sealed by a host to
    /// a client ahead of its response.
    Progress,
}

/// Length of the domain prefix of every sealed plaintext, in bytes.
pub const DOMAIN_LEN: usize = 1;

impl Domain {
    /// Every domain.
    pub const ALL: &[Domain] = &[Self::Request, Self::Response, Self::NextKey, Self::Progress];

    /// The byte that leads a plaintext of this domain. Stable: part of the wire format.
    #[must_use]
    pub const fn as_byte(self) -> u8 {
        match self {
            Self::Request => 0x01,
            Self::Response => 0x02,
            Self::NextKey => 0x03,
            Self::Progress => 0x04,
        }
    }

    /// The domain whose byte is `byte`, if any.
    #[must_use]
    pub fn from_byte(byte: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|d| d.as_byte() == byte)
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Request => "request (client to host)",
            Self::Response => "response (host to client)",
            Self::NextKey => "next-key digest (host to client)",
            Self::Progress => "progress (host to client)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_pinned_distinct_and_round_trip() {
        let bytes: Vec<u8> = Domain::ALL.iter().map(|d| d.as_byte()).collect();
        assert_eq!(bytes, [1, 2, 3, 4]);
        for &domain in Domain::ALL {
            assert_eq!(Domain::from_byte(domain.as_byte()), Some(domain));
        }
        // A plaintext of the first wire format (SSM1) began with its JSON: never a domain.
        for byte in [0, b'{', b' ', 5, 0xff] {
            assert_eq!(Domain::from_byte(byte), None, "{byte:#04x}");
        }
    }
}
