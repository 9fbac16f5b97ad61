//! `runbook check`: the static checks, then a dry run on the simulator with a virtual clock,
//! all findings collected. It never talks to a real target.

pub mod walk;

use crate::backend::inventory::Inventory;
use crate::backend::sim::Simulator;
use crate::clock::{Clock, VirtualClock};
use crate::config::{read_text, Config};
use crate::diagnostics::{sort_and_dedup, Code, Finding, Severity, Sources};
use crate::error::Error;
use crate::script::engine;
use crate::script::errors::{parse_finding, runtime_finding};
use crate::script::exec::Exec;
use crate::script::host::{Host, Mode};
use crate::script::observer::Quiet;
use crate::script::resolver::Resolver;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// What the dry run did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DryRun {
    /// Simulated time from the first to the last moment of the run.
    #[serde(serialize_with = "secs")]
    pub simulated: Duration,
    /// Jobs the runbook started.
    pub jobs: usize,
    /// Whether the runbook ran to its end.
    pub completed: bool,
    /// Whether the runbook named any VM.
    #[serde(skip)]
    pub names_used: bool,
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
    let text = read_text(path)?;
    let name = crate::paths::display(path);
    let root = crate::paths::folder_of(path);
    Ok(check_text(&name, &text, Some(&root), inventory))
}

/// Checks runbook `text` named `name`, with imports resolved in `root`.
pub fn check_text(
    name: &str,
    text: &str,
    root: Option<&Path>,
    inventory: Option<&Inventory>,
) -> Report {
    let source: Arc<str> = Arc::from(name);
    let mut sources = Sources::default();
    sources.insert(source.clone(), text);
    let mut findings = Vec::new();
    if text.trim().is_empty() {
        findings.push(
            Finding::new(Code::EmptyRunbook, format!("{name} is empty"))
                .help("write the plan's steps, e.g. failover(\"web-01\", #{ kind: \"planned\" })"),
        );
        return Report {
            name: name.to_string(),
            findings,
            sources,
            dry_run: None,
        };
    }
    let session = Session::new(name, root, inventory, false);
    let engine = &session.engine;
    let resolver = &session.resolver;

    let mut ast = match engine.compile(text) {
        Ok(ast) => ast,
        Err(e) => {
            findings.push(parse_finding(&e, &source));
            sources.extend(&resolver.sources());
            return Report {
                name: name.to_string(),
                findings,
                sources,
                dry_run: None,
            };
        }
    };
    ast.set_source(name);
    if ast.statements().is_empty() && ast.iter_functions().next().is_none() {
        findings.push(
            Finding::new(Code::EmptyRunbook, format!("{name} has no statements"))
                .help("write the plan's steps, e.g. failover(\"web-01\", #{ kind: \"planned\" })"),
        );
    }
    let mut walker = walk::Walker::new(engine, resolver, inventory);
    walker.check(&ast, &source);
    findings.append(&mut walker.findings);

    let dry_run = if findings.iter().any(|f| f.severity == Severity::Error) {
        None
    } else {
        let (mut found, mut dry) = session.dry_run(&ast);
        let runaway = found
            .iter()
            .any(|f| matches!(f.code, Code::OperationLimit | Code::ResourceLimit));
        if !runaway && found.iter().any(|f| f.location.is_some()) {
            // Findings at a place: run again with Rhai's call stack kept (deterministic, on
            // the same virtual clock), so each names the chain of calls that led to it. Clean
            // runbooks, the common case, pay nothing for the call stack; a runaway one is
            // not run twice.
            let traced = Session::new(name, root, inventory, true);
            (found, dry) = traced.dry_run(&ast);
            sources.extend(&traced.resolver.sources());
        }
        findings.append(&mut found);
        if inventory.is_none() && dry.names_used {
            findings.push(
                Finding::new(Code::NamesNotChecked, format!("{name}: no inventory is known, so VM names were not checked"))
                    .help("name one in runbook.toml (`inventory = \"inventory.toml\"`) or pass --inventory FILE"),
            );
        }
        Some(dry)
    };
    sources.extend(&resolver.sources());
    sort_and_dedup(&mut findings);
    Report {
        name: name.to_string(),
        findings,
        sources,
        dry_run,
    }
}

/// One simulated execution: a virtual-clock simulator of the inventory, a host and an engine.
struct Session {
    host: Rc<Host>,
    resolver: Resolver,
    engine: rhai::Engine,
}

impl Session {
    fn new(
        name: &str,
        root: Option<&Path>,
        inventory: Option<&Inventory>,
        call_stack: bool,
    ) -> Self {
        let empty = Inventory::empty();
        let inv = inventory.unwrap_or(&empty);
        let clock = Arc::new(VirtualClock::new(inv.start));
        let sim = Arc::new(Simulator::new(
            inv,
            clock.clone() as Arc<dyn Clock>,
            inventory.is_none(),
        ));
        let host = Rc::new(Host::new(
            sim,
            clock,
            Exec::Inline,
            Mode::Check,
            Rc::new(Quiet),
            None,
            name,
        ));
        let resolver = Resolver::new(root);
        let engine = engine::build(host.clone(), resolver.clone(), call_stack);
        Session {
            host,
            resolver,
            engine,
        }
    }

    /// Runs the runbook to its end or its first error; returns the findings and what ran.
    fn dry_run(&self, ast: &rhai::AST) -> (Vec<Finding>, DryRun) {
        let mut findings = Vec::new();
        let completed = match self.engine.run_ast(ast) {
            Ok(()) => {
                self.host.finish();
                true
            }
            Err(e) => {
                findings.push(runtime_finding(&e, &self.host, &self.resolver));
                false
            }
        };
        findings.extend(self.host.take_findings());
        let dry = DryRun {
            simulated: self.host.elapsed(),
            jobs: self.host.job_count(),
            completed,
            names_used: self.host.names_used(),
        };
        (findings, dry)
    }
}
