//! The hash chain that makes the audit and decision logs tamper-evident.
//!
//! Every line carries `seq` (1, 2, …) and `prev`: the SHA-256, in hex, of the previous line's
//! bytes (without its newline), or 64 zeros for the first line a log ever had. Changing,
//! removing, inserting or reordering a line breaks the link after it. A log whose end is cut
//! off still links, so the head (the last line's `seq` and hash) is also kept in a file beside
//! the log, `<log>.head`, rewritten in place at most every 0.1 s while lines are written and
//! whenever the log is synced or closed; `sesamed audit verify` compares the two. Whoever can write both files can rewrite the chain: to make that evident too, keep
//! a copy of the head somewhere else (`sesamed audit verify` prints it; `--expect SEQ:HASH`
//! checks a saved head is still part of the chain).
//!
//! Root on the host can still rewrite the chain from any line on and recompute the head file.
//! Every answer carries a receipt (`seq` and hash of its request's end record, signed by the
//! host's receipt key) that its client keeps; `verify` given those receipts finds each of their
//! records removed or changed, however the chain after it was recomputed, and each receipt the
//! host did not sign.
//!
//! Appending takes an exclusive `flock` on the log, so the daemon and the administration
//! commands (`sesamed client add`, `sesamed grants revoke`) always extend the current head.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sesame_proto::{HeldReceipt, ReceiptKey, RequestId};
use sha2::{Digest, Sha256};

/// `prev` of a log's first line.
pub const GENESIS: [u8; 32] = [0; 32];

/// The last line of a log: its number and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Its `seq` (0: the log is empty).
    pub seq: u64,
    /// SHA-256 of its bytes.
    pub hash: [u8; 32],
}

impl Head {
    /// Before the first line.
    pub const EMPTY: Head = Head {
        seq: 0,
        hash: GENESIS,
    };

    /// `SEQ:HEX`, as `sesamed audit verify` prints and `--expect` takes it.
    pub fn text(&self) -> String {
        format!("{}:{}", self.seq, hex::encode(self.hash))
    }

    /// Parses [`Head::text`].
    pub fn parse(text: &str) -> Option<Head> {
        let (seq, hash) = text.trim().split_once(':')?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(hash, &mut out).ok()?;
        Some(Head {
            seq: seq.parse().ok()?,
            hash: out,
        })
    }
}

/// The SHA-256 of a line's bytes, without its newline.
pub fn line_hash(line: &[u8]) -> [u8; 32] {
    Sha256::digest(line).into()
}

/// The head file of a log: `<log>.head`.
pub fn head_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".head");
    PathBuf::from(name)
}

/// The head file's contents: fixed width, so rewriting it in place never leaves a longer
/// old head's tail behind.
pub fn head_record(head: &Head) -> Vec<u8> {
    format!("{:020}:{}\n", head.seq, hex::encode(head.hash)).into_bytes()
}

/// Where appending continues: the head of the log's first `len` bytes.
///
/// The last complete line gives it (`seq` from its JSON, 0 if it has none: a log written before
/// the chain). Bytes after the last newline are a torn write (a crash in the middle of one):
/// they count as a line of their own, `seq` one more, so the next line links to them and
/// `verify` reports them. An empty log continues from `fallback`: the head file's, when the
/// log was emptied or rotated under it, so the chain goes on across files.
pub fn head_of(file: &File, len: u64, fallback: Head) -> io::Result<(Head, bool)> {
    if len == 0 {
        return Ok((fallback, false));
    }
    let (last, torn) = tail(file, len)?;
    let last_head = match &last {
        Some(line) => Head {
            seq: seq_of(line).unwrap_or(0),
            hash: line_hash(line),
        },
        None => fallback,
    };
    Ok(match torn {
        Some(bytes) => (
            Head {
                seq: last_head.seq + 1,
                hash: line_hash(&bytes),
            },
            true,
        ),
        None => (last_head, false),
    })
}

/// The `seq` of a line, if it is a chained record.
pub fn seq_of(line: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Seq {
        seq: u64,
    }
    serde_json::from_slice::<Seq>(line).ok().map(|s| s.seq)
}

/// The last complete line, and torn bytes after it.
type Tail = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The last complete line of the first `len` bytes (without its newline), and the bytes after
/// it when they do not end in a newline. Reads backwards, 64 KiB at a time.
fn tail(file: &File, len: u64) -> io::Result<Tail> {
    const CHUNK: u64 = 64 * 1024;
    let mut buf: Vec<u8> = Vec::new();
    let mut start = len;
    while start > 0 {
        let from = start.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; (start - from) as usize];
        file.read_exact_at(&mut chunk, from)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        start = from;
        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
            continue;
        };
        let complete = &buf[..end];
        if let Some(before) = complete.iter().rposition(|&b| b == b'\n') {
            return Ok(split(&buf, before + 1, end));
        }
    }
    // The whole file is in `buf`: its last line starts at the beginning.
    Ok(match buf.iter().rposition(|&b| b == b'\n') {
        Some(end) => split(&buf, 0, end),
        None => (None, Some(buf)),
    })
}

/// `buf[from..end]` as the last line and what follows its newline, if anything, as torn.
fn split(buf: &[u8], from: usize, end: usize) -> Tail {
    let torn = (end + 1 < buf.len()).then(|| buf[end + 1..].to_vec());
    (Some(buf[from..end].to_vec()), torn)
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Lines read, in all files.
    pub lines: u64,
    /// Lines before the chain began (written by a sesamed without it), at the very start.
    pub unchained: u64,
    /// `seq` of the first chained line, and whether it begins the chain (`prev` all zeros) rather
    /// than continuing an earlier log.
    pub first: Option<(u64, bool)>,
    /// The last line's head.
    pub head: Head,
    /// What the head file said, if there is one.
    pub head_file: Option<Head>,
    /// Records the head file is behind the log: normal while sesamed is writing.
    pub behind: u64,
    /// Everything wrong, in file order; empty when the chain is intact.
    pub problems: Vec<String>,
    /// The receipts the host did not sign, or whose records are not in the chain as their
    /// clients were told, in the order the receipts were given; empty when every one is.
    pub receipts: Vec<ReceiptProblem>,
    /// The receipt keys the chain's records name (see [`NAMING_EVENTS`]), in order, each once.
    pub receipt_keys: Vec<ReceiptKey>,
}

/// The records that name the host's receipt key in force (`receipt_key`): the daemon's start,
/// its reload of the host keys, and `sesamed rotate-key`. A receipt signed by a key one of them
/// names is the host's.
pub const NAMING_EVENTS: [&str; 3] = ["started", "host-keys-reloaded", "host-key-rotated"];

/// A receipt the host did not sign, or whose record is not in the chain as its client was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptProblem {
    /// The request the receipt is for.
    pub id: RequestId,
    /// The `seq` the receipt names.
    pub seq: u64,
    /// What the log has there instead.
    pub fault: ReceiptFault,
}

/// What is wrong with a receipt: it is not the host's word, or the log does not have its
/// record where the host said.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiptFault {
    /// Its signature does not verify under the key it names, for its host, request, `seq` and
    /// hash: the receipt was edited or made up. Its record was not looked for.
    BadSignature,
    /// Its signature verifies, but under `key`, which is neither a receipt key the verifier was
    /// given as the host's nor one the chain's records name: made up by whoever holds `key`.
    /// Its record was not looked for.
    UnknownKey {
        /// The key that signed it.
        key: ReceiptKey,
    },
    /// No line has its `seq`, within the chain the files hold: the record was removed, or is in
    /// a rotated file not given.
    Gone,
    /// Its `seq` is past the last line (`last`): the record was cut off the end with the head
    /// file rewritten, or the files given stop before it.
    PastEnd {
        /// The last line's `seq`.
        last: u64,
    },
    /// The line with its `seq` is another record (of request `now`, if it is one of a
    /// request): records before it were removed or inserted and the chain recomputed.
    Replaced {
        /// The request the line there is of, if any.
        now: Option<String>,
    },
    /// The line with its `seq` is its request's end record, but not the line the client was
    /// told: the record was changed, or a line before it (its `prev` is not what it was).
    Changed,
    /// The line with its `seq` and hash is the record of another request (`record`): the host
    /// signed a receipt for one request naming another's record; the log is not at fault.
    Misfiled {
        /// The request the record is of.
        record: Option<String>,
    },
}

impl ReceiptFault {
    /// Whether the host signed the receipt: a fault of its record, not of the receipt.
    pub fn signed_by_host(&self) -> bool {
        !matches!(self, Self::BadSignature | Self::UnknownKey { .. })
    }
}

impl std::fmt::Display for ReceiptProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (id, seq) = (self.id, self.seq);
        write!(f, "receipt for request {id} (seq {seq}): ")?;
        match &self.fault {
            ReceiptFault::BadSignature => f.write_str(
                "not signed by this host: the receipts file was edited, or the receipt made up (its signature does not verify)",
            ),
            ReceiptFault::UnknownKey { key } => write!(
                f,
                "not signed by this host: the receipt was made up (signed by key {key}, neither this host's receipt key nor one its log names; if it was the host's, give the log files whose records name it)"
            ),
            ReceiptFault::Gone => {
                f.write_str("the record is gone: removed, or in a rotated file not given")
            }
            ReceiptFault::PastEnd { last } => write!(
                f,
                "the record is gone: the log ends at seq {last}: removed from the end, or in a later file not given"
            ),
            ReceiptFault::Replaced { now } => {
                write!(f, "seq {seq} is now a different record")?;
                if let Some(now) = now {
                    write!(f, " (request {now})")?;
                }
                f.write_str(": the log was rewritten from here")
            }
            ReceiptFault::Changed => f.write_str(
                "its request's record is there but not the line its client was told: the record, or the chain before it, was rewritten",
            ),
            ReceiptFault::Misfiled { record } => write!(
                f,
                "the record it names is request {}'s: the host signed it for the wrong request, the log is not at fault",
                record.as_deref().unwrap_or("(none)")
            ),
        }
    }
}

/// Checks that `paths` (one log, or its rotated files oldest first) form one unbroken chain,
/// that the last one's head file agrees with its end, that `expect` (a head saved earlier) is
/// part of the chain, and that each of `receipts` is the host's and names a line that is there,
/// unchanged, and a record of its request. One pass over the files.
///
/// A receipt is the host's when its signature verifies under its key, and that key is one of
/// `host_keys` (the verifier's word: the configured host key's, or `--receipt-key`) or one a
/// record of the chain names ([`NAMING_EVENTS`]), so receipts signed before a rotation stay
/// the host's. The record of a receipt that is not the host's is not looked for.
pub fn verify(
    paths: &[PathBuf],
    expect: Option<Head>,
    receipts: &[HeldReceipt],
    host_keys: &[ReceiptKey],
) -> io::Result<Report> {
    #[derive(serde::Deserialize)]
    struct Link {
        seq: u64,
        prev: String,
    }
    let mut report = Report {
        lines: 0,
        unchained: 0,
        first: None,
        head: Head::EMPTY,
        head_file: None,
        behind: 0,
        problems: Vec::new(),
        receipts: Vec::new(),
        receipt_keys: Vec::new(),
    };
    let mut before: Option<Head> = None;
    let mut expect_seen = false;
    // Only the records of receipts whose signatures verify are looked for.
    let signed: Vec<bool> = receipts.iter().map(|r| r.verify().is_ok()).collect();
    let mut wanted: std::collections::HashMap<u64, Vec<usize>> = std::collections::HashMap::new();
    for (i, r) in receipts.iter().enumerate().filter(|(i, _)| signed[*i]) {
        wanted.entry(r.seq).or_default().push(i);
    }
    // What the line with each receipt's seq turned out to be; `None`: no line has it.
    let mut found: Vec<Option<Result<(), ReceiptFault>>> = vec![None; receipts.len()];
    for path in paths {
        let data = std::fs::read(path)?;
        let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        let torn = data.last().is_some_and(|&b| b != b'\n');
        if !torn {
            lines.pop(); // what follows the final newline: nothing
        }
        let count = lines.len();
        for (n, line) in lines.into_iter().enumerate() {
            report.lines += 1;
            let at = format!("{}:{}", path.display(), n + 1);
            let hash = line_hash(line);
            let link = serde_json::from_slice::<Link>(line).ok().and_then(|l| {
                let mut prev = [0u8; 32];
                hex::decode_to_slice(&l.prev, &mut prev).ok()?;
                Some((l.seq, prev))
            });
            let seq = match (link, before) {
                (None, _) if torn && n + 1 == count => {
                    report.problems.push(format!(
                        "{at}: the last line is cut short (a write interrupted by a crash)"
                    ));
                    before.map_or(1, |b| b.seq + 1)
                }
                (None, None) => {
                    report.unchained += 1;
                    0
                }
                (None, Some(b)) if b.seq == 0 => {
                    report.unchained += 1;
                    0
                }
                (None, Some(b)) => {
                    report.problems.push(format!(
                        "{at}: not a chained record: changed, inserted, or a write cut short by a crash"
                    ));
                    b.seq + 1
                }
                (Some((seq, prev)), None) => {
                    let genesis = prev == GENESIS;
                    report.first = Some((seq, genesis));
                    if genesis && seq != 1 {
                        report
                            .problems
                            .push(format!("{at}: the chain begins at seq {seq}, not 1"));
                    }
                    seq
                }
                (Some((seq, prev)), Some(b)) => {
                    if report.first.is_none() {
                        report.first = Some((seq, false));
                    }
                    if prev != b.hash {
                        report.problems.push(format!(
                            "{at}: seq {seq} does not link to the line before it: a line was changed, removed or moved"
                        ));
                    }
                    if b.seq != 0 && seq != b.seq + 1 {
                        report.problems.push(format!(
                            "{at}: seq {seq} follows seq {}: records removed or reordered",
                            b.seq
                        ));
                    }
                    seq
                }
            };
            if let Some(e) = expect.filter(|e| e.seq == seq && seq != 0) {
                expect_seen = true;
                if e.hash != hash {
                    report.problems.push(format!(
                        "{at}: seq {seq} is not the record the saved head {} names: the log was rewritten",
                        e.text()
                    ));
                }
            }
            if let Some(key) = receipt_key_named(line).filter(|k| !report.receipt_keys.contains(k)) {
                report.receipt_keys.push(key);
            }
            if let Some(indices) = wanted.get(&seq).filter(|_| seq != 0) {
                let record = request_id(line);
                for &i in indices {
                    // A line that is the receipt's record wins over another with the same seq.
                    if found[i] != Some(Ok(())) {
                        found[i] = Some(judge(&receipts[i], hash, record.as_ref()));
                    }
                }
            }
            before = Some(Head { seq, hash });
        }
    }
    report.head = before.unwrap_or(Head::EMPTY);
    let hosts: Vec<ReceiptKey> = host_keys.iter().chain(&report.receipt_keys).copied().collect();
    for ((r, found), signed) in receipts.iter().zip(found).zip(signed) {
        let fault = match found {
            _ if !signed => ReceiptFault::BadSignature,
            _ if !hosts.contains(&r.key) => ReceiptFault::UnknownKey { key: r.key },
            Some(Ok(())) => continue,
            Some(Err(fault)) => fault,
            None if r.seq > report.head.seq => ReceiptFault::PastEnd {
                last: report.head.seq,
            },
            None => ReceiptFault::Gone,
        };
        report.receipts.push(ReceiptProblem {
            id: r.id,
            seq: r.seq,
            fault,
        });
    }
    if let Some(e) = expect.filter(|_| !expect_seen) {
        report.problems.push(format!(
            "no record seq {} in these files: the saved head {} is not part of this chain",
            e.seq,
            e.text()
        ));
    }
    if let Some(last) = paths.last() {
        report.head_file = read_head_file(&head_path(last))?;
        if let Some(recorded) = report.head_file {
            let head = report.head;
            if recorded.seq > head.seq {
                report.problems.push(format!(
                    "the log ends at seq {} but its head file says {}: records {}..={} were removed from the end",
                    head.seq,
                    recorded.seq,
                    head.seq + 1,
                    recorded.seq
                ));
            } else if recorded.seq < head.seq {
                // Normal while sesamed writes (the head file follows within a second) and after
                // a crash; lines added by anyone else are not ruled out by the head file anyway,
                // whoever can write the log can write it too. A saved head (`--expect`) can.
                report.behind = head.seq - recorded.seq;
            } else if recorded.hash != head.hash {
                report.problems.push(format!(
                    "the last record (seq {}) is not the one its head file recorded: it was changed",
                    head.seq
                ));
            }
        }
    }
    Ok(report)
}

/// Whether the line that has a receipt's `seq`, with `hash` and of request `record` (its id,
/// and whether it is the request's end record), is the receipt's record.
fn judge(receipt: &HeldReceipt, hash: [u8; 32], record: Option<&(String, bool)>) -> Result<(), ReceiptFault> {
    let ours = |end| {
        record.is_some_and(|(id, is_end)| *is_end == end && id.parse::<RequestId>().ok() == Some(receipt.id))
    };
    let id = || record.map(|(id, _)| id.clone());
    if hash == *receipt.hash.as_bytes() {
        if ours(true) {
            Ok(())
        } else {
            Err(ReceiptFault::Misfiled { record: id() })
        }
    } else if ours(true) {
        Err(ReceiptFault::Changed)
    } else {
        Err(ReceiptFault::Replaced { now: id() })
    }
}

/// The request id of a line that has one, as written, and whether the line is the request's
/// end record (what a receipt names).
fn request_id(line: &[u8]) -> Option<(String, bool)> {
    #[derive(serde::Deserialize)]
    struct Record {
        id: String,
        #[serde(default)]
        event: String,
        #[serde(default)]
        phase: String,
    }
    let r = serde_json::from_slice::<Record>(line).ok()?;
    let end = r.event == "request" && r.phase == "end";
    Some((r.id, end))
}

/// The receipt key a line names, if it is a record of one of [`NAMING_EVENTS`] with a
/// `receipt_key`. Other lines are not parsed again (a byte search rules them out).
fn receipt_key_named(line: &[u8]) -> Option<ReceiptKey> {
    #[derive(serde::Deserialize)]
    struct Naming {
        event: String,
        receipt_key: ReceiptKey,
    }
    const FIELD: &[u8] = b"\"receipt_key\"";
    if !line.windows(FIELD.len()).any(|w| w == FIELD) {
        return None;
    }
    let naming = serde_json::from_slice::<Naming>(line).ok()?;
    NAMING_EVENTS
        .contains(&naming.event.as_str())
        .then_some(naming.receipt_key)
}

/// The head a head file records; `None` when there is none.
pub fn read_head_file(path: &Path) -> io::Result<Option<Head>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Head::parse(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
