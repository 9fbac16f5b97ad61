//! The in-process simulator: ASR's protected-item state machine and job model, seeded from
//! an inventory, on any [`Clock`]. State changes happen lazily: every call first settles the
//! jobs that ended by the clock's `now`, in the order they ended.

mod job_actions;
mod plan_jobs;
#[cfg(test)]
mod plan_tests;
mod plans;

pub use plans::{ManualView, PlanAction, PlanJobView, PlanRequest, PlanView, TaskView};

use super::inventory::{
    Durations, Health, InitialState, Inventory, ItemSeed, PlanSeed, Reconnect, SiteSeed,
};
use super::{
    Backend, BackendError, Direction, Item, JobInfo, JobState, Operation, OperationRequest,
    PlanState, Provider, ServiceError, Site,
};
use crate::clock::{Clock, Timestamp};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long the service takes to answer "Retry-After" at most.
const POLL: Duration = Duration::from_secs(30);
/// How much longer a source shutdown makes an unplanned failover.
const SHUTDOWN: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protection {
    Protected,
    CommitPending { planned: bool },
    Committed { planned: bool },
    Unprotected,
}

#[derive(Debug, Clone)]
struct SimItem {
    name: String,
    id: String,
    protection: Protection,
    active: Site,
    health: Health,
    drill: bool,
    last_test_failover: Option<Timestamp>,
    busy: Option<String>,
    durations: Durations,
    fail: BTreeSet<Operation>,
    fail_message: Option<String>,
}

#[derive(Debug)]
struct SimJob {
    info: JobInfo,
    request: OperationRequest,
    starts: Timestamp,
    ends: Timestamp,
    outcome: Option<ServiceError>,
}

/// How many received requests the simulator remembers.
const RECEIVED: usize = 100_000;

#[derive(Debug)]
struct State {
    /// Items the simulation has touched; the others are still as their seed says.
    items: HashMap<String, SimItem>,
    seeds: Arc<[ItemSeed]>,
    index: Arc<HashMap<String, usize>>,
    jobs: HashMap<String, SimJob>,
    pending: BinaryHeap<Reverse<(u64, u64, String)>>,
    seq: u64,
    defaults: Durations,
    plans: BTreeMap<String, PlanSeed>,
    /// Recovery plans' jobs, apart from the items' (see [`plans`]).
    plan_jobs: plan_jobs::PlanJobs,
    /// The sites' servers, primary first.
    sites: [SiteSeed; 2],
    /// When the simulation started (a site may reconnect some time after).
    start: Timestamp,
    /// Whether a failover has started (a what-if outage ends at the next manual step).
    failed_over: bool,
    /// The operation requests the simulator received, in order, with their VM (the last
    /// `RECEIVED` of them: a long-running server forgets the oldest).
    received: VecDeque<(String, OperationRequest)>,
    /// What-if: the job numbered so (1-based, in the order jobs were created) fails.
    failing_job: Option<u64>,
}

/// The simulator backend.
pub struct Simulator {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    open_world: bool,
    origin: String,
}

impl Simulator {
    /// A simulator of `inventory`. With `open_world`, unknown names become healthy protected
    /// items on first use (for `check` without an inventory).
    pub fn new(inventory: &Inventory, clock: Arc<dyn Clock>, open_world: bool) -> Self {
        let start = clock.now();
        Simulator {
            clock,
            state: Mutex::new(State {
                items: HashMap::new(),
                seeds: inventory.items.clone(),
                index: inventory.index.clone(),
                jobs: HashMap::new(),
                pending: BinaryHeap::new(),
                seq: 0,
                defaults: inventory.durations,
                plans: inventory.plans.clone(),
                plan_jobs: plan_jobs::PlanJobs::default(),
                sites: [inventory.primary.clone(), inventory.recovery.clone()],
                start,
                failed_over: false,
                received: VecDeque::new(),
                failing_job: None,
            }),
            open_world,
            origin: inventory.origin.clone(),
        }
    }

    /// What-if: the job of the `ordinal`-th operation started on this simulator (1-based,
    /// counting every job it creates) fails when it ends, as if the service had failed it.
    /// The runbook's dry run is deterministic, so the ordinal names the same operation in
    /// every run of the same runbook up to that operation.
    pub fn fail_job(&self, ordinal: u64) {
        self.lock().failing_job = Some(ordinal);
    }

    /// The operation requests received so far (the last 100,000), in order, with their
    /// VM: what reached the service (over HTTP, as the server read it).
    pub fn received(&self) -> Vec<(String, OperationRequest)> {
        self.lock().received.iter().cloned().collect()
    }

    /// Changes an item's replication health, as the service may at any moment (for tests
    /// of what a run does when the estate changes under it).
    pub fn set_health(&self, name: &str, health: Health) -> Result<(), BackendError> {
        let mut st = self.lock();
        st.ensure(name, self.open_world)?;
        if let Some(item) = st.items.get_mut(name) {
            item.health = health;
        }
        Ok(())
    }

    /// The simulation's time now.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave half-applied state that matters more
        // than losing the simulation; recover the guard.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Settles jobs that ended by now and returns the locked state.
    fn settled(&self) -> (MutexGuard<'_, State>, Timestamp) {
        let now = self.clock.now();
        let mut st = self.lock();
        st.settle(now);
        (st, now)
    }
}

impl SimItem {
    fn from_seed(seed: &ItemSeed, index: usize) -> Self {
        let (protection, drill) = match seed.state {
            InitialState::Protected => (Protection::Protected, false),
            InitialState::FailoverCommitPending => {
                (Protection::CommitPending { planned: true }, false)
            }
            InitialState::FailoverCommitted => (Protection::Committed { planned: true }, false),
            InitialState::DrillInProgress => (Protection::Protected, true),
            InitialState::Unprotected => (Protection::Unprotected, false),
        };
        SimItem {
            name: seed.name.clone(),
            id: item_id(index),
            protection,
            active: seed.active_location,
            health: seed.health,
            drill,
            last_test_failover: seed.last_test_failover,
            busy: None,
            durations: seed.durations,
            fail: seed.fail.clone(),
            fail_message: seed.fail_message.clone(),
        }
    }

    fn fresh(name: &str, index: usize, durations: Durations) -> Self {
        SimItem {
            name: name.to_string(),
            id: item_id(index),
            protection: Protection::Protected,
            active: Site::Primary,
            health: Health::Normal,
            drill: false,
            last_test_failover: None,
            busy: None,
            durations,
            fail: BTreeSet::new(),
            fail_message: None,
        }
    }

    fn protection_state(&self) -> &'static str {
        match self.protection {
            Protection::Protected => "Protected",
            Protection::CommitPending { planned: true } => "PlannedFailoverCommitRequired",
            Protection::CommitPending { planned: false } => {
                "UnplannedFailoverCommitPendingStatesBegin"
            }
            Protection::Committed { planned: true } => "PlannedFailoverCommitted",
            Protection::Committed { planned: false } => "UnplannedFailoverCommitted",
            Protection::Unprotected => "UnprotectedStatesBegin",
        }
    }

    fn allowed(&self) -> Vec<&'static str> {
        if self.busy.is_some() {
            return Vec::new();
        }
        if self.drill {
            return vec!["TestFailoverCleanup"];
        }
        match self.protection {
            Protection::Protected => {
                let mut ops = Vec::new();
                if self.health != Health::Critical {
                    ops.push("PlannedFailover");
                }
                ops.push("UnplannedFailover");
                if self.health != Health::Critical {
                    ops.push("TestFailover");
                }
                ops.push("DisableProtection");
                ops
            }
            Protection::CommitPending { .. } => vec!["Commit", "ChangePit", "DisableProtection"],
            Protection::Committed { .. } => vec!["ReverseReplicate", "DisableProtection"],
            Protection::Unprotected => vec!["DisableProtection"],
        }
    }

    fn view(&self) -> Item {
        let health_errors = match self.health {
            Health::Critical => {
                vec!["Replication is not progressing: the replica is not receiving changes.".into()]
            }
            Health::Warning => vec![
                "Replication is lagging behind the configured recovery point objective.".into(),
            ],
            Health::Normal => Vec::new(),
        };
        Item {
            name: self.name.clone(),
            id: self.id.clone(),
            protection_state: self.protection_state().to_string(),
            active_location: self.active,
            health: self.health.asr().to_string(),
            health_errors,
            allowed_operations: self.allowed().into_iter().map(String::from).collect(),
            test_failover_state: self.drill.then(|| "WaitingForCompletion".to_string()),
            last_test_failover: self.last_test_failover,
            current_job: self.busy.clone(),
            replicating: self.protection == Protection::Protected,
        }
    }

    /// Why `op` is not allowed now, in words an operator can act on.
    fn refusal(&self, op: Operation) -> String {
        if self.drill {
            return format!(
                "a test failover (drill) on `{}` waits for its cleanup; run cleanup_test_failover first",
                self.name
            );
        }
        match (op, self.protection) {
            (Operation::Commit, Protection::Protected) => {
                "commit needs a failover that succeeded; this item has no failover to commit (wait for the failover job first)".into()
            }
            (Operation::Commit, Protection::Committed { .. }) => "the failover was already committed".into(),
            (Operation::ReverseReplicate, Protection::CommitPending { .. }) => {
                "reverse replication needs a committed failover; commit first".into()
            }
            (Operation::ReverseReplicate, Protection::Protected) => {
                "the item already replicates; reverse replication follows a committed failover".into()
            }
            (Operation::PlannedFailover | Operation::TestFailover, Protection::Protected)
                if self.health == Health::Critical =>
            {
                "replication health is Critical: a planned or test failover needs healthy replication; in an outage use an unplanned failover".into()
            }
            (op, Protection::CommitPending { .. }) if op.is_failover() || op == Operation::TestFailover => {
                "a failover is waiting for commit".into()
            }
            (op, Protection::Committed { .. }) if op.is_failover() || op == Operation::TestFailover => {
                "the item does not replicate after a committed failover; reverse replicate first".into()
            }
            (_, Protection::Unprotected) => "the item does not replicate; enable replication first".into(),
            _ => format!("{op} is not allowed in state {}", self.protection_state()),
        }
    }
}

impl SimItem {
    /// What a job of `request` that succeeded at `end` does to the item.
    fn apply(&mut self, request: &OperationRequest, end: Timestamp) {
        match request.operation {
            Operation::PlannedFailover | Operation::UnplannedFailover => {
                let dir = request
                    .direction
                    .unwrap_or(Direction::away_from(self.active));
                self.active = dir.source().other();
                self.protection = Protection::CommitPending {
                    planned: request.operation == Operation::PlannedFailover,
                };
            }
            Operation::Commit => {
                if let Protection::CommitPending { planned } = self.protection {
                    self.protection = Protection::Committed { planned };
                }
            }
            Operation::ReverseReplicate => {
                self.protection = Protection::Protected;
                self.health = Health::Normal;
            }
            Operation::TestFailover => {
                self.drill = true;
                self.last_test_failover = Some(end);
            }
            Operation::TestFailoverCleanup => self.drill = false,
        }
    }

    /// What cancelling a running job of `op` does to the item.
    fn cancelled(&mut self, op: Operation) {
        self.busy = None;
        if op.is_failover() {
            // Replication was stopped before the failover began.
            self.protection = Protection::Unprotected;
            self.health = Health::Critical;
        }
    }

    /// Why `request` cannot start on the item now, if it cannot (a running job aside: ASR
    /// accepts that request and fails its job with 532).
    fn check(&self, request: &OperationRequest) -> Result<(), BackendError> {
        let op = request.operation;
        let vm = &self.name;
        if !self.allowed().contains(&op.allowed_name()) {
            return Err(BackendError::NotAllowed {
                item: vm.to_string(),
                operation: op,
                state: self.protection_state().to_string(),
                allowed: self.view().allowed_operations,
                reason: self.refusal(op),
            });
        }
        if let Some(dir) = request.direction {
            let expected = Direction::away_from(self.active);
            if dir != expected {
                return Err(BackendError::NotAllowed {
                    item: vm.to_string(),
                    operation: op,
                    state: self.protection_state().to_string(),
                    allowed: self.view().allowed_operations,
                    reason: format!(
                        "`{vm}` is active on the {} site, so the direction must be {}, not {}",
                        self.active.as_str(),
                        expected.as_str(),
                        dir.as_str()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// How a job will go: its length, and its error if it fails.
struct Run {
    length: Duration,
    outcome: Option<ServiceError>,
    warnings: Vec<String>,
}

fn item_id(index: usize) -> String {
    format!("{:08x}-5a5a-4b4b-8c8c-{:012x}", 0x1000 + index, index)
}

fn job_id(seq: u64) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", 0x5000_0000u64 + seq, seq)
}

impl State {
    /// Remembers a request that reached the simulator (the last [`RECEIVED`]).
    fn receive(&mut self, target: &str, request: OperationRequest) {
        if self.received.len() == RECEIVED {
            self.received.pop_front();
        }
        self.received.push_back((target.to_string(), request));
    }

    /// Makes sure `name` is in `items`: from its seed, or (open world) as a fresh item.
    fn ensure(&mut self, name: &str, open_world: bool) -> Result<(), BackendError> {
        if self.materialize(name) {
            return Ok(());
        }
        if open_world {
            let index = self.seeds.len() + self.items.len();
            let item = SimItem::fresh(name, index, self.defaults);
            self.items.insert(name.to_string(), item);
            return Ok(());
        }
        Err(BackendError::UnknownItem {
            name: name.to_string(),
            candidates: self.seeds.iter().map(|s| s.name.clone()).collect(),
        })
    }

    /// Makes sure a seeded item is in `items`; false if there is no such item.
    fn materialize(&mut self, name: &str) -> bool {
        if self.items.contains_key(name) {
            return true;
        }
        let Some(&i) = self.index.get(name) else {
            return false;
        };
        let item = SimItem::from_seed(&self.seeds[i], i);
        self.items.insert(name.to_string(), item);
        true
    }

    fn settle(&mut self, now: Timestamp) {
        self.reconnect(now, None);
        loop {
            let end = match self.pending.peek() {
                Some(Reverse((end, _, _))) if *end <= now.0 => *end,
                // Plan jobs that advance before the next item job ends (or by now).
                _ => {
                    if self.advance_plans_once(now.0) {
                        continue;
                    }
                    break;
                }
            };
            if self.advance_plans_once(end.saturating_sub(1)) {
                continue;
            }
            let Some(Reverse((_, _, id))) = self.pending.pop() else {
                break;
            };
            self.finish(&id);
        }
    }

    /// Ends a job at its end time and applies its effect.
    fn finish(&mut self, id: &str) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if job.info.state.is_terminal() {
            return;
        }
        job.info.ended = Some(job.ends);
        job.info.retry_after = None;
        let vm = job.info.vm.clone();
        let request = job.request.clone();
        let end = job.ends;
        let succeeded = match job.outcome.clone() {
            Some(error) => {
                job.info.state = JobState::Failed;
                job.info.errors.push(error);
                false
            }
            None => {
                job.info.state = JobState::Succeeded;
                true
            }
        };
        let Some(item) = self.items.get_mut(&vm) else {
            return;
        };
        if item.busy.as_deref() == Some(id) {
            item.busy = None;
        }
        if succeeded {
            item.apply(&request, end);
        }
    }

    fn view(&self, id: &str, now: Timestamp) -> Option<JobInfo> {
        let job = self.jobs.get(id)?;
        let mut info = job.info.clone();
        if !info.state.is_terminal() {
            info.state = if now < job.starts {
                JobState::NotStarted
            } else {
                JobState::InProgress
            };
            let left = job.ends.since(now);
            info.retry_after = Some(left.clamp(Duration::from_secs(1), POLL));
        }
        Some(info)
    }

    fn site(&self, site: Site) -> &SiteSeed {
        match site {
            Site::Primary => &self.sites[0],
            Site::Recovery => &self.sites[1],
        }
    }

    fn site_connected(&self, site: Site) -> bool {
        self.site(site).connected
    }

    fn site_name(&self, site: Site) -> &str {
        &self.site(site).name
    }

    /// Brings back the disconnected sites whose moment `now` or the confirmed manual step
    /// `step` is.
    fn reconnect(&mut self, now: Timestamp, step: Option<&str>) {
        let (start, failed_over) = (self.start, self.failed_over);
        for site in &mut self.sites {
            let back = match (&site.reconnects, step) {
                (Some(Reconnect::After(d)), _) => now >= start.plus(*d),
                (Some(Reconnect::AtStep(title)), Some(step)) => title == step,
                (Some(Reconnect::AtStepAfterFailover), Some(_)) => failed_over,
                _ => false,
            };
            if back {
                site.connected = true;
                site.reconnects = None;
            }
        }
    }

    /// How a job of `request` on `vm` will go, from the item's injected faults, the what-if
    /// fault of job `what_if` and the sites' connections.
    fn run_of(&self, vm: &str, request: &OperationRequest, what_if: Option<u64>) -> Run {
        let op = request.operation;
        let Some(item) = self.items.get(vm) else {
            return Run {
                length: Duration::ZERO,
                outcome: None,
                warnings: Vec::new(),
            };
        };
        let mut length = item.durations.get(op);
        let mut warnings = Vec::new();
        let source = item.active;
        let mut outcome = item
            .fail
            .contains(&op)
            .then(|| injected(op, vm, item.fail_message.as_deref()));
        if let (None, Some(ordinal)) = (&outcome, what_if) {
            outcome = Some(what_if_fault(op, vm, ordinal));
        }
        match op {
            Operation::PlannedFailover if !self.site_connected(source) => {
                outcome = Some(ServiceError {
                    code: "SourceSiteUnreachable".into(),
                    message: format!(
                        "The planned failover of '{vm}' could not shut down the source VM: the {} site's server '{}' is not connected.",
                        source.as_str(),
                        self.site_name(source)
                    ),
                    possible_causes: "The source site is down or its VMM server lost its connection to Site Recovery.".into(),
                    recommended_action: "In an outage, use an unplanned failover (optionally with shutdown_source: true).".into(),
                });
                length = Duration::from_secs(90);
            }
            Operation::UnplannedFailover if request.shutdown_source => {
                if self.site_connected(source) {
                    length += SHUTDOWN;
                } else {
                    warnings.push(format!(
                        "the source VM could not be shut down (the {} site's server '{}' is not connected); failed over without the changes not yet replicated",
                        source.as_str(),
                        self.site_name(source)
                    ));
                }
            }
            _ => {}
        }
        // Every operation needs the servers of the sites it touches (the source of an
        // unplanned failover excepted: that is what an outage is).
        let target = source.other();
        let needs: &[Site] = match op {
            Operation::PlannedFailover | Operation::UnplannedFailover => &[target],
            Operation::Commit => &[source],
            Operation::ReverseReplicate => &[source, target],
            Operation::TestFailover | Operation::TestFailoverCleanup => &[target],
        };
        if outcome.is_none() {
            if let Some(down) = needs.iter().find(|s| !self.site_connected(**s)) {
                outcome = Some(ServiceError {
                    code: "SiteUnreachable".into(),
                    message: format!(
                        "The {} of '{vm}' needs the {} site, whose server '{}' is not connected to Site Recovery.",
                        op.scenario(),
                        down.as_str(),
                        self.site_name(*down)
                    ),
                    possible_causes: "The site is down, or its VMM server lost its connection to Site Recovery.".into(),
                    recommended_action: "Restore the site's connection (the Site Recovery Provider on its VMM server), then run the operation again.".into(),
                });
                length = Duration::from_secs(90);
            }
        }
        Run {
            length,
            outcome,
            warnings,
        }
    }

    fn new_job(
        &mut self,
        vm: &str,
        request: &OperationRequest,
        now: Timestamp,
        length: Duration,
        outcome: Option<ServiceError>,
        warnings: Vec<String>,
    ) -> String {
        self.seq += 1;
        let id = job_id(self.seq);
        let ends = now.plus(length);
        let starts = now.plus((length / 4).min(Duration::from_secs(15)));
        self.jobs.insert(
            id.clone(),
            SimJob {
                info: JobInfo {
                    id: id.clone(),
                    operation: request.operation,
                    vm: vm.to_string(),
                    state: JobState::NotStarted,
                    errors: Vec::new(),
                    warnings,
                    started: now,
                    ended: None,
                    retry_after: None,
                    expected_end: Some(ends),
                    skipped: None,
                    plan: false,
                    tasks: Vec::new(),
                    waiting: None,
                },
                request: request.clone(),
                starts,
                ends,
                outcome,
            },
        );
        self.pending.push(Reverse((ends.0, self.seq, id.clone())));
        id
    }
}

fn busy_error(vm: &str, running: Option<&SimJob>) -> ServiceError {
    let what = running.map_or("another operation".to_string(), |j| {
        format!("{} (job {})", j.info.operation.scenario(), j.info.id)
    });
    ServiceError {
        code: "532".into(),
        message: format!("An operation {what} is in progress on the protected item '{vm}'."),
        possible_causes: "Site Recovery runs one operation at a time on a protected item.".into(),
        recommended_action: "Wait for the job in progress to complete, then retry the operation."
            .into(),
    }
}

fn injected(op: Operation, vm: &str, message: Option<&str>) -> ServiceError {
    ServiceError {
        code: "SimulatedFault".into(),
        message: message.map_or_else(
            || {
                format!(
                    "The {} job for '{vm}' failed (fault injected by the simulator's inventory).",
                    op.scenario()
                )
            },
            String::from,
        ),
        possible_causes: "The inventory lists this operation under the item's `fail` key.".into(),
        recommended_action:
            "Remove the fault from the inventory, or handle the failure in the runbook.".into(),
    }
}

fn what_if_fault(op: Operation, vm: &str, ordinal: u64) -> ServiceError {
    ServiceError {
        code: "WhatIfFault".into(),
        message: format!(
            "The {} job for '{vm}' failed (what-if: operation {ordinal} of the runbook made to fail).",
            op.scenario()
        ),
        possible_causes: "`runbook check --what-if` makes each operation fail in turn.".into(),
        recommended_action: "Handle the failure in the runbook so that no VM is left in an unsafe state.".into(),
    }
}

#[async_trait::async_trait]
impl Backend for Simulator {
    fn describe(&self) -> String {
        format!("embedded simulator ({})", self.origin)
    }

    fn knows_names(&self) -> bool {
        !self.open_world
    }

    async fn list_items(&self) -> Result<Vec<Item>, BackendError> {
        let (st, _) = self.settled();
        let mut all: Vec<Item> = st.items.values().map(SimItem::view).collect();
        for (i, seed) in st.seeds.iter().enumerate() {
            if !st.items.contains_key(&seed.name) {
                all.push(SimItem::from_seed(seed, i).view());
            }
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn item(&self, name: &str) -> Result<Item, BackendError> {
        let (mut st, _) = self.settled();
        st.ensure(name, self.open_world)?;
        st.items
            .get(name)
            .map(SimItem::view)
            .ok_or_else(|| BackendError::UnknownJob(name.to_string()))
    }

    async fn plan_members(&self, plan: &str) -> Result<Vec<String>, BackendError> {
        let st = self.lock();
        st.plans
            .get(plan)
            .map(|p| p.members().cloned().collect())
            .ok_or_else(|| BackendError::UnknownPlan {
                name: plan.to_string(),
                candidates: st.plans.keys().cloned().collect(),
            })
    }

    async fn plans(&self) -> Result<Vec<(String, Vec<Vec<String>>)>, BackendError> {
        let st = self.lock();
        Ok(st
            .plans
            .iter()
            .map(|(name, seed)| (name.clone(), seed.groups.clone()))
            .collect())
    }

    async fn start(&self, vm: &str, request: &OperationRequest) -> Result<JobInfo, BackendError> {
        let (mut st, now) = self.settled();
        st.receive(vm, request.clone());
        if request.plan {
            if request.operation.is_failover() {
                st.failed_over = true;
            }
            let job = st.start_plan(vm, &plans::PlanRequest::of(request), now)?;
            return job.info().ok_or(BackendError::UnknownJob(job.id));
        }
        st.ensure(vm, self.open_world)?;
        let Some(item) = st.items.get(vm) else {
            return Err(BackendError::UnknownJob(vm.to_string()));
        };
        if let Some(running) = item.busy.clone() {
            // ASR accepts the request and fails the job at once with error 532.
            let error = busy_error(vm, st.jobs.get(&running));
            let id = st.new_job(vm, request, now, Duration::ZERO, Some(error), Vec::new());
            st.settle(now);
            return st.view(&id, now).ok_or(BackendError::UnknownJob(id));
        }
        item.check(request)?;
        let ordinal = st.seq + 1;
        let what_if = st.failing_job == Some(ordinal);
        let Run {
            length,
            outcome,
            warnings,
        } = st.run_of(vm, request, what_if.then_some(ordinal));
        if request.operation.is_failover() {
            st.failed_over = true;
        }
        let id = st.new_job(vm, request, now, length, outcome, warnings);
        if let Some(it) = st.items.get_mut(vm) {
            it.busy = Some(id.clone());
        }
        st.view(&id, now).ok_or(BackendError::UnknownJob(id))
    }

    async fn job(&self, id: &str) -> Result<JobInfo, BackendError> {
        let (st, now) = self.settled();
        st.view(id, now)
            .or_else(|| st.plan_job_view(id, now).and_then(|j| j.info()))
            .ok_or_else(|| BackendError::UnknownJob(id.to_string()))
    }

    async fn find_started(
        &self,
        vm: &str,
        request: &OperationRequest,
        _issued_at: Timestamp,
    ) -> Result<Option<JobInfo>, BackendError> {
        let Some(key) = &request.key else {
            return Ok(None);
        };
        if request.plan {
            return Ok(self.plan_job_by_key(vm, key).and_then(|j| j.info()));
        }
        let (st, now) = self.settled();
        Ok(st
            .jobs
            .values()
            .find(|j| j.info.vm == vm && j.request.key.as_ref() == Some(key))
            .and_then(|j| st.view(&j.info.id, now)))
    }

    async fn jobs_since(&self, since: Timestamp) -> Result<Vec<JobInfo>, BackendError> {
        let (st, now) = self.settled();
        let mut jobs: Vec<JobInfo> = st
            .jobs
            .values()
            .filter(|j| j.info.started >= since)
            .filter_map(|j| st.view(&j.info.id, now))
            .collect();
        jobs.sort_by(|a, b| a.started.cmp(&b.started).then(a.id.cmp(&b.id)));
        Ok(jobs)
    }

    async fn cancel_job(&self, id: &str) -> Result<JobInfo, BackendError> {
        let (mut st, now) = self.settled();
        let Some(job) = st.jobs.get_mut(id) else {
            return Err(BackendError::UnknownJob(id.to_string()));
        };
        if job.info.state.is_terminal() {
            return Err(BackendError::Service(ServiceError {
                code: "JobAlreadyEnded".into(),
                message: format!("Job {id} already ended ({}).", job.info.state),
                possible_causes: String::new(),
                recommended_action: String::new(),
            }));
        }
        job.info.state = JobState::Cancelled;
        job.info.ended = Some(now);
        job.info.retry_after = None;
        let op = job.info.operation;
        let vm = job.info.vm.clone();
        if let Some(item) = st.items.get_mut(&vm) {
            item.cancelled(op);
        }
        st.view(id, now)
            .ok_or_else(|| BackendError::UnknownJob(id.to_string()))
    }

    async fn plan_state(&self, plan: &str) -> Result<PlanState, BackendError> {
        Simulator::plan_state(self, plan)
    }

    async fn resume_job(&self, id: &str, _comments: &str) -> Result<JobInfo, BackendError> {
        self.resume_suspended(id)?;
        self.job(id).await
    }

    fn operator_confirmed(&self, step: &str) {
        let now = self.clock.now();
        self.lock().reconnect(now, Some(step));
    }

    async fn providers(&self) -> Result<Vec<Provider>, BackendError> {
        let (st, _) = self.settled();
        Ok([Site::Primary, Site::Recovery]
            .into_iter()
            .map(|site| Provider {
                name: st.site_name(site).to_string(),
                site,
                connected: st.site_connected(site),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;
    use crate::script::exec::block_on;

    fn sim(text: &str) -> (Simulator, Arc<VirtualClock>) {
        let clock = Arc::new(VirtualClock::new(Timestamp(0)));
        let inv = Inventory::parse(text, "test").unwrap();
        (Simulator::new(&inv, clock.clone(), false), clock)
    }

    fn planned(dir: Direction) -> OperationRequest {
        OperationRequest {
            direction: Some(dir),
            ..OperationRequest::new(Operation::PlannedFailover)
        }
    }

    #[test]
    fn failover_commit_reprotect_failback_cycle() {
        let (s, clock) = sim("[[items]]\nname = \"vm\"\n");
        let job = block_on(s.start("vm", &planned(Direction::PrimaryToRecovery))).unwrap();
        assert_eq!(job.state, JobState::NotStarted);
        let busy = block_on(s.item("vm")).unwrap();
        assert!(busy.allowed_operations.is_empty());
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            block_on(s.job(&job.id)).unwrap().state,
            JobState::InProgress
        );
        clock.advance(Duration::from_secs(8 * 60));
        let done = block_on(s.job(&job.id)).unwrap();
        assert_eq!(done.state, JobState::Succeeded);
        assert_eq!(done.duration(), Some(Duration::from_secs(480)));
        let item = block_on(s.item("vm")).unwrap();
        assert_eq!(item.protection_state, "PlannedFailoverCommitRequired");
        assert_eq!(item.active_location, Site::Recovery);
        assert!(item.allows(Operation::Commit));

        // Reverse replication before commit is refused.
        let err = block_on(s.start("vm", &OperationRequest::new(Operation::ReverseReplicate)))
            .unwrap_err();
        assert!(matches!(err, BackendError::NotAllowed { .. }), "{err:?}");

        block_on(s.start("vm", &OperationRequest::new(Operation::Commit))).unwrap();
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            block_on(s.item("vm")).unwrap().protection_state,
            "PlannedFailoverCommitted"
        );
        assert!(!block_on(s.item("vm")).unwrap().replicating);
        block_on(s.start("vm", &OperationRequest::new(Operation::ReverseReplicate))).unwrap();
        clock.advance(Duration::from_secs(13 * 60));
        let item = block_on(s.item("vm")).unwrap();
        assert!(item.replicating);
        assert_eq!(item.active_location, Site::Recovery);

        // Failback must go the other way.
        let wrong = block_on(s.start("vm", &planned(Direction::PrimaryToRecovery))).unwrap_err();
        assert!(matches!(wrong, BackendError::NotAllowed { .. }));
        block_on(s.start("vm", &planned(Direction::RecoveryToPrimary))).unwrap();
        clock.advance(Duration::from_secs(9 * 60));
        assert_eq!(
            block_on(s.item("vm")).unwrap().active_location,
            Site::Primary
        );
    }

    #[test]
    fn busy_items_fail_the_new_job_with_532() {
        let (s, _clock) = sim("[[items]]\nname = \"vm\"\n");
        block_on(s.start("vm", &planned(Direction::PrimaryToRecovery))).unwrap();
        let second = block_on(s.start("vm", &OperationRequest::new(Operation::Commit))).unwrap();
        assert_eq!(second.state, JobState::Failed);
        assert_eq!(second.errors[0].code, "532");
    }

    #[test]
    fn injected_faults_and_unreachable_source() {
        let (s, clock) = sim("[sites.primary]\nconnected = false\n[[items]]\nname = \"a\"\n[[items]]\nname = \"b\"\nfail = [\"unplanned_failover\"]\n");
        let job = block_on(s.start("a", &planned(Direction::PrimaryToRecovery))).unwrap();
        clock.advance(Duration::from_secs(600));
        let job = block_on(s.job(&job.id)).unwrap();
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(job.errors[0].code, "SourceSiteUnreachable");
        assert_eq!(
            block_on(s.item("a")).unwrap().active_location,
            Site::Primary
        );

        let unplanned = OperationRequest {
            direction: Some(Direction::PrimaryToRecovery),
            shutdown_source: true,
            ..OperationRequest::new(Operation::UnplannedFailover)
        };
        let job = block_on(s.start("a", &unplanned)).unwrap();
        assert_eq!(
            job.warnings.len(),
            1,
            "shutdown failure is a warning, the failover goes on"
        );
        clock.advance(Duration::from_secs(600));
        assert_eq!(block_on(s.job(&job.id)).unwrap().state, JobState::Succeeded);

        let job = block_on(s.start("b", &unplanned)).unwrap();
        clock.advance(Duration::from_secs(600));
        let job = block_on(s.job(&job.id)).unwrap();
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(job.errors[0].code, "SimulatedFault");
        assert!(block_on(s.item("b")).unwrap().replicating);
    }

    #[test]
    fn operations_fail_when_a_site_they_need_is_down() {
        let (s, clock) = sim("[sites.primary]\nconnected = false\n[[items]]\nname = \"a\"\n");
        let unplanned = OperationRequest {
            direction: Some(Direction::PrimaryToRecovery),
            ..OperationRequest::new(Operation::UnplannedFailover)
        };
        let job = block_on(s.start("a", &unplanned)).unwrap();
        clock.advance(Duration::from_secs(600));
        assert_eq!(
            block_on(s.job(&job.id)).unwrap().state,
            JobState::Succeeded,
            "the source may be down"
        );
        block_on(s.start("a", &OperationRequest::new(Operation::Commit))).unwrap();
        clock.advance(Duration::from_secs(600));
        let reverse =
            block_on(s.start("a", &OperationRequest::new(Operation::ReverseReplicate))).unwrap();
        clock.advance(Duration::from_secs(600));
        let reverse = block_on(s.job(&reverse.id)).unwrap();
        assert_eq!(
            reverse.state,
            JobState::Failed,
            "replicating toward a dead site"
        );
        assert_eq!(reverse.errors[0].code, "SiteUnreachable");
        assert!(!block_on(s.item("a")).unwrap().replicating);
    }

    #[test]
    fn drills_block_everything_but_cleanup() {
        let (s, clock) = sim("[[items]]\nname = \"vm\"\n");
        let tf = OperationRequest {
            direction: Some(Direction::PrimaryToRecovery),
            ..OperationRequest::new(Operation::TestFailover)
        };
        block_on(s.start("vm", &tf)).unwrap();
        clock.advance(Duration::from_secs(600));
        let item = block_on(s.item("vm")).unwrap();
        assert_eq!(
            item.test_failover_state.as_deref(),
            Some("WaitingForCompletion")
        );
        assert_eq!(item.allowed_operations, vec!["TestFailoverCleanup"]);
        assert_eq!(item.last_test_failover, Some(Timestamp(7 * 60 * 1000)));
        assert!(block_on(s.start("vm", &planned(Direction::PrimaryToRecovery))).is_err());
        block_on(s.start("vm", &OperationRequest::new(Operation::TestFailoverCleanup))).unwrap();
        clock.advance(Duration::from_secs(600));
        assert!(block_on(s.item("vm"))
            .unwrap()
            .allows(Operation::PlannedFailover));
    }

    #[test]
    fn cancelling_a_failover_stops_replication() {
        let (s, _clock) = sim("[[items]]\nname = \"vm\"\n");
        let job = block_on(s.start("vm", &planned(Direction::PrimaryToRecovery))).unwrap();
        let cancelled = block_on(s.cancel_job(&job.id)).unwrap();
        assert_eq!(cancelled.state, JobState::Cancelled);
        let item = block_on(s.item("vm")).unwrap();
        assert!(!item.replicating);
        assert_eq!(item.health, "Critical");
    }

    #[test]
    fn open_world_creates_items_closed_world_suggests() {
        let clock = Arc::new(VirtualClock::new(Timestamp(0)));
        let open = Simulator::new(&Inventory::empty(), clock.clone(), true);
        assert!(block_on(open.item("anything")).unwrap().replicating);
        let (closed, _) = sim("[[items]]\nname = \"web-01\"\n");
        let err = block_on(closed.item("web-1")).unwrap_err();
        let BackendError::UnknownItem { candidates, .. } = err else {
            panic!()
        };
        assert_eq!(candidates, vec!["web-01"]);
    }

    #[test]
    fn the_chosen_job_fails_and_leaves_the_item_as_it_was() {
        let (s, clock) = sim("[[items]]\nname = \"a\"\n[[items]]\nname = \"b\"\n");
        s.fail_job(2);
        let first = block_on(s.start("a", &planned(Direction::PrimaryToRecovery))).unwrap();
        let second = block_on(s.start("b", &planned(Direction::PrimaryToRecovery))).unwrap();
        clock.advance(Duration::from_secs(600));
        assert_eq!(
            block_on(s.job(&first.id)).unwrap().state,
            JobState::Succeeded
        );
        let second = block_on(s.job(&second.id)).unwrap();
        assert_eq!(second.state, JobState::Failed);
        assert_eq!(second.errors[0].code, "WhatIfFault");
        let b = block_on(s.item("b")).unwrap();
        assert_eq!((b.active_location, b.replicating), (Site::Primary, true));
        // Only that one: a later job succeeds.
        let third = block_on(s.start("b", &planned(Direction::PrimaryToRecovery))).unwrap();
        clock.advance(Duration::from_secs(600));
        assert_eq!(
            block_on(s.job(&third.id)).unwrap().state,
            JobState::Succeeded
        );
    }

    #[test]
    fn critical_health_refuses_planned_but_not_unplanned() {
        let (s, _) = sim("[[items]]\nname = \"vm\"\nhealth = \"critical\"\n");
        let err = block_on(s.start("vm", &planned(Direction::PrimaryToRecovery))).unwrap_err();
        let BackendError::NotAllowed { reason, .. } = err else {
            panic!()
        };
        assert!(reason.contains("Critical"));
        let unplanned = OperationRequest::new(Operation::UnplannedFailover);
        assert!(block_on(s.start("vm", &unplanned)).is_ok());
    }
}
