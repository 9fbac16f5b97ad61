//! The journal of a run: one JSON record per line in `.runbook/runs/<id>/journal.jsonl`,
//! each written and synced to disk before the run goes on. It holds what the run was
//! (runbook, hashes, target, operator) and every primitive call's answer: reads and their
//! results, the intent before a mutating call and its result after, waits, manual steps.
//!
//! `runbook resume` runs the same script again and answers its calls from the journal, in
//! order, without reaching the service; past the journal's end the run goes on live. A
//! torn last line (a crash while writing) is dropped when the journal is read.

pub mod approvals;
pub mod inherit;
pub mod lock;
pub mod machine;
pub mod runs;
pub mod store;

use crate::backend::{BackendError, Item, JobInfo, Operation, OperationRequest, Site};
use crate::clock::Timestamp;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::{Held, Sink, Store};

/// The journal's file name in a run folder.
pub const FILE: &str = "journal.jsonl";

/// A line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// On the run's clock (simulated time on the simulator).
    pub at: Timestamp,
    #[serde(flatten)]
    pub entry: Entry,
}

/// What a record says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    /// The first record: what this run is.
    Start(Header),
    /// A resume of the run began.
    Resumed {
        operator: String,
        host: String,
        pid: u32,
        /// Files that changed since the run started (resumed with `--allow-changed`).
        changed: Vec<String>,
        /// Bytes of a torn last line that were dropped.
        dropped_bytes: u64,
    },
    /// A read and its answer (`call`: item, vms, providers).
    Read {
        call: String,
        key: String,
        answer: Answer<serde_json::Value>,
    },
    /// About to issue a mutating call. Written before the call leaves.
    Intent {
        vm: String,
        /// The operation, or `cancel`.
        operation: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<OperationRequest>,
        /// The job a cancel or a resume is for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job: Option<String>,
        /// A resume: the manual action of the plan's job it answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<String>,
        /// The id the service echoes in the job it creates (`x-ms-client-request-id`).
        key: String,
        /// The runbook line that made the call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<String>,
    },
    /// What the service answered to the intent `intent`.
    Issued {
        intent: u64,
        answer: Answer<JobInfo>,
        /// True when the answer was found after a crash (the job that intent created).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        settled: bool,
    },
    /// A wait on jobs ended.
    Waited {
        jobs: Vec<String>,
        outcome: Waited,
        /// When the run saw each job of `Done` end, on its own clock.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        seen: Vec<Timestamp>,
    },
    /// A manual step was answered. The record's `at` is on the run's clock (simulated time
    /// on the embedded simulator); the operator answers in real time, so the step also
    /// records the wall clock and how long it waited in real time, which its timeout counts.
    Step {
        number: u32,
        title: String,
        outcome: StepOutcome,
        /// When the step was answered (or timed out) on the wall clock, RFC 3339.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answered_wall: Option<String>,
        /// How long the step waited for its answer, in real seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        waited_real_seconds: Option<u64>,
        /// The step's timeout, in real seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_real_seconds: Option<u64>,
    },
    /// A VM passed verification (for the report).
    Verified {
        vm: String,
        site: Site,
        what: String,
    },
    Note {
        text: String,
    },
    /// A call that issued no operation: the VM was already where it would take it.
    Skipped {
        vm: String,
        operation: Operation,
        /// The id of the job the call returned (succeeded at once).
        job: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<String>,
    },
    /// About to run action `name` of runbook.toml. Written before it starts.
    ActionIntent {
        name: String,
        /// The idempotency key the action is given (the first intent's, on a re-run).
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<String>,
    },
    /// How the action of intent `intent` ended.
    ActionDone {
        intent: u64,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// The last bytes of its output.
        output: String,
        seconds: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        why: Option<String>,
        /// It failed before it started (a variable missing, a program that cannot be
        /// started): a resume that reaches it where the run stopped simply runs it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        not_started: bool,
    },
    /// A notification's delivery ended (in the background; recorded when the run next
    /// looked).
    Notified {
        channel: String,
        event: String,
        ok: bool,
        attempts: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        why: Option<String>,
    },
    /// The run stopped: how, and the VMs' states at that moment.
    End {
        state: RunState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<String>,
        items: Vec<Item>,
    },
}

impl Entry {
    /// Whether the entry answers a call (replayed in order on resume), rather than
    /// describing the run.
    pub fn is_answer(&self) -> bool {
        matches!(
            self,
            Entry::Read { .. }
                | Entry::Intent { .. }
                | Entry::Issued { .. }
                | Entry::Waited { .. }
                | Entry::Step { .. }
                | Entry::ActionIntent { .. }
                | Entry::ActionDone { .. }
        )
    }

    /// A short description, for divergence messages.
    pub fn describe(&self) -> String {
        match self {
            Entry::Start(_) => "the run's start".into(),
            Entry::Resumed { .. } => "a resume".into(),
            Entry::Read { call, key, .. } => format!("a read of {call} `{key}`"),
            Entry::Intent { vm, operation, .. } => format!("{operation} of `{vm}`"),
            Entry::Issued { intent, .. } => format!("the answer to record {intent}"),
            Entry::Waited { jobs, .. } => format!("a wait for {} job(s)", jobs.len()),
            Entry::Step { title, .. } => format!("manual step `{title}`"),
            Entry::Verified { vm, .. } => format!("a verification of `{vm}`"),
            Entry::Note { .. } => "a note".into(),
            Entry::Skipped { vm, operation, .. } => format!("{operation} of `{vm}`, skipped"),
            Entry::End { .. } => "the run's end".into(),
            Entry::ActionIntent { name, .. } => format!("action `{name}`"),
            Entry::Notified { channel, event, .. } => {
                format!("notification `{event}` to `{channel}`")
            }
            Entry::ActionDone { intent, .. } => format!("the end of the action of record {intent}"),
        }
    }
}

/// A result as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer<T> {
    Ok(T),
    Err(BackendError),
}

impl<T> From<Result<T, BackendError>> for Answer<T> {
    fn from(r: Result<T, BackendError>) -> Self {
        match r {
            Ok(v) => Answer::Ok(v),
            Err(e) => Answer::Err(e),
        }
    }
}

impl<T> From<Answer<T>> for Result<T, BackendError> {
    fn from(a: Answer<T>) -> Self {
        match a {
            Answer::Ok(v) => Ok(v),
            Answer::Err(e) => Err(e),
        }
    }
}

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Waited {
    /// Every job ended (successfully or not).
    Done(Vec<JobInfo>),
    /// The timeout passed; the jobs still running then.
    TimedOut(Vec<JobInfo>),
    /// The service could not be read.
    Failed(BackendError),
    /// A recovery plan's job was suspended at a manual action (the jobs as seen then): the
    /// operator's approval and the job's resume follow.
    Suspended(Vec<JobInfo>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    Approved { by: String },
    TimedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Succeeded,
    Failed,
    Interrupted,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
        }
    }
}

/// What a run is: written once, in the first record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub run: String,
    /// The runbook, as an absolute path.
    pub runbook: PathBuf,
    pub sha256: String,
    /// Modules it imports: source name, absolute path (none for the stdlib), hash.
    pub modules: Vec<ModuleHash>,
    /// The target of runbook.toml, or none for the embedded simulator.
    pub target: Option<String>,
    /// The project folder on the machine that started the run: a resume from another
    /// machine finds the runbook and its modules at the same places in its own project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<PathBuf>,
    /// The vault the target named (endpoint, subscription, resource group, vault): a
    /// resume refuses to go on against another one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<String>,
    /// The inventory the simulator started from.
    pub inventory: Option<String>,
    /// How much faster than real time the simulator ran (none: a virtual clock).
    pub speed: Option<f64>,
    pub operator: String,
    pub host: String,
    pub pid: u32,
    /// Wall-clock start, RFC 3339.
    pub started_wall: String,
    pub version: String,
    /// The parameters' values the run started with (none in a journal written before
    /// parameters were recorded): a resume goes on with them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub params: std::collections::BTreeMap<String, String>,
}

impl Header {
    /// Moves the runbook and its modules from the project the run started in to
    /// `project` (the same files, on another machine).
    pub fn rebase(&mut self, project: &Path) {
        let Some(old) = self.project.clone().filter(|old| old != project) else {
            return;
        };
        let moved = |path: &Path| -> PathBuf {
            match path.strip_prefix(&old) {
                Ok(rest) => project.join(rest),
                Err(_) => path.to_path_buf(),
            }
        };
        let runbook = moved(&self.runbook);
        self.runbook = runbook;
        for m in &mut self.modules {
            m.path = m.path.as_deref().map(&moved);
        }
        self.project = Some(project.to_path_buf());
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleHash {
    pub name: String,
    pub path: Option<PathBuf>,
    pub sha256: String,
}

/// The hex SHA-256 of `text`.
pub fn sha256(text: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who runs this process, from the OS account rather than the environment: the login name
/// the system has for the real user id, the host, and the uid, e.g. `alice@dr-jump (uid
/// 1001)`. `$USER` is only a fallback for a uid the system has no name for.
pub fn operator() -> String {
    // SAFETY: getuid(2) cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    let user = login_name(uid)
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{} (uid {uid})", hostname())
}

/// The login name of `uid` in the system's user database.
fn login_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value for getpwuid_r to fill in.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to memory that lives through the call, and `buf.len()`
    // is the size of `buf`; the strings it fills in point into `buf`.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name is a NUL-terminated string inside `buf`, which is still alive.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty())
}

/// Whether process `pid` on `host` still runs. A process on another host cannot be seen
/// from here, so it counts as running.
pub fn process_alive(pid: u32, host: &str) -> bool {
    if host != hostname() {
        return true;
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// This machine's name, as the kernel has it.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname writes at most that.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).trim().to_string()
    } else {
        String::new()
    };
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// A journal read back: its records and what was dropped at its end.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Where it was read: the journal file, or its place in the store.
    pub path: PathBuf,
    pub records: Vec<Record>,
    /// Length of the complete part of the file, in bytes.
    pub good_len: u64,
    /// Bytes after the last complete record (a torn line).
    pub torn: u64,
    /// Whether a process runs it now (holds its journal's lock, or its vault's lease).
    pub running: bool,
    /// The run that took its lock over, if one did: it cannot be resumed.
    pub superseded: Option<String>,
    /// Who runs it, when the store can tell (the holder of its vault's lease).
    pub holder: Option<String>,
}

impl Loaded {
    pub fn header(&self) -> Option<&Header> {
        self.records.iter().find_map(|r| match &r.entry {
            Entry::Start(h) => Some(h),
            _ => None,
        })
    }
}

/// Reads a journal. A last line that is incomplete or unreadable (a crash while it was
/// written) is left out and reported in `torn`; an unreadable line before the last is an
/// error, since records after it were synced and something else damaged the file.
pub fn load(path: &Path) -> Result<Loaded, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut records = Vec::new();
    let mut good_len = 0u64;
    let mut start = 0usize;
    while start < bytes.len() {
        let end = bytes[start..].iter().position(|&b| b == b'\n');
        let (line, next) = match end {
            Some(e) => (&bytes[start..start + e], start + e + 1),
            None => (&bytes[start..], bytes.len()),
        };
        let parsed = serde_json::from_slice::<Record>(line);
        match (parsed, end) {
            (Ok(record), Some(_)) => {
                records.push(record);
                good_len = next as u64;
            }
            (_, None) => break,
            (Err(e), Some(_)) if next >= bytes.len() => {
                // The last line, complete but unreadable: torn while written.
                tracing::debug!("journal's last line unreadable: {e}");
                break;
            }
            (Err(e), Some(_)) => {
                let line_no = records.len() + 1;
                return Err(format!(
                    "{}: line {line_no} is damaged ({e}); the journal cannot be trusted past it",
                    path.display()
                ));
            }
        }
        start = next;
    }
    Ok(Loaded {
        path: path.to_path_buf(),
        torn: bytes.len() as u64 - good_len,
        records,
        good_len,
        running: runs::is_locked(path),
        superseded: path.parent().and_then(runs::superseded_by),
        holder: None,
    })
}

/// Reads journal lines that must all be whole (a segment or a record of a store whose
/// writes are atomic), in order.
pub(crate) fn parse_lines(bytes: &[u8], place: &str) -> Result<Vec<Record>, String> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_slice::<Record>(line).map_err(|e| {
                format!(
                    "{place}: line {} is damaged ({e}); the journal cannot be trusted past it",
                    i + 1
                )
            })
        })
        .collect()
}

/// Where a test stops the process (`RUNBOOK_CRASH_AT=<seq>:<before|torn|after>`): before
/// record `seq` is written, with half of it written, or right after it was synced; or
/// where writing fails as on a full disk (`<seq>:full`); or paused right after it (`<seq>:stop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CrashPoint {
    seq: u64,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before,
    Torn,
    After,
    Full,
    /// Stops the process (SIGSTOP) once the record is written, as a laptop put to sleep:
    /// it goes on where it was when continued.
    Stop,
}

impl CrashPoint {
    fn from_env() -> Option<CrashPoint> {
        let text = std::env::var("RUNBOOK_CRASH_AT").ok()?;
        let (seq, phase) = text.split_once(':')?;
        let phase = match phase {
            "before" => Phase::Before,
            "torn" => Phase::Torn,
            "after" => Phase::After,
            "full" => Phase::Full,
            "stop" => Phase::Stop,
            _ => return None,
        };
        Some(CrashPoint {
            seq: seq.parse().ok()?,
            phase,
        })
    }
}

/// Ends the process as a crash would: SIGKILL, nothing flushed, nothing unwound.
fn crash() -> ! {
    // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}

/// The journal of a running run: appends records and, on resume, hands out the answers of
/// the previous attempts in order.
pub struct Journal {
    /// Where it is, for messages.
    place: String,
    sink: RefCell<Box<dyn Sink>>,
    /// The store it is in (approvals go there too); none for a bare journal file.
    store: Option<Arc<dyn Store>>,
    /// The vault lock the run holds: checked before each record, and asked of the store
    /// after each intent, before its request leaves.
    fence: RefCell<Option<Arc<dyn Held>>>,
    next_seq: Cell<u64>,
    /// Records of earlier attempts not yet replayed (answers and descriptions).
    replay: RefCell<VecDeque<Record>>,
    /// The last answer of each earlier attempt: where that attempt stopped.
    stopped: std::collections::HashSet<u64>,
    /// Why the journal cannot be written any more.
    broken: RefCell<Option<String>>,
    run: String,
    crash: Option<CrashPoint>,
}

impl Journal {
    /// Creates the journal of a new run in folder `dir` and writes its header.
    pub fn create(dir: &Path, header: Header, at: Timestamp) -> Result<Journal, String> {
        let path = dir.join(FILE);
        let sink = store::local::FileSink::create(&path)?;
        Journal::start(
            Box::new(sink),
            crate::paths::display(&path),
            None,
            header,
            at,
        )
    }

    /// Opens the journal file at `path` (read as `loaded`) to resume it.
    pub fn reopen(path: &Path, loaded: &Loaded, run: &str) -> Result<Journal, String> {
        let sink = store::local::FileSink::reopen(path, loaded, run)?;
        Ok(Journal::resume(
            Box::new(sink),
            crate::paths::display(path),
            None,
            loaded,
            run,
        ))
    }

    /// The journal of new run `id` in `store`, its header written.
    pub fn create_in(
        store: Arc<dyn Store>,
        id: &str,
        header: Header,
        at: Timestamp,
    ) -> Result<Journal, String> {
        let sink = store.create_journal(id)?;
        let place = store.journal_place(id);
        Journal::start(sink, place, Some(store), header, at)
    }

    /// The journal of run `id` in `store` (read as `loaded`), to resume it.
    pub fn reopen_in(store: Arc<dyn Store>, id: &str, loaded: &Loaded) -> Result<Journal, String> {
        let sink = store.reopen_journal(id, loaded)?;
        let place = store.journal_place(id);
        Ok(Journal::resume(sink, place, Some(store), loaded, id))
    }

    fn start(
        sink: Box<dyn Sink>,
        place: String,
        store: Option<Arc<dyn Store>>,
        header: Header,
        at: Timestamp,
    ) -> Result<Journal, String> {
        let journal = Journal {
            place,
            sink: RefCell::new(sink),
            store,
            fence: RefCell::new(None),
            next_seq: Cell::new(1),
            replay: RefCell::new(VecDeque::new()),
            stopped: std::collections::HashSet::new(),
            broken: RefCell::new(None),
            run: header.run.clone(),
            crash: CrashPoint::from_env(),
        };
        journal.append(at, Entry::Start(header))?;
        Ok(journal)
    }

    /// Replays the answers of earlier attempts before new calls are made.
    fn resume(
        sink: Box<dyn Sink>,
        place: String,
        store: Option<Arc<dyn Store>>,
        loaded: &Loaded,
        run: &str,
    ) -> Journal {
        let replay = loaded
            .records
            .iter()
            .filter(|r| {
                !matches!(
                    r.entry,
                    Entry::Start(_) | Entry::Resumed { .. } | Entry::End { .. }
                )
            })
            .cloned()
            .collect();
        // An attempt ends where the next one resumed (or where the file ends).
        let mut stopped = std::collections::HashSet::new();
        let mut last = None;
        for r in &loaded.records {
            match r.entry {
                Entry::Resumed { .. } => stopped.extend(last.take()),
                ref e if e.is_answer() => last = Some(r.seq),
                _ => {}
            }
        }
        stopped.extend(last);
        Journal {
            place,
            sink: RefCell::new(sink),
            store,
            fence: RefCell::new(None),
            next_seq: Cell::new(loaded.records.last().map_or(1, |r| r.seq + 1)),
            replay: RefCell::new(replay),
            stopped,
            broken: RefCell::new(None),
            run: run.to_string(),
            crash: CrashPoint::from_env(),
        }
    }

    /// From now on, records are written only while `lock` is held, and each intent's
    /// request leaves only after the store confirmed it still is.
    pub fn fenced_by(&self, lock: Arc<dyn Held>) {
        *self.fence.borrow_mut() = Some(lock);
    }

    /// The store the journal is in, if it is in one.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    /// Where the journal is, for messages.
    pub fn place(&self) -> &str {
        &self.place
    }

    pub fn run(&self) -> &str {
        &self.run
    }

    /// Why records can no longer be written, if they cannot.
    pub fn broken(&self) -> Option<String> {
        self.broken.borrow().clone()
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.get()
    }

    /// Whether record `seq` is where an earlier attempt stopped: the last answer it
    /// recorded. A failure there that is not the service's own answer (a lost answer, a
    /// wait that timed out) is asked again by the next attempt, whose answer then follows in
    /// the journal and supersedes it; with nothing after it, the call is asked live.
    pub fn stopped_on(&self, seq: u64) -> bool {
        self.stopped.contains(&seq)
    }

    /// True while earlier attempts' answers remain to be replayed.
    pub fn replaying(&self) -> bool {
        self.replay.borrow().iter().any(|r| r.entry.is_answer())
    }

    /// The next recorded answer, left in place.
    pub fn peek_answer(&self) -> Option<Record> {
        self.replay
            .borrow()
            .iter()
            .find(|r| r.entry.is_answer())
            .cloned()
    }

    /// The next recorded answer, skipping descriptive records.
    pub fn next_answer(&self) -> Option<Record> {
        let mut replay = self.replay.borrow_mut();
        while let Some(r) = replay.pop_front() {
            if r.entry.is_answer() {
                return Some(r);
            }
        }
        None
    }

    /// Writes a record and makes it durable (synced to disk, or stored). Returns its
    /// sequence number. An intent is followed by the fence: its request may leave only
    /// when the run's lock is still its own.
    pub fn append(&self, at: Timestamp, entry: Entry) -> Result<u64, String> {
        if let Some(why) = self.broken() {
            return Err(why);
        }
        let fence = self.fence.borrow().clone();
        if let Some(Err(why)) = fence.as_ref().map(|f| f.check()) {
            return Err(self.break_with(why));
        }
        let seq = self.next_seq.get();
        let intent = matches!(entry, Entry::Intent { .. });
        let record = Record { seq, at, entry };
        let mut line = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let phase = self.crash.filter(|c| c.seq == seq).map(|c| c.phase);
        if phase == Some(Phase::Before) {
            crash();
        }
        let mut sink = self.sink.borrow_mut();
        if phase == Some(Phase::Torn) {
            sink.write_torn(seq, &line);
            crash();
        }
        let written = if phase == Some(Phase::Full) {
            Err(format!(
                "the journal {} cannot be written: {}",
                self.place,
                std::io::Error::from(std::io::ErrorKind::StorageFull)
            ))
        } else {
            sink.write(seq, &line)
        };
        drop(sink);
        if let Err(why) = written {
            return Err(self.break_with(why));
        }
        self.next_seq.set(seq + 1);
        if phase == Some(Phase::After) {
            crash();
        }
        if phase == Some(Phase::Stop) {
            // Directed at this thread, so it stops here, before its next instruction (a
            // signal to the process may be taken a moment later, by another thread).
            // SAFETY: raise(3) has no memory-safety preconditions.
            unsafe {
                libc::raise(libc::SIGSTOP);
            }
        }
        if let (true, Some(fence)) = (intent, fence) {
            fence.fence().map_err(|why| self.break_with(why))?;
        }
        Ok(seq)
    }

    /// Nothing more is written: `why`.
    fn break_with(&self, why: String) -> String {
        *self.broken.borrow_mut() = Some(why.clone());
        why
    }

    /// Writes a descriptive record, unless it is being replayed: while earlier attempts'
    /// records remain, the one it repeats is consumed instead.
    pub fn describe(&self, at: Timestamp, entry: Entry) {
        if self.replaying() {
            let mut replay = self.replay.borrow_mut();
            if replay.front().is_some_and(|r| !r.entry.is_answer()) {
                replay.pop_front();
            }
            return;
        }
        if let Err(e) = self.append(at, entry) {
            tracing::warn!("{e}");
        }
    }

    /// The id the service echoes for intent `seq`: shaped like a GUID, unique to the run.
    pub fn key(&self, seq: u64) -> String {
        let h = sha256(format!("{}/{seq}", self.run).as_bytes());
        format!(
            "{}-{}-4{}-8{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..15],
            &h[15..18],
            &h[18..30]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn header(run: &str) -> Header {
        Header {
            run: run.into(),
            runbook: PathBuf::from("/tmp/x.rhai"),
            sha256: sha256(b"x"),
            modules: Vec::new(),
            target: None,
            project: None,
            vault: None,
            inventory: None,
            speed: Some(1.0),
            operator: "me@here".into(),
            host: "here".into(),
            pid: 1,
            started_wall: "2026-11-26T00:00:00Z".into(),
            version: "0".into(),
            params: Default::default(),
        }
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::create(dir.path(), header("r1"), Timestamp(5)).unwrap();
        j.append(Timestamp(6), Entry::Note { text: "one".into() })
            .unwrap();
        // The process that wrote it is gone.
        drop(j);
        let path = dir.path().join(FILE);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"seq\":3,\"at\":7,\"type\":\"no").unwrap();
        drop(f);
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.records.len(), 2);
        assert!(loaded.torn > 0);
        let j = Journal::reopen(&path, &loaded, "r1").unwrap();
        let seq = j
            .append(Timestamp(8), Entry::Note { text: "two".into() })
            .unwrap();
        assert_eq!(seq, 3);
        let again = load(&path).unwrap();
        assert_eq!(again.torn, 0);
        assert_eq!(again.records.len(), 3);
        assert_eq!(again.records[2].seq, 3);
    }

    #[test]
    fn a_damaged_line_before_the_last_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        std::fs::write(&path, "garbage\n{\"seq\":1}\n").unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.contains("line 1 is damaged"), "{err}");
    }

    #[test]
    fn replay_hands_out_answers_in_order_and_skips_descriptions() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::create(dir.path(), header("r2"), Timestamp(0)).unwrap();
        j.describe(Timestamp(1), Entry::Note { text: "n".into() });
        j.append(
            Timestamp(2),
            Entry::Read {
                call: "item".into(),
                key: "web-01".into(),
                answer: Answer::Ok(serde_json::json!(1)),
            },
        )
        .unwrap();
        drop(j);
        let path = dir.path().join(FILE);
        let loaded = load(&path).unwrap();
        let j = Journal::reopen(&path, &loaded, "r2").unwrap();
        assert!(j.replaying());
        let r = j.next_answer().unwrap();
        assert!(matches!(r.entry, Entry::Read { ref key, .. } if key == "web-01"));
        assert!(!j.replaying());
        assert!(j.next_answer().is_none());
    }

    #[test]
    fn keys_are_unique_per_run_and_record() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::create(dir.path(), header("r3"), Timestamp(0)).unwrap();
        assert_ne!(j.key(4), j.key(5));
        assert_eq!(j.key(4).len(), 36);
    }
}
