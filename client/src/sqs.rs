//! Sending requests through SQS and collecting their answers from this client's reply queue.
//!
//! The reply queue, `sesame-reply-<16 hex of SHA-256(client key)>`, is created on first use (it
//! keeps unread messages 15 minutes). One background task polls it and hands each answer to
//! the request waiting for it, so many hosts can be asked at once. An answer no request of this
//! process waits for may belong to another `sesame` process with the same key: it is left in
//! the queue (hidden for two seconds) unless this process already had its answer, or it has
//! been passed over [`ORPHAN_RECEIVES`] times (its requester is gone). Anything that does not
//! open with this client's key is deleted.
//!
//! A request that asks for its output as it comes gets it on the same queue: messages of
//! progress frames (a body that is not a bare envelope), at most about one a second per request.
//! SQS may deliver them out of order, twice, or after the answer; they are put back in order by
//! their `seq`, and the answer says how many there were, so the wait for the last ones is short
//! and bounded ([`STRAGGLER_WAIT`]).
//!
//! Several `sesame` processes sharing one key at once therefore compete for one queue: every
//! answer still arrives, but may be seconds late. Ask many hosts from one process
//! (`--hosts`, `--group`), or give concurrent automation its own key.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sesame_proto::{
    Domain, Envelope, FrameKind, FrameReader, MAGIC, Progress, Request, RequestId, Response, Sealer,
};
use sesame_sqs::{Queue, QueueAttributeName, Received};
use tokio::sync::{mpsc, oneshot};

use crate::HostEntry;
use crate::quic::{ClientError, open_response};
use crate::stream::ProgressOpener;

/// Deadline of one SQS call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the reply queue keeps an unread answer, seconds.
pub const REPLY_RETENTION_S: &str = "900";
/// How long one poll of the reply queue waits, seconds. Short on purpose: SQS finishes a long
/// poll whose caller has exited and hides what it finds for [`REPLY_VISIBILITY_S`], so a
/// `sesame` that just exited can delay the answers of the next one with the same key by at most
/// about the sum of the two.
pub const REPLY_WAIT_S: i32 = 2;
/// How long a received answer stays hidden (answers are deleted as soon as they are read).
pub const REPLY_VISIBILITY_S: i32 = 4;
/// How long an answer for another process stays hidden from this one, seconds.
pub const OTHERS_HIDDEN_S: i32 = 2;
/// An answer received this often without its requester taking it is deleted as orphaned.
pub const ORPHAN_RECEIVES: u32 = 60;
/// How long, once the answer is in, the chunks of output it says were sent are waited for
/// (SQS may deliver them after it); the missing ones are then skipped.
pub const STRAGGLER_WAIT: Duration = Duration::from_secs(10);
/// Messages of output one request may have waiting to be opened; more are dropped (the host
/// sends about one a second, so only a flood fills this).
const PROGRESS_BACKLOG: usize = 1024;

/// A request of this process waiting for its answer (and, if it asked, its output). It stays
/// until the request's wait is over, after its answer came too: output may come after it.
#[derive(Debug)]
struct Waiter {
    /// Taken when the answer comes.
    answer: Option<oneshot::Sender<Vec<u8>>>,
    progress: Option<mpsc::Sender<Vec<u8>>>,
}

type Waiters = HashMap<RequestId, Waiter>;

/// This client's link to SQS in one region/account: its reply queue and a task reading it.
#[derive(Debug)]
pub struct SqsLink {
    client: sesame_sqs::Client,
    replies: Queue,
    requests: tokio::sync::Mutex<HashMap<String, Queue>>,
    state: Arc<Mutex<State>>,
    reader: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct State {
    waiting: Waiters,
    /// Requests of this process that are over (answered or given up): their late or repeated
    /// answers are deleted.
    done: HashSet<RequestId>,
    /// The last failure reading the reply queue, for a timeout's message.
    last_error: Option<String>,
}

impl SqsLink {
    /// Connects with `settings`, creating the reply queue of `sealer`'s key if needed.
    pub async fn connect(settings: &sesame_sqs::Settings, sealer: Arc<Sealer>) -> Result<Self, ClientError> {
        let client = sesame_sqs::client(settings, CALL_TIMEOUT).await;
        let name = sesame_sqs::reply_queue(&sealer.public_key());
        let replies = Queue::open_or_create(
            &client,
            &name,
            &[(QueueAttributeName::MessageRetentionPeriod, REPLY_RETENTION_S)],
        )
        .await?;
        let state = Arc::new(Mutex::new(State::default()));
        let reader = tokio::spawn(read_replies(replies.clone(), sealer, Arc::clone(&state)));
        Ok(Self {
            client,
            replies,
            requests: tokio::sync::Mutex::new(HashMap::new()),
            state,
            reader,
        })
    }

    /// The reply queue's name.
    pub fn reply_queue(&self) -> &str {
        self.replies.name()
    }

    /// Sends `request` to `host`'s request queue and waits up to `timeout` for its answer.
    pub async fn send_request(
        &self,
        host: &HostEntry,
        sealer: &Sealer,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        self.exchange(host, sealer, request, timeout, None::<fn(&Progress)>)
            .await
    }

    /// Sends `request`, which asks for its output as it comes, and hands each chunk the host
    /// sends to `on_progress` in order, then returns the answer (see the module docs).
    pub async fn send_request_streaming(
        &self,
        host: &HostEntry,
        sealer: &Sealer,
        request: &Request,
        timeout: Duration,
        on_progress: impl FnMut(&Progress),
    ) -> Result<Response, ClientError> {
        self.exchange(host, sealer, request, timeout, Some(on_progress))
            .await
    }

    async fn exchange(
        &self,
        host: &HostEntry,
        sealer: &Sealer,
        request: &Request,
        timeout: Duration,
        mut on_progress: Option<impl FnMut(&Progress)>,
    ) -> Result<Response, ClientError> {
        let route = host.sqs.as_ref().ok_or(ClientError::NoRoute("SQS (no queue)"))?;
        let request = Request {
            reply_to: Some(self.replies.name().to_owned()),
            ..request.clone()
        };
        let sealed = crate::quic::seal_request(host, sealer, &request)?;
        let (tx, mut rx) = oneshot::channel();
        let (progress_tx, mut progress_rx) = mpsc::channel(PROGRESS_BACKLOG);
        let waiter = Waiter {
            answer: Some(tx),
            progress: on_progress.is_some().then_some(progress_tx),
        };
        lock(&self.state).waiting.insert(request.id, waiter);
        let _over = Over(&self.state, request.id);
        let mut opener = ProgressOpener::new(host, sealer, &request);
        let mut chunks = |body: &[u8], opener: &mut ProgressOpener<'_>| -> Result<(), ClientError> {
            let Some(on_progress) = on_progress.as_mut() else {
                return Ok(());
            };
            let mut frames = FrameReader::new();
            frames.push(body);
            while let Some(frame) = frames.next_frame()? {
                if frame.kind != FrameKind::Progress {
                    continue;
                }
                for p in opener.open_unordered(&frame.envelope)? {
                    on_progress(&p);
                }
            }
            Ok(())
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let exchange = async {
            self.request_queue(&route.queue).await?.send(&sealed).await?;
            loop {
                tokio::select! {
                    answer = &mut rx => break answer.map_err(|_| ClientError::NoAnswer),
                    Some(body) = progress_rx.recv() => chunks(&body, &mut opener)?,
                }
            }
        };
        let reply = match tokio::time::timeout_at(deadline, exchange).await {
            Ok(reply) => reply?,
            Err(_) => {
                return Err(match lock(&self.state).last_error.clone() {
                    Some(e) => ClientError::Sqs(sesame_sqs::SqsError::Call {
                        op: "ReceiveMessage",
                        queue: self.replies.name().to_owned(),
                        message: format!("no answer within {timeout:?}; reading replies failed: {e}"),
                    }),
                    None => ClientError::Timeout(timeout),
                });
            }
        };
        let response = open_response(host, sealer, &request, &reply)?;
        // The answer may overtake the last chunks: wait a little for them, then go on without.
        let stragglers = (tokio::time::Instant::now() + STRAGGLER_WAIT).min(deadline);
        while opener.delivered() < response.streamed {
            match tokio::time::timeout_at(stragglers, progress_rx.recv()).await {
                Ok(Some(body)) => chunks(&body, &mut opener)?,
                Ok(None) | Err(_) => break,
            }
        }
        if let Some(on_progress) = on_progress.as_mut() {
            for p in opener.skip_missing() {
                on_progress(&p);
            }
        }
        Ok(response)
    }

    async fn request_queue(&self, name: &str) -> Result<Queue, ClientError> {
        let mut queues = self.requests.lock().await;
        if let Some(q) = queues.get(name) {
            return Ok(q.clone());
        }
        let q = Queue::open(&self.client, name).await?;
        queues.insert(name.to_owned(), q.clone());
        Ok(q)
    }
}

impl Drop for SqsLink {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Marks a request over when its wait ends, however it ends.
struct Over<'a>(&'a Mutex<State>, RequestId);

impl Drop for Over<'_> {
    fn drop(&mut self) {
        let mut state = lock(self.0);
        state.waiting.remove(&self.1);
        state.done.insert(self.1);
    }
}

async fn read_replies(queue: Queue, sealer: Arc<Sealer>, state: Arc<Mutex<State>>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match queue
            .receive(sesame_sqs::MAX_BATCH, REPLY_WAIT_S, REPLY_VISIBILITY_S)
            .await
        {
            Ok(messages) => {
                lock(&state).last_error = None;
                backoff = Duration::from_millis(200);
                for m in messages {
                    dispatch(&queue, &sealer, &state, m).await;
                }
            }
            Err(e) => {
                lock(&state).last_error = Some(e.to_string());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// What to do with one message from the reply queue.
enum Fate {
    /// A waiting request's answer.
    Deliver(oneshot::Sender<Vec<u8>>),
    /// Output for a waiting request that asked for it.
    Progress(mpsc::Sender<Vec<u8>>),
    /// Noise, or an answer this process no longer needs.
    Delete,
    /// Perhaps another process's answer.
    Leave,
}

/// The request a message is for, and whether it carries output (progress frames) rather than
/// the answer. Any sender's seal is opened here only to read the id; the waiting request checks
/// that its own host sealed it.
fn addressed(sealer: &Sealer, body: &[u8]) -> Option<(RequestId, bool)> {
    if body.starts_with(&MAGIC) {
        let env = Envelope::decode(body).ok()?;
        let plain = sealer.open(Domain::Response, &env, |_| true).ok()?;
        return Some((Response::decode(&plain).ok()?.id, false));
    }
    let mut frames = FrameReader::new();
    frames.push(body);
    let frame = frames.next_frame().ok()??;
    if frame.kind != FrameKind::Progress {
        return None;
    }
    let env = Envelope::decode(&frame.envelope).ok()?;
    let plain = sealer.open(Domain::Progress, &env, |_| true).ok()?;
    Some((Progress::decode(&plain).ok()?.id, true))
}

async fn dispatch(queue: &Queue, sealer: &Sealer, state: &Mutex<State>, m: Received) {
    let addressed = m
        .envelope
        .as_deref()
        .ok()
        .and_then(|body| addressed(sealer, body));
    let fate = match addressed {
        None => Fate::Delete,
        Some((id, true)) => {
            let s = lock(state);
            match s.waiting.get(&id) {
                Some(Waiter {
                    progress: Some(tx), ..
                }) => Fate::Progress(tx.clone()),
                // Asked without progress, or over: nobody prints it.
                Some(_) => Fate::Delete,
                None if s.done.contains(&id) => Fate::Delete,
                None if m.receive_count >= ORPHAN_RECEIVES => Fate::Delete,
                None => Fate::Leave,
            }
        }
        Some((id, false)) => {
            let mut s = lock(state);
            match s.waiting.get_mut(&id).map(|w| w.answer.take()) {
                Some(Some(answer)) => Fate::Deliver(answer),
                // A second delivery of an answer already handed over.
                Some(None) => Fate::Delete,
                None if s.done.contains(&id) => Fate::Delete,
                // Passed over this often, its requester is gone (each pass hides it for
                // OTHERS_HIDDEN_S, so that is minutes of nobody taking it).
                None if m.receive_count >= ORPHAN_RECEIVES => Fate::Delete,
                None => Fate::Leave,
            }
        }
    };
    let result = match fate {
        Fate::Deliver(tx) => {
            // Delete first: once the answer is handed over the process may exit at once, and
            // an answer left in the queue would come back to haunt the next run.
            let deleted = queue.delete(&m.receipt).await;
            if let Ok(bytes) = m.envelope {
                let _ = tx.send(bytes);
            }
            deleted
        }
        Fate::Progress(tx) => {
            let deleted = queue.delete(&m.receipt).await;
            if let Ok(bytes) = m.envelope {
                // A full backlog is a flood: what does not fit is dropped, and the request
                // goes on without it.
                let _ = tx.try_send(bytes);
            }
            deleted
        }
        Fate::Delete => queue.delete(&m.receipt).await,
        Fate::Leave => queue.set_visibility(&m.receipt, OTHERS_HIDDEN_S).await,
    };
    if let Err(e) = result {
        lock(state).last_error = Some(e.to_string());
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
