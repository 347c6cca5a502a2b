//! `sesame ssh-proxy`: which pinned host ssh means, where to connect once the host has opened
//! the port, and carrying that TCP connection over standard input and output.
//!
//! Connecting needs a [`Granted`], which only a successful answer to the access request makes:
//! a refused or unanswered request can never lead to a connection.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use sesame_proto::Status;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fleet::Outcome;
use crate::home::HostEntry;

/// Why HOST names no single pinned host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// No pinned host has that name, daemon name or address.
    #[error("no pinned host is called {0:?}, has that daemon name, or has that address")]
    NoMatch(String),
    /// Several pinned hosts match, and none by its own name.
    #[error("{wanted:?} could mean any of the pinned hosts {}", candidates.join(", "))]
    Ambiguous {
        /// What was asked for.
        wanted: String,
        /// The pinned names it matches.
        candidates: Vec<String>,
    },
}

/// Finds the pinned host `wanted` names: by its pinned name; else by its daemon's name
/// (`--host-name`); else by the host part of its QUIC address, as written (IP addresses compared
/// as addresses), then by the IP addresses `lookup` resolves both to. Each step must match
/// exactly one host.
pub fn resolve<'h>(
    hosts: &'h BTreeMap<String, HostEntry>,
    wanted: &str,
    lookup: impl Fn(&str) -> Vec<IpAddr>,
) -> Result<(&'h str, &'h HostEntry), ResolveError> {
    if let Some((alias, entry)) = hosts.get_key_value(wanted) {
        return Ok((alias, entry));
    }
    let by_name = pick(hosts, wanted, |e| {
        e.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(wanted))
    })?;
    if let Some(found) = by_name {
        return Ok(found);
    }
    let wanted_ip = wanted.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    let by_address = pick(hosts, wanted, |e| {
        address_host(e).is_some_and(|h| match (wanted_ip, h.parse::<IpAddr>()) {
            (Some(a), Ok(b)) => a == b.to_canonical(),
            _ => h.eq_ignore_ascii_case(wanted),
        })
    })?;
    if let Some(found) = by_address {
        return Ok(found);
    }
    let ips = |name: &str| -> Vec<IpAddr> {
        match name.parse::<IpAddr>() {
            Ok(ip) => vec![ip.to_canonical()],
            Err(_) => lookup(name).into_iter().map(|ip| ip.to_canonical()).collect(),
        }
    };
    let wanted_ips = ips(wanted);
    if !wanted_ips.is_empty() {
        let by_ip = pick(hosts, wanted, |e| {
            address_host(e).is_some_and(|h| ips(h).iter().any(|ip| wanted_ips.contains(ip)))
        })?;
        if let Some(found) = by_ip {
            return Ok(found);
        }
    }
    Err(ResolveError::NoMatch(wanted.to_owned()))
}

/// The system resolver's addresses for `name` (none when it does not resolve).
pub fn system_lookup(name: &str) -> Vec<IpAddr> {
    use std::net::ToSocketAddrs as _;
    (name, 0)
        .to_socket_addrs()
        .map(|addrs| addrs.map(|a| a.ip()).collect())
        .unwrap_or_default()
}

/// Where to connect for `entry`: the host part of its QUIC address, else (a host reached only
/// over SQS) what ssh asked for.
pub fn connect_host(entry: &HostEntry, wanted: &str) -> String {
    address_host(entry).unwrap_or(wanted).to_owned()
}

/// The host's consent: its successful answer to the access request (made only from one).
#[derive(Debug)]
pub struct Granted {
    output: String,
}

impl Granted {
    /// The grant in `outcome`, if the command ran and succeeded; `None` for a refusal or no
    /// answer.
    pub fn from_outcome(outcome: &Outcome) -> Option<Self> {
        match &outcome.result {
            Ok(response) if response.status == Status::Ok => Some(Self {
                output: response.output.clone(),
            }),
            _ => None,
        }
    }

    /// What the access command printed (`opened 22/tcp for … (grant fw-…)`).
    pub fn output(&self) -> &str {
        &self.output
    }
}

/// Connects to `host`:`port` once access is `granted`, retrying with backoff while the opening
/// takes effect, for at most `within`.
pub async fn connect(
    _granted: &Granted,
    host: &str,
    port: u16,
    within: Duration,
) -> std::io::Result<TcpStream> {
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(50);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let error = match tokio::time::timeout(left, TcpStream::connect((host, port))).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => e,
            Err(_) => std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(error);
        }
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Copies `input` to `stream` and `stream` to `output` until both directions have ended. When
/// `input` ends, the stream's sending side is shut down (the peer sees end of file) while its
/// answer is still read. `output` going away (ssh has exited) ends the copy without error.
pub async fn pipe(
    stream: TcpStream,
    mut input: impl AsyncRead + Unpin,
    mut output: impl AsyncWrite + Unpin,
) -> std::io::Result<()> {
    let (mut from_peer, mut to_peer) = stream.into_split();
    let upstream = async {
        tokio::io::copy(&mut input, &mut to_peer).await?;
        to_peer.shutdown().await
    };
    let downstream = async {
        let copied = async {
            tokio::io::copy(&mut from_peer, &mut output).await?;
            output.flush().await
        };
        match copied.await {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    };
    tokio::try_join!(upstream, downstream).map(|_| ())
}

/// The host part of `entry`'s QUIC address (`203.0.113.10`, `web1.example.com`, `::1`).
fn address_host(entry: &HostEntry) -> Option<&str> {
    let addr = entry.addr.as_deref()?;
    let (host, _port) = addr.rsplit_once(':')?;
    Some(
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host),
    )
}

/// The one host `matches` picks, `None` for none, an error for several.
fn pick<'h>(
    hosts: &'h BTreeMap<String, HostEntry>,
    wanted: &str,
    matches: impl Fn(&HostEntry) -> bool,
) -> Result<Option<(&'h str, &'h HostEntry)>, ResolveError> {
    let found: Vec<_> = hosts
        .iter()
        .filter(|(_, entry)| matches(entry))
        .map(|(alias, entry)| (alias.as_str(), entry))
        .collect();
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(ResolveError::Ambiguous {
            wanted: wanted.to_owned(),
            candidates: many.iter().map(|(alias, _)| (*alias).to_owned()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use sesame_proto::PublicKey;

    use super::*;
    use crate::home::SqsRoute;

    fn quic(addr: &str, name: Option<&str>) -> HostEntry {
        HostEntry {
            addr: Some(addr.into()),
            cert_sha256: Some("ab".repeat(32)),
            name: name.map(Into::into),
            ..HostEntry::new(PublicKey::from_bytes([7; 32]))
        }
    }

    fn sqs_only() -> HostEntry {
        HostEntry {
            name: Some("db1.internal".into()),
            sqs: Some(SqsRoute {
                queue: "sesame-req-db1".into(),
                region: None,
                endpoint_url: None,
                profile: None,
            }),
            ..HostEntry::new(PublicKey::from_bytes([8; 32]))
        }
    }

    fn hosts() -> BTreeMap<String, HostEntry> {
        BTreeMap::from([
            (
                "web1".to_owned(),
                quic("203.0.113.10:7443", Some("web1.example.com")),
            ),
            ("web2".to_owned(), quic("web2.example.com:7443", None)),
            ("v6".to_owned(), quic("[2001:db8::5]:7443", None)),
            ("db1".to_owned(), sqs_only()),
            // Two names for one machine: its address is ambiguous, its names are not.
            ("lb-a".to_owned(), quic("198.51.100.1:7443", Some("lb"))),
            ("lb-b".to_owned(), quic("198.51.100.1:7444", Some("lb-b-daemon"))),
        ])
    }

    fn no_dns(_: &str) -> Vec<IpAddr> {
        Vec::new()
    }

    fn alias(wanted: &str, lookup: impl Fn(&str) -> Vec<IpAddr>) -> Result<String, ResolveError> {
        resolve(&hosts(), wanted, lookup).map(|(a, _)| a.to_owned())
    }

    #[test]
    fn a_pinned_name_comes_first() {
        assert_eq!(alias("web2", no_dns), Ok("web2".into()));
        assert_eq!(
            alias("lb-a", no_dns),
            Ok("lb-a".into()),
            "even where the address is shared"
        );
    }

    #[test]
    fn then_the_daemons_name() {
        assert_eq!(alias("web1.example.com", no_dns), Ok("web1".into()));
        assert_eq!(
            alias("WEB1.example.com", no_dns),
            Ok("web1".into()),
            "names ignore case"
        );
        assert_eq!(alias("db1.internal", no_dns), Ok("db1".into()));
        assert_eq!(alias("lb", no_dns), Ok("lb-a".into()));
    }

    #[test]
    fn then_the_quic_address() {
        assert_eq!(alias("203.0.113.10", no_dns), Ok("web1".into()));
        assert_eq!(alias("web2.example.com", no_dns), Ok("web2".into()));
        assert_eq!(alias("2001:db8::5", no_dns), Ok("v6".into()));
        assert_eq!(
            alias("2001:db8:0::5", no_dns),
            Ok("v6".into()),
            "addresses compare as addresses"
        );
        assert_eq!(
            alias("198.51.100.1", no_dns),
            Err(ResolveError::Ambiguous {
                wanted: "198.51.100.1".into(),
                candidates: vec!["lb-a".into(), "lb-b".into()],
            })
        );
    }

    #[test]
    fn then_resolved_addresses() {
        let dns = |name: &str| match name {
            "ssh.example.com" => vec!["203.0.113.10".parse().expect("ip")],
            "web2.example.com" => vec!["192.0.2.2".parse().expect("ip")],
            "lb.example.com" => vec!["198.51.100.1".parse().expect("ip")],
            _ => Vec::new(),
        };
        assert_eq!(alias("ssh.example.com", dns), Ok("web1".into()));
        assert_eq!(
            alias("192.0.2.2", dns),
            Ok("web2".into()),
            "the pinned name resolves to it"
        );
        assert!(matches!(
            alias("lb.example.com", dns),
            Err(ResolveError::Ambiguous { .. })
        ));
        assert_eq!(
            alias("nowhere.example.com", dns),
            Err(ResolveError::NoMatch("nowhere.example.com".into()))
        );
        assert_eq!(
            alias("192.0.2.99", no_dns),
            Err(ResolveError::NoMatch("192.0.2.99".into()))
        );
    }

    #[test]
    fn the_connection_goes_to_the_quic_address_or_else_to_what_ssh_asked_for() {
        let hosts = hosts();
        assert_eq!(connect_host(&hosts["web1"], "web1"), "203.0.113.10");
        assert_eq!(connect_host(&hosts["web2"], "x"), "web2.example.com");
        assert_eq!(connect_host(&hosts["v6"], "x"), "2001:db8::5");
        assert_eq!(connect_host(&hosts["db1"], "db1.example.com"), "db1.example.com");
    }
}
