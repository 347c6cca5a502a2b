//! A lexical view of Rego source: the identifiers outside strings and comments, which of them head
//! a rule, and which lines hold code. Used where regorus offers no public AST (finding tests,
//! unreferenced rules, the rules `--explain` evaluates).
//!
//! Limits, by design: a rule head is an identifier that starts a line outside any brace, bracket,
//! parenthesis, string or comment (so a rule head must start its line, as `opa fmt` writes it), and
//! a reference is any other occurrence of the name, whatever it means there (a local variable or
//! an object key written as an identifier counts too). Names built at run time (`data.p[name]`)
//! are not seen.

use std::collections::BTreeSet;

/// One occurrence of an identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identifier<'a> {
    pub(super) text: &'a str,
    /// 1-based.
    pub(super) line: u32,
    /// Whether it is the head of a rule (see the module documentation).
    pub(super) head: bool,
    /// Whether it is followed by `(` (a function head or a call).
    pub(super) called: bool,
}

/// A rule head: the rule's name, its line, and whether it defines a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RuleHead {
    pub(super) name: String,
    /// 1-based.
    pub(super) line: u32,
    pub(super) function: bool,
}

/// What a [`Token`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenKind<'a> {
    /// An identifier or keyword.
    Ident(&'a str),
    /// One punctuation byte: `.`, `[`, `(`, `:`, `=` and so on.
    Punct(u8),
    /// A string, raw string or number (its text is not kept).
    Literal,
}

/// One token of Rego source outside comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Token<'a> {
    pub(super) kind: TokenKind<'a>,
    /// 1-based line where the token starts.
    pub(super) line: u32,
    /// Whether the token starts its line outside any brace, bracket, parenthesis or raw string.
    pub(super) first: bool,
}

impl<'a> Token<'a> {
    /// Whether the token is the punctuation byte `c`.
    pub(super) fn is(&self, c: u8) -> bool {
        self.kind == TokenKind::Punct(c)
    }

    /// The identifier's text; `None` for other tokens.
    pub(super) fn ident(&self) -> Option<&'a str> {
        match self.kind {
            TokenKind::Ident(text) => Some(text),
            _ => None,
        }
    }
}

/// The tokens of `source`, in order, comments left out.
pub(super) fn tokens(source: &str) -> Vec<Token<'_>> {
    let mut found = Vec::new();
    let mut depth = 0_i64;
    let mut in_raw = false;
    for (index, line) in source.lines().enumerate() {
        let line_no = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let mut first = depth == 0 && !in_raw;
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if in_raw {
                in_raw = c != b'`';
                i += 1;
                continue;
            }
            let mut push = |kind| {
                found.push(Token {
                    kind,
                    line: line_no,
                    first,
                });
                first = false;
            };
            match c {
                b'#' => break,
                b'"' => {
                    push(TokenKind::Literal);
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                }
                b'`' => {
                    push(TokenKind::Literal);
                    in_raw = true;
                }
                _ if c.is_ascii_alphabetic() || c == b'_' => {
                    let start = i;
                    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                        i += 1;
                    }
                    push(TokenKind::Ident(&line[start..i]));
                    continue;
                }
                _ if c.is_ascii_digit() => {
                    // a number: skip it whole so `1e5` is not an identifier
                    while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                        i += 1;
                    }
                    push(TokenKind::Literal);
                    continue;
                }
                _ if c.is_ascii_whitespace() => {}
                _ => {
                    match c {
                        b'{' | b'[' | b'(' => depth += 1,
                        b'}' | b']' | b')' => depth -= 1,
                        _ => {}
                    }
                    push(TokenKind::Punct(c));
                }
            }
            i += 1;
        }
    }
    found
}

/// Every identifier of `source` outside strings and comments, in order. Keywords are included.
pub(super) fn identifiers(source: &str) -> Vec<Identifier<'_>> {
    let tokens = tokens(source);
    let mut found = Vec::new();
    let mut after_default = false;
    for (index, token) in tokens.iter().enumerate() {
        let Some(text) = token.ident() else {
            continue;
        };
        let next = tokens.get(index + 1);
        let called = next.is_some_and(|n| n.is(b'(') && n.line == token.line);
        let head = (token.first || after_default) && !KEYWORDS.contains(&text);
        after_default = token.first && text == "default";
        found.push(Identifier {
            text,
            line: token.line,
            head,
            called,
        });
    }
    found
}

/// The rule heads of `source`, in order; a rule with several definitions appears once per head.
pub(super) fn rule_heads(source: &str) -> Vec<RuleHead> {
    identifiers(source)
        .into_iter()
        .filter(|i| i.head)
        .map(|i| RuleHead {
            name: i.text.to_owned(),
            line: i.line,
            function: i.called,
        })
        .collect()
}

/// The lines (1-based) that hold code other than `package` and `import`: what a coverage report
/// counts for a file no test evaluated at all.
pub(super) fn code_lines(source: &str) -> BTreeSet<u32> {
    let mut lines = BTreeSet::new();
    let mut skip_line = 0;
    for id in identifiers(source) {
        if id.line == skip_line {
            continue;
        }
        if id.text == "package" || id.text == "import" {
            skip_line = id.line;
            continue;
        }
        lines.insert(id.line);
    }
    lines
}

/// Words that start a line without heading a rule.
const KEYWORDS: [&str; 5] = ["package", "import", "default", "else", "not"];

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = r#"package p
import data.q
test_a if {
    test_not_a_head := 1
    x := "{ \" test_in_string"
}
# test_commented if true
  test_b := true
test_fn(x) := x
s := `
test_in_raw
`
default allow := false
test_c contains 1e5
"#;

    #[test]
    fn heads_start_lines_outside_bodies_strings_and_comments() {
        let heads: Vec<_> = rule_heads(SOURCE)
            .into_iter()
            .map(|h| (h.name, h.line, h.function))
            .collect();
        let expected = [
            ("test_a", 3, false),
            ("test_b", 8, false),
            ("test_fn", 9, true),
            ("s", 10, false),
            ("allow", 13, false),
            ("test_c", 14, false),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(n, l, f)| ((*n).to_owned(), *l, *f))
            .collect();
        assert_eq!(heads, expected);
    }

    #[test]
    fn identifiers_skip_strings_comments_and_numbers() {
        let names: Vec<_> = identifiers(SOURCE).into_iter().map(|i| i.text).collect();
        assert!(names.contains(&"test_not_a_head"));
        for absent in ["test_in_string", "test_commented", "test_in_raw", "e5"] {
            assert!(!names.contains(&absent), "{absent} in {names:?}");
        }
    }

    #[test]
    fn code_lines_leave_out_package_import_comments_and_blanks() {
        let lines = code_lines(SOURCE);
        assert!(!lines.contains(&1) && !lines.contains(&2) && !lines.contains(&7));
        assert!(lines.contains(&3) && lines.contains(&4) && lines.contains(&14));
    }
}
