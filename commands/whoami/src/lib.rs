//! `whoami`: reports the request as the daemon sees it, one `key=value` line per field:
//!
//! ```text
//! client=alice
//! groups=ops,dev
//! source=192.0.2.7
//! cluster=demo
//! command=whoami
//! id=5f0c…
//! ```
//!
//! `groups=` is empty when the client has no groups; `source=-` when the transport saw no
//! address (SQS). Logs one info line.

use sesame_guest::{Command, Invocation, log};

/// The `whoami` command.
#[derive(Debug)]
pub struct Whoami;

impl Command for Whoami {
    fn run(inv: Invocation) -> Result<String, String> {
        log::info(&format!("whoami for client {}", inv.client));
        Ok(report(&inv))
    }
}

sesame_guest::export_command!(Whoami);

fn report(inv: &Invocation) -> String {
    format!(
        "client={}\ngroups={}\nsource={}\ncluster={}\ncommand={}\nid={}",
        inv.client,
        inv.groups.join(","),
        inv.source_ip.as_deref().unwrap_or("-"),
        inv.cluster,
        inv.command,
        inv.id,
    )
}
