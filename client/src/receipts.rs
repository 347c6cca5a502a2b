//! The receipts this client keeps: `receipts` in its directory (mode 0600), one JSON line per
//! answer that carried one ([`HeldReceipt`]): which host, which request, and the host's audit
//! record of the answer (its `seq` and the SHA-256 of its line), signed by the host's receipt key.
//! Whoever verifies a host's audit log with them (`sesamed audit verify --receipts`) finds any of
//! those records removed or changed, even where the host's root recomputed the chain after it;
//! the signature, checked before a receipt is kept, is what stops the host from calling one made
//! up.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sesame_proto::{HeldReceipt, ProtoError};

use crate::fleet::{Command, Outcome};

/// The receipts file's name, in the client directory.
pub const RECEIPTS_FILE: &str = "receipts";

/// A receipts file.
#[derive(Debug, Clone)]
pub struct ReceiptsFile {
    path: PathBuf,
}

/// What a receipts file holds.
#[derive(Debug, Default)]
pub struct Listing {
    /// Its receipts, in the order they were kept.
    pub receipts: Vec<Kept>,
    /// Lines that are not receipts: the line's number (from 1) and why.
    pub malformed: Vec<(usize, String)>,
}

/// One receipt, and its line as the file has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The line, without its newline.
    pub line: String,
    /// What it says.
    pub receipt: HeldReceipt,
}

impl ReceiptsFile {
    /// The receipts file at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `receipts`, a line each, with one write on a file opened to append (created mode
    /// 0600), so that lines of several `sesame`s at once never interleave.
    pub fn append(&self, receipts: &[HeldReceipt]) -> io::Result<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::new();
        for receipt in receipts {
            lines.extend_from_slice(&receipt.encode());
            lines.push(b'\n');
        }
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)?;
        file.write_all(&lines)
    }

    /// Reads every line: the receipts, and what is not one. No file yet is no receipts.
    pub fn read(&self) -> io::Result<Listing> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Listing::default()),
            Err(e) => return Err(e),
        };
        let mut listing = Listing::default();
        for (n, line) in text.lines().enumerate() {
            match serde_json::from_str::<HeldReceipt>(line) {
                Ok(receipt) => listing.receipts.push(Kept {
                    line: line.to_owned(),
                    receipt,
                }),
                Err(e) => listing.malformed.push((n + 1, e.to_string())),
            }
        }
        Ok(listing)
    }
}

/// The receipt to keep for `outcome`, if its answer carried one: `host_name` is the daemon's
/// name for the host the outcome is from, `command` what was asked, `time_ms` when it came.
///
/// Its signature must verify for `host_name` and the answer's id under the key it names, else
/// [`ProtoError::BadReceiptSignature`] and nothing is kept: the key came in the answer, sealed
/// by the pinned host, so it is the host's, and a receipt it did not sign is worth nothing to a
/// verifier.
pub fn held(
    outcome: &Outcome,
    host_name: &str,
    command: &Command,
    time_ms: u64,
) -> Result<Option<HeldReceipt>, ProtoError> {
    let Some((response, receipt)) = outcome.result.as_ref().ok().and_then(|r| Some((r, r.receipt?))) else {
        return Ok(None);
    };
    receipt.verify(host_name, response.id)?;
    Ok(Some(HeldReceipt {
        time_ms,
        host: outcome.alias.clone(),
        host_name: host_name.to_owned(),
        id: response.id,
        command: match &command.cluster {
            Some(cluster) => format!("{cluster}::{}", command.command),
            None => command.command.clone(),
        },
        code: response.code.as_u16(),
        seq: receipt.seq,
        hash: receipt.hash,
        key: receipt.key,
        sig: receipt.sig,
    }))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use sesame_proto::{
        ErrorCode, Receipt, ReceiptKey, ReceiptSignature, ReceiptSigner, RecordHash, RequestId, Response,
        SecretKey,
    };

    use super::*;
    use crate::home::Transport;
    use crate::quic::ClientError;

    fn outcome(alias: &str, result: Result<Response, ClientError>) -> Outcome {
        Outcome {
            alias: alias.into(),
            via: Transport::Quic,
            result,
            elapsed: Duration::from_millis(3),
        }
    }

    fn receipt(seq: u64) -> Receipt {
        Receipt {
            seq,
            hash: RecordHash::from_bytes([seq as u8; 32]),
            key: ReceiptKey::from_bytes([1; 32]),
            sig: ReceiptSignature::from_bytes([2; 64]),
        }
    }

    /// The receipt signer of a host whose host key is `byte` repeated.
    fn signer(byte: u8) -> ReceiptSigner {
        ReceiptSigner::derive(&SecretKey::from_hex(&format!("{byte:02x}").repeat(32)).expect("key"))
    }

    #[test]
    fn every_answer_with_a_signed_receipt_is_kept_and_nothing_else() {
        let id = RequestId::from_bytes([4; 16]);
        let host = signer(1);
        let signed = Receipt::signed(&host, "web-1.prod", id, 9, RecordHash::from_bytes([9; 32]));
        let allow = Command::parse("access::allow", vec!["22".into()]);
        let with = |receipt: Receipt, r: Response| Response {
            receipt: Some(receipt),
            ..r
        };
        let denied = outcome(
            "web1",
            Ok(with(signed, Response::error(id, ErrorCode::Denied, "no"))),
        );
        let kept = held(&denied, "web-1.prod", &allow, 1_000).expect("signed");
        assert_eq!(
            kept,
            Some(HeldReceipt {
                time_ms: 1_000,
                host: "web1".into(),
                host_name: "web-1.prod".into(),
                id,
                command: "access::allow".into(),
                code: 1010,
                seq: 9,
                hash: signed.hash,
                key: host.key(),
                sig: signed.sig,
            })
        );
        assert_eq!(kept.expect("kept").verify(), Ok(()));
        let whoami = Command::parse("whoami", vec![]);
        let for_web1 = Receipt::signed(&host, "web1", id, 3, RecordHash::from_bytes([3; 32]));
        let ok = outcome("web1", Ok(with(for_web1, Response::ok(id, "out".into(), 1))));
        let kept = held(&ok, "web1", &whoami, 2).expect("signed").expect("kept");
        assert_eq!((kept.command.as_str(), kept.code, kept.seq), ("whoami", 0, 3));
        // An answer from an older host, or none at all: nothing to keep.
        let old = outcome("web1", Ok(Response::ok(id, "out".into(), 1)));
        assert_eq!(held(&old, "web1", &whoami, 2), Ok(None));
        let silent = outcome("web1", Err(ClientError::Timeout(Duration::from_secs(1))));
        assert_eq!(held(&silent, "web1", &whoami, 2), Ok(None));
    }

    #[test]
    fn a_receipt_that_does_not_verify_is_refused() {
        let id = RequestId::from_bytes([4; 16]);
        let whoami = Command::parse("whoami", vec![]);
        let signed = Receipt::signed(&signer(1), "web1", id, 9, RecordHash::from_bytes([9; 32]));
        let answer = |receipt: Receipt, id: RequestId| {
            outcome(
                "web1",
                Ok(Response {
                    receipt: Some(receipt),
                    ..Response::ok(id, "out".into(), 1)
                }),
            )
        };
        let refused = Err(ProtoError::BadReceiptSignature);
        // For another host name, or another request.
        assert_eq!(held(&answer(signed, id), "web2", &whoami, 2), refused);
        let other_id = RequestId::from_bytes([5; 16]);
        assert_eq!(held(&answer(signed, other_id), "web1", &whoami, 2), refused);
        // Any signed field changed, or another key named.
        let mut flipped = *signed.sig.as_bytes();
        flipped[0] ^= 1;
        for bad in [
            Receipt { seq: 10, ..signed },
            Receipt {
                hash: RecordHash::from_bytes([8; 32]),
                ..signed
            },
            Receipt {
                key: signer(2).key(),
                ..signed
            },
            Receipt {
                sig: ReceiptSignature::from_bytes(flipped),
                ..signed
            },
            receipt(9),
        ] {
            assert_eq!(held(&answer(bad, id), "web1", &whoami, 2), refused, "{bad:?}");
        }
        assert!(matches!(
            held(&answer(signed, id), "web1", &whoami, 2),
            Ok(Some(_))
        ));
    }

    #[test]
    fn receipts_are_appended_mode_0600_and_read_back_with_what_is_not_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = ReceiptsFile::at(dir.path().join(RECEIPTS_FILE));
        assert!(file.read().expect("no file yet").receipts.is_empty());
        let one = |seq: u64| HeldReceipt {
            time_ms: seq,
            host: "web1".into(),
            host_name: "web1".into(),
            id: RequestId::from_bytes([seq as u8; 16]),
            command: "echo".into(),
            code: 0,
            seq,
            hash: receipt(seq).hash,
            key: receipt(seq).key,
            sig: receipt(seq).sig,
        };
        file.append(&[one(1), one(2)]).expect("append");
        file.append(&[]).expect("nothing to append");
        let mode = std::fs::metadata(file.path()).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut raw = OpenOptions::new().append(true).open(file.path()).expect("open");
        raw.write_all(b"not json\n{\"seq\": 3}\n").expect("write");
        file.append(&[one(4)]).expect("append");

        let listing = file.read().expect("read");
        let seqs: Vec<u64> = listing.receipts.iter().map(|k| k.receipt.seq).collect();
        assert_eq!(seqs, [1, 2, 4]);
        assert_eq!(listing.receipts[0].line.as_bytes(), one(1).encode());
        let lines: Vec<usize> = listing.malformed.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [3, 4]);
    }
}
