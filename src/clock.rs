//! Time for the simulator, the script's waits and the tests: one abstraction, so dry runs
//! use a virtual clock (hours in milliseconds) and runs a real one, optionally sped up.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d.as_millis() as u64))
    }

    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// RFC 3339 in UTC, to the second.
    pub fn rfc3339(self) -> String {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(self.0)).to_string()
    }

    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, String> {
        let t = humantime::parse_rfc3339_weak(text).map_err(|e| {
            format!("`{text}` is not an RFC 3339 time ({e}); write e.g. 2026-11-01T02:00:00Z")
        })?;
        let t = Timestamp::from_system(t);
        // Far-future times cannot be printed; no recovery plan needs them.
        if t.0 >= 4_102_444_800_000 {
            return Err(format!("`{text}` is after the year 2099"));
        }
        Ok(t)
    }

    pub fn from_system(t: SystemTime) -> Timestamp {
        Timestamp(
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        )
    }
}

/// A boxed future, for object-safe async methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where time comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
    /// Waits `d` of this clock's time.
    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()>;
    /// True when sleeping only moves the clock on.
    fn is_virtual(&self) -> bool;
}

/// A clock that only moves when slept on: dry runs take no real time.
#[derive(Debug)]
pub struct VirtualClock {
    now: AtomicU64,
}

impl VirtualClock {
    pub fn new(start: Timestamp) -> Self {
        VirtualClock {
            now: AtomicU64::new(start.0),
        }
    }

    pub fn advance(&self, d: Duration) {
        self.now.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }

    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()> {
        self.advance(d);
        Box::pin(std::future::ready(()))
    }

    fn is_virtual(&self) -> bool {
        true
    }
}

/// The embedded simulator's clock during `runbook run`: simulated time moves only when the
/// run sleeps on it, to the end of that sleep, and each sleep takes its length divided by
/// `speed` of real time. What the program itself takes (the journal's syncs, the script's
/// own work, an operator at a manual step) adds no simulated time, so the simulated
/// timeline is the same at every speed: the dry run's, watched at a pace people can follow.
#[derive(Debug)]
pub struct PacedClock {
    now: AtomicU64,
    speed: f64,
}

impl PacedClock {
    /// A clock at `start` whose sleeps take `1 / speed` of their length in real time.
    pub fn new(start: Timestamp, speed: f64) -> Self {
        PacedClock {
            now: AtomicU64::new(start.0),
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
        }
    }
}

impl Clock for PacedClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }

    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()> {
        let until = self.now().plus(d);
        let real = Duration::from_secs_f64(d.as_secs_f64() / self.speed);
        Box::pin(async move {
            tokio::time::sleep(real).await;
            // Sleeps that overlap end at the latest of their ends; a sleep cut short (an
            // interrupt drops it) moves nothing.
            self.now.fetch_max(until.0, Ordering::SeqCst);
        })
    }

    fn is_virtual(&self) -> bool {
        false
    }
}

/// The wall clock, running `speed` times faster than real time (1.0 is real time).
#[derive(Debug)]
pub struct RealClock {
    origin: Instant,
    start: Timestamp,
    speed: f64,
}

impl RealClock {
    pub fn new(speed: f64) -> Self {
        RealClock {
            origin: Instant::now(),
            start: Timestamp::from_system(SystemTime::now()),
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
        }
    }

    /// A real clock whose time starts at `start` (a simulation's start).
    pub fn starting_at(start: Timestamp, speed: f64) -> Self {
        RealClock {
            start,
            ..RealClock::new(speed)
        }
    }
}

impl Clock for RealClock {
    fn now(&self) -> Timestamp {
        let real = self.origin.elapsed().as_secs_f64() * self.speed;
        self.start.plus(Duration::from_secs_f64(real))
    }

    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()> {
        let real = Duration::from_secs_f64(d.as_secs_f64() / self.speed);
        Box::pin(tokio::time::sleep(real))
    }

    fn is_virtual(&self) -> bool {
        false
    }
}

/// Formats a duration for people: `8m 12s`, `46s`, `2h 5m`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m, s) {
        (0, 0, _) if d.as_millis() < 1000 && d.as_millis() > 0 => format!("{}ms", d.as_millis()),
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

/// Parses a duration option: `90s`, `30m`, `2h`, `30d`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const LONGEST: Duration = Duration::from_secs(366 * 86400);
    let d = humantime::parse_duration(text.trim()).map_err(|_| {
        format!("`{text}` is not a duration; write e.g. \"90s\", \"30m\", \"2h\" or \"30d\"")
    })?;
    if d.is_zero() {
        return Err(format!("`{text}` is zero; a duration must be positive"));
    }
    if d > LONGEST {
        return Err(format!(
            "`{text}` is longer than a year; runbook durations are at most 366d"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_when_slept() {
        let c = VirtualClock::new(Timestamp(1_000));
        assert_eq!(c.now(), Timestamp(1_000));
        crate::script::exec::block_on(c.sleep(Duration::from_secs(90)));
        assert_eq!(c.now(), Timestamp(91_000));
    }

    /// Real time spent between sleeps (here, a blocking pause far longer than the sleeps at
    /// that speed) adds nothing to a paced clock: only its sleeps move it, each to its end.
    #[test]
    fn a_paced_clock_moves_by_its_sleeps_whatever_the_real_time_between() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let c = PacedClock::new(Timestamp(5_000), 1_000_000.0);
        rt.block_on(async {
            c.sleep(Duration::from_secs(30)).await;
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(c.now(), Timestamp(35_000));
            c.sleep(Duration::from_secs(90)).await;
        });
        assert_eq!(c.now(), Timestamp(125_000));
        let real = RealClock::starting_at(Timestamp(5_000), 1_000_000.0);
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            real.now().since(Timestamp(5_000)) > Duration::from_secs(1000),
            "a real clock sped up a millionfold drifts 1000 s in a millisecond"
        );
    }

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(human(Duration::from_secs(492)), "8m 12s");
        assert_eq!(human(Duration::from_secs(46)), "46s");
        assert_eq!(human(Duration::from_secs(7500)), "2h 5m");
    }

    #[test]
    fn timestamps_round_trip() {
        let t = Timestamp::parse_rfc3339("2026-11-01T02:00:00Z").unwrap();
        assert_eq!(t.rfc3339(), "2026-11-01T02:00:00Z");
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }
}
