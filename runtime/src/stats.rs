//! The daemon's counters since it started, for `sesamed status`: answers by code, input turned
//! away unanswered, duplicate deliveries, and requests that still sealed to a replaced host key.
//!
//! Counting is one relaxed atomic add per event, so it costs the request path nothing measurable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sesame_proto::ErrorCode;

/// Event counters, shared by every transport.
#[derive(Debug)]
pub struct Counters {
    /// Answers sent, indexed like [`ErrorCode::ALL`].
    answered: Vec<AtomicU64>,
    rejected: AtomicU64,
    duplicates: AtomicU64,
    previous_host_key: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersSnapshot {
    /// Requests answered, all codes.
    pub answered: u64,
    /// Requests answered with code 0.
    pub ok: u64,
    /// Answers by code (only codes seen), e.g. `{"1010": 3}`.
    pub by_code: BTreeMap<u16, u64>,
    /// Input that never authenticated (unknown key, bad MAC, garbage): audited, not answered.
    pub rejected: u64,
    /// Requests delivered again and not run again.
    pub duplicates: u64,
    /// Requests sealed to the host key replaced by the last rotation (clients yet to re-pin).
    pub previous_host_key: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            answered: ErrorCode::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            rejected: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            previous_host_key: AtomicU64::new(0),
        }
    }
}

impl Counters {
    /// Counts an answer with `code`.
    pub fn answered(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.answered[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts input turned away without an answer.
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a duplicate delivery.
    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request opened with the previous host key.
    pub fn previous_host_key(&self) {
        self.previous_host_key.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> CountersSnapshot {
        let mut snap = CountersSnapshot {
            rejected: self.rejected.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            previous_host_key: self.previous_host_key.load(Ordering::Relaxed),
            ..CountersSnapshot::default()
        };
        for (code, n) in ErrorCode::ALL.iter().zip(&self.answered) {
            let n = n.load(Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            snap.answered += n;
            if *code == ErrorCode::Ok {
                snap.ok = n;
            }
            snap.by_code.insert(code.as_u16(), n);
        }
        snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_counted_under_its_number() {
        let c = Counters::default();
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            for _ in 0..=i {
                c.answered(*code);
            }
        }
        c.rejected();
        c.duplicate();
        c.duplicate();
        let s = c.snapshot();
        assert_eq!(s.by_code.len(), ErrorCode::ALL.len());
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(s.by_code[&code.as_u16()], i as u64 + 1, "{code}");
        }
        assert_eq!(s.ok, 1);
        let n = ErrorCode::ALL.len() as u64;
        assert_eq!(s.answered, n * (n + 1) / 2);
        assert_eq!((s.rejected, s.duplicates, s.previous_host_key), (1, 2, 0));
    }
}
