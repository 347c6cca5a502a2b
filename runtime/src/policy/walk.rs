//! A summary of one parsed Rego module (regorus's AST), for the load-time checks: its package,
//! its imports, and for every rule the references it makes (with how deeply nested each one is)
//! and how deeply its own evaluation may nest.
//!
//! [`graph`](super::graph) turns the references into the rule graph (recursion, evaluation depth);
//! [`purity`](super::purity) reads them to decide whether decisions may be remembered. Both need
//! the same facts, read the way regorus reads them:
//!
//! - a reference is a variable followed by fields: `a.b`, `a["b"]` (the same path), `a[x]` (a
//!   computed part, [`Segment::Dynamic`]);
//! - a call is named by such a path, which regorus resolves without looking at local variables;
//! - a variable declared in a query (`some`, `:=`, `every`) or as a function argument is local in
//!   that query and the queries nested in it, and shadows a rule of the same name; any other
//!   variable names a rule of the package, an import, `input`, `data`, or nothing;
//! - *level*: how many evaluation frames deep a node sits in its rule. Every expression is one
//!   deeper than the expression holding it, and every statement one deeper than the statement
//!   before it (the interpreter runs the rest of a query inside a loop over the statement's
//!   values). regorus evaluates recursively along exactly these lines.
//!
//! The walk recurses along the AST, whose depth the text bounds ([`bounds`](super::bounds)) keep
//! small, on a policy thread ([`stack`](super::stack)).

use std::collections::BTreeSet;

use regorus::unstable::{AssignOp, Expr, Literal, LiteralStmt, Module, Query, Rule, RuleHead};

/// One part of a reference path after its first variable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Segment {
    /// `.name` or `["name"]`.
    Field(String),
    /// `[expression]` with anything but a string constant.
    Dynamic,
}

/// How a reference is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Read: its value is looked up (a rule is evaluated).
    Read,
    /// Called: it names a function or builtin.
    Call,
    /// The target of `with … as`: replaced, not read.
    WithTarget,
    /// The value of `with … as`: read, or, when the target is a function, called in its place.
    WithValue,
}

/// One reference made by a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reference {
    /// The variable the path starts with (`data`, `input`, a rule, an import, a namespace).
    pub(super) root: String,
    /// The rest of the path.
    pub(super) path: Vec<Segment>,
    pub(super) role: Role,
    /// Whether `root` is a local variable there (calls ignore locals: see the module doc).
    pub(super) local: bool,
    /// See the module documentation.
    pub(super) level: u32,
    /// 1-based.
    pub(super) line: u32,
    /// For [`Role::WithTarget`]: the value it is replaced by, when that is a reference too.
    pub(super) replaced_by: Option<(String, Vec<Segment>)>,
}

/// One rule (or one definition of it: a rule with several heads appears once per head).
#[derive(Debug, Clone)]
pub(super) struct RuleSummary {
    /// The head's path after the package, up to its first computed part (`p[x]` is `p`).
    pub(super) path: Vec<String>,
    /// Whether it defines a function.
    pub(super) function: bool,
    /// 1-based line of the head.
    pub(super) line: u32,
    /// The deepest level of any node of the rule.
    pub(super) depth: u32,
    pub(super) references: Vec<Reference>,
}

/// One import.
#[derive(Debug, Clone)]
pub(super) struct ImportSummary {
    /// `data`, `input`, `future` or `rego`, then fields.
    pub(super) root: String,
    pub(super) path: Vec<Segment>,
    /// The name it binds (`as`, else the last field).
    pub(super) alias: String,
    /// 1-based.
    pub(super) line: u32,
}

/// One module.
#[derive(Debug, Clone, Default)]
pub(super) struct ModuleSummary {
    /// The package after `data` (`package a.b` is `["a", "b"]`).
    pub(super) package: Vec<String>,
    pub(super) imports: Vec<ImportSummary>,
    pub(super) rules: Vec<RuleSummary>,
}

/// Summarises a parsed module.
pub(super) fn summarise(module: &Module) -> ModuleSummary {
    let package = match split_ref(&module.package.refr) {
        Some((root, path)) => std::iter::once(root)
            .chain(path.into_iter().filter_map(|s| match s {
                Segment::Field(f) => Some(f),
                Segment::Dynamic => None,
            }))
            .collect(),
        None => Vec::new(),
    };
    let imports = module
        .imports
        .iter()
        .filter_map(|import| {
            let (root, path) = split_ref(&import.refr)?;
            let alias = match &import.r#as {
                Some(span) => span.text().to_owned(),
                None => match path.last() {
                    Some(Segment::Field(last)) => last.clone(),
                    _ => root.clone(),
                },
            };
            Some(ImportSummary {
                root,
                path,
                alias,
                line: import.span.line,
            })
        })
        .collect();
    let rules = module.policy.iter().map(|rule| summarise_rule(rule)).collect();
    ModuleSummary {
        package,
        imports,
        rules,
    }
}

/// The dotted text of a path (`rand.intn`, `data.lib["a b"]`, `input.x[_]`), for messages and for
/// matching builtin names.
pub(super) fn dotted(root: &str, path: &[Segment]) -> String {
    let mut text = root.to_owned();
    for segment in path {
        match segment {
            Segment::Field(f) if is_identifier(f) => {
                text.push('.');
                text.push_str(f);
            }
            Segment::Field(f) => text.push_str(&format!("[{f:?}]")),
            Segment::Dynamic => text.push_str("[_]"),
        }
    }
    text
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn summarise_rule(rule: &Rule) -> RuleSummary {
    let mut walker = Walker::default();
    let (path, function, line) = match rule {
        Rule::Spec { span, head, bodies } => {
            let (refr, function) = match head {
                RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. } => (refr, false),
                RuleHead::Func { refr, .. } => (refr, true),
            };
            let args: &[regorus::unstable::Ref<Expr>] = match head {
                RuleHead::Func { args, .. } => args,
                _ => &[],
            };
            let mut arg_names = BTreeSet::new();
            for arg in args {
                pattern_vars(arg, &mut arg_names);
            }
            walker.scopes.push(arg_names);
            for arg in args {
                walker.expr(arg, 1);
            }
            let head_exprs = |walker: &mut Walker| match head {
                RuleHead::Compr { refr, assign, .. } => {
                    walker.head_ref(refr, 1);
                    if let Some(assign) = assign {
                        walker.expr(&assign.value, 1);
                    }
                }
                RuleHead::Set { refr, key, .. } => {
                    walker.head_ref(refr, 1);
                    if let Some(key) = key {
                        walker.expr(key, 1);
                    }
                }
                RuleHead::Func { refr, assign, .. } => {
                    walker.head_ref(refr, 1);
                    if let Some(assign) = assign {
                        walker.expr(&assign.value, 1);
                    }
                }
            };
            if bodies.is_empty() {
                head_exprs(&mut walker);
            }
            for body in bodies {
                // The head's expressions are evaluated with each body's bindings.
                walker.scopes.push(query_declarations(&body.query));
                head_exprs(&mut walker);
                if let Some(assign) = &body.assign {
                    walker.expr(&assign.value, 1);
                }
                walker.query_statements(&body.query, 1);
                walker.scopes.pop();
            }
            (head_path(refr), function, span.line)
        }
        Rule::Default {
            span,
            refr,
            args,
            value,
            ..
        } => {
            let mut arg_names = BTreeSet::new();
            for arg in args {
                pattern_vars(arg, &mut arg_names);
            }
            walker.scopes.push(arg_names);
            walker.expr(value, 1);
            (head_path(refr), !args.is_empty(), span.line)
        }
    };
    RuleSummary {
        path,
        function,
        line,
        depth: walker.depth,
        references: walker.references,
    }
}

/// The static part of a rule head's path.
fn head_path(refr: &Expr) -> Vec<String> {
    let Some((root, path)) = split_ref(refr) else {
        return Vec::new();
    };
    std::iter::once(root)
        .chain(path.into_iter().map_while(|s| match s {
            Segment::Field(f) => Some(f),
            Segment::Dynamic => None,
        }))
        .collect()
}

/// How deep the walk descends: past [`MAX_EVAL_DEPTH`](super::graph::MAX_EVAL_DEPTH) a rule is
/// refused whatever lies deeper, and the walk must not recurse as deep as the AST may be.
const WALK_LIMIT: u32 = super::graph::MAX_EVAL_DEPTH + 1;

#[derive(Default)]
struct Walker {
    /// Local variables, innermost scope last.
    scopes: Vec<BTreeSet<String>>,
    depth: u32,
    references: Vec<Reference>,
}

impl Walker {
    fn is_local(&self, name: &str) -> bool {
        self.scopes.iter().any(|scope| scope.contains(name))
    }

    /// Notes that the rule reaches `level`; `false` when the walk is not to descend further.
    fn reach(&mut self, level: u32) -> bool {
        self.depth = self.depth.max(level);
        level <= WALK_LIMIT
    }

    /// A rule head's path: its computed parts are expressions of the body (`p[x]`).
    fn head_ref(&mut self, refr: &Expr, level: u32) {
        if !self.reach(level) {
            return;
        }
        match refr {
            Expr::RefDot { refr, .. } => self.head_ref(refr, level + 1),
            Expr::RefBrack { refr, index, .. } => {
                self.head_ref(refr, level + 1);
                self.expr(index, level + 1);
            }
            _ => {}
        }
    }

    fn query_statements(&mut self, query: &Query, level: u32) {
        if !self.reach(level) {
            return;
        }
        for (index, stmt) in query.stmts.iter().enumerate() {
            let at = level
                .saturating_add(1)
                .saturating_add(u32::try_from(index).unwrap_or(u32::MAX));
            self.statement(stmt, at);
        }
    }

    /// A nested query: its declarations are local to it.
    fn query(&mut self, query: &Query, level: u32) {
        self.scopes.push(query_declarations(query));
        self.query_statements(query, level);
        self.scopes.pop();
    }

    fn statement(&mut self, stmt: &LiteralStmt, level: u32) {
        if !self.reach(level) {
            return;
        }
        for modifier in &stmt.with_mods {
            let replaced_by = split_ref(&modifier.r#as);
            if let Some((root, path)) = split_ref(&modifier.refr) {
                self.references.push(Reference {
                    local: self.is_local(&root),
                    root,
                    path,
                    role: Role::WithTarget,
                    level,
                    line: modifier.span.line,
                    replaced_by: replaced_by.clone(),
                });
            }
            self.ref_indexes(&modifier.refr, level + 1);
            match replaced_by {
                Some(_) => self.reference(&modifier.r#as, Role::WithValue, level + 1),
                None => self.expr(&modifier.r#as, level + 1),
            }
        }
        match &stmt.literal {
            Literal::SomeVars { .. } => {}
            Literal::SomeIn {
                key,
                value,
                collection,
                ..
            } => {
                if let Some(key) = key {
                    self.expr(key, level + 1);
                }
                self.expr(value, level + 1);
                self.expr(collection, level + 1);
            }
            Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => self.expr(expr, level + 1),
            Literal::Every {
                key,
                value,
                domain,
                query,
                ..
            } => {
                self.expr(domain, level + 1);
                let mut declared: BTreeSet<String> = key.iter().map(|k| k.text().to_owned()).collect();
                declared.insert(value.text().to_owned());
                self.scopes.push(declared);
                self.query(query, level + 1);
                self.scopes.pop();
            }
        }
    }

    fn expr(&mut self, expr: &Expr, level: u32) {
        if !self.reach(level) {
            return;
        }
        let next = level.saturating_add(1);
        match expr {
            Expr::String { .. }
            | Expr::RawString { .. }
            | Expr::Number { .. }
            | Expr::Bool { .. }
            | Expr::Null { .. } => {}
            Expr::Var { .. } | Expr::RefDot { .. } | Expr::RefBrack { .. } => {
                self.reference(expr, Role::Read, level);
            }
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                for item in items {
                    self.expr(item, next);
                }
            }
            Expr::Object { fields, .. } => {
                for (_, key, value) in fields {
                    self.expr(key, next);
                    self.expr(value, next);
                }
            }
            Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                self.scopes.push(query_declarations(query));
                self.query_statements(query, next);
                self.expr(term, output_level(query, next));
                self.scopes.pop();
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                self.scopes.push(query_declarations(query));
                self.query_statements(query, next);
                let out = output_level(query, next);
                self.expr(key, out);
                self.expr(value, out);
                self.scopes.pop();
            }
            Expr::Call { fcn, params, .. } => {
                self.reference(fcn, Role::Call, level);
                for param in params {
                    self.expr(param, next);
                }
            }
            Expr::UnaryExpr { expr, .. } => self.expr(expr, next),
            Expr::BinExpr { lhs, rhs, .. }
            | Expr::BoolExpr { lhs, rhs, .. }
            | Expr::ArithExpr { lhs, rhs, .. }
            | Expr::AssignExpr { lhs, rhs, .. } => {
                self.expr(lhs, next);
                self.expr(rhs, next);
            }
            Expr::Membership {
                key,
                value,
                collection,
                ..
            } => {
                if let Some(key) = key {
                    self.expr(key, next);
                }
                self.expr(value, next);
                self.expr(collection, next);
            }
            #[allow(unreachable_patterns)] // variants of features sesame does not enable
            _ => {}
        }
    }

    /// A reference expression: records its path (when it starts with a variable) and walks its
    /// computed parts; anything else at its root is walked as an expression.
    fn reference(&mut self, expr: &Expr, role: Role, level: u32) {
        if !self.reach(level) {
            return;
        }
        match split_ref(expr) {
            Some((root, path)) => {
                self.references.push(Reference {
                    local: self.is_local(&root),
                    root,
                    path,
                    role,
                    level,
                    line: expr.span().line,
                    replaced_by: None,
                });
                self.ref_indexes(expr, level + 1);
            }
            None => self.ref_parts(expr, level),
        }
    }

    /// Walks the computed parts of a reference chain.
    fn ref_indexes(&mut self, expr: &Expr, level: u32) {
        if !self.reach(level) {
            return;
        }
        match expr {
            Expr::RefDot { refr, .. } => self.ref_indexes(refr, level + 1),
            Expr::RefBrack { refr, index, .. } => {
                self.ref_indexes(refr, level + 1);
                self.expr(index, level + 1);
            }
            _ => {}
        }
    }

    /// A reference chain whose root is not a variable (`[1, 2][i]`, `f(x).y`): the root and the
    /// computed parts are expressions.
    fn ref_parts(&mut self, expr: &Expr, level: u32) {
        if !self.reach(level) {
            return;
        }
        match expr {
            Expr::RefDot { refr, .. } => self.ref_parts(refr, level + 1),
            Expr::RefBrack { refr, index, .. } => {
                self.ref_parts(refr, level + 1);
                self.expr(index, level + 1);
            }
            other => self.expr(other, level),
        }
    }
}

/// Where a comprehension's output is evaluated: after its statements.
fn output_level(query: &Query, level: u32) -> u32 {
    level
        .saturating_add(1)
        .saturating_add(u32::try_from(query.stmts.len()).unwrap_or(u32::MAX))
}

/// The variables a query declares for itself: `some x`, `some k, v in …`, `x := …`.
fn query_declarations(query: &Query) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for stmt in &query.stmts {
        match &stmt.literal {
            Literal::SomeVars { vars, .. } => names.extend(vars.iter().map(|v| v.text().to_owned())),
            Literal::SomeIn { key, value, .. } => {
                if let Some(key) = key {
                    pattern_vars(key, &mut names);
                }
                pattern_vars(value, &mut names);
            }
            Literal::Expr { expr, .. } => {
                if let Expr::AssignExpr {
                    op: AssignOp::ColEq,
                    lhs,
                    ..
                } = expr.as_ref()
                {
                    pattern_vars(lhs, &mut names);
                }
            }
            Literal::NotExpr { .. } | Literal::Every { .. } => {}
        }
    }
    names
}

/// The variables a pattern binds: itself, or those in its array items and object values.
fn pattern_vars(pattern: &Expr, names: &mut BTreeSet<String>) {
    match pattern {
        Expr::Var { span, .. } => {
            let name = span.text();
            if name != "_" {
                names.insert(name.to_owned());
            }
        }
        Expr::Array { items, .. } => items.iter().for_each(|i| pattern_vars(i, names)),
        Expr::Object { fields, .. } => fields.iter().for_each(|(_, _, v)| pattern_vars(v, names)),
        _ => {}
    }
}

/// A reference chain as its first variable and the path after it; `None` when the chain does not
/// start with a variable.
pub(super) fn split_ref(expr: &Expr) -> Option<(String, Vec<Segment>)> {
    let mut path = Vec::new();
    let mut at = expr;
    loop {
        match at {
            Expr::Var { span, .. } => {
                path.reverse();
                return Some((span.text().to_owned(), path));
            }
            Expr::RefDot { refr, field, .. } => {
                path.push(Segment::Field(field.0.text().to_owned()));
                at = refr;
            }
            Expr::RefBrack { refr, index, .. } => {
                path.push(match index.as_ref() {
                    Expr::String { value, .. } | Expr::RawString { value, .. } => value
                        .as_string()
                        .map_or(Segment::Dynamic, |s| Segment::Field(s.as_ref().to_owned())),
                    _ => Segment::Dynamic,
                });
                at = refr;
            }
            _ => return None,
        }
    }
}
