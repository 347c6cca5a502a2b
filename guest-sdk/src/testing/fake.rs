//! The fake host behind the wrappers on non-wasm targets: a per-thread stack of sessions (one
//! per [`FakeHost::scope`](super::FakeHost::scope)), each holding the scripted answers and
//! recording the calls and log lines.
//!
//! The functions in [`firewall`], [`salt`], [`users`], [`exec`], [`hostkeys`], [`grants`] and [`log`] have the
//! signatures of the WIT imports they stand in for (errors are the WIT `host-error`), so the wrappers call them exactly
//! as they call the imports.

use std::cell::RefCell;
use std::mem;

use super::{Call, LogLine};
use crate::__private::bindings::sesame::host::types::HostError as WitHostError;
use crate::HostError;
use crate::exec::RunOutput;
use crate::firewall::{Grant, Rule};
use crate::grants::Held;
use crate::hostkeys::HostKey;
use crate::salt::ApplyReport;
use crate::users::{Account, NewUser};

/// A scripted answer for one host function; `None` answers "not scripted".
pub(super) type Answer<F> = Option<Box<F>>;
/// An answer for a function of no argument, of one argument by reference, of two strings.
type Answer0<T> = Answer<dyn FnMut() -> Result<T, HostError>>;
type Answer1<A, T> = Answer<dyn FnMut(&A) -> Result<T, HostError>>;
type Answer2<T> = Answer<dyn FnMut(&str, &str) -> Result<T, HostError>>;
type CreateTemporaryAnswer = Answer<dyn FnMut(&NewUser, u32) -> Result<u64, HostError>>;
type TemporaryKeyAnswer = Answer<dyn FnMut(&str, &str, u32) -> Result<u64, HostError>>;
type SaltAnswer = Answer<dyn FnMut(&str, Option<&str>, bool) -> Result<ApplyReport, HostError>>;
type ExecAnswer = Answer<dyn FnMut(&str, &[(String, String)]) -> Result<RunOutput, HostError>>;

/// The answers a [`FakeHost`](super::FakeHost) gives, one slot per host function.
#[derive(Default)]
pub(super) struct Script {
    pub(super) firewall_allow: Answer1<Rule, String>,
    pub(super) firewall_revoke: Answer1<str, ()>,
    pub(super) firewall_list: Answer0<Vec<Grant>>,
    pub(super) salt_apply: SaltAnswer,
    pub(super) users_create: Answer1<NewUser, ()>,
    pub(super) users_create_temporary: CreateTemporaryAnswer,
    pub(super) users_lock: Answer1<str, ()>,
    pub(super) users_unlock: Answer1<str, ()>,
    pub(super) users_remove: Answer1<str, ()>,
    pub(super) users_add_key: Answer2<bool>,
    pub(super) users_add_temporary_key: TemporaryKeyAnswer,
    pub(super) users_add_temporary_membership: TemporaryKeyAnswer,
    pub(super) users_remove_key: Answer2<bool>,
    pub(super) users_add_to_group: Answer2<()>,
    pub(super) users_remove_from_group: Answer2<()>,
    pub(super) users_list: Answer0<Vec<Account>>,
    pub(super) exec_run: ExecAnswer,
    pub(super) hostkeys_list: Answer0<Vec<HostKey>>,
    pub(super) grants_list: Answer0<Vec<Held>>,
    pub(super) grants_revoke: Answer1<str, ()>,
}

impl Script {
    /// The WIT names of the scripted functions, for `Debug`.
    pub(super) fn scripted(&self) -> Vec<&'static str> {
        let slots = [
            ("firewall.allow", self.firewall_allow.is_some()),
            ("firewall.revoke", self.firewall_revoke.is_some()),
            ("firewall.list", self.firewall_list.is_some()),
            ("salt.apply", self.salt_apply.is_some()),
            ("users.create", self.users_create.is_some()),
            ("users.create-temporary", self.users_create_temporary.is_some()),
            ("users.lock", self.users_lock.is_some()),
            ("users.unlock", self.users_unlock.is_some()),
            ("users.remove", self.users_remove.is_some()),
            ("users.add-key", self.users_add_key.is_some()),
            ("users.add-temporary-key", self.users_add_temporary_key.is_some()),
            (
                "users.add-temporary-membership",
                self.users_add_temporary_membership.is_some(),
            ),
            ("users.remove-key", self.users_remove_key.is_some()),
            ("users.add-to-group", self.users_add_to_group.is_some()),
            ("users.remove-from-group", self.users_remove_from_group.is_some()),
            ("users.list", self.users_list.is_some()),
            ("exec.run", self.exec_run.is_some()),
            ("hostkeys.list", self.hostkeys_list.is_some()),
            ("grants.list", self.grants_list.is_some()),
            ("grants.revoke", self.grants_revoke.is_some()),
        ];
        slots
            .into_iter()
            .filter(|&(_, on)| on)
            .map(|(name, _)| name)
            .collect()
    }
}

/// Runs `f` with `script` as this thread's host, and returns what `f` returned with the calls
/// and log lines recorded meanwhile. The session ends when `f` returns or panics.
pub(super) fn scope<T>(script: Script, f: impl FnOnce() -> T) -> (T, Vec<Call>, Vec<LogLine>) {
    SESSIONS.with_borrow_mut(|sessions| {
        sessions.push(Session {
            script,
            calls: Vec::new(),
            logs: Vec::new(),
        })
    });
    let _end = EndSession;
    let output = f();
    let (calls, logs) = SESSIONS.with_borrow_mut(|sessions| {
        sessions
            .last_mut()
            .map(|s| (mem::take(&mut s.calls), mem::take(&mut s.logs)))
            .unwrap_or_default()
    });
    (output, calls, logs)
}

/// Stand-ins for the `firewall` imports.
pub(crate) mod firewall {
    use super::{Call, Grant, Rule, WitHostError, answer};

    pub(crate) fn allow(rule: &Rule) -> Result<String, WitHostError> {
        answer(
            Call::FirewallAllow(rule.clone()),
            |s| &mut s.firewall_allow,
            |f| f(rule),
        )
    }

    pub(crate) fn revoke(grant_id: &str) -> Result<(), WitHostError> {
        let call = Call::FirewallRevoke {
            grant_id: grant_id.to_owned(),
        };
        answer(call, |s| &mut s.firewall_revoke, |f| f(grant_id))
    }

    pub(crate) fn list() -> Result<Vec<Grant>, WitHostError> {
        answer(Call::FirewallList, |s| &mut s.firewall_list, |f| f())
    }
}

/// Stand-ins for the `salt` imports.
pub(crate) mod salt {
    use super::{ApplyReport, Call, WitHostError, answer};

    pub(crate) fn apply(
        state: &str,
        pillar_json: Option<&str>,
        test: bool,
    ) -> Result<ApplyReport, WitHostError> {
        let call = Call::SaltApply {
            state: state.to_owned(),
            pillar_json: pillar_json.map(str::to_owned),
            test,
        };
        answer(call, |s| &mut s.salt_apply, |f| f(state, pillar_json, test))
    }
}

/// Stand-ins for the `users` imports.
pub(crate) mod users {
    use super::{Account, Call, NewUser, WitHostError, answer};

    pub(crate) fn create(user: &NewUser) -> Result<(), WitHostError> {
        answer(
            Call::UsersCreate(user.clone()),
            |s| &mut s.users_create,
            |f| f(user),
        )
    }

    pub(crate) fn create_temporary(user: &NewUser, ttl_secs: u32) -> Result<u64, WitHostError> {
        answer(
            Call::UsersCreateTemporary {
                user: user.clone(),
                ttl_secs,
            },
            |s| &mut s.users_create_temporary,
            |f| f(user, ttl_secs),
        )
    }

    pub(crate) fn lock(name: &str) -> Result<(), WitHostError> {
        let call = Call::UsersLock {
            name: name.to_owned(),
        };
        answer(call, |s| &mut s.users_lock, |f| f(name))
    }

    pub(crate) fn unlock(name: &str) -> Result<(), WitHostError> {
        let call = Call::UsersUnlock {
            name: name.to_owned(),
        };
        answer(call, |s| &mut s.users_unlock, |f| f(name))
    }

    pub(crate) fn remove(name: &str) -> Result<(), WitHostError> {
        let call = Call::UsersRemove {
            name: name.to_owned(),
        };
        answer(call, |s| &mut s.users_remove, |f| f(name))
    }

    pub(crate) fn add_key(name: &str, key: &str) -> Result<bool, WitHostError> {
        let call = Call::UsersAddKey {
            name: name.to_owned(),
            key: key.to_owned(),
        };
        answer(call, |s| &mut s.users_add_key, |f| f(name, key))
    }

    pub(crate) fn add_temporary_key(name: &str, key: &str, ttl_secs: u32) -> Result<u64, WitHostError> {
        let call = Call::UsersAddTemporaryKey {
            name: name.to_owned(),
            key: key.to_owned(),
            ttl_secs,
        };
        answer(
            call,
            |s| &mut s.users_add_temporary_key,
            |f| f(name, key, ttl_secs),
        )
    }

    pub(crate) fn add_temporary_membership(
        name: &str,
        group: &str,
        ttl_secs: u32,
    ) -> Result<u64, WitHostError> {
        let call = Call::UsersAddTemporaryMembership {
            name: name.to_owned(),
            group: group.to_owned(),
            ttl_secs,
        };
        answer(
            call,
            |s| &mut s.users_add_temporary_membership,
            |f| f(name, group, ttl_secs),
        )
    }

    pub(crate) fn remove_key(name: &str, key: &str) -> Result<bool, WitHostError> {
        let call = Call::UsersRemoveKey {
            name: name.to_owned(),
            key: key.to_owned(),
        };
        answer(call, |s| &mut s.users_remove_key, |f| f(name, key))
    }

    pub(crate) fn add_to_group(name: &str, group: &str) -> Result<(), WitHostError> {
        let call = Call::UsersAddToGroup {
            name: name.to_owned(),
            group: group.to_owned(),
        };
        answer(call, |s| &mut s.users_add_to_group, |f| f(name, group))
    }

    pub(crate) fn remove_from_group(name: &str, group: &str) -> Result<(), WitHostError> {
        let call = Call::UsersRemoveFromGroup {
            name: name.to_owned(),
            group: group.to_owned(),
        };
        answer(call, |s| &mut s.users_remove_from_group, |f| f(name, group))
    }

    pub(crate) fn list() -> Result<Vec<Account>, WitHostError> {
        answer(Call::UsersList, |s| &mut s.users_list, |f| f())
    }
}

/// Stand-ins for the `exec` imports.
pub(crate) mod exec {
    use super::{Call, RunOutput, WitHostError, answer};

    pub(crate) fn run(name: &str, params: &[(String, String)]) -> Result<RunOutput, WitHostError> {
        let call = Call::ExecRun {
            name: name.to_owned(),
            params: params.to_vec(),
        };
        answer(call, |s| &mut s.exec_run, |f| f(name, params))
    }
}

/// Stand-ins for the `hostkeys` imports.
pub(crate) mod hostkeys {
    use super::{Call, HostKey, WitHostError, answer};

    pub(crate) fn list() -> Result<Vec<HostKey>, WitHostError> {
        answer(Call::HostkeysList, |s| &mut s.hostkeys_list, |f| f())
    }
}

/// Stand-ins for the `grants` imports.
pub(crate) mod grants {
    use super::{Call, Held, WitHostError, answer};

    pub(crate) fn list() -> Result<Vec<Held>, WitHostError> {
        answer(Call::GrantsList, |s| &mut s.grants_list, |f| f())
    }

    pub(crate) fn revoke(id: &str) -> Result<(), WitHostError> {
        let call = Call::GrantsRevoke { id: id.to_owned() };
        answer(call, |s| &mut s.grants_revoke, |f| f(id))
    }
}

/// Stand-ins for the `log` imports: lines are recorded, or dropped outside a session.
pub(crate) mod log {
    use super::{LogLine, SESSIONS};

    pub(crate) fn info(msg: &str) {
        record(LogLine::info(msg));
    }

    pub(crate) fn warn(msg: &str) {
        record(LogLine::warn(msg));
    }

    fn record(line: LogLine) {
        SESSIONS.with_borrow_mut(|sessions| {
            if let Some(session) = sessions.last_mut() {
                session.logs.push(line);
            }
        });
    }
}

thread_local! {
    /// The sessions on this thread, innermost last; host calls go to the last one.
    static SESSIONS: RefCell<Vec<Session>> = const { RefCell::new(Vec::new()) };
}

struct Session {
    script: Script,
    calls: Vec<Call>,
    logs: Vec<LogLine>,
}

/// Ends the innermost session when dropped, also when the code under test panics.
struct EndSession;

impl Drop for EndSession {
    fn drop(&mut self) {
        SESSIONS.with_borrow_mut(|sessions| sessions.pop());
    }
}

/// Records `call` and answers it with the scripted function in `slot` (through `ask`), or with
/// [`HostError::Denied`] when nothing is scripted or no session is open.
///
/// The answer function is taken out of the session while it runs, so that it may itself call
/// host functions (which then see it as not scripted) without a double borrow.
fn answer<F: ?Sized, T>(
    call: Call,
    slot: fn(&mut Script) -> &mut Answer<F>,
    ask: impl FnOnce(&mut F) -> Result<T, HostError>,
) -> Result<T, WitHostError> {
    let name = call.name();
    let taken = SESSIONS.with_borrow_mut(|sessions| {
        let session = sessions.last_mut()?;
        session.calls.push(call);
        Some(slot(&mut session.script).take())
    });
    let mut f = match taken {
        Some(Some(f)) => f,
        Some(None) => return Err(WitHostError::Denied(format!("not scripted in this test: {name}"))),
        None => {
            return Err(WitHostError::Denied(format!(
                "no fake host on this thread: {name} (call the code under test inside \
                 sesame_guest::testing::FakeHost::run or ::scope)"
            )));
        }
    };
    let result = ask(&mut f);
    SESSIONS.with_borrow_mut(|sessions| {
        if let Some(session) = sessions.last_mut() {
            slot(&mut session.script).get_or_insert(f);
        }
    });
    result.map_err(|e| match e {
        HostError::Denied(m) => WitHostError::Denied(m),
        HostError::Invalid(m) => WitHostError::Invalid(m),
        HostError::Failed(m) => WitHostError::Failed(m),
    })
}
