//! The nftables back end.
//!
//! sesamed manages one regular chain (`sesame` by default) in a table the operator owns
//! (`inet filter` by default); the operator's input chain jumps to it. Each opening is one rule:
//!
//! ```text
//! ip saddr 203.0.113.5 tcp dport 22 meta time < 1795394400 accept comment "sesame:fw-…"
//! ```
//!
//! The `meta time <` match (Unix seconds, rounded up) makes the kernel stop accepting at expiry
//! even if the daemon is dead; the reaper then removes the inert rule. Rules are found by their
//! comment in `nft -j -a list chain …` and changed by handle (`replace`, `delete`).

use std::path::PathBuf;

use serde_json::Value;

use super::backend::{Backend, BackendError, OwnedRule};
use super::rule::{GrantId, Proto, Rule, Source};
use crate::system::Tool;

/// Where nft is and which table and chain sesamed manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftConfig {
    /// The nft program.
    pub nft: PathBuf,
    /// The table's family: `inet`, `ip` or `ip6`.
    pub family: String,
    /// The table (the operator's).
    pub table: String,
    /// The regular chain sesamed owns in it.
    pub chain: String,
}

impl Default for NftConfig {
    fn default() -> Self {
        Self {
            nft: PathBuf::from("/usr/sbin/nft"),
            family: "inet".to_owned(),
            table: "filter".to_owned(),
            chain: "sesame".to_owned(),
        }
    }
}

/// The nftables back end.
#[derive(Debug)]
pub struct Nft {
    tool: Tool,
    family: String,
    table: String,
    chain: String,
}

/// A rule in our chain that carries one of our tags.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    id: GrantId,
    handle: u64,
    rule: Option<Rule>,
}

impl Nft {
    /// The back end for the nft at `config.nft`, which must exist, managing `config.chain`.
    pub fn new(config: NftConfig) -> Result<Self, BackendError> {
        if !["inet", "ip", "ip6"].contains(&config.family.as_str()) {
            return Err(BackendError::Unusable(format!(
                "nftables family {:?}: expected inet, ip or ip6",
                config.family
            )));
        }
        for (what, name) in [("table", &config.table), ("chain", &config.chain)] {
            let ok = (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                return Err(BackendError::Unusable(format!(
                    "nftables {what} {name:?}: expected 1-64 of A-Z a-z 0-9 _ -"
                )));
            }
        }
        let tool = Tool::new(config.nft)?;
        if !tool.exists() {
            return Err(BackendError::Unusable(format!(
                "{} not found: install nftables, or choose another firewall back end",
                tool.path().display()
            )));
        }
        Ok(Self {
            tool,
            family: config.family,
            table: config.table,
            chain: config.chain,
        })
    }

    /// `FAMILY TABLE CHAIN`, the address of our chain in nft commands.
    fn chain_args(&self) -> [&str; 3] {
        [&self.family, &self.table, &self.chain]
    }

    /// The rule's statement after the chain: match, expiry, accept, tag.
    fn statement(id: &GrantId, rule: &Rule, expires_ms: u64) -> Vec<String> {
        let family = if rule.source.is_ipv6() { "ip6" } else { "ip" };
        let expires_s = expires_ms.div_ceil(1000);
        [
            family,
            "saddr",
            &rule.source.to_string(),
            rule.proto.as_str(),
            "dport",
            &rule.port.to_string(),
            "meta",
            "time",
            "<",
            &expires_s.to_string(),
            "accept",
            "comment",
            &format!("\"{}\"", id.tag()),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Our tagged rules, with handles.
    fn found(&self) -> Result<Vec<Found>, BackendError> {
        let mut args = vec!["-j", "-a", "list", "chain"];
        args.extend(self.chain_args());
        let out = self.tool.run(&args)?;
        parse_chain(&out.stdout)
    }

    fn add(&self, id: &GrantId, rule: &Rule, expires_ms: u64) -> Result<(), BackendError> {
        let mut args: Vec<String> = ["add", "rule"].map(str::to_owned).to_vec();
        args.extend(self.chain_args().map(str::to_owned));
        args.extend(Self::statement(id, rule, expires_ms));
        self.tool.run(&args)?;
        Ok(())
    }
}

/// Reads `nft -j -a list chain …`: every rule whose comment is one of our tags, with its handle,
/// and the rule it lets in when it has the shape this back end writes.
fn parse_chain(json: &str) -> Result<Vec<Found>, BackendError> {
    let doc: Value =
        serde_json::from_str(json).map_err(|e| BackendError::Unreadable(format!("nft -j output: {e}")))?;
    let items = doc["nftables"]
        .as_array()
        .ok_or_else(|| BackendError::Unreadable("nft -j output has no \"nftables\" list".to_owned()))?;
    Ok(items
        .iter()
        .filter_map(|item| {
            let rule = item.get("rule")?;
            let id = GrantId::from_tag(rule["comment"].as_str()?)?;
            let handle = rule["handle"].as_u64()?;
            Some(Found {
                id,
                handle,
                rule: parse_expr(&rule["expr"]),
            })
        })
        .collect())
}

/// `[saddr match, dport match, (meta time match), accept]` back into a [`Rule`].
fn parse_expr(expr: &Value) -> Option<Rule> {
    let mut source = None;
    let mut port_proto = None;
    for e in expr.as_array()? {
        let Some(m) = e.get("match") else { continue };
        let payload = &m["left"]["payload"];
        match (payload["protocol"].as_str(), payload["field"].as_str()) {
            (Some("ip" | "ip6"), Some("saddr")) => {
                let right = &m["right"];
                source = match right.as_str() {
                    Some(addr) => addr.parse::<Source>().ok(),
                    None => {
                        let p = &right["prefix"];
                        format!("{}/{}", p["addr"].as_str()?, p["len"].as_u64()?)
                            .parse::<Source>()
                            .ok()
                    }
                };
            }
            (Some(proto @ ("tcp" | "udp")), Some("dport")) => {
                let port = u16::try_from(m["right"].as_u64()?).ok()?;
                port_proto = Some((port, proto.parse::<Proto>().ok()?));
            }
            _ => {}
        }
    }
    let (port, proto) = port_proto?;
    Rule::new(source?, port, proto).ok()
}

impl Backend for Nft {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn check(&self) -> Result<Vec<String>, BackendError> {
        let table = self
            .tool
            .output(&["-j", "list", "table", &self.family, &self.table])?;
        if !table.status.success() {
            return Err(BackendError::Unusable(format!(
                "nftables table {} {} does not exist: create it with an input chain that jumps to \
                 chain {} (see the README), or set firewall.nft_table",
                self.family, self.table, self.chain
            )));
        }
        let mut args = vec!["add", "chain"];
        args.extend(self.chain_args());
        self.tool.run(&args)?;
        if jumps_to(&table.stdout, &self.chain) {
            Ok(Vec::new())
        } else {
            Ok(vec![format!(
                "no rule in table {} {} jumps to chain {}: its openings are never reached; add \
                 `jump {}` to your input chain",
                self.family, self.table, self.chain, self.chain
            )])
        }
    }

    fn open(&self, id: &GrantId, rule: &Rule, expires_ms: u64) -> Result<(), BackendError> {
        if self.found()?.iter().any(|f| &f.id == id) {
            return self.extend(id, rule, expires_ms);
        }
        self.add(id, rule, expires_ms)
    }

    fn extend(&self, id: &GrantId, rule: &Rule, expires_ms: u64) -> Result<(), BackendError> {
        let found = self.found()?;
        let mut ours = found.iter().filter(|f| &f.id == id);
        let Some(first) = ours.next() else {
            return self.add(id, rule, expires_ms);
        };
        let mut args: Vec<String> = ["replace", "rule"].map(str::to_owned).to_vec();
        args.extend(self.chain_args().map(str::to_owned));
        args.extend(["handle".to_owned(), first.handle.to_string()]);
        args.extend(Self::statement(id, rule, expires_ms));
        self.tool.run(&args)?;
        for extra in ours {
            self.delete(extra.handle)?;
        }
        Ok(())
    }

    fn close(&self, id: &GrantId, _rule: &Rule) -> Result<(), BackendError> {
        for f in self.found()?.iter().filter(|f| &f.id == id) {
            self.delete(f.handle)?;
        }
        Ok(())
    }

    fn owned(&self) -> Result<Vec<OwnedRule>, BackendError> {
        Ok(self
            .found()?
            .into_iter()
            .map(|f| OwnedRule {
                id: f.id,
                rule: f.rule,
            })
            .collect())
    }
}

impl Nft {
    fn delete(&self, handle: u64) -> Result<(), BackendError> {
        let mut args: Vec<String> = ["delete", "rule"].map(str::to_owned).to_vec();
        args.extend(self.chain_args().map(str::to_owned));
        args.extend(["handle".to_owned(), handle.to_string()]);
        self.tool.run(&args)?;
        Ok(())
    }
}

/// Whether any rule in `nft -j list table …` output jumps or goes to `chain`.
fn jumps_to(json: &str, chain: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(json) else {
        return false;
    };
    doc["nftables"].as_array().is_some_and(|items| {
        items.iter().any(|item| {
            item["rule"]["expr"].as_array().is_some_and(|exprs| {
                exprs.iter().any(|e| {
                    e["jump"]["target"].as_str() == Some(chain) || e["goto"]["target"].as_str() == Some(chain)
                })
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nft -j -a list chain inet filter sesame` from nftables 1.0.6, with two rules of ours (IPv4
    /// host, IPv6 network), an operator's rule and a tagged rule of a shape we do not write.
    const CHAIN: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"chain": {"family": "inet", "table": "filter", "name": "sesame", "handle": 2}}, {"rule": {"family": "inet", "table": "filter", "chain": "sesame", "handle": 4, "comment": "sesame:fw-0123456789abcdef", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "203.0.113.5"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"match": {"op": "<", "left": {"meta": {"key": "time"}}, "right": "2026-11-23 00:54:58"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "sesame", "handle": 5, "comment": "sesame:fw-0123456789abcdee", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": {"prefix": {"addr": "2001:db8::", "len": 64}}}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 443}}, {"match": {"op": "<", "left": {"meta": {"key": "time"}}, "right": "2026-11-23 00:54:58"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "sesame", "handle": 6, "comment": "operator", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "sesame", "handle": 7, "comment": "sesame:fw-0123456789abcded", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 23}}, {"accept": null}]}}]}"#;

    #[test]
    fn tagged_rules_are_found_with_handles_and_read_back() {
        let found = parse_chain(CHAIN).expect("parse");
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].id.as_str(), "fw-0123456789abcdef");
        assert_eq!(found[0].handle, 4);
        assert_eq!(
            found[0].rule.map(|r| r.to_string()).as_deref(),
            Some("22/tcp from 203.0.113.5")
        );
        assert_eq!(
            found[1].rule.map(|r| r.to_string()).as_deref(),
            Some("443/udp from 2001:db8::/64")
        );
        assert_eq!(found[2].handle, 7);
        assert_eq!(
            found[2].rule, None,
            "a tagged rule we did not write is still found, unread"
        );
        assert!(parse_chain("not json").is_err());
        assert!(parse_chain("{}").is_err());
    }

    #[test]
    fn statements_carry_the_expiry_and_the_tag() {
        let id: GrantId = "fw-0123456789abcdef".parse().expect("id");
        let v4 = Rule::new("203.0.113.5".parse().expect("src"), 22, Proto::Tcp).expect("rule");
        assert_eq!(
            Nft::statement(&id, &v4, 1_795_394_400_001).join(" "),
            "ip saddr 203.0.113.5 tcp dport 22 meta time < 1795394401 accept comment \"sesame:fw-0123456789abcdef\""
        );
        let v6 = Rule::new("2001:db8::/64".parse().expect("src"), 443, Proto::Udp).expect("rule");
        assert!(
            Nft::statement(&id, &v6, 1_000)
                .join(" ")
                .starts_with("ip6 saddr 2001:db8::/64 udp dport 443")
        );
    }

    #[test]
    fn jumps_are_found_in_the_table() {
        let table =
            r#"{"nftables": [{"rule": {"chain": "input", "expr": [{"jump": {"target": "sesame"}}]}}]}"#;
        assert!(jumps_to(table, "sesame"));
        assert!(!jumps_to(table, "other"));
        let goto =
            r#"{"nftables": [{"rule": {"chain": "input", "expr": [{"goto": {"target": "sesame"}}]}}]}"#;
        assert!(jumps_to(goto, "sesame"));
        assert!(!jumps_to("garbage", "sesame"));
    }

    #[test]
    fn names_become_arguments_only_when_plain() {
        let bad = |family: &str, table: &str, chain: &str| {
            Nft::new(NftConfig {
                nft: PathBuf::from("/usr/sbin/nft"),
                family: family.into(),
                table: table.into(),
                chain: chain.into(),
            })
            .expect_err("refused")
            .to_string()
        };
        assert!(bad("bridge", "filter", "sesame").contains("family"));
        assert!(bad("inet", "filter; flush ruleset", "sesame").contains("table"));
        assert!(bad("inet", "filter", "").contains("chain"));
    }
}
