//! Hostile and broken policies, one table: each case is a policy set and the exact outcome it
//! must have — refused at load with this message, denied with this reason, or loaded but not
//! cacheable for this reason — and the process must survive every one. Add a row for each new
//! way a policy can hurt the daemon.

use std::path::Path;
use std::time::{Duration, Instant};

use super::tests::input;
use super::*;

/// What must become of a policy set.
enum Expect {
    /// `Policy::load` fails with this message (the directory's path and `/` left out).
    Refused(String),
    /// It loads, and the stock input is denied with this one reason.
    Denied(&'static str),
    /// It loads, and its decisions may not be remembered, for this reason.
    NotCacheable(&'static str),
    /// It loads, the stock input is allowed, and decisions may be remembered.
    Allowed,
}

struct Case {
    name: &'static str,
    /// File name, contents.
    files: Vec<(&'static str, String)>,
    expect: Expect,
}

fn case(name: &'static str, policy: impl Into<String>, expect: Expect) -> Case {
    Case {
        name,
        files: vec![("p.rego", policy.into())],
        expect,
    }
}

fn refused(message: impl Into<String>) -> Expect {
    Expect::Refused(message.into())
}

/// `package sesame`, then `rules`, then a decision that allows when `allow_if` holds.
fn policy(rules: &str, allow_if: &str) -> String {
    format!(
        "package sesame\n{rules}\ndecision := {{\"allow\": true, \"reasons\": [\"ok\"]}} if {{\n    {allow_if}\n}}\n"
    )
}

/// `f0(x) := f1(x)` … `f{n}(x) := x`, and a decision calling `f0`.
fn function_chain(n: usize) -> String {
    let mut rules: Vec<String> = (0..n).map(|i| format!("f{i}(x) := f{}(x)", i + 1)).collect();
    rules.push(format!("f{n}(x) := x"));
    policy(&rules.join("\n"), "f0(1) == 1")
}

/// `r0 := r1` … `r{n} := 1`, and a decision reading `r0`.
fn rule_chain(n: usize) -> String {
    let mut rules: Vec<String> = (0..n).map(|i| format!("r{i} := r{}", i + 1)).collect();
    rules.push(format!("r{n} := 1"));
    policy(&rules.join("\n"), "r0 == 1")
}

fn cases() -> Vec<Case> {
    vec![
        // --- recursion: refused at load, as OPA does ---
        case(
            "a function that calls itself (issue 19)",
            policy("f(x) := y if y := f(x)", "f(1) == 1"),
            refused("p.rego:2: data.sesame.f is recursive: data.sesame.f (p.rego:2) -> data.sesame.f"),
        ),
        case(
            "functions that call each other",
            policy("f(x) := g(x)\ng(x) := h(x)\nh(x) := f(x)", "f(1) == 1"),
            refused(
                "p.rego:2: data.sesame.f is recursive: data.sesame.f (p.rego:2) -> data.sesame.g (p.rego:3) \
                 -> data.sesame.h (p.rego:4) -> data.sesame.f",
            ),
        ),
        case(
            "a function that recurses in an else branch",
            policy("f(x) := 0 if x <= 0 else := f(x - 1)", "f(3) == 0"),
            refused("p.rego:2: data.sesame.f is recursive: data.sesame.f (p.rego:2) -> data.sesame.f"),
        ),
        case(
            "rules that read each other",
            policy("a := b\nb := a", "a == 1"),
            refused(
                "p.rego:2: data.sesame.a is recursive: data.sesame.a (p.rego:2) -> data.sesame.b (p.rego:3) -> data.sesame.a",
            ),
        ),
        case(
            "partial sets that read each other through comprehensions",
            policy(
                "s contains x if { some x in t }\nt contains x if { x := [y | some y in s][_] }",
                "count(s) == 0",
            ),
            refused(
                "p.rego:2: data.sesame.s is recursive: data.sesame.s (p.rego:2) -> data.sesame.t (p.rego:3) -> data.sesame.s",
            ),
        ),
        case(
            "a rule that reads its own package",
            policy("n := count(data.sesame)", "n > 0"),
            refused(
                "p.rego:2: data.sesame.n is recursive: data.sesame.n (p.rego:2) -> data.sesame -> data.sesame.decision \
                 (p.rego:3) -> data.sesame.n",
            ),
        ),
        case(
            "partial objects that read each other by a computed key",
            policy(
                "p[k] := v if { some k in [\"a\"]; v := data.sesame.q[k] }\nq[k] := v if { some k in [\"a\"]; v := p[k] }",
                "count(p) == 0",
            ),
            refused(
                "p.rego:2: data.sesame.p is recursive: data.sesame.p (p.rego:2) -> data.sesame.q (p.rego:3) -> data.sesame.p",
            ),
        ),
        case(
            "a function that calls itself through an import",
            "package sesame\nimport data.sesame as me\nf(x) := me.f(x)\ndecision := {\"allow\": f(1) == 1}\n",
            refused("p.rego:3: data.sesame.f is recursive: data.sesame.f (p.rego:3) -> data.sesame.f"),
        ),
        Case {
            name: "functions that call each other across packages and files",
            files: vec![
                ("lib.rego", "package lib\ng(x) := data.sesame.f(x)\n".to_owned()),
                ("p.rego", policy("f(x) := data.lib.g(x)", "f(1) == 1")),
            ],
            expect: refused(
                "lib.rego:2: data.lib.g is recursive: data.lib.g (lib.rego:2) -> data.sesame.f (p.rego:2) -> data.lib.g",
            ),
        },
        case(
            "a function put in the place of another by `with`",
            policy(
                "g(x) := x\nf(x) := y if { y := g(x) with g as h }\nh(x) := f(x)",
                "f(1) == 1",
            ),
            refused(
                "p.rego:4: data.sesame.h is recursive: data.sesame.h (p.rego:4) -> data.sesame.f (p.rego:3) -> data.sesame.h",
            ),
        ),
        case(
            "a local variable does not make a rule recursive",
            policy("a := x if { x := 1 }\nf(a) := a + 1\nb := f(a)", "b == 2"),
            Expect::Allowed,
        ),
        // --- deep call chains: refused at load past the depth bound ---
        case(
            "a chain of 1000 functions (issue 19)",
            function_chain(1000),
            refused(
                "p.rego:1003: data.sesame.decision may nest evaluation 3008 levels deep, more than the 1000 a \
                 policy may: data.sesame.decision (p.rego:1003) -> data.sesame.f0 (p.rego:2) -> data.sesame.f1 (p.rego:3) \
                 -> data.sesame.f2 (p.rego:4) -> … (995 more) -> data.sesame.f998 (p.rego:1000) -> data.sesame.f999 \
                 (p.rego:1001) -> data.sesame.f1000 (p.rego:1002)",
            ),
        ),
        case(
            "a chain of 1000 rules",
            rule_chain(1000),
            refused(
                "p.rego:1003: data.sesame.decision may nest evaluation 3007 levels deep, more than the 1000 a \
                 policy may: data.sesame.decision (p.rego:1003) -> data.sesame.r0 (p.rego:2) -> data.sesame.r1 (p.rego:3) \
                 -> data.sesame.r2 (p.rego:4) -> … (995 more) -> data.sesame.r998 (p.rego:1000) -> data.sesame.r999 \
                 (p.rego:1001) -> data.sesame.r1000 (p.rego:1002)",
            ),
        ),
        case(
            "a chain of 300 functions is within the bound",
            function_chain(300),
            Expect::Allowed,
        ),
        case(
            "2000 loops in one rule body",
            policy(
                &format!(
                    "v if {{\n{}\n}}",
                    (0..2000)
                        .map(|i| format!("    some x{i} in [1]"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
                "v",
            ),
            refused(
                "p.rego:2004: data.sesame.decision may nest evaluation at least 2006 levels deep, more than the 1000 a \
                 policy may: data.sesame.decision (p.rego:2004) -> data.sesame.v (p.rego:2)",
            ),
        ),
        case(
            "an expression of 200,000 additions",
            policy(
                &format!(
                    "v := (1\n{}\n)",
                    (0..1000)
                        .map(|_| " + 1".repeat(200))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
                "v > 0",
            ),
            refused(
                "p.rego:1004: data.sesame.decision may nest evaluation at least 1008 levels deep, more than the 1000 \
                 a policy may: data.sesame.decision (p.rego:1004) -> data.sesame.v (p.rego:2)",
            ),
        ),
        // --- deep nesting: refused before the parser sees it ---
        case(
            "10,000 nested array literals",
            policy(
                &format!("v := {}1{}", "[".repeat(10_000), "]".repeat(10_000)),
                "true",
            ),
            refused(
                "p.rego:2: collection literals nested here would have the parser re-read more than 50000 tokens \
                 (it reads the first element of every [ and { twice): nest them less deeply, or name the inner ones as rules",
            ),
        ),
        case(
            "10,000 nested arrays, each the second element",
            policy(
                &format!("v := {}1{}", "[0, ".repeat(10_000), "]".repeat(10_000)),
                "true",
            ),
            refused("p.rego:2: brackets nested 17 deep, more than the 16 a policy may nest"),
        ),
        case(
            "10,000 nested calls",
            policy(
                &format!("g(x) := x\nv := {}1{}", "g(\n".repeat(10_000), ")".repeat(10_000)),
                "v == 1",
            ),
            refused("p.rego:19: brackets nested 17 deep, more than the 16 a policy may nest"),
        ),
        case(
            "10,000 nested indexes",
            policy(
                &format!("a := [0]\nv := {}0{}", "a[\n".repeat(10_000), "]".repeat(10_000)),
                "v == 0",
            ),
            refused("p.rego:19: brackets nested 17 deep, more than the 16 a policy may nest"),
        ),
        case(
            "10,000 minus signs",
            policy(&format!("v := ({}1)", "-\n".repeat(10_000)), "true"),
            refused("p.rego:6: 5 minus signs in a row, more than the 4 a policy may write"),
        ),
        case(
            "collection literals nested in first place",
            policy(
                &(0..40)
                    .map(|i| format!("v{i} := {}1{}", "{\"a\": ".repeat(12), "}".repeat(12)))
                    .collect::<Vec<_>>()
                    .join("\n"),
                "true",
            ),
            refused(
                "p.rego:3: collection literals nested here would have the parser re-read more than 50000 tokens \
                 (it reads the first element of every [ and { twice): nest them less deeply, or name the inner ones as rules",
            ),
        ),
        case(
            "deep comprehensions within the bounds",
            policy(
                &format!("v := {}1{}", "[x | x := ".repeat(7), "]".repeat(7)),
                "count(v) == 1",
            ),
            Expect::Allowed,
        ),
        Case {
            name: "data nested 10,000 deep",
            files: vec![
                ("p.rego", policy("", "true")),
                (
                    "data.json",
                    format!("{{\"a\": {}1{}}}", "[".repeat(10_000), "]".repeat(10_000)),
                ),
            ],
            expect: refused("data.json: recursion limit exceeded at line 1 column 133"),
        },
        case(
            "JSON nested 10,000 deep, read at evaluation",
            policy(
                "v := json.unmarshal(concat(\"\", array.concat([\"[\" | some i in numbers.range(1, 10000)], [\"]\" | some i in numbers.range(1, 10000)])))",
                "is_array(v)",
            ),
            Expect::Denied(
                "policy evaluation failed: could not deserialize json.: recursion limit exceeded at line 1 column 128",
            ),
        ),
        // --- builtins huge in memory: denied when called past their bounds ---
        case(
            "numbers.range of 10^11 numbers",
            policy("", "count(numbers.range(1, 1e11)) > 0"),
            Expect::Denied(
                "policy evaluation failed: numbers.range would make 100000000000 numbers, more than the 1048576 one call may make",
            ),
        ),
        case(
            "sort(numbers.range(1, 16000000)) (issue 19)",
            policy("", "count(sort(numbers.range(1, 16000000))) > 0"),
            Expect::Denied(
                "policy evaluation failed: numbers.range would make 16000000 numbers, more than the 1048576 one call may make",
            ),
        ),
        case(
            "net.cidr_expand of all IPv6",
            policy("", "count(net.cidr_expand(\"::/0\")) > 0"),
            Expect::Denied(
                "policy evaluation failed: net.cidr_expand would make 3.402823669209385e38 addresses, \
                 more than the 1048576 one call may make",
            ),
        ),
        case(
            "bits.lsh to 2^32 bits",
            policy("", "bits.lsh(1, 4294967295) > 0"),
            Expect::Denied(
                "policy evaluation failed: bits.lsh would make a number of 4294967296 bits, more than the 65536 one call may make",
            ),
        ),
        case(
            "sprintf padded to a gigabyte",
            policy("", "sprintf(\"%0999999999d\", [1]) != \"\""),
            Expect::Denied(
                "policy evaluation failed: sprintf width 999999999 is more than the 1000 a format may ask for",
            ),
        ),
        case(
            "sprintf with a width regorus would panic on",
            policy("", "sprintf(\"%\u{663}d\", [1]) != \"\""),
            Expect::Denied(
                "policy evaluation failed: sprintf width \"\u{663}\": widths are written in ASCII digits",
            ),
        ),
        case(
            "json.marshal of a value doubled 40 times by sharing",
            policy(&shared_doubling(40), "json.marshal(a40) != \"\""),
            Expect::Denied(
                "policy evaluation failed: json.marshal would make a string of 16777220 bytes, more than the 16777216 one call may make",
            ),
        ),
        case(
            "a decision doubled 40 times by sharing",
            "package sesame\n".to_owned()
                + &shared_doubling(40)
                + "\ndecision := {\"allow\": false, \"reasons\": a40}\n",
            Expect::Denied("policy decision is larger than 1048576 bytes written out"),
        ),
        // --- slow: denied at the time limit, whether regorus stops or a builtin outruns it ---
        case(
            "a loop of 10^9 steps",
            policy(
                "",
                "count([1 | some i in numbers.range(1, 1000000); some j in numbers.range(1, 1000)]) > 0",
            ),
            Expect::Denied("policy evaluation exceeded its time limit (250 ms)"),
        ),
        case(
            "doubling by array.concat, past the bound",
            policy(
                "a0 := numbers.range(1, 1048576)\na1 := array.concat(a0, a0)\na2 := array.concat(a1, a1)",
                "count(sort(a2)) > 0",
            ),
            Expect::Denied(
                "policy evaluation failed: array.concat would make 2097152 elements, more than the 1048576 one call may make",
            ),
        ),
        case(
            "one comparison of two values doubled 30 times by sharing",
            policy(
                &format!(
                    "{}\n{}",
                    shared_doubling(30),
                    shared_doubling(30).replace('a', "b")
                ),
                "a30 != b30",
            ),
            Expect::Denied("policy evaluation exceeded its time limit (250 ms)"),
        ),
        // --- builtins whose answer varies, in every form regorus reads as a call ---
        varying(
            "rand.intn",
            "x := rand.intn(\"x\", 100)",
            "p.rego:2: uses rand.intn, whose answer changes from call to call",
        ),
        varying(
            "rand[\"intn\"]",
            "x := rand[\"intn\"](\"x\", 100)",
            "p.rego:2: uses rand.intn, whose answer changes from call to call",
        ),
        varying(
            "rand[ \"intn\" ] with line breaks and comments",
            "x := rand[ \"intn\" ](  # a comment\n  \"x\",\n  100)",
            "p.rego:2: uses rand.intn, whose answer changes from call to call",
        ),
        varying(
            "time.now_ns",
            "x := time.now_ns()",
            "p.rego:2: uses time.now_ns, whose answer changes from call to call",
        ),
        varying(
            "time[\"now_ns\"]",
            "x := time[\"now_ns\"]()",
            "p.rego:2: uses time.now_ns, whose answer changes from call to call",
        ),
        varying(
            "uuid.rfc4122",
            "x := uuid[\"rfc4122\"](\"a\")",
            "p.rego:2: uses uuid.rfc4122, whose answer changes from call to call",
        ),
        varying(
            "http.send",
            "x := http[\"send\"]({})",
            "p.rego:2: uses http.send, whose answer changes from call to call",
        ),
        varying(
            "net.lookup_ip_addr",
            "x := net[\"lookup_ip_addr\"](\"example.com\")",
            "p.rego:2: uses net.lookup_ip_addr, whose answer changes from call to call",
        ),
        varying(
            "opa.runtime",
            "x := opa[\"runtime\"]()",
            "p.rego:2: uses opa.runtime, whose answer changes from call to call",
        ),
        varying(
            "test.sleep",
            "x := test.sleep(\"1s\")",
            "p.rego:2: uses test.sleep, whose answer changes from call to call",
        ),
        varying(
            "io.jwt.encode_sign",
            "x := io.jwt[\"encode_sign\"]({}, {}, {})",
            "p.rego:2: uses io.jwt.encode_sign, whose answer changes from call to call",
        ),
        varying(
            "rand.intn replaced with `with`",
            "f(a, b) := 1\nx := y if { y := rand[\"intn\"](\"x\", 100) with rand.intn as f }",
            "p.rego:3: uses rand.intn, whose answer changes from call to call",
        ),
        varying(
            "rand.intn in a comprehension",
            "x := [n | some i in [1, 2]; n := rand[\"intn\"](\"x\", i)]",
            "p.rego:2: uses rand.intn, whose answer changes from call to call",
        ),
        varying(
            "rand.intn in `some … in`",
            "x if { some n in [rand.intn(\"x\", 9)]; n > 3 }",
            "p.rego:2: uses rand.intn, whose answer changes from call to call",
        ),
        varying(
            "rand.intn in `every`",
            "x if { every i in [1] { rand.intn(\"x\", 9) > i } }",
            "p.rego:2: uses rand.intn, whose answer changes from call to call",
        ),
        varying(
            "rand.intn in an else branch",
            "f(a) := 1 if a > 5 else := rand[\"intn\"](\"x\", a)",
            "p.rego:2: uses rand.intn, whose answer changes from call to call",
        ),
        varying(
            "rand.intn with rego.v1 imported",
            "import rego.v1\nx := rand[\"intn\"](\"x\", 3)",
            "p.rego:3: uses rand.intn, whose answer changes from call to call",
        ),
        varying(
            "rand.intn with future keywords imported",
            "import future.keywords.in\nx if { some n in [rand[\"intn\"](\"x\", 3)]; n > 0 }",
            "p.rego:3: uses rand.intn, whose answer changes from call to call",
        ),
        varying(
            "an import aliased to a builtin namespace",
            "import data.lib as rand\nx := rand.intn(\"x\", 3)",
            "p.rego:3: uses rand.intn, whose answer changes from call to call",
        ),
        varying(
            "input bound to a variable",
            "x := y.now_ns if { y := input }",
            "p.rego:2: reads input as a whole or by a computed key",
        ),
        varying(
            "input iterated",
            "x if { some k, v in input; v == k }",
            "p.rego:2: reads input as a whole or by a computed key",
        ),
        varying(
            "input.now_ns by a string key",
            "x := input[\"now_ns\"]",
            "p.rego:2: reads input.now_ns",
        ),
        varying(
            "input.request.id by a string key",
            "x := input.request[\"id\"]",
            "p.rego:2: reads input.request.id",
        ),
        varying(
            "input.request bound and read later",
            "x := r.id if { r := input.request }",
            "p.rego:2: reads input.request as a whole or by a computed key",
        ),
        Case {
            name: "data bound to a variable, and reads of what repeats, stay cacheable",
            files: vec![
                (
                    "p.rego",
                    policy(
                        "d := data.limits\nn := input.client.name",
                        "d.a == 1; n == \"alice\"",
                    ),
                ),
                ("data.json", "{\"limits\": {\"a\": 1}}".to_owned()),
            ],
            expect: Expect::Allowed,
        },
    ]
}

/// A case for the purity check: `rules` in package sesame must load and be judged not cacheable,
/// for this reason.
fn varying(name: &'static str, rules: &str, why: &'static str) -> Case {
    case(name, policy(rules, "true"), Expect::NotCacheable(why))
}

/// `a0 := ["x"]`, `a{i+1} := [a{i}, a{i}]` … up to `a{n}`: n rules, 2^n leaves by sharing.
fn shared_doubling(n: usize) -> String {
    let mut rules = vec!["a0 := [\"x\"]".to_owned()];
    rules.extend((0..n).map(|i| format!("a{} := [a{i}, a{i}]", i + 1)));
    rules.join("\n")
}

fn write(dir: &Path, files: &[(&str, String)]) {
    for (name, contents) in files {
        std::fs::write(dir.join(name), contents).expect("write policy file");
    }
}

#[test]
fn every_hostile_policy_has_its_exact_outcome_and_the_process_survives() {
    let mut failures = Vec::new();
    for case in cases() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), &case.files);
        let started = Instant::now();
        let loaded = Policy::load(dir.path());
        let load_time = started.elapsed();
        let prefix = format!("{}/", dir.path().display());
        let outcome = match (&case.expect, loaded) {
            (Expect::Refused(expected), Err(error)) => {
                let got = error.to_string().replace(&prefix, "");
                (got != *expected).then(|| format!("refused with\n  {got}\nnot\n  {expected}"))
            }
            (Expect::Refused(_), Ok(_)) => Some("loaded".to_owned()),
            (_, Err(error)) => Some(format!("refused: {error}")),
            (expect, Ok(policy)) => {
                let started = Instant::now();
                let decision = policy.decide(&input("alice", &["users"], "basic", "echo"));
                let took = started.elapsed();
                println!("{}: decided in {took:?} (loaded in {load_time:?})", case.name);
                match expect {
                    Expect::Denied(reason) => match decision {
                        Decision::Deny(Reasons(reasons)) if reasons == [*reason] => {
                            // Denied at the limit, not when the builtin finally finishes.
                            (reason.contains("time limit") && took > Duration::from_millis(600))
                                .then(|| format!("denied only after {took:?}"))
                        }
                        other => Some(format!("{other:?}, not denied with {reason:?}")),
                    },
                    Expect::NotCacheable(why) => match policy.cacheable() {
                        Ok(()) => Some("judged cacheable".to_owned()),
                        Err(varying) if varying.to_string() == *why => None,
                        Err(varying) => Some(format!("not cacheable because {varying}, not {why}")),
                    },
                    Expect::Allowed => match policy.cacheable() {
                        _ if !decision.is_allowed() => Some(format!("{decision:?}")),
                        Err(varying) => Some(format!("not cacheable: {varying}")),
                        Ok(()) => None,
                    },
                    Expect::Refused(_) => None,
                }
            }
        };
        if !matches!(
            case.expect,
            Expect::Allowed | Expect::Denied(_) | Expect::NotCacheable(_)
        ) {
            println!("{}: refused in {load_time:?}", case.name);
        }
        if let Some(problem) = outcome {
            failures.push(format!("{}: {problem}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Policies at the edge of every bound: the deepest call chain, rule chain, expression, loop nest
/// and bracket nest the load-time checks admit, and the most parser re-reading.
fn deepest_admitted() -> Vec<(&'static str, String)> {
    // Each level of a chain costs three (see `graph.rs`); the decision's own body a few more.
    let chain = (MAX_EVAL_DEPTH as usize - 10) / 3;
    let additions = MAX_EVAL_DEPTH as usize - 10;
    let loops = MAX_EVAL_DEPTH as usize - 10;
    vec![
        ("function chain", function_chain(chain)),
        ("rule chain", rule_chain(chain)),
        (
            "additions",
            policy(&format!("v := (1{})", "\n + 1".repeat(additions)), "v > 0"),
        ),
        (
            "loops",
            policy(
                &format!(
                    "v if {{\n{}\n}}",
                    (0..loops)
                        .map(|i| format!("    some x{i} in [1]"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
                "v",
            ),
        ),
        (
            "brackets: calls and indexes",
            policy(
                &format!(
                    "g(x) := x\na := [0]\nv := {}{}-0{}{}",
                    "g(\n".repeat(MAX_NESTING / 2),
                    "a[\n".repeat(MAX_NESTING / 2),
                    "]".repeat(MAX_NESTING / 2),
                    ")".repeat(MAX_NESTING / 2)
                ),
                "v == 0",
            ),
        ),
        (
            "arrays in first place",
            policy(
                &format!(
                    "v0 := {}1{}\nv1 := {}1{}",
                    "[".repeat(13),
                    "]".repeat(13),
                    "[".repeat(12),
                    "]".repeat(12)
                ),
                "true",
            ),
        ),
        (
            "objects in first place",
            policy(
                &format!(
                    "v0 := {}1{}\nv1 := {}1{}",
                    "{\"a\": ".repeat(12),
                    "}".repeat(12),
                    "{\"a\": ".repeat(11),
                    "}".repeat(11)
                ),
                "true",
            ),
        ),
    ]
}

#[test]
fn the_deepest_admitted_policies_load_and_run_on_an_eighth_of_the_stack() {
    // A policy thread has `stack::STACK_BYTES`; the bounds are to keep every admitted policy far
    // below it. Load and evaluate each on a thread with an eighth of it: an overflow aborts this
    // test binary.
    for (name, source) in deepest_admitted() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), &[("p.rego", source)]);
        let path = dir.path().to_owned();
        let thread = std::thread::Builder::new()
            .stack_size(stack::STACK_BYTES / 8)
            .spawn(move || {
                let started = Instant::now();
                let policy = Policy::load_here(&path).map_err(|e| e.to_string())?;
                let loaded = started.elapsed();
                let mut engine = regorus::Engine::clone(&policy.template);
                engine.set_input(input_value(&input("alice", &["users"], "basic", "echo")));
                let started = Instant::now();
                let value = engine
                    .eval_rule(DECISION_RULE.to_owned())
                    .map_err(|e| e.to_string())?;
                let decision = decision::interpret(&value);
                Ok::<_, String>((loaded, started.elapsed(), decision.is_allowed()))
            })
            .expect("thread");
        let outcome = thread.join().expect("no panic");
        println!("{name}: {outcome:?}");
        assert!(matches!(outcome, Ok((_, _, true))), "{name}: {outcome:?}");
    }
}

#[test]
fn every_varying_builtin_in_every_form_is_not_cacheable() {
    // Each form puts the reference on line 3 of the file (line 2 declares what it may need).
    /// A form of reference, from the builtin's dotted name, its namespace and its last part.
    type Form<'a> = &'a dyn Fn(&str, &str, &str) -> String;
    let forms: [Form<'_>; 9] = [
        &|dotted, _, _| format!("g(a) := 1\nx := {dotted}(1)"),
        &|_, head, last| format!("g(a) := 1\nx := {head}[\"{last}\"](1)"),
        &|dotted, _, _| {
            let all: String = dotted
                .split('.')
                .skip(1)
                .map(|p| format!("[ \"{p}\" ]"))
                .collect();
            format!(
                "g(a) := 1\nx := {}{all}(  # a comment\n  1)",
                dotted.split('.').next().unwrap_or_default()
            )
        },
        &|_, head, last| format!("g(a) := 1\nx := {head}[\n  # a comment\n  \"{last}\"\n](1)"),
        &|dotted, _, _| format!("g(a) := 1\nx := y if {{ y := g(1) with {dotted} as g }}"),
        &|_, head, last| format!("g(a) := 1\nx := [y | some i in [1]; y := {head}[\"{last}\"](i)]"),
        &|_, head, last| format!("g(a) := 1\nx if {{ every i in [1] {{ {head}[\"{last}\"](i) }} }}"),
        &|dotted, _, _| format!("import rego.v1\nf(a) := {dotted}(a) if a > 1 else := 0"),
        &|_, head, last| {
            format!("import future.keywords.in\nx if {{ some n in [{head}[\"{last}\"](1)]; n > 0 }}")
        },
    ];
    let mut failures = Vec::new();
    for builtin in purity::VARYING_BUILTINS {
        let (head, last) = builtin.rsplit_once('.').unwrap_or(("", builtin));
        for (index, form) in forms.iter().enumerate() {
            let source = format!(
                "package sesame\n{}\ndecision := {{\"allow\": false}}\n",
                form(builtin, head, last)
            );
            let dir = tempfile::tempdir().expect("temp dir");
            write(dir.path(), &[("p.rego", source.clone())]);
            let expected = format!("p.rego:3: uses {builtin}, whose answer changes from call to call");
            match Policy::load(dir.path()).map(|p| p.cacheable().map_err(ToString::to_string)) {
                Ok(Err(reason)) if reason == expected => {}
                other => failures.push(format!("form {index}:\n{source}\n=> {other:?}\n")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn policy_check_and_policy_test_refuse_what_the_daemon_refuses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tests = "package sesame_test\ntest_f if data.sesame.f(1) == 1\n".to_owned();
    write(
        dir.path(),
        &[
            ("p.rego", policy("f(x) := y if y := f(x)", "f(1) == 1")),
            ("p_test.rego", tests),
        ],
    );
    let expected = "p.rego:2: data.sesame.f is recursive: data.sesame.f (p.rego:2) -> data.sesame.f";
    let report = check::check(dir.path());
    let errors: Vec<String> = report
        .errors
        .iter()
        .map(|d| d.to_string().replace(&format!("{}/", dir.path().display()), ""))
        .collect();
    assert_eq!(errors, [expected]);
    let refused = testing::run_tests(dir.path()).expect_err("refused");
    assert_eq!(
        refused
            .to_string()
            .replace(&format!("{}/", dir.path().display()), ""),
        expected
    );
}
