//! The input document of a decision (`input` in a policy), and how it becomes a regorus value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The input document of a decision: who asks, for what, on which host, with which module.
///
/// Serialised as `input` exactly as DESIGN §5 lays it out. Also read from JSON by
/// `sesamed policy eval --input FILE` (unknown keys are refused there, so typos show).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    /// The authenticated client.
    pub client: ClientInput,
    /// The request being decided.
    pub request: RequestInput,
    /// The host the daemon runs on.
    pub host: HostInput,
    /// The WebAssembly module that would run the command.
    pub module: ModuleInput,
    /// Wall-clock time of the decision, nanoseconds since the Unix epoch.
    pub now_ns: i64,
}

/// `input.client`: an enrolled client, as the client registry knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    /// The client's enrolled name.
    pub name: String,
    /// The client's public key (as the registry spells it).
    pub key: String,
    /// The groups the client belongs to.
    pub groups: Vec<String>,
}

/// `input.request`: the opened, fresh request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestInput {
    /// The request id (128-bit random hex).
    pub id: String,
    /// The cluster the command belongs to.
    pub cluster: String,
    /// The command's name within its cluster.
    pub command: String,
    /// The command's arguments, as sent.
    pub args: Vec<String>,
    /// The transport that carried the request: `"quic"` or `"sqs"`.
    pub transport: String,
    /// The source address the transport observed, when it has one (QUIC does, SQS does not).
    #[serde(default)]
    pub source_ip: Option<String>,
    /// Why the client asks (`sesame run --reason`). Absent from the input, not `null`, when the
    /// client gave none, so that a policy's `not input.request.reason` holds then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `input.host`: the host the daemon runs on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostInput {
    /// The daemon's host name (the one requests must name).
    pub name: String,
    /// Free-form labels from the daemon's configuration.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `input.module`: the module that would run the command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleInput {
    /// The module's name.
    pub name: String,
    /// The module's content digest, `"sha256:<hex>"`.
    pub digest: String,
    /// The sesame interfaces the module imports, e.g. `"sesame:host/firewall"`.
    #[serde(default)]
    pub imports: Vec<String>,
}

/// The input document as a regorus value: its serde form (the one `policy eval --input` reads),
/// built directly (going through a `serde_json` tree took a tenth of a trivial policy's
/// decision); `the_input_value_is_the_serde_form` keeps the two the same.
pub(super) fn input_value(input: &PolicyInput) -> regorus::Value {
    use regorus::Value;
    fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
        Value::from(
            fields
                .into_iter()
                .map(|(key, value)| (Value::from(key), value))
                .collect::<BTreeMap<Value, Value>>(),
        )
    }
    fn strings(items: &[String]) -> Value {
        Value::from(
            items
                .iter()
                .map(|s| Value::from(s.as_str()))
                .collect::<Vec<Value>>(),
        )
    }
    let text = |s: &String| Value::from(s.as_str());
    // Every struct taken apart whole, so a field added to the input cannot be left out here.
    let PolicyInput {
        client: ClientInput { name, key, groups },
        request:
            RequestInput {
                id,
                cluster,
                command,
                args,
                transport,
                source_ip,
                reason,
            },
        host: HostInput {
            name: host_name,
            labels,
        },
        module:
            ModuleInput {
                name: module_name,
                digest,
                imports,
            },
        now_ns,
    } = input;
    let mut request = BTreeMap::from([
        (Value::from("id"), text(id)),
        (Value::from("cluster"), text(cluster)),
        (Value::from("command"), text(command)),
        (Value::from("args"), strings(args)),
        (Value::from("transport"), text(transport)),
        (
            Value::from("source_ip"),
            source_ip.as_ref().map_or(Value::Null, text),
        ),
    ]);
    // Absent, not null, when the client gave none (see `RequestInput::reason`).
    if let Some(reason) = reason {
        request.insert(Value::from("reason"), text(reason));
    }
    let labels = labels
        .iter()
        .map(|(k, v)| (text(k), text(v)))
        .collect::<BTreeMap<_, _>>();
    object([
        (
            "client",
            object([
                ("name", text(name)),
                ("key", text(key)),
                ("groups", strings(groups)),
            ]),
        ),
        ("request", Value::from(request)),
        (
            "host",
            object([("name", text(host_name)), ("labels", Value::from(labels))]),
        ),
        (
            "module",
            object([
                ("name", text(module_name)),
                ("digest", text(digest)),
                ("imports", strings(imports)),
            ]),
        ),
        ("now_ns", Value::from(*now_ns)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_value_is_the_serde_form() {
        let serde_form = |input: &PolicyInput| {
            serde_json::from_value::<regorus::Value>(serde_json::to_value(input).expect("to json"))
                .expect("to value")
        };
        let plain = super::super::tests::input("alice", &["users", "ops"], "basic", "echo");
        let mut full = plain.clone();
        full.request.reason = Some("INC-1: \"quoted\" ünïcode".to_owned());
        full.request.args = vec![String::new(), "a b".to_owned(), "x".repeat(300)];
        full.host.labels = BTreeMap::from([
            ("env".to_owned(), "prod".to_owned()),
            ("zone".to_owned(), "b".to_owned()),
        ]);
        full.module.imports = vec!["sesame:host/firewall".to_owned()];
        full.now_ns = i64::MIN;
        let mut bare = plain.clone();
        bare.request.source_ip = None;
        bare.client.groups.clear();
        bare.request.args.clear();
        for case in [plain, full, bare] {
            assert_eq!(input_value(&case), serde_form(&case), "{case:?}");
        }
    }
}
