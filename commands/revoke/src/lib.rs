//! `revoke [GRANT_ID]`: takes back one of the caller's grants before it ends, of any kind
//! (a firewall opening `fw-…`, a temporary key `key-…`, group membership `grp-…` or account
//! `acc-…`), or, without an id, every live grant the caller holds. One line per grant:
//!
//! ```text
//! revoked fw-0123456789abcdef
//! ```
//!
//! or `no live grants` when there was nothing to take back. Only the caller's own hold is
//! released: a change another client also holds stays until that hold ends. An id that is not
//! one of the caller's live grants is an error.
//!
//! Needs the grants interface, which clusters with the firewall or users capability have.

use fwtext::{NO_LIVE_GRANTS, check_usage};
use sesame_guest::grants;
use sesame_guest::{Command, HostError, Invocation};

const USAGE: &str = "revoke [GRANT_ID]";

/// The `revoke` command.
#[derive(Debug)]
pub struct Revoke;

impl Command for Revoke {
    fn run(inv: Invocation) -> Result<String, String> {
        let args = check_usage(&inv.args, &[], 1, USAGE)?;
        match args.positional(0) {
            Some(id) => revoke_one(id, grants::revoke),
            None => {
                let held = grants::list().map_err(|e| format!("cannot list your grants: {e}"))?;
                revoke_all(held.into_iter().map(|g| g.id), grants::revoke)
            }
        }
    }
}

sesame_guest::export_command!(Revoke);

/// Revokes grant `id` through `revoke` (the host's `grants::revoke`, or a test double).
fn revoke_one(id: &str, revoke: impl FnOnce(&str) -> Result<(), HostError>) -> Result<String, String> {
    if id.trim().is_empty() {
        return Err(format!("GRANT_ID is empty (usage: {USAGE})"));
    }
    match revoke(id) {
        Ok(()) => Ok(format!("revoked {id}")),
        // The host's word for an id that is not a live grant of this client.
        Err(HostError::Invalid(_)) => Err(format!("no live grant {id} of yours (it may have expired)")),
        Err(e) => Err(format!("cannot revoke {id}: {e}")),
    }
}

/// Revokes every grant in `ids`. A grant that expired since it was listed is closed already
/// and skipped; any other failure stops, naming the grants revoked before it.
fn revoke_all(
    ids: impl IntoIterator<Item = String>,
    mut revoke: impl FnMut(&str) -> Result<(), HostError>,
) -> Result<String, String> {
    let mut revoked = Vec::new();
    for id in ids {
        match revoke(&id) {
            Ok(()) => revoked.push(id),
            Err(HostError::Invalid(_)) => {}
            Err(e) if revoked.is_empty() => return Err(format!("cannot revoke {id}: {e}")),
            Err(e) => {
                return Err(format!(
                    "cannot revoke {id}: {e} (revoked before that: {})",
                    revoked.join(", ")
                ));
            }
        }
    }
    if revoked.is_empty() {
        return Ok(NO_LIVE_GRANTS.to_owned());
    }
    Ok(revoked
        .iter()
        .map(|id| format!("revoked {id}"))
        .collect::<Vec<_>>()
        .join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "fw-000000000000000a";
    const B: &str = "fw-000000000000000b";
    const C: &str = "fw-000000000000000c";

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn without_an_id_every_kind_the_caller_holds_is_taken_back() {
        use sesame_guest::grants::{ChangeKind, Held};
        use sesame_guest::testing::{Call, FakeHost, invocation};
        let held = |id: &str, kind| Held {
            id: id.into(),
            kind,
            what: String::new(),
            expires_at_ms: 1,
        };
        let listed = vec![
            held("grp-00000000000000c3", ChangeKind::Membership),
            held(A, ChangeKind::Opening),
            held("key-00000000000000d4", ChangeKind::Key),
        ];
        let run = FakeHost::new()
            .grants_list(move || Ok(listed.clone()))
            .grants_revoke(|_| Ok(()))
            .run::<Revoke>(invocation("dave", &[]));
        assert_eq!(
            run.output,
            Ok(format!(
                "revoked grp-00000000000000c3\nrevoked {A}\nrevoked key-00000000000000d4"
            ))
        );
        let revoked: Vec<&Call> = run.calls.iter().skip(1).collect();
        assert_eq!(
            revoked,
            [
                &Call::GrantsRevoke {
                    id: "grp-00000000000000c3".into()
                },
                &Call::GrantsRevoke { id: A.into() },
                &Call::GrantsRevoke {
                    id: "key-00000000000000d4".into()
                },
            ]
        );
    }

    #[test]
    fn one_grant() {
        assert_eq!(revoke_one(A, |_| Ok(())), Ok(format!("revoked {A}")));
        assert_eq!(
            revoke_one(A, |_| Err(HostError::Invalid("no live grant".into()))),
            Err(format!("no live grant {A} of yours (it may have expired)"))
        );
        assert_eq!(
            revoke_one(A, |_| Err(HostError::Denied("firewall not granted".into()))),
            Err(format!("cannot revoke {A}: denied: firewall not granted"))
        );
        assert_eq!(
            revoke_one(" ", |_| Ok(())),
            Err("GRANT_ID is empty (usage: revoke [GRANT_ID])".into())
        );
    }

    #[test]
    fn all_grants() {
        let mut asked = Vec::new();
        let out = revoke_all(ids(&[A, B]), |id| {
            asked.push(id.to_owned());
            Ok(())
        });
        assert_eq!(out, Ok(format!("revoked {A}\nrevoked {B}")));
        assert_eq!(asked, [A, B]);
    }

    #[test]
    fn none_to_revoke() {
        assert_eq!(revoke_all(ids(&[]), |_| Ok(())), Ok("no live grants".into()));
        // Everything expired between the list and the revokes.
        let expired = |_: &str| Err(HostError::Invalid("gone".into()));
        assert_eq!(revoke_all(ids(&[A]), expired), Ok("no live grants".into()));
    }

    #[test]
    fn expired_ones_are_skipped() {
        let out = revoke_all(ids(&[A, B, C]), |id| match id {
            B => Err(HostError::Invalid("gone".into())),
            _ => Ok(()),
        });
        assert_eq!(out, Ok(format!("revoked {A}\nrevoked {C}")));
    }

    #[test]
    fn a_failure_names_what_was_revoked() {
        let out = revoke_all(ids(&[A, B, C]), |id| match id {
            B => Err(HostError::Failed("nft exited 1".into())),
            _ => Ok(()),
        });
        assert_eq!(
            out,
            Err(format!(
                "cannot revoke {B}: failed: nft exited 1 (revoked before that: {A})"
            ))
        );
        let out = revoke_all(ids(&[A]), |_| Err(HostError::Denied("no".into())));
        assert_eq!(out, Err(format!("cannot revoke {A}: denied: no")));
    }
}
