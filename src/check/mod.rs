//! `runbook check`: the static checks, then a dry run on the simulator with a virtual clock,
//! all findings collected. It never talks to a real target.

pub mod params;
pub mod walk;
pub mod whatif;

use crate::backend::inventory::{Inventory, Reconnect};
use crate::backend::sim::Simulator;
use crate::clock::{Clock, VirtualClock};
use crate::config::{read_text, Config};
use crate::diagnostics::{sort_and_dedup, Code, Finding, Location, Severity, Sources};
use crate::error::Error;
use crate::script::engine;
use crate::script::errors::parse_error;
use crate::script::exec::Exec;
use crate::script::host::{Host, Mode};
use crate::script::limits::TimeLimit;
use crate::script::observer::{Observer, Quiet};
use crate::script::params::Values;
use crate::script::resolver::Resolver;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// How long checking one runbook may take unless `--time-limit` or `runbook.toml` says.
pub const TIME_LIMIT: Duration = Duration::from_secs(10);

/// What the dry run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DryRun {
    /// Simulated time from the first to the last moment of the run.
    #[serde(serialize_with = "secs")]
    pub simulated: Duration,
    /// Jobs the runbook started (skipped calls included).
    pub jobs: usize,
    /// Calls that issued nothing: the VM was already where they take it.
    #[serde(skip_serializing_if = "is_zero")]
    pub skipped: usize,
    /// Whether the runbook ran to its end.
    pub completed: bool,
    /// Whether the runbook named any VM.
    #[serde(skip)]
    pub names_used: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// The result of checking one runbook.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub findings: Vec<Finding>,
    pub sources: Sources,
    /// `None` when the dry run was skipped because of static errors.
    pub dry_run: Option<DryRun>,
}

impl Report {
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// Whether the report fails the check.
    pub fn fails(&self, deny_warnings: bool) -> bool {
        self.count(Severity::Error) > 0 || (deny_warnings && self.count(Severity::Warning) > 0)
    }
}

/// Where the inventory comes from for a runbook: `--inventory`, else `runbook.toml`, else none.
pub fn inventory_for(runbook: &Path, explicit: Option<&Path>) -> Result<Option<Inventory>, Error> {
    if let Some(path) = explicit {
        return Inventory::load(path).map(Some);
    }
    let folder = runbook.parent().unwrap_or(Path::new("."));
    let config = Config::discover(folder)?;
    match (&config.inventory, &config.path) {
        (Some(path), Some(named_by)) => Inventory::load(path)
            .map(Some)
            .map_err(|e| e.named_by(named_by)),
        _ => Ok(None),
    }
}

/// Checks a runbook file. I/O and configuration problems are errors (exit 2); problems in
/// the runbook are findings in the report.
pub fn check_file(path: &Path, inventory: Option<&Inventory>) -> Result<Report, Error> {
    check_file_within(path, inventory, TimeLimit::from_now(TIME_LIMIT))
}

/// [`check_file`] within `limit`: a dry run still going when it passes stops with RB119.
pub fn check_file_within(
    path: &Path,
    inventory: Option<&Inventory>,
    limit: TimeLimit,
) -> Result<Report, Error> {
    let (name, text, root) = read_runbook(path)?;
    Ok(check_text_within(
        &name,
        &text,
        Some(&root),
        inventory,
        limit,
    ))
}

/// A runbook file's name as shown, its text and the folder its imports resolve in.
pub(crate) fn read_runbook(path: &Path) -> Result<(String, String, std::path::PathBuf), Error> {
    let text = read_text(path)?;
    Ok((
        crate::paths::display(path),
        text,
        crate::paths::folder_of(path),
    ))
}

/// [`check_text`] within `limit`.
pub fn check_text_within(
    name: &str,
    text: &str,
    root: Option<&Path>,
    inventory: Option<&Inventory>,
    limit: TimeLimit,
) -> Report {
    check_text_params(name, text, root, inventory, limit, &[])
}

/// [`check_text_within`] with the parameters' values `sets` gives (`--set`); the choices of
/// the others are dry-run in combinations.
pub fn check_text_params(
    name: &str,
    text: &str,
    root: Option<&Path>,
    inventory: Option<&Inventory>,
    limit: TimeLimit,
    sets: &[(String, String)],
) -> Report {
    let watch = Watch {
        limit: Some(limit),
        sets,
        combinations: true,
        ..Watch::default()
    };
    check_with(name, text, root, inventory, &watch).0
}

/// [`check_file_within`] with the parameters' values `sets` gives (`--set`).
pub fn check_file_params(
    path: &Path,
    inventory: Option<&Inventory>,
    limit: TimeLimit,
    sets: &[(String, String)],
) -> Result<Report, Error> {
    let (name, text, root) = read_runbook(path)?;
    Ok(check_text_params(
        &name,
        &text,
        Some(&root),
        inventory,
        limit,
        sets,
    ))
}

/// Checks runbook `text` named `name`, with imports resolved in `root`.
pub fn check_text(
    name: &str,
    text: &str,
    root: Option<&Path>,
    inventory: Option<&Inventory>,
) -> Report {
    let watch = Watch {
        combinations: true,
        ..Watch::default()
    };
    check_with(name, text, root, inventory, &watch).0
}

/// Makes the observer of a dry run from the run's simulator and clock.
pub(crate) type MakeObserver<'a> =
    dyn Fn(&Arc<Simulator>, &Arc<VirtualClock>) -> Rc<dyn Observer> + 'a;

/// How commands built on the dry run (`plan`, `check --what-if`) watch it.
#[derive(Default)]
pub(crate) struct Watch<'a> {
    /// Keep Rhai's call stack from the start, so every job knows the runbook line it came
    /// from (the dry run is then not repeated to explain findings).
    pub traced: bool,
    /// The dry run's observer (default: one that discards everything).
    pub observer: Option<&'a MakeObserver<'a>>,
    /// When the dry runs must stop (default: [`TIME_LIMIT`] from the start of the check).
    pub limit: Option<TimeLimit>,
    /// The parameters' values `--set` gives.
    pub sets: &'a [(String, String)],
    /// Dry-run every combination of the parameters' choices (`check`), not only the
    /// defaults and `--set` (`plan`).
    pub combinations: bool,
}

/// [`check_text`], also returning the session of the dry run that produced the findings
/// (`None` when static errors skipped it).
pub(crate) fn check_with(
    name: &str,
    text: &str,
    root: Option<&Path>,
    inventory: Option<&Inventory>,
    watch: &Watch,
) -> (Report, Option<Session>) {
    let source: Arc<str> = Arc::from(name);
    let mut sources = Sources::default();
    sources.insert(source.clone(), text);
    let mut findings = Vec::new();
    // Where findings about the whole file point: its start.
    let start = Some(Location::new(source.clone(), 1, 1, 0));
    let report = |findings, sources| Report {
        name: name.to_string(),
        findings,
        sources,
        dry_run: None,
    };
    if text.trim().is_empty() {
        findings.push(
            Finding::new(Code::EmptyRunbook, format!("{name} is empty"))
                .at(start.clone())
                .help("write the plan's steps, e.g. failover(\"web-01\", #{ kind: \"planned\" })"),
        );
        return (report(findings, sources), None);
    }
    let no_values = Values::new();
    let actions = crate::actions::Actions::of_folder(root);
    let setup = Setup {
        name,
        root,
        inventory,
        call_stack: watch.traced,
        limit: watch
            .limit
            .unwrap_or_else(|| TimeLimit::from_now(TIME_LIMIT)),
        params: &no_values,
        actions: &actions,
    };
    let session = Session::new(&setup, &Variant::default(), watch.observer);
    let engine = &session.engine;
    let resolver = &session.resolver;

    if !engine::parses_in_time(text, setup.limit) {
        findings.push(
            Finding::new(
                Code::TimeLimit,
                format!(
                    "parsing the runbook took longer than its time limit of {}",
                    crate::clock::human(setup.limit.allowed)
                ),
            )
            .at(start.clone())
            .help("Rhai parses a runbook in time that grows with the square of its variables: split it into modules, or give it more time with `check --time-limit` or `[check] time_limit`"),
        );
        return (report(findings, sources), None);
    }
    let mut ast = match engine.compile(text) {
        Ok(ast) => ast,
        Err(e) => {
            findings.push(parse_error(&e, &source, text));
            sources.extend(&resolver.sources());
            return (report(findings, sources), None);
        }
    };
    ast.set_source(name);
    if ast.statements().is_empty() && ast.iter_functions().next().is_none() {
        findings.push(
            Finding::new(Code::EmptyRunbook, format!("{name} has no statements"))
                .at(start.clone())
                .help("write the plan's steps, e.g. failover(\"web-01\", #{ kind: \"planned\" })"),
        );
    }
    let mut walker = walk::Walker::new(engine, resolver, inventory);
    walker.check(&ast, &source);
    findings.append(&mut walker.findings);

    let (declared, mut unreadable) = params::discover(&ast, &source);
    findings.append(&mut unreadable);
    let runs = param_runs(&declared, watch, &start, &mut findings);
    let dry_run = if findings.iter().any(|f| f.severity == Severity::Error) {
        None
    } else {
        let mut found: Vec<(Finding, Vec<usize>)> = Vec::new();
        let mut first = None;
        let mut names_used = false;
        for (i, values) in runs.iter().enumerate() {
            let combination = Setup {
                params: values,
                ..setup
            };
            let fresh;
            let ran = if i == 0 {
                session.host.set_params(values.clone());
                &session
            } else {
                fresh = Session::new(&combination, &Variant::default(), None);
                &fresh
            };
            let (these, dry) = dry_run_of(&combination, &ast, ran, watch, &mut sources);
            for f in these {
                match found.iter_mut().find(|(g, _)| *g == f) {
                    Some((_, by)) => by.push(i),
                    None => found.push((f, vec![i])),
                }
            }
            names_used |= dry.names_used;
            first.get_or_insert(dry);
        }
        for (f, by) in found {
            let labels = if by.len() < runs.len() {
                by.iter()
                    .map(|&i| crate::script::params::label(&runs[i], &declared))
                    .collect()
            } else {
                Vec::new()
            };
            findings.push(f.with_params(labels));
        }
        let dry = first.unwrap_or_default();
        if inventory.is_none() && names_used {
            findings.push(
                Finding::new(Code::NamesNotChecked, format!("{name}: no inventory is known, so VM names were not checked"))
                    .at(start.clone())
                    .help("name one in runbook.toml (`inventory = \"inventory.toml\"`) or pass --inventory FILE"),
            );
        }
        Some(dry)
    };
    sources.extend(&resolver.sources());
    sort_and_dedup(&mut findings);
    let ran = dry_run.is_some().then_some(session);
    let report = Report {
        dry_run,
        ..report(findings, sources)
    };
    (report, ran)
}

/// The parameters' values of each dry run: the defaults and `--set` first, then (for
/// `check`) the other combinations of choices. RB130 for `--set` values that do not fit
/// (the command line checked them already), RB131 for required parameters dry-run with a
/// stand-in.
fn param_runs(
    declared: &[crate::script::params::Declared],
    watch: &Watch,
    start: &Option<Location>,
    findings: &mut Vec<Finding>,
) -> Vec<Values> {
    let fixed = match crate::script::params::resolve(declared, watch.sets, false) {
        // Only what `--set` gives is fixed: the defaults vary with the choices.
        Ok(mut values) => {
            values.retain(|k, _| watch.sets.iter().any(|(n, _)| n == k));
            values
        }
        Err(message) => {
            findings.push(Finding::new(Code::BadParam, message).at(start.clone()));
            Values::new()
        }
    };
    for d in declared
        .iter()
        .filter(|d| d.required() && !fixed.contains_key(&d.name))
    {
        let at = start
            .as_ref()
            .map(|s| Location::new(s.source.clone(), d.line.max(1), 1, 0));
        findings.push(
            Finding::new(
                Code::ParamStandIn,
                format!(
                    "parameter `{}` has no default: the dry run used \"{}\"",
                    d.name,
                    d.stand_in()
                ),
            )
            .at(at)
            .help(format!("check with a real value: --set {}=...", d.name)),
        );
    }
    let mut runs = crate::script::params::combinations(declared, &fixed);
    if !watch.combinations {
        runs.truncate(1);
    }
    runs
}

/// One dry run of `ast` in `session` (of `setup`): its findings, with their chains of calls
/// (a second, traced run when some are at a place and the first was not traced).
fn dry_run_of(
    setup: &Setup,
    ast: &rhai::AST,
    session: &Session,
    watch: &Watch,
    sources: &mut Sources,
) -> (Vec<Finding>, DryRun) {
    let (mut found, mut dry) = session.dry_run(ast);
    let runaway = found.iter().any(|f| {
        matches!(
            f.code,
            Code::OperationLimit | Code::ResourceLimit | Code::TimeLimit
        )
    });
    if !watch.traced && !runaway && found.iter().any(|f| f.location.is_some()) {
        // Findings at a place: run again with Rhai's call stack kept (deterministic, on
        // the same virtual clock), so each names the chain of calls that led to it. Clean
        // runbooks, the common case, pay nothing for the call stack; a runaway one is
        // not run twice.
        let traced = Session::new(
            &Setup {
                call_stack: true,
                ..*setup
            },
            &Variant::default(),
            None,
        );
        (found, dry) = traced.dry_run(ast);
        sources.extend(&traced.resolver.sources());
    }
    if found.iter().any(|f| f.location.is_none()) {
        place_unplaced(setup, ast, &mut found);
    }
    (found, dry)
}

/// Gives findings of errors Rhai left without a position (a data race) the last place the
/// runbook reached: the dry run again (deterministic), stepping through every expression.
fn place_unplaced(setup: &Setup, ast: &rhai::AST, found: &mut [Finding]) {
    let mut stepping = Session::new(
        &Setup {
            call_stack: true,
            ..*setup
        },
        &Variant::default(),
        None,
    );
    let place = engine::record_places(&mut stepping.engine);
    let _ = stepping.dry_run(ast);
    let Some((source, pos)) = place.borrow().clone() else {
        return;
    };
    let source: Arc<str> = Arc::from(source.as_deref().unwrap_or(setup.name));
    for f in found.iter_mut().filter(|f| f.location.is_none()) {
        f.location = crate::script::errors::place(&source, pos, 0);
    }
}

/// What a dry run runs: the runbook's name, its folder for imports, the inventory, and
/// whether Rhai's call stack is kept (for the chain of calls behind each finding and job).
#[derive(Clone, Copy)]
pub(crate) struct Setup<'a> {
    pub name: &'a str,
    pub root: Option<&'a Path>,
    pub inventory: Option<&'a Inventory>,
    pub call_stack: bool,
    /// When every dry run of this check must stop.
    pub limit: TimeLimit,
    /// The parameters' values.
    pub params: &'a Values,
    /// The actions of runbook.toml (never run by a dry run).
    pub actions: &'a crate::actions::Actions,
}

/// How a what-if dry run differs from the plain one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Variant {
    /// The job of the n-th operation the runbook starts (1-based) fails.
    pub failing_job: Option<u64>,
    /// The primary site's server is not connected to Site Recovery.
    pub primary_unreachable: bool,
}

/// One simulated execution: a virtual-clock simulator of the inventory, a host and an engine.
pub(crate) struct Session {
    pub host: Rc<Host>,
    pub resolver: Resolver,
    pub engine: rhai::Engine,
}

impl Session {
    /// A session of `setup` changed by `variant`, watched by the observer `observer` makes
    /// (default: one that discards everything and confirms manual steps).
    pub(crate) fn new(
        setup: &Setup,
        variant: &Variant,
        observer: Option<&MakeObserver<'_>>,
    ) -> Self {
        let empty = Inventory::empty();
        let mut inv = std::borrow::Cow::Borrowed(setup.inventory.unwrap_or(&empty));
        if variant.primary_unreachable {
            // An outage: the primary site is away until an operator says it is back (the
            // first manual step after a failover), unless the inventory says when.
            let primary = &mut inv.to_mut().primary;
            if primary.connected || primary.reconnects.is_none() {
                primary.reconnects = Some(Reconnect::AtStepAfterFailover);
            }
            primary.connected = false;
        }
        let clock = Arc::new(VirtualClock::new(inv.start));
        let sim = Arc::new(Simulator::new(
            &inv,
            clock.clone() as Arc<dyn Clock>,
            setup.inventory.is_none(),
        ));
        if let Some(n) = variant.failing_job {
            sim.fail_job(n);
        }
        let observer: Rc<dyn Observer> = match observer {
            Some(make) => make(&sim, &clock),
            None => Rc::new(Quiet),
        };
        let host = Rc::new(Host::new(
            sim,
            clock,
            Exec::Inline,
            Mode::Check,
            observer,
            None,
            setup.name,
        ));
        host.set_params(setup.params.clone());
        host.set_actions(setup.actions.clone());
        host.set_notifier(Arc::new(crate::notify::Notifier::new(
            setup.actions.channels.clone(),
            "",
            None,
        )));
        let resolver = Resolver::new(setup.root);
        resolver.limit_time(setup.limit);
        let mut engine = engine::build(host.clone(), resolver.clone(), setup.call_stack);
        engine::watch(&mut engine, host.clone(), Some(setup.limit));
        Session {
            host,
            resolver,
            engine,
        }
    }

    /// Runs the runbook to its end or its first error; returns the findings and what ran.
    pub(crate) fn dry_run(&self, ast: &rhai::AST) -> (Vec<Finding>, DryRun) {
        let mut findings = Vec::new();
        let completed = match self.engine.run_ast(ast) {
            Ok(()) => {
                self.host.finish();
                true
            }
            Err(e) => {
                findings.push(self.host.runtime_finding(&e, &self.resolver));
                false
            }
        };
        findings.extend(self.host.take_findings());
        let dry = DryRun {
            simulated: self.host.elapsed(),
            jobs: self.host.job_count(),
            skipped: self.host.skipped_count(),
            completed,
            names_used: self.host.names_used(),
        };
        (findings, dry)
    }
}
