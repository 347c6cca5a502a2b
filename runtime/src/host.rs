//! The host side of `wit/sesame.wit`: what a command module can call.
//!
//! Each interface is linked only when the module's cluster grants it (see
//! [`crate::sandbox`]), and every call checks the request's [`Grant`] before anything happens.
//! Calls are counted and recorded in the [`CallContext`] so the runner can report and audit them.
//!
//! This file holds what every interface shares (the call context, `types` and `log`); each
//! capability's interface is served from its folder in [`crate::capability`].

use std::net::IpAddr;

use crate::capability::Services;
use crate::policy::Grant;

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        world: "command",
        path: "../wit",
        // Every import may trap: a module past its host-call budget is stopped, not just
        // refused (a refusal it could ignore and loop on).
        imports: { default: trappable },
        trappable_error_type: {
            "sesame:host/types.host-error" => super::HostFault,
        },
    });
}

pub use bindings::sesame::host::types::{HostError, Invocation};
use bindings::sesame::host::{log, types};

/// Host calls one request may make unless the configuration or the grant says otherwise.
pub const DEFAULT_MAX_HOST_CALLS: u32 = 1_000;
/// Log messages kept per request; longer messages are cut at [`MAX_LOG_MESSAGE`] bytes.
pub const MAX_LOG_LINES: usize = 100;
/// The longest log message kept.
pub const MAX_LOG_MESSAGE: usize = 1024;

/// What one request's module did through the host interfaces.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The request id, for the daemon log.
    pub request_id: String,
    /// The grant the policy issued for this request.
    pub grant: Grant,
    /// The enrolled name of the calling client.
    pub client: String,
    /// The key that sealed the request: firewall openings are held by the client this key
    /// speaks for, never by a name.
    pub client_key: Option<sesame_proto::PublicKey>,
    /// The caller's address as the transport observed it (`"caller"` in a firewall grant).
    pub source_ip: Option<IpAddr>,
    /// The capabilities' services this host runs (live, or dry runs for `sesamed module run`).
    pub services: Services,
    /// Changes made on the host (accounts, keys, groups), for the audit record.
    pub effects: Vec<String>,
    /// Messages the module logged (level, text).
    pub log: Vec<(LogLevel, String)>,
    /// Host calls refused, with why.
    pub denied: Vec<String>,
    /// Host calls whose system tool failed (the module sees `failed`).
    pub tool_failures: u32,
    /// Host calls made (allowed or not).
    pub host_calls: u32,
    /// Host calls allowed; the call after the last one stops the module (3004).
    pub max_host_calls: u32,
    /// The module made more than [`CallContext::max_host_calls`] calls and was stopped.
    pub flooded: bool,
    /// Every host call's name, in order, when tracing (`sesamed module run`).
    pub trace: Option<Vec<String>>,
    /// Where the request's output goes as it comes, when its client asked for it.
    pub progress: Option<crate::progress::ProgressSink>,
    /// Streaming would have taken the request past its output limit: it was stopped.
    pub streamed_over: Option<crate::progress::OverLimit>,
    /// The switch the request's client sets to stop it ([`crate::deadline`]).
    pub cancel: Option<std::sync::Arc<crate::deadline::Cancel>>,
}

/// Why a host call did not return a value: an error the module sees, or a trap that ends it.
#[derive(Debug)]
pub enum HostFault {
    /// Returned to the module as the WIT `host-error`.
    Error(HostError),
    /// Ends the run (the module exceeded its host-call budget).
    Trap(wasmtime::Error),
}

impl From<HostError> for HostFault {
    fn from(e: HostError) -> Self {
        HostFault::Error(e)
    }
}

/// The level of a module's log message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// `log.info`.
    Info,
    /// `log.warn`.
    Warn,
}

impl CallContext {
    /// A context for one request.
    pub fn new(request_id: String, grant: Grant) -> Self {
        Self {
            request_id,
            grant,
            client: String::new(),
            client_key: None,
            source_ip: None,
            services: Services::default(),
            effects: Vec::new(),
            log: Vec::new(),
            denied: Vec::new(),
            tool_failures: 0,
            host_calls: 0,
            max_host_calls: DEFAULT_MAX_HOST_CALLS,
            flooded: false,
            trace: None,
            progress: None,
            streamed_over: None,
            cancel: None,
        }
    }

    /// The same context streaming the request's output to `sink` as it comes.
    #[must_use]
    pub fn with_progress(mut self, sink: Option<crate::progress::ProgressSink>) -> Self {
        self.progress = sink;
        self
    }

    /// The same context, stopped when `cancel` is set.
    #[must_use]
    pub fn with_cancel(mut self, cancel: std::sync::Arc<crate::deadline::Cancel>) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Streams `text` to the client when it asked for the output as it comes; past the
    /// request's output limit, the module is stopped (3003, as for any output past it).
    pub(crate) fn stream(
        &mut self,
        source: sesame_proto::ProgressSource,
        text: &str,
    ) -> Result<(), HostFault> {
        let Some(sink) = &self.progress else {
            return Ok(());
        };
        match sink.emit(source, text) {
            Ok(()) => Ok(()),
            Err(over) => {
                self.streamed_over = Some(over);
                Err(HostFault::Trap(wasmtime::Error::msg(format!(
                    "streamed output of {} bytes exceeds the limit of {} bytes",
                    over.len, over.limit
                ))))
            }
        }
    }

    /// The same context recording every host call's name in [`CallContext::trace`].
    #[must_use]
    pub fn with_trace(mut self) -> Self {
        self.trace = Some(Vec::new());
        self
    }

    /// The same context acting for `client`, seen at `source_ip`.
    #[must_use]
    pub fn with_caller(mut self, client: String, source_ip: Option<IpAddr>) -> Self {
        self.client = client;
        self.source_ip = source_ip.map(|ip| ip.to_canonical());
        self
    }

    /// The same context for a request sealed by `key` (firewall openings are held by it).
    #[must_use]
    pub fn with_client_key(mut self, key: sesame_proto::PublicKey) -> Self {
        self.client_key = Some(key);
        self
    }

    /// The same context with the capabilities' services to serve their calls.
    #[must_use]
    pub fn with_services(mut self, services: Services) -> Self {
        self.services = services;
        self
    }

    /// Counts a host call; past [`CallContext::max_host_calls`], or past the request's deadline,
    /// the module is stopped.
    pub(crate) fn enter(&mut self, what: &str) -> Result<(), HostFault> {
        self.host_calls = self.host_calls.saturating_add(1);
        self.check_time()?;
        if let Some(trace) = &mut self.trace
            && trace.len() < MAX_LOG_LINES
        {
            trace.push(what.to_owned());
        }
        if self.host_calls > self.max_host_calls {
            self.flooded = true;
            let why = format!(
                "{what}: more than {} host calls in one request",
                self.max_host_calls
            );
            let _ = self.deny(why.clone());
            return Err(HostFault::Trap(wasmtime::Error::msg(why)));
        }
        Ok(())
    }

    /// Stops the module once the request's deadline has passed or its client cancelled it: a
    /// host call that waited until then (a tool killed at the deadline or at the cancel, a lock
    /// never free) ends the run with 3002 or 3008 rather than handing the module an error it
    /// could retry on.
    pub(crate) fn check_time(&self) -> Result<(), HostFault> {
        crate::deadline::check().map_err(|stopped| HostFault::Trap(wasmtime::Error::new(stopped)))
    }

    /// Refuses a call: the module sees `denied`, and the audit record says why.
    pub(crate) fn deny(&mut self, why: String) -> HostFault {
        if self.denied.len() < 32 {
            self.denied.push(why.clone());
        }
        HostFault::Error(HostError::Denied(why))
    }

    /// A host call whose system tool failed; the module sees `message` (or the run stops, when
    /// the tool failed because the request's time ran out).
    pub(crate) fn failed(&mut self, message: String) -> HostFault {
        if let Err(stop) = self.check_time() {
            return stop;
        }
        self.tool_failures = self.tool_failures.saturating_add(1);
        HostFault::Error(HostError::Failed(message))
    }

    fn push_log(&mut self, level: LogLevel, mut msg: String) {
        if self.log.len() >= MAX_LOG_LINES {
            return;
        }
        truncate(&mut msg, MAX_LOG_MESSAGE);
        tracing::info!(request = %self.request_id, level = ?level, "module: {msg}");
        self.log.push((level, msg));
    }
}

/// The [`HasData`](wasmtime::component::HasData) marker that links the host interfaces to a
/// store's [`CallContext`].
#[derive(Debug)]
pub struct HostCalls;

impl wasmtime::component::HasData for HostCalls {
    type Data<'a> = &'a mut CallContext;
}

impl types::Host for CallContext {
    fn convert_host_error(&mut self, fault: HostFault) -> wasmtime::Result<HostError> {
        match fault {
            HostFault::Error(e) => Ok(e),
            HostFault::Trap(trap) => Err(trap),
        }
    }
}

impl log::Host for CallContext {
    fn info(&mut self, msg: String) -> wasmtime::Result<()> {
        self.log_call("log.info", LogLevel::Info, msg)
    }

    fn warn(&mut self, msg: String) -> wasmtime::Result<()> {
        self.log_call("log.warn", LogLevel::Warn, msg)
    }
}

impl CallContext {
    fn log_call(&mut self, call: &str, level: LogLevel, msg: String) -> wasmtime::Result<()> {
        let streamed = self.enter(call).and_then(|()| {
            let line = match level {
                LogLevel::Info => format!("{msg}\n"),
                LogLevel::Warn => format!("warning: {msg}\n"),
            };
            self.stream(sesame_proto::ProgressSource::Log, &line)
        });
        match streamed {
            Ok(()) => {
                self.push_log(level, msg);
                Ok(())
            }
            Err(HostFault::Trap(trap)) => Err(trap),
            Err(HostFault::Error(_)) => Ok(()),
        }
    }
}

/// Cuts `msg` to at most `max` bytes (on a character boundary), marking the cut with `…`.
pub(crate) fn truncate(msg: &mut String, max: usize) {
    if msg.len() > max {
        let mut cut = max;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
        msg.push('…');
    }
}

impl CallContext {
    /// Records a change made on the host, for the request's audit record.
    pub(crate) fn effect(&mut self, what: String) {
        tracing::info!(request = %self.request_id, client = %self.client, "{what}");
        if self.effects.len() < MAX_LOG_LINES {
            self.effects.push(what);
        }
    }
}
