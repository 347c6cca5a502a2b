//! A command's output as it comes: reading the frames a host sends ahead of its answer over QUIC
//! ([`sesame_proto::Frame`]), opening and checking each chunk, and printing them as they arrive.
//!
//! Every chunk is opened as the host's sealed word for this request ([`Domain::Progress`], the
//! pinned host key, this request's id) and must come in order: a chunk out of order, for another
//! request or that does not open ends the exchange with an error, as a bad answer would.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use sesame_proto::{Domain, Envelope, Progress, ProgressSource, ProtoError, Request, Sealer};

use crate::HostEntry;
use crate::quic::ClientError;

/// Where the chunks of a command's output go as they arrive: called with the host's alias and
/// the chunk, in order for each host.
#[derive(Clone)]
pub struct OnProgress(Arc<ProgressFn>);

/// What [`OnProgress`] calls.
type ProgressFn = dyn Fn(&str, &Progress) + Send + Sync;

impl OnProgress {
    /// Hands each chunk to `f`.
    pub fn new(f: impl Fn(&str, &Progress) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Hands `progress`, from the host known as `alias`, on.
    pub fn call(&self, alias: &str, progress: &Progress) {
        (self.0)(alias, progress);
    }
}

impl std::fmt::Debug for OnProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnProgress")
    }
}

/// Opens the chunks of one request's output, in order: as they come over QUIC
/// ([`open`](Self::open)), or put back in order over SQS, which may deliver them out of order,
/// twice, or after the answer ([`open_unordered`](Self::open_unordered)).
#[derive(Debug)]
pub struct ProgressOpener<'a> {
    host: &'a HostEntry,
    sealer: &'a Sealer,
    request: &'a Request,
    next: u32,
    /// Chunks that came before their turn, by `seq`.
    early: std::collections::BTreeMap<u32, Progress>,
}

/// How far ahead of the next chunk due one may come and be kept for its turn.
pub const MAX_EARLY: u32 = 4096;

impl<'a> ProgressOpener<'a> {
    /// For `request`, sent sealed by `sealer` to `host`.
    pub fn new(host: &'a HostEntry, sealer: &'a Sealer, request: &'a Request) -> Self {
        Self {
            host,
            sealer,
            request,
            next: 0,
            early: std::collections::BTreeMap::new(),
        }
    }

    /// Opens one sealed chunk and checks it is the host's, for this request.
    fn open_any(&self, sealed: &[u8]) -> Result<Progress, ClientError> {
        let envelope = Envelope::decode(sealed)?;
        let plaintext = self
            .sealer
            .open(Domain::Progress, &envelope, |k| *k == self.host.key)?;
        let progress = Progress::decode(&plaintext)?;
        if progress.id != self.request.id {
            return Err(ClientError::WrongId {
                expected: self.request.id.to_string(),
                got: progress.id.to_string(),
            });
        }
        Ok(progress)
    }

    /// Opens one sealed chunk: the host's, for this request, the next in order.
    pub fn open(&mut self, sealed: &[u8]) -> Result<Progress, ClientError> {
        let progress = self.open_any(sealed)?;
        if progress.seq != self.next {
            return Err(ClientError::BadResponse(ProtoError::MalformedResponse(format!(
                "output chunk {} where {} was due",
                progress.seq, self.next
            ))));
        }
        self.next = self.next.saturating_add(1);
        Ok(progress)
    }

    /// Opens one sealed chunk that may come out of order: the chunks now due, in order (none
    /// when it is early, kept for its turn, or a repeat of one already had).
    pub fn open_unordered(&mut self, sealed: &[u8]) -> Result<Vec<Progress>, ClientError> {
        let progress = self.open_any(sealed)?;
        if progress.seq < self.next {
            return Ok(Vec::new());
        }
        if progress.seq - self.next >= MAX_EARLY {
            return Err(ClientError::BadResponse(ProtoError::MalformedResponse(format!(
                "output chunk {} where {} was due",
                progress.seq, self.next
            ))));
        }
        self.early.insert(progress.seq, progress);
        let mut due = Vec::new();
        while let Some(p) = self.early.remove(&self.next) {
            due.push(p);
            self.next = self.next.saturating_add(1);
        }
        Ok(due)
    }

    /// How many chunks have been handed out in order.
    pub fn delivered(&self) -> u32 {
        self.next
    }

    /// Gives up on the chunks still missing: what came after them, in order.
    pub fn skip_missing(&mut self) -> Vec<Progress> {
        let rest: Vec<Progress> = std::mem::take(&mut self.early).into_values().collect();
        if let Some(last) = rest.last() {
            self.next = last.seq.saturating_add(1);
        }
        rest
    }
}

/// Prints chunks as they arrive: as they are for one host; for several, each whole line
/// prefixed with its host's name (a partial line waits for its end, or for [`Printer::finish`]);
/// with `json`, one object per chunk.
#[derive(Debug, Clone)]
pub struct Printer {
    prefix: bool,
    json: bool,
    partial: Arc<Mutex<HashMap<String, String>>>,
    /// Each host's programs' standard output as streamed, while it is short enough to keep.
    stdout: Arc<Mutex<HashMap<String, Option<String>>>>,
}

/// The most streamed standard output kept per host to compare with the answer.
const KEPT_STDOUT: usize = 1 << 20;

impl Printer {
    /// A printer for one host (`prefix` false) or several.
    pub fn new(prefix: bool, json: bool) -> Self {
        Self {
            prefix,
            json,
            partial: Arc::new(Mutex::new(HashMap::new())),
            stdout: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Whether `output` (the answer's) is exactly what `alias`'s programs streamed to standard
    /// output: the stock exec module answers with its program's output, which was printed as it
    /// came and need not be printed twice.
    pub fn already_printed(&self, alias: &str, output: &str) -> bool {
        let kept = self
            .stdout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        !output.is_empty() && kept.get(alias).is_some_and(|s| s.as_deref() == Some(output))
    }

    fn keep_stdout(&self, alias: &str, progress: &Progress) {
        if progress.source != ProgressSource::Output {
            return;
        }
        let mut kept = self
            .stdout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let slot = kept
            .entry(alias.to_owned())
            .or_insert_with(|| Some(String::new()));
        if let Some(text) = slot {
            if text.len() + progress.text.len() > KEPT_STDOUT {
                *slot = None;
            } else {
                text.push_str(&progress.text);
            }
        }
    }

    /// The text to print for `progress` from `alias` now (everything, or its whole lines).
    pub fn render(&self, alias: &str, progress: &Progress) -> String {
        self.keep_stdout(alias, progress);
        if self.json {
            let source = match progress.source {
                ProgressSource::Log => "log",
                ProgressSource::Output => "output",
                ProgressSource::Errors => "errors",
            };
            return format!(
                "{}\n",
                serde_json::json!({"host": alias, "progress": progress.seq, "source": source, "text": progress.text})
            );
        }
        if !self.prefix {
            return progress.text.clone();
        }
        let mut partial = self
            .partial
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pending = partial.entry(alias.to_owned()).or_default();
        pending.push_str(&progress.text);
        let Some(end) = pending.rfind('\n') else {
            return String::new();
        };
        let whole: String = pending.drain(..=end).collect();
        whole.lines().map(|l| format!("{alias}: {l}\n")).collect()
    }

    /// What is left of unfinished lines, each prefixed and ended.
    pub fn finish(&self) -> String {
        let mut partial = self
            .partial
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut left: Vec<(String, String)> = partial.drain().filter(|(_, t)| !t.is_empty()).collect();
        left.sort();
        left.into_iter()
            .map(|(alias, t)| format!("{alias}: {t}\n"))
            .collect()
    }

    /// Prints `progress` now: what a program wrote to its standard error on standard error
    /// (unless `json`), the rest on standard output.
    pub fn print(&self, alias: &str, progress: &Progress) {
        let text = self.render(alias, progress);
        if text.is_empty() {
            return;
        }
        // A closed terminal or pipe is no reason to stop the command: its answer still counts.
        let _ = if progress.source == ProgressSource::Errors && !self.json {
            let mut err = std::io::stderr().lock();
            err.write_all(text.as_bytes()).and_then(|()| err.flush())
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|()| out.flush())
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sesame_proto::{RequestId, SecretKey};

    #[test]
    fn chunks_out_of_order_or_twice_come_out_once_each_in_order() {
        use rand_core::OsRng;
        let host = Sealer::new(SecretKey::generate(&mut OsRng));
        let stranger = Sealer::new(SecretKey::generate(&mut OsRng));
        let client = Sealer::new(SecretKey::generate(&mut OsRng));
        let entry = HostEntry::new(host.public_key());
        let request = Request::new(&mut OsRng, 1, "web", None, "ticker", vec![]);
        let sealed = |by: &Sealer, id: RequestId, seq: u32| {
            let p = Progress::new(id, seq, ProgressSource::Log, format!("line {seq}\n"));
            by.seal(Domain::Progress, &client.public_key(), &mut OsRng, &p.encode())
                .expect("seal")
        };
        let mut opener = ProgressOpener::new(&entry, &client, &request);
        let seqs = |got: Vec<Progress>| got.iter().map(|p| p.seq).collect::<Vec<_>>();
        let mut open = |seq: u32| {
            seqs(
                opener
                    .open_unordered(&sealed(&host, request.id, seq))
                    .expect("ours"),
            )
        };
        assert_eq!(open(1), Vec::<u32>::new(), "early: kept");
        assert_eq!(open(2), Vec::<u32>::new());
        assert_eq!(open(0), [0, 1, 2]);
        assert_eq!(open(1), Vec::<u32>::new(), "a repeat is dropped");
        assert_eq!(open(5), Vec::<u32>::new());
        let got = opener.open_unordered(&sealed(&stranger, request.id, 3));
        assert!(got.is_err(), "another key's chunk: {got:?}");
        let got = opener.open_unordered(&sealed(&host, RequestId::random(&mut OsRng), 3));
        assert!(matches!(got, Err(ClientError::WrongId { .. })), "{got:?}");
        let got = opener.open_unordered(&sealed(&host, request.id, 3 + MAX_EARLY));
        assert!(got.is_err(), "too far ahead: {got:?}");
        assert_eq!(opener.delivered(), 3);
        assert_eq!(seqs(opener.skip_missing()), [5], "3 and 4 never came");
        assert_eq!(opener.delivered(), 6);
    }

    fn chunk(seq: u32, text: &str) -> Progress {
        Progress::new(
            RequestId::from_bytes([1; 16]),
            seq,
            ProgressSource::Log,
            text.into(),
        )
    }

    #[test]
    fn one_host_prints_as_it_comes_several_by_whole_lines() {
        let one = Printer::new(false, false);
        assert_eq!(one.render("web1", &chunk(0, "par")), "par");
        let many = Printer::new(true, false);
        assert_eq!(many.render("web1", &chunk(0, "par")), "");
        assert_eq!(many.render("web2", &chunk(0, "a\nb\nc")), "web2: a\nweb2: b\n");
        assert_eq!(many.render("web1", &chunk(1, "tial\n")), "web1: partial\n");
        assert_eq!(many.finish(), "web2: c\n");
        assert_eq!(many.finish(), "");
        let json = Printer::new(true, true);
        let line = json.render("web1", &chunk(3, "x\n"));
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"host": "web1", "progress": 3, "source": "log", "text": "x\n"})
        );
    }

    #[test]
    fn an_answer_that_repeats_the_streamed_output_is_known_as_printed() {
        let printer = Printer::new(false, false);
        let out = |seq, text: &str| {
            Progress::new(
                RequestId::from_bytes([1; 16]),
                seq,
                ProgressSource::Output,
                text.into(),
            )
        };
        printer.render("web1", &out(0, "a\n"));
        printer.render("web1", &chunk(1, "a log line\n"));
        printer.render("web1", &out(2, "b\n"));
        assert!(printer.already_printed("web1", "a\nb\n"));
        assert!(!printer.already_printed("web1", "a\n"), "not all of it");
        assert!(!printer.already_printed("web2", "a\nb\n"), "another host's");
        assert!(!printer.already_printed("web2", ""));
    }

    #[test]
    fn chunks_open_only_from_the_host_for_this_request_and_in_order() {
        let host_key = SecretKey::generate(&mut rand_core::OsRng);
        let host = Sealer::new(host_key);
        let client = Sealer::new(SecretKey::generate(&mut rand_core::OsRng));
        let entry = HostEntry::new(host.public_key());
        let request = Request::new(&mut rand_core::OsRng, 1, "web1", None, "deploy", vec![]);
        let seal = |domain, p: &Progress| {
            host.seal(domain, &client.public_key(), &mut rand_core::OsRng, &p.encode())
                .expect("seal")
        };
        let ours = |seq| Progress::new(request.id, seq, ProgressSource::Output, "x".into());
        let mut opener = ProgressOpener::new(&entry, &client, &request);
        assert_eq!(
            opener.open(&seal(Domain::Progress, &ours(0))).expect("first"),
            ours(0)
        );
        // Out of order, sealed as something else, for another request: refused.
        assert!(opener.open(&seal(Domain::Progress, &ours(2))).is_err());
        assert!(opener.open(&seal(Domain::Response, &ours(1))).is_err());
        let other = Progress::new(RequestId::from_bytes([9; 16]), 1, ProgressSource::Log, "x".into());
        assert!(matches!(
            opener.open(&seal(Domain::Progress, &other)),
            Err(ClientError::WrongId { .. })
        ));
        assert_eq!(
            opener.open(&seal(Domain::Progress, &ours(1))).expect("next"),
            ours(1)
        );
    }
}
