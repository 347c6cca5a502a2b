//! The JSON plaintexts inside envelopes: [`Request`] (client to daemon) and [`Response`] (daemon to
//! client), and the [`RequestId`] that ties them together.
//!
//! Decoding parses *and* validates: a value returned by [`Request::decode`] satisfies every limit
//! documented on it. Unknown fields and duplicate fields are errors, so requests and responses (which
//! share a key within a client/daemon pair) can never be mistaken for each other.

use std::fmt;
use std::str::FromStr;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::PROTOCOL_VERSION;
use crate::code::ErrorCode;
use crate::envelope::MAX_ENVELOPE_LEN;
use crate::error::ProtoError;
use crate::hex_text;
use crate::receipt::Receipt;
use crate::rotation::HostKeyNote;

/// Longest host, cluster or command name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Most arguments a request may carry.
pub const MAX_ARGS: usize = 64;
/// Longest single argument, in bytes.
pub const MAX_ARG_LEN: usize = 4096;
/// Longest `reply_to` queue name, in bytes.
pub const MAX_REPLY_TO_LEN: usize = 256;
/// Longest reason a client may give for a request (`sesame run --reason`), in bytes.
pub const MAX_REQUEST_REASON_LEN: usize = 512;

/// Longest peer-influenced reason kept in a [`ProtoError`], in characters.
const MAX_REASON_LEN: usize = 160;

/// A 128-bit random request identifier: the replay-window key, echoed in the response.
///
/// Its text form ([`Display`](fmt::Display), [`FromStr`], serde) is exactly 32 hex characters; output is
/// lowercase, input may be either case (the id is compared as bytes, so case cannot dodge the replay
/// window).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId([u8; 16]);

impl RequestId {
    /// A fresh random id.
    #[must_use]
    pub fn random(rng: &mut impl CryptoRngCore) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Wraps 16 raw bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The raw id bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::with_capacity(32);
        hex_text::encode_lower_into(&self.0, &mut text);
        f.write_str(&text)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({self})")
    }
}

impl FromStr for RequestId {
    type Err = ProtoError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 16];
        if hex_text::decode_exact(text, &mut bytes) {
            Ok(Self(bytes))
        } else {
            Err(ProtoError::MalformedRequest(
                "request id must be exactly 32 hex characters".into(),
            ))
        }
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom("request id must be exactly 32 hex characters"))
    }
}

/// A request to run `command` (in `cluster`) on `host`, as sealed by a client.
///
/// Names (`host`, `cluster`, `command`) are 1 to [`MAX_NAME_LEN`] bytes of `[a-z0-9._-]` starting with
/// a letter or digit. There are at most [`MAX_ARGS`] arguments of at most [`MAX_ARG_LEN`] bytes each,
/// none containing NUL. `reply_to` is 1 to [`MAX_REPLY_TO_LEN`] bytes of `[A-Za-z0-9_-]`. A
/// `reason` is 1 to [`MAX_REQUEST_REASON_LEN`] bytes, not only whitespace, with no control
/// characters (it is shown on one line in logs and listings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Protocol version; always [`PROTOCOL_VERSION`] in a decoded request.
    pub v: u8,
    /// Random id: the replay-window key, echoed in the response.
    pub id: RequestId,
    /// When the client issued the request, Unix milliseconds by the client's clock.
    pub issued_at_ms: u64,
    /// The host that must execute the request; a daemon refuses requests naming another host.
    pub host: String,
    /// The cluster holding the command; `None` lets the daemon resolve the command's cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The command to run.
    pub command: String,
    /// The command's arguments, passed verbatim (never through a shell).
    pub args: Vec<String>,
    /// Queue for the reply (SQS transport); `None` means reply on the same channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Why the client asks (a ticket id, a sentence): the policy sees it as
    /// `input.request.reason` and may require it; the audit and decision logs keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The client takes the command's output as it comes: [`Progress`](crate::Progress)
    /// messages ahead of the response, in [`Frame`](crate::Frame)s on a QUIC stream. Written only
    /// when set, so a request without it reads as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Answer at once, once the command has started, and let it run on: its output and answer
    /// are kept on the host for the client to fetch (`runs::result ID`). Written only when set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub detach: bool,
}

impl Request {
    /// A request with a fresh random id, issued at `now_ms`, without `reply_to`.
    ///
    /// The fields are not validated here; call [`validate`](Self::validate) to check them before
    /// sending, or let the receiving [`decode`](Self::decode) reject them.
    #[must_use]
    pub fn new(
        rng: &mut impl CryptoRngCore,
        now_ms: u64,
        host: &str,
        cluster: Option<&str>,
        command: &str,
        args: Vec<String>,
    ) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            id: RequestId::random(rng),
            issued_at_ms: now_ms,
            host: host.to_owned(),
            cluster: cluster.map(str::to_owned),
            command: command.to_owned(),
            args,
            reply_to: None,
            reason: None,
            stream: false,
            detach: false,
        }
    }

    /// The JSON plaintext of this request.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .expect("a Request is strings, integers and a list: JSON encoding cannot fail")
    }

    /// Parses and validates a request plaintext.
    ///
    /// Errors: [`ProtoError::UnsupportedVersion`] if `v` is not [`PROTOCOL_VERSION`] (checked first,
    /// so a newer client gets the right answer even if its fields are unknown here), otherwise
    /// [`ProtoError::MalformedRequest`] for oversize input, invalid JSON, unknown, missing or duplicate
    /// fields, or any limit in the [type docs](Self) being violated.
    pub fn decode(plaintext: &[u8]) -> Result<Self, ProtoError> {
        if plaintext.len() > MAX_ENVELOPE_LEN {
            return Err(ProtoError::MalformedRequest(format!(
                "request is {} bytes",
                plaintext.len()
            )));
        }
        check_version(plaintext, ProtoError::MalformedRequest)?;
        let request: Self =
            serde_json::from_slice(plaintext).map_err(|e| ProtoError::MalformedRequest(reason(&e)))?;
        request.validate()?;
        Ok(request)
    }

    /// Checks every limit in the [type docs](Self) and the version; [`decode`](Self::decode) calls this.
    pub fn validate(&self) -> Result<(), ProtoError> {
        let malformed = |why: String| Err(ProtoError::MalformedRequest(why));
        if self.v != PROTOCOL_VERSION {
            return Err(ProtoError::UnsupportedVersion(self.v));
        }
        check_name("host", &self.host)?;
        if let Some(cluster) = &self.cluster {
            check_name("cluster", cluster)?;
        }
        check_name("command", &self.command)?;
        if self.args.len() > MAX_ARGS {
            return malformed(format!("{} arguments (at most {MAX_ARGS})", self.args.len()));
        }
        for (index, arg) in self.args.iter().enumerate() {
            if arg.len() > MAX_ARG_LEN {
                return malformed(format!(
                    "argument {index} is {} bytes (at most {MAX_ARG_LEN})",
                    arg.len()
                ));
            }
            if arg.contains('\0') {
                return malformed(format!("argument {index} contains NUL"));
            }
        }
        if let Some(reason) = &self.reason {
            check_reason(reason)?;
        }
        if let Some(reply_to) = &self.reply_to {
            let valid_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
            if reply_to.is_empty() || reply_to.len() > MAX_REPLY_TO_LEN || !reply_to.bytes().all(valid_byte) {
                return malformed(format!(
                    "reply_to must be 1 to {MAX_REPLY_TO_LEN} bytes of [A-Za-z0-9_-]"
                ));
            }
        }
        Ok(())
    }
}

/// Whether a request succeeded; redundant with [`Response::code`] but convenient for humans and scripts.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The command ran and succeeded; the code is [`ErrorCode::Ok`].
    Ok,
    /// The request failed; the code says why.
    Error,
}

/// A grant the request used or created, reported back to the client (e.g. a firewall opening).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantNote {
    /// The grant's identifier in the daemon's ledger.
    pub id: String,
    /// What kind of grant it is (e.g. `"firewall"`).
    pub kind: String,
    /// Human-readable detail.
    pub detail: String,
    /// When the grant lapses, Unix milliseconds; `None` if it does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

/// A request parked until other people approve it (code [`ErrorCode::ApprovalPending`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingNote {
    /// The parked request: the id of the request that asked (`sesame approve HOST ID`).
    pub id: RequestId,
    /// Approvals it has.
    pub approvals: u32,
    /// Approvals it needs.
    pub required: u32,
    /// When it expires unapproved, Unix milliseconds.
    pub expires_at_ms: u64,
}

/// The daemon's answer to a [`Request`], sealed back to the client.
///
/// A decoded response always has `status == Status::Ok` exactly when `code == ErrorCode::Ok`. The
/// client must check that `id` is the id it sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// Protocol version; always [`PROTOCOL_VERSION`] in a decoded response.
    pub v: u8,
    /// The id of the request this answers.
    pub id: RequestId,
    /// Success or failure, matching `code`.
    pub status: Status,
    /// The stable result code.
    pub code: ErrorCode,
    /// A short message for the client; never internal detail such as paths or stderr.
    pub message: String,
    /// The command's output.
    pub output: String,
    /// How long the command ran, in microseconds.
    pub duration_us: u64,
    /// Grants used or created by the command.
    #[serde(default)]
    pub grants: Vec<GrantNote>,
    /// Set when the request was sealed to a host key the host has since replaced
    /// (`sesamed rotate-key`): the key that replaced it. The response is sealed with the old
    /// key, so the note is only as authentic as that key, which may be why the host rotated: a
    /// client follows it only as [`HostPin::follow`](crate::HostPin::follow) allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key_rotated: Option<HostKeyNote>,
    /// Set with [`ErrorCode::ApprovalPending`]: the parked request, to wait for
    /// (`sesame result HOST ID`) or to approve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingNote>,
    /// The host's audit record of this answer: its `seq` and the SHA-256 of its line, signed
    /// by the host's receipt key. `None` when the host could not write the record (or is older
    /// than receipts). A client checks the signature and keeps it, so that a verifier can later
    /// check the record is still in the log unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    /// How many chunks of output the host sealed for this request ahead of the answer
    /// ([`Progress`](crate::Progress), `seq` 0 to this less one); 0 when none. A transport that
    /// may deliver them out of order or after the answer (SQS) lets the client wait for each.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub streamed: u32,
    /// Set in the answer to a [`Request::detach`] request: the command started and runs on;
    /// `runs::result ID` fetches its output and answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub detached: bool,
}

/// Whether `n` is zero (a field written only when set).
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Response {
    /// A successful response carrying the command's `output`.
    #[must_use]
    pub fn ok(id: RequestId, output: String, duration_us: u64) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            id,
            status: Status::Ok,
            code: ErrorCode::Ok,
            message: String::new(),
            output,
            duration_us,
            grants: Vec::new(),
            host_key_rotated: None,
            pending: None,
            receipt: None,
            streamed: 0,
            detached: false,
        }
    }

    /// A failed response. `code` must not be [`ErrorCode::Ok`]; if it is (a bug in the caller), the
    /// response is sent as [`ErrorCode::Internal`] so that status and code never disagree.
    #[must_use]
    pub fn error(id: RequestId, code: ErrorCode, message: impl Into<String>) -> Self {
        debug_assert_ne!(code, ErrorCode::Ok, "Response::error with ErrorCode::Ok");
        let code = if code == ErrorCode::Ok {
            ErrorCode::Internal
        } else {
            code
        };
        Self {
            v: PROTOCOL_VERSION,
            id,
            status: Status::Error,
            code,
            message: message.into(),
            output: String::new(),
            duration_us: 0,
            grants: Vec::new(),
            host_key_rotated: None,
            pending: None,
            receipt: None,
            streamed: 0,
            detached: false,
        }
    }

    /// The answer to a request the host parked until others approve it.
    #[must_use]
    pub fn pending(id: RequestId, note: PendingNote, message: impl Into<String>) -> Self {
        Self {
            pending: Some(note),
            ..Self::error(id, ErrorCode::ApprovalPending, message)
        }
    }

    /// The JSON plaintext of this response.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .expect("a Response is strings, integers and lists: JSON encoding cannot fail")
    }

    /// Parses and checks a response plaintext: [`ProtoError::UnsupportedVersion`] if `v` is not
    /// [`PROTOCOL_VERSION`], [`ProtoError::MalformedResponse`] for oversize input, invalid JSON, unknown,
    /// missing or duplicate fields, an unknown code, or a status that disagrees with the code.
    pub fn decode(plaintext: &[u8]) -> Result<Self, ProtoError> {
        if plaintext.len() > MAX_ENVELOPE_LEN {
            return Err(ProtoError::MalformedResponse(format!(
                "response is {} bytes",
                plaintext.len()
            )));
        }
        check_version(plaintext, ProtoError::MalformedResponse)?;
        let response: Self =
            serde_json::from_slice(plaintext).map_err(|e| ProtoError::MalformedResponse(reason(&e)))?;
        if response.pending.is_some() != (response.code == ErrorCode::ApprovalPending) {
            return Err(ProtoError::MalformedResponse(format!(
                "code {} {} a pending note",
                response.code.as_u16(),
                if response.pending.is_some() {
                    "with"
                } else {
                    "without"
                }
            )));
        }
        if (response.status == Status::Ok) != (response.code == ErrorCode::Ok) {
            return Err(ProtoError::MalformedResponse(format!(
                "status {:?} disagrees with code {}",
                response.status,
                response.code.as_u16()
            )));
        }
        Ok(response)
    }
}

/// Reads only `v`, so an unsupported version is reported as such even when the rest of the message
/// has a shape this version does not know.
pub(crate) fn check_version(plaintext: &[u8], malformed: fn(String) -> ProtoError) -> Result<(), ProtoError> {
    #[derive(Deserialize)]
    struct VersionProbe {
        v: u8,
    }
    let probe: VersionProbe = serde_json::from_slice(plaintext).map_err(|e| malformed(reason(&e)))?;
    if probe.v == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(ProtoError::UnsupportedVersion(probe.v))
    }
}

/// Checks a host, cluster or command name: 1..=64 bytes of `[a-z0-9._-]`, starting alphanumeric.
fn check_name(field: &str, name: &str) -> Result<(), ProtoError> {
    let valid_byte = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-');
    let valid = match name.as_bytes().first() {
        Some(first) => {
            (first.is_ascii_lowercase() || first.is_ascii_digit())
                && name.len() <= MAX_NAME_LEN
                && name.bytes().all(valid_byte)
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(ProtoError::MalformedRequest(format!(
            "{field} must be 1 to {MAX_NAME_LEN} bytes of [a-z0-9._-] starting with a letter or digit"
        )))
    }
}

/// Checks a request's reason: 1..=[`MAX_REQUEST_REASON_LEN`] bytes, not blank, no control
/// characters.
fn check_reason(reason: &str) -> Result<(), ProtoError> {
    let why = if reason.trim().is_empty() {
        "is empty".to_owned()
    } else if reason.len() > MAX_REQUEST_REASON_LEN {
        format!("is {} bytes (at most {MAX_REQUEST_REASON_LEN})", reason.len())
    } else if reason.chars().any(char::is_control) {
        "contains a control character (a reason is one line of text)".to_owned()
    } else {
        return Ok(());
    };
    Err(ProtoError::MalformedRequest(format!("reason {why}")))
}

/// A serde error as a log-safe reason: control characters escaped (serde quotes unknown field names,
/// which the peer chose) and the length bounded.
pub(crate) fn reason(error: &serde_json::Error) -> String {
    let mut reason = String::new();
    for (count, c) in error.to_string().chars().flat_map(char::escape_debug).enumerate() {
        if count == MAX_REASON_LEN {
            reason.push('…');
            break;
        }
        reason.push(c);
    }
    reason
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::test_rng::TestRng;

    fn sample_request() -> Request {
        Request::new(
            &mut TestRng::seeded(30),
            1_700_000_000_000,
            "web-1.prod",
            Some("nginx"),
            "reload",
            vec!["--graceful".into(), String::new(), "ünïcode".into()],
        )
    }

    fn sample_json() -> Value {
        serde_json::from_slice(&sample_request().encode()).expect("valid json")
    }

    fn decode_value(value: &Value) -> Result<Request, ProtoError> {
        Request::decode(&serde_json::to_vec(value).expect("serialize"))
    }

    fn assert_malformed(value: &Value, why: &str) {
        match decode_value(value) {
            Err(ProtoError::MalformedRequest(reason)) => assert!(reason.len() <= 200, "{reason}"),
            other => panic!("{why}: expected MalformedRequest, got {other:?}"),
        }
    }

    #[test]
    fn request_id_text_round_trips() {
        let id = RequestId::random(&mut TestRng::seeded(31));
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text, text.to_ascii_lowercase());
        assert_eq!(text.parse::<RequestId>(), Ok(id));
        assert_eq!(text.to_ascii_uppercase().parse::<RequestId>(), Ok(id));
        assert_eq!(RequestId::from_bytes(*id.as_bytes()), id);
        assert_eq!(
            serde_json::to_string(&id).expect("serialize"),
            format!("\"{text}\"")
        );
        assert_eq!(
            serde_json::from_str::<RequestId>(&format!("\"{text}\"")).expect("deserialize"),
            id
        );
        assert_eq!(format!("{id:?}"), format!("RequestId({text})"));
        for bad in [
            "",
            &text[..31],
            &format!("{text}0"),
            &format!("{}x", &text[..31]),
            " 0",
        ] {
            assert!(bad.parse::<RequestId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn request_round_trips() {
        let mut request = sample_request();
        assert_eq!(Request::decode(&request.encode()), Ok(request.clone()));
        request.cluster = None;
        request.reply_to = Some("sesame-replies_web-1".into());
        assert_eq!(Request::decode(&request.encode()), Ok(request.clone()));
        request.args = vec!["a".into(); MAX_ARGS];
        request.args[0] = "x".repeat(MAX_ARG_LEN);
        assert_eq!(Request::decode(&request.encode()), Ok(request));
    }

    #[test]
    fn optional_fields_are_omitted_when_absent() {
        let mut request = sample_request();
        request.cluster = None;
        let value: Value = serde_json::from_slice(&request.encode()).expect("json");
        let object = value.as_object().expect("object");
        assert!(!object.contains_key("cluster"));
        assert!(!object.contains_key("reply_to"));
        assert!(!object.contains_key("reason"));
        assert_eq!(object["v"], json!(2));
    }

    #[test]
    fn unknown_missing_and_duplicate_fields_are_rejected() {
        let mut value = sample_json();
        value["extra"] = json!(true);
        assert_malformed(&value, "unknown field");

        for field in ["id", "issued_at_ms", "host", "command", "args"] {
            let mut value = sample_json();
            value.as_object_mut().expect("object").remove(field);
            assert_malformed(&value, field);
        }

        let text = String::from_utf8(sample_request().encode()).expect("utf-8");
        let duplicated = text.replacen(
            "\"host\":\"web-1.prod\"",
            "\"host\":\"web-1.prod\",\"host\":\"evil\"",
            1,
        );
        assert_ne!(duplicated, text);
        assert!(matches!(
            Request::decode(duplicated.as_bytes()),
            Err(ProtoError::MalformedRequest(_))
        ));
    }

    #[test]
    fn bad_versions_are_rejected() {
        // 1: the first wire format's messages (SSM1).
        for v in [0, 1, 3, 255] {
            let mut value = sample_json();
            value["v"] = json!(v);
            assert_eq!(decode_value(&value), Err(ProtoError::UnsupportedVersion(v)));
        }
        // A future version with fields we do not know still reports the version.
        let mut value = sample_json();
        value["v"] = json!(3);
        value["new_field"] = json!("x");
        assert_eq!(decode_value(&value), Err(ProtoError::UnsupportedVersion(3)));

        for v in [json!(256), json!(-1), json!("1"), json!(1.5), Value::Null] {
            let mut value = sample_json();
            value["v"] = v.clone();
            assert_malformed(&value, &format!("v = {v}"));
        }
    }

    #[test]
    fn bad_names_are_rejected() {
        let long = "a".repeat(MAX_NAME_LEN + 1);
        let bad_names = [
            "",
            "Web1",
            "-web",
            ".web",
            "_web",
            "web 1",
            "web/1",
            "web\u{0}",
            "wéb",
            long.as_str(),
        ];
        for field in ["host", "cluster", "command"] {
            for bad in bad_names {
                let mut value = sample_json();
                value[field] = json!(bad);
                assert_malformed(&value, &format!("{field} = {bad:?}"));
            }
            let mut value = sample_json();
            value[field] = json!(42);
            assert_malformed(&value, &format!("{field} = 42"));
        }
        let mut value = sample_json();
        for good in ["a", "0", "web-1.prod_x", &"z".repeat(MAX_NAME_LEN)] {
            value["host"] = json!(good);
            assert!(decode_value(&value).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn bad_args_are_rejected() {
        let mut value = sample_json();
        value["args"] = json!(["ok", "nul\u{0}inside"]);
        assert_malformed(&value, "NUL in arg");

        value["args"] = json!(vec!["a"; MAX_ARGS + 1]);
        assert_malformed(&value, "too many args");

        value["args"] = json!(["x".repeat(MAX_ARG_LEN + 1)]);
        assert_malformed(&value, "huge arg");

        value["args"] = json!("not-a-list");
        assert_malformed(&value, "args not a list");

        value["args"] = json!([1]);
        assert_malformed(&value, "arg not a string");
    }

    #[test]
    fn bad_reply_to_is_rejected() {
        let long = "q".repeat(MAX_REPLY_TO_LEN + 1);
        for bad in ["", "queue.name", "queue name", "https://sqs/queue", long.as_str()] {
            let mut value = sample_json();
            value["reply_to"] = json!(bad);
            assert_malformed(&value, &format!("reply_to = {bad:?}"));
        }
        let mut value = sample_json();
        value["reply_to"] = json!("q".repeat(MAX_REPLY_TO_LEN));
        assert!(decode_value(&value).is_ok());
    }

    #[test]
    fn reasons_round_trip_and_bad_ones_are_rejected() {
        let mut request = sample_request();
        request.reason = Some("INC-4711: disk full on web-1, ünïcode ok".into());
        assert_eq!(Request::decode(&request.encode()), Ok(request.clone()));
        request.reason = Some("r".repeat(MAX_REQUEST_REASON_LEN));
        assert_eq!(Request::decode(&request.encode()), Ok(request));
        let long = "r".repeat(MAX_REQUEST_REASON_LEN + 1);
        for bad in [
            "",
            "   ",
            "line\nbreak",
            "tab\there",
            "esc\u{1b}[31m",
            "nul\u{0}",
            "del\u{7f}",
            long.as_str(),
        ] {
            let mut value = sample_json();
            value["reason"] = json!(bad);
            assert_malformed(&value, &format!("reason = {bad:?}"));
        }
        let mut value = sample_json();
        value["reason"] = json!(7);
        assert_malformed(&value, "reason not a string");
    }

    #[test]
    fn bad_ids_and_times_are_rejected() {
        for id in [json!("abc"), json!(7), json!("zz".repeat(16))] {
            let mut value = sample_json();
            value["id"] = id;
            assert_malformed(&value, "bad id");
        }
        for time in [json!(-1), json!("1"), json!(1e3)] {
            let mut value = sample_json();
            value["issued_at_ms"] = time;
            assert_malformed(&value, "bad issued_at_ms");
        }
    }

    #[test]
    fn non_json_and_oversize_input_is_rejected() {
        for bad in [
            &b""[..],
            b"null",
            b"[]",
            b"{",
            b"\xff\xfe",
            b"{\"v\":2}",
            b"{\"v\":2} trailing",
        ] {
            assert!(
                matches!(Request::decode(bad), Err(ProtoError::MalformedRequest(_))),
                "{bad:?}"
            );
        }
        let huge = vec![b' '; MAX_ENVELOPE_LEN + 1];
        assert!(matches!(
            Request::decode(&huge),
            Err(ProtoError::MalformedRequest(_))
        ));
    }

    #[test]
    fn reasons_escape_and_bound_peer_text() {
        let mut value = sample_json();
        value[format!("evil\nfield{}", "x".repeat(10_000))] = json!(1);
        match decode_value(&value) {
            Err(ProtoError::MalformedRequest(reason)) => {
                assert!(!reason.contains('\n'), "{reason}");
                assert!(reason.contains("evil\\nfield"), "{reason}");
                assert!(reason.chars().count() <= MAX_REASON_LEN + 1, "{reason}");
            }
            other => panic!("expected MalformedRequest, got {other:?}"),
        }
    }

    #[test]
    fn validate_catches_what_new_does_not() {
        let request = Request::new(&mut TestRng::seeded(32), 0, "Bad Host", None, "cmd", vec![]);
        assert!(matches!(request.validate(), Err(ProtoError::MalformedRequest(_))));
        assert_eq!(sample_request().validate(), Ok(()));
    }

    #[test]
    fn responses_round_trip() {
        let id = RequestId::random(&mut TestRng::seeded(33));
        let mut ok = Response::ok(id, "reloaded\n".into(), 1234);
        assert_eq!(Response::decode(&ok.encode()), Ok(ok.clone()));
        ok.grants.push(GrantNote {
            id: "g-1".into(),
            kind: "firewall".into(),
            detail: "tcp/22 from 192.0.2.7".into(),
            expires_at_ms: Some(1_700_000_060_000),
        });
        ok.grants.push(GrantNote {
            id: "g-2".into(),
            kind: "k".into(),
            detail: String::new(),
            expires_at_ms: None,
        });
        assert_eq!(Response::decode(&ok.encode()), Ok(ok.clone()));
        for sealed in [
            None,
            Some(crate::SealedNextKey::from_bytes([7; crate::SEALED_NEXT_KEY_LEN])),
        ] {
            ok.host_key_rotated = Some(HostKeyNote {
                key: crate::PublicKey::from_bytes([9; 32]),
                old_key_until_ms: 1_700_000_600_000,
                next_key_sha256_sealed: sealed,
            });
            assert_eq!(Response::decode(&ok.encode()), Ok(ok.clone()));
        }
        for receipt in [Receipt::LARGEST, receipt(0, 0), receipt(17, 0x5a)] {
            ok.receipt = Some(receipt);
            assert_eq!(Response::decode(&ok.encode()), Ok(ok.clone()));
        }

        for &code in ErrorCode::ALL
            .iter()
            .filter(|&&c| c != ErrorCode::Ok && c != ErrorCode::ApprovalPending)
        {
            let mut error = Response::error(id, code, "nope");
            assert_eq!(error.status, Status::Error);
            assert_eq!(Response::decode(&error.encode()), Ok(error.clone()));
            error.receipt = Some(receipt(9, 0x01));
            assert_eq!(Response::decode(&error.encode()), Ok(error));
        }
    }

    /// A receipt whose hash, key and signature are `byte` repeated (the signature checks
    /// nothing here: decoding does not verify it, the client does).
    fn receipt(seq: u64, byte: u8) -> Receipt {
        Receipt {
            seq,
            hash: crate::RecordHash::from_bytes([byte; 32]),
            key: crate::ReceiptKey::from_bytes([byte; 32]),
            sig: crate::ReceiptSignature::from_bytes([byte; 64]),
        }
    }

    #[test]
    fn a_pending_note_comes_with_its_code_only() {
        let id = RequestId::from_bytes([3; 16]);
        let note = PendingNote {
            id,
            approvals: 0,
            required: 2,
            expires_at_ms: 1_700_000_900_000,
        };
        let pending = Response::pending(id, note.clone(), "waiting");
        assert_eq!(pending.code, ErrorCode::ApprovalPending);
        assert_eq!(Response::decode(&pending.encode()), Ok(pending.clone()));
        let without = Response {
            pending: None,
            ..pending
        };
        assert!(matches!(
            Response::decode(&without.encode()),
            Err(ProtoError::MalformedResponse(_))
        ));
        let stray = Response {
            pending: Some(note),
            ..Response::error(id, ErrorCode::Denied, "no")
        };
        assert!(matches!(
            Response::decode(&stray.encode()),
            Err(ProtoError::MalformedResponse(_))
        ));
    }

    #[test]
    fn response_wire_shape_is_pinned() {
        let id = RequestId::from_bytes([0xab; 16]);
        let value: Value =
            serde_json::from_slice(&Response::error(id, ErrorCode::Denied, "no").encode()).expect("json");
        assert_eq!(
            value,
            json!({"v": 2, "id": "ab".repeat(16), "status": "error", "code": 1010, "message": "no",
                   "output": "", "duration_us": 0, "grants": []})
        );
        let with_receipt = Response {
            receipt: Some(receipt(42, 0xcd)),
            ..Response::ok(id, "out".into(), 5)
        };
        let value: Value = serde_json::from_slice(&with_receipt.encode()).expect("json");
        assert_eq!(
            value,
            json!({"v": 2, "id": "ab".repeat(16), "status": "ok", "code": 0, "message": "",
                   "output": "out", "duration_us": 5, "grants": [],
                   "receipt": {"seq": 42, "hash": "cd".repeat(32), "key": "cd".repeat(32),
                               "sig": "cd".repeat(64)}})
        );
    }

    #[test]
    fn malformed_receipts_are_rejected_and_an_absent_one_is_none() {
        let id = RequestId::from_bytes([3; 16]);
        let good: Value = serde_json::from_slice(
            &Response {
                receipt: Some(receipt(7, 0xee)),
                ..Response::ok(id, "out".into(), 5)
            }
            .encode(),
        )
        .expect("json");
        let hash = "ee".repeat(32);
        let (key, sig) = ("ee".repeat(32), "ee".repeat(64));
        for bad in [
            json!({"seq": 7}),
            json!({"hash": hash}),
            json!({"seq": -1, "hash": hash}),
            json!({"seq": "7", "hash": hash}),
            json!({"seq": 7, "hash": &hash[..62]}),
            json!({"seq": 7, "hash": format!("{}zz", &hash[..62])}),
            json!({"seq": 7, "hash": hash, "extra": 1}),
            json!("7:ee"),
            // Unsigned (a receipt before signatures), or a key or signature cut short.
            json!({"seq": 7, "hash": hash}),
            json!({"seq": 7, "hash": hash, "key": key}),
            json!({"seq": 7, "hash": hash, "sig": sig}),
            json!({"seq": 7, "hash": hash, "key": &key[..62], "sig": sig}),
            json!({"seq": 7, "hash": hash, "key": key, "sig": &sig[..126]}),
            json!({"seq": 7, "hash": hash, "key": sig, "sig": key}),
        ] {
            let mut value = good.clone();
            value["receipt"] = bad.clone();
            let bytes = serde_json::to_vec(&value).expect("serialize");
            assert!(
                matches!(Response::decode(&bytes), Err(ProtoError::MalformedResponse(_))),
                "{bad}"
            );
        }
        let mut value = good;
        value.as_object_mut().expect("object").remove("receipt");
        let bytes = serde_json::to_vec(&value).expect("serialize");
        assert_eq!(Response::decode(&bytes).expect("decode").receipt, None);
    }

    #[test]
    fn malformed_responses_are_rejected() {
        let id = RequestId::from_bytes([1; 16]);
        let good: Value = serde_json::from_slice(&Response::ok(id, "out".into(), 5).encode()).expect("json");
        let cases: Vec<(&str, Value)> = vec![
            ("status/code mismatch", json!({"status": "error"})),
            ("ok code with error", json!({"code": 1010})),
            ("unknown code", json!({"code": 1002, "status": "error"})),
            ("unknown status", json!({"status": "maybe"})),
            ("unknown field", json!({"extra": 1})),
        ];
        for (why, patch) in cases {
            let mut value = good.clone();
            for (key, field) in patch.as_object().expect("object") {
                value[key] = field.clone();
            }
            let bytes = serde_json::to_vec(&value).expect("serialize");
            assert!(
                matches!(Response::decode(&bytes), Err(ProtoError::MalformedResponse(_))),
                "{why}"
            );
        }
        let mut value = good.clone();
        value.as_object_mut().expect("object").remove("grants");
        let bytes = serde_json::to_vec(&value).expect("serialize");
        assert_eq!(
            Response::decode(&bytes).expect("grants default to empty").grants,
            vec![]
        );

        let mut value = good;
        value["v"] = json!(9);
        let bytes = serde_json::to_vec(&value).expect("serialize");
        assert_eq!(Response::decode(&bytes), Err(ProtoError::UnsupportedVersion(9)));
    }

    #[test]
    fn requests_and_responses_cannot_be_confused() {
        let request = sample_request();
        assert!(matches!(
            Response::decode(&request.encode()),
            Err(ProtoError::MalformedResponse(_))
        ));
        let response = Response::ok(request.id, String::new(), 0);
        assert!(matches!(
            Request::decode(&response.encode()),
            Err(ProtoError::MalformedRequest(_))
        ));
    }

    #[test]
    #[should_panic(expected = "Response::error with ErrorCode::Ok")]
    #[cfg(debug_assertions)]
    fn error_with_ok_code_is_a_caller_bug() {
        let _ = Response::error(RequestId::from_bytes([0; 16]), ErrorCode::Ok, "oops");
    }
}
