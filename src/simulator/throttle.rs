//! ARM-style throttling: a token bucket for reads and one for writes, refilled in real time
//! (not sped up with the simulation).

use std::time::{Duration, Instant};

/// The longest `Retry-After` given, when a bucket never refills.
const MAX_WAIT: u64 = 3600;

/// A token bucket: `burst` tokens at most, `per_second` added back every second. An infinite
/// rate never throttles; a rate of zero (or negative, or NaN) never refills.
#[derive(Debug, Clone)]
pub struct Bucket {
    burst: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(burst: u32, per_second: f64, now: Instant) -> Bucket {
        let per_second = if per_second > 0.0 { per_second } else { 0.0 };
        Bucket {
            burst: f64::from(burst),
            per_second,
            tokens: f64::from(burst),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.last = self.last.max(now);
    }

    /// Takes a token: `Ok(tokens left)`, or `Err(whole seconds until one is available, at
    /// least 1)`.
    pub fn take(&mut self, now: Instant) -> Result<u64, u64> {
        if self.per_second == f64::INFINITY {
            return Ok(self.burst as u64);
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(self.tokens.floor() as u64)
        } else {
            Err(self.wait().as_secs_f64().ceil().clamp(1.0, MAX_WAIT as f64) as u64)
        }
    }

    /// How long until a token is available.
    fn wait(&self) -> Duration {
        if self.per_second <= 0.0 {
            return Duration::from_secs(MAX_WAIT);
        }
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64((missing / self.per_second).min(MAX_WAIT as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_spends_its_burst_then_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(2, 1.0, t0);
        assert_eq!(b.take(t0), Ok(1));
        assert_eq!(b.take(t0), Ok(0));
        assert_eq!(b.take(t0), Err(1));
        // Half a token after 0.5 s: still one second at the most, rounded up.
        assert_eq!(b.take(t0 + Duration::from_millis(500)), Err(1));
        assert_eq!(b.take(t0 + Duration::from_millis(1000)), Ok(0));
        // Never more than the burst, however long it waited.
        assert_eq!(b.take(t0 + Duration::from_secs(100)), Ok(1));
    }

    #[test]
    fn retry_after_is_whole_seconds_until_a_token() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1, 0.25, t0);
        assert_eq!(b.take(t0), Ok(0));
        assert_eq!(b.take(t0), Err(4));
        assert_eq!(b.take(t0 + Duration::from_millis(1500)), Err(3));
        assert_eq!(b.take(t0 + Duration::from_secs(4)), Ok(0));

        // ARM's defaults: reads 250 then 25/s, writes 200 then 10/s.
        let mut reads = Bucket::new(250, 25.0, t0);
        for left in (0..250).rev() {
            assert_eq!(reads.take(t0), Ok(left));
        }
        assert_eq!(reads.take(t0), Err(1));
        assert_eq!(reads.take(t0 + Duration::from_millis(40)), Ok(0));
        let mut writes = Bucket::new(200, 10.0, t0);
        assert_eq!(writes.take(t0 + Duration::from_secs(5)), Ok(199));
    }

    #[test]
    fn an_empty_bucket_that_never_refills_says_an_hour() {
        let t0 = Instant::now();
        for rate in [0.0, -1.0, f64::NAN] {
            let mut b = Bucket::new(0, rate, t0);
            assert_eq!(b.take(t0 + Duration::from_secs(10)), Err(3600), "{rate}");
        }
        let mut b = Bucket::new(3, f64::INFINITY, t0);
        for _ in 0..10 {
            assert_eq!(b.take(t0), Ok(3), "an infinite rate never throttles");
        }
        // An instant earlier than the last one refills nothing and does not panic.
        let mut b = Bucket::new(1, 1.0, t0 + Duration::from_secs(1));
        assert_eq!(b.take(t0), Ok(0));
    }
}
