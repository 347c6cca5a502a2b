//! `grants`: lists the caller's live grants on this host, of every kind (firewall openings,
//! temporary SSH keys, group memberships and accounts), soonest to end first, one per line:
//!
//! ```text
//! fw-0123456789abcdef   22/tcp from 203.0.113.5  until 2026-11-22 13:04:05 UTC (59m left)
//! grp-00000000000000c3  dave in group sudo  until 2026-11-22 14:00:00 UTC (1h 55m left)
//! ```
//!
//! or `no live grants`. The time left is counted from the module's wall clock; the end shown is
//! the caller's own hold (another client may hold the same change longer).
//!
//! Needs the grants interface, which clusters with the firewall or users capability have.

use std::time::{SystemTime, UNIX_EPOCH};

use fwtext::{NO_LIVE_GRANTS, check_usage, time_left, utc};
use sesame_guest::grants::{self, Held};
use sesame_guest::{Command, Invocation};

const USAGE: &str = "grants";

/// The `grants` command.
#[derive(Debug)]
pub struct Grants;

impl Command for Grants {
    fn run(inv: Invocation) -> Result<String, String> {
        check_usage(&inv.args, &[], 0, USAGE)?;
        let grants = grants::list().map_err(|e| format!("cannot list your grants: {e}"))?;
        Ok(render(grants, now_ms()))
    }
}

sesame_guest::export_command!(Grants);

/// The output: one line per grant, soonest to end first, the ids padded to one width, or
/// `no live grants`.
fn render(mut grants: Vec<Held>, now_ms: u64) -> String {
    if grants.is_empty() {
        return NO_LIVE_GRANTS.to_owned();
    }
    grants.sort_by(|a, b| (a.expires_at_ms, &a.id).cmp(&(b.expires_at_ms, &b.id)));
    let width = grants.iter().map(|g| g.id.len()).max().unwrap_or(0);
    grants
        .iter()
        .map(|g| {
            format!(
                "{:<width$}  {}  until {} ({})",
                g.id,
                g.what,
                utc(g.expires_at_ms),
                time_left(g.expires_at_ms, now_ms)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The wall clock as Unix milliseconds; a clock set before 1970 reads as the epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sesame_guest::grants::ChangeKind;
    use sesame_guest::testing::{FakeHost, invocation};

    const NOW: u64 = 1_795_349_045_000; // 2026-11-22 12:04:05 UTC

    fn held(id: &str, kind: ChangeKind, what: &str, expires_at_ms: u64) -> Held {
        Held {
            id: id.into(),
            kind,
            what: what.into(),
            expires_at_ms,
        }
    }

    #[test]
    fn no_grants() {
        assert_eq!(render(Vec::new(), NOW), "no live grants");
    }

    #[test]
    fn every_kind_soonest_first() {
        let grants = vec![
            held(
                "fw-00000000000000b2",
                ChangeKind::Opening,
                "53/udp from 198.51.100.0/24",
                NOW + 2 * 3_600_000,
            ),
            held(
                "grp-00000000000000c3",
                ChangeKind::Membership,
                "dave in group sudo",
                NOW + 600_000,
            ),
            held(
                "fw-00000000000000a1",
                ChangeKind::Opening,
                "22/tcp from 203.0.113.5",
                NOW + 3_600_000 - 1,
            ),
            held(
                "key-00000000000000d4",
                ChangeKind::Key,
                "key ssh-ed25519 …6ELIpKiD6cti on dave",
                NOW + 3 * 86_400_000,
            ),
            held(
                "acc-00000000000000e5",
                ChangeKind::Account,
                "account cleo",
                NOW + 3 * 86_400_000,
            ),
        ];
        assert_eq!(
            render(grants, NOW),
            "grp-00000000000000c3  dave in group sudo  until 2026-11-22 12:14:05 UTC (10m left)\n\
             fw-00000000000000a1   22/tcp from 203.0.113.5  until 2026-11-22 13:04:04 UTC (59m left)\n\
             fw-00000000000000b2   53/udp from 198.51.100.0/24  until 2026-11-22 14:04:05 UTC (2h 0m left)\n\
             acc-00000000000000e5  account cleo  until 2026-11-25 12:04:05 UTC (3d 0h left)\n\
             key-00000000000000d4  key ssh-ed25519 …6ELIpKiD6cti on dave  until 2026-11-25 12:04:05 UTC (3d 0h left)"
        );
    }

    #[test]
    fn the_host_is_asked_once_and_its_refusal_is_said() {
        let run = FakeHost::new()
            .grants_list(|| Err(sesame_guest::HostError::Failed("users: ledger unreadable".into())))
            .run::<Grants>(invocation("dave", &[]));
        assert_eq!(
            run.output,
            Err("cannot list your grants: failed: users: ledger unreadable".into())
        );
        assert_eq!(run.calls.len(), 1);
    }

    #[test]
    fn it_takes_no_arguments() {
        let run = FakeHost::new().run::<Grants>(invocation("dave", &["fw-1"]));
        assert!(run.output.is_err(), "{:?}", run.output);
        assert!(run.calls.is_empty());
    }

    #[test]
    fn the_clock_reads_unix_milliseconds() {
        assert!(now_ms() > 1_700_000_000_000, "{}", now_ms()); // after 2023-11-14
    }
}
