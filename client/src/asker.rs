//! How `sesame` asks hosts: every request goes through [`Asker::ask`], which also does what any
//! answer asks of the client: follow a key rotation the host announces (as far as the pinned
//! next-key digest allows), and keep the receipt the answer carries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sesame_proto::{PublicKey, RotationRefused, Sealer};

use crate::ClientHome;
use crate::diagnostic::Diagnostics;
use crate::fleet::{self, Outcome, Target};
use crate::pin::Rotation;
use crate::receipts;
use crate::rollout::{self, Report, Rollout};

/// This client as it asks hosts: its directory, its key, and where it reports. Every request
/// `sesame` sends goes through [`Asker::ask`], which also does what any answer asks of the
/// client: follow a key rotation the host announces, keep the receipt the answer carries.
#[derive(Debug)]
pub struct Asker<'a> {
    home: &'a ClientHome,
    /// This client's key, sealing every request.
    pub sealer: Arc<Sealer>,
    diagnostics: Diagnostics,
}

impl<'a> Asker<'a> {
    /// The asker for the client in `home`, reporting through `diagnostics`.
    pub fn new(home: &'a ClientHome, diagnostics: Diagnostics) -> anyhow::Result<Self> {
        Ok(Self {
            home,
            sealer: Arc::new(Sealer::new(home.key()?)),
            diagnostics,
        })
    }

    /// Runs `command` on every one of `targets`, `parallel` at once: [`Self::roll_out`]'s
    /// outcomes.
    pub fn ask(
        &self,
        rt: &tokio::runtime::Runtime,
        targets: Vec<Target>,
        command: &fleet::Command,
        timeout: Duration,
        parallel: usize,
        on_done: impl FnMut(&Outcome),
    ) -> Vec<Outcome> {
        let all = Rollout::all(parallel);
        self.roll_out(rt, targets, command, timeout, &all, on_done)
            .outcomes
    }

    /// Runs `command` on `targets` as `rollout` says (see [`rollout::run`]), then follows
    /// announced rotations and keeps receipts.
    pub fn roll_out(
        &self,
        rt: &tokio::runtime::Runtime,
        targets: Vec<Target>,
        command: &fleet::Command,
        timeout: Duration,
        rollout: &Rollout,
        on_done: impl FnMut(&Outcome),
    ) -> Report {
        // What each answer must come sealed under, and whose log its record is in.
        let pinned: HashMap<String, PublicKey> =
            targets.iter().map(|t| (t.alias.clone(), t.entry.key)).collect();
        let names: HashMap<String, String> = targets
            .iter()
            .map(|t| (t.alias.clone(), t.entry.daemon_name(&t.alias).to_owned()))
            .collect();
        let report = rt.block_on(rollout::run(
            targets,
            Arc::clone(&self.sealer),
            command,
            timeout,
            rollout,
            on_done,
        ));
        repin_rotated(
            self.home,
            &self.sealer,
            &pinned,
            &report.outcomes,
            self.diagnostics,
        );
        self.keep_receipts(&names, command, &report.outcomes);
        report
    }

    /// Appends the receipt of every answer that carried one to the receipts file. One whose
    /// signature does not verify is not kept, and one that cannot be written is a warning: the
    /// answers stand.
    fn keep_receipts(&self, names: &HashMap<String, String>, command: &fleet::Command, outcomes: &[Outcome]) {
        let now = fleet::now_ms();
        let mut held = Vec::new();
        for o in outcomes {
            let Some(name) = names.get(&o.alias) else { continue };
            match receipts::held(o, name, command, now) {
                Ok(receipt) => held.extend(receipt),
                Err(e) => self.diagnostics.note(&format!(
                    "warning: {}: {e}; the answer's receipt is not kept",
                    o.alias
                )),
            }
        }
        let file = self.home.receipts();
        if let Err(e) = file.append(&held) {
            self.diagnostics.note(&format!(
                "warning: the receipts of {} answers could not be kept in {}: {e}",
                held.len(),
                file.path().display()
            ));
        }
    }
}

/// Follows the key rotations hosts announce in their answers (`sesamed rotate-key`), as far as
/// the pinned next-key digests allow: the note came under the old key, which may be why the
/// host rotated, so it alone never moves a pin (see `sesame_proto::HostPin::follow`).
fn repin_rotated(
    home: &ClientHome,
    sealer: &Sealer,
    pinned: &HashMap<String, PublicKey>,
    outcomes: &[Outcome],
    diagnostics: Diagnostics,
) {
    for o in outcomes {
        let (Ok(response), Some(old)) = (&o.result, pinned.get(&o.alias)) else {
            continue;
        };
        let Some(note) = &response.host_key_rotated else {
            continue;
        };
        let alias = &o.alias;
        let new = note.key;
        let by_hand = format!(
            "ask the host's operator for what `sesamed show` prints, over a channel you trust, \
             then: sesame host repin {alias} --key KEY:NEXT_SHA256"
        );
        match home.follow_rotation(alias, old, note, sealer) {
            Ok(Rotation::Followed(followed)) => {
                diagnostics.note(&format!(
                    "{alias}: the host has a new key, {new}, the one its pinned next-key digest \
                     named; re-pinned to it (its old key is accepted for {} more)",
                    remaining(note.old_key_until_ms)
                ));
                if followed.pin.next_key_sha256.is_none() {
                    let why = followed.next_key_refused.map_or_else(
                        || "the host named no key after it".to_owned(),
                        |e| format!("its word on the key after it did not verify ({e})"),
                    );
                    diagnostics.error(
                        &format!(
                            "{alias}: {why}, so this client will not follow the host's next rotation by itself"
                        ),
                        Some(&by_hand),
                    );
                }
            }
            Ok(Rotation::Refused(RotationRefused::NotNew) | Rotation::Stale) => {}
            Ok(Rotation::Refused(why)) => diagnostics.error(
                &format!(
                    "{alias}: the host says it rotated to a key this client cannot verify, {new} \
                     ({why}); not re-pinned: requests still go to the pinned key"
                ),
                Some(&format!(
                    "if the host's operator did rotate its key, re-pin by hand: {by_hand}. If not, \
                     the host's old key may have leaked: tell its operator"
                )),
            ),
            Err(e) => diagnostics.error(
                &format!("{alias}: the host has a new key, {new}, but re-pinning failed: {e}"),
                Some(&by_hand),
            ),
        }
    }
}

/// How long until `until_ms`, for people: `6d 23h`, `59m`.
fn remaining(until_ms: u64) -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mins = until_ms.saturating_sub(now_ms) / 60_000;
    match mins {
        0..60 => format!("{mins}m"),
        60..1440 => format!("{}h {:02}m", mins / 60, mins % 60),
        _ => format!("{}d {}h", mins / 1440, mins % 1440 / 60),
    }
}
