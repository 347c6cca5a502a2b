//! Whether a policy set's decisions may be remembered: a conservative check, on the parsed
//! policy, that the decision is a function of the parts of the input that repeat from one request
//! to the next.
//!
//! Two parts of every input never repeat: `input.request.id` (random) and `input.now_ns` (the
//! clock). A policy that reads neither, and calls nothing whose answer changes between two calls
//! with the same arguments (the clock, randomness, the network, the daemon's environment), gives
//! the same decision for two inputs that differ only there. [`Policy`](super::Policy) then keeps
//! decisions in a [`DecisionCache`](super::memo::DecisionCache) keyed by the rest of the input.
//!
//! The check reads every reference of every rule of every policy file (tests are not loaded by the
//! daemon, so are not read), as regorus parsed them ([`walk`](super::walk)): so `rand["intn"](…)`
//! is the call of `rand.intn` it is to regorus, whatever the spacing, comments or line breaks. It
//! says *cacheable* only when:
//!
//! - every reference to `input` (an import of it, a `with` replacing it, and one whose root is a
//!   local variable named `input` included) continues with `client`, `host`, `module`, or
//!   `request` and one of [`REPEATING_REQUEST_FIELDS`]: so no whole `input` or `input.request` is
//!   bound, passed, iterated or indexed with a computed key, and `input.now_ns` and
//!   `input.request.id` are never read;
//! - no reference names a builtin of [`VARYING_BUILTINS`], called or not (`with` could substitute
//!   one for a function), whatever variable it starts from;
//! - every call names a function of the policy set (directly, through `data.`, or through an
//!   import), or a builtin of [`DETERMINISTIC_BUILTINS`]; and every `with … as` value that names a
//!   builtin names one of those.
//!
//! Anything else is *not cacheable*, with the file and line of the first reason. The check can be
//! wrong only towards not caching: it may refuse a policy that is in fact deterministic (a local
//! variable that shares a builtin's name, `input.request[k]` with a constant `k`), never the other
//! way round.

use std::collections::BTreeSet;
use std::fmt;

use super::walk::{ModuleSummary, Role, Segment, dotted};

/// The fields of `input.request` that a repeated request repeats (everything but `id`).
pub(super) const REPEATING_REQUEST_FIELDS: [&str; 6] =
    ["cluster", "command", "args", "transport", "source_ip", "reason"];

/// The parts of `input` that repeat as a whole.
pub(super) const REPEATING_INPUT_PARTS: [&str; 3] = ["client", "host", "module"];

/// The parts of the input that never repeat, as `top` or `top.field`: the cache key blanks them
/// (`memo::blank_varying`). Tests hold this list, the two above and that function to the
/// input's fields.
#[cfg(test)]
pub(super) const VARYING_INPUT_PARTS: [&str; 2] = ["now_ns", "request.id"];

/// Builtins whose answer may change between two calls with the same arguments: the clock,
/// randomness, the network, the process. regorus 0.14 as sesame builds it has only `rand.intn`
/// of these; the others are listed so that a regorus upgrade or a feature turned on cannot make
/// them cacheable unnoticed.
pub(super) const VARYING_BUILTINS: [&str; 10] = [
    "time.now_ns",
    "rand.intn",
    "uuid.rfc4122",
    "http.send",
    "net.lookup_ip_addr",
    "opa.runtime",
    "test.sleep",
    "io.jwt.encode_sign",
    "io.jwt.encode_sign_raw",
    "crypto.x509.parse_and_verify_certificates",
];

/// Builtins of regorus that answer the same for the same arguments (within one daemon process:
/// `time.clock`, `time.date`, `time.format` and `time.weekday` read the process's time zone for
/// `"Local"`, which does not change while it runs).
pub(super) const DETERMINISTIC_BUILTINS: &[&str] = &[
    "__builtin_sets.intersection",
    "__builtin_sets.union",
    "abs",
    "array.concat",
    "array.reverse",
    "array.slice",
    "base64.decode",
    "base64.encode",
    "base64.is_valid",
    "base64url.decode",
    "base64url.encode",
    "base64url.encode_no_pad",
    "bits.and",
    "bits.lsh",
    "bits.negate",
    "bits.or",
    "bits.rsh",
    "bits.xor",
    "ceil",
    "concat",
    "contains",
    "count",
    "endswith",
    "floor",
    "format_int",
    "glob.match",
    "glob.quote_meta",
    "graph.reachable",
    "graph.reachable_paths",
    "hex.decode",
    "hex.encode",
    "indexof",
    "indexof_n",
    "intersection",
    "is_array",
    "is_boolean",
    "is_null",
    "is_number",
    "is_object",
    "is_set",
    "is_string",
    "json.filter",
    "json.is_valid",
    "json.marshal",
    "json.marshal_with_options",
    "json.match_schema",
    "json.patch",
    "json.remove",
    "json.unmarshal",
    "json.verify_schema",
    "lower",
    "max",
    "min",
    "net.cidr_contains",
    "net.cidr_expand",
    "net.cidr_is_valid",
    "numbers.range",
    "numbers.range_step",
    "object.filter",
    "object.get",
    "object.keys",
    "object.remove",
    "object.subset",
    "object.union",
    "object.union_n",
    "print",
    "product",
    "regex.find_all_string_submatch_n",
    "regex.find_n",
    "regex.globs_match",
    "regex.is_valid",
    "regex.match",
    "regex.replace",
    "regex.split",
    "regex.template_match",
    "replace",
    "round",
    "semver.compare",
    "semver.is_valid",
    "sort",
    "split",
    "sprintf",
    "startswith",
    "strings.any_prefix_match",
    "strings.any_suffix_match",
    "strings.count",
    "strings.replace_n",
    "strings.reverse",
    "substring",
    "sum",
    "time.add_date",
    "time.clock",
    "time.date",
    "time.diff",
    "time.format",
    "time.parse_duration_ns",
    "time.parse_ns",
    "time.parse_rfc3339_ns",
    "time.weekday",
    "to_number",
    "trace",
    "trim",
    "trim_left",
    "trim_prefix",
    "trim_right",
    "trim_space",
    "trim_suffix",
    "type_name",
    "union",
    "units.parse",
    "units.parse_bytes",
    "upper",
    "urlquery.decode",
    "urlquery.decode_object",
    "urlquery.encode",
    "urlquery.encode_object",
    "uuid.parse",
    "walk",
    "yaml.is_valid",
    "yaml.marshal",
    "yaml.unmarshal",
];

/// Why a policy set's decisions cannot be cached: the first thing the check refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Varying {
    /// The file, relative to the policy directory.
    pub file: String,
    /// 1-based.
    pub line: u32,
    /// What the policy does there, e.g. "reads input.now_ns".
    pub what: String,
}

impl fmt::Display for Varying {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

/// Checks the policy modules of a set, each with its file name (see the module documentation).
/// `Ok(())` means their decisions depend on neither `input.request.id` nor `input.now_ns`, and
/// on nothing else that changes.
pub(super) fn check(modules: &[(&str, &ModuleSummary)]) -> Result<(), Varying> {
    let functions: BTreeSet<Vec<String>> = modules
        .iter()
        .flat_map(|(_, module)| {
            module
                .rules
                .iter()
                .filter(|rule| rule.function)
                .map(|rule| full_path(&module.package, &rule.path))
        })
        .collect();
    for (file, module) in modules {
        check_module(module, &functions).map_err(|(line, what)| Varying {
            file: (*file).to_owned(),
            line,
            what,
        })?;
    }
    Ok(())
}

/// Checks one module; `functions` holds the full paths of the set's functions.
fn check_module(module: &ModuleSummary, functions: &BTreeSet<Vec<String>>) -> Result<(), (u32, String)> {
    for import in &module.imports {
        if import.root == "input" {
            check_input(&import.path).map_err(|what| (import.line, what))?;
        }
    }
    for reference in module.rules.iter().flat_map(|rule| &rule.references) {
        let at = |what: String| (reference.line, what);
        let text = dotted(&reference.root, &reference.path);
        if let Some(builtin) = VARYING_BUILTINS.iter().find(|b| names(&text, b)) {
            return Err(at(format!(
                "uses {builtin}, whose answer changes from call to call"
            )));
        }
        if reference.root == "input" {
            check_input(&reference.path).map_err(at)?;
            continue;
        }
        let calls = match reference.role {
            Role::Call => true,
            // `with f as g`: g is called in f's place when it names a builtin.
            Role::WithValue => !reference.local && regorus::unstable::BUILTINS.contains_key(text.as_str()),
            Role::Read | Role::WithTarget => false,
        };
        if calls
            && !names_function(module, &reference.root, &reference.path, functions)
            && !DETERMINISTIC_BUILTINS.contains(&text.as_str())
        {
            return Err(at(format!(
                "calls {text}, which is not known to answer the same for the same arguments"
            )));
        }
    }
    Ok(())
}

/// Whether `text` is `builtin` or a path below it.
fn names(text: &str, builtin: &str) -> bool {
    text.strip_prefix(builtin)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// Checks the path after one `input`: it must continue with a part that repeats.
fn check_input(path: &[Segment]) -> Result<(), String> {
    let field = |at: usize| match path.get(at) {
        Some(Segment::Field(f)) => Some(f.as_str()),
        _ => None,
    };
    match field(0) {
        Some(part) if REPEATING_INPUT_PARTS.contains(&part) => Ok(()),
        Some("request") => match field(1) {
            Some(f) if REPEATING_REQUEST_FIELDS.contains(&f) => Ok(()),
            Some(f) => Err(format!("reads input.request.{f}")),
            None => Err("reads input.request as a whole or by a computed key".to_owned()),
        },
        Some(part) => Err(format!("reads input.{part}")),
        None => Err("reads input as a whole or by a computed key".to_owned()),
    }
}

/// Whether a call path names a function of the set, as regorus resolves it: through `data`, an
/// import of `data`, or the module's own package.
fn names_function(
    module: &ModuleSummary,
    root: &str,
    path: &[Segment],
    functions: &BTreeSet<Vec<String>>,
) -> bool {
    let fields: Option<Vec<String>> = path
        .iter()
        .map(|s| match s {
            Segment::Field(f) => Some(f.clone()),
            Segment::Dynamic => None,
        })
        .collect();
    let Some(fields) = fields else {
        return false;
    };
    let candidates = if root == "data" {
        vec![std::iter::once(root.to_owned()).chain(fields).collect::<Vec<_>>()]
    } else {
        let mut found: Vec<Vec<String>> = module
            .imports
            .iter()
            .filter(|i| i.root == "data" && i.alias == root)
            .filter_map(|i| {
                let import: Option<Vec<String>> = i
                    .path
                    .iter()
                    .map(|s| match s {
                        Segment::Field(f) => Some(f.clone()),
                        Segment::Dynamic => None,
                    })
                    .collect();
                Some(
                    std::iter::once("data".to_owned())
                        .chain(import?)
                        .chain(fields.iter().cloned())
                        .collect(),
                )
            })
            .collect();
        let mut own = vec![root.to_owned()];
        own.extend(fields.iter().cloned());
        found.push(full_path(&module.package, &own));
        found
    };
    candidates.iter().any(|c| functions.contains(c))
}

fn full_path(package: &[String], path: &[String]) -> Vec<String> {
    std::iter::once("data".to_owned())
        .chain(package.iter().cloned())
        .chain(path.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verdict on a set of files named `p0.rego`, `p1.rego`…, parsed as the daemon parses them.
    pub(in crate::policy) fn verdict_of(sources: &[&str]) -> Result<(), Varying> {
        let mut engine = regorus::Engine::new();
        for (i, source) in sources.iter().enumerate() {
            engine
                .add_policy(format!("p{i}.rego"), (*source).to_owned())
                .unwrap_or_else(|e| panic!("{source}: {e}"));
        }
        let summaries: Vec<ModuleSummary> = engine
            .get_modules()
            .iter()
            .map(|m| super::super::walk::summarise(m))
            .collect();
        let names: Vec<String> = (0..sources.len()).map(|i| format!("p{i}.rego")).collect();
        let modules: Vec<(&str, &ModuleSummary)> = names.iter().map(String::as_str).zip(&summaries).collect();
        check(&modules)
    }

    fn verdict(source: &str) -> Result<(), String> {
        verdict_of(&[source]).map_err(|v| v.to_string())
    }

    #[test]
    fn the_stock_policy_is_cacheable() {
        let stock = include_str!("../../../policies/sesame.rego");
        assert_eq!(verdict(stock), Ok(()));
    }

    #[test]
    fn reading_what_repeats_is_cacheable() {
        let policy = r#"package sesame
import rego.v1
import data.lib.names
import data.lib.more as extra

# input.now_ns in a comment does not count
decision := {"allow": true, "reasons": [sprintf("%v", [input.request.args[0]])]} if {
    input.client.groups[_] == "ops"
    input.request.command in {"echo", "time.now_ns"}
    some label, value in input.host.labels
    names.check(input.module.digest)
    extra.f(input.request.source_ip)
    data.lib.g(input.request.cluster)
    helper(1)
    s := `input.request.id`
    input["client"]["name"] == "alice"
}

helper(x) := x + 1
"#;
        let lib = "package lib
names.check(x) := true
more.f(x) := true
g(x) := true
";
        assert_eq!(verdict_of(&[policy, lib]), Ok(()));
    }

    #[test]
    fn reading_what_varies_is_not_cacheable() {
        let cases = [
            ("x := input.now_ns", "p0.rego:2: reads input.now_ns"),
            ("x := input.request.id", "p0.rego:2: reads input.request.id"),
            ("x := input.request[\"id\"]", "p0.rego:2: reads input.request.id"),
            ("x := input[\"now_ns\"]", "p0.rego:2: reads input.now_ns"),
            (
                "x := input.request",
                "p0.rego:2: reads input.request as a whole or by a computed key",
            ),
            (
                "x := input.request[k] if { some k in [\"id\"] }",
                "p0.rego:2: reads input.request as a whole or by a computed key",
            ),
            (
                "x := input",
                "p0.rego:2: reads input as a whole or by a computed key",
            ),
            (
                "x := y.now_ns if { y := input }",
                "p0.rego:2: reads input as a whole or by a computed key",
            ),
            (
                "x := json.marshal(input)",
                "p0.rego:2: reads input as a whole or by a computed key",
            ),
            (
                "x := object.get(input, \"now_ns\", 0)",
                "p0.rego:2: reads input as a whole or by a computed key",
            ),
            ("x := input.future_field", "p0.rego:2: reads input.future_field"),
            (
                "import input.request",
                "p0.rego:2: reads input.request as a whole or by a computed key",
            ),
            (
                "f := true\nx if { f with input as {} }",
                "p0.rego:3: reads input as a whole or by a computed key",
            ),
            (
                "f := true\nx if { f with input.request.id as \"x\" }",
                "p0.rego:3: reads input.request.id",
            ),
            (
                "x := unknown_fn(1)",
                "p0.rego:2: calls unknown_fn, which is not known to answer the same for the same arguments",
            ),
            (
                "x := lib.f(1)",
                "p0.rego:2: calls lib.f, which is not known to answer the same for the same arguments",
            ),
        ];
        for (line, expected) in cases {
            let source = format!("package sesame\n{line}\n");
            assert_eq!(verdict(&source), Err(expected.to_owned()), "{line}");
        }
    }

    #[test]
    fn the_reason_names_the_file_and_line_in_any_file_of_the_set() {
        let clean = "package sesame\ndecision := {\"allow\": false}\n";
        let varying = "package lib\n\n\nnow := input.now_ns\n";
        let found = verdict_of(&[clean, varying]).expect_err("input.now_ns is read");
        assert_eq!(
            found,
            Varying {
                file: "p1.rego".to_owned(),
                line: 4,
                what: "reads input.now_ns".to_owned()
            }
        );
    }

    #[test]
    fn every_builtin_of_regorus_is_sorted_into_deterministic_or_varying() {
        // A regorus upgrade or a feature turned on may add builtins: each must be judged here
        // before a policy calling it can be cached (an unlisted one is not cacheable meanwhile).
        let unsorted: Vec<&str> = regorus::unstable::BUILTINS
            .keys()
            .copied()
            .filter(|b| !DETERMINISTIC_BUILTINS.contains(b) && !VARYING_BUILTINS.contains(b))
            .collect();
        assert_eq!(unsorted, Vec::<&str>::new());
        for varying in VARYING_BUILTINS {
            assert!(!DETERMINISTIC_BUILTINS.contains(&varying), "{varying}");
        }
    }

    #[test]
    fn the_lists_cover_every_field_of_the_input() {
        // A new input field must be sorted into what repeats or what varies, or the cache key and
        // this check would disagree about it.
        let input = crate::policy::PolicyInput {
            client: crate::policy::ClientInput {
                name: String::new(),
                key: String::new(),
                groups: vec![],
            },
            request: crate::policy::RequestInput {
                id: String::new(),
                cluster: String::new(),
                command: String::new(),
                args: vec![],
                transport: String::new(),
                source_ip: None,
                // Some: an absent reason is left out of the input, and every field must show.
                reason: Some(String::new()),
            },
            host: crate::policy::HostInput {
                name: String::new(),
                labels: Default::default(),
            },
            module: crate::policy::ModuleInput {
                name: String::new(),
                digest: String::new(),
                imports: vec![],
            },
            now_ns: 0,
        };
        let value = serde_json::to_value(&input).expect("the input serialises");
        let mut listed: Vec<String> = REPEATING_INPUT_PARTS.iter().map(|p| (*p).to_owned()).collect();
        listed.extend(REPEATING_REQUEST_FIELDS.iter().map(|f| format!("request.{f}")));
        listed.extend(VARYING_INPUT_PARTS.iter().map(|p| (*p).to_owned()));
        listed.sort();
        let mut fields = Vec::new();
        for (top, inner) in value.as_object().expect("an object") {
            if top == "request" {
                fields.extend(
                    inner
                        .as_object()
                        .expect("request is an object")
                        .keys()
                        .map(|k| format!("request.{k}")),
                );
            } else {
                fields.push(top.clone());
            }
        }
        fields.sort();
        assert_eq!(fields, listed);
    }
}
