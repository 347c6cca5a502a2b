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
