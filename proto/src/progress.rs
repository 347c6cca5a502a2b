//! Output of a running command, sent ahead of its answer: [`Progress`] messages, each sealed by
//! the host to the client as a [`Domain::Progress`](crate::Domain::Progress), and the frames that
//! carry them and then the answer on one QUIC stream ([`Frame`], [`FrameReader`]).
//!
//! A client asks for them with [`Request::stream`](crate::Request::stream); a host that sends none
//! (an older one, or a command that writes nothing) answers exactly as before. Each message is
//! sealed on its own, so a chunk the client prints is the host's word as much as the answer is;
//! `seq` numbers them from 0 so that the client prints them in order and notices a gap.

use serde::{Deserialize, Serialize};

use crate::message::{check_version, reason};
use crate::{MAX_ENVELOPE_LEN, PROTOCOL_VERSION, ProtoError, RequestId};

/// The most text one [`Progress`] message carries, in bytes; longer output is cut into several.
pub const MAX_PROGRESS_TEXT: usize = 16 * 1024;

/// Where a chunk of output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressSource {
    /// A line the module logged (`log.info`, `log.warn`).
    Log,
    /// What a program the module ran wrote to its standard output.
    Output,
    /// What a program the module ran wrote to its standard error.
    Errors,
}

/// A chunk of a running command's output.
///
/// `text` is 1 to [`MAX_PROGRESS_TEXT`] bytes of UTF-8; it may hold line breaks and need not end
/// with one (a program's output is cut where it was read).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// Protocol version; always [`PROTOCOL_VERSION`] in a decoded message.
    pub v: u8,
    /// The request whose output this is.
    pub id: RequestId,
    /// 0 for the request's first chunk, then one more for each.
    pub seq: u32,
    /// Where it came from.
    pub source: ProgressSource,
    /// The output.
    pub text: String,
}

impl Progress {
    /// Chunk `seq` of the output of request `id`.
    #[must_use]
    pub fn new(id: RequestId, seq: u32, source: ProgressSource, text: String) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            id,
            seq,
            source,
            text,
        }
    }

    /// The JSON plaintext of this message.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a Progress is strings and integers: JSON encoding cannot fail")
    }

    /// Parses and checks a progress plaintext: [`ProtoError::UnsupportedVersion`] for another
    /// `v`, [`ProtoError::MalformedResponse`] for anything else wrong (it travels where answers
    /// do, and a client treats it as one would a bad answer).
    pub fn decode(plaintext: &[u8]) -> Result<Self, ProtoError> {
        if plaintext.len() > MAX_ENVELOPE_LEN {
            return Err(ProtoError::MalformedResponse(format!(
                "progress is {} bytes",
                plaintext.len()
            )));
        }
        check_version(plaintext, ProtoError::MalformedResponse)?;
        let progress: Self =
            serde_json::from_slice(plaintext).map_err(|e| ProtoError::MalformedResponse(reason(&e)))?;
        if progress.text.is_empty() || progress.text.len() > MAX_PROGRESS_TEXT {
            return Err(ProtoError::MalformedResponse(format!(
                "progress text is {} bytes (1 to {MAX_PROGRESS_TEXT})",
                progress.text.len()
            )));
        }
        Ok(progress)
    }
}

/// Cuts `text` into pieces of at most [`MAX_PROGRESS_TEXT`] bytes, each at a character boundary
/// (and so each non-empty when `text` is).
#[must_use]
pub fn progress_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(MAX_PROGRESS_TEXT);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        pieces.push(&rest[..end]);
        rest = &rest[end..];
    }
    pieces
}

/// What a frame on a streaming answer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A sealed [`Progress`]; more frames follow.
    Progress,
    /// The sealed answer; nothing follows it.
    Response,
}

impl FrameKind {
    /// The frame's first byte. Neither is the first byte of an envelope (`S` of `SSM2`), so a
    /// client tells a framed answer from a bare envelope by its first byte.
    #[must_use]
    pub const fn as_byte(self) -> u8 {
        match self {
            Self::Progress => 0x01,
            Self::Response => 0x02,
        }
    }
}

/// Length of a frame's header: its kind, then the envelope's length (4 bytes, big-endian).
pub const FRAME_HEADER_LEN: usize = 5;

/// One frame of a streaming answer: a sealed envelope and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What the envelope holds (its [`Domain`](crate::Domain), which opening checks: a frame
    /// that lies about it does not open).
    pub kind: FrameKind,
    /// The sealed envelope.
    pub envelope: Vec<u8>,
}

impl Frame {
    /// The frame's bytes: kind, length, envelope.
    #[must_use]
    pub fn encode(kind: FrameKind, envelope: &[u8]) -> Vec<u8> {
        let len = u32::try_from(envelope.len()).unwrap_or(u32::MAX);
        let mut bytes = Vec::with_capacity(FRAME_HEADER_LEN + envelope.len());
        bytes.push(kind.as_byte());
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(envelope);
        bytes
    }
}

/// Reads the frames of a streaming answer from bytes as they arrive (sans-IO: the caller reads
/// the stream and pushes what it got).
#[derive(Debug, Default)]
pub struct FrameReader {
    buffer: Vec<u8>,
    ended: bool,
}

impl FrameReader {
    /// A reader at the start of an answer.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed. Errors: an unknown kind, a
    /// length past [`MAX_ENVELOPE_LEN`], or anything after the response frame
    /// ([`ProtoError::MalformedResponse`]).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ProtoError> {
        let Some(&first) = self.buffer.first() else {
            return Ok(None);
        };
        if self.ended {
            return Err(ProtoError::MalformedResponse(
                "bytes after the answer's frame".into(),
            ));
        }
        let kind = match first {
            0x01 => FrameKind::Progress,
            0x02 => FrameKind::Response,
            other => {
                return Err(ProtoError::MalformedResponse(format!("frame kind {other:#04x}")));
            }
        };
        if self.buffer.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buffer[1], self.buffer[2], self.buffer[3], self.buffer[4]]);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > MAX_ENVELOPE_LEN {
            return Err(ProtoError::MalformedResponse(format!(
                "a frame of {len} bytes (at most {MAX_ENVELOPE_LEN})"
            )));
        }
        if self.buffer.len() < FRAME_HEADER_LEN + len {
            return Ok(None);
        }
        let envelope = self.buffer[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len].to_vec();
        self.buffer.drain(..FRAME_HEADER_LEN + len);
        self.ended = kind == FrameKind::Response;
        Ok(Some(Frame { kind, envelope }))
    }

    /// Whether the response frame has been read.
    #[must_use]
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Bytes pushed and not yet read as a frame.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAGIC;

    fn id() -> RequestId {
        RequestId::from_bytes([7; 16])
    }

    #[test]
    fn progress_round_trips_and_is_checked() {
        let p = Progress::new(id(), 3, ProgressSource::Log, "step 3 of 10\n".into());
        assert_eq!(Progress::decode(&p.encode()), Ok(p.clone()));
        let empty = Progress::new(id(), 0, ProgressSource::Output, String::new());
        assert!(matches!(
            Progress::decode(&empty.encode()),
            Err(ProtoError::MalformedResponse(_))
        ));
        let long = Progress::new(id(), 0, ProgressSource::Output, "x".repeat(MAX_PROGRESS_TEXT + 1));
        assert!(matches!(
            Progress::decode(&long.encode()),
            Err(ProtoError::MalformedResponse(_))
        ));
        assert_eq!(
            Progress::decode(
                &String::from_utf8_lossy(&p.encode())
                    .replace(r#""v":2"#, r#""v":3"#)
                    .into_bytes()
            ),
            Err(ProtoError::UnsupportedVersion(3))
        );
        let unknown = String::from_utf8_lossy(&p.encode()).replace(r#""seq":3"#, r#""seq":3,"x":1"#);
        assert!(
            Progress::decode(unknown.as_bytes()).is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn long_output_is_cut_at_character_boundaries() {
        assert!(progress_pieces("").is_empty());
        let text = "é".repeat(MAX_PROGRESS_TEXT); // two bytes each
        let pieces = progress_pieces(&text);
        assert_eq!(pieces.len(), 2);
        assert!(
            pieces
                .iter()
                .all(|p| !p.is_empty() && p.len() <= MAX_PROGRESS_TEXT)
        );
        assert_eq!(pieces.concat(), text);
        let odd = format!("a{}", "é".repeat(MAX_PROGRESS_TEXT / 2));
        let pieces = progress_pieces(&odd);
        assert_eq!(
            pieces[0].len(),
            MAX_PROGRESS_TEXT - 1,
            "not in the middle of a character"
        );
        assert_eq!(pieces.concat(), odd);
    }

    #[test]
    fn frames_are_read_whatever_the_bytes_arrive_in() {
        let mut stream = Frame::encode(FrameKind::Progress, b"first");
        stream.extend(Frame::encode(FrameKind::Progress, b""));
        stream.extend(Frame::encode(FrameKind::Response, b"last"));
        for step in [1, 2, 3, 7, stream.len()] {
            let mut reader = FrameReader::new();
            let mut frames = Vec::new();
            for chunk in stream.chunks(step) {
                reader.push(chunk);
                while let Some(frame) = reader.next_frame().expect("well formed") {
                    frames.push(frame);
                }
            }
            assert!(reader.ended() && reader.pending() == 0, "{step}");
            let kinds: Vec<FrameKind> = frames.iter().map(|f| f.kind).collect();
            assert_eq!(
                kinds,
                [FrameKind::Progress, FrameKind::Progress, FrameKind::Response]
            );
            assert_eq!(frames[0].envelope, b"first");
            assert_eq!(frames[2].envelope, b"last");
        }
    }

    #[test]
    fn bad_frames_are_errors_never_waits() {
        for first in [0u8, 3, 0xff, MAGIC[0]] {
            let mut reader = FrameReader::new();
            reader.push(&[first, 0, 0, 0, 1, 0]);
            assert!(reader.next_frame().is_err(), "{first:#04x}");
        }
        let mut reader = FrameReader::new();
        let too_long = u32::try_from(MAX_ENVELOPE_LEN + 1).expect("fits");
        reader.push(&[0x01]);
        reader.push(&too_long.to_be_bytes());
        assert!(reader.next_frame().is_err());
        let mut reader = FrameReader::new();
        reader.push(&Frame::encode(FrameKind::Response, b"answer"));
        reader.push(b"!");
        assert!(reader.next_frame().expect("the answer").is_some());
        assert!(reader.next_frame().is_err(), "nothing may follow the answer");
    }
}
