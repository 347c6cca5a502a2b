//! What `sesame` prints when something fails: a `sesame: …` line and, where one helps, a
//! `hint: …` line, coloured only on a terminal without `NO_COLOR`. The hints live in one table
//! per kind of failure: the daemon's error codes, and this client's own errors.

use std::error::Error;

use anstyle::{AnsiColor, Style};

use sesame_proto::ErrorCode;

use crate::home::HomeError;
use crate::quic::ClientError;
use crate::ssh_proxy::ResolveError;

/// Writes `sesame:` error lines and their hints to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Diagnostics {
    colour: bool,
}

impl Diagnostics {
    /// Colours as anstream decides for standard error: on a terminal that has them, unless
    /// `NO_COLOR` is set and not empty (<https://no-color.org>) or `CLICOLOR=0`; anywhere with
    /// `CLICOLOR_FORCE` (and no `NO_COLOR`).
    pub fn from_env() -> Self {
        Self::new(anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never)
    }

    /// Colours, or not.
    pub fn new(colour: bool) -> Self {
        Self { colour }
    }

    /// Prints `message` (and `hint`, if any) to standard error.
    pub fn error(self, message: &str, hint: Option<&str>) {
        eprint!("{}", self.format(message, hint));
    }

    /// Prints `sesame: MESSAGE` to standard error, uncoloured: information, not an error.
    pub fn note(self, message: &str) {
        eprintln!("sesame: {}", escape_controls(message));
    }

    /// The text [`error`](Self::error) prints: `sesame: MESSAGE` and `hint: HINT`, each line
    /// ending in a newline. Control characters in the message (it may quote a host's answer)
    /// are escaped, so a host cannot drive the terminal.
    pub fn format(self, message: &str, hint: Option<&str>) -> String {
        let (error, hint_style) = if self.colour {
            (ERROR, HINT)
        } else {
            (Style::new(), Style::new())
        };
        let mut text = format!("{error}sesame:{error:#} {}\n", escape_controls(message));
        if let Some(hint) = hint {
            text.push_str(&format!(
                "{hint_style}hint:{hint_style:#} {}\n",
                escape_controls(hint)
            ));
        }
        text
    }
}

/// How `sesame:` looks on an error line, and `hint:` on its hint.
const ERROR: Style = AnsiColor::Red.on_default().bold();
const HINT: Style = AnsiColor::Cyan.on_default().bold();

/// What to do about an error code a host answered with; `None` when its message says it all.
pub fn code_hint(code: ErrorCode) -> Option<&'static str> {
    code_entry(code).flatten()
}

/// What to do about a host's error answer: as [`code_hint`], except for a denial that only
/// wants a reason (the stock policy's words: "… needs a reason"), which the client can give.
pub fn answer_hint(code: ErrorCode, message: &str) -> Option<&'static str> {
    if code == ErrorCode::Denied && message.contains(" needs a reason") {
        return Some(
            "say why with `sesame run --reason TEXT` (a ticket id, a sentence); the message shows              what the host's policy wants",
        );
    }
    code_hint(code)
}

/// The hint for a local error: the first one in `error`'s chain of causes that has one.
pub fn error_hint(error: &(dyn Error + 'static)) -> Option<&'static str> {
    let mut next = Some(error);
    while let Some(e) = next {
        let hint = if let Some(e) = e.downcast_ref::<HomeError>() {
            home_hint(e)
        } else if let Some(e) = e.downcast_ref::<ClientError>() {
            client_hint(e)
        } else if let Some(e) = e.downcast_ref::<ResolveError>() {
            resolve_hint(e)
        } else {
            None
        };
        if hint.is_some() {
            return hint;
        }
        next = e.source();
    }
    None
}

/// What to do when no answer came.
pub fn client_hint(error: &ClientError) -> Option<&'static str> {
    match error {
        ClientError::Resolve(_) => {
            Some("check the host's address (`sesame host list`) and this machine's DNS")
        }
        ClientError::CertMismatch { .. } => Some(
            "the host's certificate changed (a reinstalled host, a new identity) or something else \
             answers at its address: ask its operator for `sesamed show`, and only if it prints the \
             new fingerprint, re-pin: `sesame host remove NAME`, then `sesame host add NAME … \
             --cert-sha256 NEW`",
        ),
        ClientError::Connection { .. } | ClientError::Timeout(_) => Some(NO_ANSWER),
        ClientError::NoAnswer => Some(
            "this client's key is not enrolled there (or was removed): its operator can check with \
             `sesamed client list`; your key is `sesame key show`. A sesamed older than this client \
             (wire format SSM1) answers nothing either: upgrade both sides",
        ),
        ClientError::NoRoute(_) => None,
        ClientError::Sqs(_) => Some(
            "check the AWS credentials and region (the standard AWS chain, or the host's \
             --sqs-profile/--sqs-region) and that the queue exists; `sesame key reply-queue` names \
             this key's reply queue for its IAM policy",
        ),
        ClientError::BadResponse(_) => {
            Some("the answer could not be opened: check the pinned host key against `sesamed show`")
        }
        ClientError::WrongId { .. } => None,
    }
}

/// The hint for a problem with the client's own files.
pub fn home_hint(error: &HomeError) -> Option<&'static str> {
    match error {
        HomeError::NoKey(_) => Some(
            "create one with `sesame keygen` and give the printed key to the host's operator \
             (`sesamed client add`)",
        ),
        HomeError::UnknownHost(_) => Some(PIN_A_HOST),
        HomeError::UnknownGroup(_) => {
            Some("`sesame group list` shows the groups; `sesame group set NAME HOST,HOST` defines one")
        }
        HomeError::NoHome
        | HomeError::Io { .. }
        | HomeError::Invalid { .. }
        | HomeError::KeyExists(_)
        | HomeError::HostExists(_) => None,
    }
}

/// The hint when `sesame ssh-proxy` cannot tell which pinned host ssh means.
pub fn resolve_hint(error: &ResolveError) -> Option<&'static str> {
    match error {
        ResolveError::NoMatch(_) => Some(
            "pin the host under that name (`sesame host add NAME --addr ADDR:PORT --key KEY \
             --cert-sha256 FP`, from `sesamed show` on the host), or give ssh-proxy a pinned name: \
             `sesame host list`",
        ),
        ResolveError::Ambiguous { .. } => Some(
            "pass a pinned name instead: in ~/.ssh/config, `ProxyCommand sesame ssh-proxy %n %p` \
             (%n is the name given to ssh) with a Host block per pinned name",
        ),
    }
}

/// Why no answer may have come; the daemon says nothing to keys it does not know.
const NO_ANSWER: &str = "the host may be down, its QUIC port (UDP) blocked on the way, or this client's key not \
     enrolled there (sesamed stays silent for keys it does not know: ask its operator to check \
     `sesamed client list` for `sesame key show`); if the host rotated its key and the grace \
     period is over, re-pin its new key from `sesamed show` (`sesame host repin NAME --key \
     KEY:NEXT_SHA256`)";

const PIN_A_HOST: &str = "pin it with `sesame host add NAME --addr ADDR:PORT --key KEY:NEXT_SHA256 --cert-sha256 FP`, \
     using what `sesamed show` prints on the host; `sesame host list` shows the pinned ones";

/// The hint table. `ErrorCode` is non-exhaustive (new codes may come), so a code this table does
/// not know yet falls to the last arm and gives `None` (no entry); the unit test
/// `every_error_code_has_an_entry` fails until it has one, a hint or an explicit `Some(None)`.
fn code_entry(code: ErrorCode) -> Option<Option<&'static str>> {
    Some(match code {
        ErrorCode::Ok => None,
        ErrorCode::UnknownClient => Some(
            "the host does not know this client's key: give `sesame key show` to its operator \
             (`sesamed client add`)",
        ),
        ErrorCode::Replay => {
            Some("this request was seen before: run the command again (every run is a new request)")
        }
        ErrorCode::Stale => Some(
            "this machine's clock and the host's differ by more than the host accepts (60 s by \
             default): check both with `timedatectl` (\"System clock synchronized: yes\") or \
             `chronyc tracking`",
        ),
        ErrorCode::WrongHost => Some(
            "the host's configured name differs from the one pinned here: re-pin it with \
             `--host-name` set to the `host:` that `sesamed show` prints there",
        ),
        ErrorCode::Denied => Some(
            "the host's policy does not let this client's groups run that: ask the host's security \
             team (they can see why with `sesamed policy eval --explain`)",
        ),
        ErrorCode::ApprovalPending => Some(
            "the host's policy wants others to approve this first: they see it with `sesame \
             pending HOST` and approve it with `sesame approve HOST ID`; `sesame result HOST ID` \
             fetches the answer",
        ),
        ErrorCode::ApprovalRefused => Some(
            "the request will not run (rejected, or it expired unapproved): ask again, and tell the \
             approvers why (`--reason`)",
        ),
        ErrorCode::MalformedEnvelope => {
            Some("the host could not open the request: check the pinned host key against `sesamed show`")
        }
        ErrorCode::MalformedRequest => Some(
            "the host did not understand the request: `sesame` and `sesamed` may be too far apart \
             in version (`sesame --version`, `sesamed --version`)",
        ),
        ErrorCode::UnknownCluster => Some(
            "the host has no cluster of that name: check the CLUSTER:: prefix, or ask its operator \
             which clusters it serves",
        ),
        ErrorCode::UnknownCommand => Some(
            "check the command's name (as CLUSTER::COMMAND when several clusters have it); the \
             host's operator can tell you what its clusters serve, and its policy what you may run",
        ),
        ErrorCode::InvalidArgument => {
            Some("an argument was refused before the command ran: the message says which")
        }
        ErrorCode::UnknownRequest => Some(
            "no request of yours with that id runs on the host now: it may have ended (its answer \
             went to the client that sent it), or the id is another client's",
        ),
        ErrorCode::Trapped => Some(
            "the command crashed on the host (a bug in its module); the host's operator finds the \
             details in sesamed's log",
        ),
        ErrorCode::TimeLimit => Some(
            "the command ran out of time on the host; its limit comes from the policy's grant and \
             the host's [limits] timeout_ms",
        ),
        ErrorCode::MemoryLimit => Some(
            "the command needed more memory, or printed more, than the host allows (64 KiB of \
             output by default): ask for less, or ask the operator about [limits]",
        ),
        ErrorCode::HostCallDenied => Some(
            "the command asked for more than your grant allows (a port, an address, a longer ttl, \
             an account…; the message says what): stay within it, or ask the host's security team",
        ),
        ErrorCode::HostToolFailed => Some(
            "a tool on the host (ufw, nft, useradd, salt-call…) failed; the host's operator finds \
             its output in sesamed's log (`journalctl -u sesamed`)",
        ),
        // The command's own error message: it says what went wrong better than any hint.
        ErrorCode::ModuleError => None,
        ErrorCode::Busy => Some("the host is running as many requests as it allows: try again in a moment"),
        ErrorCode::Cancelled => Some(
            "the request was stopped on the host at its client's cancel; what it changed before \
             that stays (the host's audit log has its effects)",
        ),
        ErrorCode::Internal => Some(
            "something failed inside sesamed; the host's operator finds the details in its log \
             (`journalctl -u sesamed`)",
        ),
        _ => return None,
    })
}

/// `text` with control characters other than newline and tab written as escapes (`\u{1b}`).
fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_error_code_has_an_entry() {
        for &code in ErrorCode::ALL {
            assert!(
                code_entry(code).is_some(),
                "{code:?} has no entry in the hint table: add a hint, or `None` on purpose"
            );
        }
    }

    #[test]
    fn every_error_but_success_and_the_modules_own_has_a_hint() {
        for &code in ErrorCode::ALL {
            let expected = !matches!(code, ErrorCode::Ok | ErrorCode::ModuleError);
            assert_eq!(code_hint(code).is_some(), expected, "{code:?}");
        }
        assert!(code_hint(ErrorCode::Denied).is_some_and(|h| h.contains("sesamed policy eval")));
        assert!(code_hint(ErrorCode::Stale).is_some_and(|h| h.contains("timedatectl")));
        assert!(
            answer_hint(ErrorCode::Denied, "accounts::key-add needs a reason: say why")
                .is_some_and(|h| h.contains("--reason"))
        );
        assert_eq!(
            answer_hint(ErrorCode::Denied, "no group grants it"),
            code_hint(ErrorCode::Denied)
        );
    }

    #[test]
    fn lines_start_with_sesame_and_colour_only_when_asked() {
        let plain = Diagnostics::new(false).format("web1: error 1010", Some("ask"));
        assert_eq!(plain, "sesame: web1: error 1010\nhint: ask\n");
        assert_eq!(Diagnostics::new(false).format("oops", None), "sesame: oops\n");
        let coloured = Diagnostics::new(true).format("web1: error 1010", Some("ask"));
        assert_eq!(
            coloured,
            "\x1b[1m\x1b[31msesame:\x1b[0m web1: error 1010\n\x1b[1m\x1b[36mhint:\x1b[0m ask\n"
        );
    }

    #[test]
    fn a_hosts_control_characters_are_escaped() {
        let text = Diagnostics::new(false).format("web1: \x1b[2Jgone\r\n\tnext", None);
        assert_eq!(text, "sesame: web1: \\u{1b}[2Jgone\\r\n\tnext\n");
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn local_errors_find_their_hint_through_the_cause_chain() {
        let no_key = anyhow::Error::new(HomeError::NoKey(PathBuf::from("/x/id.key")));
        assert!(error_hint(no_key.as_ref()).is_some_and(|h| h.contains("sesame keygen")));
        let wrapped = no_key.context("loading the key");
        assert!(error_hint(wrapped.as_ref()).is_some_and(|h| h.contains("sesame keygen")));
        let unknown = HomeError::UnknownHost("web9".into());
        assert!(error_hint(&unknown).is_some_and(|h| h.contains("sesame host add")));
        let mismatch = ClientError::CertMismatch {
            pinned: "a".repeat(64),
            presented: "b".repeat(64),
        };
        assert!(error_hint(&mismatch).is_some_and(|h| h.contains("sesamed show")));
        let timeout = ClientError::Timeout(Duration::from_secs(30));
        assert!(error_hint(&timeout).is_some_and(|h| h.contains("UDP") && h.contains("not")));
        assert!(
            error_hint(&ResolveError::NoMatch("x".into())).is_some_and(|h| h.contains("sesame host add"))
        );
        let plain = std::io::Error::other("nothing known");
        assert_eq!(error_hint(&plain), None);
    }
}
