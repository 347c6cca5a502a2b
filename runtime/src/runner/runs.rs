//! The runner's side of the daemon's own `runs` cluster ([`crate::runs`]): a client's cancel of
//! a request of its own that runs now, and the fetch of a detached run's output and answer.

use sesame_proto::{ErrorCode, Request};

use super::{Failure, Runner, StartError};
use crate::audit::RequestRecord;
use crate::clients::Client;
use crate::runs::{CLUSTER, COMMANDS, Cancelled, NotRunning};

/// The module digest the audit names for the daemon's own `runs` commands.
const BUILTIN_DIGEST: &str = "builtin:runs";

/// Opens the store of detached runs' results, saying what a stop cut off and what could not be
/// read.
pub(super) fn open_results(
    config: &crate::config::Config,
    now_ms: u64,
) -> Result<crate::results::Results, StartError> {
    let dir = config.state_dir.join(crate::results::RESULTS_DIR);
    let limits = &config.limits;
    let (results, opened) = crate::results::Results::open(
        &dir,
        now_ms,
        limits.results_keep_s.saturating_mul(1000),
        usize::try_from(limits.results_kb_per_client.saturating_mul(1024)).unwrap_or(usize::MAX),
    )
    .map_err(|source| StartError::Results { path: dir, source })?;
    for id in &opened.interrupted {
        tracing::warn!(%id, "a detached run was running when the daemon stopped: it is not run again");
    }
    for (path, why) in &opened.unreadable {
        tracing::error!(path = %path.display(), "unreadable kept result set aside (renamed .bad): {why}");
    }
    Ok(results)
}

impl Runner {
    /// `runs::cancel ID`: stops the caller's own running request `ID` (see [`crate::runs`]).
    /// No policy rule is asked: a cancel can only take away what the same key was granted.
    pub(super) fn runs_command(
        &self,
        request: &Request,
        client: &Client,
        record: &mut RequestRecord,
    ) -> Result<String, Failure> {
        record.cluster = Some(CLUSTER.to_owned());
        record.module_digest = Some(BUILTIN_DIGEST.to_owned());
        record.args.clone_from(&request.args);
        match request.command.as_str() {
            "cancel" => {
                let [id] = request.args.as_slice() else {
                    return Err(Failure::new(
                        ErrorCode::InvalidArgument,
                        format!("{CLUSTER}::cancel takes one argument: the running request's id"),
                    ));
                };
                // Not judged: the record says so rather than showing an allow no policy gave.
                record.reasons = vec!["a client's cancel of its own request needs no policy rule".to_owned()];
                match self.runs.cancel(id, &client.key, request.id) {
                    Ok((id, Cancelled::Now)) => {
                        tracing::info!(%id, client = %client.name, by = %request.id, "cancelled by its client");
                        Ok(format!("cancelled {id}\n"))
                    }
                    Ok((id, Cancelled::Already)) => Ok(format!("{id} was already cancelled\n")),
                    Err(e @ NotRunning::BadId(_)) => {
                        Err(Failure::new(ErrorCode::InvalidArgument, e.to_string()))
                    }
                    Err(e) => Err(Failure::new(ErrorCode::UnknownRequest, e.to_string())),
                }
            }
            "result" => {
                let (id, from) = match request.args.as_slice() {
                    [id] => (id, 0),
                    [id, from] => (
                        id,
                        from.parse::<u32>().map_err(|_| {
                            Failure::new(
                                ErrorCode::InvalidArgument,
                                format!("{CLUSTER}::result: {from:?} is not a chunk number"),
                            )
                        })?,
                    ),
                    _ => {
                        return Err(Failure::new(
                            ErrorCode::InvalidArgument,
                            format!(
                                "{CLUSTER}::result takes the detached run's id, and the first chunk of its output to return"
                            ),
                        ));
                    }
                };
                record.reasons = vec!["a client's fetch of its own result needs no policy rule".to_owned()];
                let fetched = self.results.fetch(id, &client.key, from).map_err(|e| match e {
                    crate::results::NotKept::BadId(_) => {
                        Failure::new(ErrorCode::InvalidArgument, e.to_string())
                    }
                    _ => Failure::new(ErrorCode::UnknownRequest, e.to_string()),
                })?;
                serde_json::to_string(&fetched).map_err(|e| {
                    tracing::error!("encoding a kept result: {e}");
                    Failure::new(ErrorCode::Internal, "internal error")
                })
            }
            other => Err(Failure::new(
                ErrorCode::UnknownCommand,
                format!(
                    "unknown command \"{CLUSTER}::{other}\" ({CLUSTER} has {})",
                    COMMANDS.join(", ")
                ),
            )),
        }
    }
}
