//! How `sesame run` shows many hosts at once: a progress bar while they answer (on a terminal
//! only), then a table of each host's result.

use std::io::IsTerminal as _;

use sesame_proto::Status;

use crate::fleet::Outcome;

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

pub fn print_table(outcomes: &[Outcome]) {
    let rows: Vec<_> = outcomes
        .iter()
        .map(|o| {
            let (result, detail) = summarise(o);
            (
                o.alias.clone(),
                o.via.as_str(),
                result,
                format!("{} ms", o.elapsed.as_millis()),
                detail,
            )
        })
        .collect();
    let w_host = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0).max(4);
    let w_result = rows.iter().map(|r| r.2.chars().count()).max().unwrap_or(0).max(6);
    let w_time = rows.iter().map(|r| r.3.len()).max().unwrap_or(0).max(4);
    println!(
        "{:w_host$}  {:4}  {:w_result$}  {:>w_time$}  OUTPUT",
        "HOST", "VIA", "RESULT", "TIME"
    );
    for (host, via, result, time, detail) in rows {
        println!("{host:w_host$}  {via:4}  {result:w_result$}  {time:>w_time$}  {detail}");
    }
}

/// A one-line progress bar on standard error, drawn only when it is a terminal.
#[derive(Debug)]
pub struct Progress {
    total: usize,
    done: usize,
    failed: usize,
    draw: bool,
}

impl Progress {
    /// A bar for `total` hosts.
    pub fn new(total: usize) -> Self {
        let p = Self {
            total,
            done: 0,
            failed: 0,
            draw: std::io::stderr().is_terminal(),
        };
        p.render();
        p
    }

    /// One more host answered (`ok` or not).
    pub fn done(&mut self, ok: bool) {
        self.done += 1;
        if !ok {
            self.failed += 1;
        }
        self.render();
        // Cleared as the last host is done: what the client says about the answers follows.
        if self.done == self.total {
            self.finish();
        }
    }

    fn render(&self) {
        if !self.draw {
            return;
        }
        const WIDTH: usize = 30;
        let filled = (self.done * WIDTH).checked_div(self.total).unwrap_or(WIDTH);
        eprint!(
            "\r[{}{}] {}/{} hosts, {} failed",
            "#".repeat(filled),
            " ".repeat(WIDTH - filled),
            self.done,
            self.total,
            self.failed
        );
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if self.draw {
            eprint!("\r\x1b[2K");
        }
    }
}
