//! The host side of the `grants` WIT interface: each call is counted, acts only for the key
//! that sealed the request, and is answered by the capabilities that keep the changes.

use crate::capability::{HeldKind, ReleaseError};
use crate::host::bindings::sesame::host::grants;
use crate::host::{CallContext, HostError, HostFault};

impl grants::Host for CallContext {
    fn list(&mut self) -> Result<Vec<grants::Held>, HostFault> {
        self.enter("grants.list")?;
        let key = self.holder_key("grants.list")?;
        let (held, failed) = self.services.holds(&key, crate::now_ms());
        if !failed.is_empty() {
            for (capability, why) in &failed {
                tracing::error!(request = %self.request_id, "grants.list: {capability}: {why}");
            }
            let names: Vec<&str> = failed.iter().map(|(c, _)| *c).collect();
            return Err(self.failed(format!(
                "grants.list: the {} grants could not be read (see the daemon log)",
                names.join(" and ")
            )));
        }
        Ok(held
            .into_iter()
            .map(|h| grants::Held {
                id: h.id,
                kind: match h.kind {
                    HeldKind::Opening => grants::ChangeKind::Opening,
                    HeldKind::Key => grants::ChangeKind::Key,
                    HeldKind::Membership => grants::ChangeKind::Membership,
                    HeldKind::Account => grants::ChangeKind::Account,
                },
                what: h.what,
                expires_at_ms: h.expires_ms,
            })
            .collect())
    }

    fn revoke(&mut self, id: String) -> Result<(), HostFault> {
        self.enter("grants.revoke")?;
        let key = self.holder_key("grants.revoke")?;
        match self.services.release(&key, &id, crate::now_ms()) {
            Ok(()) => {
                self.effect(format!("grants.revoke {id}: released"));
                Ok(())
            }
            Err(ReleaseError::NotHeld(_)) => {
                Err(HostError::Invalid(format!("no live grant {id} is held by {}", self.client)).into())
            }
            Err(ReleaseError::Failed(why)) => {
                tracing::error!(request = %self.request_id, "grants.revoke {id}: {why}");
                self.effect(format!("grants.revoke {id}: failed (see the daemon log)"));
                Err(self.failed(format!(
                    "grants.revoke {id}: it could not be taken back now (see the daemon log)"
                )))
            }
        }
    }
}

impl CallContext {
    /// The key whose holds a call acts on, or a refusal when the request has none (nothing
    /// could hold anything).
    fn holder_key(&mut self, call: &str) -> Result<sesame_proto::PublicKey, HostFault> {
        match self.client_key {
            Some(key) => Ok(key),
            None => Err(self.deny(format!("{call}: the request has no client key"))),
        }
    }
}
