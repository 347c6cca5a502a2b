//! The host side of `wit/sesame.wit`: what a command module can call.
//!
//! Each interface is linked only when the module's cluster grants it (see
//! [`crate::sandbox`]), and every call checks the request's [`Grant`] before anything happens.
//! Calls are counted and recorded in the [`CallContext`] so the runner can report and audit them.
//!
//! The firewall interface is served by [`crate::firewall::Firewall`], the users interface by
//! [`crate::users::Users`] and the salt interface by [`crate::salt::Salt`].

use std::net::IpAddr;
use std::sync::Arc;

use crate::firewall::{self as fw, Firewall, FirewallError, GrantId, Revoker};
use crate::policy::Grant;
use crate::salt::{Pillar, Salt, SaltError, StateName};
use crate::users::{
    Comment, GroupName, InvalidArg as UsersArgError, Shell, SshKey, UserName, Users, UsersError,
};

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
use bindings::sesame::host::{firewall, log, salt, types, users};

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
    /// The firewall service, when this host has one.
    pub firewall: Option<Arc<Firewall>>,
    /// The accounts service, when this host manages accounts.
    pub users: Option<Arc<Users>>,
    /// salt-call, when this host applies Salt states.
    pub salt: Option<Arc<Salt>>,
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
            firewall: None,
            users: None,
            salt: None,
            effects: Vec::new(),
            log: Vec::new(),
            denied: Vec::new(),
            tool_failures: 0,
            host_calls: 0,
            max_host_calls: DEFAULT_MAX_HOST_CALLS,
            flooded: false,
            trace: None,
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

    /// The same context with a firewall service to serve `firewall` calls.
    #[must_use]
    pub fn with_firewall(mut self, firewall: Option<Arc<Firewall>>) -> Self {
        self.firewall = firewall;
        self
    }

    /// The same context with an accounts service to serve `users` calls.
    #[must_use]
    pub fn with_users(mut self, users: Option<Arc<Users>>) -> Self {
        self.users = users;
        self
    }

    /// The same context with salt-call to serve `salt` calls.
    #[must_use]
    pub fn with_salt(mut self, salt: Option<Arc<Salt>>) -> Self {
        self.salt = salt;
        self
    }

    /// The firewall service, or a refusal when this host has none.
    fn firewall_service(&mut self, call: &str) -> Result<Arc<Firewall>, HostFault> {
        match &self.firewall {
            Some(f) => Ok(Arc::clone(f)),
            None => Err(self.deny(format!("{call}: this host has no firewall back end"))),
        }
    }

    /// Counts a host call; past [`CallContext::max_host_calls`], or past the request's deadline,
    /// the module is stopped.
    fn enter(&mut self, what: &str) -> Result<(), HostFault> {
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

    /// Stops the module once the request's deadline has passed: a host call that waited until
    /// then (a tool killed at the deadline, a lock never free) ends the run with 3002 rather
    /// than handing the module an error it could retry on.
    fn check_time(&self) -> Result<(), HostFault> {
        if crate::deadline::passed() {
            return Err(HostFault::Trap(wasmtime::Error::new(
                crate::deadline::DeadlineExceeded,
            )));
        }
        Ok(())
    }

    fn deny(&mut self, why: String) -> HostFault {
        if self.denied.len() < 32 {
            self.denied.push(why.clone());
        }
        HostFault::Error(HostError::Denied(why))
    }

    /// A host call whose system tool failed; the module sees `message` (or the run stops, when
    /// the tool failed because the request's time ran out).
    fn failed(&mut self, message: String) -> HostFault {
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
        match self.enter(call) {
            Ok(()) => {
                self.push_log(level, msg);
                Ok(())
            }
            Err(HostFault::Trap(trap)) => Err(trap),
            Err(HostFault::Error(_)) => Ok(()),
        }
    }
}

impl firewall::Host for CallContext {
    fn allow(&mut self, r: firewall::Rule) -> Result<String, HostFault> {
        self.enter("firewall.allow")?;
        let (service, key) = self.firewall_and_key("firewall.allow")?;
        let source = r
            .source
            .parse::<fw::Source>()
            .map_err(|e| HostError::Invalid(e.to_string()))?;
        let proto = match r.proto {
            firewall::Proto::Tcp => fw::Proto::Tcp,
            firewall::Proto::Udp => fw::Proto::Udp,
        };
        let rule = fw::Rule::new(source, r.port, proto).map_err(|e| HostError::Invalid(e.to_string()))?;
        if let Err(why) = fw::check_grant(&self.grant.firewall, self.source_ip, &rule, r.ttl_secs) {
            return Err(self.deny(format!("firewall.allow {rule}: {why}")));
        }
        let opened = service
            .allow(crate::now_ms(), &key, &self.request_id, rule, r.ttl_secs)
            .map_err(|e| self.firewall_failure("firewall.allow", &rule.to_string(), e))?;
        tracing::info!(request = %self.request_id, client = %self.client, grant = %opened.id, %rule, extended = opened.extended, "firewall opening");
        Ok(opened.id.to_string())
    }

    fn revoke(&mut self, grant_id: String) -> Result<(), HostFault> {
        self.enter("firewall.revoke")?;
        let (service, key) = self.firewall_and_key("firewall.revoke")?;
        let id: GrantId = grant_id
            .parse()
            .map_err(|e: fw::RuleError| HostError::Invalid(e.to_string()))?;
        service
            .revoke(crate::now_ms(), Revoker::Client(&key), &id)
            .map_err(|e| self.firewall_failure("firewall.revoke", id.as_str(), e))?;
        Ok(())
    }

    fn list(&mut self) -> Result<Vec<firewall::Grant>, HostFault> {
        self.enter("firewall.list")?;
        let (service, key) = self.firewall_and_key("firewall.list")?;
        let views = service
            .list(crate::now_ms(), Some(&key))
            .map_err(|e| self.firewall_failure("firewall.list", "", e))?;
        Ok(views
            .into_iter()
            .map(|v| firewall::Grant {
                id: v.id.to_string(),
                source: v.rule.source.to_string(),
                port: v.rule.port,
                proto: match v.rule.proto {
                    fw::Proto::Tcp => firewall::Proto::Tcp,
                    fw::Proto::Udp => firewall::Proto::Udp,
                },
                expires_at_ms: v.expires_ms,
            })
            .collect())
    }
}

impl CallContext {
    /// The firewall service and the key the caller's holds belong to, or a refusal when this
    /// host has no firewall (or the request has no client key: nothing could hold it).
    fn firewall_and_key(
        &mut self,
        call: &str,
    ) -> Result<(Arc<Firewall>, sesame_proto::PublicKey), HostFault> {
        let service = self.firewall_service(call)?;
        match self.client_key {
            Some(key) => Ok((service, key)),
            None => Err(self.deny(format!("{call}: the request has no client key"))),
        }
    }

    /// Turns a firewall service error into what the module sees: a ceiling or a client no
    /// longer enrolled is a refusal, an unknown grant is an invalid argument, and anything else
    /// a failure whose detail stays in the daemon log. A failure after which the rule may be in
    /// the firewall is also recorded as an effect, for the request's audit record.
    fn firewall_failure(&mut self, call: &str, what: &str, e: FirewallError) -> HostFault {
        match e {
            FirewallError::Limit(why) => self.deny(format!("{call} {what}: {why}")),
            FirewallError::NotEnrolled => self.deny(format!("{call} {what}: {e}")),
            FirewallError::NotFound(id) => {
                HostError::Invalid(format!("no live grant {id} held by {}", self.client)).into()
            }
            other => {
                tracing::error!(request = %self.request_id, "{call} {what}: {other}");
                if let FirewallError::Unsettled { grant, .. } = &other {
                    self.effect(format!(
                        "{call} {what}: the firewall failed mid-change; grant {grant} is kept until its rule is confirmed closed"
                    ));
                }
                self.failed(format!(
                    "{call} {what}: the firewall could not be changed (see the daemon log)"
                ))
            }
        }
    }
}

impl salt::Host for CallContext {
    fn apply(
        &mut self,
        state: String,
        pillar: Option<String>,
        test: bool,
    ) -> Result<salt::ApplyReport, HostFault> {
        self.enter("salt.apply")?;
        let Some(service) = self.salt.clone() else {
            return Err(self.deny("salt.apply: this host does not apply Salt states".to_owned()));
        };
        let state: StateName = state
            .parse()
            .map_err(|e: SaltError| HostError::Invalid(e.to_string()))?;
        let pillar = pillar
            .as_deref()
            .map(str::parse::<Pillar>)
            .transpose()
            .map_err(|e| HostError::Invalid(e.to_string()))?;
        if let Err(why) = crate::salt::check_grant(&self.grant.salt, &state, pillar.as_ref()) {
            return Err(self.deny(format!("salt.apply {state}: {why}")));
        }
        let time_left = crate::deadline::cap(std::time::Duration::MAX);
        let mode = if test { " (test)" } else { "" };
        let report = match service.apply(&state, pillar.as_ref(), test, time_left) {
            Ok(report) => report,
            Err(e) => return Err(self.salt_failure(&state, mode, e)),
        };
        let (changed, failed) = (report.changed(), report.failed());
        self.effect(format!(
            "salt.apply {state}{mode}: {changed} changed, {failed} failed"
        ));
        if failed > 0 {
            // salt-call exited 2: a module that gives up on this report failed because of it.
            self.tool_failures = self.tool_failures.saturating_add(1);
        }
        Ok(salt::ApplyReport {
            succeeded: report.succeeded(),
            changed: u32::try_from(changed).unwrap_or(u32::MAX),
            failed: u32::try_from(failed).unwrap_or(u32::MAX),
            states: report
                .states
                .into_iter()
                .map(|s| salt::StateOutcome {
                    id: s.id,
                    result: s.result,
                    changed: s.changed,
                    comment: s.comment,
                })
                .collect(),
        })
    }
}

impl CallContext {
    /// Turns a salt error into what the module sees. Salt's own refusal (a missing or broken
    /// state) is passed on; a tool failure keeps its detail in the daemon log. A run that was
    /// killed may have changed things, so it is recorded as an effect.
    fn salt_failure(&mut self, state: &StateName, mode: &str, e: SaltError) -> HostFault {
        match e {
            SaltError::Invalid(why) => HostError::Invalid(why).into(),
            SaltError::Busy | SaltError::NoTime(_) | SaltError::Refused(_) => {
                tracing::warn!(request = %self.request_id, "salt.apply {state}{mode}: {e}");
                let mut message = format!("salt.apply {state}: {e}");
                truncate(&mut message, MAX_LOG_MESSAGE);
                self.failed(message)
            }
            other => {
                tracing::error!(request = %self.request_id, "salt.apply {state}{mode}: {other}");
                if matches!(other, SaltError::Tool(crate::system::ToolError::Timeout { .. })) {
                    self.effect(format!(
                        "salt.apply {state}{mode}: killed at its deadline, outcome unknown"
                    ));
                }
                self.failed(format!(
                    "salt.apply {state}: salt-call failed (see the daemon log)"
                ))
            }
        }
    }
}

impl users::Host for CallContext {
    fn create(&mut self, user: users::NewUser) -> Result<(), HostFault> {
        self.enter("users.create")?;
        let svc = self.users_service("users.create")?;
        let name: UserName = parse(&user.name)?;
        let shell = user.shell.as_deref().map(parse::<Shell>).transpose()?;
        let comment = user.comment.as_deref().map(parse::<Comment>).transpose()?;
        let groups = user
            .groups
            .iter()
            .map(|g| parse::<GroupName>(g))
            .collect::<Result<Vec<_>, _>>()?;
        let existing = svc
            .account(&name)
            .map_err(|e| self.users_failure("users.create", e))?;
        self.grant_user(&svc, "users.create", &name, existing.as_ref())?;
        if existing.is_some() {
            // Within the grant the module may learn that; outside it grant_user refused above.
            return Err(HostError::Invalid(format!("account {name} exists already")).into());
        }
        for g in &groups {
            let gid = svc
                .group_id(g)
                .map_err(|e| self.users_failure("users.create", e))?;
            self.grant_group(&svc, "users.create", g, gid)?;
        }
        svc.create(&name, shell.as_ref(), comment.as_ref(), &groups)
            .map_err(|e| self.users_failure("users.create", e))?;
        self.effect(format!("users.create {name}"));
        Ok(())
    }

    fn lock(&mut self, name: String) -> Result<(), HostFault> {
        let (svc, name) = self.users_target("users.lock", &name)?;
        svc.lock(&name).map_err(|e| self.users_failure("users.lock", e))?;
        self.effect(format!("users.lock {name}"));
        Ok(())
    }

    fn unlock(&mut self, name: String) -> Result<(), HostFault> {
        let (svc, name) = self.users_target("users.unlock", &name)?;
        svc.unlock(&name)
            .map_err(|e| self.users_failure("users.unlock", e))?;
        self.effect(format!("users.unlock {name}"));
        Ok(())
    }

    fn remove(&mut self, name: String) -> Result<(), HostFault> {
        let (svc, name) = self.users_target("users.remove", &name)?;
        svc.remove(&name)
            .map_err(|e| self.users_failure("users.remove", e))?;
        self.effect(format!("users.remove {name}"));
        Ok(())
    }

    fn add_key(&mut self, name: String, key: String) -> Result<bool, HostFault> {
        let key: SshKey = parse(&key)?;
        let (svc, name) = self.users_target("users.add-key", &name)?;
        let added = svc
            .add_key(&name, &key)
            .map_err(|e| self.users_failure("users.add-key", e))?;
        if added {
            self.effect(format!("users.add-key {name} {}", key.summary()));
        }
        Ok(added)
    }

    fn remove_key(&mut self, name: String, key: String) -> Result<bool, HostFault> {
        let key: SshKey = parse(&key)?;
        let (svc, name) = self.users_target("users.remove-key", &name)?;
        let removed = svc
            .remove_key(&name, &key)
            .map_err(|e| self.users_failure("users.remove-key", e))?;
        if removed {
            self.effect(format!("users.remove-key {name} {}", key.summary()));
        }
        Ok(removed)
    }

    fn add_to_group(&mut self, name: String, group: String) -> Result<(), HostFault> {
        let group: GroupName = parse(&group)?;
        let (svc, name) = self.users_target("users.add-to-group", &name)?;
        let gid = svc
            .group_id(&group)
            .map_err(|e| self.users_failure("users.add-to-group", e))?;
        self.grant_group(&svc, "users.add-to-group", &group, gid)?;
        svc.add_to_group(&name, &group)
            .map_err(|e| self.users_failure("users.add-to-group", e))?;
        self.effect(format!("users.add-to-group {name} {group}"));
        Ok(())
    }

    fn remove_from_group(&mut self, name: String, group: String) -> Result<(), HostFault> {
        let group: GroupName = parse(&group)?;
        let (svc, name) = self.users_target("users.remove-from-group", &name)?;
        let gid = svc
            .group_id(&group)
            .map_err(|e| self.users_failure("users.remove-from-group", e))?;
        self.grant_group(&svc, "users.remove-from-group", &group, gid)?;
        svc.remove_from_group(&name, &group)
            .map_err(|e| self.users_failure("users.remove-from-group", e))?;
        self.effect(format!("users.remove-from-group {name} {group}"));
        Ok(())
    }

    fn list(&mut self) -> Result<Vec<users::Account>, HostFault> {
        self.enter("users.list")?;
        let svc = self.users_service("users.list")?;
        let accounts = svc.accounts().map_err(|e| self.users_failure("users.list", e))?;
        let reach = crate::users::Reach::new(&self.grant.users, svc.login_defs(), &self.client);
        Ok(accounts
            .into_iter()
            .filter(|a| reach.account(a).is_ok())
            .map(|a| users::Account {
                name: a.name,
                uid: a.uid,
                groups: a.groups.into_iter().map(|g| g.name).collect(),
                shell: a.shell,
                locked: a.locked,
            })
            .collect())
    }
}

/// Cuts `msg` to at most `max` bytes (on a character boundary), marking the cut with `…`.
fn truncate(msg: &mut String, max: usize) {
    if msg.len() > max {
        let mut cut = max;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
        msg.push('…');
    }
}

/// Parses a module's argument, or says why it is invalid.
fn parse<T: std::str::FromStr<Err = UsersArgError>>(s: &str) -> Result<T, HostFault> {
    s.parse()
        .map_err(|e: UsersArgError| HostError::Invalid(e.0).into())
}

impl CallContext {
    /// The users service, or a refusal when this host has none.
    fn users_service(&mut self, call: &str) -> Result<Arc<Users>, HostFault> {
        match &self.users {
            Some(u) => Ok(Arc::clone(u)),
            None => Err(self.deny(format!("{call}: this host does not manage accounts"))),
        }
    }

    /// Counts the call, parses the account name, checks it exists and that the grant reaches it.
    fn users_target(&mut self, call: &str, name: &str) -> Result<(Arc<Users>, UserName), HostFault> {
        self.enter(call)?;
        let svc = self.users_service(call)?;
        let name: UserName = parse(name)?;
        let existing = svc.account(&name).map_err(|e| self.users_failure(call, e))?;
        let own = self.grant.users.self_service && name.as_str() == self.client;
        if existing.is_none() && own {
            // Self service cannot create the account; the caller may learn it is missing.
            return Err(HostError::Invalid(format!("no account {name}")).into());
        }
        self.grant_user(&svc, call, &name, existing.as_ref())?;
        if existing.is_none() {
            return Err(HostError::Invalid(format!("no account {name}")).into());
        }
        Ok((svc, name))
    }

    /// Checks the grant reaches account `name`: `existing` as it is now, or, when there is no
    /// such account, a new account of that name ([`crate::users::reach`]).
    fn grant_user(
        &mut self,
        svc: &Users,
        call: &str,
        name: &UserName,
        existing: Option<&crate::users::Account>,
    ) -> Result<(), HostFault> {
        let reach = crate::users::Reach::new(&self.grant.users, svc.login_defs(), &self.client);
        let reached = match existing {
            Some(account) => reach.account(account),
            None => reach.new_account(name),
        };
        reached.map_err(|why| self.deny(format!("{call} {name}: {why}")))
    }

    /// Checks the grant reaches group `group` (`gid` when it exists).
    fn grant_group(
        &mut self,
        svc: &Users,
        call: &str,
        group: &GroupName,
        gid: Option<u32>,
    ) -> Result<(), HostFault> {
        crate::users::Reach::new(&self.grant.users, svc.login_defs(), &self.client)
            .group(group, gid)
            .map_err(|why| self.deny(format!("{call} {group}: {why}")))
    }

    /// Turns a users service error into what the module sees; tool failures keep their detail in
    /// the daemon log.
    fn users_failure(&mut self, call: &str, e: UsersError) -> HostFault {
        match e {
            UsersError::Invalid(_)
            | UsersError::NoSuchUser(_)
            | UsersError::NoSuchGroup(_)
            | UsersError::Exists(_)
            | UsersError::GroupExists(_)
            | UsersError::UnlistedShell(_) => HostError::Invalid(e.to_string()).into(),
            UsersError::Home(h) => {
                tracing::warn!(request = %self.request_id, "{call}: {h}");
                self.failed(format!("{call}: {h}"))
            }
            other => {
                tracing::error!(request = %self.request_id, "{call}: {other}");
                self.failed(format!("{call}: the system tool failed (see the daemon log)"))
            }
        }
    }

    /// Records a change made on the host, for the request's audit record.
    fn effect(&mut self, what: String) {
        tracing::info!(request = %self.request_id, client = %self.client, "{what}");
        if self.effects.len() < MAX_LOG_LINES {
            self.effects.push(what);
        }
    }
}
