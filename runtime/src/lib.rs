//! `sesamed`: the sesame host daemon as a library.
//!
//! A request travels one path whatever its transport: [`transport`] hands sealed bytes to
//! [`runner::Runner::handle`], which opens them ([`sesame_proto`]), checks freshness and replay,
//! asks the [`policy`] for a grant, runs the command's WebAssembly component in the [`sandbox`]
//! and seals the answer. Every step lands in the [`audit`] log.
// No unsafe code, with two exceptions allowed where they stand: loading precompiled modules from
// the daemon's own cache (`sandbox::cache`), which wasmtime can only do unsafely, and marking the
// descriptors the daemon inherited close-on-exec at start (`system::close_inherited_descriptors`).
#![deny(unsafe_code)]

pub mod answers;
pub mod approvals;
pub mod audit;
pub mod capability;
pub mod cli;
pub mod clients;
pub mod config;
pub mod control;
pub mod deadline;
pub mod files;
pub mod host;
pub mod identity;
pub mod ledger;
pub mod policy;
pub mod progress;
pub mod results;
pub mod runner;
pub mod runs;
pub mod sandbox;
pub mod seen;
pub mod shares;
pub mod stats;
pub mod system;
pub mod transport;

/// Milliseconds since the Unix epoch, from the system clock.
///
/// The one place the daemon reads wall-clock time for protocol decisions; everything below takes
/// `now` as a parameter.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A Unix time in milliseconds as `YYYY-MM-DD HH:MM:SS UTC` (shared with the client).
pub use sesame_proto::format_utc;

/// A duration in milliseconds, rounded down, for people: `59m`, `2h05m`, `40s`.
pub fn format_remaining(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Parses a duration for the command line: a whole number with a unit, `s`, `m`, `h` or `d`
/// (`90s`, `30m`, `12h`, `7d`), into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a duration: use a whole number and s, m, h or d (e.g. 7d)");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit_ms: u64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_ms)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_parse_with_a_unit_only() {
        assert_eq!(super::parse_duration_ms("90s"), Ok(90_000));
        assert_eq!(super::parse_duration_ms("30m"), Ok(1_800_000));
        assert_eq!(super::parse_duration_ms("12h"), Ok(43_200_000));
        assert_eq!(super::parse_duration_ms("7d"), Ok(604_800_000));
        assert_eq!(super::parse_duration_ms("0s"), Ok(0));
        for bad in [
            "",
            "7",
            "d",
            "7w",
            "-1d",
            "1.5h",
            " 7d",
            "7d ",
            "99999999999999999999d",
        ] {
            assert!(super::parse_duration_ms(bad).is_err(), "{bad:?}");
        }
        assert!(super::parse_duration_ms("999999999999999d").is_err(), "overflow");
    }

    #[test]
    fn remaining_formatting() {
        assert_eq!(super::format_remaining(0), "0s");
        assert_eq!(super::format_remaining(40_999), "40s");
        assert_eq!(super::format_remaining(3_540_000), "59m");
        assert_eq!(super::format_remaining(7_500_000), "2h05m");
    }
}
