//! SQS transport: nothing listens. The daemon long-polls its request queue, hands each envelope
//! to [`Runner::handle`], sends the sealed answer to the sender's reply queue and only then
//! deletes the request.
//!
//! Delivery is at least once, and every path is arranged so that nothing is lost and nothing
//! runs twice:
//! - A message is deleted only after its answer was sent (or it was judged unanswerable), so a
//!   daemon that dies mid-command leaves it in the queue for the next one.
//! - While a command runs, its message's visibility is extended, so no other receiver gets it.
//! - A second delivery of a request runs nothing: the runner's answer cache resends the first
//!   answer (or the persisted replay log refuses it after a restart).
//! - A body that is not an envelope is deleted at once and audited; a message that keeps
//!   coming back (its answer cannot be sent) is dropped after `max_receives` and audited.
//! - Failed calls back off exponentially (0.5 s to 30 s) and the loop carries on.
//!
//! A request that asks for its output as it comes gets it on its reply queue too, ahead of the
//! answer: progress frames (as over QUIC) gathered into messages, the first at once, then at most
//! one every [`PROGRESS_INTERVAL`] (sooner only when [`PROGRESS_MESSAGE_BYTES`] fill up, which
//! the output limit bounds), each sealed chunk numbered so the client puts them back in order.
//! What is gathered is sent before the answer; a message that cannot be sent is dropped (the
//! client skips what is missing), never retried at the cost of the answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sesame_proto::{Envelope, PublicKey};
use sesame_sqs::{Queue, Received, SqsError};
use tokio::sync::{Mutex, Semaphore, watch};

use crate::config::SqsConfig;
use crate::runner::{Peer, Runner};

/// Deadline of one SQS call (a long poll's wait comes on top).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The first pause after a failed receive; it doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// The longest pause after failed receives.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a message whose answer could not be sent waits before it is tried again, seconds.
pub const RETRY_AFTER_S: i32 = 5;

/// At most one message of output per request this often (the first goes at once).
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// The most output frames one message carries, bytes (base64 makes it a third larger; SQS takes
/// 256 KiB).
pub const PROGRESS_MESSAGE_BYTES: usize = 180 * 1024;

const PEER: Peer = Peer {
    transport: "sqs",
    source_ip: None,
    progress: None,
};

/// The daemon's side of SQS: its request queue and the reply queues it has resolved.
#[derive(Debug)]
pub struct SqsServer {
    client: sesame_sqs::Client,
    config: SqsConfig,
    replies: Mutex<HashMap<String, Queue>>,
}

impl SqsServer {
    /// An SDK client for `config` (credentials are looked up on first use, not here).
    pub async fn new(config: SqsConfig) -> Self {
        let client = sesame_sqs::client(&config.aws, CALL_TIMEOUT).await;
        Self {
            client,
            config,
            replies: Mutex::new(HashMap::new()),
        }
    }

    /// Looks the request queue up once (for `configtest` and a clear start-up message).
    pub async fn check(&self) -> Result<Queue, SqsError> {
        Queue::open(&self.client, &self.config.queue).await
    }

    /// Serves until `shutdown` turns true, then stops receiving and waits (up to `drain`) for
    /// the messages in hand to be answered. Messages not yet received stay in the queue; a
    /// long poll under way when the stop comes is finished (up to `wait_time_s`) and whatever
    /// it got is handed back.
    pub async fn serve(
        self: Arc<Self>,
        runner: Arc<Runner>,
        mut shutdown: watch::Receiver<bool>,
        drain: Duration,
    ) {
        let Some(queue) = self.resolve(&mut shutdown).await else {
            return;
        };
        tracing::info!(queue = %queue.name(), "serving SQS");
        let permits = Arc::new(Semaphore::new(self.config.max_in_flight));
        let mut backoff = MIN_BACKOFF;
        let visibility = i32::try_from(self.config.visibility_timeout_s).unwrap_or(i32::MAX);
        let wait_s = i32::try_from(self.config.wait_time_s).unwrap_or(sesame_sqs::MAX_WAIT_S);
        loop {
            let first = tokio::select! {
                p = Arc::clone(&permits).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            let mut held = vec![first];
            while held.len() < sesame_sqs::MAX_BATCH as usize
                && let Ok(p) = Arc::clone(&permits).try_acquire_owned()
            {
                held.push(p);
            }
            let max = i32::try_from(held.len()).unwrap_or(1);
            let receive = queue.receive(max, wait_s, visibility);
            tokio::pin!(receive);
            let batch = tokio::select! {
                r = &mut receive => Some(r),
                _ = shutdown.wait_for(|stop| *stop) => None,
            };
            let Some(batch) = batch else {
                // SQS goes on with a long poll whose caller left, and would hide what it finds
                // for the visibility timeout: finish it, and hand its messages back at once for
                // the next daemon.
                if let Ok(messages) = receive.await {
                    for m in messages {
                        if let Err(e) = queue.set_visibility(&m.receipt, 0).await {
                            tracing::warn!(
                                "handing back a request failed (it returns in {visibility} s): {e}"
                            );
                        }
                    }
                }
                break;
            };
            match batch {
                Ok(messages) => {
                    backoff = MIN_BACKOFF;
                    for message in messages {
                        let Some(permit) = held.pop() else { break };
                        let this = Arc::clone(&self);
                        let (runner, queue) = (Arc::clone(&runner), queue.clone());
                        tokio::spawn(async move {
                            this.handle(runner, &queue, message).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!("receiving requests failed, retrying in {backoff:?}: {e}");
                    drop(held);
                    if sleep_or_stop(backoff, &mut shutdown).await {
                        break;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        let all = u32::try_from(self.config.max_in_flight).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(drain, permits.acquire_many(all)).await;
    }

    /// Finds the request queue, retrying with back-off (the network or the queue may come
    /// later); `None` if asked to stop first.
    async fn resolve(&self, shutdown: &mut watch::Receiver<bool>) -> Option<Queue> {
        let mut backoff = MIN_BACKOFF;
        loop {
            match Queue::open(&self.client, &self.config.queue).await {
                Ok(q) => return Some(q),
                Err(e) => tracing::error!("request queue: {e}; retrying in {backoff:?}"),
            }
            if sleep_or_stop(backoff, shutdown).await {
                return None;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn handle(&self, runner: Arc<Runner>, queue: &Queue, message: Received) {
        let now = crate::now_ms();
        let envelope = match message.envelope {
            Ok(bytes) => bytes,
            Err(e) => {
                runner.record_poison(
                    now,
                    queue.name(),
                    &message.message_id,
                    message.receive_count,
                    &e.to_string(),
                );
                self.delete(queue, &message.receipt).await;
                return;
            }
        };
        if message.receive_count > self.config.max_receives {
            let reason = format!(
                "received {} times (max_receives {}) without its answer getting through",
                message.receive_count, self.config.max_receives
            );
            runner.record_poison(
                now,
                queue.name(),
                &message.message_id,
                message.receive_count,
                &reason,
            );
            self.delete(queue, &message.receipt).await;
            return;
        }
        let sender = Envelope::decode(&envelope).ok().map(|e| e.sender);
        let keep_hidden = tokio::spawn(keep_invisible(
            queue.clone(),
            message.receipt.clone(),
            self.config.visibility_timeout_s,
        ));
        let handler = Arc::clone(&runner);
        let (channel, frames) = crate::progress::ProgressChannel::new();
        let peer = Peer {
            progress: Some(channel),
            ..PEER
        };
        // The output is forwarded while the request runs; the forwarder ends once the runner
        // is done with the request (the channel's last sender goes with it), after its last send.
        let handling = tokio::task::spawn_blocking(move || handler.handle(crate::now_ms(), &envelope, &peer));
        let (answer, ()) = tokio::join!(handling, self.forward_progress(sender, frames));
        keep_hidden.abort();
        match (answer, sender) {
            // Never authenticated (the runner audited it): nobody to answer, nothing to retry.
            (Ok(None), _) => self.delete(queue, &message.receipt).await,
            (Ok(Some(sealed)), Some(sender)) => match self.reply(&sender, &sealed).await {
                Ok(reply_id) => {
                    tracing::debug!(request = %message.message_id, answer = %reply_id, "answered");
                    self.delete(queue, &message.receipt).await;
                }
                Err(SqsError::NoSuchQueue(q)) => {
                    tracing::warn!(message_id = %message.message_id, "reply queue {q} does not exist; the answer is dropped");
                    self.delete(queue, &message.receipt).await;
                }
                Err(e) => {
                    tracing::warn!(message_id = %message.message_id, "answer not sent, the request comes back in {RETRY_AFTER_S} s: {e}");
                    if let Err(e) = queue.set_visibility(&message.receipt, RETRY_AFTER_S).await {
                        tracing::debug!("{e}");
                    }
                }
            },
            (Ok(Some(_)), None) => tracing::error!("answered an envelope that does not decode"),
            (Err(e), _) => tracing::error!(message_id = %message.message_id, "request handler panicked: {e}"),
        }
    }

    /// Sends the progress frames that come out of `frames` to `sender`'s reply queue, gathered
    /// as the module docs say, until the channel closes.
    async fn forward_progress(
        &self,
        sender: Option<PublicKey>,
        mut frames: tokio::sync::mpsc::Receiver<Vec<u8>>,
    ) {
        let mut batch: Vec<u8> = Vec::new();
        let mut last_sent: Option<tokio::time::Instant> = None;
        loop {
            let frame = if batch.is_empty() {
                frames.recv().await
            } else {
                let due = last_sent.map_or_else(tokio::time::Instant::now, |t| t + PROGRESS_INTERVAL);
                tokio::select! {
                    frame = frames.recv() => frame,
                    () = tokio::time::sleep_until(due) => {
                        self.send_progress(sender.as_ref(), &mut batch).await;
                        last_sent = Some(tokio::time::Instant::now());
                        continue;
                    }
                }
            };
            let Some(frame) = frame else { break };
            if !batch.is_empty() && batch.len() + frame.len() > PROGRESS_MESSAGE_BYTES {
                self.send_progress(sender.as_ref(), &mut batch).await;
                last_sent = Some(tokio::time::Instant::now());
            }
            batch.extend_from_slice(&frame);
        }
        self.send_progress(sender.as_ref(), &mut batch).await;
    }

    /// Sends `batch` (and empties it), if there is anything to send and anyone to send it to.
    async fn send_progress(&self, sender: Option<&PublicKey>, batch: &mut Vec<u8>) {
        let body = std::mem::take(batch);
        let Some(sender) = sender.filter(|_| !body.is_empty()) else {
            return;
        };
        match self.reply(sender, &body).await {
            Ok(_) => tracing::debug!(bytes = body.len(), "output sent"),
            Err(e) => tracing::warn!(bytes = body.len(), "output not sent, the client skips it: {e}"),
        }
    }

    /// Sends `sealed` to `sender`'s reply queue.
    async fn reply(&self, sender: &PublicKey, sealed: &[u8]) -> Result<String, SqsError> {
        let name = sesame_sqs::reply_queue(sender);
        let cached = self.replies.lock().await.get(&name).cloned();
        let queue = match cached {
            Some(q) => q,
            None => {
                let q = Queue::open(&self.client, &name).await?;
                self.replies.lock().await.insert(name.clone(), q.clone());
                q
            }
        };
        let sent = queue.send(sealed).await;
        if matches!(sent, Err(SqsError::NoSuchQueue(_))) {
            self.replies.lock().await.remove(&name);
        }
        sent
    }

    async fn delete(&self, queue: &Queue, receipt: &str) {
        // A failed delete only means the message comes back; its second delivery runs nothing.
        if let Err(e) = queue.delete(receipt).await {
            tracing::warn!(
                "deleting a handled request failed (it will be delivered again, and not run again): {e}"
            );
        }
    }
}

/// Extends a message's invisibility every half period while its command runs.
async fn keep_invisible(queue: Queue, receipt: String, period_s: u32) {
    let period = i32::try_from(period_s).unwrap_or(i32::MAX);
    loop {
        tokio::time::sleep(Duration::from_secs(u64::from(period_s / 2))).await;
        if let Err(e) = queue.set_visibility(&receipt, period).await {
            tracing::warn!("extending a running request's visibility failed: {e}");
        }
    }
}

/// Sleeps `d`; true if asked to stop meanwhile.
async fn sleep_or_stop(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        _ = shutdown.wait_for(|stop| *stop) => true,
    }
}
