//! Unit tests for a module's [`Command::run`] on the host: a scripted fake of the daemon's host
//! functions, and [`Invocation`]s made to order.
//!
//! ```
//! use sesame_guest::firewall::{self, Proto, Rule};
//! use sesame_guest::testing::{Call, FakeHost, LogLine, invocation};
//! use sesame_guest::{Command, HostError, Invocation};
//!
//! struct Ssh;
//! impl Command for Ssh {
//!     fn run(inv: Invocation) -> Result<String, String> {
//!         let source = inv.source_ip.ok_or("no source address")?;
//!         let rule = Rule { source, port: 22, proto: Proto::Tcp, ttl_secs: 60 };
//!         let id = firewall::allow(&rule)?;
//!         sesame_guest::log::info(&format!("opened ssh for {}", inv.client));
//!         Ok(id)
//!     }
//! }
//!
//! let inv = invocation("alice", &[]).with_source_ip("203.0.113.5");
//! let run = FakeHost::new()
//!     .firewall_allow(|_rule| Ok("fw-1".into()))
//!     .run::<Ssh>(inv.clone());
//! assert_eq!(run.output, Ok("fw-1".into()));
//! assert_eq!(
//!     run.calls,
//!     [Call::FirewallAllow(Rule { source: "203.0.113.5".into(), port: 22, proto: Proto::Tcp, ttl_secs: 60 })]
//! );
//! assert_eq!(run.logs, [LogLine::info("opened ssh for alice")]);
//!
//! // Nothing scripted: every host function denies, as a daemon without the grant would.
//! let run = FakeHost::new().run::<Ssh>(inv);
//! assert_eq!(run.output, Err("denied: not scripted in this test: firewall.allow".into()));
//! assert_eq!(run.calls.len(), 1);
//! assert!(run.logs.is_empty());
//! ```
//!
//! # How it works, and where it exists
//!
//! This module exists on every target except WebAssembly (`cfg(not(target_family = "wasm"))`),
//! which is where a module's `cargo test` runs. On those targets the wrappers in
//! [`firewall`](crate::firewall), [`salt`](crate::salt), [`users`](crate::users),
//! [`exec`](crate::exec), [`hostkeys`](crate::hostkeys), [`grants`](crate::grants) and
//! [`log`](crate::log) call a
//! per-thread fake host instead of the WIT imports (which the generated bindings could only stub
//! with a panic there). A [`FakeHost`] is in charge on its
//! thread while [`FakeHost::run`] or [`FakeHost::scope`] runs; it answers each host function with
//! the closure a test scripted for it, or with [`HostError::Denied`]`("not scripted in this
//! test: firewall.allow")` when there is none, and records every call and log line. Outside
//! those, host functions deny (`no fake host on this thread: ...`) and log lines are dropped.
//! Tests run on threads of their own, so they cannot see each other's hosts.
//!
//! It is a target condition rather than a cargo feature so that a module crate needs nothing
//! in its manifest to test itself, and so that a feature left on can never reach a real module:
//! for `wasm32-wasip2` none of this is compiled, and the wrappers call the imports directly.

mod calls;
pub(crate) mod fake;

pub use calls::{Call, LogLevel, LogLine};

use std::fmt;

use crate::exec::RunOutput;
use crate::firewall::{Grant, Rule};
use crate::grants::Held;
use crate::hostkeys::HostKey;
use crate::salt::ApplyReport;
use crate::users::{Account, NewUser};
use crate::{Command, HostError, Invocation};

/// The request id of an [`invocation`] (32 hex digits, as the daemon makes them).
pub const REQUEST_ID: &str = "00000000000000000000000000000001";

/// An invocation from `client` with `args`, for cluster `test` and command `test`, request id
/// [`REQUEST_ID`], no groups and no source address (as over SQS); the `with_` methods change
/// those:
///
/// ```
/// # use sesame_guest::testing::invocation;
/// let inv = invocation("alice", &["22", "--ttl", "60"])
///     .with_groups(&["ops"])
///     .with_source_ip("203.0.113.5")
///     .with_cluster("access")
///     .with_command("allow");
/// assert_eq!(inv.args().positional(0), Some("22"));
/// assert_eq!(inv.groups, ["ops"]);
/// ```
pub fn invocation(client: &str, args: &[&str]) -> Invocation {
    Invocation {
        id: REQUEST_ID.to_owned(),
        cluster: "test".to_owned(),
        command: "test".to_owned(),
        args: strings(args),
        client: client.to_owned(),
        groups: Vec::new(),
        source_ip: None,
    }
}

/// Builders for tests (non-wasm targets only, with [`testing`](crate::testing)).
impl Invocation {
    /// Sets the request id.
    #[must_use]
    pub fn with_id(self, id: &str) -> Self {
        Self {
            id: id.to_owned(),
            ..self
        }
    }

    /// Sets the cluster the request named.
    #[must_use]
    pub fn with_cluster(self, cluster: &str) -> Self {
        Self {
            cluster: cluster.to_owned(),
            ..self
        }
    }

    /// Sets the command name within the cluster.
    #[must_use]
    pub fn with_command(self, command: &str) -> Self {
        Self {
            command: command.to_owned(),
            ..self
        }
    }

    /// Sets the client's groups.
    #[must_use]
    pub fn with_groups(self, groups: &[&str]) -> Self {
        Self {
            groups: strings(groups),
            ..self
        }
    }

    /// Sets the source address the transport saw, as a QUIC request has.
    #[must_use]
    pub fn with_source_ip(self, source_ip: &str) -> Self {
        Self {
            source_ip: Some(source_ip.to_owned()),
            ..self
        }
    }
}

/// A scripted stand-in for the daemon's host functions.
///
/// Script an answer for each function the test expects to be called: a closure that gets the
/// call's arguments and returns what the host would. Scripting a function again replaces its
/// answer. A closure may keep state (a counter, a queue of answers) since it is `FnMut`; it
/// must own what it captures (`move`), because it outlives the test's stack frame in the
/// thread's fake host. Functions left unscripted answer [`HostError::Denied`].
///
/// ```
/// use std::collections::VecDeque;
///
/// use sesame_guest::firewall::{self, Proto, Rule};
/// use sesame_guest::testing::FakeHost;
/// use sesame_guest::{HostError, users};
///
/// // A queue of canned answers, then a denial.
/// let mut answers = VecDeque::from([Err(HostError::Failed("ufw exited 1".into())), Ok("fw-2".into())]);
/// let host = FakeHost::new()
///     .firewall_allow(move |_rule| {
///         answers.pop_front().unwrap_or_else(|| Err(HostError::Denied("asked too often".into())))
///     })
///     // An answer computed from the arguments.
///     .users_add_key(|name, _key| Ok(name != "root"));
///
/// let rule = Rule { source: "203.0.113.5".into(), port: 22, proto: Proto::Tcp, ttl_secs: 60 };
/// let run = host.scope(|| {
///     let answers: Vec<_> = (0..3).map(|_| firewall::allow(&rule)).collect();
///     (answers, users::add_key("dave", "ssh-ed25519 AAAA"))
/// });
/// assert_eq!(
///     run.output.0,
///     [
///         Err(HostError::Failed("ufw exited 1".into())),
///         Ok("fw-2".into()),
///         Err(HostError::Denied("asked too often".into())),
///     ]
/// );
/// assert_eq!(run.output.1, Ok(true));
/// assert_eq!(run.calls.len(), 4);
/// ```
#[derive(Default)]
#[must_use = "a FakeHost does nothing until FakeHost::run or FakeHost::scope"]
pub struct FakeHost {
    script: fake::Script,
}

impl FakeHost {
    /// A host that answers every call with [`HostError::Denied`] until scripted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `C::run(inv)` with this host in charge of the thread, and returns its result with
    /// the calls and log lines the host recorded.
    pub fn run<C: Command>(self, inv: Invocation) -> Run {
        self.scope(|| C::run(inv))
    }

    /// Calls `f` with this host in charge of the thread (for code below [`Command::run`], such
    /// as a helper taking a host function), and returns what `f` returned with the calls and log
    /// lines the host recorded. Scopes nest: the innermost host answers.
    pub fn scope<T>(self, f: impl FnOnce() -> T) -> Run<T> {
        let (output, calls, logs) = fake::scope(self.script, f);
        Run { output, calls, logs }
    }

    /// Scripts [`firewall::allow`](crate::firewall::allow): gets the rule, returns the grant id.
    pub fn firewall_allow(mut self, f: impl FnMut(&Rule) -> Result<String, HostError> + 'static) -> Self {
        self.script.firewall_allow = Some(Box::new(f));
        self
    }

    /// Scripts [`firewall::revoke`](crate::firewall::revoke): gets the grant id.
    pub fn firewall_revoke(mut self, f: impl FnMut(&str) -> Result<(), HostError> + 'static) -> Self {
        self.script.firewall_revoke = Some(Box::new(f));
        self
    }

    /// Scripts [`firewall::list`](crate::firewall::list): returns the caller's live grants.
    pub fn firewall_list(mut self, f: impl FnMut() -> Result<Vec<Grant>, HostError> + 'static) -> Self {
        self.script.firewall_list = Some(Box::new(f));
        self
    }

    /// Scripts [`salt::apply`](crate::salt::apply): gets the state, the pillar JSON and the test
    /// switch, returns the report.
    pub fn salt_apply(
        mut self,
        f: impl FnMut(&str, Option<&str>, bool) -> Result<ApplyReport, HostError> + 'static,
    ) -> Self {
        self.script.salt_apply = Some(Box::new(f));
        self
    }

    /// Scripts [`users::create`](crate::users::create): gets the account to create.
    pub fn users_create(mut self, f: impl FnMut(&NewUser) -> Result<(), HostError> + 'static) -> Self {
        self.script.users_create = Some(Box::new(f));
        self
    }

    /// Scripts [`users::create_temporary`](crate::users::create_temporary): gets the account
    /// asked for and the ttl, returns when it ends (Unix ms).
    pub fn users_create_temporary(
        mut self,
        f: impl FnMut(&NewUser, u32) -> Result<u64, HostError> + 'static,
    ) -> Self {
        self.script.users_create_temporary = Some(Box::new(f));
        self
    }

    /// Scripts [`users::lock`](crate::users::lock): gets the account name.
    pub fn users_lock(mut self, f: impl FnMut(&str) -> Result<(), HostError> + 'static) -> Self {
        self.script.users_lock = Some(Box::new(f));
        self
    }

    /// Scripts [`users::unlock`](crate::users::unlock): gets the account name.
    pub fn users_unlock(mut self, f: impl FnMut(&str) -> Result<(), HostError> + 'static) -> Self {
        self.script.users_unlock = Some(Box::new(f));
        self
    }

    /// Scripts [`users::remove`](crate::users::remove): gets the account name.
    pub fn users_remove(mut self, f: impl FnMut(&str) -> Result<(), HostError> + 'static) -> Self {
        self.script.users_remove = Some(Box::new(f));
        self
    }

    /// Scripts [`users::add_key`](crate::users::add_key): gets the account name and key line,
    /// returns `false` when the key was there already.
    pub fn users_add_key(mut self, f: impl FnMut(&str, &str) -> Result<bool, HostError> + 'static) -> Self {
        self.script.users_add_key = Some(Box::new(f));
        self
    }

    /// Scripts [`users::add_temporary_key`](crate::users::add_temporary_key): gets the account
    /// name, key line and ttl, returns when the key expires (Unix ms).
    pub fn users_add_temporary_key(
        mut self,
        f: impl FnMut(&str, &str, u32) -> Result<u64, HostError> + 'static,
    ) -> Self {
        self.script.users_add_temporary_key = Some(Box::new(f));
        self
    }

    /// Scripts [`users::add_temporary_membership`](crate::users::add_temporary_membership): gets
    /// the account name, group and ttl, returns when the membership ends (Unix ms).
    pub fn users_add_temporary_membership(
        mut self,
        f: impl FnMut(&str, &str, u32) -> Result<u64, HostError> + 'static,
    ) -> Self {
        self.script.users_add_temporary_membership = Some(Box::new(f));
        self
    }

    /// Scripts [`users::remove_key`](crate::users::remove_key): gets the account name and key
    /// line, returns `false` when the key was absent.
    pub fn users_remove_key(
        mut self,
        f: impl FnMut(&str, &str) -> Result<bool, HostError> + 'static,
    ) -> Self {
        self.script.users_remove_key = Some(Box::new(f));
        self
    }

    /// Scripts [`users::add_to_group`](crate::users::add_to_group): gets the account and group.
    pub fn users_add_to_group(
        mut self,
        f: impl FnMut(&str, &str) -> Result<(), HostError> + 'static,
    ) -> Self {
        self.script.users_add_to_group = Some(Box::new(f));
        self
    }

    /// Scripts [`users::remove_from_group`](crate::users::remove_from_group): gets the account
    /// and group.
    pub fn users_remove_from_group(
        mut self,
        f: impl FnMut(&str, &str) -> Result<(), HostError> + 'static,
    ) -> Self {
        self.script.users_remove_from_group = Some(Box::new(f));
        self
    }

    /// Scripts [`users::list`](crate::users::list): returns the accounts the request may see.
    pub fn users_list(mut self, f: impl FnMut() -> Result<Vec<Account>, HostError> + 'static) -> Self {
        self.script.users_list = Some(Box::new(f));
        self
    }

    /// Scripts [`exec::run`](crate::exec::run): gets the program's name and the parameters as
    /// given (name and value pairs, in order), returns how the run ended.
    pub fn exec_run(
        mut self,
        f: impl FnMut(&str, &[(String, String)]) -> Result<RunOutput, HostError> + 'static,
    ) -> Self {
        self.script.exec_run = Some(Box::new(f));
        self
    }

    /// Scripts [`hostkeys::list`](crate::hostkeys::list): returns the host's SSH host public
    /// keys.
    pub fn hostkeys_list(mut self, f: impl FnMut() -> Result<Vec<HostKey>, HostError> + 'static) -> Self {
        self.script.hostkeys_list = Some(Box::new(f));
        self
    }

    /// Scripts [`grants::list`](crate::grants::list): returns the caller's live grants of every
    /// kind.
    pub fn grants_list(mut self, f: impl FnMut() -> Result<Vec<Held>, HostError> + 'static) -> Self {
        self.script.grants_list = Some(Box::new(f));
        self
    }

    /// Scripts [`grants::revoke`](crate::grants::revoke): gets the grant id.
    pub fn grants_revoke(mut self, f: impl FnMut(&str) -> Result<(), HostError> + 'static) -> Self {
        self.script.grants_revoke = Some(Box::new(f));
        self
    }
}

impl fmt::Debug for FakeHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeHost")
            .field("scripted", &self.script.scripted())
            .finish()
    }
}

/// What a [`FakeHost::run`] or [`FakeHost::scope`] saw: the code's result, and what it asked of
/// the host, in order.
#[derive(Debug)]
#[non_exhaustive]
pub struct Run<T = Result<String, String>> {
    /// What the code returned: for [`FakeHost::run`], the output or error the client would get.
    pub output: T,
    /// The host functions called, in order, including those answered with an error.
    pub calls: Vec<Call>,
    /// The log lines, in order.
    pub logs: Vec<LogLine>,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(test)]
mod tests;
