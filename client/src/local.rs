//! The `sesame` subcommands that touch only this client's directory: its key (`keygen`, `key`),
//! its pinned hosts and their labels (`host`), groups (`group`) and the receipts it keeps
//! (`receipts`). Nothing here sends a request: `main.rs` has the commands that ask hosts.

use crate::cli::{Command, GroupCommand, HostCommand, KeyCommand};
use crate::diagnostic::Diagnostics;
use crate::labels::{LabelEdit, Labels};
use crate::pin::parse_pin;
use crate::{ClientHome, HostEntry, SqsRoute};

/// Runs `command`, one of those above; anything else is a mistake of the caller's.
pub fn run(home: &ClientHome, command: Command, diagnostics: Diagnostics) -> anyhow::Result<()> {
    match command {
        Command::Keygen => {
            let key = home.keygen()?;
            println!("wrote {}", home.dir().join(crate::home::KEY_FILE).display());
            println!("{}", key.public_key());
        }
        Command::Key(KeyCommand::Show { json: false }) => println!("{}", home.key()?.public_key()),
        Command::Key(KeyCommand::Show { json: true }) => {
            let key = home.key()?.public_key();
            let v = serde_json::json!({
                "public_key": key.to_string(),
                "reply_queue": sesame_sqs::reply_queue(&key),
            });
            println!("{v}");
        }
        Command::Key(KeyCommand::Rotate { finish: false }) => {
            let (staged, fresh) = home.stage_key()?;
            let path = home.dir().join(crate::home::NEXT_KEY_FILE);
            if fresh {
                println!("wrote {}", path.display());
            } else {
                println!("already staged in {}", path.display());
            }
            println!("{}", staged.public_key());
            diagnostics.note(&format!(
                "your current key stays in use. On each host: sesamed client rekey NAME --key {}; \
                 then: sesame key rotate --finish",
                staged.public_key()
            ));
        }
        Command::Key(KeyCommand::Rotate { finish: true }) => {
            let (old, new) = home.finish_rotation()?;
            println!("{new}");
            diagnostics.note(&format!(
                "now using {new}; the old key {old} is kept in {}",
                home.dir().join(crate::home::PREVIOUS_KEY_FILE).display()
            ));
        }
        Command::Key(KeyCommand::ReplyQueue) => {
            println!("{}", sesame_sqs::reply_queue(&home.key()?.public_key()));
        }
        Command::Host(HostCommand::Add {
            name,
            key,
            next_key_sha256,
            addr,
            cert_sha256,
            sqs_queue,
            sqs_region,
            sqs_endpoint,
            sqs_profile,
            host_name,
            labels,
        }) => {
            let pin = parse_pin(&key, next_key_sha256.as_deref()).map_err(anyhow::Error::msg)?;
            if addr.is_none() && sqs_queue.is_none() {
                anyhow::bail!("give --addr and --cert-sha256 (QUIC), --sqs-queue (SQS), or both");
            }
            home.add_host(
                &name,
                HostEntry {
                    addr,
                    key: pin.key,
                    next_key_sha256: pin.next_key_sha256,
                    cert_sha256,
                    name: host_name,
                    sqs: sqs_queue.map(|queue| SqsRoute {
                        queue,
                        region: sqs_region,
                        endpoint_url: sqs_endpoint,
                        profile: sqs_profile,
                    }),
                    labels: {
                        let mut set = Labels::default();
                        set.apply(&labels.into_iter().map(LabelEdit::Set).collect::<Vec<_>>());
                        set
                    },
                },
            )?;
            println!("pinned {name}");
            if pin.next_key_sha256.is_none() {
                diagnostics.note(&format!(
                    "{name} is pinned without the digest of its next key, so this client will not \
                     follow its key rotations by itself; `sesamed show` on the host prints \
                     KEY:NEXT_SHA256 for --key (or `sesame host repin {name}` later)"
                ));
            }
        }
        Command::Host(HostCommand::Repin {
            name,
            key,
            next_key_sha256,
        }) => {
            let pin = parse_pin(&key, next_key_sha256.as_deref()).map_err(anyhow::Error::msg)?;
            home.set_pin(&name, pin)?;
            println!("re-pinned {name}");
            if pin.next_key_sha256.is_none() {
                diagnostics.note(&format!(
                    "{name} has no next-key digest pinned: its key rotations will not be followed by themselves"
                ));
            }
        }
        Command::Host(HostCommand::List { json: true }) => {
            for (name, h) in home.hosts()? {
                println!("{}", h.to_json(&name));
            }
        }
        Command::Host(HostCommand::List { json: false }) => {
            for (name, h) in home.hosts()? {
                let mut routes = Vec::new();
                if let Some((addr, fp)) = h.quic() {
                    routes.push(format!("quic {addr} cert {fp}"));
                }
                if let Some(sqs) = &h.sqs {
                    routes.push(format!("sqs {}", sqs.queue));
                }
                let next = h
                    .next_key_sha256
                    .map_or_else(|| "next -".to_owned(), |d| format!("next {d}"));
                if !h.labels.is_empty() {
                    routes.push(format!("labels {}", h.labels));
                }
                println!("{name}\t{}\t{next}\t{}", h.key, routes.join("\t"));
            }
        }
        Command::Host(HostCommand::Label { name, edits }) => {
            let labels = if edits.is_empty() {
                home.host(&name)?.labels
            } else {
                home.edit_labels(&name, &edits)?
            };
            println!("{name}\t{labels}");
        }
        Command::Host(HostCommand::Remove { name }) => {
            home.remove_host(&name)?;
            println!("forgot {name}");
        }
        Command::Group(GroupCommand::Set { name, hosts }) => {
            home.set_group(&name, &hosts)?;
            println!("group {name}: {}", hosts.join(", "));
        }
        Command::Group(GroupCommand::List { json }) => {
            for (name, hosts) in home.groups()? {
                if json {
                    println!("{}", serde_json::json!({ "name": name, "hosts": hosts }));
                } else {
                    println!("{name}\t{}", hosts.join(","));
                }
            }
        }
        Command::Group(GroupCommand::Remove { name }) => {
            home.remove_group(&name)?;
            println!("forgot group {name}");
        }
        Command::Receipts { host, json } => list_receipts(home, host.as_deref(), json, diagnostics)?,
        other => anyhow::bail!("not a local command: {other:?}"),
    }
    Ok(())
}

/// `sesame receipts [HOST]`: the receipts kept, as a table or as the file's lines.
fn list_receipts(
    home: &ClientHome,
    host: Option<&str>,
    json: bool,
    diagnostics: Diagnostics,
) -> anyhow::Result<()> {
    let file = home.receipts();
    let path = file.path().display();
    let listing = file.read().map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    if let Some((line, why)) = listing.malformed.first() {
        diagnostics.note(&format!(
            "warning: {} lines of {path} are not receipts, and are left out (line {line}: {why})",
            listing.malformed.len()
        ));
    }
    let kept: Vec<_> = listing
        .receipts
        .iter()
        .filter(|k| host.is_none_or(|h| k.receipt.host == h || k.receipt.host_name == h))
        .collect();
    if json {
        for k in kept {
            println!("{}", k.line);
        }
        return Ok(());
    }
    if kept.is_empty() {
        diagnostics.note(&format!("no receipts in {path}"));
        return Ok(());
    }
    let rows = kept.iter().map(|k| {
        let r = &k.receipt;
        vec![
            sesame_proto::format_utc(r.time_ms),
            r.host.clone(),
            r.id.to_string(),
            r.command.clone(),
            r.code.to_string(),
            r.seq.to_string(),
        ]
    });
    print!(
        "{}",
        crate::table::plain(&["TIME", "HOST", "ID", "COMMAND", "CODE", "SEQ"], rows, &[4])
    );
    Ok(())
}
