//! Capabilities: what a command module may do on the host besides computing and logging.
//!
//! A capability is a WIT interface (`sesame:host/NAME`) that a cluster may grant its modules, and
//! everything of it lives in one folder here:
//! - its service, the back end its calls reach (ufw or nftables, shadow's tools, salt-call,
//!   the files it reads);
//! - `calls.rs`, the host side of its interface: each call counted, its arguments parsed, checked
//!   against the request's grant, and only then handed to the service;
//! - its part of a grant, `decision.grant.NAME` ([`Capability::Grant`]), and that check;
//! - its section of `sesamed.toml`, `[NAME]` ([`Capability::Config`]);
//! - a dry run for `sesamed module run` and what `sesamed configtest` reports of it.
//!
//! The daemon reaches them through the one list in `for_each_capability!` below: the grant, the
//! configuration, the services a request gets, the linker and `configtest` are made from it, so
//! a new capability is a folder and a line there (plus its WIT interface and guest SDK module).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sesame_proto::PublicKey;

use crate::audit::AuditLog;
use crate::config::Config;
use crate::host::CallContext;
use crate::policy::Limits;
use crate::system::Recorder;

pub mod exec;
pub mod firewall;
pub mod grants;
pub mod hostkeys;
pub mod salt;
pub mod users;

/// Calls the macro `$m!` with every capability, as `NAME: Type` (the folder's service type).
/// The one list of capabilities: everything the daemon does per capability is made from it.
macro_rules! for_each_capability {
    ($m:ident) => {
        $m! {
            firewall: $crate::capability::firewall::Firewall,
            salt: $crate::capability::salt::Salt,
            users: $crate::capability::users::Users,
            exec: $crate::capability::exec::Exec,
            hostkeys: $crate::capability::hostkeys::HostKeys,
            grants: $crate::capability::grants::Grants,
        }
    };
}
pub(crate) use for_each_capability;

/// What the daemon needs of a capability besides the host side of its interface.
pub trait Capability: Sized + Send + Sync + fmt::Debug + 'static {
    /// `decision.grant.NAME`: what one request may do with it. The default grants nothing.
    type Grant: DeserializeOwned + Serialize + Default + Clone + fmt::Debug + PartialEq + Eq;
    /// `[NAME]` in `sesamed.toml`. The default is what a file without the section gets.
    type Config: DeserializeOwned + Default + Clone + fmt::Debug + PartialEq;
    /// Why its service could not start or check.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Checks its section of the configuration, making relative paths absolute with `resolve`
    /// (against the configuration file's directory); the error names the key.
    fn configure(config: Self::Config, resolve: &dyn Fn(PathBuf) -> PathBuf) -> Result<Self::Config, String>;

    /// The live service, for a daemon one of whose clusters grants the capability.
    fn start(cx: &Start<'_>) -> Result<Self, Self::Error>;

    /// A service that changes nothing on this machine and records what it would have done, for
    /// `sesamed module run`.
    fn dry_run(cx: &DryRun<'_>) -> Result<Self, Self::Error>;

    /// What `sesamed configtest` says: the service built as [`Capability::start`] would build
    /// it, but without changing anything on the host, and checked.
    fn check(cx: &Start<'_>) -> Result<Check, Self::Error>;

    /// The positions of `args` (a request for `command`) that carry secrets this capability is
    /// to be handed: masked in the audit and decision logs like the policy's `data.sesame.mask`.
    fn secret_args(&self, _command: &str, _args: &[String]) -> Vec<usize> {
        Vec::new()
    }

    /// Reverts what the grants ledger says has expired (the daemon calls this every second);
    /// a failure is logged and retried at the next call.
    fn reap(&self, _now_ms: u64) {}

    /// The live holds the client with `key` has on what this capability keeps in the grants
    /// ledger (the `grants` interface lists them for the client's own modules).
    fn holds(&self, _key: &PublicKey, _now_ms: u64) -> Result<Vec<Held>, String> {
        Ok(Vec::new())
    }

    /// Releases the hold the client with `key` has on grant `id`, taking the change back at once
    /// when nobody else holds it; `None` when `id` is not of a kind this capability keeps.
    fn release(&self, _key: &PublicKey, _id: &str, _now_ms: u64) -> Option<Result<(), ReleaseError>> {
        None
    }
}

/// One client's live hold on a change in the grants ledger, as the `grants` interface shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The grant's id: `fw-`, `key-`, `grp-` or `acc-` and 16 hex digits.
    pub id: String,
    /// What kind of change it is.
    pub kind: HeldKind,
    /// What it is, for people: `22/tcp from 203.0.113.5`, `dave in group sudo`, ...
    pub what: String,
    /// When this client's hold ends (Unix ms); others may hold it longer.
    pub expires_ms: u64,
}

/// The kinds of change the grants ledger keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HeldKind {
    /// A firewall opening.
    Opening,
    /// An SSH key on an account.
    Key,
    /// An account's membership of a group.
    Membership,
    /// An account made for a while.
    Account,
}

/// Why a client's hold could not be released.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The client holds no live grant with that id (it may have expired, or be someone else's).
    #[error("no live grant {0} is held by this client")]
    NotHeld(String),
    /// The change could not be taken back (the detail is for the daemon log); the ledger keeps
    /// it, and the reaper retries.
    #[error("{0}")]
    Failed(String),
}

/// What a capability's service starts from.
#[derive(Debug, Clone, Copy)]
pub struct Start<'a> {
    /// The daemon's configuration (the capability's section is in [`Config::capabilities`]).
    pub config: &'a Config,
    /// The audit log, for services that keep their own records there (the firewall's).
    pub audit: &'a Arc<AuditLog>,
    /// Now, Unix milliseconds.
    pub now_ms: u64,
}

/// What a dry-run service starts from.
#[derive(Debug, Clone, Copy)]
pub struct DryRun<'a> {
    /// The daemon's configuration.
    pub config: &'a Config,
    /// A scratch directory that is removed after the run, for state a service must keep.
    pub scratch: &'a Path,
    /// A scratch audit log.
    pub audit: &'a Arc<AuditLog>,
    /// Where the command lines the service would have run go.
    pub recorder: &'a Recorder,
}

/// What `sesamed configtest` reports of a service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Check {
    /// For the summary line (`firewall ufw`, `salt-call 3008.3`); empty says nothing.
    pub summary: String,
    /// Printed as warnings: it starts, but something is likely wrong.
    pub warnings: Vec<String>,
}

/// A capability's service that could not start or check, named.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {source}")]
pub struct CapabilityError {
    /// The capability.
    pub name: &'static str,
    /// What went wrong.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl CapabilityError {
    fn new(name: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            name,
            source: Box::new(source),
        }
    }
}

macro_rules! registry {
    ($($name:ident: $ty:ty),* $(,)?) => {
        /// Every capability's name, as clusters grant them and grants and sections name them.
        pub const NAMES: &[&str] = &[$(stringify!($name)),*];

        /// `decision.grant` as a policy writes it: what the request may do with each capability.
        /// A capability left out grants nothing; an unknown one is an error (the decision denies).
        #[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct GrantDocument {
            $(
                #[doc = concat!("`grant.", stringify!($name), "`.")]
                pub $name: <$ty as Capability>::Grant,
            )*
        }

        /// What an allowed request may do: its grant for each capability, its limits, and why
        /// it was allowed. Every field left out by the policy grants nothing.
        #[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Grant {
            $(
                #[doc = concat!("What the request may do with `", stringify!($name), "`.")]
                pub $name: <$ty as Capability>::Grant,
            )*
            /// Resource limits for the run (`None` = the daemon's default).
            pub limits: Limits,
            /// Why the request was allowed.
            pub reasons: Vec<String>,
            /// Approvals the request needs before it runs (`decision.approvals`); `None`: it
            /// runs at once.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub approvals: Option<crate::policy::ApprovalRule>,
        }

        impl Grant {
            /// The grant a policy wrote, with its limits and no reasons yet.
            pub fn new(document: GrantDocument, limits: Limits) -> Self {
                Self {
                    $($name: document.$name,)*
                    limits,
                    reasons: Vec::new(),
                    approvals: None,
                }
            }

            /// The capabilities' part, as a policy writes it (`module run` prints it).
            pub fn document(&self) -> GrantDocument {
                GrantDocument { $($name: self.$name.clone(),)* }
            }
        }

        /// Every capability's section of `sesamed.toml`, checked.
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct Configs {
            $(
                #[doc = concat!("`[", stringify!($name), "]`.")]
                pub $name: <$ty as Capability>::Config,
            )*
        }

        /// The services of the capabilities a daemon's clusters grant; the others are `None`,
        /// and a call to one is refused.
        #[derive(Debug, Clone, Default)]
        pub struct Services {
            $(
                #[doc = concat!("`", stringify!($name), "`, when a cluster grants it.")]
                pub $name: Option<Arc<$ty>>,
            )*
        }

        impl Services {
            /// Starts the service of every capability a cluster of `cx.config` grants.
            pub fn start(cx: &Start<'_>) -> Result<Self, CapabilityError> {
                Ok(Self {
                    $($name: if cx.config.uses(stringify!($name)) {
                        let service = <$ty as Capability>::start(cx)
                            .map_err(|e| CapabilityError::new(stringify!($name), e))?;
                        Some(Arc::new(service))
                    } else {
                        None
                    },)*
                })
            }

            /// A dry-run service for every capability, granted or not (`sesamed module run`
            /// tries modules whose clusters the configuration may not have yet).
            pub fn dry_run(cx: &DryRun<'_>) -> Result<Self, CapabilityError> {
                Ok(Self {
                    $($name: Some(Arc::new(
                        <$ty as Capability>::dry_run(cx)
                            .map_err(|e| CapabilityError::new(stringify!($name), e))?,
                    )),)*
                })
            }

            /// The positions of `args` (a request for `command`) any running service says
            /// carry secrets ([`Capability::secret_args`]).
            pub fn secret_args(&self, command: &str, args: &[String]) -> Vec<usize> {
                let mut positions = Vec::new();
                $(if let Some(service) = &self.$name {
                    positions.extend(<$ty as Capability>::secret_args(service, command, args));
                })*
                positions
            }

            /// Every live hold the client with `key` has, of every kind a running service keeps
            /// ([`Capability::holds`]), soonest to end first; a service that could not say is
            /// named with why, and the others are still listed.
            pub fn holds(&self, key: &PublicKey, now_ms: u64) -> (Vec<Held>, Vec<(&'static str, String)>) {
                let (mut held, mut failed) = (Vec::new(), Vec::new());
                $(if let Some(service) = &self.$name {
                    match <$ty as Capability>::holds(service, key, now_ms) {
                        Ok(h) => held.extend(h),
                        Err(why) => failed.push((stringify!($name), why)),
                    }
                })*
                held.sort_by(|a, b| (a.expires_ms, &a.id).cmp(&(b.expires_ms, &b.id)));
                (held, failed)
            }

            /// Releases the hold the client with `key` has on grant `id`, through the running
            /// service that keeps its kind ([`Capability::release`]); `NotHeld` when none does.
            pub fn release(&self, key: &PublicKey, id: &str, now_ms: u64) -> Result<(), ReleaseError> {
                $(if let Some(service) = &self.$name
                    && let Some(released) = <$ty as Capability>::release(service, key, id, now_ms)
                {
                    return released;
                })*
                Err(ReleaseError::NotHeld(id.to_owned()))
            }

            /// Lets every running service revert what has expired ([`Capability::reap`]).
            pub fn reap(&self, now_ms: u64) {
                $(if let Some(service) = &self.$name {
                    <$ty as Capability>::reap(service, now_ms);
                })*
            }

            /// What `sesamed configtest` reports of every capability a cluster of `cx.config`
            /// grants, in registry order; nothing on the host changes.
            pub fn check(cx: &Start<'_>) -> Result<Vec<(&'static str, Check)>, CapabilityError> {
                let mut checks = Vec::new();
                $(if cx.config.uses(stringify!($name)) {
                    let check = <$ty as Capability>::check(cx)
                        .map_err(|e| CapabilityError::new(stringify!($name), e))?;
                    checks.push((stringify!($name), check));
                })*
                Ok(checks)
            }
        }

        /// Links capability `name`'s interface for a module (`get` finds the request's
        /// [`CallContext`] in the store's data), or `None` when there is no such capability.
        pub(crate) fn link<T: 'static>(
            name: &str,
            linker: &mut wasmtime::component::Linker<T>,
            get: fn(&mut T) -> &mut CallContext,
        ) -> Option<wasmtime::Result<()>> {
            use crate::host::bindings::sesame::host as wit;
            match name {
                $(stringify!($name) => {
                    Some(wit::$name::add_to_linker::<T, crate::host::HostCalls>(linker, get))
                })*
                _ => None,
            }
        }
    };
}
for_each_capability!(registry);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_capability_has_a_wit_interface_and_the_wit_has_no_other() {
        let wit = include_str!("../../../wit/sesame.wit");
        let interfaces: Vec<&str> = wit
            .lines()
            .filter_map(|l| l.trim().strip_prefix("interface "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|name| !["types", "log"].contains(name))
            .collect();
        assert_eq!(
            interfaces, NAMES,
            "wit/sesame.wit's capability interfaces, in order"
        );
    }
}
