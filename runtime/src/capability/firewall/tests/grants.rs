//! The policy's firewall grant: what `check_grant` lets through.

use super::*;

#[test]
fn grants_bound_port_proto_source_and_ttl() {
    let grant = FirewallGrant {
        ports: vec![22],
        protos: vec!["tcp".into()],
        sources: vec!["caller".into(), "198.51.100.0/24".into()],
        max_ttl_s: 3600,
    };
    let caller: Option<IpAddr> = Some("::ffff:203.0.113.5".parse().expect("ip"));
    let ok = |r: Rule, ttl| check_grant(&grant, caller, &r, ttl);
    ok(rule("203.0.113.5", 22), 3600).expect("the caller");
    ok(rule("198.51.100.0/25", 22), 60).expect("inside the granted net");
    for (r, ttl, why) in [
        (rule("203.0.113.6", 22), 60, "source 203.0.113.6 is not granted"),
        (rule("203.0.113.0/24", 22), 60, "is not granted"),
        (rule("198.51.0.0/16", 22), 60, "is not granted"),
        (rule("203.0.113.5", 2222), 60, "port 2222 is not granted"),
        (
            rule("203.0.113.5", 22),
            3601,
            "exceeds the granted maximum of 3600s",
        ),
        (rule("203.0.113.5", 22), 0, "at least 1 second"),
    ] {
        let err = ok(r, ttl).expect_err(why);
        assert!(err.contains(why), "{err}");
    }
    let udp = Rule::new("203.0.113.5".parse().expect("ip"), 22, Proto::Udp).expect("rule");
    assert!(ok(udp, 60).expect_err("udp").contains("protocol udp"));
    // Over SQS there is no caller address: "caller" covers nothing.
    let err = check_grant(&grant, None, &rule("203.0.113.5", 22), 60).expect_err("no caller");
    assert!(err.contains("none observed"), "{err}");
    // An empty grant covers nothing; a malformed source in a policy covers nothing.
    assert!(check_grant(&FirewallGrant::default(), caller, &rule("203.0.113.5", 22), 1).is_err());
    let typo = FirewallGrant {
        sources: vec!["calller".into()],
        ..grant.clone()
    };
    assert!(check_grant(&typo, caller, &rule("203.0.113.5", 22), 1).is_err());
}

// --- properties ------------------------------------------------------------------------------
//
// Generated grants, callers and rules, drawn from small pools of addresses, ports and ttls so
// that matches and near misses are common; `check_grant` must agree with a model that says
// when an opening is inside the grant by address ranges, written independently of
// `Source::contains`.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

/// Cases for the properties of `check_grant` alone (cheap).
const GRANT_CASES: u32 = 4096;
/// Cases for the property through `Firewall::allow` (about one in eight is admitted by the
/// grant and then written to a fresh ledger).
const CEILING_CASES: u32 = 1024;

/// An IPv4 address: mostly from 10.0.0.0/28 (so grants and rules meet), sometimes any.
fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        4 => (0u32..16).prop_map(|n| Ipv4Addr::from(0x0a00_0000 + n)),
        1 => any::<u32>().prop_map(Ipv4Addr::from),
    ]
}

/// An IPv6 address: mostly from 2001:db8::/124, sometimes any (mapped IPv4 ones included).
fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    prop_oneof![
        4 => (0u128..16).prop_map(|n| Ipv6Addr::from(0x2001_0db8_u128 << 96 | n)),
        1 => ipv4().prop_map(|a| a.to_ipv6_mapped()),
        1 => any::<u128>().prop_map(Ipv6Addr::from),
    ]
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![ipv4().prop_map(IpAddr::V4), ipv6().prop_map(IpAddr::V6)]
}

/// A network around an address of [`ip`], host bits cleared: a single host, a small net
/// (up to 7 bits shorter) or any prefix, a third of the time each.
fn network() -> impl Strategy<Value = Source> {
    (ip(), 0u8..3, any::<u8>()).prop_map(|(ip, kind, p)| {
        let ip = ip.to_canonical();
        let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match kind {
            0 => max,
            1 => max - p % 8,
            _ => p % (max + 1),
        };
        let (addr, prefix) = match ip {
            IpAddr::V4(a) => (
                IpAddr::V4(Ipv4Addr::from(
                    u32::from(a) & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0),
                )),
                prefix,
            ),
            IpAddr::V6(a) => (
                IpAddr::V6(Ipv6Addr::from(
                    u128::from(a) & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0),
                )),
                prefix,
            ),
        };
        format!("{addr}/{prefix}").parse().expect("a network")
    })
}

/// One entry of a grant's `sources`: `"caller"`, a network in one of its spellings, or
/// something a policy author might mistype (which must cover nothing).
fn grant_source() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("caller".to_owned()),
        4 => network().prop_map(|n| n.to_string()),
        1 => network().prop_map(|n| format!("{}/{}", n.addr(), n.prefix())),
        1 => network()
            .prop_filter("IPv4", |n| !n.is_ipv6())
            .prop_map(|n| match n.addr() {
                IpAddr::V4(a) => format!("{}/{}", a.to_ipv6_mapped(), u32::from(n.prefix()) + 96),
                IpAddr::V6(_) => unreachable!("filtered"),
            }),
        1 => prop_oneof![
            Just("calller".to_owned()),
            Just("Caller".to_owned()),
            Just(" caller".to_owned()),
            Just(String::new()),
            Just("any".to_owned()),
            Just("10.0.0.3/24".to_owned()),
            Just("10.0.0.0/33".to_owned()),
            Just("0.0.0.0/0 ".to_owned()),
        ],
    ]
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => prop::sample::select(vec![1u16, 22, 80, 443, 65535]),
        1 => 1u16..=65535,
    ]
}

fn grant() -> impl Strategy<Value = FirewallGrant> {
    (
        prop::collection::vec(prop_oneof![4 => port(), 1 => Just(0u16)], 0..4),
        prop::collection::vec(
            prop::sample::select(vec!["tcp", "udp", "TCP", "icmp", ""]).prop_map(str::to_owned),
            0..3,
        ),
        prop::collection::vec(grant_source(), 0..4),
        prop_oneof![Just(0u32), Just(1), Just(60), Just(3600), any::<u32>()],
    )
        .prop_map(|(ports, protos, sources, max_ttl_s)| FirewallGrant {
            ports,
            protos,
            sources,
            max_ttl_s,
        })
}

/// An opening asked for: mostly the caller's own address, otherwise any network.
fn ask() -> impl Strategy<Value = (Option<IpAddr>, Rule, u32)> {
    let caller = prop_oneof![3 => ip().prop_map(Some), 1 => Just(None)];
    (caller, network(), any::<bool>(), port(), any::<bool>(), ttl()).prop_map(
        |(caller, net, own, port, tcp, ttl)| {
            let source = match caller {
                Some(ip) if own => Source::host(ip),
                _ => net,
            };
            let proto = if tcp { Proto::Tcp } else { Proto::Udp };
            (
                caller,
                Rule::new(source, port, proto).expect("port is not 0"),
                ttl,
            )
        },
    )
}

fn ttl() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(59),
        Just(60),
        Just(61),
        Just(3600),
        Just(3601),
        Just(86_400),
        Just(86_401),
        any::<u32>()
    ]
}

/// `net`'s address with only the first `prefix` bits kept, as a network.
fn truncate(net: &Source, prefix: u8) -> Source {
    let (addr, prefix) = match net.addr() {
        IpAddr::V4(a) => {
            let p = prefix.min(32);
            let mask = u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0);
            (IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask)), p)
        }
        IpAddr::V6(a) => {
            let p = prefix.min(128);
            let mask = u128::MAX.checked_shl(128 - u32::from(p)).unwrap_or(0);
            (IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask)), p)
        }
    };
    format!("{addr}/{prefix}").parse().expect("a network")
}

/// `net` with the last bit of its prefix flipped: the neighbouring network of the same size.
fn sibling(net: &Source) -> Option<Source> {
    let p = u32::from(net.prefix());
    let addr = match net.addr() {
        IpAddr::V4(a) if p > 0 => IpAddr::V4(Ipv4Addr::from(u32::from(a) ^ (1 << (32 - p)))),
        IpAddr::V6(a) if p > 0 => IpAddr::V6(Ipv6Addr::from(u128::from(a) ^ (1 << (128 - p)))),
        _ => return None,
    };
    format!("{addr}/{}", net.prefix()).parse().ok()
}

/// A grant drawn near `(caller, rule, ttl)`: each of port, protocol, source and ttl is granted
/// most of the time, and the sources offered include the caller, networks just wide enough, a
/// bit too narrow, next door, or in another spelling, so admissions and near misses are both
/// common.
fn grant_near(caller: Option<IpAddr>, rule: Rule, ttl: u32) -> impl Strategy<Value = FirewallGrant> {
    let near_source = (0u8..6, 0u8..=16).prop_map(move |(kind, by)| match kind {
        0 => Some("caller".to_owned()),
        1 => Some(truncate(&rule.source, rule.source.prefix().saturating_sub(by)).to_string()),
        2 => {
            let wider = truncate(&rule.source, rule.source.prefix().saturating_sub(by));
            match wider.addr() {
                IpAddr::V4(a) => Some(format!(
                    "{}/{}",
                    a.to_ipv6_mapped(),
                    u32::from(wider.prefix()) + 96
                )),
                IpAddr::V6(_) => Some(format!("{}/{}", wider.addr(), wider.prefix())),
            }
        }
        3 => {
            // Narrower than asked: must not admit a wider network.
            let narrower = rule.source.prefix().saturating_add(1 + by % 4);
            caller
                .filter(|_| narrower > rule.source.prefix())
                .map(|_| truncate(&rule.source, narrower).to_string())
        }
        4 => sibling(&rule.source).map(|s| s.to_string()),
        _ => caller.map(|ip| Source::host(ip).to_string()),
    });
    (
        grant(),
        any::<bool>(),
        any::<bool>(),
        prop::option::weighted(0.8, near_source),
        prop_oneof![
            Just(ttl),
            Just(ttl.saturating_sub(1)),
            Just(ttl.saturating_add(1)),
            any::<u32>()
        ],
    )
        .prop_map(move |(mut g, port, proto, source, max_ttl_s)| {
            if port {
                g.ports.push(rule.port);
            }
            if proto {
                g.protos.push(rule.proto.as_str().to_owned());
            }
            g.sources.extend(source.flatten());
            g.max_ttl_s = max_ttl_s;
            g
        })
}

/// An ask and a grant near it.
fn case() -> impl Strategy<Value = (FirewallGrant, Option<IpAddr>, Rule, u32)> {
    ask().prop_flat_map(|(caller, rule, ttl)| {
        grant_near(caller, rule, ttl).prop_map(move |g| (g, caller, rule, ttl))
    })
}

/// The addresses `net` covers, as an inclusive range in its family's number space.
fn range(net: &Source) -> (bool, u128, u128) {
    let (v6, bits, start) = match net.addr() {
        IpAddr::V4(a) => (false, 32, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, 128, u128::from(a)),
    };
    let size_less_one = u128::MAX
        .checked_shr(128 - (bits - u32::from(net.prefix())))
        .filter(|_| bits > u32::from(net.prefix()))
        .unwrap_or(0);
    (v6, start, start + size_less_one)
}

/// Whether every address of `inner` is an address of `outer`, by their ranges.
fn within(inner: &Source, outer: &Source) -> bool {
    let (f1, lo1, hi1) = range(inner);
    let (f2, lo2, hi2) = range(outer);
    f1 == f2 && lo2 <= lo1 && hi1 <= hi2
}

/// Which entry of the grant's sources lets `rule.source` in, per the model.
fn admitted_by(grant: &FirewallGrant, caller: Option<IpAddr>, rule: &Rule) -> Option<String> {
    grant
        .sources
        .iter()
        .find(|entry| match entry.as_str() {
            "caller" => caller.is_some_and(|ip| {
                let ip = ip.to_canonical();
                rule.source.is_host() && rule.source.addr() == ip
            }),
            other => other
                .parse::<Source>()
                .is_ok_and(|net| within(&rule.source, &net)),
        })
        .cloned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(GRANT_CASES))]

    /// `check_grant` admits exactly the openings inside the grant: a granted port and
    /// protocol, a source inside a granted network or the caller's own observed address (never
    /// without one), and a ttl of 1 to `max_ttl_s` seconds.
    #[test]
    fn check_grant_admits_exactly_what_the_grant_covers((g, caller, rule, ttl) in case()) {
        let verdict = check_grant(&g, caller, &rule, ttl);
        let port_ok = g.ports.contains(&rule.port);
        let proto_ok = g.protos.iter().any(|p| p == rule.proto.as_str());
        let by = admitted_by(&g, caller, &rule);
        let ttl_ok = (1..=g.max_ttl_s).contains(&ttl);
        prop_assert_eq!(
            verdict.is_ok(),
            port_ok && proto_ok && by.is_some() && ttl_ok,
            "{:?}: {:?} from caller {:?}, ttl {}", verdict, rule.to_string(), caller, ttl
        );
        if verdict.is_ok() {
            let by = by.unwrap_or_default();
            if by == "caller" {
                // Only the request's own observed address, as a single host.
                let ip = caller.map(|ip| ip.to_canonical());
                prop_assert!(rule.source.is_host() && Some(rule.source.addr()) == ip);
            } else {
                // Never a network wider than the granted one.
                let net: Source = by.parse().expect("the model parsed it");
                prop_assert!(rule.source.prefix() >= net.prefix());
            }
        }
    }

    /// A request without an observed source address (SQS) never matches `"caller"`.
    #[test]
    fn caller_matches_nothing_without_an_observed_address((g, _, rule, ttl) in case()) {
        let only_caller = FirewallGrant {
            sources: vec!["caller".to_owned()],
            ..g.clone()
        };
        prop_assert!(check_grant(&only_caller, None, &rule, ttl).is_err());
        let without_caller = FirewallGrant {
            sources: g.sources.iter().filter(|s| *s != "caller").cloned().collect(),
            ..g.clone()
        };
        prop_assert_eq!(
            check_grant(&g, None, &rule, ttl).is_ok(),
            check_grant(&without_caller, None, &rule, ttl).is_ok()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CEILING_CASES))]

    /// Through the grants service no opening outlives the grant's `max_ttl_s` nor the host's
    /// ceiling, whichever is lower.
    #[test]
    fn no_opening_outlives_the_grant_or_the_host_ceiling(
        (g, caller, rule, ttl) in case(),
        ceiling in prop_oneof![Just(1u32), Just(60), Just(3600), 1u32..=86_400],
    ) {
        if check_grant(&g, caller, &rule, ttl).is_err() {
            return Ok(());
        }
        let s = setup_with(FirewallLimits { max_ttl_s: ceiling, ..FirewallLimits::default() });
        match s.fw.allow(T0, &key("alice"), "r", rule, ttl) {
            Ok(opened) => {
                let allowed = u64::from(ttl.min(g.max_ttl_s).min(ceiling));
                prop_assert!(ttl <= g.max_ttl_s && ttl <= ceiling);
                prop_assert!(opened.expires_ms <= T0 + allowed * 1_000);
                let recorded = s.dry().actions().expect("record");
                prop_assert!(recorded.iter().all(|a| a.expires_ms.is_some_and(|e| e <= T0 + allowed * 1_000)));
            }
            Err(FirewallError::Limit(_)) => prop_assert!(ttl > ceiling),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }
}
