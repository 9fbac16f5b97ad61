//! The primitives' implementation: the bridge from Rhai calls to the backend. The [`Host`]
//! keeps what a run has done (jobs and where they were started, verifications, drills),
//! dispatches every call through the registry to its handler, and turns every problem into
//! a [`Finding`] at the call site, raised as a Rhai error that is catchable (a backend
//! failure the runbook may handle) or not (a safety refusal, an operator abort).
//!
//! One concern per room: [`findings`] (call sites and raised errors), [`args`] (arguments
//! and options), [`reads`] (`vm`, `vms`, `status`), [`operations`] (failovers, commits,
//! reverse replication, drills, cancel), [`plans`] (a recovery plan's operations as one
//! job, and the plan rules), [`waits`] (waits, polling, timeouts), [`checks`] (verify,
//! preflight), [`steps`] (manual steps, notes), [`inputs`] (parameters), [`actions`]
//! (actions of runbook.toml), [`replay`] (issuing through the
//! journal, settling, divergence) and [`finish`] (the end of a run).

pub(super) mod actions;
pub(super) mod args;
pub(super) mod checks;
pub(super) mod findings;
pub(super) mod finish;
pub(super) mod inputs;
pub(super) mod operations;
pub(super) mod plans;
pub(super) mod reads;
pub(super) mod replay;
pub(super) mod steps;
pub(super) mod waits;

use super::errors::Raised;
use super::exec::Exec;
use super::observer::Observer;
use super::registry::{Effect, Primitive};
use super::types::JobHandle;
use crate::backend::{Backend, Item, JobInfo};
use crate::clock::{Clock, Timestamp};
use crate::diagnostics::{Code, Finding, Frame, Location};
use crate::journal::inherit::Unfinished;
use crate::journal::Journal;
use rhai::{Dynamic, EvalAltResult, NativeCallContext};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Whether this is a dry run (`check`) or a real run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Check,
    Run,
}

/// Where a primitive was called from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSite {
    pub location: Location,
    pub chain: Vec<Frame>,
}

impl CallSite {
    /// The line in the runbook itself that led here (the outermost call).
    pub fn runbook_location(&self) -> &Location {
        self.chain.last().map_or(&self.location, |f| &f.location)
    }
}

/// A job the run started.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub info: JobInfo,
    pub site: CallSite,
    pub waited: bool,
}

/// A manual step's confirmation.
#[derive(Debug, Clone)]
pub struct Approval {
    pub title: String,
    pub by: String,
    /// On the run's clock (simulated time on the embedded simulator).
    pub at: Timestamp,
    /// On the wall clock, RFC 3339 (none in a journal written before it was recorded).
    pub wall: Option<String>,
    /// How long the step waited for the approval, in real time.
    pub waited: Option<std::time::Duration>,
}

#[derive(Default)]
struct State {
    jobs: Vec<JobRecord>,
    by_id: HashMap<String, usize>,
    last_op: BTreeMap<String, CallSite>,
    drills: BTreeMap<String, CallSite>,
    failover_started: BTreeMap<String, Timestamp>,
    /// VMs whose last failover in this run was skipped (already on the site it asked for).
    failover_skipped: HashSet<String>,
    verified: BTreeMap<String, checks::Verified>,
    findings: Vec<Finding>,
    raised: Raised,
    approvals: Vec<Approval>,
    handles: HashMap<String, JobHandle>,
    /// Jobs whose warnings were reported already.
    warned: HashSet<String>,
    /// The members of the recovery plans the run acted on.
    plan_members: BTreeMap<String, Vec<String>>,
}

type Raise = Box<EvalAltResult>;

/// What a primitive's handler is: the registry names one for every primitive.
pub type Handler = fn(&Host, &Call) -> Result<Dynamic, Raise>;

/// One call of a primitive from a script: the primitive, where it was called, its arguments
/// (their count was matched by registration).
pub struct Call<'a> {
    pub prim: &'static Primitive,
    pub ctx: &'a NativeCallContext<'a>,
    args: &'a [&'a mut Dynamic],
}

impl Call<'_> {
    /// Argument `i`, or `()` when the call has fewer.
    fn arg(&self, i: usize) -> &Dynamic {
        self.args.get(i).map_or(&Dynamic::UNIT, |a| &**a)
    }

    /// Argument `i`, if the call has it.
    fn opt_arg(&self, i: usize) -> Option<&Dynamic> {
        self.args.get(i).map(|a| &**a)
    }
}

/// The runtime behind the primitives.
pub struct Host {
    backend: Arc<dyn Backend>,
    clock: Arc<dyn Clock>,
    exec: Exec,
    mode: Mode,
    observer: Rc<dyn Observer>,
    interrupt: Option<CancellationToken>,
    main_source: Arc<str>,
    started: Timestamp,
    state: RefCell<State>,
    call_stack: Cell<bool>,
    names_used: Cell<bool>,
    /// The run's journal: every answer recorded, and replayed on resume.
    journal: Option<Rc<Journal>>,
    /// Manual steps reached so far.
    steps: Cell<u32>,
    /// Operations of the run this one took over from that it did not see end: adopted when
    /// the runbook reaches the same operation (see `replay`).
    inherited: RefCell<Vec<Unfinished>>,
    /// Whether the last read was answered from the journal (a resume's replay).
    replayed_read: Cell<bool>,
    /// The parameters' values (`--set`, defaults, or the journal's on resume).
    params: RefCell<crate::script::params::Values>,
    /// The parameters the runbook declared while it ran, with their values, in order.
    used: RefCell<Vec<(crate::script::params::Declared, String)>>,
    /// The actions of runbook.toml, and how many the run reached.
    actions: RefCell<crate::actions::Actions>,
    actions_run: Cell<u32>,
    /// The channels of runbook.toml told of the run's events.
    notifier: RefCell<Option<Arc<crate::notify::Notifier>>>,
}

impl Host {
    pub fn new(
        backend: Arc<dyn Backend>,
        clock: Arc<dyn Clock>,
        exec: Exec,
        mode: Mode,
        observer: Rc<dyn Observer>,
        interrupt: Option<CancellationToken>,
        main_source: &str,
    ) -> Self {
        let started = clock.now();
        Host {
            backend,
            clock,
            exec,
            mode,
            observer,
            interrupt,
            main_source: main_source.into(),
            started,
            state: RefCell::new(State::default()),
            call_stack: Cell::new(false),
            names_used: Cell::new(false),
            journal: None,
            steps: Cell::new(0),
            inherited: RefCell::new(Vec::new()),
            replayed_read: Cell::new(false),
            params: Default::default(),
            used: RefCell::new(Vec::new()),
            actions: RefCell::default(),
            actions_run: Cell::new(0),
            notifier: RefCell::new(None),
        }
    }

    /// The channels `notify(...)` and the run's events go to.
    pub fn set_notifier(&self, notifier: Arc<crate::notify::Notifier>) {
        *self.notifier.borrow_mut() = Some(notifier);
    }

    /// Tells every channel of `event`, with the run's recovery time so far.
    /// Whether calls are answered from an earlier attempt's journal still.
    pub(super) fn replaying(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| j.replaying())
    }

    pub fn notify_event(&self, event: &str, text: &str, mut fields: serde_json::Value) {
        let Some(n) = self.notifier.borrow().clone() else {
            return;
        };
        if self.mode == Mode::Run {
            if let Some(o) = fields.as_object_mut() {
                o.insert("recovery_seconds".into(), self.elapsed().as_secs().into());
            }
            n.event(event, text, fields);
        }
    }

    /// Records the deliveries that ended in the journal; at the end of the run, after
    /// waiting at most `settle` for those in flight.
    pub fn record_deliveries(&self, settle: Option<Duration>) {
        let Some(n) = self.notifier.borrow().clone() else {
            return;
        };
        let undelivered = settle.map_or(0, |limit| n.settle(limit));
        if undelivered > 0 {
            errln!(
                "warning: {undelivered} notification(s) were still being delivered when the run ended and may not have reached their channels"
            );
        }
        if let Some(j) = &self.journal {
            if undelivered > 0 {
                let entry = crate::journal::Entry::Notified {
                    channel: "*".into(),
                    event: "run_end".into(),
                    ok: false,
                    attempts: 0,
                    why: Some(format!(
                        "{undelivered} notification(s) still in delivery when the run ended"
                    )),
                };
                if let Err(e) = j.append(self.clock.now(), entry) {
                    tracing::warn!("{e}");
                }
            }
            for d in n.take() {
                let entry = crate::journal::Entry::Notified {
                    channel: d.channel,
                    event: d.event,
                    ok: d.ok,
                    attempts: d.attempts,
                    why: d.why,
                };
                if let Err(e) = j.append(self.clock.now(), entry) {
                    tracing::warn!("{e}");
                }
            }
        }
    }

    /// The actions `action(...)` may run.
    pub fn set_actions(&self, actions: crate::actions::Actions) {
        *self.actions.borrow_mut() = actions;
    }

    /// Gives the runbook's parameters these values.
    pub fn set_params(&self, values: crate::script::params::Values) {
        *self.params.borrow_mut() = values;
    }

    /// The parameters' values the host was given.
    pub fn params(&self) -> crate::script::params::Values {
        self.params.borrow().clone()
    }

    /// The parameters the runbook declared as it ran, each with the value it got.
    pub fn params_used(&self) -> Vec<(crate::script::params::Declared, String)> {
        self.used.borrow().clone()
    }

    /// Adopts `jobs` (of the run whose lock this one took over) rather than issuing the
    /// same operations again.
    pub fn with_inherited(self, jobs: Vec<Unfinished>) -> Self {
        *self.inherited.borrow_mut() = jobs;
        self
    }

    /// Records the run in `journal` (and replays what it holds from earlier attempts).
    pub fn with_journal(mut self, journal: Rc<Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Called by the engine builder when the engine keeps Rhai's call stack.
    pub fn keep_call_stack(&self) {
        self.call_stack.set(true);
    }

    pub fn observer(&self) -> &Rc<dyn Observer> {
        &self.observer
    }

    pub fn main_source(&self) -> &Arc<str> {
        &self.main_source
    }

    /// Time on the run's clock since the host was made.
    pub fn elapsed(&self) -> Duration {
        self.clock.now().since(self.started)
    }

    /// Jobs started so far, in order.
    pub fn jobs(&self) -> Vec<JobRecord> {
        self.state.borrow().jobs.clone()
    }

    /// Whether the runbook named any VM.
    pub fn names_used(&self) -> bool {
        self.names_used.get()
    }

    /// How many jobs the run started.
    pub fn job_count(&self) -> usize {
        self.state.borrow().jobs.len()
    }

    /// How many calls issued nothing because the VM was already where they take it.
    pub fn skipped_count(&self) -> usize {
        let st = self.state.borrow();
        st.jobs.iter().filter(|r| r.info.skipped.is_some()).count()
    }

    pub fn approvals(&self) -> Vec<Approval> {
        self.state.borrow().approvals.clone()
    }

    /// Names of the VMs the run operated on, in name order.
    pub fn touched(&self) -> Vec<String> {
        self.state.borrow().last_op.keys().cloned().collect()
    }

    /// Warnings and other findings recorded without stopping the script.
    pub fn take_findings(&self) -> Vec<Finding> {
        std::mem::take(&mut self.state.borrow_mut().findings)
    }

    pub fn item(&self, name: &str) -> Option<Item> {
        self.exec.block_on(self.backend.item(name)).ok()
    }

    pub fn is_interrupted(&self) -> bool {
        self.interrupt
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
    }

    /// Runs primitive `prim` with `args`: through the handler its registry entry names.
    pub fn call(
        &self,
        prim: &'static Primitive,
        ctx: &NativeCallContext,
        args: &mut [&mut Dynamic],
    ) -> Result<Dynamic, Raise> {
        if matches!(prim.effect, Effect::Mutate | Effect::Destructive) && self.is_interrupted() {
            return Err(self.refuse(
                ctx,
                Finding::new(
                    Code::Interrupted,
                    format!("`{}` was not issued: the run was interrupted", prim.name),
                )
                .help("jobs already started go on in the service; nothing was cancelled"),
            ));
        }
        let call = Call {
            prim,
            ctx,
            args: &*args,
        };
        (prim.handler)(self, &call)
    }

    // ---- the run's record of its jobs ----------------------------------------------------

    /// Records what the service said of a job, in the run's record and in the script's handles.
    fn update(&self, info: &JobInfo) {
        let mut st = self.state.borrow_mut();
        if let Some(&i) = st.by_id.get(&info.id) {
            if st.jobs[i].info.state != info.state {
                st.jobs[i].info = info.clone();
                if let Some(h) = st.handles.get(&info.id) {
                    h.set(info.clone());
                }
            }
        }
    }

    /// The handle scripts hold for a job: one shared cell per job.
    fn handle(&self, info: JobInfo) -> JobHandle {
        let mut st = self.state.borrow_mut();
        match st.handles.get(&info.id) {
            Some(h) => {
                h.set(info);
                h.clone()
            }
            None => {
                let h = JobHandle::new(info);
                st.handles.insert(h.id(), h.clone());
                h
            }
        }
    }

    fn record_of(&self, id: &str) -> Option<JobRecord> {
        let st = self.state.borrow();
        st.by_id.get(id).map(|&i| st.jobs[i].clone())
    }
}
