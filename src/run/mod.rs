//! `runbook run`: executes a runbook with live progress, then prints a summary. Without a
//! target it runs on the embedded simulator, on a clock paced by a speed factor, and says
//! so. Ctrl-C stops issuing new operations and never cancels a failover in progress.

mod around;
mod preview;
mod progress;
pub mod summary;

use crate::backend::inventory::Inventory;
use crate::backend::sim::Simulator;
use crate::backend::{Backend, Item};
use crate::check::walk::Walker;
use crate::clock::{human, Clock, PacedClock, RealClock};
use crate::config::{read_text, Config};
use crate::diagnostics::{render, sort_and_dedup, Finding, RenderOptions, Severity, Sources};
use crate::error::{exit, Error};
use crate::journal;
use crate::script::engine;
use crate::script::errors::parse_finding;
use crate::script::exec::Exec;
use crate::script::host::{Approval, Host, JobRecord, Mode};
use crate::script::resolver::Resolver;
use progress::Progress;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The stack of the thread a runbook runs on.
const SCRIPT_STACK: usize = 64 << 20;

/// The simulator's default speed factor: a 45-minute site failover plays in about 20 s.
pub const DEFAULT_SPEED: f64 = 150.0;

/// What `runbook run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub path: PathBuf,
    /// A target of `runbook.toml` to run against instead of the simulator.
    pub target: Option<String>,
    pub inventory: Option<PathBuf>,
    pub speed: Option<f64>,
    pub auto_approve: bool,
    pub progress: bool,
    pub color: bool,
    /// Keep a journal in the project's `.runbook/runs/` (off for tests and benchmarks).
    pub journal: bool,
    /// Take over a stale lock of the target.
    pub take_over: bool,
    /// Start a live run without asking after its plan (unattended runs).
    pub yes: bool,
    /// The parameters' values `--set` gives (checked against the runbook's declarations
    /// before anything runs; on resume, those the journal recorded).
    pub params: Vec<(String, String)>,
}

impl RunOptions {
    /// A run of `path` nobody watches: manual steps confirmed (simulator only), plain output.
    pub fn unattended(path: impl Into<PathBuf>) -> RunOptions {
        RunOptions {
            path: path.into(),
            target: None,
            inventory: None,
            speed: None,
            auto_approve: true,
            progress: false,
            color: false,
            journal: false,
            take_over: false,
            yes: true,
            params: Vec::new(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The error that ended the run, if any.
    pub failure: Option<Finding>,
    /// True when the runbook did not pass the static checks and nothing ran.
    pub not_started: bool,
    pub warnings: Vec<Finding>,
    pub sources: Sources,
    pub jobs: Vec<JobRecord>,
    pub items: Vec<Item>,
    pub approvals: Vec<Approval>,
    pub simulated: Duration,
    pub wall: Duration,
    pub interrupted: bool,
    /// True on the embedded simulator (times are simulated), false against a service.
    pub simulated_run: bool,
    /// The run's id and folder, when it keeps a journal.
    pub run: Option<RunRef>,
}

/// Where a run's journal is.
#[derive(Clone)]
pub struct RunRef {
    pub id: String,
    /// The run's folder in `.runbook/runs/` (with the local store).
    pub dir: PathBuf,
    pub project: PathBuf,
    /// Where its journal, lock and approvals are kept.
    pub store: Arc<dyn journal::store::Store>,
}

impl std::fmt::Debug for RunRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunRef")
            .field("id", &self.id)
            .field("journal", &self.store.journal_place(&self.id))
            .finish()
    }
}

impl RunRef {
    /// The exact command that resumes this run from the current folder.
    pub fn resume_command(&self) -> String {
        format!("runbook resume {}{}", self.id, self.project_arg())
    }

    /// `--project DIR` when the current folder would not find the run's project.
    pub fn project_arg(&self) -> String {
        journal::runs::project_arg(&self.project)
    }

    /// Where the run's journal is, for messages.
    pub fn journal_place(&self) -> String {
        self.store.journal_place(&self.id)
    }
}

/// Runs a runbook, prints progress and the summary; returns the exit code.
pub fn run(opts: &RunOptions) -> Result<i32, Error> {
    let (outcome, speed) = simulate(opts, true)?;
    Ok(report(&outcome, opts, speed))
}

/// Runs a runbook on the embedded simulator, or against its target after planning against
/// the target's live state, and returns what it did (and the speed used). `interactive`
/// installs the Ctrl-C handler and prints the simulation banner.
pub fn simulate(opts: &RunOptions, interactive: bool) -> Result<(Outcome, f64), Error> {
    let folder = crate::paths::folder_of(&opts.path);
    let config = Config::discover(&folder)?;
    let rt = runtime()?;
    let (venue, text) = match &opts.target {
        Some(target) => {
            if opts.auto_approve {
                return Err(Error::Usage(
                    "--auto-approve is for the embedded simulator only: a live run's manual steps are confirmed at the terminal or with `runbook approve RUN STEP`. Nothing was read or issued".into(),
                ));
            }
            // A target that does not exist is the first thing to say.
            config.target(target)?;
            if opts.inventory.is_some() || opts.speed.is_some() {
                return Err(Error::Usage(
                    "--inventory and --speed are for the embedded simulator: a live run plans against the target's live state (with the durations of the inventory runbook.toml names) and runs at the service's pace. Nothing was read or issued".into(),
                ));
            }
            preview::can_ask(opts)?;
            let backend = Arc::new(config.backend(target)?);
            // Its long waits (throttling, retries) show while the live state is read.
            backend.notify(Arc::new(progress::Plain));
            let named = config.target(target)?;
            let (identity, endpoint) = (named.identity(), named.endpoint.clone());
            let text = read_text(&opts.path)?;
            crate::check::params::values_for(
                &crate::paths::display(&opts.path),
                &text,
                &opts.params,
            )?;
            let go_ahead = opts.yes.then_some("--yes was given");
            preview::confirm(
                opts,
                &config,
                target,
                backend.as_ref(),
                &text,
                &rt,
                go_ahead,
            )?;
            let venue =
                Venue::service(backend, format!("target `{target}`")).locked(identity, &endpoint);
            (venue, text)
        }
        None => {
            let inventory = match (&opts.inventory, &config.inventory) {
                (Some(path), _) => Inventory::load(path)?,
                (None, Some(path)) => Inventory::load(path).map_err(|e| match &config.path {
                    Some(named_by) => e.named_by(named_by),
                    None => e,
                })?,
                (None, None) => Inventory::demo(),
            };
            let speed = opts.speed.or(config.speed).unwrap_or(DEFAULT_SPEED);
            if !(0.01..=10_000_000.0).contains(&speed) {
                return Err(Error::Usage(format!(
                    "--speed must be between 0.01 and 10000000, not {speed}"
                )));
            }
            let text = read_text(&opts.path)?;
            crate::check::params::values_for(
                &crate::paths::display(&opts.path),
                &text,
                &opts.params,
            )?;
            (Venue::simulator(inventory, speed), text)
        }
    };
    start(opts, &config, venue, interactive, Start { rt, text })
}

/// The runtime a run's backend and signals live on.
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the runtime: {e}")))
}

/// What a run starts with: the runtime its backend was used on so far, and the runbook's
/// text as it was checked (and, for a live run, planned).
struct Start {
    rt: tokio::runtime::Runtime,
    text: String,
}

/// Where a run goes: the embedded simulator, or a service through a backend.
pub struct Venue {
    backend: Arc<dyn Backend>,
    clock: Arc<dyn Clock>,
    /// Known names, for the static checks (the simulator's inventory).
    inventory: Option<Inventory>,
    speed: f64,
    banner: String,
    /// What the run locks (the vault's identity); nothing on the embedded simulator.
    identity: Option<String>,
    /// The key of the machine's lock of that vault (identity and endpoint).
    machine: Option<String>,
}

impl Venue {
    /// The embedded simulator of `inventory`, `speed` times faster than real time: its
    /// clock moves only by the run's waits, so the simulated times are the same at any speed.
    pub fn simulator(inventory: Inventory, speed: f64) -> Venue {
        let clock: Arc<dyn Clock> = Arc::new(PacedClock::new(inventory.start, speed));
        let sim = Arc::new(Simulator::new(&inventory, clock.clone(), false));
        Venue {
            banner: format!(
                "SIMULATION: running {{name}} on the embedded simulator ({}), {speed}x real time. No real VM is touched.",
                inventory.origin
            ),
            backend: sim,
            clock,
            inventory: Some(inventory),
            speed,
            identity: None,
            machine: None,
        }
    }

    /// The embedded simulator of `inventory` on a virtual clock: waits take no time, and a
    /// runbook always gives the same record (for reports and their tests).
    pub fn simulator_virtual(inventory: Inventory) -> Venue {
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::VirtualClock::new(inventory.start));
        let sim = Arc::new(Simulator::new(&inventory, clock.clone(), false));
        Venue {
            banner: format!(
                "SIMULATION: running {{name}} on the embedded simulator ({}), on a virtual clock. No real VM is touched.",
                inventory.origin
            ),
            backend: sim,
            clock,
            inventory: Some(inventory),
            speed: f64::INFINITY,
            identity: None,
            machine: None,
        }
    }

    /// Locks `identity` (a vault at `endpoint`) for the length of the run, in the project
    /// and on this machine.
    pub fn locked(mut self, identity: String, endpoint: &str) -> Venue {
        self.machine = Some(journal::machine::key(&identity, endpoint));
        self.identity = Some(identity);
        self
    }

    /// A service through `backend`, on the real clock.
    pub fn service(backend: Arc<dyn Backend>, what: String) -> Venue {
        Venue {
            banner: format!(
                "LIVE RUN: running {{name}} against {what} ({}). Operations are real.",
                backend.describe()
            ),
            backend,
            clock: Arc::new(RealClock::new(1.0)),
            inventory: None,
            speed: 1.0,
            identity: None,
            machine: None,
        }
    }
}

/// Runs a runbook at `venue` and returns what it did (and the clock's speed).
/// `interactive` installs the Ctrl-C handler and prints the banner.
pub fn run_on(opts: &RunOptions, venue: Venue, interactive: bool) -> Result<(Outcome, f64), Error> {
    let config = if opts.journal {
        Config::discover(&crate::paths::folder_of(&opts.path))?
    } else {
        Config::default()
    };
    let begin = Start {
        rt: runtime()?,
        text: read_text(&opts.path)?,
    };
    start(opts, &config, venue, interactive, begin)
}

/// Starts a new run at `venue`, with its journal in the project `config` belongs to.
fn start(
    opts: &RunOptions,
    config: &Config,
    venue: Venue,
    interactive: bool,
    begin: Start,
) -> Result<(Outcome, f64), Error> {
    let journaling = if opts.journal {
        let project = journal::runs::project_of(config.path.as_deref(), &opts.path);
        // The id says when the run happened on the wall clock, so `runbook runs` sorts runs
        // in the order they were made; a simulated run's own times stay in its journal.
        let now = crate::clock::Timestamp::from_system(std::time::SystemTime::now());
        let store = journal::store::open(&project, config)?;
        let id = store.create_run(now)?;
        let dir = journal::runs::runs_dir(&project).join(&id);
        Some(Journaling {
            run: RunRef {
                id,
                dir,
                project,
                store,
            },
            resume: None,
            announce: false,
            inherited: Vec::new(),
            lock: None,
        })
    } else {
        None
    };
    run_with(opts, venue, interactive, journaling, begin)
}

/// Removes the folder of a new run that did not start (refused by the lock, the runbook
/// has errors, its journal could not be opened), so no empty run is left behind.
fn discard_new(journaling: Option<&Journaling>) {
    if let Some(j) = journaling.filter(|j| j.resume.is_none()) {
        j.run.store.discard(&j.run.id);
    }
}

/// A run's journal: a new one, or one to resume.
struct Journaling {
    run: RunRef,
    resume: Option<Resume>,
    /// Say which run this is once its journal is open (an interactive run).
    announce: bool,
    /// What the run whose stale lock this one took over left unfinished: adopted, not
    /// issued again.
    inherited: Vec<journal::inherit::Unfinished>,
    /// The vault lock the run holds: its journal is written only while it does.
    lock: Option<Arc<dyn journal::store::Held>>,
}

struct Resume {
    loaded: journal::Loaded,
    changed: Vec<String>,
}

fn run_with(
    opts: &RunOptions,
    venue: Venue,
    interactive: bool,
    mut journaling: Option<Journaling>,
    begin: Start,
) -> Result<(Outcome, f64), Error> {
    if let Some(j) = journaling.as_mut() {
        j.announce = interactive;
    }
    let Start { rt, text } = begin;
    let name = crate::paths::display(&opts.path);
    let folder = crate::paths::folder_of(&opts.path);
    let speed = venue.speed;
    let locked = venue.identity.as_ref().map(|identity| {
        let holder = journal::lock::Holder {
            run: journaling.as_ref().map_or_else(
                || format!("unjournaled-{}", std::process::id()),
                |j| j.run.id.clone(),
            ),
            user: journal::operator(),
            host: journal::hostname(),
            pid: std::process::id(),
            since: crate::clock::Timestamp::from_system(std::time::SystemTime::now()).rfc3339(),
            target: opts.target.clone().unwrap_or_default(),
        };
        match &journaling {
            Some(j) => j.run.store.lock(identity, holder, opts.take_over),
            None => journal::store::Store::lock(
                &journal::store::local::LocalStore::new(&journal::runs::project_of(
                    None, &opts.path,
                )),
                identity,
                holder,
                opts.take_over,
            ),
        }
    });
    let lock = match locked.transpose() {
        Ok(lock) => lock,
        Err(e) => {
            discard_new(journaling.as_ref());
            return Err(e);
        }
    };
    // Another copy of the project on this machine may run against the same vault.
    let _machine = match (&venue.machine, &lock) {
        (Some(key), Some(_)) => {
            let (run, project) = match &journaling {
                Some(j) => (j.run.id.clone(), j.run.project.clone()),
                None => (
                    format!("unjournaled-{}", std::process::id()),
                    journal::runs::project_of(None, &opts.path),
                ),
            };
            let target = opts.target.clone().unwrap_or_default();
            match journal::machine::acquire(key, &run, &project, &target) {
                Ok(held) => held,
                Err(e) => {
                    discard_new(journaling.as_ref());
                    return Err(e);
                }
            }
        }
        _ => None,
    };
    if let Some(j) = journaling.as_mut() {
        if let Some(stale) = lock.as_ref().and_then(|l| l.took_over()) {
            j.inherited = inherited_from(j.run.store.as_ref(), &stale.run);
        }
        j.lock = lock.clone();
    }
    if interactive {
        errln!("{}", venue.banner.replace("{name}", &name));
    }
    let token = CancellationToken::new();
    if let Some(lock) = &lock {
        // A lease lost to another machine stops new operations, as Ctrl-C does.
        lock.watch(token.clone());
    }
    if interactive {
        let resume = journaling
            .as_ref()
            .filter(|_| venue.identity.is_some())
            .map(|j| j.run.resume_command());
        rt.spawn(watch_signals(token.clone(), resume));
    }
    let handle = rt.handle().clone();
    let opts2 = opts.clone();
    // The script runs on a thread of its own, with room for deep runbooks (the runtime's
    // blocking threads have small stacks); it reaches the runtime through the handle.
    let outcome = std::thread::Builder::new()
        .name("runbook".into())
        .stack_size(SCRIPT_STACK)
        .spawn(move || {
            execute(
                &name, &text, &folder, venue, handle, token, &opts2, journaling,
            )
        })
        .map_err(|e| Error::Usage(format!("cannot start the run: {e}")))?
        .join()
        .map_err(|_| {
            Error::Internal("the run stopped unexpectedly (a bug: please report it)".into())
        })??;
    rt.shutdown_timeout(Duration::from_millis(100));
    drop(lock);
    Ok((outcome, speed))
}

/// What run `id` (whose stale lock was taken over) left in flight, said to the operator: its
/// jobs are adopted when the runbook reaches them, not issued again.
fn inherited_from(
    store: &dyn journal::store::Store,
    id: &str,
) -> Vec<journal::inherit::Unfinished> {
    let loaded = store.load(id).ok();
    let Some(loaded) = loaded else {
        errln!("took over the lock of run {id}, whose journal cannot be read: jobs it left in flight cannot be adopted; check the vault's job list");
        return Vec::new();
    };
    let open = journal::inherit::unfinished(&loaded);
    if !open.is_empty() {
        let shown: Vec<String> = open.iter().map(|u| u.describe()).collect();
        errln!(
            "took over the lock of run {id}: what it issued and did not see end is adopted when the runbook reaches it, not issued again: {}",
            shown.join(", ")
        );
    }
    open
}

/// The first Ctrl-C or SIGTERM stops new operations; a second one exits at once. Neither
/// cancels anything, and every journal record is on disk already.
async fn watch_signals(token: CancellationToken, resume: Option<String>) {
    #[cfg(unix)]
    let mut term: Term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(not(unix))]
    let mut term: Term = None;
    if !next_signal(&mut term).await {
        return;
    }
    errln!(
        "\ninterrupted: no new operation will be issued; jobs in flight go on in the service and no failover is cancelled. Press Ctrl-C again to exit at once."
    );
    token.cancel();
    if next_signal(&mut term).await {
        errln!("exiting now; nothing was cancelled");
        if let Some(command) = &resume {
            errln!("resume with: {command}");
        }
        std::process::exit(exit::FINDINGS);
    }
}

#[cfg(unix)]
type Term = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Term = Option<()>;

async fn next_signal(term: &mut Term) -> bool {
    #[cfg(unix)]
    if let Some(term) = term.as_mut() {
        return tokio::select! {
            r = tokio::signal::ctrl_c() => r.is_ok(),
            r = term.recv() => r.is_some(),
        };
    }
    let _ = term;
    tokio::signal::ctrl_c().await.is_ok()
}

/// Opens the run's journal: writes the header of a new run (with the hashes of the
/// runbook and the modules the static checks loaded), or reopens one to resume.
fn open_journal(
    j: &Journaling,
    opts: &RunOptions,
    text: &str,
    resolver: &Resolver,
    venue: &Venue,
    now: crate::clock::Timestamp,
    params: &crate::script::params::Values,
) -> Result<Rc<journal::Journal>, String> {
    let store = j.run.store.clone();
    if let Some(resume) = &j.resume {
        let journal = journal::Journal::reopen_in(store, &j.run.id, &resume.loaded)?;
        if let Some(lock) = &j.lock {
            journal.fenced_by(lock.clone());
        }
        journal.append(
            now,
            journal::Entry::Resumed {
                operator: journal::operator(),
                host: journal::hostname(),
                pid: std::process::id(),
                changed: resume.changed.clone(),
                dropped_bytes: resume.loaded.torn,
            },
        )?;
        return Ok(Rc::new(journal));
    }
    let header = journal::Header {
        run: j.run.id.clone(),
        runbook: std::path::absolute(&opts.path).unwrap_or_else(|_| opts.path.clone()),
        sha256: journal::sha256(text.as_bytes()),
        modules: resolver
            .modules()
            .into_iter()
            .map(|(name, path, text)| journal::ModuleHash {
                name,
                path,
                sha256: journal::sha256(text.as_bytes()),
            })
            .collect(),
        target: opts.target.clone(),
        project: Some(j.run.project.clone()),
        vault: venue.identity.clone(),
        inventory: venue.inventory.as_ref().map(|i| i.origin.clone()),
        speed: venue.speed.is_finite().then_some(venue.speed),
        operator: journal::operator(),
        host: journal::hostname(),
        pid: std::process::id(),
        started_wall: crate::clock::Timestamp::from_system(std::time::SystemTime::now()).rfc3339(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        params: params.clone(),
    };
    let journal = journal::Journal::create_in(store, &j.run.id, header, now)?;
    if let Some(lock) = &j.lock {
        journal.fenced_by(lock.clone());
    }
    Ok(Rc::new(journal))
}

#[allow(clippy::too_many_arguments)]
fn execute(
    name: &str,
    text: &str,
    folder: &Path,
    venue: Venue,
    handle: tokio::runtime::Handle,
    token: CancellationToken,
    opts: &RunOptions,
    journaling: Option<Journaling>,
) -> Result<Outcome, Error> {
    let wall = Instant::now();
    let clock = venue.clock.clone();
    let sim = venue.backend.clone();
    // Manual steps are confirmed automatically on the embedded simulator only: a live
    // run's approvals come from an operator.
    let auto_approve = opts.auto_approve && venue.inventory.is_some();
    let progress = Rc::new(Progress::new(
        clock.clone(),
        opts.progress,
        auto_approve,
        token.clone(),
    ));
    // The backend's own long waits (throttling, retries) show on the progress line.
    sim.notify(progress.notices());
    let host = Host::new(
        sim,
        clock.clone(),
        Exec::Runtime(handle.clone()),
        Mode::Run,
        progress.clone(),
        Some(token.clone()),
        name,
    );
    let resolver = Resolver::new(Some(folder));
    let source: Arc<str> = Arc::from(name);
    let mut sources = Sources::default();
    sources.insert(source.clone(), text);
    let mut outcome = Outcome {
        failure: None,
        not_started: false,
        warnings: Vec::new(),
        sources: Sources::default(),
        jobs: Vec::new(),
        items: Vec::new(),
        approvals: Vec::new(),
        simulated: Duration::ZERO,
        wall: Duration::ZERO,
        interrupted: false,
        simulated_run: venue.inventory.is_some(),
        run: journaling.as_ref().map(|j| j.run.clone()),
    };
    // The static checks use an engine of their own: the run's engine needs the journal,
    // whose header needs the modules the checks load.
    let checker = engine::build(
        Rc::new(Host::new(
            venue.backend.clone(),
            clock.clone(),
            Exec::Inline,
            Mode::Check,
            Rc::new(crate::script::observer::Quiet),
            None,
            name,
        )),
        resolver.clone(),
        false,
    );
    let ast = match checker.compile(text) {
        Ok(mut ast) => {
            ast.set_source(name);
            let mut walker = Walker::new(&checker, &resolver, venue.inventory.as_ref());
            walker.check(&ast, &source);
            let mut errors: Vec<Finding> = walker
                .findings
                .into_iter()
                .filter(|f| f.severity == Severity::Error)
                .collect();
            if errors.is_empty() {
                Some(ast)
            } else {
                sort_and_dedup(&mut errors);
                outcome.warnings = errors;
                None
            }
        }
        Err(e) => {
            outcome.warnings = vec![parse_finding(&e, &source)];
            None
        }
    };
    let recorded = journaling
        .as_ref()
        .and_then(|j| j.resume.as_ref())
        .and_then(|r| r.loaded.header());
    let values = match around::values(ast.as_ref(), &source, recorded, &opts.params) {
        Ok(values) => values,
        Err(e) => {
            discard_new(journaling.as_ref());
            return Err(Error::Usage(format!("{name}: {e}; nothing was run")));
        }
    };
    host.set_params(values.clone());
    around::declare(
        &host,
        folder,
        journaling.as_ref().map(|j| j.run.id.as_str()),
        &handle,
    );
    let Some(ast) = ast else {
        outcome.not_started = true;
        if journaling.as_ref().is_some_and(|j| j.resume.is_none()) {
            // Nothing ran: no run to keep.
            discard_new(journaling.as_ref());
            outcome.run = None;
        }
        return Ok(outcome);
    };
    let journal = match &journaling {
        Some(j) => {
            let journal = open_journal(j, opts, text, &resolver, &venue, clock.now(), &values)
                .map_err(|e| {
                    discard_new(journaling.as_ref());
                    Error::Usage(format!("{e}; nothing was run"))
                })?;
            if j.announce {
                errln!("run {} (journal {})", j.run.id, j.run.journal_place());
            }
            Some(journal)
        }
        None => None,
    };
    let host = match &journaling {
        Some(j) => host.with_inherited(j.inherited.clone()),
        None => host,
    };
    let host = Rc::new(match &journal {
        Some(j) => host.with_journal(j.clone()),
        None => host,
    });
    around::started(
        &host,
        name,
        opts.target.as_deref(),
        journaling.as_ref().is_some_and(|j| j.resume.is_some()),
    );
    let engine = engine::build(host.clone(), resolver.clone(), true);
    match engine.run_ast(&ast) {
        Ok(()) => host.finish(),
        Err(e) => {
            outcome.failure = Some(host.runtime_finding(&e, &resolver));
            host.refresh_jobs();
        }
    }
    progress.finish();
    outcome.warnings.extend(host.take_findings());
    sources.extend(&resolver.sources());
    outcome.sources = sources;
    outcome.jobs = host.jobs();
    outcome.items = host.touched().iter().filter_map(|n| host.item(n)).collect();
    outcome.approvals = host.approvals();
    outcome.simulated = host.elapsed();
    outcome.wall = wall.elapsed();
    outcome.interrupted = token.is_cancelled();
    around::ended(&host, name, outcome.failure.as_ref(), outcome.interrupted);
    // The last deliveries are waited for a moment, so their outcome is journaled.
    host.record_deliveries(Some(Duration::from_secs(2)));
    if let Some(j) = &journal {
        let state = match (&outcome.failure, outcome.interrupted) {
            (_, true) => journal::RunState::Interrupted,
            (Some(_), false) => journal::RunState::Failed,
            (None, false) => journal::RunState::Succeeded,
        };
        let end = journal::Entry::End {
            state,
            failure: outcome
                .failure
                .as_ref()
                .map(|f| format!("{}: {}", f.code.as_str(), f.message)),
            items: outcome.items.clone(),
        };
        if let Err(e) = j.append(clock.now(), end) {
            outcome
                .warnings
                .push(Finding::new(crate::diagnostics::Code::Refused, e));
        }
    }
    Ok(outcome)
}

fn report(outcome: &Outcome, opts: &RunOptions, speed: f64) -> i32 {
    let render_opts = RenderOptions {
        color: opts.color,
        width: 100,
    };
    if outcome.not_started {
        for f in &outcome.warnings {
            errln!("{}", render(f, &outcome.sources, render_opts));
        }
        errln!("the runbook has errors; nothing was run (see `runbook check`)");
        return exit::FINDINGS;
    }
    outln!("{}", summary::table(outcome));
    let status = match (&outcome.failure, outcome.interrupted) {
        (_, true) => "INTERRUPTED",
        (Some(_), false) => "FAILED",
        (None, false) => "SUCCEEDED",
    };
    let interrupted = outcome.interrupted;
    if outcome.simulated_run {
        outln!(
            "simulation {status}: {} simulated in {:.1}s at {speed}x",
            human(outcome.simulated),
            outcome.wall.as_secs_f64()
        );
    } else {
        outln!("run {status} after {}", human(outcome.wall));
    }
    let in_flight: Vec<&JobRecord> = outcome
        .jobs
        .iter()
        .filter(|j| !j.info.state.is_terminal())
        .collect();
    if !in_flight.is_empty() {
        outln!("still in flight in the service (not cancelled):");
        for j in in_flight {
            outln!(
                "  {} of {} (job {}): {}",
                j.info.operation,
                j.info.vm,
                j.info.id,
                j.info.state
            );
        }
    }
    for w in &outcome.warnings {
        errln!("{}", render(w, &outcome.sources, render_opts));
    }
    if let Some(run) = &outcome.run {
        let stopped = interrupted || outcome.failure.is_some();
        if stopped && !outcome.simulated_run {
            errln!("resume with: {}", run.resume_command());
        }
        errln!(
            "run {}: journal {}; audit record: runbook report {}{}",
            run.id,
            run.journal_place(),
            run.id,
            run.project_arg()
        );
    }
    match &outcome.failure {
        Some(f) => {
            errln!("{}", render(f, &outcome.sources, render_opts));
            // Like credentials that are missing altogether.
            if f.code == crate::diagnostics::Code::CredentialsRejected {
                exit::USAGE
            } else {
                exit::FINDINGS
            }
        }
        None if interrupted => exit::FINDINGS,
        None => exit::OK,
    }
}

/// What `runbook resume` was asked to do.
#[derive(Debug, Clone)]
pub struct ResumeOptions {
    pub project: Option<PathBuf>,
    pub run: String,
    pub allow_changed: bool,
    pub progress: bool,
    pub color: bool,
    /// `--set` given to resume: refused when it differs from the values the run started with.
    pub params: Vec<(String, String)>,
}

/// Resumes a run that crashed or was interrupted; returns the exit code.
pub fn resume(opts: &ResumeOptions) -> Result<i32, Error> {
    let store = journal::store::discover(opts.project.as_deref())?;
    let project = store.project().to_path_buf();
    let id = journal::runs::find(store.as_ref(), &opts.run)?;
    let dir = journal::runs::runs_dir(&project).join(&id);
    let loaded = store.load(&id).map_err(Error::Usage)?;
    let mut header = loaded.header().cloned().ok_or_else(|| {
        Error::Usage(format!(
            "run {id} has no header record; it cannot be resumed"
        ))
    })?;
    match journal::runs::state_of(&loaded).as_str() {
        "succeeded" => {
            return Err(Error::Usage(format!(
                "run {id} succeeded; there is nothing to resume"
            )))
        }
        "running" => {
            return Err(Error::Usage(match &loaded.holder {
                Some(holder) => journal::store::lease::still_running(holder, &id),
                None => format!(
                "run {id} is still running (see `runbook show {id}`); it cannot be resumed twice"
            ),
            }))
        }
        _ => {}
    }
    let Some(target) = header.target.clone() else {
        return Err(Error::Usage(format!(
            "run {id} ran on the embedded simulator, whose state ended with its process; it cannot be resumed. Start a new run (its journal stays for `runbook report {id}`)"
        )));
    };
    // From another machine, the run's files are where this project has them.
    header.rebase(&project);
    let changed = changed_files(&header);
    if !changed.is_empty() && !opts.allow_changed {
        return Err(Error::Usage(format!(
            "run {id} cannot be resumed: changed since it started: {}. A resume replays the journal against the same script; pass --allow-changed to resume with the new text anyway: it is dry-run against the live state first, as a new run is, and the resume stops if the runbook takes another path",
            changed.join(", ")
        )));
    }
    if loaded.torn > 0 {
        errln!(
            "the journal's last record was torn by the crash ({} bytes); recovered up to record {}",
            loaded.torn,
            loaded.records.last().map_or(0, |r| r.seq)
        );
    }
    let folder = crate::paths::folder_of(&header.runbook);
    let config = Config::discover(&folder)?;
    let backend = config.backend(&target)?;
    let named = config.target(&target)?;
    let identity = named.identity();
    if header
        .vault
        .as_deref()
        .is_some_and(|v| !named.names_vault(v))
    {
        return Err(Error::Usage(format!(
            "run {id} cannot be resumed: target `{target}` now names another vault ({identity}) than when the run started ({}); resuming would go on against other VMs",
            header.vault.as_deref().unwrap_or_default()
        )));
    }
    if let Some(by) = &loaded.superseded {
        return Err(Error::Usage(format!(
            "run {id} cannot be resumed: run {by} took over its lock and went on in its place"
        )));
    }
    for (name, value) in &opts.params {
        if header.params.get(name).map(String::as_str) != Some(value.trim()) {
            return Err(Error::Usage(format!(
                "run {id} cannot be resumed with --set {name}={value}: it started with {}; a resume goes on with the values it started with (start a new run for others)",
                match header.params.get(name) {
                    Some(v) => format!("{name}={v}"),
                    None => format!("no value for `{name}`"),
                }
            )));
        }
    }
    let backend = Arc::new(backend);
    let run_opts = RunOptions {
        path: header.runbook.clone(),
        target: Some(target.clone()),
        inventory: None,
        speed: None,
        auto_approve: false,
        progress: opts.progress,
        color: opts.color,
        journal: true,
        take_over: false,
        yes: true,
        params: header.params.clone().into_iter().collect(),
    };
    let rt = runtime()?;
    let text = read_text(&run_opts.path)?;
    // Changed text was never checked against the vault: it is planned against the live
    // state first, as a new run would be, and refused when that dry run has errors.
    if !changed.is_empty() {
        backend.notify(Arc::new(progress::Plain));
        let go_ahead = Some("--allow-changed was given");
        preview::confirm(
            &run_opts,
            &config,
            &target,
            backend.as_ref(),
            &text,
            &rt,
            go_ahead,
        )?;
    }
    let venue =
        Venue::service(backend, format!("target `{target}`")).locked(identity, &named.endpoint);
    errln!(
        "resuming run {id}: {} recorded calls are answered from the journal, then the run goes on",
        loaded
            .records
            .iter()
            .filter(|r| r.entry.is_answer())
            .count()
    );
    let journaling = Journaling {
        run: RunRef {
            id,
            dir,
            project,
            store,
        },
        resume: Some(Resume { loaded, changed }),
        announce: false,
        inherited: Vec::new(),
        lock: None,
    };
    let begin = Start { rt, text };
    let (outcome, speed) = run_with(&run_opts, venue, true, Some(journaling), begin)?;
    Ok(report(&outcome, &run_opts, speed))
}

/// The runbook and modules whose text differs from what the run started with.
fn changed_files(header: &journal::Header) -> Vec<String> {
    let mut changed = Vec::new();
    let differs = |path: &Path, hash: &str| {
        read_text(path).map_or(true, |text| journal::sha256(text.as_bytes()) != hash)
    };
    if differs(&header.runbook, &header.sha256) {
        changed.push(crate::paths::display(&header.runbook));
    }
    for m in &header.modules {
        let now = match &m.path {
            Some(path) => read_text(path).ok().map(|t| journal::sha256(t.as_bytes())),
            None => crate::script::stdlib::get(
                m.name
                    .trim_start_matches("stdlib/")
                    .trim_end_matches(".rhai"),
            )
            .map(|t| journal::sha256(t.as_bytes())),
        };
        if now.as_deref() != Some(m.sha256.as_str()) {
            changed.push(m.name.clone());
        }
    }
    changed
}
