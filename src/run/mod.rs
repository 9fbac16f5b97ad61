//! `runbook run`: executes a runbook with live progress, then prints a summary. Without a
//! target it runs on the embedded simulator, on a real clock sped up by a factor, and says
//! so. Ctrl-C stops issuing new operations and never cancels a failover in progress.

mod progress;
pub mod summary;

use crate::backend::inventory::Inventory;
use crate::backend::sim::Simulator;
use crate::backend::{Backend, Item};
use crate::check::walk::Walker;
use crate::clock::{human, Clock, RealClock};
use crate::config::{read_text, Config};
use crate::diagnostics::{render, sort_and_dedup, Finding, RenderOptions, Severity, Sources};
use crate::error::{exit, Error};
use crate::script::engine;
use crate::script::errors::{parse_finding, runtime_finding};
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
}

/// Runs a runbook, prints progress and the summary; returns the exit code.
pub fn run(opts: &RunOptions) -> Result<i32, Error> {
    let (outcome, speed) = simulate(opts, true)?;
    Ok(report(&outcome, opts, speed))
}

/// Runs a runbook on the embedded simulator and returns what it did (and the speed used).
/// `interactive` installs the Ctrl-C handler and prints the simulation banner.
pub fn simulate(opts: &RunOptions, interactive: bool) -> Result<(Outcome, f64), Error> {
    let folder = crate::paths::folder_of(&opts.path);
    let config = Config::discover(&folder)?;
    let venue = match &opts.target {
        Some(target) => {
            let backend = config.backend(target)?;
            Venue::service(Arc::new(backend), format!("target `{target}`"))
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
            Venue::simulator(inventory, speed)
        }
    };
    run_on(opts, venue, interactive)
}

/// Where a run goes: the embedded simulator, or a service through a backend.
pub struct Venue {
    backend: Arc<dyn Backend>,
    clock: Arc<dyn Clock>,
    /// Known names, for the static checks (the simulator's inventory).
    inventory: Option<Inventory>,
    speed: f64,
    banner: String,
}

impl Venue {
    /// The embedded simulator of `inventory`, `speed` times faster than real time.
    pub fn simulator(inventory: Inventory, speed: f64) -> Venue {
        let clock: Arc<dyn Clock> = Arc::new(RealClock::starting_at(inventory.start, speed));
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
        }
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
        }
    }
}

/// Runs a runbook at `venue` and returns what it did (and the clock's speed).
/// `interactive` installs the Ctrl-C handler and prints the banner.
pub fn run_on(opts: &RunOptions, venue: Venue, interactive: bool) -> Result<(Outcome, f64), Error> {
    let text = read_text(&opts.path)?;
    let name = crate::paths::display(&opts.path);
    let folder = crate::paths::folder_of(&opts.path);
    let speed = venue.speed;
    if interactive {
        eprintln!("{}", venue.banner.replace("{name}", &name));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the runtime: {e}")))?;
    let token = CancellationToken::new();
    let watcher = token.clone();
    if interactive {
        rt.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\ninterrupted: no new operation will be issued; jobs in flight go on in the service and no failover is cancelled. Press Ctrl-C again to exit at once."
            );
            watcher.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("exiting now; nothing was cancelled");
                std::process::exit(exit::FINDINGS);
            }
        }
        });
    }
    let handle = rt.handle().clone();
    let opts2 = opts.clone();
    // The script runs on a thread of its own, with room for deep runbooks (the runtime's
    // blocking threads have small stacks); it reaches the runtime through the handle.
    let outcome = std::thread::Builder::new()
        .name("runbook".into())
        .stack_size(SCRIPT_STACK)
        .spawn(move || execute(&name, &text, &folder, venue, handle, token, &opts2))
        .map_err(|e| Error::Usage(format!("cannot start the run: {e}")))?
        .join()
        .map_err(|_| {
            Error::Internal("the run stopped unexpectedly (a bug: please report it)".into())
        })?;
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok((outcome, speed))
}

fn execute(
    name: &str,
    text: &str,
    folder: &Path,
    venue: Venue,
    handle: tokio::runtime::Handle,
    token: CancellationToken,
    opts: &RunOptions,
) -> Outcome {
    let wall = Instant::now();
    let clock = venue.clock.clone();
    let sim = venue.backend.clone();
    let progress = Rc::new(Progress::new(
        clock.clone(),
        opts.progress,
        opts.auto_approve,
        token.clone(),
    ));
    let host = Rc::new(Host::new(
        sim,
        clock,
        Exec::Runtime(handle),
        Mode::Run,
        progress.clone(),
        Some(token.clone()),
        name,
    ));
    let resolver = Resolver::new(Some(folder));
    let engine = engine::build(host.clone(), resolver.clone(), true);
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
    };
    let ast = match engine.compile(text) {
        Ok(mut ast) => {
            ast.set_source(name);
            let mut walker = Walker::new(&engine, &resolver, venue.inventory.as_ref());
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
    match ast {
        None => outcome.not_started = true,
        Some(ast) => match engine.run_ast(&ast) {
            Ok(()) => host.finish(),
            Err(e) => {
                outcome.failure = Some(runtime_finding(&e, &host, &resolver));
                host.refresh_jobs();
            }
        },
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
    outcome
}

fn report(outcome: &Outcome, opts: &RunOptions, speed: f64) -> i32 {
    let render_opts = RenderOptions {
        color: opts.color,
        width: 100,
    };
    if outcome.not_started {
        for f in &outcome.warnings {
            eprintln!("{}", render(f, &outcome.sources, render_opts));
        }
        eprintln!("the runbook has errors; nothing was run (see `runbook check`)");
        return exit::FINDINGS;
    }
    println!("{}", summary::table(outcome));
    let status = match (&outcome.failure, outcome.interrupted) {
        (_, true) => "INTERRUPTED",
        (Some(_), false) => "FAILED",
        (None, false) => "SUCCEEDED",
    };
    let interrupted = outcome.interrupted;
    if outcome.simulated_run {
        println!(
            "simulation {status}: {} simulated in {:.1}s at {speed}x",
            human(outcome.simulated),
            outcome.wall.as_secs_f64()
        );
    } else {
        println!("run {status} after {}", human(outcome.wall));
    }
    let in_flight: Vec<&JobRecord> = outcome
        .jobs
        .iter()
        .filter(|j| !j.info.state.is_terminal())
        .collect();
    if !in_flight.is_empty() {
        println!("still in flight in the service (not cancelled):");
        for j in in_flight {
            println!(
                "  {} of {} (job {}): {}",
                j.info.operation, j.info.vm, j.info.id, j.info.state
            );
        }
    }
    for w in &outcome.warnings {
        eprintln!("{}", render(w, &outcome.sources, render_opts));
    }
    match &outcome.failure {
        Some(f) => {
            eprintln!("{}", render(f, &outcome.sources, render_opts));
            exit::FINDINGS
        }
        None if interrupted => exit::FINDINGS,
        None => exit::OK,
    }
}
