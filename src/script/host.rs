//! The primitives' implementation: the bridge from Rhai calls to the backend. It keeps what a
//! run has done (jobs and where they were started, verifications, drills), turns every
//! problem into a [`Finding`] at the call site, and raises it as a Rhai error that is
//! catchable (a backend failure the runbook may handle) or not (a safety refusal, an
//! operator abort).

use super::errors::{function_name, place};
use super::exec::Exec;
use super::observer::{Observer, StepAnswer, StepRequest};
use super::options::{type_name, Opts};
use super::registry::{Effect, Primitive};
use super::types::{JobHandle, VmHandle};
use crate::backend::{
    Backend, BackendError, Direction, Item, JobInfo, JobState, Operation, OperationRequest,
    RecoveryPoint, Site,
};
use crate::clock::{human, Clock, Timestamp};
use crate::diagnostics::{did_you_mean, Code, Finding, Frame, Location, Severity};
use crate::journal::{Answer, Entry, Journal, Record, StepOutcome, Waited};
use rhai::{Array, Dynamic, EvalAltResult, ImmutableString, Map, NativeCallContext};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The key under which a raised error carries its finding's token.
const TOKEN: &str = "finding";
/// How long `wait_job` and `wait_all` wait without a timeout option.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(4 * 3600);
/// How long a manual step waits without a timeout option.
pub const DEFAULT_STEP: Duration = Duration::from_secs(3600);
/// The oldest acceptable drill without `max_drill_age`.
pub const DEFAULT_DRILL_AGE: Duration = Duration::from_secs(30 * 86400);
/// Polling interval when the service gives no Retry-After.
const POLL: Duration = Duration::from_secs(30);
/// How much earlier than its intent a settled job may say it started (clock skew).
const SETTLE_SKEW: Duration = Duration::from_secs(300);

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
    pub at: Timestamp,
}

#[derive(Default)]
struct State {
    jobs: Vec<JobRecord>,
    by_id: HashMap<String, usize>,
    last_op: BTreeMap<String, CallSite>,
    drills: BTreeMap<String, CallSite>,
    failover_started: BTreeMap<String, Timestamp>,
    verified: BTreeMap<String, (Site, Timestamp)>,
    findings: Vec<Finding>,
    raised: HashMap<i64, Finding>,
    next_token: i64,
    approvals: Vec<Approval>,
    handles: HashMap<String, JobHandle>,
    /// Jobs whose warnings were reported already.
    warned: std::collections::HashSet<String>,
}

type Raise = Box<EvalAltResult>;

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
    call_stack: std::cell::Cell<bool>,
    names_used: std::cell::Cell<bool>,
    /// The run's journal: every answer recorded, and replayed on resume.
    journal: Option<Rc<Journal>>,
    /// Manual steps reached so far.
    steps: std::cell::Cell<u32>,
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
            call_stack: std::cell::Cell::new(false),
            names_used: std::cell::Cell::new(false),
            journal: None,
            steps: std::cell::Cell::new(0),
        }
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

    // ---- errors ------------------------------------------------------------------------

    fn site(&self, ctx: &NativeCallContext) -> CallSite {
        let pos = ctx.call_position();
        let source: Arc<str> = ctx
            .call_source()
            .map_or_else(|| self.main_source.clone(), Arc::from);
        let len = ctx.fn_name().chars().count();
        let here = place(&source, pos, len).unwrap_or_else(|| Location::new(source, 0, 0, len));
        // The call stack ends with this native call. A frame's `source` is the caller's file
        // for plain calls and the callee's for module-qualified ones; either way it is the
        // file the next frame's call sits in, and the first frame's call sits in the runbook.
        if !self.call_stack.get() {
            return CallSite {
                location: here,
                chain: Vec::new(),
            };
        }
        let stack = ctx.global_runtime_state().debugger().call_stack();
        let scripted = stack.len().saturating_sub(1);
        let mut chain = Vec::with_capacity(scripted);
        for k in (0..scripted).rev() {
            let caller: Arc<str> = if k == 0 {
                self.main_source.clone()
            } else {
                stack[k - 1]
                    .source
                    .as_deref()
                    .map_or_else(|| self.main_source.clone(), Arc::from)
            };
            let f = &stack[k];
            chain.push(Frame {
                function: function_name(&f.fn_name),
                location: place(&caller, f.pos, 0)
                    .unwrap_or_else(|| Location::new(caller, 0, 0, 0)),
            });
        }
        CallSite {
            location: here,
            chain,
        }
    }

    fn at(&self, finding: Finding, site: &CallSite) -> Finding {
        finding
            .at(Some(site.location.clone()))
            .chain(site.chain.clone())
    }

    /// Raises `finding` as a Rhai error: catchable or not.
    fn raise(&self, ctx: &NativeCallContext, finding: Finding, catchable: bool) -> Raise {
        let mut st = self.state.borrow_mut();
        st.next_token += 1;
        let token = st.next_token;
        let mut map = Map::new();
        map.insert("code".into(), finding.code.as_str().into());
        map.insert("message".into(), finding.message.clone().into());
        map.insert(TOKEN.into(), Dynamic::from_int(token));
        st.raised.insert(token, finding);
        let value = Dynamic::from_map(map);
        if catchable {
            EvalAltResult::ErrorRuntime(value, ctx.call_position()).into()
        } else {
            EvalAltResult::ErrorTerminated(value, ctx.call_position()).into()
        }
    }

    fn fail(&self, ctx: &NativeCallContext, finding: Finding) -> Raise {
        let site = self.site(ctx);
        let finding = self.at(finding, &site);
        self.raise(ctx, finding, true)
    }

    fn refuse(&self, ctx: &NativeCallContext, finding: Finding) -> Raise {
        let site = self.site(ctx);
        let finding = self.at(finding, &site);
        self.raise(ctx, finding, false)
    }

    /// Refuses a call to a function runbooks may not use.
    pub fn forbidden(&self, ctx: &NativeCallContext) -> Raise {
        self.refuse(ctx, super::errors::forbidden(ctx.fn_name()))
    }

    fn warn(&self, finding: Finding) {
        self.observer.warning(&finding);
        self.state.borrow_mut().findings.push(finding);
    }

    /// The finding behind an error a primitive raised, if it was one of ours.
    pub fn raised_finding(&self, value: &Dynamic) -> Option<Finding> {
        let map = value.read_lock::<Map>()?;
        let token = map.get(TOKEN)?.as_int().ok()?;
        self.state.borrow().raised.get(&token).cloned()
    }

    fn backend_error(&self, ctx: &NativeCallContext, err: BackendError) -> Raise {
        let finding = match err {
            BackendError::UnknownItem { name, candidates } => {
                unknown_name("VM", &name, &candidates)
            }
            BackendError::UnknownPlan { name, candidates } => {
                unknown_name("recovery plan", &name, &candidates)
            }
            BackendError::NotAllowed {
                item,
                operation,
                state,
                allowed,
                reason,
            } => Finding::new(
                Code::NotAllowed,
                format!("{operation} of `{item}` is not allowed now: {reason}"),
            )
            .label(format!("{operation} refused in state {state}"))
            .note(format!(
                "`{item}` is {state}; allowed now: {}",
                if allowed.is_empty() {
                    "nothing".to_string()
                } else {
                    allowed.join(", ")
                }
            ))
            .help(not_allowed_help(operation)),
            BackendError::Service(error) => {
                let f = Finding::new(
                    Code::JobFailed,
                    format!("the service refused the request: {}", error.message),
                );
                f.notes(error.lines())
            }
            BackendError::UnknownJob(id) => Finding::new(
                Code::JobFailed,
                format!("the service does not know job {id}"),
            ),
            BackendError::Transport(message) => Finding::new(
                Code::JobFailed,
                format!("the service could not be reached: {message}"),
            )
            .help("check the network and the target's endpoint; the message says whether the operation may have been issued"),
        };
        self.fail(ctx, finding)
    }

    // ---- arguments ---------------------------------------------------------------------

    fn vm_name(
        &self,
        ctx: &NativeCallContext,
        prim: &Primitive,
        arg: &Dynamic,
    ) -> Result<String, Raise> {
        if let Some(vm) = arg.read_lock::<VmHandle>() {
            return Ok(vm.name.to_string());
        }
        if let Some(name) = arg.read_lock::<ImmutableString>() {
            return Ok(name.to_string());
        }
        Err(self.fail(
            ctx,
            Finding::new(
                Code::InvalidArgument,
                format!(
                    "`{}` needs a Vm or a VM name, not {}",
                    prim.name,
                    type_name(arg)
                ),
            )
            .help("pass `vm(\"name\")` or the name as a string"),
        ))
    }

    fn lookup(&self, ctx: &NativeCallContext, name: &str) -> Result<Item, Raise> {
        self.names_used.set(true);
        self.read(ctx, "item", name, || {
            self.exec.block_on(self.backend.item(name))
        })?
        .map_err(|e| self.backend_error(ctx, e))
    }

    fn job_arg(
        &self,
        ctx: &NativeCallContext,
        prim: &Primitive,
        arg: &Dynamic,
    ) -> Result<JobHandle, Raise> {
        arg.read_lock::<JobHandle>()
            .map(|j| j.clone())
            .ok_or_else(|| {
                self.fail(
                    ctx,
                    Finding::new(
                        Code::InvalidArgument,
                        format!("`{}` needs a Job, not {}", prim.name, type_name(arg)),
                    )
                    .help("pass the value an operation such as failover(...) returned"),
                )
            })
    }

    fn text_arg(
        &self,
        ctx: &NativeCallContext,
        prim: &Primitive,
        arg: &Dynamic,
    ) -> Result<String, Raise> {
        arg.read_lock::<ImmutableString>()
            .map(|s| s.to_string())
            .ok_or_else(|| {
                self.fail(
                    ctx,
                    Finding::new(
                        Code::InvalidArgument,
                        format!("`{}` needs a string, not {}", prim.name, type_name(arg)),
                    ),
                )
            })
    }

    fn opts(
        &self,
        ctx: &NativeCallContext,
        prim: &'static Primitive,
        arg: Option<&Dynamic>,
    ) -> Result<Opts, Raise> {
        let parsed = match arg {
            None => Opts::parse(prim, None),
            Some(a) => match a.read_lock::<Map>() {
                Some(m) => Opts::parse(prim, Some(&m)),
                None => {
                    return Err(self.fail(
                        ctx,
                        Finding::new(
                            Code::InvalidArgument,
                            format!(
                                "the options of `{}` must be a map `#{{ ... }}`, not {}",
                                prim.name,
                                type_name(a)
                            ),
                        ),
                    ))
                }
            },
        };
        parsed.map_err(|p| {
            self.fail(
                ctx,
                Finding::new(p.code(), p.message(prim))
                    .label(format!("option `{}`", p.key()))
                    .help(p.help(prim)),
            )
        })
    }

    // ---- dispatch ----------------------------------------------------------------------

    /// Runs primitive `prim` with `args` (their count was matched by registration).
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
        let unit = Dynamic::UNIT;
        let first: Option<&Dynamic> = args.first().map(|a| &**a);
        let a0: &Dynamic = first.unwrap_or(&unit);
        let a1: Option<&Dynamic> = args.get(1).map(|a| &**a);
        match prim.name {
            "vm" => {
                let name = self.vm_name(ctx, prim, a0)?;
                self.lookup(ctx, &name)?;
                Ok(Dynamic::from(VmHandle { name: name.into() }))
            }
            "vms" => self.vms(ctx, prim, first),
            "status" => {
                let name = self.vm_name(ctx, prim, a0)?;
                let item = self.lookup(ctx, &name)?;
                Ok(Dynamic::from_map(status_map(&item)))
            }
            "failover" => self.failover(ctx, prim, a0, a1),
            "test_failover" => {
                let name = self.vm_name(ctx, prim, a0)?;
                let opts = self.opts(ctx, prim, a1)?;
                let item = self.lookup(ctx, &name)?;
                let request = OperationRequest {
                    direction: Some(Direction::away_from(item.active_location)),
                    network: opts.text("network"),
                    recovery_point: opts
                        .text("recovery_point")
                        .and_then(|r| RecoveryPoint::parse(&r)),
                    ..OperationRequest::new(Operation::TestFailover)
                };
                self.start(ctx, &name, request)
            }
            "cleanup_test_failover" => {
                let name = self.vm_name(ctx, prim, a0)?;
                let opts = self.opts(ctx, prim, a1)?;
                let request = OperationRequest {
                    comments: opts.text("notes"),
                    ..OperationRequest::new(Operation::TestFailoverCleanup)
                };
                self.start(ctx, &name, request)
            }
            "commit" => {
                let name = self.vm_name(ctx, prim, a0)?;
                let item = self.lookup(ctx, &name)?;
                if item.allows(Operation::Commit) {
                    // Only a commit the service would accept; a refused one is its own finding.
                    self.check_verified(ctx, &name, &item);
                }
                self.start(ctx, &name, OperationRequest::new(Operation::Commit))
            }
            "reverse_replicate" => {
                let name = self.vm_name(ctx, prim, a0)?;
                let item = self.lookup(ctx, &name)?;
                let request = OperationRequest {
                    direction: Some(Direction::away_from(item.active_location)),
                    ..OperationRequest::new(Operation::ReverseReplicate)
                };
                self.start(ctx, &name, request)
            }
            "cancel" => self.cancel(ctx, prim, a0),
            "wait_job" => {
                let job = self.job_arg(ctx, prim, a0)?;
                let opts = self.opts(ctx, prim, a1)?;
                let mut done = self.wait(
                    ctx,
                    std::slice::from_ref(&job.id()),
                    opts.duration("timeout"),
                )?;
                Ok(Dynamic::from(self.handle(done.remove(0))))
            }
            "wait_all" => {
                let jobs = self.jobs_arg(ctx, prim, a0)?;
                let opts = self.opts(ctx, prim, a1)?;
                let ids: Vec<String> = jobs.iter().map(JobHandle::id).collect();
                let done = self.wait(ctx, &ids, opts.duration("timeout"))?;
                Ok(Dynamic::from_array(
                    done.into_iter()
                        .map(|info| Dynamic::from(self.handle(info)))
                        .collect(),
                ))
            }
            "verify" => self.verify(ctx, prim, a0, a1),
            "preflight" => self.preflight(ctx, prim, first),
            "manual_step" => {
                let title = self.text_arg(ctx, prim, a0)?;
                let opts = self.opts(ctx, prim, a1)?;
                self.manual_step(ctx, &title, &opts)
            }
            "note" => {
                let text = self.text_arg(ctx, prim, a0)?;
                self.observer.note(&text);
                self.describe(Entry::Note { text });
                Ok(Dynamic::UNIT)
            }
            other => Err(self.refuse(
                ctx,
                Finding::new(
                    Code::ScriptError,
                    format!("`{other}` is registered but has no implementation"),
                ),
            )),
        }
    }

    fn jobs_arg(
        &self,
        ctx: &NativeCallContext,
        prim: &Primitive,
        arg: &Dynamic,
    ) -> Result<Vec<JobHandle>, Raise> {
        let Some(items) = arg.read_lock::<Array>().map(|a| a.clone()) else {
            return Err(self.fail(
                ctx,
                Finding::new(
                    Code::InvalidArgument,
                    format!(
                        "`{}` needs an array of Jobs, not {}",
                        prim.name,
                        type_name(arg)
                    ),
                ),
            ));
        };
        items.iter().map(|j| self.job_arg(ctx, prim, j)).collect()
    }

    fn vms(
        &self,
        ctx: &NativeCallContext,
        prim: &'static Primitive,
        arg: Option<&Dynamic>,
    ) -> Result<Dynamic, Raise> {
        let opts = self.opts(ctx, prim, arg)?;
        let glob = opts.text("name");
        let plan = opts.text("plan");
        if glob.is_none() && plan.is_none() {
            return Err(self.fail(
                ctx,
                Finding::new(
                    Code::InvalidOption,
                    "`vms` needs `name` (a glob) or `plan` (a recovery plan)",
                )
                .help("write e.g. vms(#{ name: \"web-*\" }) or vms(#{ plan: \"web-tier\" })"),
            ));
        }
        if !self.backend.knows_names() {
            let site = self.site(ctx);
            self.warn(self.at(
                Finding::new(
                    Code::NamesNotChecked,
                    "without an inventory `vms` finds no VM, so what the runbook does with them was not checked",
                )
                .label("no VMs here")
                .help("name an inventory in runbook.toml (`inventory = \"inventory.toml\"`) or pass --inventory FILE"),
                &site,
            ));
            return Ok(Dynamic::from_array(Vec::new()));
        }
        let mut names: Vec<String> = match &plan {
            Some(p) => self
                .read(ctx, "plan", p, || {
                    self.exec.block_on(self.backend.plan_members(p))
                })?
                .map_err(|e| self.backend_error(ctx, e))?,
            None => self
                .read(ctx, "items", "", || {
                    self.exec
                        .block_on(self.backend.list_items())
                        .map(|items| items.into_iter().map(|i| i.name).collect())
                })?
                .map_err(|e| self.backend_error(ctx, e))?,
        };
        if let Some(g) = &glob {
            let pattern = glob::Pattern::new(g).map_err(|e| {
                self.fail(
                    ctx,
                    Finding::new(
                        Code::InvalidOption,
                        format!("`{g}` is not a valid name glob: {e}"),
                    )
                    .help("use * and ? as wildcards, e.g. \"web-*\""),
                )
            })?;
            names.retain(|n| pattern.matches(n));
            if names.is_empty() && self.backend.knows_names() {
                return Err(self.fail(
                    ctx,
                    Finding::new(Code::UnknownVm, format!("no VM matches `{g}`"))
                        .help("check the glob against the names in the inventory"),
                ));
            }
        }
        Ok(Dynamic::from_array(
            names
                .into_iter()
                .map(|n| Dynamic::from(VmHandle { name: n.into() }))
                .collect(),
        ))
    }

    fn failover(
        &self,
        ctx: &NativeCallContext,
        prim: &'static Primitive,
        vm: &Dynamic,
        opts: Option<&Dynamic>,
    ) -> Result<Dynamic, Raise> {
        let name = self.vm_name(ctx, prim, vm)?;
        let opts = self.opts(ctx, prim, opts)?;
        let item = self.lookup(ctx, &name)?;
        let planned = opts.text("kind").as_deref() == Some("planned");
        let direction = match opts.text("direction").as_deref() {
            Some("primary_to_recovery") => Direction::PrimaryToRecovery,
            Some("recovery_to_primary") => Direction::RecoveryToPrimary,
            _ => Direction::away_from(item.active_location),
        };
        let request = OperationRequest {
            direction: Some(direction),
            shutdown_source: opts.flag("shutdown_source").unwrap_or(false),
            recovery_point: opts
                .text("recovery_point")
                .and_then(|r| RecoveryPoint::parse(&r)),
            ..OperationRequest::new(if planned {
                Operation::PlannedFailover
            } else {
                Operation::UnplannedFailover
            })
        };
        let job = self.start(ctx, &name, request)?;
        let now = self.clock.now();
        self.state.borrow_mut().failover_started.insert(name, now);
        Ok(job)
    }

    fn check_verified(&self, ctx: &NativeCallContext, name: &str, item: &Item) {
        let st = self.state.borrow();
        let since = st.failover_started.get(name).copied().unwrap_or_default();
        let ok = st
            .verified
            .get(name)
            .is_some_and(|(site, at)| *site == item.active_location && *at >= since);
        drop(st);
        if !ok {
            let site = self.site(ctx);
            self.warn(self.at(
                Finding::new(
                    Code::CommitWithoutVerify,
                    format!("commit of `{name}` is not preceded by a verify of the VM on the {} site", item.active_location.as_str()),
                )
                .label("commit deletes every other recovery point")
                .help(format!(
                    "verify first: verify({name:?}, #{{ active_location: \"{}\", healthy: true }})",
                    item.active_location.as_str()
                )),
                &site,
            ));
        }
    }

    fn start(
        &self,
        ctx: &NativeCallContext,
        name: &str,
        request: OperationRequest,
    ) -> Result<Dynamic, Raise> {
        let op = request.operation;
        tracing::debug!(vm = name, operation = %op, "issuing");
        let job = self
            .issue(ctx, name, request)?
            .map_err(|e| self.backend_error(ctx, e))?;
        let site = self.site(ctx);
        if job.state == JobState::Failed && job.errors.first().is_some_and(|e| e.code == "532") {
            let st = self.state.borrow();
            let running = st
                .jobs
                .iter()
                .rev()
                .find(|r| r.info.vm == name && !r.info.state.is_terminal());
            let mut finding = Finding::new(
                Code::ItemBusy,
                format!("{op} of `{name}` was refused: another operation is in progress on it (error 532)"),
            )
            .label("the item is busy")
            .help("wait for the running job with wait_job(job) before starting another operation on this VM");
            if let Some(r) = running {
                finding = finding.note(format!(
                    "{} of `{name}` started at {} is still running",
                    r.info.operation, r.site.location
                ));
            }
            for e in &job.errors {
                finding = finding.notes(e.lines());
            }
            drop(st);
            return Err(self.raise(ctx, self.at(finding, &site), true));
        }
        tracing::debug!(vm = name, operation = %op, job = %job.id, state = %job.state, "issued");
        self.observer.job_started(&job);
        let mut st = self.state.borrow_mut();
        if op == Operation::TestFailover {
            st.drills.insert(name.to_string(), site.clone());
        }
        st.last_op.insert(name.to_string(), site.clone());
        let index = st.jobs.len();
        st.by_id.insert(job.id.clone(), index);
        st.jobs.push(JobRecord {
            info: job.clone(),
            site,
            waited: false,
        });
        drop(st);
        Ok(Dynamic::from(self.handle(job)))
    }

    fn cancel(
        &self,
        ctx: &NativeCallContext,
        prim: &Primitive,
        arg: &Dynamic,
    ) -> Result<Dynamic, Raise> {
        let job = self.job_arg(ctx, prim, arg)?.info().clone();
        if job.operation.is_failover() {
            return Err(self.refuse(
                ctx,
                Finding::new(
                    Code::CancelFailover,
                    format!("refused to cancel the {} of `{}`", job.operation, job.vm),
                )
                .label("never cancel a failover")
                .note("replication was stopped before the failover began: a cancelled failover leaves the VM without replication")
                .help("let the failover finish; if it fails, fix the cause and fail over again"),
            ));
        }
        let info = self
            .issue_cancel(ctx, &job)?
            .map_err(|e| self.backend_error(ctx, e))?;
        self.update(&info);
        let index = self.state.borrow().by_id.get(&info.id).copied();
        if let Some(i) = index {
            // Cancelling is a decision about the job: it no longer needs a wait.
            self.state.borrow_mut().jobs[i].waited = true;
        }
        self.observer.job_updated(&info);
        Ok(Dynamic::from(self.handle(info)))
    }

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

    /// Sleeps on the run's clock; false if the run was interrupted.
    fn sleep(&self, d: Duration) -> bool {
        match &self.interrupt {
            Some(token) => {
                if token.is_cancelled() {
                    return false;
                }
                self.exec.block_on(async {
                    tokio::select! {
                        _ = self.clock.sleep(d) => true,
                        _ = token.cancelled() => false,
                    }
                })
            }
            None => {
                self.exec.block_on(self.clock.sleep(d));
                true
            }
        }
    }

    fn wait(
        &self,
        ctx: &NativeCallContext,
        ids: &[String],
        timeout: Option<Duration>,
    ) -> Result<Vec<JobInfo>, Raise> {
        let explicit = timeout.is_some();
        let timeout = timeout.unwrap_or(DEFAULT_WAIT);
        {
            let mut st = self.state.borrow_mut();
            for id in ids {
                if let Some(&i) = st.by_id.get(id) {
                    st.jobs[i].waited = true;
                }
            }
        }
        let recorded = match self.journal.as_ref().and_then(|j| j.next_answer()) {
            Some(Record {
                entry: Entry::Waited { jobs, outcome },
                ..
            }) if jobs == ids => Some(outcome),
            Some(other) => {
                return Err(self.diverged(ctx, &format!("a wait for {} job(s)", ids.len()), other))
            }
            None => None,
        };
        let outcome = match recorded {
            Some(outcome) => outcome,
            None => {
                let outcome = self.poll(ctx, ids, timeout)?;
                let lost = matches!(outcome, Waited::Failed(BackendError::Transport(_)));
                if let (Some(j), false) = (&self.journal, lost) {
                    let entry = Entry::Waited {
                        jobs: ids.to_vec(),
                        outcome: outcome.clone(),
                    };
                    if let Err(e) = j.append(self.clock.now(), entry) {
                        tracing::warn!("{e}");
                    }
                }
                outcome
            }
        };
        let done = match outcome {
            Waited::Done(done) => done,
            Waited::TimedOut(latest) => return Err(self.timed_out(ctx, &latest, timeout, explicit)),
            Waited::Failed(e) => return Err(self.backend_error(ctx, e)),
        };
        for info in &done {
            self.update(info);
            self.observer.job_updated(info);
        }
        self.conclude(ctx, done)
    }

    /// Follows jobs until they end or `timeout` passes. Errs only when the run is
    /// interrupted (then nothing is recorded, and a resume waits again).
    fn poll(
        &self,
        ctx: &NativeCallContext,
        ids: &[String],
        timeout: Duration,
    ) -> Result<Waited, Raise> {
        let deadline = self.clock.now().plus(timeout);
        let mut done: Vec<Option<JobInfo>> = vec![None; ids.len()];
        loop {
            let mut next = POLL;
            let mut soonest: Option<Timestamp> = None;
            let mut latest: Vec<JobInfo> = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                if done[i].is_some() {
                    continue;
                }
                let info = match self.exec.block_on(self.backend.job(id)) {
                    Ok(info) => info,
                    Err(e) => return Ok(Waited::Failed(e)),
                };
                tracing::trace!(job = %info.id, state = %info.state, "polled");
                self.update(&info);
                self.observer.job_updated(&info);
                // Only the in-process simulator shares the run's clock (and says when a job
                // will end); a service's timestamps are on its own clock.
                if info.expected_end.is_some() && info.ended.is_some_and(|end| end > deadline) {
                    // It ended after the deadline (a sped-up clock can overshoot between
                    // polls): at the deadline it was still running, so the wait timed out.
                    let mut at_deadline = info;
                    at_deadline.state = JobState::InProgress;
                    at_deadline.ended = None;
                    return Ok(Waited::TimedOut(vec![at_deadline]));
                }
                if info.state.is_terminal() {
                    done[i] = Some(info);
                } else {
                    next = next.min(info.retry_after.unwrap_or(POLL));
                    if let Some(end) = info.expected_end {
                        soonest = Some(soonest.map_or(end, |s| s.min(end)));
                    }
                    latest.push(info);
                }
            }
            if latest.is_empty() {
                break;
            }
            let now = self.clock.now();
            if now >= deadline {
                return Ok(Waited::TimedOut(latest));
            }
            // On a virtual clock nothing happens between polls, so jump to the next job's
            // end instead of polling every Retry-After.
            let step = match soonest {
                Some(end) if self.clock.is_virtual() => end.since(now),
                _ => next,
            };
            let step = step.min(deadline.since(now)).max(Duration::from_millis(1));
            if !self.sleep(step) {
                let names: Vec<String> = latest
                    .iter()
                    .map(|j| format!("{} of {}", j.operation, j.vm))
                    .collect();
                return Err(self.refuse(
                    ctx,
                    Finding::new(Code::Interrupted, "the run was interrupted while waiting")
                        .note(format!(
                            "still in flight in the service (not cancelled): {}",
                            names.join(", ")
                        ))
                        .help("no new operation will be issued; follow the jobs in the service"),
                ));
            }
        }
        Ok(Waited::Done(done.into_iter().flatten().collect()))
    }

    /// What ended jobs mean for the script: warnings, and an error if one did not succeed.
    fn conclude(&self, ctx: &NativeCallContext, done: Vec<JobInfo>) -> Result<Vec<JobInfo>, Raise> {
        for job in done
            .iter()
            .filter(|j| j.state == JobState::Succeeded && !j.warnings.is_empty())
        {
            if !self.state.borrow_mut().warned.insert(job.id.clone()) {
                continue;
            }
            if let Some(rec) = self.record_of(&job.id) {
                self.warn(self.at(
                    Finding::new(
                        Code::JobWarning,
                        format!("the {} of `{}` succeeded with warnings", job.operation, job.vm),
                    )
                    .label("started here")
                    .notes(job.warnings.iter().cloned())
                    .help("check what the warning means for the VM before going on (e.g. data not yet replicated is lost)"),
                    &rec.site,
                ));
            }
        }
        let failed: Vec<&JobInfo> = done
            .iter()
            .filter(|j| j.state != JobState::Succeeded)
            .collect();
        if failed.is_empty() {
            return Ok(done);
        }
        let message = if failed.len() == 1 {
            let j = failed[0];
            format!(
                "{} of `{}` {} (job {})",
                j.operation,
                j.vm,
                j.state.as_str().to_lowercase(),
                j.id
            )
        } else {
            format!("{} of {} jobs did not succeed", failed.len(), done.len())
        };
        let mut finding = Finding::new(Code::JobFailed, message)
            .label("the job failed here")
            .help("the VM stays as it was before the operation; fix the cause the service names, then run the operation again (or catch the error to handle it)");
        for j in &failed {
            if failed.len() > 1 {
                finding = finding.note(format!(
                    "{} of `{}`: {} (job {})",
                    j.operation, j.vm, j.state, j.id
                ));
            }
            if let Some(rec) = self.record_of(&j.id) {
                finding = finding.note(format!("started at {}", rec.site.location));
            }
            for e in &j.errors {
                finding = finding.notes(e.lines());
            }
            for w in &j.warnings {
                finding = finding.note(format!("warning: {w}"));
            }
        }
        Err(self.fail(ctx, finding))
    }

    fn timed_out(
        &self,
        ctx: &NativeCallContext,
        running: &[JobInfo],
        timeout: Duration,
        explicit: bool,
    ) -> Raise {
        let j = &running[0];
        let takes = j.expected_end.map(|e| e.since(j.started));
        let mut finding = match (self.mode, takes) {
            (Mode::Check, Some(takes)) if explicit => Finding::new(
                Code::WaitTooShort,
                format!(
                    "the wait times out after {} but the {} of `{}` takes {} in the simulation",
                    human(timeout),
                    j.operation,
                    j.vm,
                    human(takes)
                ),
            )
            .label(format!("times out after {}", human(timeout)))
            .help(format!(
                "allow more than the job's expected {}: e.g. #{{ timeout: \"{}\" }}",
                human(takes),
                human(takes * 2).replace(' ', "")
            )),
            _ => Finding::new(
                Code::JobFailed,
                format!("waited {} for the {} of `{}`; it is still {}", human(timeout), j.operation, j.vm, j.state),
            )
            .label("timed out here")
            .help("the job goes on in the service and was not cancelled; wait again or follow it in the service"),
        };
        if running.len() > 1 {
            finding = finding.note(format!("{} jobs were still running", running.len()));
        }
        if let Some(rec) = self.record_of(&j.id) {
            finding = finding.note(format!("the job was started at {}", rec.site.location));
        }
        self.fail(ctx, finding)
    }

    fn verify(
        &self,
        ctx: &NativeCallContext,
        prim: &'static Primitive,
        vm: &Dynamic,
        opts: Option<&Dynamic>,
    ) -> Result<Dynamic, Raise> {
        let name = self.vm_name(ctx, prim, vm)?;
        let opts = self.opts(ctx, prim, opts)?;
        let item = self.lookup(ctx, &name)?;
        let mut wrong = Vec::new();
        let mut checked = Vec::new();
        if let Some(site) = opts.text("active_location") {
            checked.push(format!("active on {site}"));
            if item.active_location.as_str() != site {
                wrong.push(format!(
                    "expected active_location {site}, found {}",
                    item.active_location.as_str()
                ));
            }
        }
        if let Some(healthy) = opts.flag("healthy") {
            checked.push(if healthy { "healthy" } else { "not healthy" }.to_string());
            if item.is_healthy() != healthy {
                wrong.push(format!(
                    "expected healthy: {healthy}, found replication health {}",
                    item.health
                ));
            }
        }
        if let Some(replicating) = opts.flag("replicating") {
            checked.push(
                if replicating {
                    "replicating"
                } else {
                    "not replicating"
                }
                .to_string(),
            );
            if item.replicating != replicating {
                wrong.push(format!(
                    "expected replicating: {replicating}, found {} ({})",
                    item.replicating, item.protection_state
                ));
            }
        }
        if wrong.is_empty() {
            self.state
                .borrow_mut()
                .verified
                .insert(name.clone(), (item.active_location, self.clock.now()));
            self.observer.verified(&name, &checked.join(", "));
            self.describe(Entry::Verified {
                vm: name.clone(),
                site: item.active_location,
                what: checked.join(", "),
            });
            return Ok(Dynamic::UNIT);
        }
        let mut finding = Finding::new(
            Code::VerifyFailed,
            format!("verification of `{name}` failed"),
        )
        .label(wrong.join("; "))
        .help("do not commit or reverse a VM that failed verification; find out why first");
        for w in wrong {
            finding = finding.note(w);
        }
        for e in &item.health_errors {
            finding = finding.note(format!("health: {e}"));
        }
        Err(self.fail(ctx, finding))
    }

    fn preflight(
        &self,
        ctx: &NativeCallContext,
        prim: &'static Primitive,
        arg: Option<&Dynamic>,
    ) -> Result<Dynamic, Raise> {
        let opts = self.opts(ctx, prim, arg)?;
        let max_age = opts.duration("max_drill_age").unwrap_or(DEFAULT_DRILL_AGE);
        let names: Vec<String> = opts
            .get("vms")
            .and_then(|v| v.read_lock::<Array>().map(|a| a.clone()))
            .unwrap_or_default()
            .iter()
            .map(|v| self.vm_name(ctx, prim, v))
            .collect::<Result<_, _>>()?;
        if !names.is_empty() {
            self.names_used.set(true);
        }
        // Recorded as one answer: its findings depend on the time (drill ages), and a
        // resume must see what the run saw.
        let problems = self
            .read(ctx, "preflight", &names.join(","), || {
                self.preflight_problems(&names, max_age)
            })?
            .map_err(|e| self.backend_error(ctx, e))?;
        for p in &problems {
            self.observer.note(&format!("preflight: {p}"));
        }
        if problems.is_empty() {
            self.observer.note(&format!(
                "preflight: {} VMs ready, both sites connected",
                names.len()
            ));
        }
        let mut map = Map::new();
        map.insert("ok".into(), problems.is_empty().into());
        map.insert(
            "problems".into(),
            Dynamic::from_array(problems.into_iter().map(Dynamic::from).collect()),
        );
        map.insert("checked".into(), Dynamic::from_int(names.len() as i64));
        Ok(Dynamic::from_map(map))
    }

    /// What stands in the way of a recovery of `names`: unconnected sites, VMs that do
    /// not replicate or are unhealthy, drills waiting for cleanup, old or missing drills.
    fn preflight_problems(
        &self,
        names: &[String],
        max_age: Duration,
    ) -> Result<Vec<String>, BackendError> {
        let mut problems: Vec<String> = Vec::new();
        for p in &self.exec.block_on(self.backend.providers())? {
            if !p.connected {
                problems.push(format!(
                    "the {} site's server `{}` is not connected to Site Recovery",
                    p.site.as_str(),
                    p.name
                ));
            }
        }
        let now = self.clock.now();
        for name in names {
            let item = self.exec.block_on(self.backend.item(name))?;
            if !item.replicating {
                problems.push(format!(
                    "`{name}` is not replicating ({})",
                    item.protection_state
                ));
            }
            if !item.is_healthy() {
                problems.push(format!("`{name}` has {} replication health", item.health));
            }
            if item.test_failover_state.is_some() {
                problems.push(format!("`{name}` has a drill waiting for cleanup"));
            }
            match item.last_test_failover {
                None => problems.push(format!("`{name}` has never had a successful drill")),
                Some(t) if now.since(t) > max_age => problems.push(format!(
                    "`{name}`'s last successful drill was {} ago (older than {})",
                    human(now.since(t)),
                    human(max_age)
                )),
                Some(_) => {}
            }
        }
        Ok(problems)
    }

    fn manual_step(
        &self,
        ctx: &NativeCallContext,
        title: &str,
        opts: &Opts,
    ) -> Result<Dynamic, Raise> {
        if self.is_interrupted() {
            return Err(self.refuse(
                ctx,
                Finding::new(
                    Code::Interrupted,
                    "the run was interrupted before a manual step",
                ),
            ));
        }
        let timeout = opts.duration("timeout").unwrap_or(DEFAULT_STEP);
        let instructions = opts.text("instructions");
        let number = self.steps.get() + 1;
        self.steps.set(number);
        let answer = match self.journal.as_ref().and_then(|j| j.next_answer()) {
            Some(Record {
                entry: Entry::Step {
                    title: t, outcome, ..
                },
                at,
                ..
            }) if t == title => match outcome {
                StepOutcome::Approved { by } => {
                    self.observer.note(&format!(
                        "manual step {number} `{title}`: approved by {by} (recorded)"
                    ));
                    self.state.borrow_mut().approvals.push(Approval {
                        title: title.to_string(),
                        by,
                        at,
                    });
                    return Ok(Dynamic::UNIT);
                }
                StepOutcome::TimedOut => StepAnswer::TimedOut,
            },
            Some(other) => {
                return Err(self.diverged(ctx, &format!("manual step `{title}`"), other))
            }
            None => self.ask(number, title, instructions.as_deref(), timeout),
        };
        match answer {
            _ if self.is_interrupted() => Err(self.refuse(
                ctx,
                Finding::new(
                    Code::Interrupted,
                    format!("the run was interrupted at manual step `{title}`"),
                )
                .help("jobs already started go on in the service; nothing was cancelled"),
            )),
            StepAnswer::Approved { by } => {
                let at = self.clock.now();
                self.record_step(number, title, StepOutcome::Approved { by: by.clone() });
                self.state.borrow_mut().approvals.push(Approval {
                    title: title.to_string(),
                    by,
                    at,
                });
                Ok(Dynamic::UNIT)
            }
            StepAnswer::Aborted => Err(self.refuse(
                ctx,
                Finding::new(
                    Code::Interrupted,
                    format!("the operator stopped the run at manual step `{title}`"),
                )
                .help("jobs already started go on in the service; nothing was cancelled"),
            )),
            StepAnswer::TimedOut => {
                self.record_step(number, title, StepOutcome::TimedOut);
                Err(self.fail(
                    ctx,
                    Finding::new(
                        Code::ScriptError,
                        format!(
                            "manual step `{title}` was not confirmed within {}",
                            human(timeout)
                        ),
                    ),
                ))
            }
            StepAnswer::Unavailable(why) => Err(self.refuse(ctx, Finding::new(Code::Refused, why))),
        }
    }

    // ---- the journal -------------------------------------------------------------------

    /// Asks the operator (or another terminal, through the run's folder) to confirm step
    /// `number`.
    fn ask(
        &self,
        number: u32,
        title: &str,
        instructions: Option<&str>,
        timeout: Duration,
    ) -> StepAnswer {
        let folder = self
            .journal
            .as_ref()
            .and_then(|j| j.path().parent().map(std::path::Path::to_path_buf));
        let external =
            |dir: &std::path::Path| crate::journal::approvals::given(dir, number).map(|g| g.by);
        let poll;
        let mut request = StepRequest {
            number,
            title,
            instructions,
            timeout,
            external: None,
            approve_command: None,
        };
        if let (Some(dir), Some(j)) = (&folder, &self.journal) {
            if let Err(e) = crate::journal::approvals::set_waiting(dir, number, title) {
                tracing::warn!("cannot say which step the run waits at: {e}");
            }
            poll = move || external(dir);
            request.external = Some(&poll);
            request.approve_command = Some(format!("runbook approve {} {number}", j.run()));
        }
        let answer = self.observer.step(&request);
        if let Some(dir) = &folder {
            crate::journal::approvals::clear_waiting(dir);
        }
        answer
    }

    fn record_step(&self, number: u32, title: &str, outcome: StepOutcome) {
        if let Some(j) = &self.journal {
            let entry = Entry::Step {
                number,
                title: title.to_string(),
                outcome,
            };
            if let Err(e) = j.append(self.clock.now(), entry) {
                tracing::warn!("{e}");
            }
        }
    }

    /// Records a description of the run (a note, a verification) unless it is replayed.
    fn describe(&self, entry: Entry) {
        if let Some(j) = &self.journal {
            j.describe(self.clock.now(), entry);
        }
    }

    /// The run took another path than the journal records: it cannot be resumed safely.
    fn diverged(&self, ctx: &NativeCallContext, doing: &str, recorded: Record) -> Raise {
        self.refuse(
            ctx,
            Finding::new(
                Code::Refused,
                format!(
                    "the resumed run does not follow its journal: it now makes {doing}, where record {} of the journal is {}",
                    recorded.seq,
                    recorded.entry.describe()
                ),
            )
            .label("the run went another way here")
            .help("nothing was issued; the runbook behaves differently than when the run started (did it or its inventory change?). Look at `runbook show RUN` and start a new run"),
        )
    }

    /// A read, answered from the journal on resume and recorded otherwise. A transport
    /// failure is not recorded: a resume reads again.
    fn read<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        ctx: &NativeCallContext,
        call: &str,
        key: &str,
        live: impl FnOnce() -> Result<T, BackendError>,
    ) -> Result<Result<T, BackendError>, Raise> {
        let Some(j) = &self.journal else {
            return Ok(live());
        };
        match j.next_answer() {
            Some(Record {
                entry:
                    Entry::Read {
                        call: c,
                        key: k,
                        answer,
                    },
                ..
            }) if c == call && k == key => {
                return Ok(match answer {
                    Answer::Ok(v) => serde_json::from_value(v).map_err(|e| {
                        BackendError::Transport(format!("the journal's answer is unreadable: {e}"))
                    }),
                    Answer::Err(e) => Err(e),
                });
            }
            Some(other) => {
                return Err(self.diverged(ctx, &format!("a read of {call} `{key}`"), other))
            }
            None => {}
        }
        let result = live();
        let answer = match &result {
            Ok(v) => serde_json::to_value(v).map(Answer::Ok).ok(),
            Err(BackendError::Transport(_)) => None,
            Err(e) => Some(Answer::Err(e.clone())),
        };
        if let Some(answer) = answer {
            let entry = Entry::Read {
                call: call.to_string(),
                key: key.to_string(),
                answer,
            };
            if let Err(e) = j.append(self.clock.now(), entry) {
                tracing::warn!("{e}");
            }
        }
        Ok(result)
    }

    /// Refuses a mutating call when the journal cannot be written.
    fn journal_writable(
        &self,
        ctx: &NativeCallContext,
        what: &str,
        j: &Journal,
    ) -> Result<(), Raise> {
        match j.broken() {
            None => Ok(()),
            Some(why) => Err(self.refuse(
                ctx,
                Finding::new(Code::Refused, format!("{what} was not issued: {why}"))
                    .help("free the disk (or fix the folder's permissions), then `runbook resume` the run; jobs already started go on in the service"),
            )),
        }
    }

    /// Starts an operation through the journal: its intent is on disk before the request
    /// leaves, and its answer after. On resume, a recorded answer is replayed; an intent
    /// without an answer is settled with the service before anything is sent again.
    fn issue(
        &self,
        ctx: &NativeCallContext,
        name: &str,
        request: OperationRequest,
    ) -> Result<Result<JobInfo, BackendError>, Raise> {
        let Some(j) = &self.journal else {
            return Ok(self.exec.block_on(self.backend.start(name, &request)));
        };
        let op = request.operation;
        match j.next_answer() {
            Some(Record {
                seq,
                at,
                entry: Entry::Intent {
                    vm, operation, key, ..
                },
            }) if vm == name && operation == op.as_str() => {
                let request = OperationRequest {
                    key: Some(key),
                    ..request
                };
                return match j.next_answer() {
                    Some(Record {
                        entry: Entry::Issued { intent, answer, .. },
                        ..
                    }) if intent == seq => Ok(answer.into()),
                    Some(other) => {
                        Err(self.diverged(ctx, &format!("the answer to {op} of `{name}`"), other))
                    }
                    None => self.settle(ctx, j, seq, at, name, request),
                };
            }
            Some(other) => return Err(self.diverged(ctx, &format!("{op} of `{name}`"), other)),
            None => {}
        }
        self.journal_writable(ctx, &format!("{op} of `{name}`"), j)?;
        let seq = j.next_seq();
        let request = OperationRequest {
            key: Some(j.key(seq)),
            ..request
        };
        let intent = Entry::Intent {
            vm: name.to_string(),
            operation: op.as_str().to_string(),
            request: Some(request.clone()),
            job: None,
            key: j.key(seq),
            line: Some(self.site(ctx).runbook_location().to_string()),
        };
        j.append(self.clock.now(), intent)
            .map_err(|why| self.journal_failed(ctx, &format!("{op} of `{name}`"), why))?;
        let answer = self.exec.block_on(self.backend.start(name, &request));
        self.record_issued(j, seq, &answer, false);
        Ok(answer)
    }

    fn journal_failed(&self, ctx: &NativeCallContext, what: &str, why: String) -> Raise {
        self.refuse(
            ctx,
            Finding::new(Code::Refused, format!("{what} was not issued: {why}"))
                .help("free the disk (or fix the folder's permissions), then `runbook resume` the run; jobs already started go on in the service"),
        )
    }

    /// Records the answer to intent `seq`, except a lost one (the intent stays open, and a
    /// resume settles it with the service).
    fn record_issued(
        &self,
        j: &Journal,
        seq: u64,
        answer: &Result<JobInfo, BackendError>,
        settled: bool,
    ) {
        if matches!(answer, Err(BackendError::Transport(_))) {
            return;
        }
        let entry = Entry::Issued {
            intent: seq,
            answer: Answer::from(answer.clone()),
            settled,
        };
        if let Err(e) = j.append(self.clock.now(), entry) {
            tracing::warn!("{e}");
        }
    }

    /// An intent whose answer never reached the journal (the runner crashed): finds the
    /// job it created; if the service has none and the VM still allows the operation, the
    /// request never arrived and is sent now (with the same key); otherwise stops.
    fn settle(
        &self,
        ctx: &NativeCallContext,
        j: &Journal,
        seq: u64,
        at: Timestamp,
        name: &str,
        request: OperationRequest,
    ) -> Result<Result<JobInfo, BackendError>, Raise> {
        let op = request.operation;
        let since = Timestamp(at.0.saturating_sub(SETTLE_SKEW.as_millis() as u64));
        let cannot = |why: String| {
            self.refuse(
                ctx,
                Finding::new(
                    Code::Refused,
                    format!("cannot tell whether the {op} of `{name}` (journal record {seq}) reached the service: {why}"),
                )
                .help("nothing was sent again. Check the vault's job list for the operation; resume again once the service answers"),
            )
        };
        let found = self
            .exec
            .block_on(self.backend.find_started(name, &request, since))
            .map_err(|e| cannot(e.to_string()))?;
        if let Some(job) = found {
            self.observer.note(&format!(
                "{op} of `{name}`: found job {} started before the interruption; following it",
                job.id
            ));
            let answer = Ok(job);
            self.record_issued(j, seq, &answer, true);
            return Ok(answer);
        }
        let item = self
            .exec
            .block_on(self.backend.item(name))
            .map_err(|e| cannot(e.to_string()))?;
        if !item.allows(op) || item.current_job.is_some() {
            return Err(cannot(format!(
                "the service has no job for it, and `{name}` is now {}{}",
                item.protection_state,
                item.current_job
                    .as_deref()
                    .map(|job| format!(" with job {job} running"))
                    .unwrap_or_default()
            )));
        }
        self.observer.note(&format!(
            "{op} of `{name}` never reached the service before the interruption; issuing it now"
        ));
        self.journal_writable(ctx, &format!("{op} of `{name}`"), j)?;
        let answer = self.exec.block_on(self.backend.start(name, &request));
        self.record_issued(j, seq, &answer, false);
        Ok(answer)
    }

    /// Cancels a job through the journal, as [`Host::issue`] starts one. Cancelling again
    /// is harmless, so an unsettled cancel is simply sent again unless the job ended.
    fn issue_cancel(
        &self,
        ctx: &NativeCallContext,
        job: &JobInfo,
    ) -> Result<Result<JobInfo, BackendError>, Raise> {
        let Some(j) = &self.journal else {
            return Ok(self.exec.block_on(self.backend.cancel_job(&job.id)));
        };
        let what = format!("the cancel of job {}", job.id);
        let seq = match j.next_answer() {
            Some(Record {
                seq,
                entry: Entry::Intent { job: Some(id), .. },
                ..
            }) if id == job.id => match j.next_answer() {
                Some(Record {
                    entry: Entry::Issued { intent, answer, .. },
                    ..
                }) if intent == seq => return Ok(answer.into()),
                Some(other) => return Err(self.diverged(ctx, &what, other)),
                None => {
                    let now = self.exec.block_on(self.backend.job(&job.id));
                    if let Ok(info) = &now {
                        if info.state.is_terminal() {
                            self.record_issued(j, seq, &now, true);
                            return Ok(now);
                        }
                    }
                    seq
                }
            },
            Some(other) => return Err(self.diverged(ctx, &what, other)),
            None => {
                self.journal_writable(ctx, &what, j)?;
                let seq = j.next_seq();
                let intent = Entry::Intent {
                    vm: job.vm.clone(),
                    operation: "cancel".into(),
                    request: None,
                    job: Some(job.id.clone()),
                    key: j.key(seq),
                    line: Some(self.site(ctx).runbook_location().to_string()),
                };
                j.append(self.clock.now(), intent)
                    .map_err(|why| self.journal_failed(ctx, &what, why))?;
                seq
            }
        };
        let answer = self.exec.block_on(self.backend.cancel_job(&job.id));
        self.record_issued(j, seq, &answer, false);
        Ok(answer)
    }

    // ---- the end of a run --------------------------------------------------------------

    /// The jobs not known to have ended.
    fn open_jobs(&self) -> Vec<String> {
        self.state
            .borrow()
            .jobs
            .iter()
            .filter(|r| !r.info.state.is_terminal())
            .map(|r| r.info.id.clone())
            .collect()
    }

    /// Asks the service once for every job not known to have ended, so the run's record
    /// and the script's handles show their latest state (for the summary, also after a
    /// failure).
    pub fn refresh_jobs(&self) {
        for id in &self.open_jobs() {
            if let Ok(info) = self.exec.block_on(self.backend.job(id)) {
                self.update(&info);
            }
        }
    }

    /// Checks the state the runbook leaves behind. In a dry run, first lets every job the
    /// service still runs finish, as the real service would.
    pub fn finish(&self) {
        if self.mode == Mode::Check {
            let open = self.open_jobs();
            let mut last = self.clock.now();
            // Let the service finish what it runs, as the real one would.
            for id in &open {
                if let Ok(info) = self.exec.block_on(self.backend.job(id)) {
                    last = last.max(info.expected_end.unwrap_or(last));
                }
            }
            let wait = last.since(self.clock.now());
            if !wait.is_zero() {
                self.sleep(wait);
            }
        }
        self.refresh_jobs();
        let severity = |code: Code| match self.mode {
            Mode::Check => code.severity(),
            Mode::Run => Severity::Warning,
        };
        let unwaited: Vec<JobRecord> = self
            .state
            .borrow()
            .jobs
            .iter()
            .filter(|r| !r.waited)
            .cloned()
            .collect();
        for rec in unwaited {
            self.warn(
                self.at(
                    Finding::new(
                        Code::JobNotWaited,
                        format!(
                            "the {} job of `{}` is never waited for",
                            rec.info.operation, rec.info.vm
                        ),
                    )
                    .label("job started here, never waited for")
                    .help("wait for it with wait_job(job), or collect the jobs and wait_all(jobs)"),
                    &rec.site,
                ),
            );
        }
        let (last_op, drills) = {
            let st = self.state.borrow();
            (st.last_op.clone(), st.drills.clone())
        };
        for (name, site) in last_op {
            let Some(item) = self.item(&name) else {
                continue;
            };
            if item.current_job.is_some() {
                continue;
            }
            if item.test_failover_state.is_some() {
                let at = drills.get(&name).unwrap_or(&site);
                self.warn(
                    self.at(
                        Finding::new(Code::DrillNotCleanedUp, format!("the drill of `{name}` is never cleaned up"))
                            .label("test failover started here")
                            .help(format!(
                                "end the drill with cleanup_test_failover({name:?}) and wait for it, even when verification fails (use try/catch, or the stdlib's drill)"
                            )),
                        at,
                    )
                    .severity(severity(Code::DrillNotCleanedUp)),
                );
            } else if !item.replicating {
                let next = if item.protection_state.contains("Committed") {
                    format!("reverse_replicate({name:?}) and wait for it, once both sites are reachable")
                } else if item.allows(Operation::Commit) {
                    format!("verify, commit({name:?}), then reverse_replicate({name:?})")
                } else {
                    "re-enable replication for it".to_string()
                };
                self.warn(
                    self.at(
                        Finding::new(
                            Code::LeftUnprotected,
                            format!(
                                "`{name}` is left without replication ({}, active on the {} site)",
                                item.protection_state,
                                item.active_location.as_str()
                            ),
                        )
                        .label("the last operation on this VM")
                        .help(format!(
                            "a VM that does not replicate has no disaster recovery: {next}"
                        )),
                        &site,
                    )
                    .severity(severity(Code::LeftUnprotected)),
                );
            }
        }
    }
}

fn unknown_name(what: &str, name: &str, candidates: &[String]) -> Finding {
    let mut f = Finding::new(Code::UnknownVm, format!("no {what} is named `{name}`"))
        .label(format!("unknown {what}"));
    if let Some(s) = did_you_mean(name, candidates.iter().map(String::as_str)) {
        f = f.help(format!("did you mean `{s}`?"));
    } else if !candidates.is_empty() {
        let shown: Vec<&str> = candidates.iter().take(12).map(String::as_str).collect();
        let more = if candidates.len() > shown.len() {
            ", ..."
        } else {
            ""
        };
        f = f.help(format!("known names: {}{more}", shown.join(", ")));
    }
    f
}

fn not_allowed_help(op: Operation) -> &'static str {
    match op {
        Operation::Commit => "commit only after the failover job succeeded: wait_job(failover job), verify the VM on the target site, then commit",
        Operation::ReverseReplicate => "reverse replication follows a committed failover: fail over, verify and commit first, waiting for each job",
        Operation::PlannedFailover | Operation::UnplannedFailover => {
            "check status(vm).allowed before failing over; a drill must be cleaned up and a pending failover committed first"
        }
        Operation::TestFailover => "drills need a healthy, replicating VM with no other drill in progress",
        Operation::TestFailoverCleanup => "cleanup only ends a drill that test_failover started",
    }
}

/// The map `status(vm)` returns.
pub fn status_map(item: &Item) -> Map {
    let mut m = Map::new();
    m.insert("name".into(), item.name.clone().into());
    m.insert("state".into(), script_state(item).into());
    m.insert(
        "protection_state".into(),
        item.protection_state.clone().into(),
    );
    m.insert(
        "active_location".into(),
        item.active_location.as_str().into(),
    );
    m.insert("health".into(), item.health.to_lowercase().into());
    m.insert("replicating".into(), item.replicating.into());
    m.insert(
        "allowed".into(),
        Dynamic::from_array(
            item.allowed_operations
                .iter()
                .filter_map(|a| Operation::from_allowed_name(a))
                .map(|o| Dynamic::from(o.as_str().to_string()))
                .collect(),
        ),
    );
    m.insert(
        "test_failover_state".into(),
        item.test_failover_state
            .clone()
            .map_or(Dynamic::UNIT, Dynamic::from),
    );
    m.insert(
        "last_test_failover".into(),
        item.last_test_failover
            .map_or(Dynamic::UNIT, |t| t.rfc3339().into()),
    );
    m
}

/// The script's name for an item's state, from ASR's strings.
pub fn script_state(item: &Item) -> &'static str {
    if item.current_job.is_some() {
        "busy"
    } else {
        item.steady_state()
    }
}
