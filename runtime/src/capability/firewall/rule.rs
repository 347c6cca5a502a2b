//! The parsed arguments of a firewall opening: source network, port, protocol, grant id.
//!
//! Everything a module passes is parsed into these types before a policy check or a system tool
//! sees it; their `Display` forms are what the tools are given.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IPv4 or IPv6 network (`203.0.113.5`, `203.0.113.0/24`, `2001:db8::/32`), kept in canonical
/// form: host bits cleared, IPv4-mapped IPv6 addresses turned into IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source {
    addr: IpAddr,
    prefix: u8,
}

/// Why a source, port or protocol was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

impl Source {
    /// A single address (a /32 or /128).
    pub fn host(addr: IpAddr) -> Self {
        let addr = addr.to_canonical();
        Self {
            addr,
            prefix: max_prefix(addr),
        }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether this is a single address.
    pub fn is_host(&self) -> bool {
        self.prefix == max_prefix(self.addr)
    }

    /// Whether this is an IPv6 network.
    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }

    /// Whether every address of `other` is in `self`.
    pub fn contains(&self, other: &Source) -> bool {
        if other.prefix < self.prefix {
            return false;
        }
        match (self.addr, other.addr) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = mask_v4(self.prefix);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = mask_v6(self.prefix);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Source {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, RuleError> {
        let bad = |why: &str| RuleError(format!("source {s:?}: {why}"));
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad("not an IPv4 or IPv6 address"))?;
        let mapped = matches!(addr, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
        let addr = addr.to_canonical();
        let max = max_prefix(addr);
        let prefix = match prefix {
            None => max,
            Some(p) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("the prefix length must be a number"));
                }
                let p: u8 = p.parse().map_err(|_| bad("the prefix length must be a number"))?;
                // A mapped address's prefix counts the 96 mapping bits.
                let p = if mapped {
                    p.checked_sub(96).ok_or_else(|| bad("prefix too short"))?
                } else {
                    p
                };
                if p > max {
                    return Err(bad(&format!("the prefix length is at most {max}")));
                }
                p
            }
        };
        let network = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(prefix))),
        };
        if network != addr {
            return Err(bad(&format!(
                "host bits are set (did you mean {network}/{prefix}?)"
            )));
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A transport protocol an opening is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Proto {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, RuleError> {
        match s {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            other => Err(RuleError(format!("protocol {other:?}: expected tcp or udp"))),
        }
    }
}

/// What an opening lets in: traffic from `source` to local `port`/`proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Rule {
    /// Who may connect.
    pub source: Source,
    /// The local port (never 0).
    pub port: u16,
    /// The protocol.
    pub proto: Proto,
}

impl Rule {
    /// A rule, refusing port 0.
    pub fn new(source: Source, port: u16, proto: Proto) -> Result<Self, RuleError> {
        if port == 0 {
            return Err(RuleError("port 0 cannot be opened".to_owned()));
        }
        Ok(Self { source, port, proto })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} from {}", self.port, self.proto, self.source)
    }
}

/// The prefix of every firewall comment sesamed writes; rules without it are never touched.
pub const TAG_PREFIX: &str = "sesame:";

/// A grant's id: `fw-` and 16 lowercase hex digits. Rules carry it as the comment `sesame:<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GrantId(String);

impl GrantId {
    /// A fresh random id.
    pub fn random() -> Self {
        use rand_core::RngCore;
        let mut bytes = [0u8; 8];
        rand_core::OsRng.fill_bytes(&mut bytes);
        Self(format!("fw-{}", hex::encode(bytes)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The firewall comment that marks this grant's rule.
    pub fn tag(&self) -> String {
        format!("{TAG_PREFIX}{}", self.0)
    }

    /// The grant id in a firewall comment, when the comment is one of ours.
    pub fn from_tag(comment: &str) -> Option<Self> {
        comment.strip_prefix(TAG_PREFIX)?.parse().ok()
    }
}

impl FromStr for GrantId {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, RuleError> {
        let ok = s.len() == 19
            && s.starts_with("fw-")
            && s[3..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(RuleError(format!(
                "{s:?} is not a grant id (fw- and 16 hex digits)"
            )))
        }
    }
}

impl TryFrom<String> for GrantId {
    type Error = RuleError;

    fn try_from(s: String) -> Result<Self, RuleError> {
        s.parse()
    }
}

impl From<GrantId> for String {
    fn from(id: GrantId) -> String {
        id.0
    }
}

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(s: &str) -> Source {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn sources_parse_into_canonical_form() {
        assert_eq!(src("203.0.113.5").to_string(), "203.0.113.5");
        assert_eq!(src("203.0.113.5/32").to_string(), "203.0.113.5");
        assert_eq!(src("203.0.113.0/24").to_string(), "203.0.113.0/24");
        assert_eq!(src("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(src("2001:DB8::1").to_string(), "2001:db8::1");
        assert_eq!(src("::ffff:203.0.113.5").to_string(), "203.0.113.5");
        assert_eq!(src("::ffff:203.0.113.0/120").to_string(), "203.0.113.0/24");
        assert_eq!(src("0.0.0.0/0").to_string(), "0.0.0.0/0");
    }

    #[test]
    fn malformed_sources_are_refused_with_a_reason() {
        for (bad, why) in [
            ("", "not an IPv4"),
            ("any", "not an IPv4"),
            ("203.0.113.5/33", "at most 32"),
            ("2001:db8::/129", "at most 128"),
            ("203.0.113.5/24", "did you mean 203.0.113.0/24"),
            ("203.0.113.0/", "must be a number"),
            ("203.0.113.0/+8", "must be a number"),
            ("203.0.113.0/24 ", "must be a number"),
            ("203.0.113.5; rm -rf /", "not an IPv4"),
            ("-j ACCEPT", "not an IPv4"),
            ("::ffff:1.2.3.4/64", "prefix too short"),
        ] {
            let err = bad.parse::<Source>().expect_err(bad).0;
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn containment_respects_prefix_and_family() {
        let net = src("203.0.113.0/24");
        assert!(net.contains(&src("203.0.113.5")));
        assert!(net.contains(&src("203.0.113.128/25")));
        assert!(net.contains(&net));
        assert!(!net.contains(&src("203.0.112.0/23")));
        assert!(!net.contains(&src("203.0.114.1")));
        assert!(!net.contains(&src("::ffff:203.0.114.1")));
        assert!(net.contains(&src("::ffff:203.0.113.1")));
        assert!(src("0.0.0.0/0").contains(&src("198.51.100.1")));
        assert!(!src("0.0.0.0/0").contains(&src("2001:db8::1")));
        assert!(src("::/0").contains(&src("2001:db8::1")));
        assert!(src("2001:db8::/32").contains(&src("2001:db8:1::/48")));
        assert!(!src("2001:db8::1").contains(&src("2001:db8::/64")));
    }

    #[test]
    fn hosts_from_mapped_addresses_are_ipv4() {
        let ip: IpAddr = "::ffff:198.51.100.7".parse().expect("ip");
        let s = Source::host(ip);
        assert_eq!(s.to_string(), "198.51.100.7");
        assert!(s.is_host() && !s.is_ipv6());
    }

    #[test]
    fn protos_and_ports() {
        assert_eq!("tcp".parse::<Proto>(), Ok(Proto::Tcp));
        assert_eq!("udp".parse::<Proto>(), Ok(Proto::Udp));
        assert!("TCP".parse::<Proto>().is_err());
        assert!("icmp".parse::<Proto>().is_err());
        assert!(Rule::new(src("203.0.113.5"), 0, Proto::Tcp).is_err());
        let r = Rule::new(src("203.0.113.5"), 22, Proto::Tcp).expect("valid");
        assert_eq!(r.to_string(), "22/tcp from 203.0.113.5");
    }

    #[test]
    fn grant_ids_and_tags_round_trip() {
        let id = GrantId::random();
        assert_eq!(id.as_str().len(), 19);
        assert_eq!(GrantId::from_tag(&id.tag()), Some(id.clone()));
        assert_eq!(GrantId::from_tag("fw-0123456789abcdef"), None, "no prefix");
        assert_eq!(GrantId::from_tag("sesame:fw-0123"), None, "too short");
        assert_eq!(
            GrantId::from_tag("sesame:fw-0123456789ABCDEF"),
            None,
            "upper case"
        );
        assert!("fw-0123456789abcdef".parse::<GrantId>().is_ok());
        let json = serde_json::to_string(&id).expect("serialise");
        assert_eq!(serde_json::from_str::<GrantId>(&json).expect("parse"), id);
        assert!(serde_json::from_str::<GrantId>("\"fw-nothex\"").is_err());
    }
}
