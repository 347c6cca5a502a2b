//! `allow [PORT] [--ttl SECONDS] [--proto tcp|udp] [--from ADDR_OR_CIDR] [--replace]`: opens
//! PORT (default 22, tcp) to the caller's address for SECONDS (default 3600), then closes it by
//! itself:
//!
//! ```text
//! opened 22/tcp for 203.0.113.5 until 2026-11-22 13:04:05 UTC (grant fw-0123456789abcdef)
//! ```
//!
//! The caller's address is the one the transport saw. Requests over SQS have none, so they
//! must name the source with `--from` (an IPv4/IPv6 address or a CIDR); the policy decides
//! which sources, ports, protocols and ttls a client may ask for. Asking again for the same
//! opening extends it. Arguments are checked here before the host is asked; the expiry time is
//! left out of the output when the grant cannot be found in the caller's list afterwards.
//!
//! With `--replace` (the laptop moved to a new address), the caller's other openings of the
//! same port and protocol are closed once the new one is open: never before, so that a refused
//! opening leaves the old ones as they were.
//!
//! Needs the firewall capability.

use std::net::IpAddr;

use fwtext::{check_usage_with_switches, opening, utc};
use sesame_guest::firewall::{self, Proto, Rule};
use sesame_guest::{Command, Invocation};

const USAGE: &str = "allow [PORT] [--ttl SECONDS] [--proto tcp|udp] [--from ADDR_OR_CIDR] [--replace]";
const VALUE_FLAGS: &[&str] = &["--ttl", "--proto", "--from"];
const SWITCHES: &[&str] = &["--replace"];
const DEFAULT_PORT: u16 = 22;
const DEFAULT_TTL_SECS: u32 = 3600;

/// The `allow` command.
#[derive(Debug)]
pub struct Allow;

impl Command for Allow {
    fn run(inv: Invocation) -> Result<String, String> {
        let request = Request::parse(&inv.args)?;
        let rule = Rule {
            source: source(request.from, inv.source_ip.as_deref())?,
            port: request.port,
            proto: request.proto,
            ttl_secs: request.ttl_secs,
        };
        let what = format!("{} for {}", opening(rule.port, rule.proto), rule.source);
        let grant_id = firewall::allow(&rule).map_err(|e| format!("cannot open {what}: {e}"))?;
        // The opening stands whatever happens next: a failed lookup only loses the expiry time.
        let listed = firewall::list();
        let expires_at_ms = listed
            .as_ref()
            .ok()
            .and_then(|grants| grants.iter().find(|g| g.id == grant_id))
            .map(|g| g.expires_at_ms);
        let mut out = report(&what, &grant_id, expires_at_ms);
        if request.replace {
            let grants =
                listed.map_err(|e| format!("{out}\ncannot list your other openings to replace them: {e}"))?;
            match replace_others(&grants, &grant_id, rule.port, rule.proto) {
                Ok(closed) => out.push_str(&closed),
                Err(partial) => return Err(format!("{out}{partial}")),
            }
        }
        Ok(out)
    }
}

sesame_guest::export_command!(Allow);

/// The opening asked for, from the command's arguments.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    port: u16,
    proto: Proto,
    ttl_secs: u32,
    /// `--from`, checked to be an address or CIDR.
    from: Option<String>,
    /// `--replace`: close the caller's other openings of this port and protocol.
    replace: bool,
}

impl Request {
    /// Parses and checks the arguments; every error names the bad argument and what it takes.
    fn parse(raw: &[String]) -> Result<Self, String> {
        let args = check_usage_with_switches(raw, VALUE_FLAGS, SWITCHES, 1, USAGE)?;
        Ok(Self {
            port: args.positional(0).map_or(Ok(DEFAULT_PORT), parse_port)?,
            proto: args.flag_value("--proto")?.map_or(Ok(Proto::Tcp), parse_proto)?,
            ttl_secs: args
                .flag_value("--ttl")?
                .map_or(Ok(DEFAULT_TTL_SECS), parse_ttl)?,
            from: args.flag_value("--from")?.map(parse_source).transpose()?,
            replace: args.has_flag("--replace"),
        })
    }
}

/// Closes the caller's openings of `port`/`proto` other than `kept`; the lines saying what was
/// closed. One that cannot be closed stops there: the error is the lines so far and one naming
/// it.
fn replace_others(grants: &[firewall::Grant], kept: &str, port: u16, proto: Proto) -> Result<String, String> {
    let mut out = String::new();
    for g in grants
        .iter()
        .filter(|g| g.id != kept && g.port == port && g.proto == proto)
    {
        firewall::revoke(&g.id).map_err(|e| {
            format!(
                "{out}\ncannot close your opening of {} for {} (grant {}): {e}",
                opening(port, proto),
                g.source,
                g.id
            )
        })?;
        out.push_str(&format!(
            "\nclosed {} for {} (grant {}): replaced",
            opening(port, proto),
            g.source,
            g.id
        ));
    }
    Ok(out)
}

/// A port: decimal digits only, 1 to 65535.
fn parse_port(s: &str) -> Result<u16, String> {
    digits(s)
        .and_then(|s| s.parse().ok())
        .filter(|&port| port > 0)
        .ok_or_else(|| format!("invalid PORT `{s}`: expected a number from 1 to 65535"))
}

/// A ttl in whole seconds, at least 1.
fn parse_ttl(s: &str) -> Result<u32, String> {
    digits(s)
        .and_then(|s| s.parse().ok())
        .filter(|&secs| secs > 0)
        .ok_or_else(|| {
            format!(
                "invalid --ttl `{s}`: expected a whole number of seconds from 1 to {}",
                u32::MAX
            )
        })
}

/// `tcp` or `udp`, in any case.
fn parse_proto(s: &str) -> Result<Proto, String> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Proto::Tcp),
        "udp" => Ok(Proto::Udp),
        _ => Err(format!("invalid --proto `{s}`: expected tcp or udp")),
    }
}

/// An IPv4/IPv6 address or CIDR, returned as given: the host checks the finer points (host
/// bits set) and says what it would accept instead.
fn parse_source(s: &str) -> Result<String, String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| {
        format!("invalid --from `{s}`: expected an IPv4 or IPv6 address or a CIDR such as 203.0.113.0/24")
    })?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if let Some(prefix) = prefix
        && digits(prefix)
            .and_then(|p| p.parse::<u8>().ok())
            .is_none_or(|p| p > max)
    {
        return Err(format!(
            "invalid --from `{s}`: the prefix length must be a number from 0 to {max}"
        ));
    }
    Ok(s.to_owned())
}

/// `s` when it is a non-empty run of ASCII digits (`str::parse` would also take a `+`).
fn digits(s: &str) -> Option<&str> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

/// The source to open for: `--from` when given, else the caller's address (an IPv4-mapped IPv6
/// address written as IPv4, as the firewall records it).
fn source(from: Option<String>, caller: Option<&str>) -> Result<String, String> {
    match (from, caller) {
        (Some(from), _) => Ok(from),
        (None, Some(caller)) => Ok(caller
            .parse::<IpAddr>()
            .map_or_else(|_| caller.to_owned(), |ip| ip.to_canonical().to_string())),
        (None, None) => Err(
            "this request carries no source address (requests over SQS have none): \
             pass --from ADDR_OR_CIDR to say which address to open for"
                .to_owned(),
        ),
    }
}

/// The line shown on success; without the expiry time when it is unknown.
fn report(what: &str, grant_id: &str, expires_at_ms: Option<u64>) -> String {
    match expires_at_ms {
        Some(ms) => format!("opened {what} until {} (grant {grant_id})", utc(ms)),
        None => format!("opened {what} (grant {grant_id})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sesame_guest::HostError;
    use sesame_guest::firewall::Grant;
    use sesame_guest::testing::{Call, FakeHost, Run, invocation};

    fn parse(args: &[&str]) -> Result<Request, String> {
        let raw: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Request::parse(&raw)
    }

    fn request(port: u16, proto: Proto, ttl_secs: u32, from: Option<&str>) -> Request {
        Request {
            port,
            proto,
            ttl_secs,
            from: from.map(str::to_owned),
            replace: false,
        }
    }

    #[test]
    fn defaults() {
        assert_eq!(parse(&[]), Ok(request(22, Proto::Tcp, 3600, None)));
    }

    #[test]
    fn every_argument_in_both_flag_forms() {
        assert_eq!(
            parse(&[
                "443",
                "--ttl",
                "60",
                "--proto",
                "udp",
                "--from",
                "198.51.100.0/24"
            ]),
            Ok(request(443, Proto::Udp, 60, Some("198.51.100.0/24")))
        );
        assert_eq!(
            parse(&["--ttl=600", "--proto=TCP", "--from=2001:db8::1", "8443"]),
            Ok(request(8443, Proto::Tcp, 600, Some("2001:db8::1")))
        );
        assert_eq!(
            parse(&["65535", "--from", "2001:db8::/32"]),
            Ok(request(65535, Proto::Tcp, 3600, Some("2001:db8::/32")))
        );
    }

    #[test]
    fn bad_ports() {
        for bad in ["0", "65536", "abc", "+22", "-1", "22.0", ""] {
            assert_eq!(
                parse(&[bad]),
                Err(format!("invalid PORT `{bad}`: expected a number from 1 to 65535")),
            );
        }
    }

    #[test]
    fn bad_ttls() {
        for bad in ["0", "-5", "1h", "4294967296", ""] {
            assert_eq!(
                parse(&[&format!("--ttl={bad}")]),
                Err(format!(
                    "invalid --ttl `{bad}`: expected a whole number of seconds from 1 to 4294967295"
                )),
            );
        }
        assert_eq!(
            parse(&["22", "--ttl"]),
            Err("--ttl needs a value (--ttl=VALUE)".to_string())
        );
    }

    #[test]
    fn bad_protos() {
        assert_eq!(
            parse(&["--proto", "icmp"]),
            Err("invalid --proto `icmp`: expected tcp or udp".to_string())
        );
    }

    #[test]
    fn bad_sources() {
        for bad in ["", "host.example", "203.0.113.300", "203.0.113.0/"] {
            assert_eq!(
                parse(&["--from", bad]).map_err(|e| e.starts_with(&format!("invalid --from `{bad}`: "))),
                Err(true),
                "{bad}"
            );
        }
        assert_eq!(
            parse(&["--from", "203.0.113.0/33"]),
            Err("invalid --from `203.0.113.0/33`: the prefix length must be a number from 0 to 32".into())
        );
        assert_eq!(
            parse(&["--from", "2001:db8::/129"]),
            Err("invalid --from `2001:db8::/129`: the prefix length must be a number from 0 to 128".into())
        );
    }

    #[test]
    fn unknown_flags_and_extra_arguments() {
        assert_eq!(
            parse(&["22", "--udp"]),
            Err(format!("unknown flag --udp (usage: {USAGE})"))
        );
        assert_eq!(
            parse(&["22", "80"]),
            Err(format!("unexpected argument `80` (usage: {USAGE})"))
        );
        assert_eq!(
            parse(&["--replace=yes"]),
            Err(format!("--replace takes no value (usage: {USAGE})"))
        );
        // A switch takes no value: what follows it is the port.
        assert_eq!(
            parse(&["--replace", "2222"]),
            Ok(Request {
                replace: true,
                ..request(2222, Proto::Tcp, 3600, None)
            })
        );
    }

    #[test]
    fn source_prefers_from_then_the_caller() {
        assert_eq!(
            source(Some("198.51.100.7".into()), Some("203.0.113.5")),
            Ok("198.51.100.7".into())
        );
        assert_eq!(source(None, Some("203.0.113.5")), Ok("203.0.113.5".into()));
        assert_eq!(source(None, Some("::ffff:203.0.113.5")), Ok("203.0.113.5".into()));
        assert_eq!(source(None, Some("2001:db8::5")), Ok("2001:db8::5".into()));
        let sqs = source(None, None);
        assert!(sqs.is_err_and(|e| e.contains("pass --from")));
    }

    #[test]
    fn report_lines() {
        assert_eq!(
            report(
                "22/tcp for 203.0.113.5",
                "fw-0123456789abcdef",
                Some(1_795_352_645_000)
            ),
            "opened 22/tcp for 203.0.113.5 until 2026-11-22 13:04:05 UTC (grant fw-0123456789abcdef)"
        );
        assert_eq!(
            report("53/udp for 198.51.100.0/24", "fw-0123456789abcdef", None),
            "opened 53/udp for 198.51.100.0/24 (grant fw-0123456789abcdef)"
        );
    }

    // End to end through `Allow::run`, with a scripted host.

    const CALLER: &str = "203.0.113.5";
    const EXPIRES_AT_MS: u64 = 1_795_352_645_000;

    fn run_allow(host: FakeHost, args: &[&str], source_ip: Option<&str>) -> Run {
        let inv = invocation("alice", args);
        let inv = match source_ip {
            Some(ip) => inv.with_source_ip(ip),
            None => inv,
        };
        host.run::<Allow>(inv)
    }

    fn rule(source: &str, port: u16, proto: Proto, ttl_secs: u32) -> Rule {
        Rule {
            source: source.into(),
            port,
            proto,
            ttl_secs,
        }
    }

    fn grant(id: &str, rule: &Rule) -> Grant {
        Grant {
            id: id.into(),
            source: rule.source.clone(),
            port: rule.port,
            proto: rule.proto,
            expires_at_ms: EXPIRES_AT_MS,
        }
    }

    /// A host that opens anything as `fw-1` and lists it with an expiry time.
    fn opening_host() -> FakeHost {
        let listed = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let lists = listed.clone();
        FakeHost::new()
            .firewall_allow(move |rule| {
                listed.borrow_mut().push(grant("fw-1", rule));
                Ok("fw-1".into())
            })
            .firewall_list(move || Ok(lists.borrow().clone()))
    }

    #[test]
    fn run_opens_the_default_for_the_caller() {
        let run = run_allow(opening_host(), &[], Some(CALLER));
        assert_eq!(
            run.output,
            Ok("opened 22/tcp for 203.0.113.5 until 2026-11-22 13:04:05 UTC (grant fw-1)".into())
        );
        assert_eq!(
            run.calls,
            [
                Call::FirewallAllow(rule(CALLER, 22, Proto::Tcp, 3600)),
                Call::FirewallList
            ]
        );
    }

    #[test]
    fn run_passes_every_argument_and_prefers_from() {
        let run = run_allow(
            opening_host(),
            &["53", "--proto=udp", "--ttl", "60", "--from", "198.51.100.0/24"],
            Some("::ffff:203.0.113.5"),
        );
        assert_eq!(
            run.output,
            Ok("opened 53/udp for 198.51.100.0/24 until 2026-11-22 13:04:05 UTC (grant fw-1)".into())
        );
        assert_eq!(
            run.calls[0],
            Call::FirewallAllow(rule("198.51.100.0/24", 53, Proto::Udp, 60))
        );
        // An IPv4-mapped caller is opened for as IPv4.
        let run = run_allow(opening_host(), &[], Some("::ffff:203.0.113.5"));
        assert_eq!(
            run.calls[0],
            Call::FirewallAllow(rule(CALLER, 22, Proto::Tcp, 3600))
        );
    }

    #[test]
    fn run_without_the_expiry_when_the_list_fails_or_misses_the_grant() {
        let host = FakeHost::new()
            .firewall_allow(|_| Ok("fw-1".into()))
            .firewall_list(|| Err(HostError::Failed("nft list exited 1".into())));
        let run = run_allow(host, &["22"], Some(CALLER));
        assert_eq!(
            run.output,
            Ok("opened 22/tcp for 203.0.113.5 (grant fw-1)".into())
        );
        assert_eq!(run.calls.len(), 2);

        let other = grant("fw-2", &rule(CALLER, 443, Proto::Tcp, 60));
        let host = FakeHost::new()
            .firewall_allow(|_| Ok("fw-1".into()))
            .firewall_list(move || Ok(vec![other.clone()]));
        let run = run_allow(host, &["22"], Some(CALLER));
        assert_eq!(
            run.output,
            Ok("opened 22/tcp for 203.0.113.5 (grant fw-1)".into())
        );
    }

    #[test]
    fn run_reports_a_denied_or_failed_opening() {
        let run = run_allow(FakeHost::new(), &["22"], Some(CALLER));
        assert_eq!(
            run.output,
            Err(
                "cannot open 22/tcp for 203.0.113.5: denied: not scripted in this test: firewall.allow"
                    .into()
            )
        );
        // Nothing opened, so nothing to look up.
        assert_eq!(
            run.calls,
            [Call::FirewallAllow(rule(CALLER, 22, Proto::Tcp, 3600))]
        );

        let host = FakeHost::new().firewall_allow(|_| Err(HostError::Failed("ufw exited 1".into())));
        let run = run_allow(host, &["8443", "--from", "2001:db8::/32"], None);
        assert_eq!(
            run.output,
            Err("cannot open 8443/tcp for 2001:db8::/32: failed: ufw exited 1".into())
        );
        assert_eq!(run.calls.len(), 1);
    }

    /// A host where the caller holds `held` (id, source, port, proto), opening anything as `fw-new`.
    fn holding(held: &[(&str, &str, u16, Proto)]) -> FakeHost {
        let listed: Vec<Grant> = held
            .iter()
            .map(|(id, source, port, proto)| grant(id, &rule(source, *port, *proto, 60)))
            .collect();
        let listed = std::rc::Rc::new(std::cell::RefCell::new(listed));
        let lists = listed.clone();
        let revokes = listed.clone();
        FakeHost::new()
            .firewall_allow(move |rule| {
                listed.borrow_mut().push(grant("fw-new", rule));
                Ok("fw-new".into())
            })
            .firewall_list(move || Ok(lists.borrow().clone()))
            .firewall_revoke(move |id| {
                revokes.borrow_mut().retain(|g| g.id != id);
                Ok(())
            })
    }

    #[test]
    fn replace_closes_the_callers_other_openings_of_the_port_once_the_new_one_is_open() {
        let host = holding(&[
            ("fw-old", "198.51.100.7", 22, Proto::Tcp),
            ("fw-older", "192.0.2.9", 22, Proto::Tcp),
            ("fw-web", "198.51.100.7", 443, Proto::Tcp),
            ("fw-dns", "198.51.100.7", 22, Proto::Udp),
        ]);
        let run = run_allow(host, &["--replace"], Some(CALLER));
        assert_eq!(
            run.output,
            Ok(
                "opened 22/tcp for 203.0.113.5 until 2026-11-22 13:04:05 UTC (grant fw-new)\n\
                closed 22/tcp for 198.51.100.7 (grant fw-old): replaced\n\
                closed 22/tcp for 192.0.2.9 (grant fw-older): replaced"
                    .into()
            )
        );
        assert_eq!(
            run.calls,
            [
                Call::FirewallAllow(rule(CALLER, 22, Proto::Tcp, 3600)),
                Call::FirewallList,
                Call::FirewallRevoke {
                    grant_id: "fw-old".into()
                },
                Call::FirewallRevoke {
                    grant_id: "fw-older".into()
                },
            ]
        );
        // Without --replace nothing else is closed.
        let host = holding(&[("fw-old", "198.51.100.7", 22, Proto::Tcp)]);
        let run = run_allow(host, &[], Some(CALLER));
        assert!(
            !run.calls.iter().any(|c| matches!(c, Call::FirewallRevoke { .. })),
            "{:?}",
            run.calls
        );
    }

    #[test]
    fn replace_closes_nothing_when_the_new_opening_is_refused_and_says_what_it_could_not_close() {
        let host =
            FakeHost::new().firewall_allow(|_| Err(HostError::Denied("port 22 is not in the grant".into())));
        let run = run_allow(host, &["--replace"], Some(CALLER));
        assert!(run.output.is_err());
        assert_eq!(run.calls.len(), 1, "{:?}", run.calls);

        let host = holding(&[
            ("fw-a", "198.51.100.7", 22, Proto::Tcp),
            ("fw-b", "192.0.2.9", 22, Proto::Tcp),
        ])
        .firewall_revoke(|id| {
            if id == "fw-b" {
                Err(HostError::Failed("ufw exited 1".into()))
            } else {
                Ok(())
            }
        });
        let run = run_allow(host, &["--replace"], Some(CALLER));
        let err = run.output.expect_err("a close failed");
        assert!(
            err.starts_with("opened 22/tcp for 203.0.113.5")
                && err.contains("closed 22/tcp for 198.51.100.7 (grant fw-a): replaced")
                && err.ends_with(
                    "cannot close your opening of 22/tcp for 192.0.2.9 (grant fw-b): failed: ufw exited 1"
                ),
            "{err}"
        );
    }

    #[test]
    fn run_never_asks_the_host_with_bad_arguments_or_no_source() {
        for (args, source_ip) in [
            (&["0"][..], Some(CALLER)),
            (&["22", "--proto", "icmp"], Some(CALLER)),
            (&["22", "--from", "host.example"], Some(CALLER)),
            (&["22"], None),
        ] {
            let run = run_allow(opening_host(), args, source_ip);
            assert!(run.output.is_err(), "{args:?}");
            assert_eq!(run.calls, [], "{args:?}");
        }
    }
}
