//! `sesamed grants list|revoke`: what the grants ledger holds, of every kind (firewall openings,
//! temporary SSH keys, group memberships and accounts), and taking any of it back now, for every holder.

use std::sync::Arc;

use anyhow::{Context, Result, bail};

use super::{LedgerFile, UserGrantId};
use crate::audit::AuditLog;
use crate::capability::firewall::{Firewall, GrantId, Revoker};
use crate::capability::users::{KeyLedger, Users};
use crate::cli::GrantsCommand;
use crate::config::Config;

/// Runs `sesamed grants …`.
pub fn grants(cmd: GrantsCommand) -> Result<()> {
    let (GrantsCommand::List { config, .. } | GrantsCommand::Revoke { config, .. }) = &cmd;
    let config = Config::load(&config.config)?;
    let audit = Arc::new(AuditLog::open(&config.audit_log)?);
    let fw = if config.uses("firewall") {
        Some(Firewall::from_config(&config, Arc::clone(&audit))?)
    } else {
        None
    };
    let file = LedgerFile::new(&config.state_dir, &config.clients_file);
    let now = crate::now_ms();
    let result = match cmd {
        GrantsCommand::List { json, .. } => list(fw.as_ref(), &file, now, json),
        GrantsCommand::Revoke { ids, all, .. } => {
            let users = || -> Result<Users> {
                Ok(Users::new()?.with_ledger(KeyLedger {
                    file: file.clone(),
                    audit: Arc::clone(&audit),
                    ceilings: config.capabilities.users,
                }))
            };
            revoke(fw.as_ref(), users, &file, now, &ids, all)
        }
    };
    audit.sync()?;
    result
}

fn list(fw: Option<&Firewall>, file: &LedgerFile, now: u64, json: bool) -> Result<()> {
    let grants = fw.map(|fw| fw.list(now, None)).transpose()?.unwrap_or_default();
    let keys = file.lock()?.ledger.users.clone();
    let live_keys: Vec<_> = keys.iter().filter(|k| k.is_live(now)).collect();
    if json {
        for g in &grants {
            let mut v = serde_json::to_value(g)?;
            v["kind"] = "opening".into();
            println!("{v}");
        }
        for k in &live_keys {
            let mut v = serde_json::to_value(k)?;
            v["kind"] = match k.change {
                super::UserChange::Key(_) => "key",
                super::UserChange::Group(_) => "membership",
                super::UserChange::Account => "account",
            }
            .into();
            v["expires_ms"] = k.expires_ms().into();
            println!("{v}");
        }
        return Ok(());
    }
    let until = |ms: u64| {
        format!(
            "{} ({} left)",
            crate::format_utc(ms),
            crate::format_remaining(ms.saturating_sub(now))
        )
    };
    let holders = |hs: &[super::Holder]| {
        hs.iter()
            .map(|h| format!("{} {}…", h.client, &h.key.to_string()[..16]))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if grants.is_empty() && live_keys.is_empty() {
        match fw {
            Some(fw) => println!("no live grants ({} back end)", fw.backend_name()),
            None => println!("no live grants"),
        }
    } else {
        println!("{:<20} {:<36} {:<34} HOLDERS (name key)", "ID", "WHAT", "ENDS");
        for g in &grants {
            println!(
                "{:<20} {:<36} {:<34} {}",
                g.id.as_str(),
                format!("open {}", g.rule),
                until(g.expires_ms),
                holders(&g.holders)
            );
        }
        for k in &live_keys {
            let what = crate::capability::users::describe(k);
            println!(
                "{:<20} {:<36} {:<34} {}",
                k.id.as_str(),
                what,
                until(k.expires_ms()),
                holders(&k.holders)
            );
        }
    }
    if let Some(fw) = fw {
        for g in fw.closing(now)? {
            let why = if g.uncertain {
                "the firewall failed while opening it"
            } else {
                "nobody holds it"
            };
            println!(
                "{:<20} {:<36} closing: {why} (the daemon retries every second)",
                g.id.as_str(),
                format!("open {}", g.rule)
            );
        }
    }
    for k in keys.iter().filter(|k| !k.is_live(now)) {
        println!(
            "{:<20} {:<36} being taken back: nobody holds it (the daemon retries every second)",
            k.id.as_str(),
            format!("change to {}", k.account)
        );
    }
    Ok(())
}

fn revoke(
    fw: Option<&Firewall>,
    users: impl Fn() -> Result<Users>,
    file: &LedgerFile,
    now: u64,
    ids: &[String],
    all: bool,
) -> Result<()> {
    let (mut openings, mut keys): (Vec<GrantId>, Vec<UserGrantId>) = (Vec::new(), Vec::new());
    if all {
        if let Some(fw) = fw {
            // Openings still being closed too: they may be open (a failed opening).
            let closing = fw.closing(now)?;
            openings.extend(fw.list(now, None)?.into_iter().chain(closing).map(|g| g.id));
        }
        keys.extend(file.lock()?.ledger.users.iter().map(|k| k.id.clone()));
    } else {
        for s in ids {
            if s.starts_with("key-") || s.starts_with("grp-") || s.starts_with("acc-") {
                keys.push(
                    s.parse()
                        .map_err(anyhow::Error::msg)
                        .with_context(|| format!("{s:?}"))?,
                );
            } else {
                openings.push(s.parse().with_context(|| format!("{s:?}"))?);
            }
        }
    }
    let mut failed = 0;
    if !openings.is_empty() {
        let Some(fw) = fw else {
            bail!("no cluster of this host has the firewall capability: there are no openings to revoke");
        };
        for id in &openings {
            match fw.revoke(now, Revoker::Operator, id) {
                Ok(rule) => println!(
                    "revoked {id}{}",
                    rule.map(|r| format!(" ({r})")).unwrap_or_default()
                ),
                Err(e) => {
                    eprintln!("sesamed: {id}: {e}");
                    failed += 1;
                }
            }
        }
    }
    if !keys.is_empty() {
        let users = users()?;
        for id in &keys {
            match users.revoke_temporary(now, id) {
                Ok(Some(k)) => println!("revoked {id} (a temporary change to {})", k.account),
                Ok(None) => println!("revoked {id} (already gone)"),
                Err(e) => {
                    eprintln!("sesamed: {id}: {e}");
                    failed += 1;
                }
            }
        }
    }
    if all && openings.is_empty() && keys.is_empty() {
        println!("no live grants");
    }
    let total = openings.len() + keys.len();
    if failed > 0 {
        bail!("{failed} of {total} grants not revoked");
    }
    Ok(())
}
