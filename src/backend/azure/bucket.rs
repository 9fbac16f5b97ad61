//! A token bucket: keeps the client's reads and writes under ARM's limits.

use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    /// `rate` tokens a second, at most `burst` saved up.
    pub fn new(rate: f64, burst: f64) -> Bucket {
        let rate = rate.max(0.01);
        let burst = burst.max(1.0);
        Bucket {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// How long to wait for a token when `tokens` were left at `last`, now being `now`;
    /// returns the tokens left after taking one and the wait.
    fn take_at(&self, tokens: f64, last: Instant, now: Instant) -> (f64, Duration) {
        let tokens = (tokens + now.saturating_duration_since(last).as_secs_f64() * self.rate)
            .min(self.burst);
        if tokens >= 1.0 {
            (tokens - 1.0, Duration::ZERO)
        } else {
            (
                tokens - 1.0,
                Duration::from_secs_f64((1.0 - tokens) / self.rate),
            )
        }
    }

    /// Takes a token, waiting as long as the bucket needs to refill.
    pub async fn take(&self) {
        let wait = {
            let mut state = self.state.lock().await;
            let now = Instant::now();
            let (left, wait) = self.take_at(state.0, state.1, now);
            *state = (left, now);
            wait
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_spends_its_burst_then_waits_for_the_rate() {
        let b = Bucket::new(10.0, 2.0);
        let t0 = Instant::now();
        let (left, wait) = b.take_at(2.0, t0, t0);
        assert_eq!((left, wait), (1.0, Duration::ZERO));
        let (left, wait) = b.take_at(left, t0, t0);
        assert_eq!((left, wait), (0.0, Duration::ZERO));
        let (left, wait) = b.take_at(left, t0, t0);
        assert_eq!(wait, Duration::from_millis(100));
        // Half a second later five tokens came back, capped by the burst.
        let (left, wait) = b.take_at(left, t0, t0 + Duration::from_millis(500));
        assert_eq!(wait, Duration::ZERO);
        assert!((left - 1.0).abs() < 1e-9, "{left}");
    }
}
