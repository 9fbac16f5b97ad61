//! What a plan needs from a dry run beyond its jobs: when each note, manual step and
//! verification happened, and the state of each VM just before each operation started.

use crate::backend::sim::Simulator;
use crate::backend::{Backend, Item, JobInfo, Site};
use crate::clock::{Clock, Timestamp, VirtualClock};
use crate::script::exec::block_on;
use crate::script::observer::{Observer, StepAnswer};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A VM's steady state and the site it is active on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct VmState {
    /// The script's word for the state (`status(vm).state`), a running job aside:
    /// `protected`, `drill_in_progress`, `failover_commit_pending`, `failover_committed`
    /// or `unprotected`.
    pub state: &'static str,
    pub active_location: Site,
}

impl VmState {
    pub fn of(item: &Item) -> VmState {
        VmState {
            state: item.steady_state(),
            active_location: item.active_location,
        }
    }
}

impl std::fmt::Display for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.state, self.active_location.as_str())
    }
}

/// Something that happened at a moment of the dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<T> {
    pub at: Timestamp,
    pub what: T,
}

/// A successful `verify`: the VM and the site it was active on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub vm: String,
    pub site: Site,
}

/// A manual step as the runbook asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualStep {
    pub title: String,
    pub instructions: Option<String>,
    pub timeout: Duration,
}

/// Everything recorded, in the order it happened.
#[derive(Debug, Default)]
pub struct Log {
    /// Job id to the state of its VM when it was started.
    pub before: HashMap<String, VmState>,
    pub notes: Vec<Event<String>>,
    pub manual_steps: Vec<Event<ManualStep>>,
    pub verifications: Vec<Event<Verification>>,
}

/// The observer of a plan's dry run. It confirms manual steps, as `check` does.
pub struct Recorder {
    sim: Arc<Simulator>,
    clock: Arc<VirtualClock>,
    start: Timestamp,
    log: RefCell<Log>,
}

impl Recorder {
    pub fn new(sim: &Arc<Simulator>, clock: &Arc<VirtualClock>) -> Recorder {
        Recorder {
            sim: sim.clone(),
            clock: clock.clone(),
            start: clock.now(),
            log: RefCell::new(Log::default()),
        }
    }

    /// When the dry run started: the plan's T+0.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    pub fn take(&self) -> Log {
        std::mem::take(&mut self.log.borrow_mut())
    }

    /// The VM as the simulator has it now (the simulator's futures are ready at once).
    fn item(&self, vm: &str) -> Option<Item> {
        block_on(self.sim.item(vm)).ok()
    }
}

impl Observer for Recorder {
    fn note(&self, text: &str) {
        let at = self.clock.now();
        self.log.borrow_mut().notes.push(Event {
            at,
            what: text.to_string(),
        });
    }

    fn job_started(&self, job: &JobInfo) {
        // The job has just been accepted: the item is busy, but its state and site are
        // still those from before the operation.
        if let Some(item) = self.item(&job.vm) {
            self.log
                .borrow_mut()
                .before
                .insert(job.id.clone(), VmState::of(&item));
        }
    }

    fn verified(&self, vm: &str, _what: &str) {
        let Some(item) = self.item(vm) else {
            return;
        };
        let at = self.clock.now();
        self.log.borrow_mut().verifications.push(Event {
            at,
            what: Verification {
                vm: vm.to_string(),
                site: item.active_location,
            },
        });
    }

    fn manual_step(
        &self,
        title: &str,
        instructions: Option<&str>,
        timeout: Duration,
    ) -> StepAnswer {
        let at = self.clock.now();
        self.log.borrow_mut().manual_steps.push(Event {
            at,
            what: ManualStep {
                title: title.to_string(),
                instructions: instructions.map(str::to_string),
                timeout,
            },
        });
        StepAnswer::Approved {
            by: "dry run (auto-confirmed)".into(),
        }
    }
}
