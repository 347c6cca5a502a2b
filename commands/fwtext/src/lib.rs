//! Text shared by the firewall commands `allow`, `grants` and `revoke`: how an opening, a
//! grant, a point in time and the time left read, and the argument check each command makes
//! before it calls the host.
//!
//! A plain library: it calls no host interface, so using it adds no import to a module.
//!
//! ```
//! use fwtext::{opening, time_left, utc};
//! use sesame_guest::firewall::Proto;
//!
//! assert_eq!(opening(22, Proto::Tcp), "22/tcp");
//! assert_eq!(utc(1_795_352_645_000), "2026-11-22 13:04:05 UTC");
//! assert_eq!(time_left(3_600_000, 1), "59m left");
//! ```

use sesame_guest::Args;
use sesame_guest::firewall::{Grant, Proto};

/// What `grants` and `revoke` print when the caller holds no live grant.
pub const NO_LIVE_GRANTS: &str = "no live grants";

/// The protocol as the commands write and accept it: `tcp` or `udp`.
pub fn proto_name(proto: Proto) -> &'static str {
    match proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

/// A port and protocol the way the commands print them: `22/tcp`.
pub fn opening(port: u16, proto: Proto) -> String {
    format!("{port}/{}", proto_name(proto))
}

/// One line of `grants`:
/// `fw-0123456789abcdef  22/tcp  from 203.0.113.5  until 2026-11-22 13:04:05 UTC (59m left)`.
pub fn grant_line(grant: &Grant, now_ms: u64) -> String {
    format!(
        "{}  {}  from {}  until {} ({})",
        grant.id,
        opening(grant.port, grant.proto),
        grant.source,
        utc(grant.expires_at_ms),
        time_left(grant.expires_at_ms, now_ms),
    )
}

/// Unix time in milliseconds as `2026-11-22 13:04:05 UTC` (milliseconds dropped).
pub fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// The time from `now_ms` until `expires_at_ms`, rounded down to the two largest units that
/// matter: `45s left`, `59m left`, `2h 5m left`, `3d 4h left`; `expiring now` once it is due.
pub fn time_left(expires_at_ms: u64, now_ms: u64) -> String {
    if expires_at_ms <= now_ms {
        return "expiring now".to_owned();
    }
    let secs = (expires_at_ms - now_ms) / 1000;
    let (days, hours, minutes) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    if days > 0 {
        format!("{days}d {hours}h left")
    } else if hours > 0 {
        format!("{hours}h {minutes}m left")
    } else if minutes > 0 {
        format!("{minutes}m left")
    } else {
        format!("{secs}s left")
    }
}

/// Checks a command's arguments against its usage and returns them ready for lookups.
///
/// Every flag in `value_flags` takes a value, `--ttl 60` or `--ttl=60`. Refused, with `usage` in
/// the message: any other flag, and more than `max_positionals` positional arguments. Values are
/// not checked here.
pub fn check_usage<'a>(
    raw: &'a [String],
    value_flags: &'static [&'static str],
    max_positionals: usize,
    usage: &str,
) -> Result<Args<'a>, String> {
    check_usage_with_switches(raw, value_flags, &[], max_positionals, usage)
}

/// [`check_usage`] for a command that also has `switches`: flags that take no value
/// (`--replace`). A switch given a value (`--replace=yes`) is refused.
pub fn check_usage_with_switches<'a>(
    raw: &'a [String],
    value_flags: &'static [&'static str],
    switches: &'static [&'static str],
    max_positionals: usize,
    usage: &str,
) -> Result<Args<'a>, String> {
    // The same reading of the tokens as `Args`: `--` ends the flags, and a known flag written
    // without `=` takes the next token as its value.
    let mut tokens = raw.iter().map(String::as_str);
    while let Some(token) = tokens.next() {
        if token == "--" {
            break;
        }
        if !token.starts_with("--") {
            continue;
        }
        let name = token.split_once('=').map_or(token, |(name, _)| name);
        if switches.contains(&name) {
            if name != token {
                return Err(format!("{name} takes no value (usage: {usage})"));
            }
            continue;
        }
        if !value_flags.contains(&name) {
            return Err(format!("unknown flag {name} (usage: {usage})"));
        }
        if name == token {
            tokens.next();
        }
    }
    let args = Args::new(raw).value_flags(value_flags);
    if let Some(extra) = args.positional(max_positionals) {
        return Err(format!("unexpected argument `{extra}` (usage: {usage})"));
    }
    Ok(args)
}

/// The civil date (year, month 1-12, day 1-31) of the day `days` after 1970-01-01.
///
/// Howard Hinnant's `civil_from_days`, for days on or after the epoch: counting years from
/// 0000-03-01 puts each leap day at the end of its year, and the Gregorian calendar repeats
/// every 400 years (146,097 days). `days` stays far below overflow for any `u64` milliseconds.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097; // [0, 146096]
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn utc_at_the_epoch() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(999), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(DAY - 1), "1970-01-01 23:59:59 UTC");
        assert_eq!(utc(DAY), "1970-01-02 00:00:00 UTC");
    }

    #[test]
    fn utc_known_dates() {
        assert_eq!(utc(1_795_352_645_000), "2026-11-22 13:04:05 UTC");
        assert_eq!(utc(1_795_352_645_999), "2026-11-22 13:04:05 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_234_567_890_000), "2009-02-13 23:31:30 UTC");
        assert_eq!(utc(2_147_483_647_000), "2038-01-19 03:14:07 UTC");
        assert_eq!(utc(1_767_225_599_000), "2025-12-31 23:59:59 UTC");
        assert_eq!(utc(1_767_225_600_000), "2026-01-01 00:00:00 UTC");
    }

    #[test]
    fn utc_leap_years() {
        // 2024 is a leap year: Feb 29 exists, and Mar 1 is the day after it.
        assert_eq!(utc(1_709_164_800_000), "2024-02-29 00:00:00 UTC");
        assert_eq!(utc(1_709_164_800_000 + DAY), "2024-03-01 00:00:00 UTC");
        // 2023 is not: Feb 28 is followed by Mar 1.
        assert_eq!(utc(1_677_542_400_000), "2023-02-28 00:00:00 UTC");
        assert_eq!(utc(1_677_542_400_000 + DAY), "2023-03-01 00:00:00 UTC");
        // 2100 is not (divisible by 100), 2000 is (divisible by 400).
        assert_eq!(utc(4_107_456_000_000), "2100-02-28 00:00:00 UTC");
        assert_eq!(utc(4_107_456_000_000 + DAY), "2100-03-01 00:00:00 UTC");
        assert_eq!(utc(951_696_000_000), "2000-02-28 00:00:00 UTC");
        assert_eq!(utc(951_696_000_000 + DAY), "2000-02-29 00:00:00 UTC");
        // Dec 31 of a leap year is its 366th day.
        assert_eq!(utc(1_735_603_200_000), "2024-12-31 00:00:00 UTC");
    }

    #[test]
    fn utc_far_future_does_not_overflow() {
        assert_eq!(utc(253_402_300_799_000), "9999-12-31 23:59:59 UTC");
        assert!(utc(u64::MAX).ends_with(" UTC"));
    }

    /// The algorithm agrees with counting days one by one over more than a full 400-year cycle.
    #[test]
    fn civil_from_days_matches_a_day_by_day_count() {
        let is_leap = |y: u64| y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400));
        let month_len = |y: u64, m: u64| match m {
            2 if is_leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for days in 0..(450 * 366) {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            d += 1;
            if d > month_len(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn time_left_units() {
        let now = 1_795_352_645_000;
        assert_eq!(time_left(now + HOUR, now + 1), "59m left");
        assert_eq!(time_left(now + HOUR, now), "1h 0m left");
        assert_eq!(time_left(now + 2 * HOUR + 5 * MINUTE + 59_999, now), "2h 5m left");
        assert_eq!(
            time_left(now + 3 * DAY + 4 * HOUR + 30 * MINUTE, now),
            "3d 4h left"
        );
        assert_eq!(time_left(now + MINUTE, now), "1m left");
        assert_eq!(time_left(now + 45_500, now), "45s left");
        assert_eq!(time_left(now + 999, now), "0s left");
        assert_eq!(time_left(now, now), "expiring now");
        assert_eq!(time_left(now - 1, now), "expiring now");
    }

    #[test]
    fn openings_and_grant_lines() {
        assert_eq!(opening(22, Proto::Tcp), "22/tcp");
        assert_eq!(opening(65535, Proto::Udp), "65535/udp");
        let grant = Grant {
            id: "fw-0123456789abcdef".into(),
            source: "203.0.113.5".into(),
            port: 22,
            proto: Proto::Tcp,
            expires_at_ms: 1_795_352_645_000,
        };
        assert_eq!(
            grant_line(&grant, 1_795_352_645_000 - HOUR + 1),
            "fw-0123456789abcdef  22/tcp  from 203.0.113.5  until 2026-11-22 13:04:05 UTC (59m left)"
        );
    }

    #[test]
    fn usage_accepts_known_flags_in_both_forms() {
        let raw = strings(&["22", "--ttl", "60", "--proto=udp", "--from", "--weird"]);
        let args = check_usage(&raw, &["--ttl", "--proto", "--from"], 1, "u").expect("valid usage");
        assert_eq!(args.positional(0), Some("22"));
        assert_eq!(args.flag_value("--ttl"), Ok(Some("60")));
        assert_eq!(args.flag_value("--proto"), Ok(Some("udp")));
        // A value that looks like a flag is still the value.
        assert_eq!(args.flag_value("--from"), Ok(Some("--weird")));
        assert!(check_usage(&[], &[], 0, "grants").is_ok());
    }

    #[test]
    fn usage_refuses_unknown_flags() {
        let raw = strings(&["22", "--udp"]);
        assert_eq!(
            check_usage(&raw, &["--ttl"], 1, "allow [PORT]").map(|_| ()),
            Err("unknown flag --udp (usage: allow [PORT])".to_string())
        );
        let raw = strings(&["--ttl=5", "--tll=5"]);
        assert_eq!(
            check_usage(&raw, &["--ttl"], 1, "allow").map(|_| ()),
            Err("unknown flag --tll (usage: allow)".to_string())
        );
        // After `--` everything is positional.
        let raw = strings(&["--", "--udp"]);
        assert_eq!(
            check_usage(&raw, &["--ttl"], 1, "revoke [GRANT_ID]").map(|_| ()),
            Ok(())
        );
    }

    #[test]
    fn usage_refuses_extra_positionals() {
        let raw = strings(&["fw-1", "fw-2"]);
        assert_eq!(
            check_usage(&raw, &[], 1, "revoke [GRANT_ID]").map(|_| ()),
            Err("unexpected argument `fw-2` (usage: revoke [GRANT_ID])".to_string())
        );
        let raw = strings(&["all"]);
        assert_eq!(
            check_usage(&raw, &[], 0, "grants").map(|_| ()),
            Err("unexpected argument `all` (usage: grants)".to_string())
        );
    }
}
