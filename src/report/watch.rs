//! `runbook runs --watch [RUN]`: follows a live run's records as they are written, from any
//! machine that sees its store, until the run ends (its last attempt wrote its end and no
//! process runs it any more).

use crate::error::{exit, Error};
use crate::journal::runs::find;
use crate::journal::store::Store;
use crate::journal::{Entry, Record};
use std::time::Duration;

/// How often the store is asked for new records.
const POLL: Duration = Duration::from_millis(500);

/// Prints run `run`'s records (the newest running run's without one) as they come.
pub fn follow(store: &dyn Store, run: Option<&str>) -> Result<i32, Error> {
    let id = match run {
        Some(run) => find(store, run)?,
        None => newest_running(store)?,
    };
    let loaded = store.load(&id).map_err(Error::Usage)?;
    let origin = loaded.records.first().map(|r| r.at);
    outln!("run {id}: {}", crate::journal::runs::state_of(&loaded));
    let mut last = 0;
    let mut origin = origin;
    let mut show = |records: &[Record], last: &mut u64| {
        for r in records {
            let start = *origin.get_or_insert(r.at);
            outln!("{}", super::show::line(r, start));
            *last = r.seq;
        }
    };
    show(&loaded.records, &mut last);
    let mut running = loaded.running;
    let mut ended = ended(&loaded.records);
    loop {
        if ended && !running {
            break;
        }
        std::thread::sleep(POLL);
        let new = store.records_after(&id, last).map_err(Error::Usage)?;
        if !new.is_empty() {
            ended = ended_after(ended, &new);
            show(&new, &mut last);
        }
        // Whether a process still runs it (a crashed one never writes its end).
        let now = store.load(&id).map_err(Error::Usage)?;
        running = now.running;
        if !running && now.records.last().map_or(0, |r| r.seq) == last {
            outln!("run {id}: {}", crate::journal::runs::state_of(&now));
            break;
        }
    }
    Ok(exit::OK)
}

fn ended(records: &[Record]) -> bool {
    ended_after(false, records)
}

/// Whether the last attempt ended, after `records` follow what was `before`.
fn ended_after(before: bool, records: &[Record]) -> bool {
    records.iter().fold(before, |ended, r| match r.entry {
        Entry::End { .. } => true,
        Entry::Start(_) | Entry::Resumed { .. } => false,
        _ => ended,
    })
}

/// The newest run a process runs now.
fn newest_running(store: &dyn Store) -> Result<String, Error> {
    let ids = store.ids()?;
    for id in ids.iter().rev() {
        if store.load(id).is_ok_and(|l| l.running) {
            return Ok(id.clone());
        }
    }
    Err(Error::Usage(format!(
        "no run is running in {}; name one: `runbook runs --watch RUN` (see `runbook runs`)",
        store.describe()
    )))
}
