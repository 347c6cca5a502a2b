//! Each client's share of the daemon: how many of its requests may be inside it at once.
//!
//! The daemon runs at most `max_concurrent` commands; without a share per client, one client
//! (a stolen key, a runaway script) could hold every slot and every other client would get
//! 3007 busy. A request takes its client's share once it has authenticated and before anything
//! else runs for it (replay log, policy, module), and gives it back when it is answered.

use std::collections::HashMap;
use std::sync::Mutex;

/// Requests in the daemon, per client name, each bounded by the same share.
#[derive(Debug)]
pub struct Shares {
    per_client: usize,
    held: Mutex<HashMap<String, usize>>,
}

/// One request's part of its client's share; given back when dropped.
#[derive(Debug)]
#[must_use = "the share is given back when this is dropped"]
pub struct Share<'a> {
    shares: &'a Shares,
    client: String,
}

impl Shares {
    /// Each client may have `per_client` requests in the daemon at once.
    pub fn new(per_client: usize) -> Self {
        Self {
            per_client,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// The share each client has.
    pub fn per_client(&self) -> usize {
        self.per_client
    }

    /// Takes one of `client`'s requests, or `None` when it already has its whole share in.
    pub fn take(&self, client: &str) -> Option<Share<'_>> {
        let mut held = self.lock();
        let n = held.entry(client.to_owned()).or_insert(0);
        if *n >= self.per_client {
            return None;
        }
        *n += 1;
        Some(Share {
            shares: self,
            client: client.to_owned(),
        })
    }

    /// Requests `client` has in the daemon now.
    pub fn held(&self, client: &str) -> usize {
        self.lock().get(client).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A share on its way to another thread ([`Share::hand_over`], [`Shares::adopt`]): held all the
/// while, given back only when the adopted [`Share`] goes.
#[derive(Debug)]
#[must_use = "a share handed over and never adopted is never given back"]
pub struct HandedOver(String);

impl Share<'_> {
    /// Hands this share to a thread that outlives the request's handling (a detached run).
    pub fn hand_over(self) -> HandedOver {
        let mut share = std::mem::ManuallyDrop::new(self);
        HandedOver(std::mem::take(&mut share.client))
    }
}

impl Shares {
    /// The share `handed` carries, given back when it goes.
    pub fn adopt(&self, handed: HandedOver) -> Share<'_> {
        Share {
            shares: self,
            client: handed.0,
        }
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        self.shares.give_back(&self.client);
    }
}

impl Shares {
    /// Gives back one of `client`'s shares: what dropping a [`Share`] does.
    pub fn give_back(&self, client: &str) {
        let mut held = self.lock();
        if let Some(n) = held.get_mut(client) {
            *n -= 1;
            if *n == 0 {
                // Nothing grows with clients that came and went.
                held.remove(client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_share_and_no_more_while_others_get_theirs() {
        let shares = Shares::new(2);
        let a1 = shares.take("alice").expect("first");
        let a2 = shares.take("alice").expect("second");
        assert!(shares.take("alice").is_none(), "alice has her whole share in");
        let b = shares.take("bob").expect("bob is not held up by alice");
        assert_eq!((shares.held("alice"), shares.held("bob")), (2, 1));
        drop(a1);
        let a3 = shares.take("alice").expect("one came back");
        drop((a2, a3, b));
        assert!(shares.lock().is_empty(), "no entry is left behind");
    }
}
