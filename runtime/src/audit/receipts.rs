//! Clients' receipts files as `sesamed audit verify --receipts` reads them: the receipts for this
//! host, how many were for others, and every line that is not a receipt.

use std::io;
use std::path::Path;

use sesame_proto::{HeldReceipt, ReceiptKey};

/// The receipts read from clients' files for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipts {
    host_name: String,
    host_keys: Vec<ReceiptKey>,
    /// The receipts for this host, in the order read.
    pub held: Vec<HeldReceipt>,
    /// Receipts for other hosts, left out.
    pub other_hosts: usize,
    /// Lines that are not receipts, as `FILE:LINE: why`.
    pub malformed: Vec<String>,
}

impl Receipts {
    /// None yet, for the host named `host_name` (the configuration's `[host] name`, which every
    /// request names and every receipt records as `host_name`), whose receipt keys the
    /// verifier knows to be `host_keys` (besides those its log names).
    pub fn for_host(host_name: &str, host_keys: Vec<ReceiptKey>) -> Self {
        Self {
            host_name: host_name.to_owned(),
            host_keys,
            held: Vec::new(),
            other_hosts: 0,
            malformed: Vec::new(),
        }
    }

    /// The host whose receipts these are.
    pub fn host_name(&self) -> &str {
        &self.host_name
    }

    /// The host's receipt keys, as the verifier was given them.
    pub fn host_keys(&self) -> &[ReceiptKey] {
        &self.host_keys
    }

    /// Reads one receipts file (`receipts` in a client's directory, or a copy).
    pub fn read(&mut self, path: &Path) -> io::Result<()> {
        let text = std::fs::read_to_string(path)?;
        for (n, line) in text.lines().enumerate() {
            match serde_json::from_str::<HeldReceipt>(line) {
                Ok(held) if held.host_name == self.host_name => self.held.push(held),
                Ok(_) => self.other_hosts += 1,
                Err(e) => self
                    .malformed
                    .push(format!("{}:{}: not a receipt: {e}", path.display(), n + 1)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sesame_proto::{ReceiptSignature, RecordHash, RequestId};

    use super::*;

    #[test]
    fn only_this_hosts_receipts_are_kept_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = |host_name: &str, seq: u64| HeldReceipt {
            time_ms: 1,
            host: "alias".into(),
            host_name: host_name.into(),
            id: RequestId::from_bytes([seq as u8; 16]),
            command: "echo".into(),
            code: 0,
            seq,
            hash: RecordHash::from_bytes([1; 32]),
            key: ReceiptKey::from_bytes([2; 32]),
            sig: ReceiptSignature::from_bytes([3; 64]),
        };
        let line = |h: &HeldReceipt| String::from_utf8(h.encode()).expect("utf-8");
        let first = dir.path().join("alice");
        let second = dir.path().join("bob");
        let text = [
            line(&held("web1", 1)),
            line(&held("db1", 2)),
            "{\"seq\": 3}".to_owned(),
            line(&held("web1", 4)),
        ]
        .join("\n");
        std::fs::write(&first, text + "\n").expect("write");
        std::fs::write(&second, line(&held("web1", 5))).expect("write");

        let mut receipts = Receipts::for_host("web1", vec![ReceiptKey::from_bytes([2; 32])]);
        receipts.read(&first).expect("read");
        receipts.read(&second).expect("read");
        let seqs: Vec<u64> = receipts.held.iter().map(|h| h.seq).collect();
        assert_eq!(seqs, [1, 4, 5]);
        assert_eq!(receipts.other_hosts, 1);
        assert_eq!(receipts.malformed.len(), 1, "{:?}", receipts.malformed);
        assert!(
            receipts.malformed[0].starts_with(&format!("{}:3: not a receipt", first.display())),
            "{:?}",
            receipts.malformed
        );
        assert!(receipts.read(&dir.path().join("nobody")).is_err());
    }
}
