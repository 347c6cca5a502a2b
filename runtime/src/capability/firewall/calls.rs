//! The host side of the `firewall` WIT interface: every call is counted, checked against the
//! request's grant and only then handed to the [`Firewall`] service.

use std::sync::Arc;

use super::{self as fw, Firewall, FirewallError, GrantId, Revoker};
use crate::host::bindings::sesame::host::firewall;
use crate::host::{CallContext, HostError, HostFault};

impl firewall::Host for CallContext {
    fn allow(&mut self, r: firewall::Rule) -> Result<String, HostFault> {
        self.enter("firewall.allow")?;
        let (service, key) = self.firewall_and_key("firewall.allow")?;
        let source = r
            .source
            .parse::<fw::Source>()
            .map_err(|e| HostError::Invalid(e.to_string()))?;
        let proto = match r.proto {
            firewall::Proto::Tcp => fw::Proto::Tcp,
            firewall::Proto::Udp => fw::Proto::Udp,
        };
        let rule = fw::Rule::new(source, r.port, proto).map_err(|e| HostError::Invalid(e.to_string()))?;
        if let Err(why) = fw::check_grant(&self.grant.firewall, self.source_ip, &rule, r.ttl_secs) {
            return Err(self.deny(format!("firewall.allow {rule}: {why}")));
        }
        let opened = service
            .allow(crate::now_ms(), &key, &self.request_id, rule, r.ttl_secs)
            .map_err(|e| self.firewall_failure("firewall.allow", &rule.to_string(), e))?;
        tracing::info!(request = %self.request_id, client = %self.client, grant = %opened.id, %rule, extended = opened.extended, "firewall opening");
        Ok(opened.id.to_string())
    }

    fn revoke(&mut self, grant_id: String) -> Result<(), HostFault> {
        self.enter("firewall.revoke")?;
        let (service, key) = self.firewall_and_key("firewall.revoke")?;
        let id: GrantId = grant_id
            .parse()
            .map_err(|e: fw::RuleError| HostError::Invalid(e.to_string()))?;
        service
            .revoke(crate::now_ms(), Revoker::Client(&key), &id)
            .map_err(|e| self.firewall_failure("firewall.revoke", id.as_str(), e))?;
        Ok(())
    }

    fn list(&mut self) -> Result<Vec<firewall::Grant>, HostFault> {
        self.enter("firewall.list")?;
        let (service, key) = self.firewall_and_key("firewall.list")?;
        let views = service
            .list(crate::now_ms(), Some(&key))
            .map_err(|e| self.firewall_failure("firewall.list", "", e))?;
        Ok(views
            .into_iter()
            .map(|v| firewall::Grant {
                id: v.id.to_string(),
                source: v.rule.source.to_string(),
                port: v.rule.port,
                proto: match v.rule.proto {
                    fw::Proto::Tcp => firewall::Proto::Tcp,
                    fw::Proto::Udp => firewall::Proto::Udp,
                },
                expires_at_ms: v.expires_ms,
            })
            .collect())
    }
}

impl CallContext {
    /// The firewall service and the key the caller's holds belong to, or a refusal when this
    /// host has no firewall (or the request has no client key: nothing could hold it).
    fn firewall_and_key(
        &mut self,
        call: &str,
    ) -> Result<(Arc<Firewall>, sesame_proto::PublicKey), HostFault> {
        let service = self.firewall_service(call)?;
        match self.client_key {
            Some(key) => Ok((service, key)),
            None => Err(self.deny(format!("{call}: the request has no client key"))),
        }
    }

    /// Turns a firewall service error into what the module sees: a ceiling or a client no
    /// longer enrolled is a refusal, an unknown grant is an invalid argument, and anything else
    /// a failure whose detail stays in the daemon log. A failure after which the rule may be in
    /// the firewall is also recorded as an effect, for the request's audit record.
    fn firewall_failure(&mut self, call: &str, what: &str, e: FirewallError) -> HostFault {
        match e {
            FirewallError::Limit(why) => self.deny(format!("{call} {what}: {why}")),
            FirewallError::NotEnrolled => self.deny(format!("{call} {what}: {e}")),
            FirewallError::NotFound(id) => {
                HostError::Invalid(format!("no live grant {id} held by {}", self.client)).into()
            }
            other => {
                tracing::error!(request = %self.request_id, "{call} {what}: {other}");
                if let FirewallError::Unsettled { grant, .. } = &other {
                    self.effect(format!(
                        "{call} {what}: the firewall failed mid-change; grant {grant} is kept until its rule is confirmed closed"
                    ));
                }
                self.failed(format!(
                    "{call} {what}: the firewall could not be changed (see the daemon log)"
                ))
            }
        }
    }
}

impl CallContext {
    /// The firewall service, or a refusal when this host has none.
    fn firewall_service(&mut self, call: &str) -> Result<Arc<Firewall>, HostFault> {
        match &self.services.firewall {
            Some(f) => Ok(Arc::clone(f)),
            None => Err(self.deny(format!("{call}: this host has no firewall back end"))),
        }
    }
}
