//! Detached runs from the client's side: `sesame run --detach` asks the host to answer once the
//! command has started, and `sesame result HOST ID [--follow]` fetches what it wrote and how it
//! ended with `runs::result ID FROM`, the daemon's own command, a page of output at a time.

use std::io::Write as _;

use serde::Deserialize;
use sesame_proto::{ErrorCode, RequestId};

use crate::fleet::{self, Outcome};

/// `runs::result ID FROM`: the detached run `id` names, with its output from chunk `from` on.
pub fn command(id: &str, from: u32) -> fleet::Command {
    fleet::Command::parse(
        &format!("{}::result", crate::cancel::CLUSTER),
        vec![id.to_owned(), from.to_string()],
    )
}

/// One piece of a detached run's output.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Chunk {
    /// Its place, from 0.
    pub seq: u32,
    /// `log`, `output`, `errors`, or `answer` (the answer's own output, at the end).
    pub source: String,
    /// The text.
    pub text: String,
}

/// How a detached run ended.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Answer {
    /// Its code.
    pub code: ErrorCode,
    /// Its message.
    pub message: String,
    /// When, Unix milliseconds.
    pub ended_ms: u64,
}

/// A page of a detached run, as the host answers `runs::result`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Fetched {
    /// The run's request id.
    pub id: RequestId,
    /// `cluster::command`.
    pub call: String,
    /// When it started, Unix milliseconds.
    pub started_ms: u64,
    /// Its output from the chunk asked for.
    pub chunks: Vec<Chunk>,
    /// The chunk to ask for next.
    pub next: u32,
    /// How it ended, once it has and all its output was fetched.
    pub answer: Option<Answer>,
}

/// What the host said to a `runs::result`.
#[derive(Debug)]
pub enum Page {
    /// A page of the run.
    Fetched(Fetched),
    /// No detached run of this client's has that id (it may be a parked request).
    Unknown,
    /// Another failure: the outcome says which.
    Failed,
}

/// Reads the host's answer to a `runs::result`.
pub fn page(outcome: &Outcome) -> Page {
    match &outcome.result {
        Ok(r) if r.code == ErrorCode::Ok => match serde_json::from_str(&r.output) {
            Ok(fetched) => Page::Fetched(fetched),
            Err(_) => Page::Failed,
        },
        Ok(r) if r.code == ErrorCode::UnknownRequest => Page::Unknown,
        _ => Page::Failed,
    }
}

/// Prints a detached run's output page by page: what its programs wrote to standard error on
/// standard error, the rest on standard output; the answer's own output only when it is not
/// exactly what the run's programs already printed (as with the stock `exec` module).
#[derive(Debug, Default)]
pub struct Printer {
    stdout: String,
    answer: String,
}

impl Printer {
    /// Prints `chunks`, holding back the answer's output until [`Printer::finish`].
    pub fn print(&mut self, chunks: &[Chunk]) {
        let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
        for chunk in chunks {
            match chunk.source.as_str() {
                "answer" => self.answer.push_str(&chunk.text),
                "errors" => {
                    let _ = err.write_all(chunk.text.as_bytes());
                }
                source => {
                    if source == "output" {
                        self.stdout.push_str(&chunk.text);
                    }
                    let _ = out.write_all(chunk.text.as_bytes());
                }
            }
        }
        let _ = out.flush();
    }

    /// The answer's output, unless the run's programs already printed exactly that.
    pub fn finish(self) -> Option<String> {
        (!self.answer.is_empty() && self.answer != self.stdout).then_some(self.answer)
    }
}

/// How long ago `since_ms` (Unix milliseconds) was, for people: `42s`, `5m`, `2h 03m`.
pub fn age(since_ms: u64) -> String {
    let secs = fleet::now_ms().saturating_sub(since_ms) / 1000;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        _ => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(seq: u32, source: &str, text: &str) -> Chunk {
        Chunk {
            seq,
            source: source.into(),
            text: text.into(),
        }
    }

    #[test]
    fn an_answer_that_repeats_what_the_programs_printed_is_not_printed_again() {
        let mut p = Printer::default();
        p.print(&[chunk(0, "output", "a\n"), chunk(1, "answer", "a\n")]);
        assert_eq!(p.finish(), None);
        let mut p = Printer::default();
        p.print(&[chunk(0, "log", "tick\n"), chunk(1, "answer", "done\n")]);
        assert_eq!(p.finish().as_deref(), Some("done\n"));
    }

    #[test]
    fn a_page_reads_as_the_host_writes_it() {
        let json = r#"{"id":"0123456789abcdef0123456789abcdef","call":"basic::ticker","started_ms":1,
            "chunks":[{"seq":0,"source":"log","text":"tick 0\n"}],"next":1,
            "answer":{"code":3008,"message":"cancelled","ended_ms":2}}"#;
        let f: Fetched = serde_json::from_str(json).expect("page");
        assert_eq!(f.next, 1);
        assert_eq!(f.answer.map(|a| a.code), Some(ErrorCode::Cancelled));
    }
}
