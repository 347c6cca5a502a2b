//! How `sesame` shows lists to people: plain tables (comfy-table, no borders), and while many
//! hosts answer, a progress bar (indicatif, drawn on standard error only when it is a terminal).

use std::time::Duration;

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sesame_proto::Status;

use crate::fleet::Outcome;
use crate::rollout::Report;

/// A table without borders: `header`, then `rows`, columns two spaces apart, the columns in
/// `right` aligned right. Cells are shown on one line with their control characters escaped
/// (they may quote a host), and no line ends in spaces.
pub fn plain(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>, right: &[usize]) -> String {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row.iter().map(|c| one_line(c)).collect::<Vec<_>>());
    }
    let last = header.len().saturating_sub(1);
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i == last { 0 } else { 2 }));
        if right.contains(&i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut text = table.trim_fmt();
    text.push('\n');
    text
}

/// `text` with every control character escaped, newlines and tabs included.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// One line about a host's outcome: `ok`, `error CODE (summary)` or `no answer`, and a detail.
fn summarise(o: &Outcome) -> (String, String) {
    match &o.result {
        Ok(r) if r.detached => ("started".into(), format!("sesame result {} {}", o.alias, r.id)),
        Ok(r) if r.status == Status::Ok => ("ok".into(), first_line(&r.output)),
        Ok(r) => (
            format!("error {} ({})", r.code.as_u16(), r.code.summary()),
            first_line(&r.message),
        ),
        Err(e) => ("no answer".into(), first_line(&e.to_string())),
    }
}

fn first_line(text: &str) -> String {
    const MAX: usize = 72;
    let line = text.lines().next().unwrap_or_default();
    let more = text.lines().nth(1).is_some();
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None if more => format!("{line} …"),
        None => line.to_owned(),
    }
}

/// The table of a run on many hosts: every host in the order asked, those never started last.
pub fn report_table(report: &Report) -> String {
    let started = report.outcomes.iter().map(|o| {
        let (result, detail) = summarise(o);
        let time = format!("{} ms", o.elapsed.as_millis());
        vec![o.alias.clone(), o.via.as_str().to_owned(), result, time, detail]
    });
    let not_started = report.not_started.iter().map(|(alias, via)| {
        let why = report
            .stopped
            .as_ref()
            .map_or_else(String::new, |s| format!("stopped: {s}"));
        vec![
            alias.clone(),
            via.as_str().to_owned(),
            "not started".into(),
            "-".into(),
            why,
        ]
    });
    plain(
        &["HOST", "VIA", "RESULT", "TIME", "OUTPUT"],
        started.chain(not_started),
        &[3],
    )
}

/// Prints [`report_table`] on standard output.
pub fn print_table(report: &Report) {
    print!("{}", report_table(report));
}

/// A progress bar on standard error while hosts answer, drawn only when it is a terminal.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    failed: usize,
}

impl Progress {
    /// A bar for `total` hosts.
    pub fn new(total: usize) -> Self {
        let bar = ProgressBar::with_draw_target(
            Some(u64::try_from(total).unwrap_or(u64::MAX)),
            ProgressDrawTarget::stderr(),
        );
        // The template is fixed text: it always parses.
        if let Ok(style) =
            ProgressStyle::with_template("[{bar:30}] {pos}/{len} hosts, {msg} failed, {elapsed}")
        {
            bar.set_style(style.progress_chars("#>-"));
        }
        bar.set_message("0");
        bar.enable_steady_tick(Duration::from_millis(250));
        Self { bar, failed: 0 }
    }

    /// One more host answered (`ok` or not).
    pub fn done(&mut self, ok: bool) {
        if !ok {
            self.failed += 1;
            self.bar.set_message(self.failed.to_string());
        }
        self.bar.inc(1);
    }

    /// Clears the bar: what the client says about the answers follows.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use sesame_proto::{ErrorCode, RequestId, Response};

    use super::*;
    use crate::home::Transport;
    use crate::quic::ClientError;
    use crate::rollout::Stop;

    #[test]
    fn a_plain_table_lines_up_its_columns_and_escapes_what_a_host_says() {
        let text = plain(
            &["HOST", "TIME", "OUTPUT"],
            [
                vec!["web1".into(), "7 ms".into(), "fine".into()],
                vec!["database".into(), "1234 ms".into(), "a\x1b[2Jb\tc".into()],
            ],
            &[1],
        );
        assert_eq!(
            text,
            "HOST         TIME  OUTPUT\n\
             web1         7 ms  fine\n\
             database  1234 ms  a\\u{1b}[2Jb\\tc\n"
        );
    }

    #[test]
    fn a_report_lists_hosts_not_started_with_why() {
        let id = RequestId::from_bytes([1; 16]);
        let report = Report {
            outcomes: vec![
                Outcome {
                    alias: "web1".into(),
                    via: Transport::Quic,
                    result: Ok(Response::error(id, ErrorCode::Denied, "no".to_owned())),
                    elapsed: Duration::from_millis(9),
                },
                Outcome {
                    alias: "web2".into(),
                    via: Transport::Sqs,
                    result: Err(ClientError::Timeout(Duration::from_secs(5))),
                    elapsed: Duration::from_secs(5),
                },
            ],
            not_started: vec![("web3".into(), Transport::Quic)],
            stopped: Some(Stop::CanaryFailed { batch: 2, failed: 2 }),
        };
        let text = report_table(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[1].starts_with("web1  quic  error 1010 (denied by policy)"),
            "{text}"
        );
        assert!(
            lines[2].contains("no answer") && lines[2].contains("5000 ms"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("web3  quic  not started")
                && lines[3].ends_with("stopped: 2 of the 2 hosts of the first batch (--batch) failed"),
            "{text}"
        );
    }
}
