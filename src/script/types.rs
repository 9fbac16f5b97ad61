//! The `Vm` and `Job` types scripts hold, and their properties.

use crate::backend::JobInfo;
use crate::clock::human;
use rhai::{Array, Dynamic, Engine, ImmutableString, Map};
use std::rc::Rc;

/// A handle on a protected item: its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmHandle {
    pub name: ImmutableString,
}

/// A handle on a job: what the service said last time it was asked. Shared, because
/// scripts copy handles freely (arrays of jobs are passed by value).
#[derive(Debug, Clone)]
pub struct JobHandle {
    pub info: Rc<JobInfo>,
}

impl JobHandle {
    pub fn new(info: JobInfo) -> Self {
        JobHandle {
            info: Rc::new(info),
        }
    }
}

fn errors(info: &JobInfo) -> Array {
    info.errors
        .iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("code".into(), e.code.clone().into());
            m.insert("message".into(), e.message.clone().into());
            m.insert("possible_causes".into(), e.possible_causes.clone().into());
            m.insert(
                "recommended_action".into(),
                e.recommended_action.clone().into(),
            );
            Dynamic::from_map(m)
        })
        .collect()
}

impl JobHandle {
    fn describe(&self) -> String {
        format!(
            "{} of {} (job {}): {}",
            self.info.operation, self.info.vm, self.info.id, self.info.state
        )
    }
}

/// Registers both types with their properties.
pub fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<VmHandle>("Vm")
        .register_get("name", |v: &mut VmHandle| v.name.clone())
        .register_fn("to_string", |v: &mut VmHandle| v.name.to_string())
        .register_fn("to_debug", |v: &mut VmHandle| format!("vm(\"{}\")", v.name))
        .register_fn("==", |a: VmHandle, b: VmHandle| a == b)
        .register_fn("!=", |a: VmHandle, b: VmHandle| a != b);
    engine
        .register_type_with_name::<JobHandle>("Job")
        .register_get("id", |j: &mut JobHandle| j.info.id.clone())
        .register_get("operation", |j: &mut JobHandle| {
            j.info.operation.as_str().to_string()
        })
        .register_get("vm", |j: &mut JobHandle| j.info.vm.clone())
        .register_get("state", |j: &mut JobHandle| {
            j.info.state.as_str().to_string()
        })
        .register_get("errors", |j: &mut JobHandle| errors(&j.info))
        .register_get("warnings", |j: &mut JobHandle| {
            j.info
                .warnings
                .iter()
                .map(|w| Dynamic::from(w.clone()))
                .collect::<Array>()
        })
        .register_get("started", |j: &mut JobHandle| j.info.started.rfc3339())
        .register_get("ended", |j: &mut JobHandle| {
            j.info.ended.map_or(Dynamic::UNIT, |e| e.rfc3339().into())
        })
        .register_get("duration", |j: &mut JobHandle| {
            j.info.duration().map_or(Dynamic::UNIT, |d| human(d).into())
        })
        .register_fn("to_string", |j: &mut JobHandle| j.describe())
        .register_fn("to_debug", |j: &mut JobHandle| j.describe());
}
