//! Input rate limiting: a token bucket per session, sans-IO.
//!
//! MUD clients legitimately send bursts (speedwalks, aliases, pasted scripts), so the bucket
//! is deep; a client that keeps sending after being told to slow down is disconnected.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FloodLimits {
    /// Lines accepted in one burst.
    pub burst: u32,
    /// Lines per second accepted once the burst is spent.
    pub per_second: u32,
    /// Lines refused in one episode before the connection is closed.
    pub refused_before_close: u32,
}

impl Default for FloodLimits {
    fn default() -> Self {
        FloodLimits {
            // Deeper than the relay's queue bound, so a paste during a core restart meets the
            // clearer "too many lines waiting" refusal first.
            burst: 200,
            per_second: 50,
            refused_before_close: 200,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Refuse this line; `first` is true for the first refusal of an episode (tell the player).
    Refuse {
        first: bool,
    },
    /// Enough: close the connection.
    Disconnect,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FloodGuard {
    limits: FloodLimits,
    tokens: f64,
    /// Not carried to another process (an `Instant` means nothing there): a restored guard
    /// refills from the moment it is restored.
    #[serde(skip, default = "Instant::now")]
    last: Instant,
    refused: u32,
}

impl FloodGuard {
    pub fn new(limits: FloodLimits, now: Instant) -> Self {
        FloodGuard {
            limits,
            tokens: f64::from(limits.burst),
            last: now,
            refused: 0,
        }
    }

    pub fn check(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * f64::from(self.limits.per_second))
            .min(f64::from(self.limits.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            return Verdict::Accept;
        }
        self.refused += 1;
        if self.refused > self.limits.refused_before_close {
            Verdict::Disconnect
        } else {
            Verdict::Refuse {
                first: self.refused == 1,
            }
        }
    }

    /// How long until one more line would be accepted.
    pub fn wait_hint(&self) -> Duration {
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / f64::from(self.limits.per_second.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> FloodLimits {
        FloodLimits {
            burst: 3,
            per_second: 10,
            refused_before_close: 2,
        }
    }

    #[test]
    fn a_burst_is_accepted_then_refused_once_announced() {
        let now = Instant::now();
        let mut guard = FloodGuard::new(limits(), now);
        for _ in 0..3 {
            assert_eq!(guard.check(now), Verdict::Accept);
        }
        assert_eq!(guard.check(now), Verdict::Refuse { first: true });
        assert_eq!(guard.check(now), Verdict::Refuse { first: false });
        assert_eq!(guard.check(now), Verdict::Disconnect);
    }

    #[test]
    fn tokens_come_back_with_time() {
        let now = Instant::now();
        let mut guard = FloodGuard::new(limits(), now);
        for _ in 0..3 {
            guard.check(now);
        }
        assert_eq!(guard.check(now), Verdict::Refuse { first: true });
        assert!(guard.wait_hint() > Duration::ZERO);
        let later = now + Duration::from_millis(100);
        assert_eq!(guard.check(later), Verdict::Accept);
        // A new episode is announced again.
        assert_eq!(guard.check(later), Verdict::Refuse { first: true });
    }
}
