//! Detached runs ([`Request::detach`]): the request is judged, given its slot and its client's
//! share, and its start audited like any other; then it is answered at once (`detached`) and
//! runs on in a thread of its own, which keeps its output and answer in
//! [`Results`](crate::results::Results) and writes its end record. The slot, the share and the
//! daemon's count of requests in hand go with it to that thread, so a detached run is bounded
//! like any other, and a daemon that stops waits (up to its drain time) for it as for any other.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use sesame_proto::{ErrorCode, Request};

use super::{Failure, Run, Runner, SlotGuard};
use crate::audit::{AuditEvent, RequestRecord};
use crate::clients::Client;
use crate::results;
use crate::sandbox::LoadedModule;

/// The audit phase of a detached request's first answer ("started, runs on"); its `end` record
/// comes when it ends.
pub(super) const PHASE: &str = "detached";

/// What a detached run takes with it, besides its request.
pub(super) struct Detached<'a> {
    pub client: &'a Client,
    pub source_ip: Option<IpAddr>,
    pub cluster: &'a str,
    pub module: Arc<LoadedModule>,
    pub grant: crate::policy::Grant,
}

impl Runner {
    /// Starts `request` detached: on record (kept result, start record) before it is answered,
    /// then run on its own thread with `slot` and `share`.
    pub(super) fn detach(
        self: &Arc<Self>,
        now_ms: u64,
        request: &Request,
        detached: Detached<'_>,
        record: &mut RequestRecord,
        slot: SlotGuard<'_>,
        share: crate::shares::Share<'_>,
    ) -> Result<String, Failure> {
        let Detached {
            client,
            source_ip,
            cluster,
            module,
            grant,
        } = detached;
        self.results
            .begin(results::Run {
                id: request.id,
                client: client.name.clone(),
                key: client.key,
                call: format!("{cluster}::{}", request.command),
                started_ms: now_ms,
                chunks: Vec::new(),
                answer: None,
            })
            .map_err(|e| {
                tracing::error!("refusing to detach a run whose result cannot be kept: {e}");
                Failure::new(ErrorCode::Internal, "internal error")
            })?;
        if let Err(f) = self.audit_start(now_ms, record) {
            let _ = self
                .results
                .finish(&request.id, f.code, &f.message, "", crate::now_ms());
            return Err(f);
        }
        let mut end = RequestRecord {
            phase: "end",
            ..record.clone()
        };
        record.phase = PHASE;
        let id = request.id;
        let (request, cluster) = (request.clone(), cluster.to_owned());
        let (name, key, groups) = (client.name.clone(), client.key, client.groups.clone());
        // Held from here by the run's thread: given back when it ends.
        std::mem::forget(slot);
        let share = share.hand_over();
        self.in_flight.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let runner = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("sesame-detached".into())
            .spawn(move || {
                let _slot = SlotGuard(&runner.running);
                let _share = runner.shares.adopt(share);
                let _in_flight = SlotGuard(&runner.in_flight);
                let run = Run {
                    request: &request,
                    client: &name,
                    key,
                    groups: &groups,
                    source_ip,
                    cluster: &cluster,
                    module: &module,
                    progress: Some(crate::progress::ProgressSink::kept(
                        request.id,
                        Arc::clone(&runner.results),
                    )),
                };
                let started = Instant::now();
                let (code, message, output) = match runner.run_module(&run, grant, &mut end) {
                    Ok(output) => (ErrorCode::Ok, String::new(), output),
                    Err(f) => (f.code, f.message, String::new()),
                };
                let now_ms = crate::now_ms();
                if let Err(e) = runner
                    .results
                    .finish(&request.id, code, &message, &output, now_ms)
                {
                    tracing::error!(id = %request.id, "keeping a detached run's result: {e}");
                }
                end.code = code.as_u16();
                end.message = message;
                end.duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                if let Err(e) = runner.audit.append(now_ms, &AuditEvent::Request(Box::new(end))) {
                    tracing::error!("{e}");
                }
            });
        if let Err(e) = spawned {
            // The thread never ran: what it would have given back is given back here.
            self.running.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            self.in_flight.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            self.shares.give_back(&client.name);
            record.phase = "end";
            tracing::error!("starting a detached run: {e}");
            let _ = self
                .results
                .finish(&id, ErrorCode::Internal, "internal error", "", crate::now_ms());
            return Err(Failure::new(ErrorCode::Internal, "internal error"));
        }
        Ok(String::new())
    }
}
