//! The `Vm` and `Job` types scripts hold, and their properties.

use crate::backend::JobInfo;
use crate::clock::human;
use rhai::{Array, Dynamic, Engine, ImmutableString, Map, Module};
use std::cell::RefCell;
use std::rc::Rc;

/// A handle on a protected item: its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmHandle {
    pub name: ImmutableString,
}

/// A handle on a job: what the service said last time the run asked. Every copy of a
/// job's handle shares one cell, which the run updates, so `job.state` is current after a
/// wait on any copy (and copies are cheap: arrays of jobs are passed by value).
#[derive(Debug, Clone)]
pub struct JobHandle {
    cell: Rc<RefCell<JobInfo>>,
}

impl JobHandle {
    pub fn new(info: JobInfo) -> Self {
        JobHandle {
            cell: Rc::new(RefCell::new(info)),
        }
    }

    /// The job as last seen.
    pub fn info(&self) -> std::cell::Ref<'_, JobInfo> {
        self.cell.borrow()
    }

    pub fn set(&self, info: JobInfo) {
        *self.cell.borrow_mut() = info;
    }

    pub fn id(&self) -> String {
        self.cell.borrow().id.clone()
    }

    fn describe(&self) -> String {
        let info = self.info();
        format!(
            "{} of {} (job {}): {}",
            info.operation, info.vm, info.id, info.state
        )
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

/// Gives both types their script names (in messages and `type_of`).
/// The keys of the map `status(vm)` returns (a test keeps them in step with the map).
pub const STATUS_KEYS: &[&str] = &[
    "name",
    "state",
    "protection_state",
    "active_location",
    "health",
    "replicating",
    "allowed",
    "test_failover_state",
    "last_test_failover",
];

pub fn name_types(engine: &mut Engine) {
    engine
        .register_type_with_name::<VmHandle>("Vm")
        .register_type_with_name::<JobHandle>("Job");
}

fn job_getter<R: rhai::Variant + Clone>(module: &mut Module, name: &str, get: fn(&JobInfo) -> R) {
    module.set_getter_fn(name, move |j: &mut JobHandle| Ok(get(&j.info())));
}

/// Registers both types' properties and conversions into `module`.
pub fn register_into(module: &mut Module) {
    module.set_getter_fn("name", |v: &mut VmHandle| Ok(v.name.clone()));
    global_fn(module, "to_string", |v: &mut VmHandle| {
        Ok(v.name.to_string())
    });
    global_fn(module, "to_debug", |v: &mut VmHandle| {
        Ok(format!("vm(\"{}\")", v.name))
    });
    global_fn(module, "==", |a: VmHandle, b: VmHandle| Ok(a == b));
    global_fn(module, "!=", |a: VmHandle, b: VmHandle| Ok(a != b));
    job_getter(module, "id", |j| j.id.clone());
    job_getter(module, "operation", |j| j.operation.as_str().to_string());
    job_getter(module, "vm", |j| j.vm.clone());
    job_getter(module, "state", |j| j.state.as_str().to_string());
    job_getter(module, "errors", errors);
    job_getter(module, "warnings", |j| {
        j.warnings
            .iter()
            .map(|w| Dynamic::from(w.clone()))
            .collect::<Array>()
    });
    job_getter(module, "started", |j| j.started.rfc3339());
    job_getter(module, "ended", |j| {
        j.ended.map_or(Dynamic::UNIT, |e| e.rfc3339().into())
    });
    job_getter(module, "duration", |j| {
        j.duration().map_or(Dynamic::UNIT, |d| human(d).into())
    });
    job_getter(module, "skipped", |j| {
        j.skipped.clone().map_or(Dynamic::UNIT, Dynamic::from)
    });
    global_fn(module, "to_string", |j: &mut JobHandle| Ok(j.describe()));
    global_fn(module, "to_debug", |j: &mut JobHandle| Ok(j.describe()));
}

fn global_fn<A: 'static, const N: usize, const X: bool, R, F>(
    module: &mut Module,
    name: &str,
    func: F,
) where
    R: rhai::Variant + Clone,
    F: rhai::RhaiNativeFunc<A, N, X, R, true> + 'static,
{
    rhai::FuncRegistration::new(name)
        .in_global_namespace()
        .set_into_module(module, func);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::registry::PROPERTIES;

    #[test]
    fn status_keys_are_the_keys_of_the_status_map() {
        let item = crate::backend::Item {
            name: "web-01".into(),
            id: "1".into(),
            protection_state: "Protected".into(),
            active_location: crate::backend::Site::Primary,
            health: "Normal".into(),
            health_errors: Vec::new(),
            allowed_operations: Vec::new(),
            test_failover_state: None,
            last_test_failover: None,
            current_job: None,
            replicating: true,
        };
        let map = crate::script::host::reads::status_map(&item);
        let mut keys: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        let mut wanted = STATUS_KEYS.to_vec();
        keys.sort_unstable();
        wanted.sort_unstable();
        assert_eq!(keys, wanted);
    }

    #[test]
    fn every_registered_property_is_documented_in_the_registry_and_back() {
        let mut module = Module::new();
        register_into(&mut module);
        let mut registered: Vec<String> = module
            .gen_fn_signatures_with_mapper(|t| t.into())
            .filter_map(|sig| Some(sig.strip_prefix("get$")?.split_once('(')?.0.to_string()))
            .collect();
        registered.sort();
        let mut documented: Vec<String> = PROPERTIES.iter().map(|p| p.name.to_string()).collect();
        documented.sort();
        assert!(registered.len() >= 10, "{registered:?}");
        // Which type each belongs to is proven by a runbook reading them all (tests/api).
        assert_eq!(registered, documented);
    }
}
