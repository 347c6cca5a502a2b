//! The host side of the `salt` WIT interface: every call is counted, checked against the
//! request's grant and only then handed to salt-call ([`Salt`]).

use super::{Pillar, SaltError, StateName};
use crate::host::bindings::sesame::host::salt;
use crate::host::{CallContext, HostError, HostFault, MAX_LOG_MESSAGE, truncate};

impl salt::Host for CallContext {
    fn apply(
        &mut self,
        state: String,
        pillar: Option<String>,
        test: bool,
    ) -> Result<salt::ApplyReport, HostFault> {
        self.enter("salt.apply")?;
        let Some(service) = self.services.salt.clone() else {
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
        if let Err(why) = super::check_grant(&self.grant.salt, &state, pillar.as_ref()) {
            return Err(self.deny(format!("salt.apply {state}: {why}")));
        }
        let time_left = crate::deadline::cap(std::time::Duration::MAX);
        let mode = if test { " (test)" } else { "" };
        // Each state's start and end reach a client that takes the output as it comes.
        let progress = self.progress.clone().map(|sink| {
            Box::new(move |line: &str| {
                // Past the output limit the lines stop; the answer then fails on it (3003).
                let _ = sink.emit(sesame_proto::ProgressSource::Log, line);
            }) as super::ProgressLine
        });
        let report = match service.apply(&state, pillar.as_ref(), test, time_left, progress) {
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
                let killed = match &other {
                    SaltError::Tool(crate::system::ToolError::Timeout { .. }) => Some("at its deadline"),
                    SaltError::Tool(crate::system::ToolError::Cancelled { .. }) => {
                        Some("when the client cancelled")
                    }
                    _ => None,
                };
                if let Some(when) = killed {
                    self.effect(format!(
                        "salt.apply {state}{mode}: killed {when}, outcome unknown"
                    ));
                }
                self.failed(format!(
                    "salt.apply {state}: salt-call failed (see the daemon log)"
                ))
            }
        }
    }
}
