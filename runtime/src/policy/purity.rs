//! Whether a policy set's decisions may be remembered: a conservative, lexical check that the
//! decision is a function of the parts of the input that repeat from one request to the next.
//!
//! Two parts of every input never repeat: `input.request.id` (random) and `input.now_ns` (the
//! clock). A policy that reads neither, and calls nothing whose answer changes between two calls
//! with the same arguments (the clock, randomness, the network, the daemon's environment), gives
//! the same decision for two inputs that differ only there. [`Policy`](super::Policy) then keeps
//! decisions in a [`DecisionCache`](super::memo::DecisionCache) keyed by the rest of the input.
//!
//! The check reads the tokens of every policy file (tests are not loaded by the daemon, so are not
//! read). It says *cacheable* only when:
//!
//! - every mention of `input` continues with `.client`, `.host`, `.module`, or `.request.` and one
//!   of [`REPEATING_REQUEST_FIELDS`]: so no whole `input` or `input.request` is bound, passed,
//!   iterated or indexed with a computed key, and `input.now_ns` and `input.request.id` are never
//!   read (`import input.request` and `with input as` fail the check too);
//! - no name of [`VARYING_BUILTINS`] appears, called or not (`with` could substitute one);
//! - every call names a rule or function of the policy set, an imported `data` path, a `data.`
//!   path, or a builtin of [`DETERMINISTIC_BUILTINS`];
//! - no template string (`$"…"`, OPA's, which regorus 0.14 does not parse) appears: the scanner
//!   reads it as a plain string and would not see the references inside.
//!
//! Anything else is *not cacheable*, with the file and line of the first reason. The check can be
//! wrong only towards not caching: it may refuse a policy that is in fact deterministic (a call
//! through an alias it does not resolve, `input.request[k]` with a constant `k`), never the other
//! way round.

use std::collections::BTreeSet;
use std::fmt;

use super::bundle::{BundleFile, FileKind};
use super::source::{self, Token, TokenKind};

/// The fields of `input.request` that a repeated request repeats (everything but `id`).
pub(super) const REPEATING_REQUEST_FIELDS: [&str; 5] =
    ["cluster", "command", "args", "transport", "source_ip"];

/// The parts of `input` that repeat as a whole.
pub(super) const REPEATING_INPUT_PARTS: [&str; 3] = ["client", "host", "module"];

/// The parts of the input that never repeat, as `top` or `top.field`: the cache key blanks them
/// (`memo::blank_varying`). Tests hold this list, the two above and that function to the
/// input's fields.
#[cfg(test)]
pub(super) const VARYING_INPUT_PARTS: [&str; 2] = ["now_ns", "request.id"];

/// Builtins whose answer may change between two calls with the same arguments.
pub(super) const VARYING_BUILTINS: [&str; 6] = [
    "time.now_ns",
    "rand.intn",
    "uuid.rfc4122",
    "http.send",
    "opa.runtime",
    "test.sleep",
];

/// Builtins of regorus that answer the same for the same arguments (within one daemon process:
/// `time.clock`, `time.date`, `time.format` and `time.weekday` read the process's time zone for
/// `"Local"`, which does not change while it runs).
pub(super) const DETERMINISTIC_BUILTINS: &[&str] = &[
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

/// Keywords that may stand before `(` without calling anything.
const KEYWORDS: [&str; 11] = [
    "if", "else", "not", "some", "every", "in", "with", "as", "default", "import", "package",
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

/// Checks the policy files of a bundle (see the module documentation). `Ok(())` means their
/// decisions depend on neither `input.request.id` nor `input.now_ns`, and on nothing else that
/// changes.
pub(super) fn check(files: &[BundleFile]) -> Result<(), Varying> {
    let policies: Vec<&BundleFile> = files.iter().filter(|f| f.kind == FileKind::Policy).collect();
    let declared: BTreeSet<String> = policies
        .iter()
        .flat_map(|f| source::rule_heads(&f.contents))
        .map(|h| h.name)
        .collect();
    for file in policies {
        check_file(&file.contents, &declared).map_err(|(line, what)| Varying {
            file: file.name.clone(),
            line,
            what,
        })?;
    }
    Ok(())
}

/// Checks one file; `declared` holds the rule and function names of the whole set.
fn check_file(contents: &str, declared: &BTreeSet<String>) -> Result<(), (u32, String)> {
    let tokens = source::tokens(contents);
    let aliases = data_import_aliases(&tokens);
    for (index, token) in tokens.iter().enumerate() {
        if token.is(b'$')
            && tokens
                .get(index + 1)
                .is_some_and(|t| t.kind == TokenKind::Literal)
        {
            // OPA's template strings (`$"{input.now_ns}"`): regorus 0.14 has none, and the
            // scanner sees one as a plain string, so it could not see what one reads.
            return Err((
                token.line,
                "uses a template string, which this check cannot read".to_owned(),
            ));
        }
        let Some(text) = token.ident() else {
            continue;
        };
        if text == "input" {
            check_input(&tokens[index..]).map_err(|what| (token.line, what))?;
        }
        if index > 0 && tokens[index - 1].is(b'.') {
            continue; // inside a chain: the chain's first identifier judges it
        }
        let (chain, end) = chain(&tokens, index);
        if let Some(builtin) = VARYING_BUILTINS
            .iter()
            .find(|b| chain == **b || chain.strip_prefix(**b).is_some_and(|rest| rest.starts_with('.')))
        {
            return Err((
                token.line,
                format!("uses {builtin}, whose answer changes from call to call"),
            ));
        }
        let called = tokens.get(end).is_some_and(|t| t.is(b'('));
        if !called || KEYWORDS.contains(&chain.as_str()) {
            continue;
        }
        let first = chain.split('.').next().unwrap_or_default();
        let known = first == "data"
            || (chain == first && declared.contains(first))
            || (chain != first && aliases.contains(first))
            || DETERMINISTIC_BUILTINS.contains(&chain.as_str());
        if !known {
            return Err((
                token.line,
                format!("calls {chain}, which is not known to answer the same for the same arguments"),
            ));
        }
    }
    Ok(())
}

/// Checks the tokens from one `input` on: it must continue with a part that repeats.
fn check_input(tokens: &[Token<'_>]) -> Result<(), String> {
    let field = |at: usize| -> Option<&str> {
        tokens
            .get(at)
            .filter(|t| t.is(b'.'))
            .and_then(|_| tokens.get(at + 1))
            .and_then(Token::ident)
    };
    match field(1) {
        Some(part) if REPEATING_INPUT_PARTS.contains(&part) => Ok(()),
        Some("request") => match field(3) {
            Some(f) if REPEATING_REQUEST_FIELDS.contains(&f) => Ok(()),
            Some(f) => Err(format!("reads input.request.{f}")),
            None => Err("reads input.request as a whole or by a computed key".to_owned()),
        },
        Some(part) => Err(format!("reads input.{part}")),
        None => Err("reads input as a whole or by a computed key".to_owned()),
    }
}

/// The dotted name that starts at `tokens[start]` (an identifier), and the index just past it.
fn chain(tokens: &[Token<'_>], start: usize) -> (String, usize) {
    let mut name = tokens[start].ident().unwrap_or_default().to_owned();
    let mut end = start + 1;
    while let (Some(dot), Some(next)) = (tokens.get(end), tokens.get(end + 1)) {
        let Some(part) = next.ident().filter(|_| dot.is(b'.')) else {
            break;
        };
        name.push('.');
        name.push_str(part);
        end += 2;
    }
    (name, end)
}

/// The names `import data.…` statements bind: the last part of the path, or the `as` name.
fn data_import_aliases(tokens: &[Token<'_>]) -> BTreeSet<String> {
    let mut aliases = BTreeSet::new();
    for (index, token) in tokens.iter().enumerate() {
        if token.ident() != Some("import") || tokens.get(index + 1).and_then(Token::ident) != Some("data") {
            continue;
        }
        let (path, end) = chain(tokens, index + 1);
        let alias = match (tokens.get(end), tokens.get(end + 1)) {
            (Some(t), Some(name)) if t.ident() == Some("as") && name.line == t.line => name.ident(),
            _ => path.rsplit('.').next(),
        };
        if let Some(alias) = alias.filter(|a| *a != "data") {
            aliases.insert(alias.to_owned());
        }
    }
    aliases
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(sources: &[&str]) -> Vec<BundleFile> {
        sources
            .iter()
            .enumerate()
            .map(|(i, contents)| BundleFile {
                path: format!("p{i}.rego").into(),
                name: format!("p{i}.rego"),
                kind: FileKind::Policy,
                contents: (*contents).to_owned(),
            })
            .collect()
    }

    fn verdict(source: &str) -> Result<(), String> {
        check(&files(&[source])).map_err(|v| v.to_string())
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
}

helper(x) := x + 1
"#;
        assert_eq!(verdict(policy), Ok(()));
    }

    #[test]
    fn reading_what_varies_is_not_cacheable() {
        let cases = [
            ("x := input.now_ns", "p0.rego:2: reads input.now_ns"),
            ("x := input.request.id", "p0.rego:2: reads input.request.id"),
            ("x := input . request . id", "p0.rego:2: reads input.request.id"),
            (
                "x := input.request[\"id\"]",
                "p0.rego:2: reads input.request as a whole or by a computed key",
            ),
            (
                "x := input.request",
                "p0.rego:2: reads input.request as a whole or by a computed key",
            ),
            (
                "x := input",
                "p0.rego:2: reads input as a whole or by a computed key",
            ),
            (
                "x := input[k]",
                "p0.rego:2: reads input as a whole or by a computed key",
            ),
            (
                "x := json.marshal(input)",
                "p0.rego:2: reads input as a whole or by a computed key",
            ),
            ("x := input.future_field", "p0.rego:2: reads input.future_field"),
            (
                "import input.request",
                "p0.rego:2: reads input.request as a whole or by a computed key",
            ),
            (
                "x := f with input as {}",
                "p0.rego:2: reads input as a whole or by a computed key",
            ),
            (
                "x := time.now_ns()",
                "p0.rego:2: uses time.now_ns, whose answer changes from call to call",
            ),
            (
                "x := f with time.now_ns as g",
                "p0.rego:2: uses time.now_ns, whose answer changes from call to call",
            ),
            (
                "x := rand.intn(\"a\", 9)",
                "p0.rego:2: uses rand.intn, whose answer changes from call to call",
            ),
            (
                "x := uuid.rfc4122(\"a\")",
                "p0.rego:2: uses uuid.rfc4122, whose answer changes from call to call",
            ),
            (
                "x := http.send({})",
                "p0.rego:2: uses http.send, whose answer changes from call to call",
            ),
            (
                "x := opa.runtime()",
                "p0.rego:2: uses opa.runtime, whose answer changes from call to call",
            ),
            (
                "x := net.lookup_ip_addr(\"a\")",
                "p0.rego:2: calls net.lookup_ip_addr, which is not known to answer the same for the same arguments",
            ),
            (
                "x := $\"{input.now_ns}\"",
                "p0.rego:2: uses a template string, which this check cannot read",
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
        let found = check(&files(&[clean, varying])).expect_err("input.now_ns is read");
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
    fn test_files_are_not_read() {
        let mut set = files(&["package sesame\ndecision := {\"allow\": false}\n"]);
        set.push(BundleFile {
            path: "sesame_test.rego".into(),
            name: "sesame_test.rego".to_owned(),
            kind: FileKind::Test,
            contents: "package sesame_test\ntest_a if data.sesame.decision with input as {\"now_ns\": 1}\n"
                .to_owned(),
        });
        assert_eq!(check(&set), Ok(()));
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
