//! `[limits]`: what one request may use, and the daemon's bounds on requests in hand and on
//! what it keeps for clients. The policy may lower a request's limits, never raise them.

use serde::Deserialize;

/// Per-request limits. The policy may lower them per request but never raise them above these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall-clock time a command may run.
    pub timeout_ms: u64,
    /// Linear memory a command may grow to.
    pub memory_mb: u64,
    /// Output a command may return.
    pub output_kb: u64,
    /// Host calls (log lines included) a command may make; the next one stops it (3004).
    pub host_calls: u32,
    /// Requests run at once; beyond this the daemon answers 3007 busy.
    pub max_concurrent: usize,
    /// Requests one client may have in the daemon at once (default: a quarter of
    /// `max_concurrent`); beyond this that client gets 3007 busy, so one client can never take
    /// every slot.
    pub max_concurrent_per_client: Option<usize>,
    /// Request ids one client may have in the replay window at once (default: a quarter of
    /// the window's million); beyond this that client gets 3007 busy until some expire.
    pub replay_ids_per_client: Option<usize>,
    /// How long a detached run's output and answer are kept once it ended, seconds.
    pub results_keep_s: u64,
    /// What one client's finished detached runs may hold on the host, KiB; its oldest go first.
    pub results_kb_per_client: u64,
}

impl Limits {
    /// Refuses limits the daemon cannot keep: a zero, or a share outside its whole.
    pub(super) fn check(&self) -> Result<(), String> {
        if self.timeout_ms == 0
            || self.memory_mb == 0
            || self.output_kb == 0
            || self.host_calls == 0
            || self.max_concurrent == 0
            || self.results_keep_s == 0
            || self.results_kb_per_client == 0
        {
            return Err("limits: every limit must be greater than zero".into());
        }
        if let Some(share) = self.max_concurrent_per_client
            && !(1..=self.max_concurrent).contains(&share)
        {
            return Err(format!(
                "limits.max_concurrent_per_client: must be between 1 and max_concurrent ({})",
                self.max_concurrent
            ));
        }
        if let Some(share) = self.replay_ids_per_client
            && !(1..=crate::runner::REPLAY_CAPACITY).contains(&share)
        {
            return Err(format!(
                "limits.replay_ids_per_client: must be between 1 and {}",
                crate::runner::REPLAY_CAPACITY
            ));
        }
        Ok(())
    }

    /// Requests one client may have in the daemon at once.
    pub fn per_client(&self) -> usize {
        self.max_concurrent_per_client
            .unwrap_or((self.max_concurrent / 4).max(1))
            .min(self.max_concurrent)
    }

    /// Request ids one client may have in the replay window at once.
    pub fn replay_share(&self) -> usize {
        self.replay_ids_per_client
            .unwrap_or(crate::runner::REPLAY_CAPACITY / 4)
            .min(crate::runner::REPLAY_CAPACITY)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout_ms: 5_000,
            memory_mb: 64,
            output_kb: 64,
            host_calls: crate::host::DEFAULT_MAX_HOST_CALLS,
            max_concurrent: 64,
            max_concurrent_per_client: None,
            replay_ids_per_client: None,
            results_keep_s: 86_400,
            results_kb_per_client: 4096,
        }
    }
}
