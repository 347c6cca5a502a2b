//! Bounds on the text of a Rego file, checked before regorus parses it, for what would otherwise
//! take the parser down or keep it busy for hours.
//!
//! regorus parses by recursion, and bounds that recursion (32 levels) only for some forms: calls
//! (`f(f(f(…)))`), brackets (`a[a[a[…]]]`) and minus signs (`- - - 1`) nest without limit, and at
//! some thousands of levels the parser overflows its thread's stack, which aborts the process. It
//! also tries every `[` and `{` first as a comprehension and reads it again as a literal when that
//! fails, so a collection literal that is the first element of another is read twice per level:
//! 30 levels of `[[[…]]]` take it years. So, before it sees a file:
//!
//! - brackets of any kind nest at most [`MAX_NESTING`] deep (the policies in this repository: 5);
//! - at most [`MAX_SIGNS`] minus signs follow one another;
//! - the parse *work*, every token counted once for each enclosing `[` or `{` it is the first
//!   element of (times two per level), stays under [`MAX_PARSE_WORK`] beyond one reading of each token.
//!
//! The worst files these admit load in 0.3 to 0.7 s on a busy two-core machine (`policy/hostile.rs`).

use super::source::{self, TokenKind};

/// How deeply brackets (`(`, `[`, `{`) may nest.
pub const MAX_NESTING: usize = 16;

/// How many minus signs may follow one another.
pub const MAX_SIGNS: usize = 4;

/// How much re-reading the parser may do in one file (see the module documentation).
pub const MAX_PARSE_WORK: u64 = 50_000;

/// Words after which a `[` or `{` starts a value rather than indexing or opening a body.
const OPERATOR_WORDS: [&str; 7] = ["in", "contains", "as", "not", "some", "with", "every"];

/// What is wrong with a file, and on which line (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Excess {
    pub(super) line: u32,
    pub(super) message: String,
}

/// Checks the text of one Rego file against the bounds; returns its parse work.
pub(super) fn check(contents: &str) -> Result<u64, Excess> {
    // Each open bracket, with whether the parser is still in its first element (only `[` and `{`
    // are read twice, so `(` never is).
    let mut open: Vec<(u8, bool)> = Vec::new();
    let mut signs = 0;
    let mut work: u64 = 0;
    let tokens = source::tokens(contents);
    for (index, token) in tokens.iter().enumerate() {
        let excess = |message: String| Excess {
            line: token.line,
            message,
        };
        signs = if token.is(b'-') { signs + 1 } else { 0 };
        if signs > MAX_SIGNS {
            return Err(excess(format!(
                "{signs} minus signs in a row, more than the {MAX_SIGNS} a policy may write"
            )));
        }
        let rereads = open.iter().filter(|(_, first)| *first).count();
        // 2^rereads - 1 readings beyond the first; past 63 levels the bound is long exceeded.
        work = work.saturating_add(
            1_u64
                .checked_shl(u32::try_from(rereads).unwrap_or(64))
                .map_or(u64::MAX, |w| w - 1),
        );
        if work > MAX_PARSE_WORK {
            return Err(excess(format!(
                "collection literals nested here would have the parser re-read more than {MAX_PARSE_WORK} tokens \
                 (it reads the first element of every [ and {{ twice): nest them less deeply, or name the inner ones as rules"
            )));
        }
        match token.kind {
            TokenKind::Punct(c @ (b'(' | b'[' | b'{')) => {
                // A `[` after an operand indexes it, and a `{` after one is a body (`if {`,
                // `every x in xs {`): neither is tried as a comprehension.
                let after_operand = index
                    .checked_sub(1)
                    .and_then(|i| tokens.get(i))
                    .is_some_and(|prev| match prev.kind {
                        // `if [` starts a value, `if {` a body.
                        TokenKind::Ident(word) => {
                            !(OPERATOR_WORDS.contains(&word) || (c == b'[' && word == "if"))
                        }
                        TokenKind::Literal => true,
                        TokenKind::Punct(p) => matches!(p, b')' | b']' | b'}'),
                    });
                open.push((c, c != b'(' && !after_operand));
                if open.len() > MAX_NESTING {
                    return Err(excess(format!(
                        "brackets nested {} deep, more than the {MAX_NESTING} a policy may nest",
                        open.len()
                    )));
                }
            }
            TokenKind::Punct(b')' | b']' | b'}') => {
                open.pop();
            }
            TokenKind::Punct(b',' | b'|') => {
                if let Some(top) = open.last_mut() {
                    top.1 = false;
                }
            }
            _ => {}
        }
    }
    Ok(work)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excess(text: &str) -> Option<(u32, String)> {
        check(text).err().map(|e| (e.line, e.message))
    }

    #[test]
    fn ordinary_policies_are_well_within_the_bounds() {
        for text in [
            include_str!("../../../policies/sesame.rego"),
            include_str!("../../../policies/sesame_test.rego"),
            include_str!("../../../policies/reason_test.rego"),
            include_str!("../../../policies/approval_test.rego"),
            include_str!("../../../policies/temporary_test.rego"),
            include_str!("../../../policies/examples/office-hours/policy.rego"),
            include_str!("../../../policies/examples/argument-constraints/policy.rego"),
            include_str!("../../../policies/examples/break-glass/policy.rego"),
            include_str!("../../../policies/examples/per-group-ports/policy.rego"),
            include_str!("../../../policies/examples/ticket-id/policy.rego"),
        ] {
            let work = check(text).expect("within the bounds");
            println!("parse work {work}");
            assert!(work < MAX_PARSE_WORK / 50, "{work}");
        }
    }

    #[test]
    fn brackets_strings_and_comments() {
        let deep = format!("x := {}1{}", "(".repeat(16), ")".repeat(16));
        assert_eq!(excess(&deep), None);
        let deeper = format!("x := {}1{}", "f(".repeat(17), ")".repeat(17));
        assert_eq!(
            excess(&deeper),
            Some((
                1,
                "brackets nested 17 deep, more than the 16 a policy may nest".to_owned()
            ))
        );
        // Brackets in strings and comments do not count.
        let quoted = format!("x := \"{}\" # {}\n", "[".repeat(40), "{".repeat(40));
        assert_eq!(excess(&quoted), None);
    }

    #[test]
    fn minus_signs() {
        assert_eq!(excess("x := 1 - -1\ny := - - - -1"), None);
        assert_eq!(
            excess("x := 1\ny := - - - - -1"),
            Some((
                2,
                "5 minus signs in a row, more than the 4 a policy may write".to_owned()
            ))
        );
    }

    #[test]
    fn indexes_and_bodies_are_not_reread_but_values_are() {
        let work = |text: &str| check(text).expect("within the bounds");
        // `a[0]` indexes, `if {` opens a body: the `1` inside is read once.
        assert_eq!(work("x := a[0]"), 0);
        assert_eq!(work("p if { 1 }"), 0);
        // `in [`, `if [`, `:= {` open values: their first element is read twice.
        assert_eq!(work("p if { 1 in [1] }"), 2);
        assert_eq!(work("p if [1][0]"), 2);
        assert_eq!(work("x := {1}"), 2);
    }

    #[test]
    fn rereading_counts_first_elements_only() {
        // The second element of each level is read once: no work however deep (within nesting).
        let second = format!("x := {}1{}", "[0, ".repeat(15), "]".repeat(15));
        assert_eq!(excess(&second), None);
        let first = format!("x := {}1{}", "[".repeat(15), "]".repeat(15));
        assert!(excess(&first).is_none_or(|(_, m)| m.contains("re-read")));
    }
}
