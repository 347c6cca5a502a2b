//! Checks, at load, that the compiled decision rule (regorus's RVM) decides like the
//! interpreter on a few hundred inputs made from the policy's own data. The RVM is the
//! younger of regorus's two evaluators; a policy on which they disagree is interpreted.
//!
//! The inputs are deterministic (seeded by the policy's revision), so a policy set is judged
//! the same way at every start. They are built from the strings in `data` (keys and values)
//! and from walks down it: consecutive keys of a path such as `acl.groups.users.basic` become a
//! client group, a cluster and a command, so that allowed requests are tried too, not only
//! refusals.

use std::collections::BTreeMap;

use super::{ClientInput, HostInput, ModuleInput, PolicyInput, RequestInput};

/// Inputs tried at each load.
pub(super) const SAMPLES: usize = 300;
/// How long the check may take; a policy too slow to check in this time is interpreted.
pub(super) const BUDGET: std::time::Duration = std::time::Duration::from_secs(1);

/// The first input on which `interpreted` and `compiled` disagree, as JSON, with both results;
/// or a note that the check ran out of time.
/// They agree when both give the same value (undefined included), or both fail (the messages
/// may differ). A failure in one and a value in the other is a disagreement even when both
/// deny: the interpreter's error is what the operator needs to see.
pub(super) fn disagreement(
    data: &regorus::Value,
    seed: &str,
    mut interpreted: impl FnMut(&PolicyInput) -> Result<regorus::Value, String>,
    mut compiled: impl FnMut(&PolicyInput) -> Result<regorus::Value, String>,
) -> Option<String> {
    let started = std::time::Instant::now();
    let mut inputs = Inputs::new(data, seed);
    for checked in 0..SAMPLES {
        if started.elapsed() > BUDGET {
            return Some(format!(
                "(only {checked} of {SAMPLES} inputs could be checked within {BUDGET:?})"
            ));
        }
        let input = inputs.next();
        let a = interpreted(&input);
        let b = compiled(&input);
        let agree = match (&a, &b) {
            (Ok(x), Ok(y)) => x == y,
            (Err(_), Err(_)) => true,
            _ => false,
        };
        if !agree {
            let input = serde_json::to_string(&input).unwrap_or_default();
            return Some(format!("for input {input}: interpreter {a:?}, compiled {b:?}"));
        }
    }
    None
}

/// A deterministic stream of inputs drawn from `data`.
struct Inputs {
    rng: SplitMix,
    words: Vec<String>,
    paths: Vec<Vec<String>>,
}

const IMPORTS: [&str; 4] = [
    "sesame:host/log",
    "sesame:host/firewall",
    "sesame:host/salt",
    "sesame:host/users",
];
const EXTRA_WORDS: [&str; 8] = ["alice", "root", "22", "tcp", "*", "", "web", "10.0.0.1"];

impl Inputs {
    fn new(data: &regorus::Value, seed: &str) -> Self {
        let json = serde_json::to_value(data).unwrap_or_default();
        let mut words = Vec::new();
        let mut paths = Vec::new();
        walk(&json, &mut Vec::new(), &mut words, &mut paths);
        words.extend(EXTRA_WORDS.iter().map(|w| (*w).to_owned()));
        words.sort();
        words.dedup();
        let seed = seed.bytes().fold(0x5e5a_3e00_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Self {
            rng: SplitMix(seed),
            words,
            paths,
        }
    }

    fn word(&mut self) -> String {
        let i = self.rng.below(self.words.len());
        self.words[i].clone()
    }

    /// Group, cluster and command: half the time three consecutive keys of a path in the data.
    fn triple(&mut self) -> (String, String, String) {
        let long: Vec<usize> = (0..self.paths.len())
            .filter(|&i| self.paths[i].len() >= 3)
            .collect();
        if !long.is_empty() && self.rng.below(2) == 0 {
            let path = &self.paths[long[self.rng.below(long.len())]];
            let k = self.rng.below(path.len() - 2);
            return (path[k].clone(), path[k + 1].clone(), path[k + 2].clone());
        }
        (self.word(), self.word(), self.word())
    }

    fn next(&mut self) -> PolicyInput {
        let (group, cluster, command) = self.triple();
        let mut groups = Vec::new();
        match self.rng.below(4) {
            0 => {}
            1 | 2 => groups.push(group),
            _ => {
                groups.push(group);
                groups.push(self.word());
            }
        }
        let args = (0..self.rng.below(4)).map(|_| self.word()).collect();
        let mut labels = BTreeMap::new();
        if self.rng.below(2) == 0 {
            labels.insert(self.word(), self.word());
        }
        let imports = IMPORTS
            .iter()
            .filter(|_| self.rng.below(2) == 0)
            .map(|i| (*i).to_owned())
            .collect();
        let source_ip = match self.rng.below(3) {
            0 => None,
            1 => Some("127.0.0.1".to_owned()),
            _ => Some("203.0.113.5".to_owned()),
        };
        PolicyInput {
            client: ClientInput {
                name: self.word(),
                key: "00".repeat(32),
                groups,
            },
            request: RequestInput {
                id: format!("{:032x}", self.rng.next()),
                cluster: cluster.clone(),
                command: command.clone(),
                args,
                transport: if self.rng.below(2) == 0 { "quic" } else { "sqs" }.to_owned(),
                source_ip,
            },
            host: HostInput {
                name: self.word(),
                labels,
            },
            module: ModuleInput {
                name: format!("{cluster}::{command}"),
                digest: format!("sha256:{}", "0".repeat(64)),
                imports,
            },
            // Any time within a week of 2026-01-01, so rules on the hour or day are exercised.
            now_ns: 1_767_225_600_000_000_000
                + i64::try_from(self.rng.below(7 * 86_400)).unwrap_or(0) * 1_000_000_000,
        }
    }
}

/// Collects every string (keys and values) and every path of keys from the root to a leaf.
fn walk(
    value: &serde_json::Value,
    path: &mut Vec<String>,
    words: &mut Vec<String>,
    paths: &mut Vec<Vec<String>>,
) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                words.push(k.clone());
                path.push(k.clone());
                walk(v, path, words, paths);
                path.pop();
            }
        }
        serde_json::Value::Array(items) if !items.is_empty() => {
            for v in items {
                walk(v, path, words, paths);
            }
        }
        serde_json::Value::String(s) => {
            words.push(s.clone());
            path.push(s.clone());
            paths.push(path.clone());
            path.pop();
        }
        other => {
            if !matches!(other, serde_json::Value::Null) {
                words.push(other.to_string());
            }
            paths.push(path.clone());
        }
    }
}

/// splitmix64: small, fast, and enough to spread test inputs.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
}
