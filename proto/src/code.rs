//! The stable numeric error codes of DESIGN §4, shared by daemon, client and audit log.
//!
//! Numbers never change meaning once released; new codes may be added (the enum is non-exhaustive).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A stable result code carried in every [`Response`](crate::Response).
///
/// `0` is success; `10xx` authentication and authorisation, `20xx` request problems, `30xx` execution
/// problems, `9999` internal errors. On the wire (JSON) a code is its number; [`Display`](fmt::Display)
/// shows the number and a short summary, e.g. `1010 denied by policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 0: the command ran and succeeded.
    Ok,
    /// 1001: the sender's key is not a registered client.
    UnknownClient,
    /// 1003: the request id was already seen inside the freshness window.
    Replay,
    /// 1004: the request was issued too long ago, or too far in the future.
    Stale,
    /// 1005: the request names a different host than the one that received it.
    WrongHost,
    /// 1010: the policy denied the request.
    Denied,
    /// 1020: the policy wants other people to approve the request first: it is parked on the
    /// host, not run (yet). The response's `pending` says its id, approvals and expiry.
    ApprovalPending,
    /// 1021: a parked request will not run: an approver (or its requester) rejected it, or it
    /// expired unapproved. The message says which.
    ApprovalRefused,
    /// 2001: the envelope is not one to act on (bad magic, the old wire format, truncated,
    /// oversize, bad MAC, or it seals another [`Domain`](crate::Domain) than the receiver opens).
    MalformedEnvelope,
    /// 2002: the request plaintext is not a valid request of a supported version.
    MalformedRequest,
    /// 2003: no cluster of that name exists on this host.
    UnknownCluster,
    /// 2004: no command of that name exists in the cluster.
    UnknownCommand,
    /// 2005: an argument was rejected by the command's argument schema.
    InvalidArgument,
    /// 2006: no request of the caller's with that id is running (or kept) on the host: it ended,
    /// it never came, or another client sent it.
    UnknownRequest,
    /// 3001: the WebAssembly module trapped.
    Trapped,
    /// 3002: the module ran out of time (fuel or epoch deadline).
    TimeLimit,
    /// 3003: the module exceeded its memory limit.
    MemoryLimit,
    /// 3004: the module made a host call its grant does not allow.
    HostCallDenied,
    /// 3005: a host tool invoked on the module's behalf failed.
    HostToolFailed,
    /// 3006: the module returned an error of its own.
    ModuleError,
    /// 3007: the daemon is at its concurrency bound (or its replay window is full); retry later.
    Busy,
    /// 3008: the request's client cancelled it while it ran: the module was stopped and any
    /// host tool it was running killed with its process group.
    Cancelled,
    /// 9999: an internal error; details are in the daemon's log, never in the response.
    Internal,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: &[ErrorCode] = &[
        Self::Ok,
        Self::UnknownClient,
        Self::Replay,
        Self::Stale,
        Self::WrongHost,
        Self::Denied,
        Self::ApprovalPending,
        Self::ApprovalRefused,
        Self::MalformedEnvelope,
        Self::MalformedRequest,
        Self::UnknownCluster,
        Self::UnknownCommand,
        Self::InvalidArgument,
        Self::UnknownRequest,
        Self::Trapped,
        Self::TimeLimit,
        Self::MemoryLimit,
        Self::HostCallDenied,
        Self::HostToolFailed,
        Self::ModuleError,
        Self::Busy,
        Self::Cancelled,
        Self::Internal,
    ];

    /// The stable number of this code.
    #[must_use]
    pub fn as_u16(self) -> u16 {
        match self {
            Self::Ok => 0,
            Self::UnknownClient => 1001,
            Self::Replay => 1003,
            Self::Stale => 1004,
            Self::WrongHost => 1005,
            Self::Denied => 1010,
            Self::ApprovalPending => 1020,
            Self::ApprovalRefused => 1021,
            Self::MalformedEnvelope => 2001,
            Self::MalformedRequest => 2002,
            Self::UnknownCluster => 2003,
            Self::UnknownCommand => 2004,
            Self::InvalidArgument => 2005,
            Self::UnknownRequest => 2006,
            Self::Trapped => 3001,
            Self::TimeLimit => 3002,
            Self::MemoryLimit => 3003,
            Self::HostCallDenied => 3004,
            Self::HostToolFailed => 3005,
            Self::ModuleError => 3006,
            Self::Busy => 3007,
            Self::Cancelled => 3008,
            Self::Internal => 9999,
        }
    }

    /// The code with number `n`, or `None` if `n` is not a known code.
    #[must_use]
    pub fn from_u16(n: u16) -> Option<Self> {
        Self::ALL.iter().copied().find(|code| code.as_u16() == n)
    }

    /// A short lowercase summary, e.g. `"denied by policy"`.
    #[must_use]
    pub fn summary(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::UnknownClient => "unknown client",
            Self::Replay => "replayed request",
            Self::Stale => "stale request",
            Self::WrongHost => "wrong host",
            Self::Denied => "denied by policy",
            Self::ApprovalPending => "waiting for approval",
            Self::ApprovalRefused => "not approved",
            Self::MalformedEnvelope => "malformed envelope",
            Self::MalformedRequest => "malformed request",
            Self::UnknownCluster => "unknown cluster",
            Self::UnknownCommand => "unknown command",
            Self::InvalidArgument => "invalid argument",
            Self::UnknownRequest => "unknown request",
            Self::Trapped => "module trapped",
            Self::TimeLimit => "time limit exceeded",
            Self::MemoryLimit => "memory limit exceeded",
            Self::HostCallDenied => "host call denied",
            Self::HostToolFailed => "host tool failed",
            Self::ModuleError => "module returned error",
            Self::Busy => "daemon busy",
            Self::Cancelled => "cancelled by the client",
            Self::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.as_u16(), self.summary())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.as_u16())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = u16::deserialize(deserializer)?;
        Self::from_u16(n).ok_or_else(|| serde::de::Error::custom(format_args!("unknown error code {n}")))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_code_round_trips_through_its_number() {
        for &code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_u16(code.as_u16()), Some(code), "{code:?}");
        }
    }

    #[test]
    fn numbers_are_unique_sorted_and_pinned() {
        let numbers: Vec<u16> = ErrorCode::ALL.iter().map(|c| c.as_u16()).collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "ALL must be in numeric order"
        );
        assert_eq!(numbers.iter().collect::<HashSet<_>>().len(), numbers.len());
        assert_eq!(
            numbers,
            [
                0, 1001, 1003, 1004, 1005, 1010, 1020, 1021, 2001, 2002, 2003, 2004, 2005, 2006, 3001, 3002,
                3003, 3004, 3005, 3006, 3007, 3008, 9999
            ]
        );
    }

    #[test]
    fn unknown_numbers_are_rejected() {
        for n in [1, 1000, 1002, 2000, 2007, 3000, 3009, 9998, u16::MAX] {
            assert_eq!(ErrorCode::from_u16(n), None, "{n}");
        }
    }

    #[test]
    fn display_shows_number_and_summary() {
        assert_eq!(ErrorCode::Denied.to_string(), "1010 denied by policy");
        assert_eq!(ErrorCode::Ok.to_string(), "0 ok");
        assert_eq!(ErrorCode::Internal.to_string(), "9999 internal error");
    }

    #[test]
    fn serde_uses_the_number() {
        for &code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).expect("serialize");
            assert_eq!(json, code.as_u16().to_string());
            assert_eq!(
                serde_json::from_str::<ErrorCode>(&json).expect("deserialize"),
                code
            );
        }
        assert!(serde_json::from_str::<ErrorCode>("1002").is_err());
        assert!(serde_json::from_str::<ErrorCode>("\"1010\"").is_err());
        assert!(serde_json::from_str::<ErrorCode>("-1").is_err());
        assert!(serde_json::from_str::<ErrorCode>("70000").is_err());
    }
}
