//! sesame over AWS SQS: the plumbing `sesamed` and `sesame` share.
//!
//! A request travels as one SQS message on the host's request queue (`sesame-req-<host>`); the
//! daemon answers with one message on the client's reply queue (`sesame-reply-<16 hex>`, see
//! [`reply_queue`]). Each body is the sealed envelope in standard base64 (SQS bodies must be
//! text). Everything about *who* may do *what* stays in the envelope: SQS only carries bytes, so a
//! credential for the queues lets one drop or delay messages, never read, forge or replay them.
//!
//! Credentials, region and endpoint come from the standard AWS chain (`AWS_ACCESS_KEY_ID`…,
//! `AWS_PROFILE`, `~/.aws/config`, web identity, ECS and EC2 instance roles, `AWS_ENDPOINT_URL`),
//! and [`Settings`] can override region, endpoint and profile.

#![forbid(unsafe_code)]

use std::time::Duration;

pub use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::MessageSystemAttributeName;
pub use aws_sdk_sqs::types::QueueAttributeName;
use base64::Engine as _;
pub use sesame_proto::queues::{is_queue_name, reply_queue, request_queue};

/// The longest long poll SQS allows, seconds.
pub const MAX_WAIT_S: i32 = 20;
/// How much longer than its wait a long poll may take before it counts as failed.
pub const LONG_POLL_MARGIN: Duration = Duration::from_secs(10);
/// The most messages one receive returns.
pub const MAX_BATCH: i32 = 10;

/// Where and as whom to reach SQS; `None` fields fall back to the standard AWS chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The AWS region (else `AWS_REGION` or the profile's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The SQS endpoint (else `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL`, or AWS's own): a VPC
    /// endpoint, or a local server in tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// The shared-config profile (else `AWS_PROFILE` or `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// An SQS client configured from `settings` and the standard AWS chain.
///
/// Every call has a deadline of `call_timeout` (a long poll's own wait comes on top), so a
/// network that swallows packets surfaces as an error the caller can back off from.
pub async fn client(settings: &Settings, call_timeout: Duration) -> Client {
    Client::new(&loader(settings, call_timeout).load().await)
}

/// Like [`client`], with static keys instead of the credential chain (for programs that get
/// their keys elsewhere, and for tests against a local server).
pub async fn client_with_keys(
    settings: &Settings,
    call_timeout: Duration,
    access_key_id: &str,
    secret_access_key: &str,
) -> Client {
    let keys = aws_sdk_sqs::config::Credentials::new(access_key_id, secret_access_key, None, None, "static");
    Client::new(
        &loader(settings, call_timeout)
            .credentials_provider(keys)
            .load()
            .await,
    )
}

fn loader(settings: &Settings, call_timeout: Duration) -> aws_config::ConfigLoader {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(call_timeout)
            .build(),
    );
    if let Some(region) = &settings.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    loader
}

/// An SQS call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqsError {
    /// The queue does not exist (or this identity may not see it).
    #[error("queue {0} does not exist")]
    NoSuchQueue(String),
    /// A queue name SQS would refuse.
    #[error("{0:?} is not a queue name (1-80 of A-Z a-z 0-9 _ -) or an http(s) queue URL")]
    BadName(String),
    /// Anything else: network, credentials, permissions, throttling.
    #[error("{op} on {queue}: {message}")]
    Call {
        /// The SQS operation.
        op: &'static str,
        /// The queue's name.
        queue: String,
        /// What the SDK said, with its causes.
        message: String,
    },
}

/// A message body that is not a base64 envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message body is not base64 ({0})")]
pub struct BodyError(String);

/// The body that carries `envelope`.
pub fn encode_body(envelope: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(envelope)
}

/// The envelope a body carries. Anything but standard base64 (surrounding whitespace aside) is
/// refused; the envelope itself is checked by its reader.
pub fn decode_body(body: &str) -> Result<Vec<u8>, BodyError> {
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|e| BodyError(e.to_string()))
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    /// SQS's id for it.
    pub message_id: String,
    /// The handle to delete it or change its visibility with (this delivery's).
    pub receipt: String,
    /// The envelope, or why the body is not one.
    pub envelope: Result<Vec<u8>, BodyError>,
    /// How many times SQS has handed it out, this time included.
    pub receive_count: u32,
}

/// A queue, resolved to its URL.
#[derive(Debug, Clone)]
pub struct Queue {
    client: Client,
    name: String,
    url: String,
}

/// Whether `name_or_url` is a full queue URL (used as is) rather than a name.
fn is_url(name_or_url: &str) -> bool {
    name_or_url.starts_with("https://") || name_or_url.starts_with("http://")
}

/// The queue name in `name_or_url`: the name itself, or a queue URL's last segment; `None` when
/// that is not a valid queue name.
pub fn queue_name(name_or_url: &str) -> Option<&str> {
    let name = if is_url(name_or_url) {
        name_or_url.rsplit('/').next().unwrap_or_default()
    } else {
        name_or_url
    };
    is_queue_name(name).then_some(name)
}

impl Queue {
    /// Finds the queue `name_or_url` (a name in this account and region, or a full queue URL,
    /// used as is).
    pub async fn open(client: &Client, name_or_url: &str) -> Result<Self, SqsError> {
        let name = queue_name(name_or_url).ok_or_else(|| SqsError::BadName(name_or_url.to_owned()))?;
        if is_url(name_or_url) {
            return Ok(Self {
                client: client.clone(),
                name: name.to_owned(),
                url: name_or_url.to_owned(),
            });
        }
        match client.get_queue_url().queue_name(name_or_url).send().await {
            Ok(out) => Ok(Self {
                client: client.clone(),
                name: name_or_url.to_owned(),
                url: out.queue_url().unwrap_or_default().to_owned(),
            }),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_does_not_exist()) => {
                Err(SqsError::NoSuchQueue(name_or_url.to_owned()))
            }
            Err(e) => Err(call_error("GetQueueUrl", name_or_url, &e)),
        }
    }

    /// Finds the queue `name`, creating it with `attributes` when it does not exist.
    pub async fn open_or_create(
        client: &Client,
        name: &str,
        attributes: &[(QueueAttributeName, &str)],
    ) -> Result<Self, SqsError> {
        match Self::open(client, name).await {
            Err(SqsError::NoSuchQueue(_)) => {}
            other => return other,
        }
        let mut create = client.create_queue().queue_name(name);
        for (key, value) in attributes {
            create = create.attributes(key.clone(), *value);
        }
        let out = create
            .send()
            .await
            .map_err(|e| call_error("CreateQueue", name, &e))?;
        Ok(Self {
            client: client.clone(),
            name: name.to_owned(),
            url: out.queue_url().unwrap_or_default().to_owned(),
        })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one envelope; returns SQS's id for the message.
    pub async fn send(&self, envelope: &[u8]) -> Result<String, SqsError> {
        match self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(encode_body(envelope))
            .send()
            .await
        {
            Ok(out) => Ok(out.message_id().unwrap_or_default().to_owned()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_does_not_exist()) => {
                Err(SqsError::NoSuchQueue(self.name.clone()))
            }
            Err(e) => Err(call_error("SendMessage", &self.name, &e)),
        }
    }

    /// Long-polls for up to `max` messages (at most [`MAX_BATCH`]), waiting up to `wait_s`
    /// seconds for the first; each stays invisible to others for `visibility_s` seconds.
    pub async fn receive(&self, max: i32, wait_s: i32, visibility_s: i32) -> Result<Vec<Received>, SqsError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, MAX_BATCH))
            .wait_time_seconds(wait_s.clamp(0, MAX_WAIT_S))
            .visibility_timeout(visibility_s)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .customize()
            .config_override(long_poll_timeout(wait_s))
            .send()
            .await
            .map_err(|e| call_error("ReceiveMessage", &self.name, &e))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                Some(Received {
                    message_id: m.message_id()?.to_owned(),
                    receipt: m.receipt_handle()?.to_owned(),
                    envelope: decode_body(m.body().unwrap_or_default()),
                    receive_count: m
                        .attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1),
                })
            })
            .collect())
    }

    /// Deletes a received message.
    pub async fn delete(&self, receipt: &str) -> Result<(), SqsError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| call_error("DeleteMessage", &self.name, &e))
    }

    /// Makes a received message invisible for `secs` more seconds from now (0: visible again).
    pub async fn set_visibility(&self, receipt: &str, secs: i32) -> Result<(), SqsError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(secs)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| call_error("ChangeMessageVisibility", &self.name, &e))
    }
}

/// A long poll may take its whole wait before SQS answers: its attempt deadline is the wait
/// plus [`LONG_POLL_MARGIN`], not the client's usual call deadline.
fn long_poll_timeout(wait_s: i32) -> aws_sdk_sqs::config::Builder {
    let wait = Duration::from_secs(u64::try_from(wait_s.clamp(0, MAX_WAIT_S)).unwrap_or(0));
    aws_sdk_sqs::config::Builder::default().timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(wait + LONG_POLL_MARGIN)
            .build(),
    )
}

fn call_error<E: std::error::Error + 'static>(op: &'static str, queue: &str, e: &E) -> SqsError {
    SqsError::Call {
        op,
        queue: queue.to_owned(),
        message: DisplayErrorContext(e).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_is_named_or_given_by_url() {
        assert_eq!(queue_name("sesame-req-web1"), Some("sesame-req-web1"));
        let url = "https://sqs.eu-west-1.amazonaws.com/111122223333/sesame-req-db";
        assert_eq!(queue_name(url), Some("sesame-req-db"));
        assert_eq!(queue_name("http://127.0.0.1:9324/000000000000/q_1"), Some("q_1"));
        for bad in ["", "a.b", "a/b", "https://host/", "https://host/q.fifo"] {
            assert_eq!(queue_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bodies_round_trip_and_garbage_is_refused() {
        let envelope = b"SSM1\x00\x01binary\xff";
        let body = encode_body(envelope);
        assert!(body.is_ascii());
        assert_eq!(decode_body(&body).expect("decode"), envelope);
        assert_eq!(decode_body(&format!(" {body}\n")).expect("trimmed"), envelope);
        assert!(decode_body("not base64!").is_err());
        assert!(decode_body("").expect("empty").is_empty());
    }
}
