//! One request's way through the daemon once it is opened: admitted (fresh, not replayed,
//! within its client's share), resolved to a module, judged by the policy (the decision logged
//! before anything acts on it), and run in a module slot with its grant, audited first.

use std::sync::atomic::Ordering;

use sesame_proto::{ErrorCode, Request};

use super::request::{mask_args, policy_input, run_limits};
use super::{Failure, Peer, Run, Runner, SlotGuard, lock};
use crate::audit::{AuditEvent, RequestRecord};
use crate::clients::Client;
use crate::config::CommandLookupError;
use crate::host::{CallContext, Invocation};
use crate::policy::{Decision, ModuleInput, PolicyInput, RequestInput};

impl Runner {
    /// Everything between an opened request and its answer's output: see the module docs.
    pub(super) fn process(
        self: &std::sync::Arc<Self>,
        now_ms: u64,
        request: &Request,
        client: &Client,
        peer: &Peer,
        record: &mut RequestRecord,
        progress: Option<crate::progress::ProgressSink>,
    ) -> Result<String, Failure> {
        // Answers go to the queue derived from the sealing key (the SQS transport sends them
        // there); a request naming another queue is refused rather than quietly re-routed.
        if let Some(reply_to) = &request.reply_to {
            let own = sesame_proto::queues::reply_queue(&client.key);
            if *reply_to != own {
                return Err(Failure::new(
                    ErrorCode::MalformedRequest,
                    format!("reply_to {reply_to:?} is not this client's reply queue ({own})"),
                ));
            }
        }
        self.admit(now_ms, client, request)?;
        // Before the share: a client whose share is all taken by running requests can still
        // stop one of them.
        if request.cluster.as_deref() == Some(crate::runs::CLUSTER) {
            return self.runs_command(request, client, record);
        }
        // The id is on record (a replay of a refused request stays refused); now the client's
        // share, so that one client can never hold every slot of the daemon.
        let share = self.shares.take(&client.name).ok_or_else(|| {
            Failure::new(
                ErrorCode::Busy,
                format!(
                    "busy: client {} already has its share of the daemon ({} at a time)",
                    client.name,
                    self.shares.per_client()
                ),
            )
        })?;

        if request.cluster.as_deref() == Some(crate::approvals::CLUSTER) {
            return self.approvals_command(now_ms, request, client, peer, record);
        }
        let (cluster, module_path) = self
            .config
            .resolve_command(request.cluster.as_deref(), &request.command)
            .map_err(|e| match e {
                CommandLookupError::UnknownCluster(_) => {
                    Failure::new(ErrorCode::UnknownCluster, e.to_string())
                }
                _ => Failure::new(ErrorCode::UnknownCommand, e.to_string()),
            })?;
        record.cluster = Some(cluster.to_owned());
        let module = self.sandbox.module(cluster, &request.command).ok_or_else(|| {
            tracing::error!(path = %module_path.display(), "configured module was not loaded");
            Failure::new(ErrorCode::Internal, "internal error")
        })?;
        record.module_digest = Some(module.digest.clone());
        let grant = self.judge(
            now_ms,
            request,
            client,
            peer,
            cluster,
            module.policy_input(),
            record,
        )?;
        if grant.approvals.is_some() {
            return self.park(now_ms, request, client, peer, cluster, &module, grant, record);
        }
        let slot = self.try_slot().ok_or_else(|| self.busy())?;
        if request.detach {
            let detached = super::detach::Detached {
                client,
                source_ip: peer.source_ip,
                cluster,
                module,
                grant,
            };
            return self.detach(now_ms, request, detached, record, slot, share);
        }
        let run = Run {
            request,
            client: &client.name,
            key: client.key,
            groups: &client.groups,
            source_ip: peer.source_ip,
            cluster,
            module: &module,
            progress,
        };
        self.execute(now_ms, &run, grant, record, slot)
    }

    /// Asks the policy about `request` and logs the decision: the grant, or the denial as a
    /// failure. Arguments reach the logs only after the policy had its say on which to mask.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn judge(
        &self,
        now_ms: u64,
        request: &Request,
        client: &Client,
        peer: &Peer,
        cluster: &str,
        module: ModuleInput,
        record: &mut RequestRecord,
    ) -> Result<crate::policy::Grant, Failure> {
        let policy = self.current_policy();
        record.policy_revision = Some(policy.revision().to_owned());
        let mut secret = policy.masked_args(cluster, &request.command).to_vec();
        secret.extend(self.services.secret_args(&request.command, &request.args));
        let masked = mask_args(&request.args, &secret);
        record.args = masked.clone();

        let input = policy_input(&self.config, client, request, cluster, module, peer, now_ms);
        let deciding = std::time::Instant::now();
        let (decision, cached) = policy.decide_cached(&input);
        let decide_us = u64::try_from(deciding.elapsed().as_micros()).unwrap_or(u64::MAX);
        let logged_request = RequestInput {
            args: masked,
            ..input.request.clone()
        };
        self.log_decision(
            now_ms,
            &input,
            &logged_request,
            policy.revision(),
            Decided {
                decision: &decision,
                cached,
                decide_us,
            },
        )?;
        match decision {
            Decision::Allow(grant) => {
                record.decision = Some("allow");
                record.reasons = grant.reasons.clone();
                Ok(*grant)
            }
            Decision::Deny(reasons) => {
                record.decision = Some("deny");
                record.reasons = reasons.0.clone();
                let why = if reasons.0.is_empty() {
                    "no rule allows it".to_owned()
                } else {
                    reasons.0.join("; ")
                };
                Err(Failure::new(ErrorCode::Denied, why))
            }
        }
    }

    /// The answer when every module slot is taken.
    pub(super) fn busy(&self) -> Failure {
        Failure::new(
            ErrorCode::Busy,
            format!(
                "busy: {} requests already running",
                self.config.limits.max_concurrent
            ),
        )
    }

    /// Runs an allowed request's module with its grant, in the module slot `_slot`: the
    /// `start` record first (nothing runs unaudited), then the module.
    pub(super) fn execute(
        &self,
        now_ms: u64,
        run: &Run<'_>,
        grant: crate::policy::Grant,
        record: &mut RequestRecord,
        _slot: SlotGuard<'_>,
    ) -> Result<String, Failure> {
        self.audit_start(now_ms, record)?;
        self.run_module(run, grant, record)
    }

    /// Writes `record`'s `start` record: a request that cannot be audited does not run.
    pub(super) fn audit_start(&self, now_ms: u64, record: &RequestRecord) -> Result<(), Failure> {
        let start = RequestRecord {
            phase: "start",
            ..record.clone()
        };
        self.audit
            .append(now_ms, &AuditEvent::Request(Box::new(start)))
            .map(|_| ())
            .map_err(|e| {
                tracing::error!("refusing to run unaudited: {e}");
                Failure::new(ErrorCode::Internal, "internal error")
            })
    }

    /// Runs an allowed request's module with its grant, once its start is on record (the caller
    /// holds its module slot).
    pub(super) fn run_module(
        &self,
        run: &Run<'_>,
        grant: crate::policy::Grant,
        record: &mut RequestRecord,
    ) -> Result<String, Failure> {
        let Run {
            request,
            module,
            ref progress,
            ..
        } = *run;
        let limits = run_limits(&self.config.limits, &grant.limits);
        let invocation = Invocation {
            id: request.id.to_string(),
            cluster: run.cluster.to_owned(),
            command: request.command.clone(),
            args: request.args.clone(),
            client: run.client.to_owned(),
            groups: run.groups.to_vec(),
            source_ip: run.source_ip.map(|ip| ip.to_string()),
        };
        let running = self.runs.register(request.id, run.key);
        let outcome = self.sandbox.run(
            module,
            &invocation,
            CallContext::new(request.id.to_string(), grant)
                .with_caller(run.client.to_owned(), run.source_ip)
                .with_client_key(run.key)
                .with_services(self.services.clone())
                .with_progress(progress.clone())
                .with_cancel(running.switch()),
            limits,
        );
        let cancelled_by = running.cancelled_by();
        drop(running);
        if !outcome.stderr.is_empty() {
            tracing::warn!(request = %request.id, module = %module.name, "module stderr: {}", outcome.stderr.trim_end());
        }
        tracing::debug!(request = %request.id, elapsed_us = outcome.elapsed.as_micros(), calls = outcome.calls.host_calls, "ran");
        record.host_calls = outcome.calls.host_calls;
        record.denied.clone_from(&outcome.calls.denied);
        record.effects.clone_from(&outcome.calls.effects);
        outcome.result.map_err(|e| {
            let message = match &e {
                crate::sandbox::RunError::Internal(detail) => {
                    tracing::error!(request = %request.id, module = %module.name, "sandbox: {detail}");
                    "internal error".to_owned()
                }
                crate::sandbox::RunError::Cancelled => match cancelled_by {
                    Some(by) => format!("cancelled by the client (its request {by})"),
                    None => e.to_string(),
                },
                other => other.to_string(),
            };
            Failure::new(e.code(), message)
        })
    }

    /// Writes one decision to the decision log, with `request` (the input's request with its
    /// masked arguments) in place of the input's. A decision that cannot be logged does not run.
    pub(super) fn log_decision(
        &self,
        now_ms: u64,
        input: &PolicyInput,
        request: &RequestInput,
        revision: &str,
        decided: Decided<'_>,
    ) -> Result<(), Failure> {
        let Decided {
            decision,
            cached,
            decide_us,
        } = decided;
        #[derive(serde::Serialize)]
        struct DecisionRecord<'a> {
            decision_id: &'a str,
            client: &'a str,
            key: &'a str,
            groups: &'a [String],
            request: &'a RequestInput,
            module_digest: &'a str,
            policy_revision: &'a str,
            /// Whether the decision was remembered from an earlier request with the same input
            /// (less its id and time) rather than evaluated now.
            cached: bool,
            /// How long deciding took, in microseconds: the evaluation (its hand-over to a policy
            /// thread included), or the cache lookup.
            decide_us: u64,
            allow: bool,
            reasons: &'a [String],
            #[serde(skip_serializing_if = "Option::is_none")]
            grant: Option<&'a crate::policy::Grant>,
        }
        let record = DecisionRecord {
            decision_id: &request.id,
            client: &input.client.name,
            key: &input.client.key,
            groups: &input.client.groups,
            request,
            module_digest: &input.module.digest,
            policy_revision: revision,
            cached,
            decide_us,
            allow: decision.is_allowed(),
            reasons: decision.reasons(),
            grant: match decision {
                Decision::Allow(g) => Some(g.as_ref()),
                Decision::Deny(_) => None,
            },
        };
        self.decisions.append_record(now_ms, &record).map_err(|e| {
            tracing::error!("refusing to act on an unlogged decision: {e}");
            Failure::new(ErrorCode::Internal, "internal error")
        })
    }

    pub(super) fn admit(&self, now_ms: u64, client: &Client, request: &Request) -> Result<(), Failure> {
        let mut guard = lock(&self.replay);
        let (window, seen) = &mut *guard;
        window.admit(now_ms, &self.config.host_name, &client.key, request)?;
        // Persist before running: a crash after this point must not reopen the id.
        seen.record(&request.id, request.issued_at_ms).map_err(|e| {
            tracing::error!("replay log write failed; refusing the request: {e}");
            Failure::new(ErrorCode::Internal, "internal error")
        })?;
        if let Err(e) = seen.maybe_compact(window) {
            tracing::warn!("replay log compaction failed (will retry): {e}");
        }
        Ok(())
    }

    pub(super) fn try_slot(&self) -> Option<SlotGuard<'_>> {
        let max = self.config.limits.max_concurrent;
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| SlotGuard(&self.running))
    }
}

/// A decision as the decision log records it: what, and how it was reached.
#[derive(Debug, Clone, Copy)]
pub(super) struct Decided<'a> {
    /// The decision.
    pub(super) decision: &'a Decision,
    /// Whether it came from the decision cache.
    pub(super) cached: bool,
    /// How long deciding took, in microseconds.
    pub(super) decide_us: u64,
}
