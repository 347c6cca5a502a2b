//! The host side of the `exec` WIT interface: the grant must name the program, its parameters
//! are parsed by their declared types and checked against the grant's narrowing, and only then
//! does the program run ([`super::Ready::run`]). The audit record gets the command line as run,
//! secrets masked.

use sesame_proto::ProgressSource;

use super::Exec;
use crate::host::bindings::sesame::host::exec;
use crate::host::{CallContext, HostError, HostFault, MAX_LOG_MESSAGE, truncate};
use crate::progress::TextTap;
use crate::system::{OutputTap, Pipe, ToolError};

impl exec::Host for CallContext {
    fn run(&mut self, name: String, params: Vec<(String, String)>) -> Result<exec::RunOutput, HostFault> {
        self.enter("exec.run")?;
        let Some(service) = self.services.exec.clone() else {
            return Err(self.deny("exec.run: this host declares no programs".to_owned()));
        };
        let service: &Exec = &service;
        let Some(allowed) = self.grant.exec.programs.get(&name).cloned() else {
            return Err(self.deny(format!("exec.run {name}: the grant does not name this program")));
        };
        let Some(ready) = service.program(&name) else {
            return Err(HostError::Invalid(format!("this host declares no program {name:?}")).into());
        };
        let invocation = ready
            .program
            .invocation(&params)
            .map_err(|why| HostError::Invalid(format!("exec.run {name}: {why}")))?;
        if let Err(why) = ready.program.check_grant(&allowed, &invocation) {
            return Err(self.deny(format!("exec.run {name}: {why}")));
        }
        let shown = invocation.shown(ready.path());
        // What it writes reaches a client that takes the output as it comes, as it is read.
        let streamed = self.progress.clone().map(|sink| {
            (
                TextTap::new(sink.clone(), ProgressSource::Output),
                TextTap::new(sink, ProgressSource::Errors),
            )
        });
        let tap = streamed.clone().map(|(out, err)| {
            OutputTap::new(move |pipe, bytes| match pipe {
                Pipe::Stdout => out.push(bytes),
                Pipe::Stderr => err.push(bytes),
            })
        });
        let ran = ready.run(&invocation, tap);
        let over = streamed.and_then(|(out, err)| out.finish().or(err.finish()));
        if let Some(over) = over {
            // It ran, and may have changed things: on record, then the module stops.
            self.effect(format!(
                "exec.run {name}: {shown} (its output passed the request's limit)"
            ));
            self.streamed_over = Some(over);
            return Err(HostFault::Trap(wasmtime::Error::msg(format!(
                "exec.run {name}: streamed output of {} bytes exceeds the limit of {} bytes",
                over.len, over.limit
            ))));
        }
        match ran {
            Ok(done) => {
                let code = done.output.status.code();
                let ms = u64::try_from(done.elapsed.as_millis()).unwrap_or(u64::MAX);
                let ended = code.map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}"));
                self.effect(format!("exec.run {name}: {shown} ({ended}, {ms} ms)"));
                Ok(exec::RunOutput {
                    exit_code: code,
                    stdout: done.output.stdout,
                    stderr: done.output.stderr,
                    duration_ms: ms,
                    truncated: done.truncated,
                })
            }
            Err(e) => {
                tracing::warn!(request = %self.request_id, "exec.run {name}: {shown}: {e}");
                // It ran, and may have changed things before it was killed.
                match e {
                    ToolError::Timeout { .. } => {
                        self.effect(format!("exec.run {name}: {shown} (killed at its time limit)"));
                    }
                    ToolError::Cancelled { .. } => {
                        self.effect(format!(
                            "exec.run {name}: {shown} (killed: cancelled by the client)"
                        ));
                    }
                    _ => {}
                }
                // The module (and so the client) hears what happened; paths and system errors
                // stay in the daemon log.
                let what = match &e {
                    ToolError::Timeout { deadline, .. } => {
                        format!("did not finish within {deadline:?} and was killed")
                    }
                    ToolError::OutOfTime { .. } => {
                        "was not started: the request's time limit ran out".to_owned()
                    }
                    ToolError::Cancelled { .. } => "was killed: the request was cancelled".to_owned(),
                    _ => "could not be started (see the daemon log)".to_owned(),
                };
                let mut message = format!("exec.run {name}: {what}");
                truncate(&mut message, MAX_LOG_MESSAGE);
                Err(self.failed(message))
            }
        }
    }
}
