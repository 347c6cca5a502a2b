//! Running one command on many hosts at once, over QUIC and SQS alike.
//!
//! Every host gets its own request (its own id, its own host name, sealed to its own key), so
//! each daemon judges and audits it on its own. Hosts reached over SQS in the same region and
//! account share one reply queue reader. Which hosts are asked when is [`crate::rollout`]'s
//! concern.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sesame_proto::{ErrorCode, Request, Response, Sealer};

use crate::cancel::Canceller;
use crate::home::{HostEntry, Transport};
use crate::quic::{ClientError, Dialer, send_request, send_request_streaming};
use crate::sqs::SqsLink;
use crate::stream::OnProgress;

/// A host to run on, and how to reach it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The name the client knows it by.
    pub alias: String,
    /// Its entry in hosts.toml.
    pub entry: HostEntry,
    /// The transport to use.
    pub via: Transport,
}

/// How this client reaches hosts during one run: one QUIC socket for every host
/// ([`Dialer`]), and one SQS link per distinct set of AWS settings (or why it could not be
/// made), shared by the hosts reached through it.
#[derive(Debug, Default)]
pub struct Via {
    /// Where QUIC connections leave from.
    pub dialer: Dialer,
    /// The SQS links, by their settings.
    pub links: HashMap<sesame_sqs::Settings, Result<Arc<SqsLink>, String>>,
}

impl Via {
    /// The links the SQS hosts among `targets` need, each connected once.
    pub async fn connect(targets: &[Target], sealer: &Arc<Sealer>) -> Self {
        let mut links = HashMap::new();
        for t in targets.iter().filter(|t| t.via == Transport::Sqs) {
            let Some(route) = &t.entry.sqs else { continue };
            if let std::collections::hash_map::Entry::Vacant(slot) = links.entry(route.settings()) {
                let link = SqsLink::connect(slot.key(), Arc::clone(sealer))
                    .await
                    .map(Arc::new)
                    .map_err(|e| e.to_string());
                slot.insert(link);
            }
        }
        Self {
            dialer: Dialer::default(),
            links,
        }
    }

    /// `target`'s SQS link, if it has an SQS route.
    fn link(&self, target: &Target) -> Option<&Result<Arc<SqsLink>, String>> {
        self.links.get(&target.entry.sqs.as_ref()?.settings())
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Command {
    /// The cluster, if named.
    pub cluster: Option<String>,
    /// The command.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Why (`--reason`), sealed in every host's request.
    pub reason: Option<String>,
    /// Where the output goes as it comes: set, requests ask for it ([`Request::stream`]).
    pub progress: Option<OnProgress>,
    /// When to ask the hosts still running the command to stop it (Ctrl-C).
    pub cancel: Option<Canceller>,
    /// Ask each host to answer once the command has started and let it run on
    /// ([`Request::detach`]).
    pub detach: bool,
}

impl Command {
    /// `spec` (`COMMAND` or `CLUSTER::COMMAND`) with `args`.
    pub fn parse(spec: &str, args: Vec<String>) -> Self {
        let (cluster, command) = match spec.split_once("::") {
            Some((cluster, command)) => (Some(cluster.to_owned()), command.to_owned()),
            None => (None, spec.to_owned()),
        };
        Self {
            cluster,
            command,
            args,
            reason: None,
            progress: None,
            cancel: None,
            detach: false,
        }
    }

    /// This command's request for `target`, with a fresh id, issued at `now_ms`.
    pub fn request(&self, target: &Target, now_ms: u64) -> Request {
        Request {
            reason: self.reason.clone(),
            stream: self.progress.is_some() && !self.detach,
            detach: self.detach,
            ..Request::new(
                &mut rand_core::OsRng,
                now_ms,
                target.entry.daemon_name(&target.alias),
                self.cluster.as_deref(),
                &self.command,
                self.args.clone(),
            )
        }
    }

    /// Checks the request for every target as its host will (the protocol's limits on names
    /// and arguments, and one envelope's size), so that a request the host would refuse is
    /// refused here, saying why, rather than sent to a host that cannot tell the client.
    pub fn check(&self, targets: &[Target], client: &sesame_proto::PublicKey) -> Result<(), String> {
        for target in targets {
            let reply_to = (target.via == Transport::Sqs).then(|| sesame_sqs::reply_queue(client));
            let request = Request {
                reply_to,
                ..self.request(target, 0)
            };
            let too_large = |why: String| format!("the request is too large to send: {why}");
            request
                .validate()
                .map_err(|e| format!("the request cannot be sent: {e}"))?;
            let len = request.encode().len();
            if len > sesame_proto::MAX_MESSAGE_LEN {
                let args: usize = self.args.iter().map(String::len).sum();
                return Err(too_large(format!(
                    "{len} bytes encoded, and one request carries at most {} (its arguments take {args} bytes)",
                    sesame_proto::MAX_MESSAGE_LEN
                )));
            }
        }
        Ok(())
    }
}

/// How one host's request ended.
#[derive(Debug)]
pub struct Outcome {
    /// The host's alias.
    pub alias: String,
    /// The transport used.
    pub via: Transport,
    /// Its answer, or why none came.
    pub result: Result<Response, ClientError>,
    /// From sending to the answer.
    pub elapsed: Duration,
}

impl Outcome {
    /// Whether the command ran and succeeded.
    pub fn succeeded(&self) -> bool {
        matches!(&self.result, Ok(r) if r.status == sesame_proto::Status::Ok)
    }

    /// The outcome for scripts: `host`, `via`, `ok`, `elapsed_ms`, and `code`, `output` and
    /// `message` for an answer or `error` when none came.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "host": self.alias,
            "via": self.via.as_str(),
            "ok": self.succeeded(),
            "elapsed_ms": u64::try_from(self.elapsed.as_millis()).unwrap_or(u64::MAX),
        });
        match &self.result {
            Ok(r) => {
                v["code"] = r.code.as_u16().into();
                v["output"] = r.output.clone().into();
                v["message"] = r.message.clone().into();
                if r.detached {
                    v["detached"] = true.into();
                    v["id"] = r.id.to_string().into();
                }
                if let Some(p) = &r.pending {
                    v["pending"] = serde_json::json!({
                        "id": p.id,
                        "approvals": p.approvals,
                        "required": p.required,
                        "expires_at_ms": p.expires_at_ms,
                    });
                }
            }
            Err(e) => v["error"] = e.to_string().into(),
        }
        v
    }
}

/// The `--json` object for a host never asked: the rollout stopped first.
pub fn not_started_json(alias: &str, via: Transport) -> serde_json::Value {
    serde_json::json!({ "host": alias, "via": via.as_str(), "ok": false, "started": false })
}

/// Runs `command` on `target`; when its canceller's signal comes first, the host is asked to
/// cancel the request, and its answer to the request (3008, once stopped) still ends the wait.
pub async fn run_one(
    via: &Via,
    target: &Target,
    sealer: &Sealer,
    command: &Command,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let request = command.request(target, now_ms());
    let answer = ask(via, target, sealer, command, &request, timeout);
    let Some(canceller) = &command.cancel else {
        return answer.await;
    };
    tokio::pin!(answer);
    tokio::select! {
        done = &mut answer => return done,
        () = canceller.signalled() => {}
    }
    let cancel = Request {
        reason: command.reason.clone(),
        ..crate::cancel::command(&request.id.to_string()).request(target, now_ms())
    };
    let (done, cancelled) = tokio::join!(answer, send(via, target, sealer, &cancel, timeout));
    canceller.report(&target.alias, &cancelled);
    done
}

/// Sends `request`, `command`'s request for `target`, and waits for its answer, handing what
/// the host streams ahead of it to the command's `progress`.
async fn ask(
    via: &Via,
    target: &Target,
    sealer: &Sealer,
    command: &Command,
    request: &Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let Some(on_progress) = command.progress.as_ref().filter(|_| request.stream) else {
        return send(via, target, sealer, request, timeout).await;
    };
    let alias = target.alias.as_str();
    let print = |p: &sesame_proto::Progress| on_progress.call(alias, p);
    let answer = match target.via {
        Transport::Quic => {
            send_request_streaming(&via.dialer, &target.entry, sealer, request, timeout, print).await
        }
        Transport::Sqs => match via.link(target) {
            Some(Ok(sqs)) => {
                sqs.send_request_streaming(&target.entry, sealer, request, timeout, print)
                    .await
            }
            _ => send(via, target, sealer, request, timeout).await,
        },
    };
    match answer {
        // A sesamed older than streaming refuses the field (and ran nothing): ask again
        // without it, under a new id, so a client upgraded before its hosts still works with
        // them.
        Ok(response) if refuses_streaming(&response) => {
            let plain = Request {
                stream: false,
                ..command.request(target, now_ms())
            };
            send(via, target, sealer, &plain, timeout).await
        }
        other => other,
    }
}

/// Sends `request` to `target` by its transport and waits for the whole answer.
async fn send(
    via: &Via,
    target: &Target,
    sealer: &Sealer,
    request: &Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    match target.via {
        Transport::Quic => send_request(&via.dialer, &target.entry, sealer, request, timeout).await,
        Transport::Sqs => match via.link(target) {
            Some(Ok(link)) => link.send_request(&target.entry, sealer, request, timeout).await,
            Some(Err(e)) => Err(ClientError::Sqs(sesame_sqs::SqsError::Call {
                op: "connect",
                queue: sesame_sqs::reply_queue(&sealer.public_key()),
                message: e.clone(),
            })),
            None => Err(ClientError::NoRoute("SQS (no queue)")),
        },
    }
}

/// Whether `response` is an older sesamed's refusal of a request that asks for its output as it
/// comes: 2002, naming the field it does not know.
fn refuses_streaming(response: &Response) -> bool {
    response.code == ErrorCode::MalformedRequest && response.message.contains("unknown field `stream`")
}

/// The wall clock, Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use sesame_proto::{ErrorCode, RequestId, Response};

    use super::*;

    #[test]
    fn commands_name_their_cluster_with_two_colons() {
        let c = Command::parse("access::allow", vec!["22".into()]);
        assert_eq!(
            (c.cluster.as_deref(), c.command.as_str()),
            (Some("access"), "allow")
        );
        assert_eq!(c.args, ["22"]);
        let c = Command::parse("whoami", Vec::new());
        assert_eq!((c.cluster, c.command.as_str()), (None, "whoami"));
    }

    #[test]
    fn an_older_hosts_refusal_of_streaming_is_told_from_other_errors() {
        let id = RequestId::from_bytes([1; 16]);
        // What a sesamed without streaming answers (its Request::decode, through its Failure).
        let older = Response::error(
            id,
            ErrorCode::MalformedRequest,
            "malformed request: unknown field `stream`, expected one of `v`, `id`, `issued_at_ms`, \
             `host`, `cluster`, `command`, `args`, `reply_to`, `reason` at line 1 column 160",
        );
        assert!(refuses_streaming(&older));
        let other = Response::error(
            id,
            ErrorCode::MalformedRequest,
            "malformed request: argument 0 contains NUL",
        );
        assert!(!refuses_streaming(&other));
        let denied = Response::error(id, ErrorCode::Denied, "unknown field `stream`");
        assert!(!refuses_streaming(&denied), "only a malformed-request answer");
    }

    #[test]
    fn outcomes_as_json() {
        let answered = Outcome {
            alias: "web1".into(),
            via: Transport::Quic,
            result: Ok(Response::error(
                RequestId::from_bytes([1; 16]),
                ErrorCode::Denied,
                "no".to_owned(),
            )),
            elapsed: Duration::from_millis(12),
        };
        let v = answered.to_json();
        assert_eq!(
            v,
            serde_json::json!({"host": "web1", "via": "quic", "ok": false, "elapsed_ms": 12,
                "code": 1010, "output": "", "message": "no"})
        );
        let silent = Outcome {
            alias: "db1".into(),
            via: Transport::Sqs,
            result: Err(ClientError::Timeout(Duration::from_secs(3))),
            elapsed: Duration::from_secs(3),
        };
        let v = silent.to_json();
        assert_eq!((v["ok"].as_bool(), v["via"].as_str()), (Some(false), Some("sqs")));
        assert_eq!(v["error"], "no answer within 3s");
    }
}
