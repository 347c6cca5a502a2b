//! Two-person approval, as a client sees it: a request the host parked until others approve it
//! (code 1020), the host's own `approvals` commands (`sesame pending|approve|reject|result`), and
//! waiting for a parked request's answer by asking for its result now and then, over whichever
//! transport reaches the host.

use std::time::Duration;

use serde::Deserialize;
use sesame_proto::{ErrorCode, PendingNote, RequestId};

use crate::fleet::{self, Outcome};

/// The host's cluster of approvals commands.
pub const CLUSTER: &str = "approvals";

/// Longest pause between two questions while waiting.
pub const MAX_POLL: Duration = Duration::from_secs(5);

/// How long past a parked request's expiry a waiting client still asks (clocks differ).
pub const EXPIRY_SLACK_MS: u64 = 60_000;

/// `approvals::NAME [ID]`, with `reason` (a rejection's, say).
pub fn command(name: &str, id: Option<&str>, reason: Option<String>) -> fleet::Command {
    fleet::Command {
        cluster: Some(CLUSTER.to_owned()),
        args: id.map(str::to_owned).into_iter().collect(),
        reason,
        ..fleet::Command::parse(name, Vec::new())
    }
}

/// The pending note of an answer that says its request was parked.
pub fn pending(outcome: &Outcome) -> Option<&PendingNote> {
    match &outcome.result {
        Ok(r) if r.code == ErrorCode::ApprovalPending => r.pending.as_ref(),
        _ => None,
    }
}

/// Asks for the result of parked request `id` through `ask` until the answer is no longer
/// "waiting" (it ran, was rejected, expired, or no answer came) or until `expires_at_ms` (plus
/// [`EXPIRY_SLACK_MS`]) has passed by this machine's clock. Pauses with `sleep` between questions,
/// from one second growing to [`MAX_POLL`]; `on_wait` sees each "still waiting" note.
pub fn wait(
    id: RequestId,
    expires_at_ms: u64,
    mut ask: impl FnMut(&fleet::Command) -> Outcome,
    mut sleep: impl FnMut(Duration),
    mut on_wait: impl FnMut(&PendingNote),
) -> Outcome {
    let question = command("result", Some(&id.to_string()), None);
    let mut pause = Duration::from_secs(1);
    loop {
        sleep(pause);
        pause = (pause * 2).min(MAX_POLL);
        let outcome = ask(&question);
        match pending(&outcome) {
            Some(note) if fleet::now_ms() < expires_at_ms.saturating_add(EXPIRY_SLACK_MS) => on_wait(note),
            _ => return outcome,
        }
    }
}

/// One waiting request, as `approvals::pending` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Waiting {
    /// Its id, for `sesame approve HOST ID`.
    pub id: RequestId,
    /// Who asked.
    pub client: String,
    /// `cluster::command args…` (masked as the host's logs mask them).
    pub call: String,
    /// The requester's reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// When it was asked, Unix milliseconds.
    pub created_ms: u64,
    /// When it expires unapproved.
    pub expires_ms: u64,
    /// Approvals so far.
    pub approvals: u32,
    /// Approvals needed.
    pub required: u32,
    /// Who approved so far.
    #[serde(default)]
    pub approved_by: Vec<String>,
}

/// Reads `approvals::pending`'s output.
pub fn parse_pending(output: &str) -> Result<Vec<Waiting>, String> {
    serde_json::from_str(output)
        .map_err(|e| format!("the host's list of waiting requests is not readable: {e}"))
}

/// The waiting requests as a table for people, times relative to `now_ms`.
pub fn pending_table(list: &[Waiting], now_ms: u64) -> String {
    let rows = list.iter().map(|w| {
        vec![
            w.id.to_string(),
            w.client.clone(),
            format!("{}/{}", w.approvals, w.required),
            format!(
                "{} ago, {} left",
                span(now_ms.saturating_sub(w.created_ms)),
                span(w.expires_ms.saturating_sub(now_ms))
            ),
            w.call.clone(),
            w.reason.clone().unwrap_or_else(|| "-".to_owned()),
        ]
    });
    crate::table::plain(
        &["ID", "REQUESTER", "APPROVALS", "AGE", "COMMAND", "REASON"],
        rows,
        &[],
    )
}

/// `45s`, `12m`, `3h 05m`.
fn span(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use sesame_proto::Response;

    use super::*;
    use crate::Transport;

    fn outcome(response: Response) -> Outcome {
        Outcome {
            alias: "web".into(),
            via: Transport::Quic,
            result: Ok(response),
            elapsed: Duration::ZERO,
        }
    }

    fn note(id: RequestId, approvals: u32) -> PendingNote {
        PendingNote {
            id,
            approvals,
            required: 2,
            expires_at_ms: fleet::now_ms() + 600_000,
        }
    }

    #[test]
    fn waiting_asks_for_the_result_until_it_is_no_longer_pending() {
        let id = RequestId::from_bytes([7; 16]);
        let asked = Cell::new(0);
        let mut pauses = Vec::new();
        let mut seen = Vec::new();
        let done = wait(
            id,
            fleet::now_ms() + 600_000,
            |cmd| {
                assert_eq!(cmd.cluster.as_deref(), Some(CLUSTER));
                assert_eq!(
                    (cmd.command.as_str(), cmd.args.as_slice()),
                    ("result", &[id.to_string()][..])
                );
                asked.set(asked.get() + 1);
                if asked.get() < 5 {
                    outcome(Response::pending(id, note(id, asked.get() / 3), "waiting"))
                } else {
                    outcome(Response::ok(id, "ran\n".into(), 0))
                }
            },
            |d| pauses.push(d.as_secs()),
            |n| seen.push(n.approvals),
        );
        assert!(done.succeeded());
        assert_eq!(asked.get(), 5);
        assert_eq!(pauses, [1, 2, 4, 5, 5]);
        assert_eq!(seen, [0, 0, 1, 1]);
    }

    #[test]
    fn waiting_stops_at_an_error_and_past_the_expiry() {
        let id = RequestId::from_bytes([8; 16]);
        let refused = wait(
            id,
            u64::MAX,
            |_| outcome(Response::error(id, ErrorCode::ApprovalRefused, "expired")),
            |_| {},
            |_| panic!("not waiting"),
        );
        assert!(!refused.succeeded());
        let asked = Cell::new(0);
        let expired = wait(
            id,
            fleet::now_ms() - EXPIRY_SLACK_MS - 1,
            |_| {
                asked.set(asked.get() + 1);
                outcome(Response::pending(id, note(id, 0), "waiting"))
            },
            |_| {},
            |_| panic!("past its time: not waiting again"),
        );
        assert_eq!(asked.get(), 1);
        assert!(pending(&expired).is_some());
    }

    #[test]
    fn the_pending_list_reads_and_renders() {
        let id = RequestId::from_bytes([9; 16]);
        let now = 1_800_000_000_000;
        let text = format!(
            r#"[{{"id":"{id}","client":"olga","call":"ops::restart-app web","reason":"OPS-7 deploy","created_ms":{},"expires_ms":{},"approvals":1,"required":2,"approved_by":["sam"]}}]"#,
            now - 90_000,
            now + 3_600_000 + 300_000
        );
        let list = parse_pending(&text).expect("parse");
        assert_eq!(list[0].approved_by, ["sam"]);
        let table = pending_table(&list, now);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        assert!(lines[0].starts_with("ID "), "{table}");
        assert!(
            lines[1].starts_with(&id.to_string())
                && lines[1].contains("olga")
                && lines[1].contains("1/2")
                && lines[1].contains("1m ago, 1h 05m left")
                && lines[1].ends_with("ops::restart-app web  OPS-7 deploy"),
            "{table}"
        );
        assert!(parse_pending("not json").is_err());
        assert!(parse_pending("[]").expect("empty").is_empty());
    }
}
