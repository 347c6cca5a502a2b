//! What detached runs wrote and how they ended, kept for their clients to fetch
//! (`runs::result ID`, `sesame result HOST ID [--follow]`).
//!
//! A detached request ([`Request::detach`](sesame_proto::Request::detach)) is answered once it
//! has started; its output as it comes and its answer go here. Each run is on disk
//! (`state_dir/results/ID.json`, 0600) from its start, so a daemon that stops mid-run says so
//! after its restart (the run ended without an answer: "interrupted") rather than forgetting it;
//! its output is written there when it ends. Finished runs are kept `limits.results_keep_s`, and
//! each client's finished runs at most `limits.results_kb_per_client` (its oldest go first). Only
//! the key that sent a request can fetch its result.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use sesame_proto::{ErrorCode, ProgressSource, PublicKey, RequestId};

/// The directory under the state directory.
pub const RESULTS_DIR: &str = "results";

/// The most text one kept chunk holds, bytes: a fetch of two of them fits in one answer even
/// when every byte is a control character JSON writes as six.
pub const CHUNK_BYTES: usize = 4 * 1024;
/// The most chunk text one fetch returns, bytes.
pub const FETCH_BYTES: usize = 2 * CHUNK_BYTES;
/// The most of an error message kept, bytes.
pub const MESSAGE_BYTES: usize = 4 * 1024;

/// What wrote a chunk: the run's output as it came, or its answer's output at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A line the module logged.
    Log,
    /// A program's standard output.
    Output,
    /// A program's standard error.
    Errors,
    /// The answer's output (what a waiting client would have got as the answer).
    Answer,
}

impl From<ProgressSource> for Source {
    fn from(source: ProgressSource) -> Self {
        match source {
            ProgressSource::Log => Self::Log,
            ProgressSource::Output => Self::Output,
            ProgressSource::Errors => Self::Errors,
        }
    }
}

/// One piece of a run's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Its place in the run's output, from 0.
    pub seq: u32,
    /// What wrote it.
    pub source: Source,
    /// The text: 1 to [`CHUNK_BYTES`] bytes.
    pub text: String,
}

/// How a run ended (its output is in the chunks, as [`Source::Answer`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Its code.
    pub code: ErrorCode,
    /// Its message (empty on success; at most [`MESSAGE_BYTES`]).
    pub message: String,
    /// When it ended, Unix milliseconds.
    pub ended_ms: u64,
}

/// One detached run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// The request's id.
    pub id: RequestId,
    /// Its client's name.
    pub client: String,
    /// The key that sealed it: the only one that may fetch it.
    pub key: PublicKey,
    /// `cluster::command`, as the audit names it.
    pub call: String,
    /// When it started, Unix milliseconds.
    pub started_ms: u64,
    /// Its output so far.
    #[serde(default)]
    pub chunks: Vec<Chunk>,
    /// How it ended, once it has.
    #[serde(default)]
    pub answer: Option<Answer>,
}

impl Run {
    /// What it holds, bytes, for the per-client bound.
    fn size(&self) -> usize {
        let message = self.answer.as_ref().map_or(0, |a| a.message.len());
        self.chunks.iter().map(|c| c.text.len()).sum::<usize>() + message
    }

    /// Adds `text` as chunks of at most [`CHUNK_BYTES`], cut between characters.
    fn push(&mut self, source: Source, mut text: &str) {
        while !text.is_empty() {
            let mut end = text.len().min(CHUNK_BYTES);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let seq = u32::try_from(self.chunks.len()).unwrap_or(u32::MAX);
            self.chunks.push(Chunk {
                seq,
                source,
                text: text[..end].to_owned(),
            });
            text = &text[end..];
        }
    }
}

/// What a fetch found: the run's state and output from the chunk asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetched {
    /// The run's id.
    pub id: RequestId,
    /// `cluster::command`.
    pub call: String,
    /// When it started, Unix milliseconds.
    pub started_ms: u64,
    /// Chunks from the one asked for, at most [`FETCH_BYTES`] of text.
    pub chunks: Vec<Chunk>,
    /// The next chunk to ask for.
    pub next: u32,
    /// How it ended, once it has and every chunk has been fetched; `None` until then.
    pub answer: Option<Answer>,
}

/// Why a fetch found nothing. A result that is not there and one that is another client's get the
/// same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotKept {
    /// No run of the caller's with that id is kept here.
    #[error(
        "no detached run {0} of yours is kept here (it was never detached, it expired, or it is not yours)"
    )]
    None(String),
    /// More than one of the caller's kept runs starts with the prefix.
    #[error("{0} names more than one of your detached runs: give more of the id")]
    Ambiguous(String),
    /// Not an id, nor a prefix of one long enough to name one.
    #[error("{0:?} is not a request id (32 hex digits, or the first 8 or more)")]
    BadId(String),
}

/// The kept runs.
#[derive(Debug)]
pub struct Results {
    dir: PathBuf,
    keep_ms: u64,
    max_bytes_per_client: usize,
    runs: Mutex<HashMap<RequestId, Run>>,
}

/// What opening the store found.
#[derive(Debug, Default)]
pub struct Opened {
    /// Runs that were running when the daemon stopped: now ended as interrupted.
    pub interrupted: Vec<RequestId>,
    /// Files that could not be read, with why (renamed `.bad`).
    pub unreadable: Vec<(PathBuf, String)>,
}

impl Results {
    /// Opens (creating) the store in `dir`; a run found running was cut off by a stop and ends
    /// as interrupted; finished runs past `keep_ms` are removed.
    pub fn open(
        dir: &Path,
        now_ms: u64,
        keep_ms: u64,
        max_bytes_per_client: usize,
    ) -> std::io::Result<(Self, Opened)> {
        crate::files::create_private_dir(dir)?;
        let store = Self {
            dir: dir.to_owned(),
            keep_ms,
            max_bytes_per_client,
            runs: Mutex::new(HashMap::new()),
        };
        let mut opened = Opened::default();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let read = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Run>(&b).map_err(|e| e.to_string()));
            let mut run = match read {
                Ok(run) => run,
                Err(why) => {
                    let _ = std::fs::rename(&path, path.with_extension("json.bad"));
                    opened.unreadable.push((path, why));
                    continue;
                }
            };
            if run.answer.is_none() {
                run.answer = Some(Answer {
                    code: ErrorCode::Internal,
                    message: "interrupted: the daemon stopped while it ran; it was not run again".to_owned(),
                    ended_ms: now_ms,
                });
                store.write(&run)?;
                opened.interrupted.push(run.id);
            }
            store.lock().insert(run.id, run);
        }
        store.reap(now_ms);
        Ok((store, opened))
    }

    /// Records that `run` started: on disk before this returns.
    pub fn begin(&self, run: Run) -> std::io::Result<()> {
        self.write(&run)?;
        self.lock().insert(run.id, run);
        Ok(())
    }

    /// Adds `text` to `id`'s output (what a run writes is bounded by its output limit).
    pub fn append(&self, id: &RequestId, source: Source, text: &str) {
        if let Some(run) = self.lock().get_mut(id) {
            run.push(source, text);
        }
    }

    /// Records how `id` ended (its code, message and output), on disk, then keeps its client's
    /// runs within its bound.
    pub fn finish(
        &self,
        id: &RequestId,
        code: ErrorCode,
        message: &str,
        output: &str,
        now_ms: u64,
    ) -> std::io::Result<()> {
        let run = {
            let mut runs = self.lock();
            let Some(run) = runs.get_mut(id) else {
                return Ok(());
            };
            run.push(Source::Answer, output);
            let mut end = message.len().min(MESSAGE_BYTES);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            run.answer = Some(Answer {
                code,
                message: message[..end].to_owned(),
                ended_ms: now_ms,
            });
            run.clone()
        };
        self.write(&run)?;
        self.bound(&run.key);
        Ok(())
    }

    /// The kept run `id` names (all of it, or its first
    /// [`MIN_ID_PREFIX`](crate::approvals::MIN_ID_PREFIX) hex digits or more) among `key`'s, with
    /// its chunks from `from` on, as many as fit in [`FETCH_BYTES`].
    pub fn fetch(&self, id: &str, key: &PublicKey, from: u32) -> Result<Fetched, NotKept> {
        let prefix = id.trim().to_ascii_lowercase();
        if prefix.len() < crate::approvals::MIN_ID_PREFIX || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NotKept::BadId(id.to_owned()));
        }
        let runs = self.lock();
        let mut own = runs
            .values()
            .filter(|r| r.key == *key && r.id.to_string().starts_with(&prefix));
        let run = match (own.next(), own.next()) {
            (Some(run), None) => run,
            (None, _) => return Err(NotKept::None(prefix)),
            (Some(_), Some(_)) => return Err(NotKept::Ambiguous(prefix)),
        };
        let mut chunks = Vec::new();
        let mut size = 0;
        let mut next = from;
        for chunk in run
            .chunks
            .iter()
            .skip(usize::try_from(from).unwrap_or(usize::MAX))
        {
            if size + chunk.text.len() > FETCH_BYTES {
                break;
            }
            size += chunk.text.len();
            next = chunk.seq + 1;
            chunks.push(chunk.clone());
        }
        let all_fetched = run.chunks.len() <= usize::try_from(next).unwrap_or(usize::MAX);
        let answer = run.answer.clone().filter(|_| all_fetched);
        Ok(Fetched {
            id: run.id,
            call: run.call.clone(),
            started_ms: run.started_ms,
            chunks,
            next,
            answer,
        })
    }

    /// Forgets finished runs older than the keep time; their ids.
    pub fn reap(&self, now_ms: u64) -> Vec<RequestId> {
        let gone: Vec<RequestId> = self
            .lock()
            .values()
            .filter(|r| {
                r.answer
                    .as_ref()
                    .is_some_and(|a| a.ended_ms.saturating_add(self.keep_ms) <= now_ms)
            })
            .map(|r| r.id)
            .collect();
        for id in &gone {
            self.forget(id);
        }
        gone
    }

    /// Runs kept (running or finished).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops `key`'s oldest finished runs until what its finished runs hold is within the bound.
    fn bound(&self, key: &PublicKey) {
        let mut finished: Vec<(u64, RequestId, usize)> = self
            .lock()
            .values()
            .filter(|r| r.key == *key && r.answer.is_some())
            .map(|r| (r.started_ms, r.id, r.size()))
            .collect();
        finished.sort_unstable();
        let mut total: usize = finished.iter().map(|f| f.2).sum();
        for (_, id, size) in finished {
            if total <= self.max_bytes_per_client {
                break;
            }
            tracing::info!(%id, "a detached run's result was dropped to keep its client within limits.results_kb_per_client");
            self.forget(&id);
            total -= size;
        }
    }

    fn forget(&self, id: &RequestId) {
        self.lock().remove(id);
        let path = self.path(id);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), "removing a kept result: {e}");
        }
    }

    fn path(&self, id: &RequestId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Writes `run` to its file (0600), replacing it whole.
    fn write(&self, run: &Run) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(run).map_err(std::io::Error::other)?;
        crate::files::write_atomic(&self.path(&run.id), &bytes, 0o600)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, Run>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PublicKey {
        PublicKey::from_bytes([b; 32])
    }

    fn run(id: u8, owner: u8, started_ms: u64) -> Run {
        Run {
            id: RequestId::from_bytes([id; 16]),
            client: format!("c{owner}"),
            key: key(owner),
            call: "basic::ticker".into(),
            started_ms,
            chunks: Vec::new(),
            answer: None,
        }
    }

    #[test]
    fn output_is_fetched_a_page_at_a_time_then_the_answer_only_by_its_owner() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (results, _) = Results::open(dir.path(), 0, 1000, 1 << 20).expect("open");
        let r = run(1, 1, 0);
        let id = r.id;
        results.begin(r).expect("begin");
        // Three chunks' worth: a page holds two.
        let big = "é".repeat(CHUNK_BYTES * 2); // two bytes each: cut between characters
        results.append(&id, Source::Log, &big[..CHUNK_BYTES * 5 / 2]);
        let text = id.to_string();
        let first = results.fetch(&text, &key(1), 0).expect("own");
        assert_eq!(first.chunks.len(), 2);
        assert!(first.chunks.iter().all(|c| c.text.len() <= CHUNK_BYTES));
        assert_eq!(first.answer, None, "still running");
        results
            .finish(&id, ErrorCode::Ok, "", "done\n", 5)
            .expect("finish");
        let second = results.fetch(&text, &key(1), first.next).expect("own");
        assert_eq!(
            second.chunks.last().map(|c| (c.source, c.text.as_str())),
            Some((Source::Answer, "done\n"))
        );
        assert_eq!(second.answer.map(|a| a.code), Some(ErrorCode::Ok));
        assert_eq!(
            results.fetch(&text, &key(2), 0),
            Err(NotKept::None(text.clone())),
            "another client's"
        );
        // On disk: a new store finds it finished, and forgets it once kept long enough.
        drop(results);
        let (again, opened) = Results::open(dir.path(), 10, 1000, 1 << 20).expect("reopen");
        assert!(opened.interrupted.is_empty());
        assert!(again.fetch(&text[..8], &key(1), 0).is_ok(), "by prefix");
        assert_eq!(again.fetch("", &key(1), 0), Err(NotKept::BadId(String::new())));
        assert_eq!(
            again.fetch(&text[..7], &key(1), 0),
            Err(NotKept::BadId(text[..7].to_owned()))
        );
        assert_eq!(again.reap(5 + 1000), vec![id]);
        assert!(again.is_empty());
        assert!(
            std::fs::read_dir(dir.path()).expect("dir").next().is_none(),
            "its file went too"
        );
    }

    #[test]
    fn a_run_cut_off_by_a_stop_is_interrupted_and_each_client_keeps_its_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (results, _) = Results::open(dir.path(), 0, 1_000_000, 10).expect("open");
        results.begin(run(1, 1, 0)).expect("begin");
        drop(results);
        let (results, opened) = Results::open(dir.path(), 7, 1_000_000, 10).expect("reopen");
        let id = RequestId::from_bytes([1; 16]);
        assert_eq!(opened.interrupted, [id]);
        let answer = results.fetch(&id.to_string(), &key(1), 0).expect("kept").answer;
        assert!(answer.is_some_and(|a| a.code == ErrorCode::Internal && a.message.contains("interrupted")));
        // 10 bytes per client: each finish drops that client's oldest until it is within; another
        // client's stay.
        for (n, owner, started) in [(2u8, 2u8, 1u64), (3, 1, 2)] {
            let r = run(n, owner, started);
            let rid = r.id;
            results.begin(r).expect("begin");
            results
                .finish(&rid, ErrorCode::Ok, "", "sixsix", 8)
                .expect("finish");
        }
        assert!(
            results
                .fetch(&RequestId::from_bytes([3; 16]).to_string(), &key(1), 0)
                .is_ok()
        );
        assert!(
            results
                .fetch(&RequestId::from_bytes([2; 16]).to_string(), &key(2), 0)
                .is_ok()
        );
        assert!(
            results.fetch(&id.to_string(), &key(1), 0).is_err(),
            "the interrupted run (its message alone is over the bound) went first"
        );
        let r = run(4, 1, 3);
        let rid = r.id;
        results.begin(r).expect("begin");
        results
            .finish(&rid, ErrorCode::Ok, "", "sixsix", 9)
            .expect("finish");
        assert!(
            results
                .fetch(&RequestId::from_bytes([3; 16]).to_string(), &key(1), 0)
                .is_err(),
            "the oldest of client 1's went"
        );
    }
}
