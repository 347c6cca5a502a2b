//! The receipts this client keeps: `receipts` in its directory (mode 0600), one JSON line per
//! answer that carried one ([`HeldReceipt`]): which host, which request, and the host's audit
//! record of the answer (its `seq` and the SHA-256 of its line). Whoever verifies a host's audit
//! log with them (`sesamed audit verify --receipts`) finds any of those records removed or
//! changed, even where the host's root recomputed the chain after it.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sesame_proto::HeldReceipt;

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
pub fn held(outcome: &Outcome, host_name: &str, command: &Command, time_ms: u64) -> Option<HeldReceipt> {
    let response = outcome.result.as_ref().ok()?;
    let receipt = response.receipt?;
    Some(HeldReceipt {
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
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use sesame_proto::{ErrorCode, Receipt, ReceiptKey, ReceiptSignature, RecordHash, RequestId, Response};

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

    #[test]
    fn every_answer_with_a_receipt_is_kept_and_nothing_else() {
        let id = RequestId::from_bytes([4; 16]);
        let allow = Command::parse("access::allow", vec!["22".into()]);
        let with = |r: Response| Response {
            receipt: Some(receipt(9)),
            ..r
        };
        let denied = outcome("web1", Ok(with(Response::error(id, ErrorCode::Denied, "no"))));
        let kept = held(&denied, "web-1.prod", &allow, 1_000).expect("kept");
        assert_eq!(
            kept,
            HeldReceipt {
                time_ms: 1_000,
                host: "web1".into(),
                host_name: "web-1.prod".into(),
                id,
                command: "access::allow".into(),
                code: 1010,
                seq: 9,
                hash: receipt(9).hash,
                key: receipt(9).key,
                sig: receipt(9).sig,
            }
        );
        let ok = outcome("web1", Ok(with(Response::ok(id, "out".into(), 1))));
        let whoami = Command::parse("whoami", vec![]);
        let kept = held(&ok, "web1", &whoami, 2).expect("kept");
        assert_eq!((kept.command.as_str(), kept.code), ("whoami", 0));
        // An answer from an older host, or none at all: nothing to keep.
        let old = outcome("web1", Ok(Response::ok(id, "out".into(), 1)));
        assert_eq!(held(&old, "web1", &whoami, 2), None);
        let silent = outcome("web1", Err(ClientError::Timeout(Duration::from_secs(1))));
        assert_eq!(held(&silent, "web1", &whoami, 2), None);
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
