//! Which hosts of a fleet are asked, and when: at most so many at once
//! (`--max-concurrency`), a canary batch that must succeed before the rest start (`--batch`),
//! and a stop once too many hosts have failed (`--max-errors`). [`fleet`] says how one host is
//! asked; this module only decides when, and tallies how the rollout ended.
//!
//! Hosts are started in the order given (a group's order, then `--hosts`). A host *fails* when
//! its command did not run and succeed: it answered with an error (a parked request included:
//! it has not run), or no answer came. Once a stop is decided no new host is started; those
//! already running are waited for (and counted), as AWS SSM's `MaxErrors` does.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sesame_proto::{ErrorCode, Sealer};
use tokio::task::JoinSet;

use crate::fleet::{self, Outcome, Target};
use crate::home::Transport;

/// A number of hosts, given as a count or as a percentage of the fleet: `5`, `10%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// This many hosts.
    Count(usize),
    /// This percentage (0 to 100) of the hosts.
    Percent(u8),
}

impl FromStr for Share {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        match s.strip_suffix('%') {
            Some(p) if digits(p) => match p.parse::<u8>() {
                Ok(p) if p <= 100 => Ok(Self::Percent(p)),
                _ => Err(format!("{s}: a percentage is at most 100%")),
            },
            None if digits(s) => s.parse().map(Self::Count).map_err(|_| format!("{s}: too large")),
            _ => Err(format!(
                "{s}: give a number of hosts (5) or a percentage of them (10%)"
            )),
        }
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Share {
    /// Parses a share that must name at least one host (`--max-concurrency`, `--batch`).
    pub fn parse_positive(s: &str) -> Result<Self, String> {
        match s.parse()? {
            Self::Count(0) | Self::Percent(0) => Err(format!("{s}: must be at least one host")),
            share => Ok(share),
        }
    }

    /// This share of `total` hosts, rounded up: a percentage of a fleet names at least one
    /// host (10% of 5 hosts is 1), and no share more than there are.
    pub fn at_least_one_of(self, total: usize) -> usize {
        let n = match self {
            Self::Count(n) => n,
            Self::Percent(p) => (total * usize::from(p)).div_ceil(100),
        };
        n.max(1).min(total)
    }

    /// This share of `total` hosts, rounded down: the errors a rollout tolerates (10% of 15
    /// hosts is 1, of 5 hosts 0: the first error stops it).
    pub fn floor_of(self, total: usize) -> usize {
        match self {
            Self::Count(n) => n,
            Self::Percent(p) => total * usize::from(p) / 100,
        }
    }
}

/// How a rollout proceeds, as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollout {
    /// Hosts asked at once.
    pub max_concurrency: Share,
    /// Failures tolerated; one more and no new host is started. `None`: never stop.
    pub max_errors: Option<Share>,
    /// The canary: this many hosts first, all of which must succeed before the rest start.
    pub batch: Option<Share>,
}

impl Rollout {
    /// All hosts, `parallel` at once, never stopping.
    pub fn all(parallel: usize) -> Self {
        Self {
            max_concurrency: Share::Count(parallel.max(1)),
            max_errors: None,
            batch: None,
        }
    }

    /// The rollout for a fleet of `total` hosts, in numbers.
    pub fn plan(&self, total: usize) -> Plan {
        Plan {
            total,
            concurrency: self.max_concurrency.at_least_one_of(total),
            errors_allowed: self.max_errors.map(|e| e.floor_of(total)),
            canary: self.batch.map(|b| b.at_least_one_of(total)),
        }
    }
}

/// A [`Rollout`] worked out for a fleet of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The fleet's size.
    pub total: usize,
    /// Hosts asked at once.
    pub concurrency: usize,
    /// Failures tolerated before stopping, if any stop.
    pub errors_allowed: Option<usize>,
    /// The canary batch's size.
    pub canary: Option<usize>,
}

/// Why a rollout stopped before every host was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// More hosts failed than `--max-errors` tolerates.
    TooManyErrors {
        /// Hosts that had failed when the rollout stopped.
        errors: usize,
        /// What `--max-errors` said.
        max_errors: Share,
        /// What it tolerates, for this fleet.
        allowed: usize,
    },
    /// A host of the canary batch failed.
    CanaryFailed {
        /// The canary batch's size.
        batch: usize,
        /// Its hosts that failed.
        failed: usize,
    },
    /// The operator pressed Ctrl-C.
    Interrupted,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyErrors {
                errors,
                max_errors,
                allowed,
            } => write!(
                f,
                "{errors} hosts failed, more than --max-errors {max_errors} allows ({allowed})"
            ),
            Self::CanaryFailed { batch, failed } => {
                write!(
                    f,
                    "{failed} of the {batch} hosts of the first batch (--batch) failed"
                )
            }
            Self::Interrupted => write!(f, "interrupted (Ctrl-C)"),
        }
    }
}

/// How a rollout ended: every started host's outcome, in the targets' order, the hosts never
/// started, and why the rollout stopped (if it did before starting them all).
#[derive(Debug)]
pub struct Report {
    /// The outcomes of the hosts that were started.
    pub outcomes: Vec<Outcome>,
    /// The hosts never started (their alias and transport), in the targets' order.
    pub not_started: Vec<(String, Transport)>,
    /// Why the rollout stopped early; `None` when every host was started.
    pub stopped: Option<Stop>,
}

/// A rollout's result in counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// The command ran and succeeded (or, detached, started).
    pub ok: usize,
    /// The host answered with an error.
    pub failed: usize,
    /// Of those, requests the host parked for approval (not run yet).
    pub parked: usize,
    /// No answer came.
    pub no_answer: usize,
    /// Never started: the rollout stopped first.
    pub not_started: usize,
}

impl Report {
    /// The counts.
    pub fn tally(&self) -> Tally {
        let mut t = Tally {
            not_started: self.not_started.len(),
            ..Tally::default()
        };
        for o in &self.outcomes {
            match &o.result {
                _ if o.succeeded() => t.ok += 1,
                Ok(r) => {
                    t.failed += 1;
                    if r.code == ErrorCode::ApprovalPending {
                        t.parked += 1;
                    }
                }
                Err(_) => t.no_answer += 1,
            }
        }
        t
    }

    /// The last line of `--json`: the counts, and why the rollout stopped (or null).
    pub fn summary_json(&self) -> serde_json::Value {
        let t = self.tally();
        serde_json::json!({ "summary": {
            "ok": t.ok,
            "failed": t.failed,
            "parked": t.parked,
            "no_answer": t.no_answer,
            "not_started": t.not_started,
            "stopped": self.stopped.as_ref().map(ToString::to_string),
        }})
    }

    /// One line for people: `97 ok, 2 failed, 1 no answer, 50 not started: …`.
    pub fn summary(&self) -> String {
        let t = self.tally();
        let mut parts = vec![format!("{} ok", t.ok)];
        if t.failed > 0 {
            let parked = if t.parked > 0 {
                format!(" ({} waiting for approval)", t.parked)
            } else {
                String::new()
            };
            parts.push(format!("{} failed{parked}", t.failed));
        }
        if t.no_answer > 0 {
            parts.push(format!("{} no answer", t.no_answer));
        }
        if t.not_started > 0 {
            parts.push(format!("{} not started", t.not_started));
        }
        let total = self.outcomes.len() + self.not_started.len();
        let mut line = format!("{} of {total} hosts: {}", t.ok, parts.join(", "));
        if let Some(stop) = &self.stopped {
            line.push_str(&format!("; stopped: {stop}"));
        }
        line
    }
}

/// Runs `command` on `targets` as `rollout` says, each host with its own `timeout`. `on_done` is
/// called as each host finishes (for progress). Ctrl-C (the command's canceller) stops it.
pub async fn run(
    targets: Vec<Target>,
    sealer: Arc<Sealer>,
    command: &fleet::Command,
    timeout: Duration,
    rollout: &Rollout,
    on_done: impl FnMut(&Outcome),
) -> Report {
    let via = Arc::new(fleet::Via::connect(&targets, &sealer).await);
    let interrupt = async {
        match &command.cancel {
            Some(canceller) => canceller.signalled().await,
            None => std::future::pending().await,
        }
    };
    let ask = |index: usize| {
        let target: Target = targets[index].clone();
        let (via, sealer, command) = (Arc::clone(&via), Arc::clone(&sealer), command.clone());
        async move {
            let started = Instant::now();
            let result = fleet::run_one(&via, &target, &sealer, &command, timeout).await;
            Outcome {
                alias: target.alias,
                via: target.via,
                result,
                elapsed: started.elapsed(),
            }
        }
    };
    let (outcomes, next, stopped) = schedule(rollout, targets.len(), interrupt, ask, on_done).await;
    Report {
        outcomes,
        not_started: targets[next..].iter().map(|t| (t.alias.clone(), t.via)).collect(),
        stopped,
    }
}

/// The rollout itself, over hosts `0..total`: `ask(i)` asks host `i`. Returns the outcomes
/// of the hosts started, in order; how many were started (always the first ones); and why it
/// stopped, if hosts were left out.
async fn schedule<F>(
    rollout: &Rollout,
    total: usize,
    interrupt: impl Future<Output = ()>,
    mut ask: impl FnMut(usize) -> F,
    mut on_done: impl FnMut(&Outcome),
) -> (Vec<Outcome>, usize, Option<Stop>)
where
    F: Future<Output = Outcome> + Send + 'static,
{
    let plan = rollout.plan(total);
    let mut slots: Vec<Option<Outcome>> = (0..total).map(|_| None).collect();
    let mut running = JoinSet::new();
    let mut next = 0;
    let mut errors = 0;
    let mut stopped = None;
    tokio::pin!(interrupt);
    let mut interrupted = false;
    loop {
        // The canary batch alone until all of it has answered; then the rest.
        let canary_open = plan
            .canary
            .is_some_and(|c| next < c || slots[..c].iter().any(Option::is_none));
        let limit = match plan.canary {
            Some(c) if canary_open => c,
            _ => total,
        };
        while stopped.is_none() && running.len() < plan.concurrency && next < limit {
            let asked = ask(next);
            let index = next;
            running.spawn(async move { (index, asked.await) });
            next += 1;
        }
        if running.is_empty() {
            break;
        }
        let joined = tokio::select! {
            joined = running.join_next() => joined,
            () = &mut interrupt, if !interrupted => {
                interrupted = true;
                stopped.get_or_insert(Stop::Interrupted);
                continue;
            }
        };
        // A host's task that panicked takes the client down with it, rather than leave the
        // host out of the report (tasks are never aborted: no other error can come).
        let (index, outcome) = match joined {
            Some(Ok(done)) => done,
            Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Some(Err(_)) | None => continue,
        };
        on_done(&outcome);
        let failed = !outcome.succeeded();
        slots[index] = Some(outcome);
        if !failed || stopped.is_some() {
            continue;
        }
        errors += 1;
        if let Some(allowed) = plan.errors_allowed.filter(|a| errors > *a) {
            stopped = Some(Stop::TooManyErrors {
                errors,
                max_errors: rollout.max_errors.unwrap_or(Share::Count(allowed)),
                allowed,
            });
        } else if let Some(batch) = plan.canary.filter(|c| index < *c) {
            stopped = Some(Stop::CanaryFailed { batch, failed: 1 });
        }
    }
    // The counts as they ended, hosts still running at the stop included.
    let failed_among = |n: usize| slots[..n].iter().flatten().filter(|o| !o.succeeded()).count();
    match &mut stopped {
        Some(Stop::TooManyErrors { errors, .. }) => *errors = failed_among(slots.len()),
        Some(Stop::CanaryFailed { batch, failed }) => *failed = failed_among(*batch),
        _ => {}
    }
    // A stop that came after the last host had started left nothing out: nothing to report.
    let stopped = stopped.filter(|_| next < total);
    (slots.into_iter().flatten().collect(), next, stopped)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use sesame_proto::{RequestId, Response};
    use tokio::time::sleep;

    use super::*;
    use crate::quic::ClientError;

    /// What a host of a made-up fleet does: answer after `ms`, succeeding or not.
    #[derive(Clone, Copy)]
    struct Host {
        ms: u64,
        ok: bool,
    }

    const OK: Host = Host { ms: 10, ok: true };
    const FAIL: Host = Host { ms: 10, ok: false };

    /// A host starting or ending.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Event {
        Start(usize),
        End(usize),
    }

    /// What happened, in order (the tests assert order, never time: the clock runs for real
    /// and the machine may be slow), and the most hosts running at once.
    #[derive(Debug, Default)]
    struct Log {
        events: Vec<Event>,
        most_at_once: usize,
    }

    impl Log {
        fn at(&self, event: Event) -> usize {
            self.events.iter().position(|e| *e == event).expect("happened")
        }

        fn started(&self) -> Vec<usize> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Event::Start(i) => Some(*i),
                    Event::End(_) => None,
                })
                .collect()
        }
    }

    /// Rolls `rollout` out over `hosts`; `interrupt_at`, if given, is the host whose start
    /// brings Ctrl-C.
    async fn roll(
        hosts: &[Host],
        rollout: Rollout,
        interrupt_at: Option<usize>,
    ) -> (Log, Vec<Outcome>, usize, Option<Stop>) {
        let log = Rc::new(RefCell::new(Log::default()));
        let at_once = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (ctrl_c, heard) = tokio::sync::oneshot::channel::<()>();
        let ctrl_c = RefCell::new(Some(ctrl_c));
        let interrupt = async move {
            if heard.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let ask = |i: usize| {
            let host = hosts[i];
            let now = at_once.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let mut l = log.borrow_mut();
            l.most_at_once = l.most_at_once.max(now);
            l.events.push(Event::Start(i));
            if interrupt_at == Some(i)
                && let Some(tx) = ctrl_c.borrow_mut().take()
            {
                let _ = tx.send(());
            }
            let at_once = Arc::clone(&at_once);
            async move {
                sleep(Duration::from_millis(host.ms)).await;
                at_once.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                let id = RequestId::from_bytes([1; 16]);
                Outcome {
                    alias: format!("h{i}"),
                    via: Transport::Quic,
                    result: if host.ok {
                        Ok(Response::ok(id, "fine".into(), 1))
                    } else if i.is_multiple_of(2) {
                        Ok(Response::error(id, ErrorCode::Denied, "no"))
                    } else {
                        Err(ClientError::Timeout(Duration::from_millis(host.ms)))
                    },
                    elapsed: Duration::from_millis(host.ms),
                }
            }
        };
        let on_done = |o: &Outcome| {
            let i: usize = o.alias[1..].parse().expect("index");
            log.borrow_mut().events.push(Event::End(i));
        };
        let (outcomes, started, stopped) = schedule(&rollout, hosts.len(), interrupt, ask, on_done).await;
        let log = Rc::try_unwrap(log).expect("one owner").into_inner();
        (log, outcomes, started, stopped)
    }

    fn rollout(concurrency: usize, max_errors: Option<&str>, batch: Option<&str>) -> Rollout {
        Rollout {
            max_concurrency: Share::Count(concurrency),
            max_errors: max_errors.map(|e| e.parse().expect("share")),
            batch: batch.map(|b| b.parse().expect("share")),
        }
    }

    #[test]
    fn shares_are_counts_or_percentages() {
        assert_eq!("5".parse(), Ok(Share::Count(5)));
        assert_eq!("10%".parse(), Ok(Share::Percent(10)));
        assert_eq!("0%".parse(), Ok(Share::Percent(0)));
        for bad in [
            "",
            "%",
            "101%",
            "-1",
            "1.5",
            "5 %",
            "ten",
            "10%%",
            "99999999999999999999999",
        ] {
            assert!(bad.parse::<Share>().is_err(), "{bad:?}");
        }
        assert!(Share::parse_positive("0").is_err() && Share::parse_positive("0%").is_err());
        // Up for how many at once and the canary (at least one), down for the errors tolerated.
        assert_eq!(Share::Percent(10).at_least_one_of(5), 1);
        assert_eq!(Share::Percent(50).at_least_one_of(5), 3);
        assert_eq!(Share::Count(500).at_least_one_of(5), 5);
        assert_eq!(Share::Count(3).at_least_one_of(0), 0);
        assert_eq!(Share::Percent(10).floor_of(5), 0);
        assert_eq!(Share::Percent(10).floor_of(25), 2);
        assert_eq!(Share::Percent(100).floor_of(7), 7);
    }

    #[tokio::test]
    async fn no_more_than_max_concurrency_run_at_once_and_all_run_in_order() {
        let hosts: Vec<Host> = (0..10)
            .map(|i| Host {
                ms: 5 + i * 3,
                ok: true,
            })
            .collect();
        let (log, outcomes, started, stopped) = roll(&hosts, rollout(3, None, None), None).await;
        assert_eq!((started, stopped, outcomes.len()), (10, None, 10));
        assert_eq!(log.most_at_once, 3);
        assert_eq!(log.started(), (0..10).collect::<Vec<_>>());
        let aliases: Vec<&str> = outcomes.iter().map(|o| o.alias.as_str()).collect();
        assert_eq!(aliases, (0..10).map(|i| format!("h{i}")).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn one_error_more_than_max_errors_starts_no_new_host() {
        let hosts = [OK, FAIL, OK, FAIL, OK, OK];
        let (_, outcomes, started, stopped) = roll(&hosts, rollout(1, Some("1"), None), None).await;
        assert_eq!(started, 4, "the second failure stops it");
        assert_eq!(outcomes.len(), 4);
        assert_eq!(
            stopped,
            Some(Stop::TooManyErrors {
                errors: 2,
                max_errors: Share::Count(1),
                allowed: 1
            })
        );
        // Zero tolerates none: the first failure stops it.
        let (_, _, started, stopped) = roll(&hosts, rollout(1, Some("0"), None), None).await;
        assert_eq!(started, 2);
        assert!(matches!(
            stopped,
            Some(Stop::TooManyErrors {
                errors: 1,
                allowed: 0,
                ..
            })
        ));
        // 40% of 6 hosts is 2 (rounded down): the third failure would stop it; there is none.
        let (_, _, started, stopped) = roll(&hosts, rollout(1, Some("40%"), None), None).await;
        assert_eq!((started, stopped), (6, None));
    }

    #[tokio::test]
    async fn hosts_running_at_the_stop_are_waited_for_and_counted() {
        // Three at once: hosts 0-2 start; 0 fails first (max 0), 1 and 2 still run and fail too.
        let hosts = [
            Host { ms: 5, ok: false },
            Host { ms: 20, ok: false },
            Host { ms: 30, ok: true },
            OK,
            OK,
        ];
        let (log, outcomes, started, stopped) = roll(&hosts, rollout(3, Some("0"), None), None).await;
        let ended = log.events.iter().filter(|e| matches!(e, Event::End(_))).count();
        assert_eq!((started, outcomes.len(), ended), (3, 3, 3));
        assert!(matches!(
            stopped,
            Some(Stop::TooManyErrors {
                errors: 2,
                allowed: 0,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn the_rest_start_only_once_the_whole_canary_batch_has_succeeded() {
        let mut hosts = vec![OK; 8];
        hosts[1] = Host { ms: 50, ok: true };
        let (log, outcomes, started, stopped) = roll(&hosts, rollout(4, None, Some("2")), None).await;
        assert_eq!((started, stopped, outcomes.len()), (8, None, 8));
        // The canary's hosts start together, before anything ends; every other host starts
        // after both have ended.
        assert_eq!(log.events[..2], [Event::Start(0), Event::Start(1)]);
        let canary_done = log.at(Event::End(0)).max(log.at(Event::End(1)));
        for i in 2..8 {
            let at = log.at(Event::Start(i));
            assert!(
                at > canary_done,
                "host {i} started before the canary ended: {:?}",
                log.events
            );
        }
        assert_eq!(log.most_at_once, 4, "then max-concurrency again");
    }

    #[tokio::test]
    async fn a_failing_canary_stops_the_rollout() {
        let mut hosts = vec![OK; 6];
        hosts[1] = FAIL;
        // Three at once: the whole batch of 3 runs; the rest never start.
        let (_, outcomes, started, stopped) = roll(&hosts, rollout(3, None, Some("50%")), None).await;
        assert_eq!((started, outcomes.len()), (3, 3));
        assert_eq!(stopped, Some(Stop::CanaryFailed { batch: 3, failed: 1 }));
        // One at a time: the batch's third host is not started after its second failed.
        let (_, _, started, stopped) = roll(&hosts, rollout(1, None, Some("3")), None).await;
        assert_eq!(started, 2);
        assert_eq!(stopped, Some(Stop::CanaryFailed { batch: 3, failed: 1 }));
    }

    #[tokio::test]
    async fn ctrl_c_starts_no_new_host_and_waits_for_those_running() {
        // Two at once; Ctrl-C comes as host 2 starts (host 0 done, host 1 still running).
        let mut hosts = vec![OK; 6];
        hosts[1] = Host { ms: 300, ok: true };
        let (log, outcomes, started, stopped) = roll(&hosts, rollout(2, None, None), Some(2)).await;
        assert_eq!((started, outcomes.len()), (3, 3), "{:?}", log.events);
        assert!(log.events.contains(&Event::End(1)), "host 1 was waited for");
        assert_eq!(stopped, Some(Stop::Interrupted));
    }

    #[tokio::test]
    async fn a_stop_after_the_last_host_started_leaves_nothing_out() {
        let (_, outcomes, started, stopped) = roll(&[OK, FAIL], rollout(2, Some("0"), None), None).await;
        assert_eq!((outcomes.len(), started, stopped), (2, 2, None));
        let (_, outcomes, _, stopped) = roll(&[], rollout(2, Some("0"), Some("1")), None).await;
        assert!(outcomes.is_empty() && stopped.is_none());
    }

    #[test]
    fn a_report_counts_and_says_why_it_stopped() {
        let id = RequestId::from_bytes([1; 16]);
        let outcome = |alias: &str, result| Outcome {
            alias: alias.into(),
            via: Transport::Quic,
            result,
            elapsed: Duration::from_millis(3),
        };
        let note = sesame_proto::PendingNote {
            id,
            approvals: 0,
            required: 1,
            expires_at_ms: 0,
        };
        let report = Report {
            outcomes: vec![
                outcome("a", Ok(Response::ok(id, String::new(), 1))),
                outcome("b", Ok(Response::error(id, ErrorCode::Denied, "no"))),
                outcome("c", Ok(Response::pending(id, note, "waits"))),
                outcome("d", Err(ClientError::Timeout(Duration::from_secs(1)))),
            ],
            not_started: vec![("e".into(), Transport::Sqs)],
            stopped: Some(Stop::TooManyErrors {
                errors: 3,
                max_errors: Share::Percent(40),
                allowed: 2,
            }),
        };
        assert_eq!(
            report.tally(),
            Tally {
                ok: 1,
                failed: 2,
                parked: 1,
                no_answer: 1,
                not_started: 1
            }
        );
        assert_eq!(
            report.summary(),
            "1 of 5 hosts: 1 ok, 2 failed (1 waiting for approval), 1 no answer, 1 not started; \
             stopped: 3 hosts failed, more than --max-errors 40% allows (2)"
        );
        assert_eq!(
            report.summary_json()["summary"],
            serde_json::json!({"ok": 1, "failed": 2, "parked": 1, "no_answer": 1, "not_started": 1,
                "stopped": "3 hosts failed, more than --max-errors 40% allows (2)"})
        );
    }
}
