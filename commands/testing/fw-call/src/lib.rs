//! Test module: asks for a firewall opening (192.0.2.1, tcp/22, 60 s) and returns
//! `grant=<id>`. In a cluster without the firewall capability the daemon must refuse to link
//! it, or refuse the call.

use sesame_guest::firewall::{self, Proto, Rule};
use sesame_guest::{Command, Invocation};

/// Calls `firewall::allow` once.
#[derive(Debug)]
pub struct FwCall;

impl Command for FwCall {
    fn run(_inv: Invocation) -> Result<String, String> {
        let rule = Rule {
            source: "192.0.2.1".to_string(),
            port: 22,
            proto: Proto::Tcp,
            ttl_secs: 60,
        };
        let grant_id = firewall::allow(&rule)?;
        Ok(format!("grant={grant_id}"))
    }
}

sesame_guest::export_command!(FwCall);
