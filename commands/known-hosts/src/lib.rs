//! `known-hosts`: prints the host's SSH host public keys, one per line, sorted by type then key
//! data, as the host read them from its `ssh_host_*_key.pub` files (the comments left out):
//!
//! ```text
//! ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI…
//! ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKKLn/q97bFQU3fk4Kir6HIV21r27Mp6Hs8MEGbcvL4n
//! ```
//!
//! `sesame known-hosts HOST` runs it and puts the name ssh looks for in front of each line: a
//! `known_hosts` file's lines, for OpenSSH's `KnownHostsCommand`. A host with no key to serve
//! is an error, not an empty answer. Takes no arguments.
//!
//! Needs the hostkeys capability.

use sesame_guest::hostkeys::{self, HostKey};
use sesame_guest::{Command, Invocation};

const USAGE: &str = "known-hosts";

/// The `known-hosts` command.
#[derive(Debug)]
pub struct KnownHosts;

impl Command for KnownHosts {
    fn run(inv: Invocation) -> Result<String, String> {
        if let Some(extra) = inv.args.first() {
            return Err(format!("unexpected argument `{extra}` (usage: {USAGE})"));
        }
        let keys = hostkeys::list().map_err(|e| format!("cannot read the host keys: {e}"))?;
        render(&keys)
    }
}

sesame_guest::export_command!(KnownHosts);

/// One `TYPE KEY` line per key, in the host's order; an error when there is none.
fn render(keys: &[HostKey]) -> Result<String, String> {
    if keys.is_empty() {
        return Err("this host serves no SSH host key (see `sesamed configtest` there)".to_owned());
    }
    Ok(keys
        .iter()
        .map(|k| format!("{} {}", k.kind, k.key))
        .collect::<Vec<_>>()
        .join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sesame_guest::HostError;
    use sesame_guest::testing::{Call, FakeHost, invocation};

    const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIKKLn/q97bFQU3fk4Kir6HIV21r27Mp6Hs8MEGbcvL4n";
    const NISTP256: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBM44TwVzCFz65fzcjdOjTY5YUOaLLn/qvYM1/H6xyJ2lgyNqNc9Qt8vHrkVP1oByCE/IWUg1KVMXZMTKpLDvi34=";

    fn key(kind: &str, key: &str) -> HostKey {
        HostKey {
            kind: kind.into(),
            key: key.into(),
        }
    }

    #[test]
    fn prints_one_key_per_line_in_the_hosts_order() {
        let run = FakeHost::new()
            .hostkeys_list(|| {
                Ok(vec![
                    key("ecdsa-sha2-nistp256", NISTP256),
                    key("ssh-ed25519", ED25519),
                ])
            })
            .run::<KnownHosts>(invocation("alice", &[]));
        assert_eq!(
            run.output,
            Ok(format!("ecdsa-sha2-nistp256 {NISTP256}\nssh-ed25519 {ED25519}"))
        );
        assert_eq!(run.calls, [Call::HostkeysList]);
        assert!(run.logs.is_empty());
    }

    #[test]
    fn no_key_and_host_errors_are_errors() {
        let run = FakeHost::new()
            .hostkeys_list(|| Ok(Vec::new()))
            .run::<KnownHosts>(invocation("alice", &[]));
        assert_eq!(
            run.output,
            Err("this host serves no SSH host key (see `sesamed configtest` there)".into())
        );
        // Unscripted: denied, as by a daemon whose policy does not grant it.
        let run = FakeHost::new().run::<KnownHosts>(invocation("alice", &[]));
        assert_eq!(
            run.output,
            Err("cannot read the host keys: denied: not scripted in this test: hostkeys.list".into())
        );
        let run = FakeHost::new()
            .hostkeys_list(|| Err(HostError::Failed("the host keys could not be read".into())))
            .run::<KnownHosts>(invocation("alice", &[]));
        assert_eq!(
            run.output,
            Err("cannot read the host keys: failed: the host keys could not be read".into())
        );
    }

    #[test]
    fn arguments_are_refused_before_the_host_is_asked() {
        let run = FakeHost::new()
            .hostkeys_list(|| Ok(vec![key("ssh-ed25519", ED25519)]))
            .run::<KnownHosts>(invocation("alice", &["web1"]));
        assert_eq!(
            run.output,
            Err("unexpected argument `web1` (usage: known-hosts)".into())
        );
        assert_eq!(run.calls, []);
    }
}
