//! Retries shared by the network key services (AWS KMS, KMIP): a bounded
//! number of attempts within a bounded total time, with capped, fully
//! jittered exponential backoff between them.

use std::time::Duration;

/// Retries: how many attempts, how long to wait between them, and the most
/// time one call may take in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (at least 1).
    pub max_attempts: u32,
    /// First backoff; doubles per retry, with full jitter.
    pub base_delay: Duration,
    /// Longest single backoff.
    pub max_delay: Duration,
    /// No retry starts once this much time has passed since the first
    /// attempt (the attempt in flight still has its own timeout).
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            budget: Duration::from_secs(10),
        }
    }
}

/// Full-jitter exponential backoff before retry number `attempt` (1-based).
pub(crate) fn backoff(p: RetryPolicy, attempt: u32) -> Duration {
    let exp = p
        .base_delay
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(p.max_delay);
    let mut r = [0u8; 4];
    let frac = if getrandom::fill(&mut r).is_ok() {
        f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX)
    } else {
        1.0
    };
    exp.mul_f64(frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        for attempt in 1..40 {
            let d = backoff(p, attempt);
            assert!(d <= p.max_delay);
            assert!(d <= p.base_delay * (1 << (attempt - 1).min(16)));
        }
        let samples: Vec<_> = (0..32).map(|_| backoff(p, 3)).collect();
        assert!(samples.iter().any(|d| *d != samples[0]), "no jitter");
    }
}
