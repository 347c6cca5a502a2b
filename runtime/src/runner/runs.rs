//! The runner's side of the daemon's own `runs` cluster ([`crate::runs`]): a client's cancel of
//! a request of its own that runs now.

use sesame_proto::{ErrorCode, Request};

use super::{Failure, Runner};
use crate::audit::RequestRecord;
use crate::clients::Client;
use crate::runs::{CLUSTER, COMMANDS, Cancelled, NotRunning};

/// The module digest the audit names for the daemon's own `runs` commands.
const BUILTIN_DIGEST: &str = "builtin:runs";

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
