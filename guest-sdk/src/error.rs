//! [`HostError`]: why a host call did not happen.

use std::fmt;

use crate::__private::bindings::sesame::host::types::HostError as WitHostError;

/// Why a call to the host ([`firewall`](crate::firewall), [`salt`](crate::salt),
/// [`users`](crate::users), [`exec`](crate::exec), [`hostkeys`](crate::hostkeys),
/// [`grants`](crate::grants)) did not
/// happen.
///
/// It converts into `String`, so `?` works inside [`Command::run`](crate::Command::run);
/// the message then reads like `denied: firewall not granted to group ops`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostError {
    /// The grant for this request does not cover the call.
    Denied(String),
    /// An argument is malformed (bad address, bad user name, ...).
    Invalid(String),
    /// The call was allowed and valid, but the system tool failed.
    Failed(String),
}

impl HostError {
    /// The host's explanation, without the kind prefix.
    pub fn message(&self) -> &str {
        match self {
            Self::Denied(m) | Self::Invalid(m) | Self::Failed(m) => m,
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Self::Denied(_) => "denied",
            Self::Invalid(_) => "invalid",
            Self::Failed(_) => "failed",
        };
        write!(f, "{kind}: {}", self.message())
    }
}

impl std::error::Error for HostError {}

impl From<HostError> for String {
    fn from(e: HostError) -> Self {
        e.to_string()
    }
}

impl From<WitHostError> for HostError {
    fn from(e: WitHostError) -> Self {
        match e {
            WitHostError::Denied(m) => Self::Denied(m),
            WitHostError::Invalid(m) => Self::Invalid(m),
            WitHostError::Failed(m) => Self::Failed(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_prefixes_the_kind() {
        assert_eq!(
            HostError::Denied("no firewall grant".into()).to_string(),
            "denied: no firewall grant"
        );
        assert_eq!(
            HostError::Invalid("bad ip `x`".into()).to_string(),
            "invalid: bad ip `x`"
        );
        assert_eq!(
            HostError::Failed("nft exited 1".into()).to_string(),
            "failed: nft exited 1"
        );
    }

    #[test]
    fn converts_into_the_run_error() {
        fn run() -> Result<String, String> {
            Err(HostError::Denied("nope".into()))?
        }
        assert_eq!(run(), Err("denied: nope".to_string()));
    }

    #[test]
    fn converts_from_the_wit_variant() {
        assert_eq!(
            HostError::from(WitHostError::Invalid("x".into())),
            HostError::Invalid("x".into())
        );
        assert_eq!(HostError::from(WitHostError::Failed("y".into())).message(), "y");
    }
}
