//! The host side of `wit/sesame.wit`: what a command module can call.
//!
//! Each interface is linked only when the module's cluster grants it (see
//! [`crate::sandbox`]), and every call checks the request's [`Grant`] before anything happens.
//! Calls are counted and recorded in the [`CallContext`] so the runner can report and audit them.
//!
//! The firewall, salt and users back ends are not part of this release yet: their calls are
//! refused with `denied`, so a module written against the full interface already links and
//! handles the refusal like any policy refusal.

use crate::policy::Grant;

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        world: "command",
        path: "../wit",
    });
}

pub use bindings::sesame::host::types::{HostError, Invocation};
use bindings::sesame::host::{firewall, log, salt, types, users};

/// Host calls one request may make before further calls are refused.
pub const MAX_HOST_CALLS: u32 = 1_000;
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
    /// Messages the module logged (level, text).
    pub log: Vec<(LogLevel, String)>,
    /// Host calls refused, with why.
    pub denied: Vec<String>,
    /// Host calls made (allowed or not).
    pub host_calls: u32,
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
            log: Vec::new(),
            denied: Vec::new(),
            host_calls: 0,
        }
    }

    /// Counts a host call; refuses it past [`MAX_HOST_CALLS`].
    fn enter(&mut self, what: &str) -> Result<(), HostError> {
        self.host_calls = self.host_calls.saturating_add(1);
        if self.host_calls > MAX_HOST_CALLS {
            return Err(self.deny(format!(
                "{what}: more than {MAX_HOST_CALLS} host calls in one request"
            )));
        }
        Ok(())
    }

    fn deny(&mut self, why: String) -> HostError {
        if self.denied.len() < 32 {
            self.denied.push(why.clone());
        }
        HostError::Denied(why)
    }

    /// A call to a back end this daemon does not provide yet.
    fn unavailable(&mut self, call: &str) -> HostError {
        if let Err(e) = self.enter(call) {
            return e;
        }
        self.deny(format!("{call}: this host provides no back end for it yet"))
    }

    fn push_log(&mut self, level: LogLevel, mut msg: String) {
        if self.log.len() >= MAX_LOG_LINES {
            return;
        }
        if msg.len() > MAX_LOG_MESSAGE {
            let mut cut = MAX_LOG_MESSAGE;
            while !msg.is_char_boundary(cut) {
                cut -= 1;
            }
            msg.truncate(cut);
            msg.push('…');
        }
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

impl types::Host for CallContext {}

impl log::Host for CallContext {
    fn info(&mut self, msg: String) {
        if self.enter("log.info").is_ok() {
            self.push_log(LogLevel::Info, msg);
        }
    }

    fn warn(&mut self, msg: String) {
        if self.enter("log.warn").is_ok() {
            self.push_log(LogLevel::Warn, msg);
        }
    }
}

impl firewall::Host for CallContext {
    fn allow(&mut self, _r: firewall::Rule) -> Result<String, HostError> {
        Err(self.unavailable("firewall.allow"))
    }

    fn revoke(&mut self, _grant_id: String) -> Result<(), HostError> {
        Err(self.unavailable("firewall.revoke"))
    }

    fn list(&mut self) -> Result<Vec<firewall::Grant>, HostError> {
        Err(self.unavailable("firewall.list"))
    }
}

impl salt::Host for CallContext {
    fn apply(
        &mut self,
        _state: String,
        _pillar: Option<String>,
        _test: bool,
    ) -> Result<salt::ApplyReport, HostError> {
        Err(self.unavailable("salt.apply"))
    }
}

impl users::Host for CallContext {
    fn create(&mut self, _user: users::NewUser) -> Result<(), HostError> {
        Err(self.unavailable("users.create"))
    }

    fn lock(&mut self, _name: String) -> Result<(), HostError> {
        Err(self.unavailable("users.lock"))
    }

    fn unlock(&mut self, _name: String) -> Result<(), HostError> {
        Err(self.unavailable("users.unlock"))
    }

    fn remove(&mut self, _name: String) -> Result<(), HostError> {
        Err(self.unavailable("users.remove"))
    }

    fn add_key(&mut self, _name: String, _key: String) -> Result<bool, HostError> {
        Err(self.unavailable("users.add-key"))
    }

    fn remove_key(&mut self, _name: String, _key: String) -> Result<bool, HostError> {
        Err(self.unavailable("users.remove-key"))
    }

    fn add_to_group(&mut self, _name: String, _group: String) -> Result<(), HostError> {
        Err(self.unavailable("users.add-to-group"))
    }

    fn remove_from_group(&mut self, _name: String, _group: String) -> Result<(), HostError> {
        Err(self.unavailable("users.remove-from-group"))
    }

    fn list(&mut self) -> Result<Vec<users::Account>, HostError> {
        Err(self.unavailable("users.list"))
    }
}
