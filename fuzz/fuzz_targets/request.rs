//! `Request::decode` and `Response::decode` on arbitrary bytes: never panic; whatever they accept
//! satisfies every documented limit (checked here independently of `validate`), encodes canonically
//! and decodes back to an equal value; the two shapes are never confused.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sesame_proto::{
    ErrorCode, MAX_ARG_LEN, MAX_ARGS, MAX_ENVELOPE_LEN, MAX_NAME_LEN, MAX_REPLY_TO_LEN, PROTOCOL_VERSION,
    ProtoError, Request, Response, Status,
};

fuzz_target!(|bytes: &[u8]| {
    check_request(bytes);
    check_response(bytes);
});

fn check_request(bytes: &[u8]) {
    let request = match Request::decode(bytes) {
        Ok(request) => request,
        Err(error) => {
            assert_error_is_bounded(&error);
            assert!(
                matches!(
                    error,
                    ProtoError::MalformedRequest(_) | ProtoError::UnsupportedVersion(_)
                ),
                "{error:?}"
            );
            return;
        }
    };
    assert_eq!(request.validate(), Ok(()));
    assert_eq!(request.v, PROTOCOL_VERSION);
    assert!(is_name(&request.host), "{request:?}");
    assert!(request.cluster.as_deref().is_none_or(is_name), "{request:?}");
    assert!(is_name(&request.command), "{request:?}");
    assert!(request.args.len() <= MAX_ARGS);
    for arg in &request.args {
        assert!(arg.len() <= MAX_ARG_LEN && !arg.contains('\0'), "{arg:?}");
    }
    if let Some(reply_to) = &request.reply_to {
        let valid_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        assert!(
            (1..=MAX_REPLY_TO_LEN).contains(&reply_to.len()) && reply_to.bytes().all(valid_byte),
            "{reply_to:?}"
        );
    }

    let encoded = request.encode();
    // Every field we write was in the input, in its shortest form: a request that arrived in an
    // envelope can be sealed again.
    assert!(
        encoded.len() <= bytes.len(),
        "our encoding is longer than the input"
    );
    assert_eq!(
        Request::decode(&encoded).as_ref(),
        Ok(&request),
        "request round trip"
    );
    assert!(
        Response::decode(&encoded).is_err(),
        "a request decoded as a response"
    );
}

fn check_response(bytes: &[u8]) {
    let response = match Response::decode(bytes) {
        Ok(response) => response,
        Err(error) => {
            assert_error_is_bounded(&error);
            assert!(
                matches!(
                    error,
                    ProtoError::MalformedResponse(_) | ProtoError::UnsupportedVersion(_)
                ),
                "{error:?}"
            );
            return;
        }
    };
    assert_eq!(response.v, PROTOCOL_VERSION);
    assert_eq!(response.status == Status::Ok, response.code == ErrorCode::Ok);
    assert!(bytes.len() <= MAX_ENVELOPE_LEN);

    // No length bound here: `grants` may be omitted on input but is always written.
    let encoded = response.encode();
    assert_eq!(
        Response::decode(&encoded).as_ref(),
        Ok(&response),
        "response round trip"
    );
    assert!(
        Request::decode(&encoded).is_err(),
        "a response decoded as a request"
    );
}

/// The limits documented on `Request`, written out again rather than calling `validate`.
fn is_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes[0].is_ascii_alphanumeric()
        && !bytes[0].is_ascii_uppercase()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_".contains(&b))
}

/// Errors may quote peer text; it must stay short and free of raw control characters (log safety).
fn assert_error_is_bounded(error: &ProtoError) {
    let text = error.to_string();
    assert!(text.chars().count() <= 240, "{text:?}");
    assert!(!text.chars().any(char::is_control), "{text:?}");
}
