//! `grants`: lists the caller's live firewall grants, soonest to expire first, one per line:
//!
//! ```text
//! fw-0123456789abcdef  22/tcp  from 203.0.113.5  until 2026-11-22 13:04:05 UTC (59m left)
//! ```
//!
//! or `no live grants`. The time left is counted from the module's wall clock.
//!
//! Needs the firewall capability.

use std::time::{SystemTime, UNIX_EPOCH};

use fwtext::{NO_LIVE_GRANTS, check_usage, grant_line};
use sesame_guest::firewall::{self, Grant};
use sesame_guest::{Command, Invocation};

const USAGE: &str = "grants";

/// The `grants` command.
#[derive(Debug)]
pub struct Grants;

impl Command for Grants {
    fn run(inv: Invocation) -> Result<String, String> {
        check_usage(&inv.args, &[], 0, USAGE)?;
        let grants = firewall::list().map_err(|e| format!("cannot list your grants: {e}"))?;
        Ok(render(grants, now_ms()))
    }
}

sesame_guest::export_command!(Grants);

/// The output: one line per grant, soonest to expire first, or `no live grants`.
fn render(mut grants: Vec<Grant>, now_ms: u64) -> String {
    if grants.is_empty() {
        return NO_LIVE_GRANTS.to_owned();
    }
    grants.sort_by(|a, b| (a.expires_at_ms, &a.id).cmp(&(b.expires_at_ms, &b.id)));
    grants
        .iter()
        .map(|g| grant_line(g, now_ms))
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
    use sesame_guest::firewall::Proto;

    const NOW: u64 = 1_795_349_045_000; // 2026-11-22 12:04:05 UTC

    fn grant(id: &str, port: u16, proto: Proto, source: &str, expires_at_ms: u64) -> Grant {
        Grant {
            id: id.into(),
            source: source.into(),
            port,
            proto,
            expires_at_ms,
        }
    }

    #[test]
    fn no_grants() {
        assert_eq!(render(Vec::new(), NOW), "no live grants");
    }

    #[test]
    fn soonest_first() {
        let grants = vec![
            grant(
                "fw-00000000000000b2",
                53,
                Proto::Udp,
                "198.51.100.0/24",
                NOW + 2 * 3_600_000,
            ),
            grant(
                "fw-00000000000000a1",
                22,
                Proto::Tcp,
                "203.0.113.5",
                NOW + 3_600_000 - 1,
            ),
        ];
        assert_eq!(
            render(grants, NOW),
            "fw-00000000000000a1  22/tcp  from 203.0.113.5  until 2026-11-22 13:04:04 UTC (59m left)\n\
             fw-00000000000000b2  53/udp  from 198.51.100.0/24  until 2026-11-22 14:04:05 UTC (2h 0m left)"
        );
    }

    #[test]
    fn the_clock_reads_unix_milliseconds() {
        assert!(now_ms() > 1_700_000_000_000, "{}", now_ms()); // after 2023-11-14
    }
}
