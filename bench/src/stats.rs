//! Latency samples and their one-line summaries, the format `bench/run` parses.

use std::time::Duration;

/// `n=… p50_us=… p90_us=… p99_us=… max_us=… mean_us=…` of latency samples (not empty).
pub fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    format!(
        "n={} p50_us={:.1} p90_us={:.1} p99_us={:.1} max_us={:.0} mean_us={:.1}",
        samples.len(),
        us(percentile(&samples, 0.50)),
        us(percentile(&samples, 0.90)),
        us(percentile(&samples, 0.99)),
        us(samples[samples.len() - 1]),
        us(samples.iter().sum::<Duration>()) / samples.len() as f64,
    )
}

/// The `p` quantile (0..=1) of sorted, non-empty samples: the smallest sample at or above it.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (sorted.len() as f64 * p).ceil() as usize;
    sorted[rank.saturating_sub(1).min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&samples, 0.50), Duration::from_micros(50));
        assert_eq!(percentile(&samples, 0.99), Duration::from_micros(99));
        assert_eq!(percentile(&samples, 1.0), Duration::from_micros(100));
        assert_eq!(percentile(&samples[..1], 0.5), Duration::from_micros(1));
        let line = summary(samples);
        assert!(
            line.starts_with("n=100 p50_us=50.0 p90_us=90.0 p99_us=99.0 max_us=100 mean_us=50.5"),
            "{line}"
        );
    }
}
