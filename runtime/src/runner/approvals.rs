//! The runner's side of two-person approval: parking a request whose decision asks for
//! approvals, the daemon's own `approvals` commands (`pending`, `approve`, `reject`, `result`:
//! ordinary sealed requests, judged by the policy like any other), running what was approved
//! with the grant decided when it was asked, and expiring what was not.

use std::time::Instant;

use sesame_proto::{ErrorCode, Request};

use super::{Failure, Peer, Run, Runner, StartError};
use crate::approvals::{
    ApprovalError, Approved, BUILTIN_DIGEST, CLUSTER, COMMANDS, PENDING_DIR, Parked, State, Store,
};
use crate::audit::{ApprovalRecord, AuditEvent, AuditLog, RequestRecord};
use crate::clients::Client;
use crate::config::Config;
use crate::policy::{Grant, ModuleInput};
use crate::sandbox::LoadedModule;

/// Opens the store of parked requests, auditing what a stop cut off and what could not be read.
pub(super) fn open_store(config: &Config, audit: &AuditLog, now_ms: u64) -> Result<Store, StartError> {
    let dir = config.state_dir.join(PENDING_DIR);
    let (store, opened) =
        Store::open(&dir, now_ms).map_err(|source| StartError::Parked { path: dir, source })?;
    for p in &opened.interrupted {
        tracing::warn!(id = %p.request.id, call = %p.call(), "an approved request was running when the daemon stopped: it is not run again");
        append(audit, now_ms, step("interrupted", p, None, None));
    }
    for (path, why) in &opened.unreadable {
        tracing::error!(path = %path.display(), "unreadable parked request set aside (renamed .bad): {why}");
        let event = ApprovalRecord {
            action: "set-aside",
            id: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            note: Some(why.clone()),
            ..ApprovalRecord::default()
        };
        append(audit, now_ms, event);
    }
    if store.waiting() > 0 {
        tracing::info!(waiting = store.waiting(), "requests waiting for approval");
    }
    Ok(store)
}

impl Runner {
    /// Parks an allowed request whose grant asks for approvals: audited, then on disk, then
    /// the requester is told (1020, with the note to wait on).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn park(
        &self,
        now_ms: u64,
        request: &Request,
        client: &Client,
        peer: &Peer,
        cluster: &str,
        module: &LoadedModule,
        grant: Grant,
        record: &RequestRecord,
    ) -> Result<String, Failure> {
        let rule = grant
            .approvals
            .clone()
            .ok_or_else(|| Failure::new(ErrorCode::Internal, "internal error"))?;
        let parked = Parked {
            request: request.clone(),
            client: client.name.clone(),
            key: client.key,
            groups: client.groups.clone(),
            cluster: cluster.to_owned(),
            module_digest: module.digest.clone(),
            policy_revision: record.policy_revision.clone().unwrap_or_default(),
            masked_args: record.args.clone(),
            grant,
            transport: peer.transport.to_owned(),
            source_ip: peer.source_ip,
            created_ms: now_ms,
            expires_ms: now_ms.saturating_add(rule.ttl_s.saturating_mul(1000)),
            approvals: Vec::new(),
            state: State::Waiting,
        };
        self.audit
            .append(
                now_ms,
                &AuditEvent::Approval(Box::new(record_of("requested", &parked))),
            )
            .map_err(|e| {
                tracing::error!("refusing to park a request unaudited: {e}");
                Failure::new(ErrorCode::Internal, "internal error")
            })?;
        let note = self.parked.park(parked).map_err(failure)?;
        let from = if rule.groups.is_empty() {
            String::new()
        } else {
            format!(" from group {}", rule.groups.join(" or "))
        };
        Err(Failure {
            code: ErrorCode::ApprovalPending,
            message: format!(
                "parked until {} other client{} approve{}{from} (by {}): id {}",
                rule.count,
                if rule.count == 1 { "" } else { "s" },
                if rule.count == 1 { "s" } else { "" },
                crate::format_utc(note.expires_at_ms),
                note.id
            ),
            pending: Some(note),
        })
    }

    /// `approvals::pending|approve|reject|result`: judged by the policy like any command (the
    /// module the policy sees is `approvals::COMMAND` with digest `builtin:approvals`), then
    /// checked against each parked request's own rule.
    pub(super) fn approvals_command(
        &self,
        now_ms: u64,
        request: &Request,
        client: &Client,
        peer: &Peer,
        record: &mut RequestRecord,
    ) -> Result<String, Failure> {
        let command = request.command.as_str();
        if !COMMANDS.contains(&command) {
            return Err(Failure::new(
                ErrorCode::UnknownCommand,
                format!(
                    "unknown command \"{CLUSTER}::{command}\" ({CLUSTER} has {})",
                    COMMANDS.join(", ")
                ),
            ));
        }
        record.cluster = Some(CLUSTER.to_owned());
        record.module_digest = Some(BUILTIN_DIGEST.to_owned());
        let module = ModuleInput {
            name: format!("{CLUSTER}::{command}"),
            digest: BUILTIN_DIGEST.to_owned(),
            imports: Vec::new(),
        };
        let grant = self.judge(now_ms, request, client, peer, CLUSTER, module, record)?;
        if grant.approvals.is_some() {
            return Err(Failure::new(
                ErrorCode::Denied,
                format!(
                    "the policy asks for approvals of {CLUSTER}::{command}, which cannot itself wait for approval"
                ),
            ));
        }
        let id_arg = || match request.args.as_slice() {
            [id] => Ok(id.as_str()),
            _ => Err(Failure::new(
                ErrorCode::InvalidArgument,
                format!("{CLUSTER}::{command} takes one argument: the parked request's id"),
            )),
        };
        let (name, groups) = (client.name.as_str(), client.groups.as_slice());
        // What the caller may see: its own requests, and those it may approve.
        // (Its name *and* key: a client enrolled again under a name holds nothing of the old one's.)
        let own = |p: &Parked| p.client == name && p.key == client.key;
        let involved = |p: &Parked| own(p) || p.admits(name, groups);
        match command {
            "pending" => {
                if !request.args.is_empty() {
                    return Err(Failure::new(
                        ErrorCode::InvalidArgument,
                        "approvals::pending takes no arguments",
                    ));
                }
                Ok(self.pending_list(name, groups))
            }
            "approve" => {
                let id = self.parked.find(id_arg()?, involved).map_err(failure)?;
                let slot = self.try_slot().ok_or_else(|| self.busy())?;
                match self.parked.approve(&id, name, groups, now_ms).map_err(failure)? {
                    Approved::Waiting(p) => {
                        append(&self.audit, now_ms, step("approved", &p, Some(name), None));
                        Ok(format!(
                            "approved {id} ({} of {}): waiting for {} more\n",
                            p.approvals.len(),
                            p.required(),
                            p.required() as usize - p.approvals.len()
                        ))
                    }
                    Approved::Run(p) => {
                        append(&self.audit, now_ms, step("approved", &p, Some(name), None));
                        let state = self.run_approved(&p, slot);
                        let ran = match &state {
                            State::Done {
                                code: ErrorCode::Ok, ..
                            } => "ok".to_owned(),
                            State::Done { code, .. } => format!("error {}", code.as_u16()),
                            other => format!("{other:?}"),
                        };
                        if let Err(e) = self.parked.finish(&id, state) {
                            tracing::error!(%id, "recording how an approved request ended: {e}");
                        }
                        Ok(format!(
                            "approved {id} ({} of {}): it ran for {}: {ran}\n",
                            p.approvals.len(),
                            p.required(),
                            p.client
                        ))
                    }
                }
            }
            "reject" => {
                let id = self.parked.find(id_arg()?, involved).map_err(failure)?;
                let p = self
                    .parked
                    .reject(&id, name, groups, request.reason.clone(), now_ms)
                    .map_err(failure)?;
                let (action, said) = if p.client == name {
                    ("withdrawn", "withdrew")
                } else {
                    ("rejected", "rejected")
                };
                append(
                    &self.audit,
                    now_ms,
                    step(action, &p, Some(name), request.reason.clone()),
                );
                Ok(format!("{said} {id}\n"))
            }
            _ => {
                let id = self.parked.find(id_arg()?, own).map_err(failure)?;
                let p = self
                    .parked
                    .get(&id)
                    .ok_or_else(|| failure(ApprovalError::NotFound(id.to_string())))?;
                result_of(&p, now_ms)
            }
        }
    }

    /// Marks waiting requests past their time expired, each audited.
    pub(super) fn reap_parked(&self, now_ms: u64) {
        let (expired, errors) = self.parked.reap(now_ms);
        for p in &expired {
            tracing::info!(id = %p.request.id, call = %p.call(), "a request expired unapproved");
            append(&self.audit, now_ms, step("expired", p, None, None));
        }
        for e in errors {
            tracing::error!("parked requests: {e} (retrying)");
        }
    }

    /// The waiting requests the caller may approve, as JSON for `sesame pending`.
    fn pending_list(&self, name: &str, groups: &[String]) -> String {
        let list: Vec<serde_json::Value> = self
            .parked
            .approvable(name, groups)
            .iter()
            .map(|p| {
                serde_json::json!({
                    "id": p.request.id,
                    "client": p.client,
                    "call": p.call(),
                    "reason": p.request.reason,
                    "created_ms": p.created_ms,
                    "expires_ms": p.expires_ms,
                    "approvals": p.approvals.len(),
                    "required": p.required(),
                    "approved_by": p.approvals.iter().map(|a| a.client.as_str()).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::Value::Array(list).to_string()
    }

    /// Runs an approved request as it was asked for: its requester, its grant, its module (the
    /// one judged: a replaced module is not run), audited like any run, with who approved it.
    fn run_approved(&self, p: &Parked, slot: super::SlotGuard<'_>) -> State {
        let now_ms = crate::now_ms();
        let done = |code: ErrorCode, message: String, output: String| State::Done {
            at_ms: crate::now_ms(),
            code,
            message,
            output,
        };
        let clients = std::sync::Arc::clone(
            &self
                .clients
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if clients.by_key(&p.key).is_none_or(|c| c.name != p.client) {
            return done(
                ErrorCode::Denied,
                format!(
                    "client {} is no longer enrolled with the key it asked with: not run",
                    p.client
                ),
                String::new(),
            );
        }
        let module = match self.sandbox.module(&p.cluster, &p.request.command) {
            Some(m) if m.digest == p.module_digest => m,
            _ => {
                return done(
                    ErrorCode::Denied,
                    format!(
                        "the module of {}::{} changed since it was asked for: not run; ask again",
                        p.cluster, p.request.command
                    ),
                    String::new(),
                );
            }
        };
        let mut record = RequestRecord {
            phase: "end",
            id: p.request.id.to_string(),
            client: p.client.clone(),
            key: p.key.to_string(),
            transport: p.transport.clone(),
            source_ip: p.source_ip.map(|ip| ip.to_string()),
            cluster: Some(p.cluster.clone()),
            command: Some(p.request.command.clone()),
            args: p.masked_args.clone(),
            reason: p.request.reason.clone(),
            approved_by: p.approvals.iter().map(|a| a.client.clone()).collect(),
            module_digest: Some(p.module_digest.clone()),
            policy_revision: Some(p.policy_revision.clone()),
            decision: Some("allow"),
            reasons: p.grant.reasons.clone(),
            ..RequestRecord::default()
        };
        let run = Run {
            request: &p.request,
            client: &p.client,
            key: p.key,
            groups: &p.groups,
            source_ip: p.source_ip,
            cluster: &p.cluster,
            module: &module,
            // Its requester is not on the line: what it printed is in the result it fetches.
            progress: None,
        };
        let started = Instant::now();
        let result = self.execute(now_ms, &run, p.grant.clone(), &mut record, slot);
        let (code, message, output) = match result {
            Ok(output) => (ErrorCode::Ok, String::new(), output),
            Err(f) => (f.code, f.message, String::new()),
        };
        record.code = code.as_u16();
        record.message.clone_from(&message);
        record.duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        if let Err(e) = self
            .audit
            .append(crate::now_ms(), &AuditEvent::Request(Box::new(record)))
        {
            tracing::error!("{e}");
        }
        done(code, message, output)
    }
}

/// What `sesame result` gets for a parked request.
fn result_of(p: &Parked, now_ms: u64) -> Result<String, Failure> {
    let pending = |message: String| Failure {
        code: ErrorCode::ApprovalPending,
        message,
        pending: Some(p.note()),
    };
    match &p.state {
        State::Waiting if now_ms < p.expires_ms => Err(pending(format!(
            "waiting for approval: {} of {} (until {})",
            p.approvals.len(),
            p.required(),
            crate::format_utc(p.expires_ms)
        ))),
        State::Waiting | State::Expired { .. } => Err(Failure::new(
            ErrorCode::ApprovalRefused,
            format!(
                "it expired unapproved at {} ({} of {} approvals)",
                crate::format_utc(p.expires_ms),
                p.approvals.len(),
                p.required()
            ),
        )),
        State::Running { .. } => Err(pending("approved: running now".to_owned())),
        State::Done {
            code: ErrorCode::Ok,
            output,
            ..
        } => Ok(output.clone()),
        State::Done { code, message, .. } => Err(Failure::new(*code, message.clone())),
        State::Rejected { by, reason, .. } => Err(Failure::new(
            ErrorCode::ApprovalRefused,
            format!(
                "{} {}{}",
                by,
                if *by == p.client {
                    "withdrew it"
                } else {
                    "rejected it"
                },
                reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
            ),
        )),
        State::Interrupted { .. } => Err(Failure::new(
            ErrorCode::Internal,
            "it was approved, and the daemon stopped while it ran: it was not run again (the host's operator can tell what it did)",
        )),
    }
}

fn failure(e: ApprovalError) -> Failure {
    if let ApprovalError::Io { .. } = &e {
        tracing::error!("parked requests: {e}");
        return Failure::new(ErrorCode::Internal, "internal error");
    }
    Failure::new(e.code(), e.to_string())
}

/// The audit record of a step.
fn step(action: &'static str, p: &Parked, by: Option<&str>, note: Option<String>) -> ApprovalRecord {
    ApprovalRecord {
        by: by.map(str::to_owned),
        note,
        ..record_of(action, p)
    }
}

fn record_of(action: &'static str, p: &Parked) -> ApprovalRecord {
    ApprovalRecord {
        action,
        id: p.request.id.to_string(),
        client: p.client.clone(),
        by: None,
        call: p.call(),
        reason: p.request.reason.clone(),
        note: None,
        approvals: u32::try_from(p.approvals.len()).unwrap_or(u32::MAX),
        required: p.required(),
        expires_ms: p.expires_ms,
    }
}

fn append(audit: &AuditLog, now_ms: u64, event: ApprovalRecord) {
    if let Err(e) = audit.append(now_ms, &AuditEvent::Approval(Box::new(event))) {
        tracing::error!("{e}");
    }
}
