//! Builtins whose cost a policy chooses with a number, or multiplies from values it already has:
//! regorus runs each builtin to the end (its time limit is read between steps, never during one),
//! so `numbers.range(1, 1e11)` allocates until the process aborts. sesame registers an extension
//! of the same name for each of them (regorus looks extensions up before builtins); it works out
//! what the call would build, refuses past the bounds below with an error (which denies), and
//! otherwise calls regorus's own builtin, so an admitted call means exactly what it meant before.
//!
//! What is bounded here is the *output* of one call. A value built step by step (a comprehension,
//! `array.concat` called again and again) is bounded by the time limit instead, which is read at
//! every interpreter step. docs/policy.md says what is and is not bounded.

use anyhow::anyhow;
use regorus::Value;
use regorus::unstable::{BUILTINS, Expr, Ref, Span};

/// The most elements one call may make (`numbers.range`, `net.cidr_expand`): 2^20, a /12 of IPv4.
pub const MAX_ITEMS: u64 = 1 << 20;

/// The longest string one call may make: 16 MiB.
pub const MAX_STRING_BYTES: u64 = 16 << 20;

/// The widest integer `bits.lsh` may make, in bits.
pub const MAX_INT_BITS: u64 = 1 << 16;

/// The largest width or precision a `sprintf` format may ask for.
pub const MAX_FORMAT_WIDTH: u64 = 1000;

/// The builtins sesame bounds, with their number of arguments.
pub const BOUNDED: [(&str, u8); 15] = [
    ("numbers.range", 2),
    ("numbers.range_step", 3),
    ("net.cidr_expand", 1),
    ("array.concat", 2),
    ("union", 1),
    ("object.union", 2),
    ("object.union_n", 1),
    ("bits.lsh", 2),
    ("sprintf", 2),
    ("concat", 2),
    ("replace", 3),
    ("strings.replace_n", 2),
    ("regex.replace", 3),
    ("json.marshal", 1),
    ("json.marshal_with_options", 2),
];

/// Registers the bounded builtins with `engine`. Fails only if regorus lacks one of them.
pub(super) fn install(engine: &mut regorus::Engine) -> anyhow::Result<()> {
    let source = regorus::Source::from_contents("<builtin>".to_owned(), String::new())?;
    let span = Span {
        source,
        line: 1,
        col: 1,
        start: 0,
        end: 0,
    };
    for (name, nargs) in BOUNDED {
        let builtin = BUILTINS
            .get(name)
            .copied()
            .ok_or_else(|| anyhow!("regorus has no builtin {name}"))?;
        let params: Vec<Ref<Expr>> = (0..nargs)
            .map(|_| {
                Ref::new(Expr::Null {
                    span: span.clone(),
                    value: Value::Null,
                    eidx: 0,
                })
            })
            .collect();
        let span = span.clone();
        engine.add_extension(
            name.to_owned(),
            nargs,
            Box::new(move |args: Vec<Value>| {
                check(name, &args).map_err(|why| anyhow!("{name} {why}"))?;
                // As regorus calls a builtin when its errors are not strict: a failure is
                // undefined, except a resource limit.
                match (builtin.0)(&span, &params, &args, false) {
                    Ok(value) => Ok(value),
                    Err(e) if e.downcast_ref::<regorus::LimitError>().is_some() => Err(e),
                    Err(_) => Ok(Value::Undefined),
                }
            }),
        )?;
    }
    Ok(())
}

/// Refuses a call whose output would pass a bound, saying what it would have made.
fn check(name: &str, args: &[Value]) -> Result<(), String> {
    match (name, args) {
        ("numbers.range", [a, b]) => items(span_of(a, b).map(|n| n + 1.0), "numbers"),
        ("numbers.range_step", [a, b, step]) => {
            let step = step.as_f64().ok().filter(|s| *s >= 1.0);
            items(
                span_of(a, b).zip(step).map(|(n, s)| (n / s).floor() + 1.0),
                "numbers",
            )
        }
        ("net.cidr_expand", [cidr]) => items(cidr_addresses(cidr), "addresses"),
        // These add sizes: called again on their own output, they double it at every step.
        ("array.concat" | "object.union", [a, b]) => items(Some(len(a) + len(b)), "elements"),
        ("union" | "object.union_n", [collection]) => {
            let members = |values: &mut dyn Iterator<Item = &Value>| values.map(len).sum::<f64>();
            let total = match collection {
                Value::Array(a) => members(&mut a.iter()),
                Value::Set(s) => members(&mut s.iter()),
                _ => 0.0,
            };
            items(Some(total), "elements")
        }
        ("bits.lsh", [x, shift]) => {
            let bits = x.as_f64().ok().map(|x| x.abs().max(1.0).log2().floor() + 1.0);
            let Some(total) = bits.zip(shift.as_f64().ok()).map(|(b, s)| b + s) else {
                return Ok(());
            };
            if total > MAX_INT_BITS as f64 {
                return Err(format!(
                    "would make a number of {} bits, more than the {MAX_INT_BITS} one call may make",
                    number(total)
                ));
            }
            Ok(())
        }
        ("sprintf", [format, values]) => sprintf_size(format, values).and_then(bytes),
        ("concat", [separator, collection]) => {
            let separator = text_len(separator);
            let (count, total) = strings_of(collection);
            bytes(total + separator * count.saturating_sub(1) as f64)
        }
        ("replace", [s, old, new]) => {
            let (Ok(s), Ok(old), Ok(new)) = (s.as_string(), old.as_string(), new.as_string()) else {
                return Ok(());
            };
            let count = if old.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(old.as_ref()).count()
            };
            bytes(s.len() as f64 + count as f64 * (new.len() as f64 - old.len() as f64))
        }
        ("strings.replace_n", [patterns, s]) => {
            // Each pattern is applied to the previous one's output: bound the growth of each.
            let (Ok(patterns), Ok(s)) = (patterns.as_object(), s.as_string()) else {
                return Ok(());
            };
            let mut size = s.len() as f64;
            for (old, new) in patterns.iter() {
                let (old, new) = (text_len(old), text_len(new));
                let matches = if old == 0.0 {
                    size + 1.0
                } else {
                    (size / old).floor()
                };
                size += matches * (new - old).max(0.0);
                bytes(size)?;
            }
            Ok(())
        }
        ("regex.replace", [s, _, value]) => {
            // At most one match per position, each replaced by `value` with every `$` group
            // reference expanded to at most the whole string.
            let (Ok(s), Ok(value)) = (s.as_string(), value.as_string()) else {
                return Ok(());
            };
            let len = s.len() as f64;
            let groups = value.matches('$').count() as f64;
            bytes(len + (len + 1.0) * (value.len() as f64 + groups * len))
        }
        ("json.marshal", [value]) => bytes(json_size(value, MAX_STRING_BYTES as f64)),
        ("json.marshal_with_options", [value, options]) => {
            // Pretty printing puts the prefix and an indent per level on every line.
            let extra = options
                .as_object()
                .map_or(0.0, |o| o.iter().map(|(_, v)| text_len(v)).sum::<f64>());
            let (nodes, depth) = shape(value, MAX_STRING_BYTES as f64);
            bytes(json_size(value, MAX_STRING_BYTES as f64) + nodes * (2.0 + extra * (depth + 1.0)))
        }
        _ => Ok(()),
    }
}

fn items(count: Option<f64>, what: &str) -> Result<(), String> {
    match count {
        Some(n) if n > MAX_ITEMS as f64 || n.is_nan() => Err(format!(
            "would make {} {what}, more than the {MAX_ITEMS} one call may make",
            number(n)
        )),
        _ => Ok(()),
    }
}

/// A count for a message: whole below 10^15, in scientific notation above.
fn number(n: f64) -> String {
    if n < 1e15 {
        format!("{n:.0}")
    } else {
        format!("{n:e}")
    }
}

fn bytes(size: f64) -> Result<(), String> {
    if size > MAX_STRING_BYTES as f64 || size.is_nan() {
        return Err(format!(
            "would make a string of {} bytes, more than the {MAX_STRING_BYTES} one call may make",
            number(size)
        ));
    }
    Ok(())
}

/// `|b - a|`, when both are numbers.
fn span_of(a: &Value, b: &Value) -> Option<f64> {
    Some((b.as_f64().ok()? - a.as_f64().ok()?).abs())
}

/// The addresses in a CIDR, from its prefix length (regorus refuses what does not parse).
fn cidr_addresses(cidr: &Value) -> Option<f64> {
    let cidr = cidr.as_string().ok()?;
    let (address, prefix) = cidr.rsplit_once('/')?;
    let prefix: i32 = prefix.parse().ok()?;
    let bits = if address.contains(':') { 128 } else { 32 };
    Some(f64::from(bits - prefix.clamp(0, bits)).exp2())
}

/// How many elements a collection holds; 0 for anything else.
fn len(value: &Value) -> f64 {
    match value {
        Value::Array(a) => a.len() as f64,
        Value::Set(s) => s.len() as f64,
        Value::Object(o) => o.len() as f64,
        _ => 0.0,
    }
}

/// The length of a string value; 0 for anything else.
fn text_len(value: &Value) -> f64 {
    value.as_string().map_or(0.0, |s| s.len() as f64)
}

/// How many strings a collection holds, and their total length.
fn strings_of(collection: &Value) -> (usize, f64) {
    let sum = |values: &mut dyn Iterator<Item = &Value>| {
        values.fold((0, 0.0), |(n, total), v| (n + 1, total + text_len(v)))
    };
    match collection {
        Value::Array(a) => sum(&mut a.iter()),
        Value::Set(s) => sum(&mut s.iter()),
        _ => (0, 0.0),
    }
}

/// An upper bound of `sprintf`'s output: the format, every width, and every value printed.
fn sprintf_size(format: &Value, values: &Value) -> Result<f64, String> {
    let (Ok(format), Ok(values)) = (format.as_string(), values.as_array()) else {
        return Ok(0.0);
    };
    let mut size = format.len() as f64;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        // As regorus reads a width: `.` or a digit, then digits (it asks `char::is_numeric`,
        // which is true of digits of every script, and panics on those that are not ASCII).
        let mut width = String::new();
        while let Some(&next) = chars.peek() {
            if next.is_numeric() || (width.is_empty() && next == '.') {
                width.push(next);
                chars.next();
            } else {
                break;
            }
        }
        let digits = width.trim_start_matches('.');
        if digits.chars().any(|d| !d.is_ascii_digit()) {
            return Err(format!("width {width:?}: widths are written in ASCII digits"));
        }
        let number: f64 = if digits.is_empty() {
            0.0
        } else {
            digits.parse::<f64>().unwrap_or(f64::INFINITY)
        };
        if number > MAX_FORMAT_WIDTH as f64 {
            return Err(format!(
                "width {number} is more than the {MAX_FORMAT_WIDTH} a format may ask for"
            ));
        }
        size += number;
    }
    for value in values.iter() {
        size += json_size(value, MAX_STRING_BYTES as f64);
        if size > MAX_STRING_BYTES as f64 {
            break;
        }
    }
    Ok(size)
}

/// An upper bound of the JSON text of `value` (what `json.marshal` and `sprintf("%v")` print),
/// counting a value each time it appears (a value built by sharing, `[a, a]`, prints twice), and
/// stopping once past `limit`.
pub(super) fn json_size(value: &Value, limit: f64) -> f64 {
    let mut size = 0.0;
    let mut todo = vec![value];
    while let Some(v) = todo.pop() {
        size += match v {
            Value::String(s) => 2.0 + 6.0 * s.len() as f64, // every byte may be escaped as \u00XX
            Value::Number(_) => 48.0,
            Value::Array(a) => {
                todo.extend(a.iter());
                2.0 + a.len() as f64
            }
            Value::Set(s) => {
                todo.extend(s.iter());
                2.0 + s.len() as f64
            }
            Value::Object(o) => {
                for (k, v) in o.iter() {
                    todo.push(k);
                    todo.push(v);
                }
                2.0 + 2.0 * o.len() as f64
            }
            Value::Null | Value::Bool(_) | Value::Undefined => 5.0,
        };
        if size > limit {
            return size;
        }
    }
    size
}

/// How many nodes `value` has (counting shared ones each time) and how deep it is, stopping once
/// past `limit` nodes.
fn shape(value: &Value, limit: f64) -> (f64, f64) {
    let (mut nodes, mut depth) = (0.0, 0.0_f64);
    let mut todo = vec![(value, 0.0)];
    while let Some((v, d)) = todo.pop() {
        nodes += 1.0;
        depth = depth.max(d);
        match v {
            Value::Array(a) => todo.extend(a.iter().map(|x| (x, d + 1.0))),
            Value::Set(s) => todo.extend(s.iter().map(|x| (x, d + 1.0))),
            Value::Object(o) => todo.extend(o.iter().map(|(_, x)| (x, d + 1.0))),
            _ => {}
        }
        if nodes > limit {
            break;
        }
    }
    (nodes, depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(rule: &str) -> anyhow::Result<Value> {
        let mut engine = regorus::Engine::new();
        install(&mut engine)?;
        engine.add_policy("p.rego".to_owned(), format!("package p\nx := {rule}\n"))?;
        engine.eval_rule("data.p.x".to_owned())
    }

    fn refusal(rule: &str) -> String {
        let error = eval(rule).expect_err("refused");
        crate::policy::RegoMessage::from(&error).summary
    }

    #[test]
    fn every_bounded_builtin_is_regorus_s_with_its_arity() {
        for (name, nargs) in BOUNDED {
            let builtin = BUILTINS
                .get(name)
                .unwrap_or_else(|| panic!("{name} is a regorus builtin"));
            assert_eq!(builtin.1, nargs, "{name}");
        }
    }

    #[test]
    fn calls_within_the_bounds_mean_what_regorus_says() {
        let cases = [
            ("numbers.range(1, 3)", "[1,2,3]"),
            ("numbers.range(3, 1)", "[3,2,1]"),
            ("numbers.range_step(1, 7, 3)", "[1,4,7]"),
            ("count(net.cidr_expand(\"10.0.0.0/30\"))", "4"),
            ("bits.lsh(1, 10)", "1024"),
            ("sprintf(\"%05d|%.2f|%v\", [42, 1.5, [1]])", "\"00042|1.50|[1]\""),
            ("numbers.range(1, 1048576)[1048575]", "1048576"),
            ("concat(\"-\", [\"a\", \"b\"])", "\"a-b\""),
            ("array.concat([1], [2])", "[1,2]"),
            ("union({{1}, {2}})", "[1,2]"),
            ("object.union({\"a\": 1}, {\"b\": 2})", "{\"a\":1,\"b\":2}"),
            ("object.union_n([{\"a\": 1}, {\"a\": 2}])", "{\"a\":2}"),
            ("replace(\"aXa\", \"a\", \"bb\")", "\"bbXbb\""),
            ("strings.replace_n({\"a\": \"b\"}, \"aa\")", "\"bb\""),
            ("regex.replace(\"a1b22\", \"[0-9]+\", \"#\")", "\"a#b#\""),
            // RE2's classes, as OPA has them (regex is built with `unicode` for these).
            ("regex.match(`^\\d+$`, \"2026\")", "true"),
            ("regex.match(`^\\w+$`, \"h\u{e9}_1\")", "true"),
            ("regex.match(`^\\p{L}+$`, \"\u{e9}t\u{e9}\")", "true"),
            ("regex.match(`^\\s$`, \"1\")", "false"),
            ("json.marshal({\"a\": [1]})", "\"{\\\"a\\\":[1]}\""),
        ];
        for (call, expected) in cases {
            let value = eval(call).unwrap_or_else(|e| panic!("{call}: {e}"));
            assert_eq!(serde_json::to_string(&value).expect("json"), expected, "{call}");
        }
        // A failing builtin is undefined, as without the bound.
        assert_eq!(
            eval("numbers.range(1, \"x\")").expect("undefined"),
            Value::Undefined
        );
    }

    #[test]
    fn calls_past_the_bounds_are_errors_that_say_what_they_would_have_made() {
        let cases = [
            (
                "numbers.range(1, 1e11)",
                "numbers.range would make 100000000000 numbers, more than the 1048576 one call may make",
            ),
            (
                "numbers.range_step(0, 1e9, 2)",
                "numbers.range_step would make 500000001 numbers, more than the 1048576 one call may make",
            ),
            (
                "net.cidr_expand(\"::/0\")",
                "net.cidr_expand would make 3.402823669209385e38 addresses, more than the 1048576 one call may make",
            ),
            (
                "array.concat(numbers.range(1, 1048576), [1])",
                "array.concat would make 1048577 elements, more than the 1048576 one call may make",
            ),
            (
                "union({numbers.range(1, 600000), numbers.range(2, 600001)})",
                "union would make 1200000 elements, more than the 1048576 one call may make",
            ),
            (
                "bits.lsh(1, 4294967295)",
                "bits.lsh would make a number of 4294967296 bits, more than the 65536 one call may make",
            ),
            (
                "sprintf(\"%0999999999d\", [1])",
                "sprintf width 999999999 is more than the 1000 a format may ask for",
            ),
            (
                "sprintf(\"%\u{663}d\", [1])",
                "sprintf width \"\u{663}\": widths are written in ASCII digits",
            ),
            (
                "replace(concat(\"\", [\"x\" | numbers.range(1, 5000)[_]]), \"\", concat(\"\", [\"y\" | numbers.range(1, 5000)[_]]))",
                "replace would make a string of 25010000 bytes, more than the 16777216 one call may make",
            ),
        ];
        for (call, expected) in cases {
            assert_eq!(refusal(call), expected, "{call}");
        }
    }
}
