//! The vault lock in Blob Storage: a lease that is a lock blob, changed only by
//! compare-and-swap on its etag, naming its holder {run, user, host, since, renewed,
//! generation, expires}. The holder renews it every quarter of its life (15 s of 60 s).
//!
//! Clocks: whether a lease expired is judged on the store's clock, never on a client's: the
//! blob's last-modified time (set by the store at each renewal) against the store's now
//! (the last-modified time of a probe blob written just before), so two machines whose
//! clocks disagree still agree on expiry. The holder judges its own lease on this machine's
//! boot-time clock (which goes on counting while the process is stopped or the machine
//! sleeps), from when its last successful renewal was *sent*, and gives up a quarter of the
//! life early: it stops before any other machine can take over.
//!
//! Fencing: before each mutating request, the holder asks the store whether the lock blob
//! still has its etag (a conditional read, 304 when unchanged); a holder that lost its lease
//! stops issuing and says to whom.

use super::blob::{BlobStore, Client, Clocked};
use super::{Held, Holder};
use crate::error::Error;
use chrono::{DateTime, Utc};
use object_store::{PutMode, UpdateVersion};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a lease lasts without renewal, unless `RUNBOOK_STATE_LEASE_SECONDS` (for tests)
/// says otherwise.
pub const TTL: Duration = Duration::from_secs(60);

/// The lease's life: [`TTL`], or the test setting.
pub fn ttl() -> Duration {
    std::env::var("RUNBOOK_STATE_LEASE_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| (0.5..=3600.0).contains(s))
        .map_or(TTL, Duration::from_secs_f64)
}

/// What the lock blob holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub holder: Holder,
    /// The holder's wall clock at its last renewal, RFC 3339 (for people: expiry is judged
    /// on the store's clock).
    pub renewed: String,
    /// Goes up by one each time the lease changes hands.
    pub generation: u64,
    /// When the lease expires without renewal, on the holder's clock (for people).
    pub expires: String,
    pub ttl_seconds: f64,
    /// The holder let it go.
    #[serde(default)]
    pub released: bool,
}

impl Record {
    /// `run X (alice@a (uid 1), process 12 on a, since T, last renewed R, generation G)`.
    pub fn describe(&self) -> String {
        format!(
            "run {} ({}, process {} on {}, since {}, last renewed {}, generation {})",
            self.holder.run,
            self.holder.user,
            self.holder.pid,
            self.holder.host,
            self.holder.since,
            self.renewed,
            self.generation
        )
    }
}

/// Why run `run` cannot be resumed while `holder` (its lease's holder) is live.
pub fn still_running(holder: &str, run: &str) -> String {
    format!(
        "run {run} is still running: {holder} holds its vault's lease, which is live; it cannot be resumed twice. Once that process is gone and its lease expired (judged on the store's clock), resume it from any machine. Follow it with `runbook runs --watch {run}`"
    )
}

/// Where a lease stands, on the store's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Released by its holder.
    Free,
    /// Renewed less than its life ago.
    Live,
    /// Not renewed for longer than its life: its holder is gone.
    Expired,
}

/// Where `record`, last written at `modified` (store time), stands at store time `now`.
pub fn standing(record: &Record, modified: DateTime<Utc>, now: DateTime<Utc>) -> Standing {
    if record.released {
        return Standing::Free;
    }
    let age = (now - modified).to_std().unwrap_or(Duration::ZERO);
    if age > Duration::from_secs_f64(record.ttl_seconds) {
        Standing::Expired
    } else {
        Standing::Live
    }
}

/// The holder's own view of its lease, on a clock that counts while it is stopped.
#[derive(Debug, Clone)]
pub struct Tenure {
    ttl: Duration,
    /// When the last successful write of the lease was sent.
    renewed: Duration,
    lost: Option<String>,
}

impl Tenure {
    pub fn new(ttl: Duration, sent: Duration) -> Tenure {
        Tenure {
            ttl,
            renewed: sent,
            lost: None,
        }
    }

    /// How long after a renewal the holder stops trusting it: three quarters of its life.
    pub fn trusted(&self) -> Duration {
        self.ttl * 3 / 4
    }

    /// A renewal sent at `sent` succeeded.
    pub fn renewed(&mut self, sent: Duration) {
        if self.lost.is_none() {
            self.renewed = self.renewed.max(sent);
        }
    }

    pub fn lose(&mut self, why: String) {
        self.lost.get_or_insert(why);
    }

    pub fn lost(&self) -> Option<&str> {
        self.lost.as_deref()
    }

    /// Whether the holder may still write at `now`.
    pub fn check(&self, now: Duration) -> Result<(), String> {
        if let Some(why) = &self.lost {
            return Err(why.clone());
        }
        let since = now.saturating_sub(self.renewed);
        if since >= self.trusted() {
            return Err(format!(
                "the vault's lease was last renewed {:.0}s ago and lasts {:.0}s: another machine may have taken it over, so this one issues nothing more",
                since.as_secs_f64(),
                self.ttl.as_secs_f64()
            ));
        }
        Ok(())
    }
}

/// This machine's clock since boot, counting time stopped and asleep (CLOCK_BOOTTIME).
pub fn boot_clock() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which lives through the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// A lease held in the store.
pub struct Lease {
    store: Arc<BlobStore>,
    path: object_store::path::Path,
    holder: Holder,
    took_over: Option<Holder>,
    state: Arc<Mutex<State>>,
    renewal: tokio::task::JoinHandle<()>,
}

struct State {
    record: Record,
    version: UpdateVersion,
    tenure: Tenure,
    /// Cancelled when the lease is lost.
    token: Option<CancellationToken>,
}

fn now_rfc3339() -> String {
    crate::clock::Timestamp::from_system(std::time::SystemTime::now()).rfc3339()
}

fn fresh(holder: Holder, generation: u64, ttl: Duration) -> Record {
    let now = Utc::now();
    let expires = now + chrono::Duration::from_std(ttl).unwrap_or_default();
    Record {
        holder,
        renewed: now_rfc3339(),
        generation,
        expires: expires.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ttl_seconds: ttl.as_secs_f64(),
        released: false,
    }
}

fn body(record: &Record) -> bytes::Bytes {
    bytes::Bytes::from(serde_json::to_vec_pretty(record).unwrap_or_default())
}

/// Takes the lease on `identity` for `holder`: a free one, an expired one held by the same
/// run (a resume), or with `take_over` an expired one of another run (which is then
/// superseded). A live lease is never taken.
pub fn acquire(
    store: &Arc<BlobStore>,
    identity: &str,
    holder: Holder,
    take_over: bool,
) -> Result<Arc<dyn Held>, Error> {
    let path = store.lock_path(identity);
    let ttl = ttl();
    let refused = |why: String| Error::Usage(format!("target `{}` {why}", holder.target));
    for _ in 0..5 {
        let current = store.read_clocked(&path).map_err(Error::Usage)?;
        let (mode, generation, took_over) = match current {
            None => (PutMode::Create, 1, None),
            Some(Clocked {
                bytes,
                modified,
                version,
            }) => {
                let record: Option<Record> = serde_json::from_slice(&bytes).ok();
                let Some(record) = record else {
                    return Err(refused(format!(
                        "has a lock in the store ({}) that cannot be read; nothing was run",
                        store.show(&path)
                    )));
                };
                let now = store.store_now().map_err(Error::Usage)?;
                match standing(&record, modified, now) {
                    Standing::Live if record.holder.run == holder.run => {
                        return Err(Error::Usage(still_running(&record.describe(), &holder.run)))
                    }
                    Standing::Live => {
                        return Err(refused(format!(
                            "is locked by {}; its lease is live (it lasts {:.0}s after each renewal), and nothing takes a live lease, not even --take-over. A second run against the same VMs is refused. Follow it with `runbook runs --watch {}`",
                            record.describe(),
                            record.ttl_seconds,
                            record.holder.run
                        )))
                    }
                    Standing::Free => (PutMode::Update(version), record.generation + 1, None),
                    Standing::Expired if record.holder.run == holder.run => {
                        (PutMode::Update(version), record.generation + 1, None)
                    }
                    Standing::Expired if !take_over => {
                        return Err(refused(format!(
                            "has a stale lock: {} stopped renewing its lease. Resume it with `runbook resume {}`, or pass --take-over to start a new run anyway",
                            record.describe(),
                            record.holder.run
                        )))
                    }
                    Standing::Expired => (
                        PutMode::Update(version),
                        record.generation + 1,
                        Some(record.holder.clone()),
                    ),
                }
            }
        };
        let record = fresh(holder.clone(), generation, ttl);
        let sent = boot_clock();
        match store.put(&path, body(&record), mode) {
            Ok(Some(version)) => {
                if let Some(old) = &took_over {
                    store.supersede(&old.run, &holder.run);
                    tracing::info!(run = %old.run, "took over an expired lease");
                }
                return Ok(Lease::start(store, path, record, version, sent, took_over));
            }
            // Someone else wrote it in between: look again.
            Ok(None) => continue,
            Err(e) => {
                return Err(Error::Usage(format!(
                    "cannot take the lock of target `{}` in {}: {e}; nothing was run",
                    holder.target,
                    store.describe_store()
                )))
            }
        }
    }
    Err(refused(
        "is being locked by several runs at once; nothing was run. Try again".into(),
    ))
}

impl Lease {
    fn start(
        store: &Arc<BlobStore>,
        path: object_store::path::Path,
        record: Record,
        version: UpdateVersion,
        sent: Duration,
        took_over: Option<Holder>,
    ) -> Arc<dyn Held> {
        let ttl = Duration::from_secs_f64(record.ttl_seconds);
        let state = Arc::new(Mutex::new(State {
            record: record.clone(),
            version,
            tenure: Tenure::new(ttl, sent),
            token: None,
        }));
        let renewal = store.spawn(renew(store.client(), path.clone(), state.clone(), ttl));
        Arc::new(Lease {
            store: store.clone(),
            path,
            holder: record.holder,
            took_over,
            state,
            renewal,
        })
    }
}

/// Says the lease was lost (once), and stops the run from issuing.
fn lose(state: &Mutex<State>, why: String) {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    if s.tenure.lost().is_some() {
        return;
    }
    s.tenure.lose(why.clone());
    errln!("\n{why}");
    if let Some(token) = &s.token {
        token.cancel();
    }
}

/// Why the lease at `path` is no longer this holder's, from what the store has there now.
async fn taken(client: &Client, path: &object_store::path::Path, target: &str) -> String {
    let now = client
        .get(path)
        .await
        .ok()
        .flatten()
        .and_then(|c| serde_json::from_slice::<Record>(&c.bytes).ok());
    match now {
        Some(r) => format!(
            "lost the lease on target `{target}`: {} holds it now. This process issues nothing more and stops; the run goes on there",
            r.describe()
        ),
        None => format!(
            "lost the lease on target `{target}`: its lock was removed from the store. This process issues nothing more and stops"
        ),
    }
}

/// Renews the lease every quarter of its life until it is lost or released. It holds the
/// client, not the store: the store's runtime runs it.
async fn renew(
    client: Arc<Client>,
    path: object_store::path::Path,
    state: Arc<Mutex<State>>,
    ttl: Duration,
) {
    loop {
        tokio::time::sleep(ttl / 4).await;
        let (record, version) = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            if s.tenure.lost().is_some() {
                return;
            }
            let mut record = fresh(s.record.holder.clone(), s.record.generation, ttl);
            record.holder.since = s.record.holder.since.clone();
            s.record = record.clone();
            (record, s.version.clone())
        };
        let sent = boot_clock();
        match client
            .put(&path, body(&record), PutMode::Update(version))
            .await
        {
            Ok(Some(version)) => {
                let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                s.version = version;
                s.tenure.renewed(sent);
            }
            Ok(None) => {
                let why = taken(&client, &path, &record.holder.target).await;
                lose(&state, why);
                return;
            }
            Err(e) => tracing::warn!("cannot renew the vault's lease: {e}"),
        }
        let checked = state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tenure
            .check(boot_clock());
        if let Err(why) = checked {
            lose(&state, why);
            return;
        }
    }
}

impl Held for Lease {
    fn holder(&self) -> &Holder {
        &self.holder
    }

    fn took_over(&self) -> Option<&Holder> {
        self.took_over.as_ref()
    }

    fn check(&self) -> Result<(), String> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.tenure.check(boot_clock())
    }

    fn fence(&self) -> Result<(), String> {
        self.check()?;
        let (etag, generation) = {
            let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            (s.version.e_tag.clone(), s.record.generation)
        };
        // The store's answer says the lease was ours when it was given; it is believed only
        // while the lease is still trusted once it arrived (a holder stopped with its read
        // in flight wakes up to an answer older than another machine's take-over).
        match self.store.changed_since(&self.path, etag.as_deref()) {
            Ok(None) => self.check(),
            Ok(Some(bytes)) => {
                let now: Option<Record> = serde_json::from_slice(&bytes).ok();
                // Our own renewal, seen before its answer: still ours.
                if now.as_ref().is_some_and(|r| {
                    r.generation == generation && r.holder.run == self.holder.run && !r.released
                }) {
                    return self.check();
                }
                let (client, path, target) = (
                    self.store.client(),
                    self.path.clone(),
                    self.holder.target.clone(),
                );
                let why = self
                    .store
                    .block(async move { taken(&client, &path, &target).await });
                lose(&self.state, why.clone());
                Err(why)
            }
            Err(e) => Err(format!(
                "cannot confirm with {} that this run still holds the vault's lease: {e}",
                self.store.describe_store()
            )),
        }
    }

    fn watch(&self, token: CancellationToken) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.tenure.lost().is_some() {
            token.cancel();
        }
        s.token = Some(token);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
        let (mut record, version, lost) = {
            let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            (
                s.record.clone(),
                s.version.clone(),
                s.tenure.lost().is_some(),
            )
        };
        if lost {
            return;
        }
        // Released only if still ours: a lease taken over meanwhile stays the new holder's.
        record.released = true;
        record.renewed = now_rfc3339();
        let _ = self
            .store
            .put(&self.path, body(&record), PutMode::Update(version));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ttl: f64, released: bool) -> Record {
        Record {
            holder: Holder {
                run: "r".into(),
                user: "u".into(),
                host: "h".into(),
                pid: 1,
                since: "s".into(),
                target: "t".into(),
            },
            renewed: "x".into(),
            generation: 3,
            expires: "y".into(),
            ttl_seconds: ttl,
            released,
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn expiry_is_judged_on_the_store_clock_alone() {
        let live = record(60.0, false);
        assert_eq!(standing(&live, at(0), at(59)), Standing::Live);
        assert_eq!(standing(&live, at(0), at(60)), Standing::Live);
        assert_eq!(standing(&live, at(0), at(61)), Standing::Expired);
        // A store clock behind the blob's time (it cannot be, but a probe may round down).
        assert_eq!(standing(&live, at(10), at(0)), Standing::Live);
        assert_eq!(standing(&record(60.0, true), at(0), at(1)), Standing::Free);
    }

    #[test]
    fn a_holder_stops_trusting_its_lease_before_anyone_else_may_take_it() {
        let ttl = Duration::from_secs(60);
        let mut t = Tenure::new(ttl, Duration::from_secs(100));
        assert!(t.check(Duration::from_secs(144)).is_ok());
        let err = t.check(Duration::from_secs(145)).unwrap_err();
        assert!(err.contains("last renewed 45s ago"), "{err}");
        // A renewal sent later moves the start; one sent earlier (answered late) does not.
        t.renewed(Duration::from_secs(130));
        t.renewed(Duration::from_secs(120));
        assert!(t.check(Duration::from_secs(174)).is_ok());
        assert!(t.check(Duration::from_secs(175)).is_err());
        // Lost is final, whatever renewals say afterwards.
        t.lose("taken by run b".into());
        t.renewed(Duration::from_secs(200));
        assert_eq!(
            t.check(Duration::from_secs(201)).unwrap_err(),
            "taken by run b"
        );
        // The holder gives up (45 s) before another machine may take over (60 s on the
        // store's clock, which started no earlier than the renewal was sent).
        assert!(t.trusted() < ttl);
    }

    #[test]
    fn the_boot_clock_moves_forward() {
        let a = boot_clock();
        let b = boot_clock();
        assert!(a > Duration::ZERO && b >= a);
    }
}
