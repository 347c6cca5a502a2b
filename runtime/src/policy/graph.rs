//! The rule graph of a policy set: which rule or function may evaluate which, refused at load when
//! it has a cycle (recursion) or a path deeper than [`MAX_EVAL_DEPTH`].
//!
//! regorus evaluates a rule or a function call by recursion, and detects recursion between rules
//! only while evaluating (an error: a denial) and between functions not at all: `f(x) := f(x)`
//! recurses until the stack overflows, which aborts the process. OPA refuses recursion when it
//! compiles a policy (`rego_recursion_error`); so does sesame, at every load (`policy check`,
//! `policy test`, the daemon's start and reloads).
//!
//! A node is a rule or function (by its full path, `data.sesame.f`), or a path that has rules
//! below it (`data.sesame`: a reference to it, or to `data.sesame[x]`, may evaluate every one of
//! them). An edge goes from a rule to whatever a reference in it may evaluate
//! ([`walk`](super::walk) finds the references and resolves local variables), with the level of
//! the reference plus [`CALL_COST`] as its weight; `f with g as h` adds an edge from `g` to `h`.
//! The *evaluation depth* of a rule is the heaviest path from it: its own deepest level, or a
//! reference's level plus the depth of what it evaluates. Stack use grows with that depth, and
//! [`MAX_EVAL_DEPTH`] keeps it far below the policy threads' stack ([`stack`](super::stack)).

use std::collections::BTreeMap;

use super::walk::{ModuleSummary, Reference, Role, Segment};

/// The deepest evaluation a policy set may nest (see the module documentation). The stock policy
/// needs about a tenth of it; the deepest policies it admits run on an eighth of a policy thread's
/// stack (`policy/hostile.rs`).
pub const MAX_EVAL_DEPTH: u32 = 1000;

/// The weight a rule or function evaluation adds to the level of the reference that starts it.
const CALL_COST: u32 = 2;

/// Why the graph is refused: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    /// The module index (into the slice given to [`check`]) and 1-based line of the rule named.
    pub(super) at: (usize, u32),
    pub(super) kind: RefusalKind,
    pub(super) message: String,
}

/// What a [`Refusal`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RefusalKind {
    /// A rule or function may evaluate itself.
    Recursion,
    /// An evaluation may nest deeper than [`MAX_EVAL_DEPTH`].
    TooDeep,
}

/// Builds the graph of `modules` (with a name per module, for messages) and checks it. Returns the
/// deepest evaluation depth of the set.
pub(super) fn check(modules: &[(String, ModuleSummary)]) -> Result<u32, Refusal> {
    let graph = Graph::build(modules);
    let order = graph.rule_order();
    let depth = graph.depths(&order)?;
    let Some(&deepest) = order.iter().max_by_key(|&&n| (depth[n], std::cmp::Reverse(n))) else {
        return Ok(0);
    };
    if depth[deepest] > MAX_EVAL_DEPTH {
        let node = &graph.nodes[deepest];
        let chain = graph.heaviest_path(deepest, &depth);
        // The walk stops descending a rule past the bound: then the depth is a lower bound.
        let cut = chain.iter().any(|&n| graph.nodes[n].own_depth > MAX_EVAL_DEPTH);
        return Err(Refusal {
            at: node.at.unwrap_or((0, 0)),
            kind: RefusalKind::TooDeep,
            message: format!(
                "{} may nest evaluation {}{} levels deep, more than the {MAX_EVAL_DEPTH} a policy may: {}",
                node.name,
                if cut { "at least " } else { "" },
                depth[deepest],
                graph.describe(&chain, true)
            ),
        });
    }
    Ok(depth[deepest])
}

struct Node {
    /// `data.sesame.f`.
    name: String,
    /// Where the rule is first defined: module index, line. `None` for a path with rules below.
    at: Option<(usize, u32)>,
    /// The deepest level within the rule's own definitions.
    own_depth: u32,
    /// Target, weight.
    edges: Vec<(usize, u32)>,
}

struct Graph {
    nodes: Vec<Node>,
    /// The modules' names, for messages.
    names: Vec<String>,
    /// Full path (`["data", "sesame", "f"]`) to node.
    index: BTreeMap<Vec<String>, usize>,
}

impl Graph {
    fn build(modules: &[(String, ModuleSummary)]) -> Graph {
        let mut graph = Graph {
            nodes: Vec::new(),
            names: modules.iter().map(|(name, _)| name.clone()).collect(),
            index: BTreeMap::new(),
        };
        // Rules first, then the paths above them, then the references.
        for (m, (_, module)) in modules.iter().enumerate() {
            for rule in &module.rules {
                let path = full_path(&module.package, &rule.path);
                let node = graph.node(&path);
                let entry = &mut graph.nodes[node];
                entry.at = Some(entry.at.map_or((m, rule.line), |at| at.min((m, rule.line))));
                entry.own_depth = entry.own_depth.max(rule.depth);
            }
        }
        let rule_paths: Vec<Vec<String>> = graph.index.keys().cloned().collect();
        for path in rule_paths {
            for len in 1..path.len() {
                let parent = graph.node(&path[..len]);
                let child = graph.node(&path[..=len]);
                if !graph.nodes[parent].edges.contains(&(child, 0)) {
                    graph.nodes[parent].edges.push((child, 0));
                }
            }
        }
        for (module_summary, (from_rule, reference)) in modules.iter().flat_map(|(_, module)| {
            module.rules.iter().flat_map(move |rule| {
                rule.references
                    .iter()
                    .map(move |reference| (module, (rule, reference)))
            })
        }) {
            let from = graph.index[&full_path(&module_summary.package, &from_rule.path)];
            graph.reference(module_summary, from, reference);
        }
        graph
    }

    /// The node of `path`, made if need be.
    fn node(&mut self, path: &[String]) -> usize {
        if let Some(&n) = self.index.get(path) {
            return n;
        }
        self.nodes.push(Node {
            name: path.join("."),
            at: None,
            own_depth: 0,
            edges: Vec::new(),
        });
        self.index.insert(path.to_vec(), self.nodes.len() - 1);
        self.nodes.len() - 1
    }

    /// Adds the edges of one reference made by rule `from` of `module`.
    fn reference(&mut self, module: &ModuleSummary, from: usize, reference: &Reference) {
        let weight = reference.level.saturating_add(CALL_COST);
        if reference.role == Role::WithTarget {
            // `with g as h`: wherever g is evaluated meanwhile, h may be in its place.
            let Some((root, path)) = &reference.replaced_by else {
                return;
            };
            let replaced = self.targets(&resolve(module, &reference.root, &reference.path));
            let by = self.targets(&resolve(module, root, path));
            for &g in &replaced {
                for &h in &by {
                    self.nodes[g].edges.push((h, CALL_COST));
                }
            }
            return;
        }
        // Locals shadow rules; a call names a function whatever the locals (see `walk`).
        if reference.local && reference.role != Role::Call {
            return;
        }
        for target in self.targets(&resolve(module, &reference.root, &reference.path)) {
            self.nodes[from].edges.push((target, weight));
        }
    }

    /// The nodes a reference to `path` may evaluate: every rule at a prefix of it (`data.p.x.y`
    /// reads into rule `data.p.x`), and the path itself when rules lie below it.
    fn targets(&self, path: &[String]) -> Vec<usize> {
        (1..=path.len())
            .filter_map(|len| self.index.get(&path[..len]).copied())
            .filter(|&n| self.nodes[n].at.is_some() || self.index.get(path) == Some(&n))
            .collect()
    }

    /// Rule nodes, in the order they are defined.
    fn rule_order(&self) -> Vec<usize> {
        let mut rules: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].at.is_some())
            .collect();
        rules.sort_by_key(|&n| self.nodes[n].at);
        rules
    }

    /// The evaluation depth of every node, or the first cycle found (depth first, from the rules
    /// in the order they are defined).
    fn depths(&self, order: &[usize]) -> Result<Vec<u32>, Refusal> {
        const WHITE: u8 = 0;
        const GREY: u8 = 1;
        const BLACK: u8 = 2;
        let mut colour = vec![WHITE; self.nodes.len()];
        let mut depth = vec![0_u32; self.nodes.len()];
        for &start in order {
            if colour[start] != WHITE {
                continue;
            }
            colour[start] = GREY;
            let mut stack = vec![(start, 0_usize)];
            while let Some(top) = stack.last_mut() {
                let (node, next) = *top;
                if let Some(&(target, _)) = self.nodes[node].edges.get(next) {
                    top.1 += 1;
                    match colour[target] {
                        WHITE => {
                            colour[target] = GREY;
                            stack.push((target, 0));
                        }
                        GREY => {
                            let from = stack.iter().position(|&(n, _)| n == target).unwrap_or(0);
                            let cycle: Vec<usize> = stack[from..].iter().map(|&(n, _)| n).collect();
                            return Err(self.recursion(&cycle));
                        }
                        _ => {}
                    }
                    continue;
                }
                stack.pop();
                colour[node] = BLACK;
                depth[node] = self.nodes[node]
                    .edges
                    .iter()
                    .map(|&(t, w)| w.saturating_add(depth[t]))
                    .fold(self.nodes[node].own_depth, u32::max);
            }
        }
        Ok(depth)
    }

    /// The refusal for a cycle, told from its first rule.
    fn recursion(&self, cycle: &[usize]) -> Refusal {
        let first = cycle
            .iter()
            .position(|&n| self.nodes[n].at.is_some())
            .unwrap_or(0);
        let mut chain: Vec<usize> = cycle[first..].iter().chain(&cycle[..first]).copied().collect();
        chain.push(chain[0]);
        let node = &self.nodes[chain[0]];
        Refusal {
            at: node.at.unwrap_or((0, 0)),
            kind: RefusalKind::Recursion,
            message: format!("{} is recursive: {}", node.name, self.describe(&chain, false)),
        }
    }

    /// The path from `node` along its heaviest edges.
    fn heaviest_path(&self, node: usize, depth: &[u32]) -> Vec<usize> {
        let mut path = vec![node];
        let mut at = node;
        while let Some(&(next, _)) = self.nodes[at]
            .edges
            .iter()
            .filter(|&&(t, w)| w.saturating_add(depth[t]) == depth[at])
            .min_by_key(|&&(t, _)| t)
        {
            path.push(next);
            at = next;
        }
        path
    }

    /// `a (p.rego:3) -> b (p.rego:5) -> …`; long chains are cut in the middle.
    fn describe(&self, chain: &[usize], shorten: bool) -> String {
        let last = chain.len().saturating_sub(1);
        let named: Vec<String> = chain
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let node = &self.nodes[n];
                match node.at {
                    // The closing element of a cycle repeats the first: its place is known.
                    Some((m, line)) if !(i == last && i > 0 && chain[0] == n) => {
                        let file = self.names.get(m).map_or("?", String::as_str);
                        format!("{} ({file}:{line})", node.name)
                    }
                    _ => node.name.clone(),
                }
            })
            .collect();
        if shorten && named.len() > 8 {
            let cut = named.len() - 7;
            let mut shown = named[..4].to_vec();
            shown.push(format!("… ({cut} more)"));
            shown.extend_from_slice(&named[named.len() - 3..]);
            return shown.join(" -> ");
        }
        named.join(" -> ")
    }
}

/// `data`, the package, then the path.
fn full_path(package: &[String], path: &[String]) -> Vec<String> {
    std::iter::once("data".to_owned())
        .chain(package.iter().cloned())
        .chain(path.iter().cloned())
        .collect()
}

/// The static part of the full path a reference may name, as regorus resolves it: `data.…` as
/// written, an import's alias to the import's path, anything else to a rule or function of the
/// module's package (a name that is neither, such as a builtin, then has no node). Empty for
/// `input` and `_`.
fn resolve(module: &ModuleSummary, root: &str, path: &[Segment]) -> Vec<String> {
    let fields = || {
        path.iter().map_while(|s| match s {
            Segment::Field(f) => Some(f.clone()),
            Segment::Dynamic => None,
        })
    };
    if root == "data" {
        return std::iter::once(root.to_owned()).chain(fields()).collect();
    }
    if let Some(import) = module
        .imports
        .iter()
        .find(|i| i.alias == root && i.root == "data")
    {
        let import_path: Vec<String> = import
            .path
            .iter()
            .map_while(|s| match s {
                Segment::Field(f) => Some(f.clone()),
                Segment::Dynamic => None,
            })
            .collect();
        return std::iter::once("data".to_owned())
            .chain(import_path)
            .chain(fields())
            .collect();
    }
    if root == "input" || root == "_" {
        return Vec::new();
    }
    full_path(
        &module.package,
        &std::iter::once(root.to_owned())
            .chain(fields())
            .collect::<Vec<_>>(),
    )
}
