//! The host side of the `hostkeys` WIT interface: the call is counted and checked against the
//! request's grant, and only then are the key files read ([`super::HostKeys::list`]). Files
//! skipped go to the daemon log, never to the module.

use crate::host::bindings::sesame::host::hostkeys;
use crate::host::{CallContext, HostFault};

impl hostkeys::Host for CallContext {
    fn list(&mut self) -> Result<Vec<hostkeys::HostKey>, HostFault> {
        self.enter("hostkeys.list")?;
        let Some(service) = self.services.hostkeys.clone() else {
            return Err(self.deny("hostkeys.list: this host does not serve its host keys".to_owned()));
        };
        if !self.grant.hostkeys.list {
            return Err(self.deny("hostkeys.list: the grant does not allow reading the host keys".to_owned()));
        }
        match service.list() {
            Ok(listing) => {
                for (file, why) in &listing.skipped {
                    tracing::warn!(request = %self.request_id, "hostkeys.list: {} {why}: skipped", file.display());
                }
                Ok(listing
                    .keys
                    .iter()
                    .map(|key| hostkeys::HostKey {
                        kind: key.kind().to_owned(),
                        key: key.key().to_owned(),
                    })
                    .collect())
            }
            Err(e) => {
                tracing::error!(request = %self.request_id, "hostkeys.list: {e}");
                Err(self
                    .failed("hostkeys.list: the host keys could not be read (see the daemon log)".to_owned()))
            }
        }
    }
}
