//! The host side of the `users` WIT interface: every call is counted, its arguments parsed,
//! and the accounts and groups it names checked against what the grant reaches ([`Reach`])
//! before shadow's tools run.

use std::sync::Arc;

use super::{
    Account, Comment, GroupName, InvalidArg, Reach, Shell, SshKey, Temporary, TemporaryKind, UserName, Users,
    UsersError,
};
use crate::host::bindings::sesame::host::users;
use crate::host::{CallContext, HostError, HostFault};

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

    fn create_temporary(&mut self, user: users::NewUser, ttl_secs: u32) -> Result<u64, HostFault> {
        self.enter("users.create-temporary")?;
        let svc = self.users_service("users.create-temporary")?;
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
            .map_err(|e| self.users_failure("users.create-temporary", e))?;
        self.grant_user(&svc, "users.create-temporary", &name, existing.as_ref())?;
        for g in &groups {
            let gid = svc
                .group_id(g)
                .map_err(|e| self.users_failure("users.create-temporary", e))?;
            self.grant_group(&svc, "users.create-temporary", g, gid)?;
        }
        let holder = self.temporary_holder(
            &svc,
            "users.create-temporary",
            &name,
            TemporaryKind::Account,
            ttl_secs,
        )?;
        let made = svc
            .create_temporary(
                crate::now_ms(),
                &name,
                shell.as_ref(),
                comment.as_ref(),
                &groups,
                holder,
            )
            .map_err(|e| self.users_failure("users.create-temporary", e))?;
        self.effect(format!(
            "users.create-temporary {name} until {}",
            crate::format_utc(made.expires_ms)
        ));
        Ok(made.expires_ms)
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

    fn add_temporary_key(&mut self, name: String, key: String, ttl_secs: u32) -> Result<u64, HostFault> {
        let key: SshKey = parse(&key)?;
        let (svc, name) = self.users_target("users.add-temporary-key", &name)?;
        let holder = self.temporary_holder(
            &svc,
            "users.add-temporary-key",
            &name,
            TemporaryKind::Key,
            ttl_secs,
        )?;
        let added = svc
            .add_temporary(crate::now_ms(), &name, Temporary::Key(&key), holder)
            .map_err(|e| self.users_failure("users.add-temporary-key", e))?;
        if added.permanent {
            return Err(HostError::Invalid(format!(
                "{} is on {name} for good already: remove it first (key-remove) to add it for a while",
                key.summary()
            ))
            .into());
        }
        self.effect(format!(
            "users.add-temporary-key {name} {} until {}",
            key.summary(),
            crate::format_utc(added.expires_ms)
        ));
        Ok(added.expires_ms)
    }

    fn remove_key(&mut self, name: String, key: String) -> Result<bool, HostFault> {
        let key: SshKey = parse(&key)?;
        let (svc, name) = self.users_target("users.remove-key", &name)?;
        let removed = svc
            .remove_key(&name, &key)
            .map_err(|e| self.users_failure("users.remove-key", e))?;
        // Removed by hand: its temporary entry, if any, must not bring it back.
        svc.forget_temporary(&name, Temporary::Key(&key))
            .map_err(|e| self.users_failure("users.remove-key", e))?;
        if removed {
            self.effect(format!("users.remove-key {name} {}", key.summary()));
        }
        Ok(removed)
    }

    fn add_to_group(&mut self, name: String, group: String) -> Result<(), HostFault> {
        let group: GroupName = parse(&group)?;
        if self
            .grant
            .users
            .temporary_groups
            .iter()
            .any(|g| g == group.as_str())
        {
            return Err(self.deny(format!(
                "users.add-to-group {group}: the grant lets accounts join {group} only for a while (--ttl)"
            )));
        }
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

    fn add_temporary_membership(
        &mut self,
        name: String,
        group: String,
        ttl_secs: u32,
    ) -> Result<u64, HostFault> {
        let group: GroupName = parse(&group)?;
        let (svc, name) = self.users_target("users.add-temporary-membership", &name)?;
        let gid = svc
            .group_id(&group)
            .map_err(|e| self.users_failure("users.add-temporary-membership", e))?;
        self.grant_group(&svc, "users.add-temporary-membership", &group, gid)?;
        let holder = self.temporary_holder(
            &svc,
            "users.add-temporary-membership",
            &name,
            TemporaryKind::Group,
            ttl_secs,
        )?;
        let made = svc
            .add_temporary(crate::now_ms(), &name, Temporary::Group(&group), holder)
            .map_err(|e| self.users_failure("users.add-temporary-membership", e))?;
        if made.permanent {
            return Err(HostError::Invalid(format!(
                "{name} is in {group} for good already: remove it first (group-remove) to add it for a while"
            ))
            .into());
        }
        self.effect(format!(
            "users.add-temporary-membership {name} {group} until {}",
            crate::format_utc(made.expires_ms)
        ));
        Ok(made.expires_ms)
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
        // Removed by hand: its temporary entry, if any, must not bring it back.
        svc.forget_temporary(&name, Temporary::Group(&group))
            .map_err(|e| self.users_failure("users.remove-from-group", e))?;
        self.effect(format!("users.remove-from-group {name} {group}"));
        Ok(())
    }

    fn list(&mut self) -> Result<Vec<users::Account>, HostFault> {
        self.enter("users.list")?;
        let svc = self.users_service("users.list")?;
        let accounts = svc.accounts().map_err(|e| self.users_failure("users.list", e))?;
        let reach = Reach::new(&self.grant.users, svc.login_defs(), &self.client);
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

/// Parses a module's argument, or says why it is invalid.
fn parse<T: std::str::FromStr<Err = InvalidArg>>(s: &str) -> Result<T, HostFault> {
    s.parse().map_err(|e: InvalidArg| HostError::Invalid(e.0).into())
}

impl CallContext {
    /// The users service, or a refusal when this host has none.
    fn users_service(&mut self, call: &str) -> Result<Arc<Users>, HostFault> {
        match &self.services.users {
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
    /// such account, a new account of that name ([`crate::capability::users::reach`]).
    fn grant_user(
        &mut self,
        svc: &Users,
        call: &str,
        name: &UserName,
        existing: Option<&Account>,
    ) -> Result<(), HostFault> {
        let reach = Reach::new(&self.grant.users, svc.login_defs(), &self.client);
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
        Reach::new(&self.grant.users, svc.login_defs(), &self.client)
            .group(group, gid)
            .map_err(|why| self.deny(format!("{call} {group}: {why}")))
    }

    /// The calling client's hold on a temporary change of `kind` to `name` for `ttl_secs`, once
    /// the ttl is within the grant (`max_ttl_s` and the kind's own bound) and the host's
    /// ceilings (`[users] max_ttl_s` and the kind's own).
    fn temporary_holder(
        &mut self,
        svc: &Users,
        call: &str,
        name: &UserName,
        kind: TemporaryKind,
        ttl_secs: u32,
    ) -> Result<crate::ledger::Holder, HostFault> {
        let ceiling = svc.max_ttl_s(kind).unwrap_or(0);
        let limit = self
            .grant
            .users
            .ttl_bound(kind)
            .map_or(ceiling, |g| g.min(ceiling));
        if ttl_secs == 0 || u64::from(ttl_secs) > limit {
            return Err(self.deny(format!(
                "{call} {name}: a ttl of {ttl_secs} s is outside the grant (1 to {limit} s)"
            )));
        }
        let Some(key) = self.client_key else {
            return Err(
                HostError::Invalid("temporary changes need a client's key to hold them".into()).into(),
            );
        };
        Ok(crate::ledger::Holder {
            client: self.client.clone(),
            key,
            expires_ms: crate::now_ms().saturating_add(u64::from(ttl_secs) * 1000),
            request_id: self.request_id.clone(),
        })
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
}
