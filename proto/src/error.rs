//! The one error type of `sesame-proto`, and its mapping onto the stable [`ErrorCode`]s.
//!
//! Messages never contain key material. Text that came from a peer (host names, serde reasons) is
//! validated or escaped and length-bounded before it reaches an error, so errors are safe to log.

use crate::code::ErrorCode;

/// Everything that can go wrong while decoding, opening, validating or admitting a message.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoError {
    /// The envelope does not start with [`MAGIC`](crate::MAGIC).
    #[error("envelope has bad magic")]
    BadMagic,
    /// The envelope is in the first wire format ([`OLD_MAGIC`](crate::OLD_MAGIC), `SSM1`), which
    /// did not seal a message's [`Domain`](crate::Domain) and is refused unopened.
    #[error("envelope is in the old wire format SSM1, which is refused: the sender needs upgrading to SSM2")]
    OldWireFormat,
    /// The envelope is shorter than a header plus a Poly1305 tag.
    #[error("envelope truncated ({len} bytes)")]
    Truncated {
        /// Length of the rejected input in bytes.
        len: usize,
    },
    /// The envelope is longer than [`MAX_ENVELOPE_LEN`](crate::MAX_ENVELOPE_LEN).
    #[error("envelope oversize ({len} bytes)")]
    Oversize {
        /// Length of the rejected input in bytes.
        len: usize,
    },
    /// The ciphertext failed authentication: tampered, wrong nonce, or sealed to another key.
    #[error("envelope failed authentication")]
    BadMac,
    /// The envelope's sender key is not a known peer; no cryptography was attempted.
    #[error("envelope from unknown sender")]
    UnknownSender,
    /// The envelope opened, but what it seals is of another [`Domain`](crate::Domain) than the one
    /// expected here: a message turned back at its sender with its `sender` rewritten (crypto_box
    /// keys are the same both ways), or one lifted out of another message.
    #[error("envelope opened but seals a {found}, not a {expected}: refused as reflected or misplaced")]
    WrongDomain {
        /// What the receiver opens.
        expected: crate::Domain,
        /// What the envelope seals.
        found: crate::Domain,
    },
    /// The envelope opened, but its plaintext does not start with a [`Domain`](crate::Domain)
    /// byte (`None`: it is empty).
    #[error("envelope opened but its plaintext starts with no domain byte (found {found:?})")]
    NoDomain {
        /// The first byte of the plaintext, if it has one.
        found: Option<u8>,
    },
    /// A key could not be parsed, or is unusable (e.g. a small-order public key).
    #[error("bad key: {0}")]
    BadKey(String),
    /// A request plaintext is not valid JSON of the request shape, or violates a limit.
    #[error("malformed request: {0}")]
    MalformedRequest(String),
    /// A response plaintext is not valid JSON of the response shape, or is inconsistent.
    #[error("malformed response: {0}")]
    MalformedResponse(String),
    /// A receipt's signature does not verify under the receipt key it names for the host,
    /// request, `seq` and record hash it was checked for: it was not made by that key for
    /// these (edited, made up, or checked against another host or request).
    #[error(
        "the receipt's signature does not verify: not signed by its key for this host, request and record"
    )]
    BadReceiptSignature,
    /// The message's `v` field names a protocol version this crate does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// The request was issued more than the replay window ago.
    #[error("request is stale ({age_ms} ms old)")]
    Stale {
        /// How long ago the request was issued, in milliseconds.
        age_ms: u64,
    },
    /// The request claims to be issued more than the replay window in the future.
    #[error("request is from the future ({ahead_ms} ms ahead)")]
    Future {
        /// How far ahead of the receiver's clock the request claims to be, in milliseconds.
        ahead_ms: u64,
    },
    /// The request id was already admitted inside the replay window.
    #[error("request id already seen (replay)")]
    Replay,
    /// The request names another host; it must not be executed here.
    #[error("request is for host {got:?}, this is {expected:?}")]
    WrongHost {
        /// This host's name.
        expected: String,
        /// The host named in the request.
        got: String,
    },
    /// The replay window is at capacity with live entries; the request is refused (fail closed).
    #[error("replay window is full")]
    ReplayWindowFull,
    /// The sender already has its whole share of the replay window; the request is refused
    /// (fail closed) until some of its ids expire.
    #[error(
        "this client already has {share} request ids in the replay window, its share: retry within a minute"
    )]
    ReplayShareFull {
        /// The most live ids one sender may have.
        share: usize,
    },
    /// A message to be sealed would not fit in [`MAX_ENVELOPE_LEN`](crate::MAX_ENVELOPE_LEN).
    #[error("message too large to seal ({len} bytes of envelope)")]
    TooLarge {
        /// The envelope length the message would have needed.
        len: usize,
    },
}

impl ProtoError {
    /// The stable code a daemon reports (or audits) for this error.
    ///
    /// Envelope-level failures ([`BadMagic`](Self::BadMagic), [`OldWireFormat`](Self::OldWireFormat),
    /// [`Truncated`](Self::Truncated), [`Oversize`](Self::Oversize), [`BadMac`](Self::BadMac),
    /// [`WrongDomain`](Self::WrongDomain), [`NoDomain`](Self::NoDomain)) and
    /// [`UnknownSender`](Self::UnknownSender) get no reply: either nothing authenticated them, or
    /// what did is not a request (answering it would hand a genuine sealed answer to whoever
    /// turned it around). Their code is for counting and auditing only.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadMagic
            | Self::OldWireFormat
            | Self::Truncated { .. }
            | Self::Oversize { .. }
            | Self::BadMac
            | Self::WrongDomain { .. }
            | Self::NoDomain { .. } => ErrorCode::MalformedEnvelope,
            Self::UnknownSender => ErrorCode::UnknownClient,
            Self::MalformedRequest(_)
            | Self::MalformedResponse(_)
            | Self::BadReceiptSignature
            | Self::UnsupportedVersion(_) => ErrorCode::MalformedRequest,
            Self::Stale { .. } | Self::Future { .. } => ErrorCode::Stale,
            Self::Replay => ErrorCode::Replay,
            Self::WrongHost { .. } => ErrorCode::WrongHost,
            Self::ReplayWindowFull | Self::ReplayShareFull { .. } => ErrorCode::Busy,
            Self::TooLarge { .. } | Self::BadKey(_) => ErrorCode::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_design_section_4() {
        let cases = [
            (ProtoError::BadMagic, 2001),
            (ProtoError::OldWireFormat, 2001),
            (
                ProtoError::WrongDomain {
                    expected: crate::Domain::Request,
                    found: crate::Domain::Response,
                },
                2001,
            ),
            (ProtoError::NoDomain { found: Some(b'{') }, 2001),
            (ProtoError::Truncated { len: 3 }, 2001),
            (ProtoError::Oversize { len: 70_000 }, 2001),
            (ProtoError::BadMac, 2001),
            (ProtoError::UnknownSender, 1001),
            (ProtoError::BadKey("x".into()), 9999),
            (ProtoError::MalformedRequest("x".into()), 2002),
            (ProtoError::MalformedResponse("x".into()), 2002),
            (ProtoError::BadReceiptSignature, 2002),
            (ProtoError::UnsupportedVersion(2), 2002),
            (ProtoError::Stale { age_ms: 1 }, 1004),
            (ProtoError::Future { ahead_ms: 1 }, 1004),
            (ProtoError::Replay, 1003),
            (
                ProtoError::WrongHost {
                    expected: "a".into(),
                    got: "b".into(),
                },
                1005,
            ),
            (ProtoError::ReplayWindowFull, 3007),
            (ProtoError::TooLarge { len: 1 }, 9999),
        ];
        for (error, number) in cases {
            assert_eq!(error.code().as_u16(), number, "{error:?}");
        }
    }

    #[test]
    fn display_is_informative() {
        assert_eq!(
            ProtoError::Stale { age_ms: 61_000 }.to_string(),
            "request is stale (61000 ms old)"
        );
        assert_eq!(
            ProtoError::WrongHost {
                expected: "web1".into(),
                got: "web2".into()
            }
            .to_string(),
            "request is for host \"web2\", this is \"web1\""
        );
    }
}

/// An error and its causes as one line, `what: why: deeper cause`, for the command-line tools.
///
/// Many errors print their cause in their own message (`cannot read F: No such file`) and also
/// return it as their source; a cause whose text the line already ends with is left out, so no
/// reason is printed twice.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod chain_tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct Read {
        path: &'static str,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("loading the config")]
    struct Outer(#[source] Read);

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let read = Read {
            path: "/etc/x",
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        };
        assert_eq!(error_chain(&read), "cannot read /etc/x: no such file");
        let outer = Outer(read);
        assert_eq!(
            error_chain(&outer),
            "loading the config: cannot read /etc/x: no such file"
        );
    }
}
