//! A running request's output as it comes, for a client that asked for it
//! ([`Request::stream`](sesame_proto::Request::stream)): the lines its module logs and what the
//! programs it runs write, each piece sealed to the client as a
//! [`Progress`] and framed for the transport, ahead of the answer.
//!
//! The transport makes a [`ProgressChannel`] per request and writes what comes out of it; the
//! runner turns it into a [`ProgressSink`] once the request is opened and the client known (it
//! seals to that client), and the module's host calls write to the sink. A client that reads
//! slowly holds up only its own request, and never past the request's deadline: a full channel is
//! waited on until then, a closed one (the client went away) is not written to again. Streamed
//! text counts toward the request's output limit.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sesame_proto::{Frame, FrameKind, Progress, ProgressSource, RequestId, progress_pieces};
use tokio::sync::mpsc;

/// Frames a request may have waiting for its transport before its module waits.
pub const CHANNEL_FRAMES: usize = 256;

/// Where a transport takes one request's progress frames: the sending side, handed to the
/// runner (in [`Peer`](crate::runner::Peer)), and the receiving side the transport writes from.
#[derive(Debug, Clone)]
pub struct ProgressChannel(mpsc::Sender<Vec<u8>>);

/// Two are equal when they are the same channel.
impl PartialEq for ProgressChannel {
    fn eq(&self, other: &Self) -> bool {
        self.0.same_channel(&other.0)
    }
}

impl Eq for ProgressChannel {}

impl ProgressChannel {
    /// A channel and the receiver of its frames.
    pub fn new() -> (Self, mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = mpsc::channel(CHANNEL_FRAMES);
        (Self(tx), rx)
    }
}

/// Seals a progress plaintext to the request's client; `None` when sealing failed (logged).
pub type Seal = Arc<dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// Where one request's output goes as it comes.
#[derive(Clone)]
pub struct ProgressSink {
    id: RequestId,
    out: Out,
    state: Arc<Mutex<State>>,
}

/// Where a sink's chunks go.
#[derive(Clone)]
enum Out {
    /// Sealed to the waiting client and framed for its transport.
    Client { tx: mpsc::Sender<Vec<u8>>, seal: Seal },
    /// Kept for the client to fetch later (a detached run).
    Kept(Arc<crate::results::Results>),
}

#[derive(Debug, Default)]
struct State {
    seq: u32,
    sent: usize,
    limit: Option<usize>,
    closed: bool,
}

/// Streaming `text` would take the request past its output limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverLimit {
    /// The bytes it would have streamed in all.
    pub len: usize,
    /// The limit.
    pub limit: usize,
}

impl ProgressSink {
    /// A sink for request `id`, sealing with `seal` and framing into `channel`.
    pub fn new(id: RequestId, channel: &ProgressChannel, seal: Seal) -> Self {
        Self {
            id,
            out: Out::Client {
                tx: channel.0.clone(),
                seal,
            },
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// A sink for detached request `id`, keeping each chunk in `results`.
    pub fn kept(id: RequestId, results: Arc<crate::results::Results>) -> Self {
        Self {
            id,
            out: Out::Kept(results),
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// Caps what may be streamed at `limit` bytes (the request's output limit).
    pub fn limit(&self, limit: usize) {
        self.lock().limit = Some(limit);
    }

    /// The bytes streamed so far.
    pub fn sent(&self) -> usize {
        self.lock().sent
    }

    /// The chunks sealed so far (the next one's `seq`): what the answer tells the client to
    /// expect ([`Response::streamed`](sesame_proto::Response::streamed)).
    pub fn chunks(&self) -> u32 {
        self.lock().seq
    }

    /// Streams `text` (cut into pieces no message exceeds), unless that would pass the limit:
    /// then nothing of it is sent. Waits while the transport is behind, until the request's
    /// deadline; once the client is gone, drops it.
    pub fn emit(&self, source: ProgressSource, text: &str) -> Result<(), OverLimit> {
        if text.is_empty() {
            return Ok(());
        }
        let mut state = self.lock();
        let len = state.sent.saturating_add(text.len());
        if let Some(limit) = state.limit
            && len > limit
        {
            return Err(OverLimit { len, limit });
        }
        state.sent = len;
        for piece in progress_pieces(text) {
            if state.closed {
                return Ok(());
            }
            let seq = state.seq;
            state.seq = state.seq.saturating_add(1);
            let (tx, seal) = match &self.out {
                Out::Client { tx, seal } => (tx, seal),
                Out::Kept(results) => {
                    results.append(&self.id, source.into(), piece);
                    continue;
                }
            };
            let message = Progress::new(self.id, seq, source, piece.to_owned());
            let Some(sealed) = seal(&message.encode()) else {
                return Ok(());
            };
            let mut frame = Frame::encode(FrameKind::Progress, &sealed);
            loop {
                match tx.try_send(frame) {
                    Ok(()) => break,
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        state.closed = true;
                        break;
                    }
                    Err(mpsc::error::TrySendError::Full(back)) => {
                        // Never wait past the request's deadline, nor at all outside a run.
                        if crate::deadline::current().is_none() || crate::deadline::passed() {
                            return Ok(());
                        }
                        frame = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A program's output as text for a [`ProgressSink`]: bytes are streamed as they are read, a
/// character cut between two reads is held until its end comes, and bytes that are not UTF-8
/// are streamed as U+FFFD. Once streaming would pass the output limit, nothing more is sent and
/// [`TextTap::finish`] says so.
#[derive(Debug)]
pub struct TextTap {
    sink: ProgressSink,
    source: ProgressSource,
    state: Mutex<TapState>,
}

#[derive(Debug, Default)]
struct TapState {
    pending: Vec<u8>,
    over: Option<OverLimit>,
}

impl TextTap {
    /// A tap streaming to `sink` as `source`.
    pub fn new(sink: ProgressSink, source: ProgressSource) -> Arc<Self> {
        Arc::new(Self {
            sink,
            source,
            state: Mutex::new(TapState::default()),
        })
    }

    /// Streams what of `bytes` (after what was held) is whole text.
    pub fn push(&self, bytes: &[u8]) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.over.is_some() {
            return;
        }
        state.pending.extend_from_slice(bytes);
        let text = match std::str::from_utf8(&state.pending) {
            Ok(_) => String::from_utf8(std::mem::take(&mut state.pending)).unwrap_or_default(),
            Err(e) if e.error_len().is_none() => {
                // A character cut at the end: hold it for the next read.
                let tail = state.pending.split_off(e.valid_up_to());
                String::from_utf8_lossy(&std::mem::replace(&mut state.pending, tail)).into_owned()
            }
            Err(_) => {
                let all = std::mem::take(&mut state.pending);
                String::from_utf8_lossy(&all).into_owned()
            }
        };
        if let Err(over) = self.sink.emit(self.source, &text) {
            state.over = Some(over);
        }
    }

    /// Whether streaming stopped at the output limit.
    pub fn over(&self) -> Option<OverLimit> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .over
    }

    /// Streams what is still held (a character the program never finished, as U+FFFD), and
    /// says whether streaming stopped at the output limit.
    pub fn finish(&self) -> Option<OverLimit> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.over.is_none() && !state.pending.is_empty() {
            let rest = String::from_utf8_lossy(&std::mem::take(&mut state.pending)).into_owned();
            if let Err(over) = self.sink.emit(self.source, &rest) {
                state.over = Some(over);
            }
        }
        state.over
    }
}

impl fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgressSink")
            .field("id", &self.id)
            .field("state", &*self.lock())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sesame_proto::{FrameReader, MAX_PROGRESS_TEXT};

    fn sink(limit: Option<usize>) -> (ProgressSink, mpsc::Receiver<Vec<u8>>) {
        let (channel, rx) = ProgressChannel::new();
        // "Sealing" that only marks the plaintext, to read it back here.
        let seal: Seal = Arc::new(|plaintext: &[u8]| Some([b"sealed:".as_slice(), plaintext].concat()));
        let sink = ProgressSink::new(RequestId::from_bytes([1; 16]), &channel, seal);
        if let Some(limit) = limit {
            sink.limit(limit);
        }
        (sink, rx)
    }

    fn received(rx: &mut mpsc::Receiver<Vec<u8>>) -> Vec<Progress> {
        let mut reader = FrameReader::new();
        while let Ok(frame) = rx.try_recv() {
            reader.push(&frame);
        }
        let mut out = Vec::new();
        while let Some(frame) = reader.next_frame().expect("frames") {
            assert_eq!(frame.kind, FrameKind::Progress);
            let plaintext = frame.envelope.strip_prefix(b"sealed:").expect("sealed");
            out.push(Progress::decode(plaintext).expect("progress"));
        }
        out
    }

    #[test]
    fn chunks_are_numbered_in_order_and_long_text_is_cut() {
        let (sink, mut rx) = sink(None);
        sink.emit(ProgressSource::Log, "one\n").expect("sent");
        sink.emit(ProgressSource::Output, "").expect("nothing to send");
        sink.emit(ProgressSource::Output, &"x".repeat(MAX_PROGRESS_TEXT + 1))
            .expect("sent");
        let got = received(&mut rx);
        let seqs: Vec<u32> = got.iter().map(|p| p.seq).collect();
        assert_eq!(seqs, [0, 1, 2]);
        assert_eq!(got[0].source, ProgressSource::Log);
        assert_eq!(got[1].text.len() + got[2].text.len(), MAX_PROGRESS_TEXT + 1);
        assert_eq!(sink.sent(), 4 + MAX_PROGRESS_TEXT + 1);
    }

    #[test]
    fn nothing_past_the_limit_is_sent() {
        let (sink, mut rx) = sink(Some(10));
        sink.emit(ProgressSource::Log, "12345").expect("within");
        assert_eq!(
            sink.emit(ProgressSource::Log, "123456"),
            Err(OverLimit { len: 11, limit: 10 })
        );
        sink.emit(ProgressSource::Log, "12345")
            .expect("exactly the limit");
        assert_eq!(received(&mut rx).len(), 2);
    }

    #[test]
    fn a_programs_bytes_stream_as_text_whole_characters_only() {
        let (sink, mut rx) = sink(Some(64));
        let tap = TextTap::new(sink, ProgressSource::Output);
        let e_acute = "é".as_bytes();
        tap.push(b"caf");
        tap.push(&e_acute[..1]); // cut in the middle of é
        tap.push(&e_acute[1..]);
        tap.push(b"\n\xff\n");
        tap.push(&e_acute[..1]); // never finished
        assert_eq!(tap.finish(), None);
        let text: String = received(&mut rx).into_iter().map(|p| p.text).collect();
        assert_eq!(text, "café\n\u{fffd}\n\u{fffd}");
        // Past the limit: nothing more, and finish says so.
        tap.push(&[b'x'; 100]);
        tap.push(b"more");
        assert!(received(&mut rx).is_empty());
        assert_eq!(tap.finish().map(|o| o.limit), Some(64));
    }

    #[test]
    fn a_gone_client_is_not_waited_for_and_a_full_channel_only_until_the_deadline() {
        let (sink, rx) = sink(None);
        drop(rx);
        sink.emit(ProgressSource::Log, "to nobody")
            .expect("dropped quietly");
        let (sink, _rx) = self::sink(None);
        for _ in 0..CHANNEL_FRAMES {
            sink.emit(ProgressSource::Log, "x").expect("room");
        }
        let started = std::time::Instant::now();
        crate::deadline::scope(started + Duration::from_millis(100), || {
            sink.emit(ProgressSource::Log, "no room")
                .expect("given up at the deadline");
        });
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(100) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
    }
}
