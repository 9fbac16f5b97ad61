//! A journal in Blob Storage: one blob per record (`<seq>.json`, twelve digits), each
//! written only if absent, so two writers can never interleave or overwrite records: the
//! second one to write a sequence number is refused and stops. Every hundred records are
//! compacted into one segment (`seg-<first>-<last>.jsonl`, also create-if-absent) and the
//! record blobs deleted, so a resume of 10,000 records reads about 200 blobs, in parallel.
//! A blob is written whole or not at all: no record is ever torn.

use super::blob::{BlobStore, Client};
use super::Sink;
use crate::journal::{parse_lines, Loaded, Record};
use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as Key;
use object_store::PutMode;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Records per segment.
pub const BLOCK: u64 = 100;
/// Blobs read at once.
const READS: usize = 32;

fn record_name(seq: u64) -> String {
    format!("{seq:012}.json")
}

fn segment_name(first: u64, last: u64) -> String {
    format!("seg-{first:012}-{last:012}.jsonl")
}

/// What a blob of a journal folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    Record(u64),
    Segment(u64, u64),
}

fn piece(name: &str) -> Option<Piece> {
    if let Some(seq) = name.strip_suffix(".json") {
        return seq.parse().ok().map(Piece::Record);
    }
    let range = name.strip_prefix("seg-")?.strip_suffix(".jsonl")?;
    let (first, last) = range.split_once('-')?;
    Some(Piece::Segment(first.parse().ok()?, last.parse().ok()?))
}

/// The records after `after` of the journal under `dir`, in order. A record blob deleted by
/// a compaction between the listing and its read sends the reader round again.
pub async fn read(
    client: &Client,
    dir: &Key,
    after: u64,
    place: &str,
) -> Result<Vec<Record>, String> {
    for _ in 0..5 {
        match read_once(client, dir, after, place).await? {
            Some(records) => return Ok(records),
            None => continue,
        }
    }
    Err(format!(
        "{place} kept changing while it was read; try again"
    ))
}

async fn read_once(
    client: &Client,
    dir: &Key,
    after: u64,
    place: &str,
) -> Result<Option<Vec<Record>>, String> {
    let listed = client
        .list(dir)
        .await
        .map_err(|e| format!("cannot list {place}: {e}"))?;
    let mut pieces: Vec<(Piece, Key)> = listed
        .into_iter()
        .filter_map(|m| Some((piece(m.location.filename()?)?, m.location)))
        .collect();
    let segments: Vec<(u64, u64)> = pieces
        .iter()
        .filter_map(|(p, _)| match p {
            Piece::Segment(a, b) => Some((*a, *b)),
            Piece::Record(_) => None,
        })
        .collect();
    let covered = |seq: u64| segments.iter().any(|(a, b)| (*a..=*b).contains(&seq));
    pieces.retain(|(p, _)| match *p {
        Piece::Segment(_, last) => last > after,
        Piece::Record(seq) => seq > after && !covered(seq),
    });
    let reads = futures::stream::iter(pieces.into_iter().map(|(_, key)| async move {
        let got = client.get(&key).await;
        (key, got)
    }))
    .buffer_unordered(READS)
    .collect::<Vec<_>>()
    .await;
    let mut records = BTreeMap::new();
    for (key, got) in reads {
        let shown = format!("{place}{}", key.filename().unwrap_or_default());
        let Some(blob) = got.map_err(|e| format!("cannot read {shown}: {e}"))? else {
            return Ok(None);
        };
        for record in parse_lines(&blob.bytes, &shown)? {
            if record.seq > after {
                records.insert(record.seq, record);
            }
        }
    }
    // Records are written one after another, each only once the one before it is stored:
    // a gap means something removed a record.
    let first = records.keys().next().copied().unwrap_or(after + 1);
    if after == 0 && first != 1 && !records.is_empty() {
        return Err(format!(
            "{place}: record 1 is missing; the journal cannot be trusted"
        ));
    }
    for (expected, seq) in (first..).zip(records.keys()) {
        if *seq != expected {
            return Err(format!(
                "{place}: record {expected} is missing; the journal cannot be trusted past it"
            ));
        }
    }
    Ok(Some(records.into_values().collect()))
}

/// Writes a run's records, one blob each, and compacts each full hundred into a segment.
pub struct RecordSink {
    store: Arc<BlobStore>,
    dir: Key,
    place: String,
    /// The records of the hundred being filled (first sequence number, lines).
    block: (u64, Vec<u8>),
}

impl RecordSink {
    /// The sink of a new journal, or of one `loaded` read (whose full hundreds not yet
    /// compacted, left by a crash, are compacted now).
    pub fn new(
        store: Arc<BlobStore>,
        dir: Key,
        place: String,
        loaded: Option<&Loaded>,
    ) -> RecordSink {
        let records = loaded.map_or(&[][..], |l| l.records.as_slice());
        let last = records.last().map_or(0, |r| r.seq);
        let start = last / BLOCK * BLOCK + 1;
        let mut lines = Vec::new();
        for r in records.iter().filter(|r| r.seq >= start) {
            lines.extend(serde_json::to_vec(r).unwrap_or_default());
            lines.push(b'\n');
        }
        let sink = RecordSink {
            store,
            dir,
            place,
            block: (start, lines),
        };
        if !records.is_empty() {
            sink.compact_left(records);
        }
        sink
    }

    /// Compacts the full hundreds of `records` whose record blobs are still there.
    fn compact_left(&self, records: &[Record]) {
        let client = self.store.client();
        let dir = self.dir.clone();
        let names: Vec<Piece> = match self.store.block({
            let (c, d) = (client.clone(), dir.clone());
            async move { c.list(&d).await }
        }) {
            Ok(listed) => listed
                .iter()
                .filter_map(|m| piece(m.location.filename()?))
                .collect(),
            Err(_) => return,
        };
        let full = records.last().map_or(0, |r| r.seq) / BLOCK;
        for block in 0..full {
            let (first, last) = (block * BLOCK + 1, (block + 1) * BLOCK);
            let loose = names
                .iter()
                .any(|p| matches!(p, Piece::Record(s) if (first..=last).contains(s)));
            if !loose {
                continue;
            }
            let mut lines = Vec::new();
            for r in records.iter().filter(|r| (first..=last).contains(&r.seq)) {
                lines.extend(serde_json::to_vec(r).unwrap_or_default());
                lines.push(b'\n');
            }
            let (c, d) = (client.clone(), dir.clone());
            let _ = self
                .store
                .block(async move { compact(&c, &d, first, last, Bytes::from(lines)).await });
        }
    }
}

/// Writes the segment of records `first..=last` (unless one is there), then deletes their
/// record blobs.
async fn compact(
    client: &Client,
    dir: &Key,
    first: u64,
    last: u64,
    lines: Bytes,
) -> Result<(), String> {
    let segment = dir.child(segment_name(first, last));
    client.put(&segment, lines, PutMode::Create).await?;
    let deletes = futures::stream::iter((first..=last).map(|seq| {
        let key = dir.child(record_name(seq));
        async move { client.delete(&key).await }
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
    deletes.into_iter().collect()
}

impl Sink for RecordSink {
    fn write(&mut self, seq: u64, line: &[u8]) -> Result<(), String> {
        let client = self.store.client();
        let key = self.dir.child(record_name(seq));
        let body = Bytes::copy_from_slice(line);
        let written = self
            .store
            .block(async move { client.put(&key, body, PutMode::Create).await });
        match written {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(format!(
                    "record {seq} of the journal {} was written by another process: another machine took this run over, so this one issues nothing more",
                    self.place
                ))
            }
            Err(e) => return Err(format!("the journal {} cannot be written: {e}", self.place)),
        }
        if seq < self.block.0 {
            return Ok(());
        }
        self.block.1.extend_from_slice(line);
        if seq.is_multiple_of(BLOCK) {
            let first = self.block.0;
            let lines = Bytes::from(std::mem::take(&mut self.block.1));
            self.block.0 = seq + 1;
            let (client, dir) = (self.store.client(), self.dir.clone());
            // In the background: the records are stored already; a compaction cut short is
            // done by the next resume.
            self.store.spawn(async move {
                if let Err(e) = compact(&client, &dir, first, seq, lines).await {
                    tracing::debug!("journal compaction of {first}-{seq} left for later: {e}");
                }
            });
        }
        Ok(())
    }

    fn write_torn(&mut self, _seq: u64, _line: &[u8]) {
        // A blob is written whole or not at all: a crash while writing leaves no record.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_names_are_read_back() {
        assert_eq!(piece(&record_name(42)), Some(Piece::Record(42)));
        assert_eq!(
            piece(&segment_name(101, 200)),
            Some(Piece::Segment(101, 200))
        );
        assert_eq!(piece("waiting.json.tmp"), None);
        assert!(record_name(9) < record_name(10), "names sort by number");
    }
}
