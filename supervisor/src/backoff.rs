//! The restart policy, kept free of processes and clocks so it can be tested directly.
//!
//! A process that dies is restarted at once: the crash is news, and players are waiting. Only
//! a *second* death soon after a restart marks a crash loop: from then on each further quick
//! death doubles the wait, up to a cap, to keep a broken build from spinning the CPU and
//! flooding the log.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    stable_after: Duration,
    next: Duration,
    /// Quick deaths in a row; the first one is forgiven.
    quick_deaths: u32,
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration, stable_after: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            stable_after,
            next: initial,
            quick_deaths: 0,
        }
    }

    /// At once, then 100 ms, 200 ms, 400 ms, ... capped at 5 s; forgiven after 10 s of uptime.
    pub const fn standard() -> Backoff {
        Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(5),
            Duration::from_secs(10),
        )
    }

    pub fn stable_after(&self) -> Duration {
        self.stable_after
    }

    /// How long to wait before restarting a process that died after running for `uptime`.
    pub fn delay_after(&mut self, uptime: Duration) -> Duration {
        if uptime >= self.stable_after {
            self.next = self.initial;
            self.quick_deaths = 0;
            return Duration::ZERO;
        }
        self.quick_deaths += 1;
        if self.quick_deaths == 1 {
            return Duration::ZERO;
        }
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::standard()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_millis(300);
    const LONG: Duration = Duration::from_secs(12);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_crash_after_a_good_run_restarts_at_once() {
        let mut backoff = Backoff::standard();
        assert_eq!(backoff.delay_after(LONG), Duration::ZERO);
        assert_eq!(backoff.delay_after(LONG), Duration::ZERO);
    }

    #[test]
    fn quick_crashes_double_the_wait_up_to_the_cap() {
        let mut backoff = Backoff::standard();
        let delays: Vec<Duration> = (0..10).map(|_| backoff.delay_after(QUICK)).collect();
        assert_eq!(
            delays,
            [
                Duration::ZERO,
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(3200),
                ms(5000),
                ms(5000),
                ms(5000)
            ]
        );
    }

    #[test]
    fn a_stable_run_forgives_earlier_crashes() {
        let mut backoff = Backoff::standard();
        for _ in 0..5 {
            backoff.delay_after(QUICK);
        }
        assert_eq!(backoff.delay_after(Duration::from_secs(10)), Duration::ZERO);
        assert_eq!(backoff.delay_after(QUICK), Duration::ZERO);
        assert_eq!(backoff.delay_after(QUICK), ms(100));
    }

    #[test]
    fn only_a_second_quick_crash_waits() {
        let mut backoff = Backoff::standard();
        assert_eq!(backoff.delay_after(Duration::ZERO), Duration::ZERO);
        assert_eq!(backoff.delay_after(Duration::ZERO), ms(100));
    }
}
