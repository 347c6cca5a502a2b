//! Masterless Salt: `salt-call --local --out json --retcode-passthrough state.apply NAME`.
//!
//! A module names a state (an sls name such as `web.nginx`), optionally pillar data as a JSON
//! object, and whether to run in test mode. The name is parsed into a [`StateName`] and the
//! pillar into a [`Pillar`] before anything else; [`check_grant`] then checks both against the
//! policy's salt grant (which states, which top-level pillar keys), and only then does
//! [`Salt::apply`] run `salt-call` through [`crate::system`]. Its JSON is parsed into an
//! [`ApplyReport`]: one [`StateOutcome`] per state, in the order Salt ran them.
//!
//! One state run at a time: Salt itself refuses a second concurrent `state.apply`, so a second
//! request gets [`SaltError::Busy`] at once instead of a confusing Salt message.

mod calls;
mod setup;

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value as Json};

use crate::system::{Tool, ToolError, last_line};
pub use setup::{SaltConfig, SaltGrant};

/// The longest state name accepted.
pub const MAX_STATE_NAME: usize = 128;
/// The largest pillar accepted, as compact JSON.
pub const MAX_PILLAR_BYTES: usize = 64 * 1024;
/// The least time worth starting `salt-call` with: it takes about a second to start.
pub const MIN_APPLY_TIME: Duration = Duration::from_secs(2);

/// Why a state was not applied, or its outcome could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaltError {
    /// A state name or pillar is malformed.
    #[error("{0}")]
    Invalid(String),
    /// Another state run is in progress on this host.
    #[error("another Salt state run is in progress on this host; try again when it has finished")]
    Busy,
    /// Too little of the request's time is left to start salt-call.
    #[error(
        "{0:?} left of the request's time limit is too little to run salt-call (at least {MIN_APPLY_TIME:?})"
    )]
    NoTime(Duration),
    /// Salt refused to run the state (a missing sls, a render error): its messages.
    #[error("salt refused the state: {}", .0.join("; "))]
    Refused(Vec<String>),
    /// salt-call could not be run, timed out, or its output was not what Salt prints.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// salt-call's output is not a state report.
    #[error("salt-call printed no state report ({0})")]
    Output(String),
    /// The configuration directory is unusable.
    #[error("{}: {reason}", path.display())]
    Config {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// An sls name: 1–128 of `A-Z a-z 0-9 _ -` in dot-separated parts, none empty, none starting
/// with `-` (never an option, never a path, never `key=value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateName(String);

impl StateName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for StateName {
    type Err = SaltError;

    fn from_str(s: &str) -> Result<Self, SaltError> {
        let part_ok = |p: &str| {
            !p.is_empty()
                && !p.starts_with('-')
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if s.len() <= MAX_STATE_NAME && s.split('.').all(part_ok) {
            Ok(Self(s.to_owned()))
        } else {
            Err(SaltError::Invalid(format!(
                "state name {s:?}: expected up to {MAX_STATE_NAME} of A-Z a-z 0-9 _ - in \
                 dot-separated parts, none empty or starting with -"
            )))
        }
    }
}

impl std::fmt::Display for StateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Pillar data for one apply: a JSON object of at most [`MAX_PILLAR_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pillar(Map<String, Json>);

impl Pillar {
    /// The top-level keys, which the grant bounds.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The `pillar=…` argument for salt-call. Salt reads it as YAML, of which JSON is a subset.
    fn argument(&self) -> String {
        format!("pillar={}", Json::Object(self.0.clone()))
    }
}

impl std::str::FromStr for Pillar {
    type Err = SaltError;

    fn from_str(s: &str) -> Result<Self, SaltError> {
        if s.len() > MAX_PILLAR_BYTES {
            return Err(SaltError::Invalid(format!(
                "pillar: {} bytes, more than {MAX_PILLAR_BYTES}",
                s.len()
            )));
        }
        match serde_json::from_str::<Json>(s) {
            Ok(Json::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(SaltError::Invalid("pillar: a JSON object expected".to_owned())),
            Err(e) => Err(SaltError::Invalid(format!("pillar: not JSON: {e}"))),
        }
    }
}

/// Whether `grant` lets a request apply `state` with `pillar`; the reason when not.
///
/// `grant.states` holds exact names, `"*"` (any state) or `"PREFIX.*"` (any state below
/// `PREFIX`); `grant.pillar_keys` the top-level pillar keys a caller may set, or `"*"`.
pub fn check_grant(grant: &SaltGrant, state: &StateName, pillar: Option<&Pillar>) -> Result<(), String> {
    let covers = |pattern: &str| match pattern.strip_suffix(".*") {
        _ if pattern == "*" => true,
        Some(prefix) => state
            .as_str()
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.')),
        None => pattern == state.as_str(),
    };
    if !grant.states.iter().any(|p| covers(p)) {
        return Err(if grant.states.is_empty() {
            "the grant allows no salt states".to_owned()
        } else {
            format!("state {state} is not in the grant ({})", grant.states.join(", "))
        });
    }
    let any_key = grant.pillar_keys.iter().any(|k| k == "*");
    if let Some(pillar) = pillar
        && !any_key
        && let Some(key) = pillar.keys().find(|k| !grant.pillar_keys.iter().any(|g| g == k))
    {
        return Err(if grant.pillar_keys.is_empty() {
            "the grant allows no pillar data".to_owned()
        } else {
            format!(
                "pillar key {key:?} is not in the grant ({})",
                grant.pillar_keys.join(", ")
            )
        });
    }
    Ok(())
}

/// The outcome of one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateOutcome {
    /// Salt's state id (`file_|-motd_|-/etc/motd_|-managed`).
    pub id: String,
    /// `Some(true)` done, `Some(false)` failed, `None` would change (test mode).
    pub result: Option<bool>,
    /// Whether the state changed (in test mode: would change) anything.
    pub changed: bool,
    /// Salt's comment.
    pub comment: String,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// Every state, in the order Salt ran them.
    pub states: Vec<StateOutcome>,
}

impl ApplyReport {
    /// States that changed (or would change) something.
    pub fn changed(&self) -> usize {
        self.states.iter().filter(|s| s.changed).count()
    }

    /// States that failed.
    pub fn failed(&self) -> usize {
        self.states.iter().filter(|s| s.result == Some(false)).count()
    }

    /// True when no state failed.
    pub fn succeeded(&self) -> bool {
        self.failed() == 0
    }
}

/// Reads salt-call's `--out json` output for `state.apply`.
///
/// Salt prints `{"local": {STATE_ID: {result, changes, comment, __run_num__, …}, …}}` when the
/// states ran (exit status 0, or 2 with `--retcode-passthrough` when one failed), and
/// `{"local": ["message", …]}` when it could not run them (exit status 1).
pub fn parse_report(stdout: &str) -> Result<ApplyReport, SaltError> {
    let value: Json =
        serde_json::from_str(stdout.trim()).map_err(|e| SaltError::Output(format!("not JSON: {e}")))?;
    let local = value
        .get("local")
        .ok_or_else(|| SaltError::Output("no \"local\" key".to_owned()))?;
    let states = match local {
        Json::Object(states) => states,
        Json::Array(messages) => {
            return Err(SaltError::Refused(messages.iter().map(comment_text).collect()));
        }
        Json::String(message) => return Err(SaltError::Refused(vec![message.clone()])),
        other => {
            return Err(SaltError::Output(format!("\"local\" is {}", kind_of(other))));
        }
    };
    let mut ordered = Vec::with_capacity(states.len());
    for (id, state) in states {
        let Json::Object(state) = state else {
            return Err(SaltError::Output(format!("state {id} is {}", kind_of(state))));
        };
        let result = match state.get("result") {
            Some(Json::Bool(b)) => Some(*b),
            Some(Json::Null) | None => None,
            Some(other) => {
                return Err(SaltError::Output(format!(
                    "state {id}: result is {}",
                    kind_of(other)
                )));
            }
        };
        let changed = match state.get("changes") {
            Some(Json::Object(c)) => !c.is_empty(),
            Some(Json::Null) | None => false,
            Some(other) => !is_empty(other),
        };
        let comment = state.get("comment").map(comment_text).unwrap_or_default();
        let run_num = state
            .get("__run_num__")
            .and_then(Json::as_u64)
            .unwrap_or(u64::MAX);
        ordered.push((
            run_num,
            StateOutcome {
                id: id.clone(),
                result,
                changed,
                comment,
            },
        ));
    }
    ordered.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    Ok(ApplyReport {
        states: ordered.into_iter().map(|(_, s)| s).collect(),
    })
}

/// A comment as text: Salt writes a string, sometimes a list of them.
fn comment_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Array(items) => items.iter().map(comment_text).collect::<Vec<_>>().join("\n"),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

fn is_empty(value: &Json) -> bool {
    match value {
        Json::Null => true,
        Json::String(s) => s.is_empty(),
        Json::Array(a) => a.is_empty(),
        Json::Object(o) => o.is_empty(),
        Json::Bool(_) | Json::Number(_) => false,
    }
}

fn kind_of(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

/// salt-call with one minion configuration.
#[derive(Debug)]
pub struct Salt {
    salt_call: Tool,
    config_dir: PathBuf,
    timeout: Duration,
    /// Held while a state run is in progress.
    running: Mutex<()>,
}

impl Salt {
    /// The service `config` describes; fails when salt-call or the configuration is missing.
    pub fn from_config(config: &SaltConfig) -> Result<Self, SaltError> {
        let salt_call = Tool::new(&config.salt_call)?;
        if !salt_call.exists() {
            return Err(SaltError::Tool(ToolError::Spawn {
                path: config.salt_call.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not installed (set [salt] salt_call)",
                ),
            }));
        }
        let minion = config.config_dir.join("minion");
        if !minion.is_file() {
            return Err(SaltError::Config {
                path: minion,
                reason: "no minion configuration file (set [salt] config_dir)".to_owned(),
            });
        }
        Ok(Self {
            salt_call,
            config_dir: config.config_dir.clone(),
            timeout: Duration::from_secs(config.timeout_s),
            running: Mutex::new(()),
        })
    }

    /// A dry run: applies are recorded in `recorder` (the salt-call command line, the pillar
    /// left out) and report no states; nothing runs and nothing needs to be installed.
    pub fn dry_run(config: &SaltConfig, recorder: crate::system::Recorder) -> Result<Self, SaltError> {
        Ok(Self {
            salt_call: Tool::new(&config.salt_call)?.recording(recorder),
            config_dir: config.config_dir.clone(),
            timeout: Duration::from_secs(config.timeout_s),
            running: Mutex::new(()),
        })
    }

    /// Runs `salt-call --local test.ping` with the configuration (as `sesamed configtest` does);
    /// returns salt-call's version.
    pub fn check(&self) -> Result<String, SaltError> {
        let version = self.salt_call.run(&["--version"])?;
        let args = [
            "--local",
            "--config-dir",
            &self.config_dir.display().to_string(),
            "--out",
            "json",
            "--log-level",
            "quiet",
            "test.ping",
        ];
        let ping = self.salt_call.run(&args)?;
        match serde_json::from_str::<Json>(ping.stdout.trim()) {
            Ok(v) if v.get("local") == Some(&Json::Bool(true)) => Ok(version.stdout.trim().to_owned()),
            _ => Err(SaltError::Output(format!(
                "test.ping answered {}",
                last_line(&[&ping.stdout, &ping.stderr])
            ))),
        }
    }

    /// The arguments for one apply.
    fn arguments(
        &self,
        state: &StateName,
        pillar: Option<&Pillar>,
        test: bool,
        progress: bool,
    ) -> Vec<String> {
        let mut args = vec![
            "--local".to_owned(),
            "--config-dir".to_owned(),
            self.config_dir.display().to_string(),
            "--out".to_owned(),
            "json".to_owned(),
            "--retcode-passthrough".to_owned(),
            "--log-level".to_owned(),
            // Its log says when each state starts and ends: read for a client that takes the
            // output as it comes ([`progress_lines`]).
            if progress { "info" } else { "quiet" }.to_owned(),
            "state.apply".to_owned(),
            state.as_str().to_owned(),
        ];
        if let Some(pillar) = pillar {
            args.push(pillar.argument());
        }
        if test {
            args.push("test=True".to_owned());
        }
        args
    }

    /// Applies `state` (in test mode: reports what would change and changes nothing), within
    /// `time_left` of the request's time limit and the configured timeout. With `progress`,
    /// each state's start and end, as salt-call logs them, go there as they happen.
    pub fn apply(
        &self,
        state: &StateName,
        pillar: Option<&Pillar>,
        test: bool,
        time_left: Duration,
        progress: Option<ProgressLine>,
    ) -> Result<ApplyReport, SaltError> {
        let deadline = self.timeout.min(time_left);
        if deadline < MIN_APPLY_TIME {
            return Err(SaltError::NoTime(time_left));
        }
        let _running = match self.running.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::WouldBlock) => return Err(SaltError::Busy),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        };
        let args = self.arguments(state, pillar, test, progress.is_some());
        if self.salt_call.is_dry_run() {
            let shown = if pillar.is_some() {
                &args[..args.len() - usize::from(test) - 1]
            } else {
                &args[..]
            };
            let mut shown = shown.to_vec();
            if pillar.is_some() {
                shown.push("pillar=…".to_owned());
            }
            if test {
                shown.push("test=True".to_owned());
            }
            self.salt_call.output(&shown)?;
            return Ok(ApplyReport { states: Vec::new() });
        }
        let tap = progress.map(progress_lines);
        let out = self
            .salt_call
            .clone()
            .with_deadline(deadline)
            .output_tapped(&args, tap)?;
        match parse_report(&out.stdout) {
            // Exit status 2 is a report with a failed state (--retcode-passthrough).
            Ok(report) if out.status.success() || out.status.code() == Some(2) => Ok(report),
            Ok(_) | Err(SaltError::Output(_)) if !out.status.success() => {
                // The pillar may hold secrets: the logged command line stops before it.
                let logged = args
                    .iter()
                    .position(|a| a.starts_with("pillar="))
                    .unwrap_or(args.len());
                Err(SaltError::Tool(self.salt_call.failure(&args[..logged], &out)))
            }
            other => other,
        }
    }
}

/// Where a state's start or end line goes, as it happens.
pub type ProgressLine = Box<dyn Fn(&str) + Send + Sync>;

/// A tap on salt-call's standard error (its log at `info`) that hands `send` one line per state
/// as it starts and ends: `salt: Running state [ID] at time …`, `salt: Completed state [ID] at
/// time … (duration_in_ms=…)`. Nothing else of the log goes out: the final report already names
/// each state and says how it went, and these lines add only when; the rest of the log (commands
/// with their arguments, rendered files) may hold what the host's pillar keeps secret.
fn progress_lines(send: ProgressLine) -> crate::system::OutputTap {
    let partial = Mutex::new(Vec::<u8>::new());
    crate::system::OutputTap::new(move |pipe, bytes| {
        if pipe != crate::system::Pipe::Stderr {
            return;
        }
        let mut held = partial.lock().unwrap_or_else(PoisonError::into_inner);
        held.extend_from_slice(bytes);
        while let Some(end) = held.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = held.drain(..=end).collect();
            if let Some(message) = state_line(&String::from_utf8_lossy(&line)) {
                send(&format!("salt: {message}\n"));
            }
        }
        // A line longer than any state line is not one: drop it rather than hold it.
        if held.len() > 4096 {
            held.clear();
        }
    })
}

/// The message of a salt-call log line that says a state started or ended.
fn state_line(line: &str) -> Option<&str> {
    let message = line.split_once("] ")?.1.trim_end();
    (message.starts_with("Running state [") || message.starts_with("Completed state [")).then_some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_lines_that_say_a_state_started_or_ended_are_streamed() {
        use std::sync::Arc;
        assert_eq!(
            state_line("[INFO    ] Running state [/bin/sleep 4242] at time 12:00:01.5\n"),
            Some("Running state [/bin/sleep 4242] at time 12:00:01.5")
        );
        assert_eq!(
            state_line("[INFO    ] Completed state [motd] at time 12:00:02 (duration_in_ms=3.1)\n"),
            Some("Completed state [motd] at time 12:00:02 (duration_in_ms=3.1)")
        );
        assert_eq!(
            state_line("[INFO    ] Executing command 'mysql -psecret' in directory '/root'\n"),
            None
        );
        assert_eq!(
            state_line("[INFO    ] Loading fresh modules for state activity\n"),
            None
        );
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let into = Arc::clone(&seen);
        let tap = progress_lines(Box::new(move |l: &str| {
            into.lock().expect("lock").push(l.to_owned())
        }));
        // Lines cut anywhere between reads come out whole.
        let log = "[INFO    ] Running state [a] at time 1\n[INFO    ] Executing command 'x'\n[INFO    ] Completed state [a] at time 2\n";
        let (one, two) = log.split_at(30);
        tap.call(crate::system::Pipe::Stderr, one.as_bytes());
        tap.call(crate::system::Pipe::Stderr, two.as_bytes());
        tap.call(
            crate::system::Pipe::Stdout,
            b"[INFO    ] Running state [stdout] at time 3\n",
        );
        assert_eq!(
            *seen.lock().expect("lock"),
            [
                "salt: Running state [a] at time 1\n",
                "salt: Completed state [a] at time 2\n"
            ]
        );
    }

    fn grant(states: &[&str], keys: &[&str]) -> SaltGrant {
        SaltGrant {
            states: states.iter().map(|s| (*s).to_owned()).collect(),
            pillar_keys: keys.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn name(s: &str) -> StateName {
        s.parse().expect("valid state name")
    }

    #[test]
    fn state_names() {
        for ok in ["motd", "web.nginx", "a-b_c.D9", "x"] {
            assert_eq!(name(ok).as_str(), ok);
        }
        let long = "a".repeat(MAX_STATE_NAME + 1);
        for bad in [
            "",
            ".",
            "web.",
            ".web",
            "web..nginx",
            "-x",
            "web.-x",
            "a b",
            "a,b",
            "a=b",
            "../etc",
            "a/b",
            "é",
            "a\0",
            long.as_str(),
        ] {
            assert!(bad.parse::<StateName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pillars() {
        let p: Pillar = r#"{"port": 8080, "name": "x"}"#.parse().expect("object");
        assert_eq!(p.keys().collect::<Vec<_>>(), ["name", "port"]);
        assert_eq!(p.argument(), r#"pillar={"name":"x","port":8080}"#);
        for bad in ["[1]", "1", "\"s\"", "null", "{", "{\"a\":1} x"] {
            assert!(bad.parse::<Pillar>().is_err(), "{bad:?}");
        }
        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_PILLAR_BYTES));
        let err = big.parse::<Pillar>().expect_err("too big");
        assert!(err.to_string().contains("more than"), "{err}");
    }

    #[test]
    fn grants_bound_states_and_pillar_keys() {
        let g = grant(&["motd", "web.*"], &["port"]);
        assert!(check_grant(&g, &name("motd"), None).is_ok());
        assert!(check_grant(&g, &name("web.nginx"), None).is_ok());
        assert!(check_grant(&g, &name("web.nginx.conf"), None).is_ok());
        for outside in ["web", "webx.nginx", "motd.extra", "users"] {
            let why = check_grant(&g, &name(outside), None).expect_err(outside);
            assert!(why.contains("not in the grant"), "{why}");
        }
        let port: Pillar = r#"{"port": 1}"#.parse().expect("pillar");
        let path: Pillar = r#"{"port": 1, "path": "/etc/shadow"}"#.parse().expect("pillar");
        assert!(check_grant(&g, &name("motd"), Some(&port)).is_ok());
        let why = check_grant(&g, &name("motd"), Some(&path)).expect_err("path");
        assert!(why.contains("\"path\""), "{why}");
        let none = grant(&["motd"], &[]);
        let why = check_grant(&none, &name("motd"), Some(&port)).expect_err("no keys");
        assert_eq!(why, "the grant allows no pillar data");
        assert!(check_grant(&grant(&["*"], &["*"]), &name("any.thing"), Some(&path)).is_ok());
        let why = check_grant(&SaltGrant::default(), &name("motd"), None).expect_err("empty");
        assert_eq!(why, "the grant allows no salt states");
    }

    /// What salt-call 3008.3 printed for a file.managed state that created a file.
    const APPLIED: &str = r#"{"local": {
        "file_|-motd_|-/tmp/x/motd_|-managed": {"name": "/tmp/x/motd", "changes": {"diff": "New file", "mode": "0644"},
            "result": true, "comment": "File /tmp/x/motd updated", "__sls__": "motd", "__run_num__": 1,
            "start_time": "10:00:00.000000", "duration": 5.2, "__id__": "motd"},
        "test_|-hello_|-hello_|-nop": {"name": "hello", "changes": {}, "result": true,
            "comment": "Success!", "__run_num__": 0, "__id__": "hello"}}}"#;

    #[test]
    fn reports_are_read_in_run_order() {
        let report = parse_report(APPLIED).expect("report");
        assert_eq!(
            report.states,
            [
                StateOutcome {
                    id: "test_|-hello_|-hello_|-nop".into(),
                    result: Some(true),
                    changed: false,
                    comment: "Success!".into(),
                },
                StateOutcome {
                    id: "file_|-motd_|-/tmp/x/motd_|-managed".into(),
                    result: Some(true),
                    changed: true,
                    comment: "File /tmp/x/motd updated".into(),
                },
            ]
        );
        assert_eq!(
            (report.changed(), report.failed(), report.succeeded()),
            (1, 0, true)
        );
    }

    #[test]
    fn test_mode_and_failures() {
        let report = parse_report(
            r#"{"local": {"a": {"result": null, "changes": {"newfile": "/x"}, "comment": "would", "__run_num__": 0},
                          "b": {"result": false, "changes": {}, "comment": ["one", "two"], "__run_num__": 1}}}"#,
        )
        .expect("report");
        assert_eq!(report.states[0].result, None);
        assert!(report.states[0].changed);
        assert_eq!(report.states[1].comment, "one\ntwo");
        assert_eq!(
            (report.changed(), report.failed(), report.succeeded()),
            (1, 1, false)
        );
    }

    #[test]
    fn refusals_and_garbage() {
        let err = parse_report(r#"{"local": ["No matching sls found for 'nope' in env 'base'"]}"#)
            .expect_err("refused");
        assert!(
            matches!(&err, SaltError::Refused(m) if m[0].contains("No matching sls")),
            "{err:?}"
        );
        for garbage in [
            "",
            "not json",
            "[]",
            r#"{"other": {}}"#,
            r#"{"local": 3}"#,
            r#"{"local": {"a": 1}}"#,
            r#"{"local": {"a": {"result": "yes"}}}"#,
        ] {
            let err = parse_report(garbage).expect_err(garbage);
            assert!(matches!(err, SaltError::Output(_)), "{garbage}: {err:?}");
        }
    }

    #[test]
    fn arguments_never_leave_room_for_options() {
        let salt = Salt {
            salt_call: Tool::new("/usr/bin/salt-call").expect("absolute"),
            config_dir: PathBuf::from("/etc/salt"),
            timeout: Duration::from_secs(300),
            running: Mutex::new(()),
        };
        let pillar: Pillar = r#"{"port": 80}"#.parse().expect("pillar");
        let args = salt.arguments(&name("web.nginx"), Some(&pillar), true, false);
        assert_eq!(
            args[args.len() - 4..],
            ["state.apply", "web.nginx", r#"pillar={"port":80}"#, "test=True"]
        );
        let err = salt
            .apply(&name("motd"), None, false, Duration::from_secs(1), None)
            .expect_err("too little time");
        assert!(matches!(err, SaltError::NoTime(_)), "{err:?}");
    }

    // --- properties of the grant check -------------------------------------------------------
    //
    // Generated state names (from a few parts, `web` and its look-alikes among them), grants
    // (exact names, `PREFIX.*`, `*`, and patterns a policy author might mistype) and pillars;
    // the check must agree with a model that compares dot-separated parts.

    use proptest::prelude::*;

    /// Cases per property.
    const SALT_CASES: u32 = 4096;

    fn part() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "web", "webx", "web-1", "we", "a", "nginx", "conf", "x_y", "Web",
        ])
        .prop_map(str::to_owned)
    }

    fn state() -> impl Strategy<Value = String> {
        prop::collection::vec(part(), 1..=4).prop_map(|parts| parts.join("."))
    }

    /// A `states` entry: mostly derived from `near` (itself, an ancestor or look-alike with
    /// `.*`, itself with `.*`), otherwise any name, `*`, or a malformed pattern.
    fn pattern(near: String) -> impl Strategy<Value = String> {
        let parts: Vec<String> = near.split('.').map(str::to_owned).collect();
        let n = parts.len();
        prop_oneof![
            2 => Just(near.clone()),
            3 => (1..=n).prop_map(move |k| format!("{}.*", parts[..k].join("."))),
            1 => Just(format!("{near}x.*")),
            1 => Just(format!("{}.*", &near[..near.len() - 1])),
            2 => state(),
            2 => state().prop_map(|s| format!("{s}.*")),
            1 => Just("*".to_owned()),
            1 => prop::sample::select(vec![
                "web*", "*.web", "*.*", ".*", "", "web.", "WEB.*", "web.*.*", "* ", " *", "web.**", "**",
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["motd_text", "port", "path", "*", "a", "A", ""]).prop_map(str::to_owned)
    }

    /// A state, a grant near it, and maybe a pillar.
    fn salt_case() -> impl Strategy<Value = (String, SaltGrant, Option<Vec<String>>)> {
        state().prop_flat_map(|s| {
            (
                Just(s.clone()),
                prop::collection::vec(pattern(s), 0..4),
                prop::collection::vec(key(), 0..3),
                prop::option::of(prop::collection::vec(key(), 0..3)),
            )
                .prop_map(|(s, states, pillar_keys, pillar)| (s, SaltGrant { states, pillar_keys }, pillar))
        })
    }

    fn pillar_of(keys: &[String]) -> Pillar {
        let map: Map<String, Json> = keys.iter().map(|k| (k.clone(), Json::from(1))).collect();
        Json::Object(map).to_string().parse().expect("an object")
    }

    /// The model: `*` is any state, `P.*` any state whose parts start with all of P's and have
    /// more, anything else exactly that state.
    fn model_covers(pattern: &str, state: &str) -> bool {
        let s: Vec<&str> = state.split('.').collect();
        match pattern.strip_suffix(".*") {
            _ if pattern == "*" => true,
            Some(prefix) => {
                let p: Vec<&str> = prefix.split('.').collect();
                s.len() > p.len() && s[..p.len()] == p[..]
            }
            None => pattern == state,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(SALT_CASES))]

        /// The check admits a state and pillar exactly when a pattern covers the state and
        /// every pillar key is granted (or `*` is): never a state or a key outside the grant.
        #[test]
        fn check_grant_admits_exactly_the_granted_states_and_keys((s, g, keys) in salt_case()) {
            let pillar = keys.as_deref().map(pillar_of);
            let verdict = check_grant(&g, &name(&s), pillar.as_ref());
            let covered = g.states.iter().any(|p| model_covers(p, &s));
            let any_key = g.pillar_keys.iter().any(|k| k == "*");
            let keys_ok = pillar
                .as_ref()
                .is_none_or(|p| any_key || p.keys().all(|k| g.pillar_keys.iter().any(|gk| gk == k)));
            prop_assert_eq!(verdict.is_ok(), covered && keys_ok, "{:?} for {} with {:?}", verdict, s, keys);
            if verdict.is_ok() && !g.states.iter().any(|p| p == "*" || *p == s) {
                // Admitted by a `P.*`: strictly below P, never P itself or a look-alike.
                let below = g.states.iter().any(|p| {
                    p.strip_suffix(".*")
                        .is_some_and(|prefix| s.starts_with(&format!("{prefix}.")))
                });
                prop_assert!(below);
            }
        }

        /// `P.*` admits what is below P and nothing beside it: not P, not `Px`, not `Px.y`,
        /// not `P-1.y`; `*` admits every state.
        #[test]
        fn a_prefix_pattern_never_admits_its_siblings(p in state(), below in part()) {
            let g = grant(&[&format!("{p}.*")], &[]);
            let inside = format!("{p}.{below}");
            prop_assert!(check_grant(&g, &name(&inside), None).is_ok());
            for beside in [p.clone(), format!("{p}x"), format!("{p}x.{below}"), format!("{p}-1.{below}"), format!("{p}_.{below}")] {
                prop_assert!(check_grant(&g, &name(&beside), None).is_err(), "{} admitted {}", p, beside);
            }
            prop_assert!(check_grant(&grant(&["*"], &[]), &name(&p), None).is_ok());
        }
    }
}
