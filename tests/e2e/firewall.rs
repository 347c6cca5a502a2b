//! The firewall capability end to end over the dry-run back end: the stock `allow`, `grants` and
//! `revoke` modules, grant bounds, expiry, crash and restart, and `sesamed grants`. The dry-run
//! back end's record (`state/firewall-dry-run.jsonl`) stands in for the firewall; the same flows
//! against real ufw and nftables run in a private network namespace (tests/system).

use std::time::{Duration, Instant};

use sesame_tests::{Client, Daemon, Setup, access_cluster, sesamed};

use crate::{stderr, stdout};

fn setup() -> Setup {
    Setup {
        clusters: format!("{}\n{}", Setup::default().clusters, access_cluster()),
        ..Setup::default()
    }
}

fn daemon_with(setup: &Setup, name: &str, groups: &[&str]) -> (Daemon, Client) {
    let daemon = Daemon::start(setup);
    let client = daemon.client(name, groups);
    (daemon, client)
}

/// The dry-run record: (action, grant id, source, port).
fn record(daemon: &Daemon) -> Vec<(String, String, String, u64)> {
    let text =
        std::fs::read_to_string(daemon.dir.path().join("state/firewall-dry-run.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("record line is JSON");
            (
                v["action"].as_str().expect("action").to_owned(),
                v["id"].as_str().expect("id").to_owned(),
                v["rule"]["source"].as_str().expect("source").to_owned(),
                v["rule"]["port"].as_u64().expect("port"),
            )
        })
        .collect()
}

/// The grant id in `allow`'s output (`… (grant fw-…)`).
fn grant_id(output: &str) -> String {
    let start = output
        .find("fw-")
        .unwrap_or_else(|| panic!("no grant id in {output:?}"));
    output[start..start + 19].to_owned()
}

fn firewall_events(daemon: &Daemon) -> Vec<serde_json::Value> {
    daemon
        .audit()
        .into_iter()
        .filter(|r| r["event"] == "firewall")
        .collect()
}

#[test]
fn allow_opens_for_the_caller_and_asking_again_extends() {
    let (daemon, alice) = daemon_with(&setup(), "alice", &["users"]);
    let out = alice.run_ok(&["run", "web", "allow"]);
    assert!(out.starts_with("opened 22/tcp for 127.0.0.1 until "), "{out}");
    let id = grant_id(&out);
    assert_eq!(
        record(&daemon),
        [("open".to_owned(), id.clone(), "127.0.0.1".to_owned(), 22)]
    );

    let listed = alice.run_ok(&["run", "web", "grants"]);
    assert!(listed.contains(&id) && listed.contains("22/tcp"), "{listed}");

    let again = alice.run_ok(&["run", "web", "allow", "22", "--ttl", "600"]);
    assert_eq!(grant_id(&again), id, "same opening, same grant");
    let actions: Vec<String> = record(&daemon).into_iter().map(|r| r.0).collect();
    assert_eq!(
        actions,
        ["open"],
        "no second rule; the longer hold needs no firewall change"
    );

    let events = firewall_events(&daemon);
    let opened = events
        .iter()
        .find(|e| e["action"] == "opened")
        .expect("opened audited");
    assert_eq!(opened["client"], "alice");
    assert_eq!(opened["grant"], id.as_str());
    assert!(
        opened["request_id"].as_str().is_some_and(|r| r.len() == 32),
        "{opened}"
    );
    assert!(events.iter().any(|e| e["action"] == "extended"));
}

#[test]
fn revoke_closes_the_callers_grants() {
    let (daemon, alice) = daemon_with(&setup(), "alice", &["users"]);
    let id = grant_id(&alice.run_ok(&["run", "web", "allow"]));
    let out = alice.run_ok(&["run", "web", "revoke", &id]);
    assert!(out.contains(&format!("revoked {id}")), "{out}");
    let actions: Vec<String> = record(&daemon).into_iter().map(|r| r.0).collect();
    assert_eq!(actions, ["open", "close"]);
    assert_eq!(alice.run_ok(&["run", "web", "grants"]).trim(), "no live grants");
    // Revoking it again, or an id that was never granted, is an error the user can read.
    let again = alice.sesame(&["run", "web", "revoke", &id]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("no live grant"), "{}", stderr(&again));
    assert!(
        firewall_events(&daemon)
            .iter()
            .any(|e| e["action"] == "revoked" && e["by"] == "request")
    );
}

#[test]
fn asks_outside_the_grant_fail_with_3004_and_are_audited() {
    let (daemon, alice) = daemon_with(&setup(), "alice", &["users"]);
    for (args, why) in [
        (vec!["2222"], "port 2222 is not granted"),
        (vec!["--from", "192.0.2.1"], "source 192.0.2.1 is not granted"),
        (vec!["--ttl", "3601"], "exceeds the granted maximum of 3600s"),
        (vec!["--proto", "udp"], "protocol udp is not granted"),
    ] {
        let mut argv = vec!["run", "web", "allow"];
        argv.extend(&args);
        let out = alice.sesame(&argv);
        let err = stderr(&out);
        assert!(err.contains("error 3004"), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
        let rec = daemon.wait_audit(why, |r| {
            r["event"] == "request"
                && r["phase"] == "end"
                && r["code"] == 3004
                && r["denied"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|m| m.as_str().is_some_and(|m| m.contains(why))))
        });
        assert_eq!(rec["client"], "alice");
    }
    assert!(record(&daemon).is_empty(), "nothing was opened");
}

#[test]
fn clients_see_and_revoke_only_their_own_grants() {
    let (daemon, alice) = daemon_with(&setup(), "alice", &["users"]);
    let bob = daemon.client("bob", &["users"]);
    let id = grant_id(&alice.run_ok(&["run", "web", "allow"]));
    assert_eq!(bob.run_ok(&["run", "web", "grants"]).trim(), "no live grants");
    let out = bob.sesame(&["run", "web", "revoke", &id]);
    assert!(!out.status.success(), "bob revoked alice's grant");
    assert_eq!(record(&daemon).len(), 1, "still open");
    // Bob asking for the same opening shares the rule (re-timed to his longer hold); alice
    // leaving keeps it open for him.
    assert_eq!(grant_id(&bob.run_ok(&["run", "web", "allow"])), id);
    alice.run_ok(&["run", "web", "revoke", &id]);
    let actions: Vec<String> = record(&daemon).into_iter().map(|r| r.0).collect();
    assert_eq!(actions, ["open", "extend"], "bob still holds it");
    bob.run_ok(&["run", "web", "revoke"]);
    let actions: Vec<String> = record(&daemon).into_iter().map(|r| r.0).collect();
    assert_eq!(actions, ["open", "extend", "close"]);
}

#[test]
fn openings_close_by_themselves_at_expiry() {
    let (daemon, alice) = daemon_with(&setup(), "alice", &["users"]);
    let id = grant_id(&alice.run_ok(&["run", "web", "allow", "--ttl", "1"]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !record(&daemon).iter().any(|r| r.0 == "close") {
        assert!(Instant::now() < deadline, "not closed: {:?}", record(&daemon));
        std::thread::sleep(Duration::from_millis(100));
    }
    let expired = daemon.wait_audit("expiry", |r| r["event"] == "firewall" && r["action"] == "expired");
    assert_eq!(expired["grant"], id.as_str());
    assert_eq!(expired["by"], "reaper");
}

#[test]
fn a_killed_daemon_closes_what_expired_while_it_was_down_and_keeps_the_rest() {
    let data = std::fs::read_to_string(sesame_tests::repo_root().join("policies/data.json"))
        .expect("data.json")
        .replace(r#""ports": [22]"#, r#""ports": [22, 443]"#);
    let setup = Setup {
        policy_data: Some(data),
        ..setup()
    };
    let (mut daemon, alice) = daemon_with(&setup, "alice", &["users"]);
    let short = grant_id(&alice.run_ok(&["run", "web", "allow", "443", "--ttl", "2"]));
    let long = grant_id(&alice.run_ok(&["run", "web", "allow", "--ttl", "3600"]));
    daemon.kill_hard();
    std::thread::sleep(Duration::from_millis(2_500));
    assert!(
        !record(&daemon).iter().any(|r| r.0 == "close"),
        "nothing ran while the daemon was dead"
    );
    daemon.restart();
    let closes: Vec<String> = record(&daemon)
        .into_iter()
        .filter(|r| r.0 == "close")
        .map(|r| r.1)
        .collect();
    assert_eq!(
        closes,
        std::slice::from_ref(&short),
        "closed at start-up, before serving"
    );
    let rec = daemon
        .audit()
        .into_iter()
        .rev()
        .find(|r| r["event"] == "firewall" && r["action"] == "reconciled")
        .expect("reconciled at restart");
    let report: serde_json::Value =
        serde_json::from_str(rec["detail"].as_str().expect("detail")).expect("report");
    assert_eq!(
        (report["expired"].as_u64(), report["kept"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
    alice.sesame(&["host", "remove", "web"]);
    alice.pin(&daemon, "web");
    let listed = alice.run_ok(&["run", "web", "grants"]);
    assert!(listed.contains(&long) && !listed.contains(&short), "{listed}");
}

#[test]
fn operators_list_and_revoke_grants_while_the_daemon_runs() {
    let (daemon, alice) = daemon_with(&setup(), "alice", &["users"]);
    let cfg = daemon.config.to_str().expect("utf-8");
    let out = sesamed(&["grants", "list", "--config", cfg], &[]);
    assert!(
        stdout(&out).contains("no live grants (dry-run back end)"),
        "{}",
        stdout(&out)
    );
    let id = grant_id(&alice.run_ok(&["run", "web", "allow"]));

    let out = sesamed(&["grants", "list", "--config", cfg], &[]);
    let table = stdout(&out);
    assert!(
        table.contains(&id) && table.contains("22/tcp from 127.0.0.1") && table.contains("alice"),
        "{table}"
    );
    let out = sesamed(&["grants", "list", "--json", "--config", cfg], &[]);
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("one JSON grant");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["holders"][0]["client"], "alice");
    assert_eq!(
        v["holders"][0]["key"],
        alice.key.as_str(),
        "holders are keys: {v}"
    );
    assert!(
        table.contains(&alice.key[..16]),
        "the table shows the key: {table}"
    );

    let out = sesamed(&["grants", "revoke", "fw-00000000000000ff", "--config", cfg], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no live grant fw-00000000000000ff"),
        "{}",
        stderr(&out)
    );
    let out = sesamed(&["grants", "revoke", "not-an-id", "--config", cfg], &[]);
    assert!(!out.status.success());

    let out = sesamed(&["grants", "revoke", &id, "--config", cfg], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("revoked {id} (22/tcp from 127.0.0.1)")));
    assert_eq!(alice.run_ok(&["run", "web", "grants"]).trim(), "no live grants");
    assert!(
        firewall_events(&daemon)
            .iter()
            .any(|e| e["action"] == "revoked" && e["by"] == "operator")
    );
    let out = sesamed(&["grants", "revoke", "--all", "--config", cfg], &[]);
    assert!(stdout(&out).contains("no live grants"), "{}", stdout(&out));
}

/// `setup()` with the `access` cluster's grant widened to ports 22 and 443.
fn two_ports() -> Setup {
    let data = std::fs::read_to_string(sesame_tests::repo_root().join("policies/data.json"))
        .expect("data.json")
        .replace(r#""ports": [22]"#, r#""ports": [22, 443]"#);
    Setup {
        policy_data: Some(data),
        ..setup()
    }
}

fn grants_json(daemon: &Daemon) -> Vec<serde_json::Value> {
    let out = daemon.sesamed(&["grants", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON grant"))
        .collect()
}

#[test]
fn removing_a_client_closes_its_openings_now_and_leaves_shared_ones_to_the_others() {
    let (daemon, alice) = daemon_with(&two_ports(), "alice", &["users"]);
    let bob = daemon.client("bob", &["users"]);
    let own = grant_id(&alice.run_ok(&["run", "web", "allow", "443"]));
    let shared = grant_id(&alice.run_ok(&["run", "web", "allow"]));
    assert_eq!(grant_id(&bob.run_ok(&["run", "web", "allow"])), shared);

    let out = daemon.sesamed(&["client", "remove", "alice"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("closed {own}")),
        "{}",
        stdout(&out)
    );
    let closes: Vec<String> = record(&daemon)
        .into_iter()
        .filter(|r| r.0 == "close")
        .map(|r| r.1)
        .collect();
    assert_eq!(
        closes,
        std::slice::from_ref(&own),
        "closed at once, by the command"
    );
    let events = firewall_events(&daemon);
    for (id, action) in [(&own, "revoked"), (&shared, "released")] {
        assert!(
            events.iter().any(|e| e["action"] == action
                && e["grant"] == id.as_str()
                && e["client"] == "alice"
                && e["by"] == "operator"),
            "{action} {id}: {events:#?}"
        );
    }
    let left = grants_json(&daemon);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["id"], shared.as_str());
    assert_eq!(left[0]["holders"].as_array().map(Vec::len), Some(1));
    assert_eq!(left[0]["holders"][0]["client"], "bob");
    // The running daemon sees it: bob still holds the shared opening, alice is gone.
    let listed = bob.run_ok(&["run", "web", "grants"]);
    assert!(listed.contains(&shared), "{listed}");
    assert!(!alice.sesame(&["run", "web", "grants"]).status.success());
}

#[test]
fn a_client_enrolled_again_under_the_same_name_holds_nothing() {
    let (daemon, alice) = daemon_with(&setup(), "alice", &["users"]);
    let id = grant_id(&alice.run_ok(&["run", "web", "allow"]));
    daemon.remove("alice");
    let again = daemon.client("alice", &["users"]);
    assert_eq!(again.run_ok(&["run", "web", "grants"]).trim(), "no live grants");
    let err = again.run_err(&["run", "web", "revoke", &id]);
    assert!(err.contains("no live grant"), "{err}");

    // The same with the registry edited by hand (no `client remove`, so nothing was closed):
    // the new key under the old name still holds nothing of the old key's.
    let id = grant_id(&again.run_ok(&["run", "web", "allow"]));
    let third = Client::new();
    let registry = daemon.dir.path().join("state/clients.toml");
    let text = std::fs::read_to_string(&registry).expect("clients.toml");
    std::fs::write(&registry, text.replace(&again.key, &third.key)).expect("edit");
    third.pin(&daemon, "web");
    assert_eq!(third.run_ok(&["run", "web", "grants"]).trim(), "no live grants");
    let err = third.run_err(&["run", "web", "revoke", &id]);
    assert!(err.contains("no live grant"), "{err}");
    assert_eq!(record(&daemon).last().map(|r| r.0.as_str()), Some("open"));
}

#[test]
fn rekeying_a_client_moves_its_openings_to_the_new_key() {
    let (daemon, alice) = daemon_with(&setup(), "alice", &["users"]);
    let id = grant_id(&alice.run_ok(&["run", "web", "allow"]));
    let laptop = Client::new();
    let out = daemon.sesamed(&["client", "rekey", "alice", "--key", &laptop.key, "--grace", "1h"]);
    assert!(out.status.success(), "{}", stderr(&out));
    laptop.pin(&daemon, "web");
    let listed = laptop.run_ok(&["run", "web", "grants"]);
    assert!(
        listed.contains(&id),
        "the same client under its new key: {listed}"
    );
    let grants = grants_json(&daemon);
    assert_eq!(grants[0]["holders"][0]["key"], laptop.key.as_str(), "{grants:?}");
    let moved = daemon.wait_audit("the move", |r| {
        r["event"] == "firewall" && r["action"] == "rekeyed" && r["grant"] == id.as_str()
    });
    assert_eq!(moved["client"], "alice");
    // The old key, still accepted for its grace period, acts for the same holder.
    assert_eq!(grant_id(&alice.run_ok(&["run", "web", "allow"])), id);
    let grants = grants_json(&daemon);
    let holders = grants[0]["holders"].as_array().expect("holders");
    assert_eq!(holders.len(), 1, "{holders:?}");
    assert_eq!(holders[0]["key"], laptop.key.as_str());
    laptop.run_ok(&["run", "web", "revoke", &id]);
    assert_eq!(record(&daemon).last().map(|r| r.0.as_str()), Some("close"));
}

#[test]
fn a_ledger_written_by_an_older_sesamed_is_migrated_without_losing_an_opening() {
    let (mut daemon, alice) = daemon_with(&setup(), "alice", &["users"]);
    daemon.kill_hard();
    let state = daemon.dir.path().join("state");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let until = u64::try_from(now_ms).expect("ms") + 3_600_000;
    let v1 = format!(
        r#"{{"version": 1, "grants": [
            {{"id": "fw-00000000000000a1", "rule": {{"source": "127.0.0.1", "port": 22, "proto": "tcp"}},
              "created_ms": 1, "holders": [{{"client": "alice", "expires_ms": {until}, "request_id": "r1"}}]}},
            {{"id": "fw-00000000000000a2", "rule": {{"source": "192.0.2.1", "port": 22, "proto": "tcp"}},
              "created_ms": 1, "holders": [{{"client": "gone", "expires_ms": {until}, "request_id": "r2"}}]}}]}}"#
    );
    std::fs::write(state.join("grants.json"), v1).expect("v1 ledger");
    let opened = |id: &str, src: &str| {
        format!(
            r#"{{"action":"open","id":"{id}","rule":{{"source":"{src}","port":22,"proto":"tcp"}},"expires_ms":{until}}}"#
        )
    };
    std::fs::write(
        state.join("firewall-dry-run.jsonl"),
        format!(
            "{}\n{}\n",
            opened("fw-00000000000000a1", "127.0.0.1"),
            opened("fw-00000000000000a2", "192.0.2.1")
        ),
    )
    .expect("dry-run record");
    daemon.restart();
    // The holder whose name is enrolled is now its key; one whose name is not (a client removed
    // before the upgrade) holds nothing, so that opening is closed.
    let grants = grants_json(&daemon);
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0]["id"], "fw-00000000000000a1");
    assert_eq!(grants[0]["holders"][0]["key"], alice.key.as_str());
    let closes: Vec<String> = record(&daemon)
        .into_iter()
        .filter(|r| r.0 == "close")
        .map(|r| r.1)
        .collect();
    assert_eq!(closes, ["fw-00000000000000a2"]);
    let text = std::fs::read_to_string(state.join("grants.json")).expect("ledger");
    assert!(text.contains("\"version\": 3"), "{text}");
    daemon.wait_audit("the migration", |r| {
        r["event"] == "firewall" && r["action"] == "ledger-migrated"
    });
    alice.sesame(&["host", "remove", "web"]);
    alice.pin(&daemon, "web");
    assert!(
        alice
            .run_ok(&["run", "web", "grants"])
            .contains("fw-00000000000000a1")
    );
}

#[test]
fn operators_see_and_close_an_opening_the_firewall_failed_to_make() {
    let (mut daemon, _alice) = daemon_with(&setup(), "alice", &["users"]);
    // The daemon died between a failed opening and its reaper's next round.
    daemon.kill_hard();
    let state = daemon.dir.path().join("state");
    let uncertain = r#"{"version": 2, "grants": [
        {"id": "fw-00000000000000b1", "rule": {"source": "192.0.2.7", "port": 22, "proto": "tcp"},
         "created_ms": 1, "holders": [], "uncertain": true}]}"#;
    std::fs::write(state.join("grants.json"), uncertain).expect("ledger");
    std::fs::write(
        state.join("firewall-dry-run.jsonl"),
        r#"{"action":"open","id":"fw-00000000000000b1","rule":{"source":"192.0.2.7","port":22,"proto":"tcp"},"expires_ms":1}"#
            .to_owned()
            + "\n",
    )
    .expect("record");
    let out = daemon.sesamed(&["grants", "list"]);
    let table = stdout(&out);
    assert!(
        table.contains("no live grants")
            && table.contains("fw-00000000000000b1")
            && table.contains("closing: the firewall failed while opening it"),
        "{table}"
    );
    assert!(grants_json(&daemon).is_empty(), "--json lists live grants only");
    let out = daemon.sesamed(&["grants", "revoke", "--all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("revoked fw-00000000000000b1"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        record(&daemon).last().map(|r| (r.0.as_str(), r.1.as_str())),
        Some(("close", "fw-00000000000000b1"))
    );
    let text = std::fs::read_to_string(state.join("grants.json")).expect("ledger");
    assert!(!text.contains("fw-00000000000000b1"), "{text}");
}
