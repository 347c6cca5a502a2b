//! What the runner derives from a request on its way: the policy's input, the run's limits,
//! masked arguments for the logs, and an answer that fits in one envelope with its receipt.

use std::time::Duration;

use sesame_proto::{ErrorCode, Receipt, Request, RequestId, Response};

use crate::clients::Client;
use crate::config::Config;
use crate::policy::{ClientInput, HostInput, ModuleInput, PolicyInput, RequestInput};
use crate::sandbox::compile::Compiler;
use crate::sandbox::{LoadError, RunLimits, Sandbox};

use super::Peer;

/// What the logs show for a masked argument.
pub const MASKED: &str = "***";

/// `args` with the values at `positions` replaced by [`MASKED`].
pub(super) fn mask_args(args: &[String], positions: &[usize]) -> Vec<String> {
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            if positions.contains(&i) {
                MASKED.to_owned()
            } else {
                a.clone()
            }
        })
        .collect()
}

/// The policy's input for `request` from `client`, to run in `cluster` with `module`, as `peer`
/// delivered it.
pub fn policy_input(
    config: &Config,
    client: &Client,
    request: &Request,
    cluster: &str,
    module: ModuleInput,
    peer: &Peer,
    now_ms: u64,
) -> PolicyInput {
    PolicyInput {
        client: ClientInput {
            name: client.name.clone(),
            key: client.key.to_string(),
            groups: client.groups.clone(),
        },
        request: RequestInput {
            id: request.id.to_string(),
            cluster: cluster.to_owned(),
            command: request.command.clone(),
            args: request.args.clone(),
            transport: peer.transport.to_owned(),
            source_ip: peer.source_ip.map(|ip| ip.to_string()),
            reason: request.reason.clone(),
        },
        host: HostInput {
            name: config.host_name.clone(),
            labels: config.host_labels.clone(),
        },
        module,
        now_ns: i64::try_from(u128::from(now_ms) * 1_000_000).unwrap_or(i64::MAX),
    }
}

/// The policy's limits, capped by the configured ones (which are also the defaults).
pub fn run_limits(cfg: &crate::config::Limits, asked: &crate::policy::Limits) -> RunLimits {
    let pick = |asked: Option<u64>, ceiling: u64| asked.map_or(ceiling, |a| a.min(ceiling));
    RunLimits {
        timeout: Duration::from_millis(pick(asked.timeout_ms, cfg.timeout_ms)),
        memory_bytes: usize::try_from(pick(asked.memory_mb, cfg.memory_mb) << 20).unwrap_or(usize::MAX),
        output_bytes: usize::try_from(pick(asked.output_kb, cfg.output_kb) << 10).unwrap_or(usize::MAX),
        host_calls: asked.host_calls.map_or(cfg.host_calls, |a| a.min(cfg.host_calls)),
    }
}

/// The daemon's sandbox: pooled instances for `max_concurrent` runs, and the precompiled-module
/// cache in the state directory (without it, when the directory cannot be used: every start
/// then compiles, in this process, which is slower but no less safe). With a cache and a
/// `compiler`, modules the cache lacks are compiled in child processes (`sandbox::compile`).
pub fn sandbox_for(config: &Config, compiler: Option<Compiler>) -> Result<Sandbox, LoadError> {
    let mut sandbox = Sandbox::new(config.limits.max_concurrent, memory_ceiling(config))?;
    let dir = config.state_dir.join(crate::sandbox::cache::CACHE_DIR);
    match sandbox.use_cache(&dir) {
        Ok(()) => {
            if let Some(compiler) = compiler {
                sandbox.compile_in_child(compiler);
            }
        }
        Err(e) => tracing::warn!("{e}; compiling every module at start"),
    }
    Ok(sandbox)
}

/// The response, when it fits in one envelope with the largest receipt in it; else a 3003
/// error in its place. Output under the output limit can still be too big once JSON escapes it (a
/// control character takes six bytes): such a response becomes a 3003 error rather than an
/// answer that cannot be sealed. The receipt names the audit record that holds this decision's
/// code, so it is not known yet: room is kept for the longest one, and the real one always fits.
pub(super) fn fit_in_envelope(response: Response) -> Response {
    let room = sesame_proto::MAX_MESSAGE_LEN;
    let measured = Response {
        receipt: Some(Receipt::LARGEST),
        ..response
    };
    if measured.encode().len() <= room {
        return Response {
            receipt: None,
            ..measured
        };
    }
    Response {
        duration_us: measured.duration_us,
        host_key_rotated: measured.host_key_rotated,
        ..Response::error(
            measured.id,
            ErrorCode::MemoryLimit,
            if measured.code == ErrorCode::Ok {
                format!(
                    "output of {} bytes does not fit in one reply ({room} bytes, encoded)",
                    measured.output.len()
                )
            } else {
                format!(
                    "error message of {} bytes does not fit in one reply ({room} bytes, encoded)",
                    measured.message.len()
                )
            },
        )
    }
}

/// The largest linear memory any request may get: the configured ceiling, in bytes.
pub fn memory_ceiling(config: &Config) -> usize {
    usize::try_from(config.limits.memory_mb << 20).unwrap_or(usize::MAX)
}

/// The id of a request whose JSON did not validate, if it has a readable one, so the client can
/// match the error to its request.
pub(super) fn lenient_id(plaintext: &[u8]) -> Option<RequestId> {
    serde_json::from_slice::<serde_json::Value>(plaintext)
        .ok()
        .and_then(|v| v.get("id")?.as_str()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use sesame_proto::{MAX_MESSAGE_LEN, ReceiptSigner, RecordHash, SecretKey};

    use super::*;

    fn with(receipt: Receipt, response: &Response) -> usize {
        Response {
            receipt: Some(receipt),
            ..response.clone()
        }
        .encode()
        .len()
    }

    #[test]
    fn an_answer_keeps_room_for_its_receipt_or_becomes_3003() {
        let id = RequestId::from_bytes([1; 16]);
        let empty = Response::ok(id, String::new(), u64::MAX);
        // The output that makes the answer, with the longest receipt, exactly one envelope.
        let fill = MAX_MESSAGE_LEN - with(Receipt::LARGEST, &empty);
        let fits = fit_in_envelope(Response::ok(id, "x".repeat(fill), u64::MAX));
        assert_eq!((fits.code, fits.output.len()), (ErrorCode::Ok, fill));
        assert_eq!(fits.receipt, None, "the real receipt is filled in later");
        let signer = ReceiptSigner::derive(&SecretKey::from_hex(&"42".repeat(32)).expect("key"));
        let real = Receipt::signed(&signer, "web", id, u64::MAX, RecordHash::from_bytes([9; 32]));
        for receipt in [Receipt::LARGEST, real] {
            assert!(with(receipt, &fits) <= MAX_MESSAGE_LEN);
        }

        // One byte more would fit without a receipt, but not with one: a 3003, which fits.
        let over = Response::ok(id, "x".repeat(fill + 1), u64::MAX);
        assert!(over.encode().len() <= MAX_MESSAGE_LEN);
        let refused = fit_in_envelope(over);
        assert_eq!(refused.code, ErrorCode::MemoryLimit);
        assert!(refused.message.contains("does not fit"), "{}", refused.message);
        assert_eq!(refused.duration_us, u64::MAX);
        assert!(with(Receipt::LARGEST, &refused) <= MAX_MESSAGE_LEN);

        // An error message escaped past the room, likewise.
        let noisy = Response::error(id, ErrorCode::ModuleError, "\u{1}".repeat(MAX_MESSAGE_LEN / 6));
        let refused = fit_in_envelope(noisy);
        assert_eq!(refused.code, ErrorCode::MemoryLimit);
        assert!(
            refused.message.starts_with("error message of"),
            "{}",
            refused.message
        );
    }
}
