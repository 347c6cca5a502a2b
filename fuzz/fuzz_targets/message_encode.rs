//! The other direction of the `request` target: requests and responses built field by field from the
//! fuzzer's bytes. Whatever `Request::validate` accepts (and fits in an envelope) must survive
//! `encode` then `decode` unchanged; a response survives exactly when its status agrees with its code.

#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use sesame_proto::{
    ErrorCode, GrantNote, HostKeyNote, MAX_ENVELOPE_LEN, PROTOCOL_VERSION, PendingNote, ProtoError, PublicKey,
    Receipt, ReceiptKey, ReceiptSignature, RecordHash, Request, RequestId, Response, SealedNextKey, Status,
};

fuzz_target!(|bytes: &[u8]| {
    let mut input = Unstructured::new(bytes);
    if input.arbitrary::<bool>().unwrap_or(false) {
        if let Ok(request) = request(&mut input) {
            check_request(&request);
        }
    } else if let Ok(response) = response(&mut input) {
        check_response(&response);
    }
});

fn check_request(request: &Request) {
    let encoded = request.encode();
    let decoded = Request::decode(&encoded);
    if encoded.len() > MAX_ENVELOPE_LEN {
        assert!(
            matches!(decoded, Err(ProtoError::MalformedRequest(_))),
            "{decoded:?}"
        );
        return;
    }
    match request.validate() {
        Ok(()) => assert_eq!(
            decoded.as_ref(),
            Ok(request),
            "a valid request did not round-trip"
        ),
        Err(error) => assert_eq!(decoded, Err(error), "decode and validate disagree"),
    }
}

fn check_response(response: &Response) {
    let encoded = response.encode();
    let consistent = (response.status == Status::Ok) == (response.code == ErrorCode::Ok)
        && response.pending.is_some() == (response.code == ErrorCode::ApprovalPending);
    match Response::decode(&encoded) {
        Ok(decoded) => {
            assert!(consistent && response.v == PROTOCOL_VERSION);
            assert_eq!(&decoded, response, "a response did not round-trip");
        }
        Err(ProtoError::UnsupportedVersion(v)) => assert_eq!(v, response.v),
        Err(error) => {
            assert!(
                !consistent || encoded.len() > MAX_ENVELOPE_LEN,
                "{error:?} for {response:?}"
            );
        }
    }
}

fn request(input: &mut Unstructured<'_>) -> Result<Request> {
    Ok(Request {
        v: version(input)?,
        id: RequestId::from_bytes(input.arbitrary()?),
        issued_at_ms: input.arbitrary()?,
        host: input.arbitrary()?,
        cluster: input.arbitrary()?,
        command: input.arbitrary()?,
        args: input.arbitrary()?,
        reply_to: input.arbitrary()?,
        reason: input.arbitrary()?,
        stream: input.arbitrary()?,
        detach: input.arbitrary()?,
    })
}

fn response(input: &mut Unstructured<'_>) -> Result<Response> {
    let grants = input
        .arbitrary_iter::<(String, String, String, Option<u64>)>()?
        .map(|grant| {
            grant.map(|(id, kind, detail, expires_at_ms)| GrantNote {
                id,
                kind,
                detail,
                expires_at_ms,
            })
        })
        .collect::<Result<_>>()?;
    Ok(Response {
        v: version(input)?,
        id: RequestId::from_bytes(input.arbitrary()?),
        status: if input.arbitrary()? {
            Status::Ok
        } else {
            Status::Error
        },
        code: *input.choose(ErrorCode::ALL)?,
        message: input.arbitrary()?,
        output: input.arbitrary()?,
        duration_us: input.arbitrary()?,
        streamed: input.arbitrary()?,
        detached: input.arbitrary()?,
        grants,
        host_key_rotated: if input.arbitrary()? {
            Some(HostKeyNote {
                key: PublicKey::from_bytes(input.arbitrary()?),
                old_key_until_ms: input.arbitrary()?,
                next_key_sha256_sealed: if input.arbitrary()? {
                    Some(SealedNextKey::from_bytes(input.arbitrary()?))
                } else {
                    None
                },
            })
        } else {
            None
        },
        pending: if input.arbitrary()? {
            Some(PendingNote {
                id: RequestId::from_bytes(input.arbitrary()?),
                approvals: input.arbitrary()?,
                required: input.arbitrary()?,
                expires_at_ms: input.arbitrary()?,
            })
        } else {
            None
        },
        receipt: if input.arbitrary()? {
            Some(Receipt {
                seq: input.arbitrary()?,
                hash: RecordHash::from_bytes(input.arbitrary()?),
                key: ReceiptKey::from_bytes(input.arbitrary()?),
                sig: ReceiptSignature::from_bytes(input.arbitrary()?),
            })
        } else {
            None
        },
    })
}

/// Mostly the current version, sometimes any.
fn version(input: &mut Unstructured<'_>) -> Result<u8> {
    if input.ratio(7, 8)? {
        Ok(PROTOCOL_VERSION)
    } else {
        input.arbitrary()
    }
}
