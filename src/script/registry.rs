//! The single source of truth for the script API: every primitive's name, parameters,
//! options (types and allowed values), effect, documentation and handler. Engine
//! registration, dispatch, the static checks, option parsing and the README's API table all
//! read this table.

use super::host::{actions, checks, inputs, operations, plans, reads, steps, waits, Handler};
use std::ops::RangeInclusive;

/// What a parameter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A `Vm` handle or a VM name.
    Vm,
    /// A `Job` handle.
    Job,
    /// An array of `Job` handles.
    Jobs,
    /// A string.
    Text,
    /// A map of any values, passed on as it is (an action's arguments).
    Args,
    /// An option map (always the last parameter).
    Options,
}

impl ParamKind {
    pub fn describe(self) -> &'static str {
        match self {
            ParamKind::Vm => "a Vm or a VM name",
            ParamKind::Job => "a Job",
            ParamKind::Jobs => "an array of Jobs",
            ParamKind::Text => "a string",
            ParamKind::Args => "a map `#{ ... }`",
            ParamKind::Options => "an option map `#{ ... }`",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub kind: ParamKind,
    pub optional: bool,
}

/// The type of an option's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptKind {
    /// One of these strings.
    Enum(&'static [&'static str]),
    Bool,
    /// A duration string: `"90s"`, `"30m"`, `"2h"`, `"30d"`.
    Duration,
    Text,
    /// An array of `Vm` handles or names.
    VmList,
    /// An array of these strings.
    EnumList(&'static [&'static str]),
    /// An array of strings.
    TextList,
    /// Any value (its type is checked by the primitive, e.g. a parameter's default).
    Value,
}

impl OptKind {
    pub fn describe(self) -> String {
        match self {
            OptKind::Enum(values) => format!(
                "one of {}",
                values
                    .iter()
                    .map(|v| format!("\"{v}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            OptKind::Bool => "true or false".into(),
            OptKind::Duration => "a duration such as \"90s\", \"30m\" or \"2h\"".into(),
            OptKind::Text => "a string".into(),
            OptKind::VmList => "an array of Vms or VM names".into(),
            OptKind::TextList => "an array of strings".into(),
            OptKind::Value => "a string, number, boolean or array of strings".into(),
            OptKind::EnumList(values) => format!(
                "an array of {}",
                values
                    .iter()
                    .map(|v| format!("\"{v}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct OptSpec {
    pub key: &'static str,
    pub kind: OptKind,
    pub required: bool,
    /// The option only makes sense when another option has this value: `(key, value)`.
    pub only_with: Option<(&'static str, &'static str)>,
    pub doc: &'static str,
}

/// An option the service cannot take in this scenario: refused by name, with the reason,
/// instead of being accepted and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub key: &'static str,
    pub reason: &'static str,
    /// What to do instead.
    pub instead: &'static str,
}

/// The recovery point a failover or drill would use: not part of the service's inputs for
/// Hyper-V between two VMM sites.
const NO_RECOVERY_POINT: Refused = Refused {
    key: "recovery_point",
    reason: "the service's failover inputs for Hyper-V between two VMM sites carry no recovery point, so it would be dropped",
    instead: "remove it: a planned failover loses no data, and an unplanned one (or a drill) uses the latest recovery point the recovery site has",
};

/// What a primitive does to the estate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads state only.
    Read,
    /// Starts an operation that changes an item.
    Mutate,
    /// Changes an item and destroys something that cannot be recovered (recovery points).
    Destructive,
    /// Controls the run: waits, notes, manual steps.
    Control,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Read => "read",
            Effect::Mutate => "mutate",
            Effect::Destructive => "destructive",
            Effect::Control => "control",
        }
    }

    /// What the effect means, in a few words.
    pub fn describe(self) -> &'static str {
        match self {
            Effect::Read => "reads state only",
            Effect::Mutate => "starts an operation that changes the VM",
            Effect::Destructive => {
                "changes the VM and deletes what cannot be recovered (recovery points)"
            }
            Effect::Control => "controls the run: waits, notes, manual steps",
        }
    }
}

pub struct Primitive {
    pub name: &'static str,
    pub params: &'static [Param],
    pub options: &'static [OptSpec],
    /// Options refused by name, with the reason.
    pub refused: &'static [Refused],
    pub effect: Effect,
    pub returns: &'static str,
    pub doc: &'static str,
    /// What runs when a script calls it.
    pub handler: Handler,
}

impl std::fmt::Debug for Primitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Primitive")
            .field("name", &self.name)
            .field("effect", &self.effect)
            .finish_non_exhaustive()
    }
}

impl Primitive {
    /// The argument counts the primitive accepts.
    pub fn arities(&self) -> RangeInclusive<usize> {
        let required = self.params.iter().filter(|p| !p.optional).count();
        required..=self.params.len()
    }

    pub fn option(&self, key: &str) -> Option<&'static OptSpec> {
        self.options.iter().find(|o| o.key == key)
    }

    /// `failover(vm, opts)`, with optional parameters in brackets.
    pub fn signature(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| {
                if p.optional {
                    format!("[{}]", p.name)
                } else {
                    p.name.to_string()
                }
            })
            .collect();
        format!("{}({})", self.name, params.join(", "))
    }

    /// Index of the option-map parameter, if any.
    pub fn options_index(&self) -> Option<usize> {
        self.params
            .iter()
            .position(|p| p.kind == ParamKind::Options)
    }
}

const fn p(name: &'static str, kind: ParamKind) -> Param {
    Param {
        name,
        kind,
        optional: false,
    }
}

const fn opt(name: &'static str) -> Param {
    Param {
        name,
        kind: ParamKind::Options,
        optional: true,
    }
}

const fn o(key: &'static str, kind: OptKind, doc: &'static str) -> OptSpec {
    OptSpec {
        key,
        kind,
        required: false,
        only_with: None,
        doc,
    }
}

const KIND: &[&str] = &["planned", "unplanned"];
const DIRECTION: &[&str] = &["primary_to_recovery", "recovery_to_primary"];
const SITE: &[&str] = &["primary", "recovery"];
const PARAM_TYPES: &[&str] = super::params::TYPES;

/// Every primitive of the script API, in the order the documentation lists them.
pub static PRIMITIVES: &[Primitive] = &[
    Primitive {
        name: "param",
        params: &[p("name", ParamKind::Text), opt("opts")],
        options: &[
            o("type", OptKind::Enum(PARAM_TYPES), "the value's type (default: the default's type, else string): a duration is a string such as \"30m\", vms an array of VM names (`--set tier=web-01,web-02`)"),
            o("choices", OptKind::TextList, "the values allowed; `check` dry-runs each (every combination of up to 16, else the defaults and each choice once)"),
            o("default", OptKind::Value, "the value when `--set` gives none (written `\"default\": ...`, as Rhai reserves the word); without it the parameter is required"),
            o("help", OptKind::Text, "what the parameter means, shown by `runbook params`"),
        ],
        refused: &[],
        effect: Effect::Control,
        returns: "?",
        doc: "A runbook input, set with `--set name=value` on `run`, `check` and `plan` and listed by `runbook params`: its value (checked against its type and choices before anything runs), recorded in the journal and the report; `resume` uses the recorded one. Declare it at the top of the runbook with a literal name and option map, so it is found without running the runbook.",
        handler: inputs::param,
    },
    Primitive {
        name: "vm",
        params: &[p("name", ParamKind::Vm)],
        options: &[],
        refused: &[],
        effect: Effect::Read,
        returns: "Vm",
        doc: "The protected item with that name (a Vm is returned as it is); an unknown name is an error that suggests the closest one.",
        handler: reads::vm,
    },
    Primitive {
        name: "vms",
        params: &[p("filter", ParamKind::Options)],
        options: &[
            o("name", OptKind::Text, "a name glob, e.g. \"web-*\""),
            o("plan", OptKind::Text, "the name of a server-side recovery plan"),
        ],
        refused: &[],
        effect: Effect::Read,
        returns: "array of Vm",
        doc: "The items whose names match a glob, or the members of a recovery plan (both: items in the plan that match).",
        handler: reads::vms,
    },
    Primitive {
        name: "status",
        params: &[p("vm", ParamKind::Vm)],
        options: &[],
        refused: &[],
        effect: Effect::Read,
        returns: "map",
        doc: "The item's state now: `state`, `protection_state`, `active_location` (\"primary\"/\"recovery\"), `health`, `replicating`, `allowed` (operations), `test_failover_state`, `last_test_failover`.",
        handler: reads::status,
    },
    Primitive {
        name: "failover",
        params: &[p("vm", ParamKind::Vm), p("opts", ParamKind::Options)],
        options: &[
            OptSpec {
                key: "kind",
                kind: OptKind::Enum(KIND),
                required: true,
                only_with: None,
                doc: "planned (no data loss; shuts the source down) or unplanned (an outage; may lose changes not yet replicated)",
            },
            o("direction", OptKind::Enum(DIRECTION), "default: primary_to_recovery; a VM already active on the site it asks for gets no operation (the call returns a job that succeeded at once, marked skipped), so a re-run never fails back"),
            OptSpec {
                key: "shutdown_source",
                kind: OptKind::Bool,
                required: false,
                only_with: Some(("kind", "unplanned")),
                doc: "try to shut the source VM down and sync first; the failover goes on if that fails",
            },
        ],
        refused: &[NO_RECOVERY_POINT],
        effect: Effect::Mutate,
        returns: "Job",
        doc: "Starts a failover of the VM and returns its job at once.",
        handler: operations::failover,
    },
    Primitive {
        name: "test_failover",
        params: &[p("vm", ParamKind::Vm), opt("opts")],
        options: &[
            o("network", OptKind::Text, "the isolated network the drill VM joins"),
        ],
        refused: &[NO_RECOVERY_POINT],
        effect: Effect::Mutate,
        returns: "Job",
        doc: "Starts a DR drill: a test failover into an isolated network. Production keeps running and replicating.",
        handler: operations::test_failover,
    },
    Primitive {
        name: "cleanup_test_failover",
        params: &[p("vm", ParamKind::Vm), opt("opts")],
        options: &[o("notes", OptKind::Text, "the drill's observations, kept with the job")],
        refused: &[],
        effect: Effect::Mutate,
        returns: "Job",
        doc: "Ends a drill: deletes the test VM. Until then the item allows no other operation.",
        handler: operations::cleanup_test_failover,
    },
    Primitive {
        name: "commit",
        params: &[p("vm", ParamKind::Vm)],
        options: &[],
        refused: &[],
        effect: Effect::Destructive,
        returns: "Job",
        doc: "Commits a failover. Deletes every other recovery point: verify the VM on the target site first.",
        handler: operations::commit,
    },
    Primitive {
        name: "reverse_replicate",
        params: &[p("vm", ParamKind::Vm)],
        options: &[],
        refused: &[],
        effect: Effect::Mutate,
        returns: "Job",
        doc: "Reprotects the VM: replicates from the site it is active on back to the other one.",
        handler: operations::reverse_replicate,
    },
    Primitive {
        name: "cancel",
        params: &[p("job", ParamKind::Job)],
        options: &[],
        refused: &[],
        effect: Effect::Mutate,
        returns: "Job",
        doc: "Cancels a job. Refuses failover jobs: a cancelled failover leaves the VM without replication.",
        handler: operations::cancel,
    },
    Primitive {
        name: "failover_plan",
        params: &[p("plan", ParamKind::Text), p("opts", ParamKind::Options)],
        options: &[
            OptSpec {
                key: "kind",
                kind: OptKind::Enum(KIND),
                required: true,
                only_with: None,
                doc: "planned (no data loss; shuts the source VMs down) or unplanned (an outage; may lose changes not yet replicated)",
            },
            o("direction", OptKind::Enum(DIRECTION), "default: primary_to_recovery"),
            OptSpec {
                key: "shutdown_source",
                kind: OptKind::Bool,
                required: false,
                only_with: Some(("kind", "unplanned")),
                doc: "try to shut the source VMs down and sync first; the failover goes on if that fails",
            },
        ],
        refused: &[NO_RECOVERY_POINT],
        effect: Effect::Mutate,
        returns: "Job",
        doc: "Starts a failover of a server-side recovery plan as one job: its groups in their boot order, a manual action's wait included. Returns the plan's job at once.",
        handler: plans::failover_plan,
    },
    Primitive {
        name: "commit_plan",
        params: &[p("plan", ParamKind::Text)],
        options: &[],
        refused: &[],
        effect: Effect::Destructive,
        returns: "Job",
        doc: "Commits the failover of every VM of a recovery plan, as one job. Deletes their other recovery points: verify them first; refused before the plan's failover job ended.",
        handler: plans::commit_plan,
    },
    Primitive {
        name: "reverse_replicate_plan",
        params: &[p("plan", ParamKind::Text)],
        options: &[],
        refused: &[],
        effect: Effect::Mutate,
        returns: "Job",
        doc: "Reprotects every VM of a recovery plan, as one job: each replicates from the site it is active on back to the other one.",
        handler: plans::reverse_replicate_plan,
    },
    Primitive {
        name: "test_failover_plan",
        params: &[p("plan", ParamKind::Text), opt("opts")],
        options: &[
            o("network", OptKind::Text, "the isolated network the drill VMs join"),
            o("direction", OptKind::Enum(DIRECTION), "default: primary_to_recovery"),
        ],
        refused: &[NO_RECOVERY_POINT],
        effect: Effect::Mutate,
        returns: "Job",
        doc: "Starts a DR drill of a recovery plan as one job: a test failover of its VMs in their boot order into an isolated network.",
        handler: plans::test_failover_plan,
    },
    Primitive {
        name: "cleanup_test_failover_plan",
        params: &[p("plan", ParamKind::Text), opt("opts")],
        options: &[o("notes", OptKind::Text, "the drill's observations, kept with the job")],
        refused: &[],
        effect: Effect::Mutate,
        returns: "Job",
        doc: "Ends a recovery plan's drill, as one job: deletes its test VMs.",
        handler: plans::cleanup_test_failover_plan,
    },
    Primitive {
        name: "wait_job",
        params: &[p("job", ParamKind::Job), opt("opts")],
        options: &[o("timeout", OptKind::Duration, "how long to wait (default 4h)")],
        refused: &[],
        effect: Effect::Control,
        returns: "Job",
        doc: "Blocks until the job ends; throws (catchable) if it failed, was cancelled or timed out, with the service's error details.",
        handler: waits::wait_job,
    },
    Primitive {
        name: "wait_all",
        params: &[p("jobs", ParamKind::Jobs), opt("opts")],
        options: &[o("timeout", OptKind::Duration, "how long to wait for all (default 4h)")],
        refused: &[],
        effect: Effect::Control,
        returns: "array of Job",
        doc: "Waits for every job; after all ended, throws if any failed, listing each.",
        handler: waits::wait_all,
    },
    Primitive {
        name: "verify",
        params: &[p("vm", ParamKind::Vm), p("expect", ParamKind::Options)],
        options: &[
            o("active_location", OptKind::Enum(SITE), "the site the VM must be active on"),
            o("healthy", OptKind::Bool, "replication health must be Normal"),
            o("replicating", OptKind::Bool, "the VM must (or must not) be replicating"),
        ],
        refused: &[],
        effect: Effect::Read,
        returns: "()",
        doc: "Throws a verification failure showing expected and actual values.",
        handler: checks::verify,
    },
    Primitive {
        name: "preflight",
        params: &[p("opts", ParamKind::Options)],
        options: &[
            OptSpec {
                key: "vms",
                kind: OptKind::VmList,
                required: true,
                only_with: None,
                doc: "the VMs the plan touches",
            },
            o("max_drill_age", OptKind::Duration, "the oldest acceptable successful drill (default 30d)"),
            o("sites", OptKind::EnumList(SITE), "the sites whose servers must be connected (default both; during an outage, [\"recovery\"])"),
        ],
        refused: &[],
        effect: Effect::Read,
        returns: "map",
        doc: "Checks the prerequisites: both sites' servers connected, replication healthy, no drill or other operation running, a recent successful drill. Returns `ok` and `problems`.",
        handler: checks::preflight,
    },
    Primitive {
        name: "manual_step",
        params: &[p("title", ParamKind::Text), opt("opts")],
        options: &[
            o("instructions", OptKind::Text, "what the operator must do"),
            o("timeout", OptKind::Duration, "how long to wait for the confirmation (default 1h)"),
        ],
        refused: &[],
        effect: Effect::Control,
        returns: "()",
        doc: "Pauses for an operator's confirmation, recorded with who and when.",
        handler: steps::manual_step,
    },
    Primitive {
        name: "action",
        params: &[
            p("name", ParamKind::Text),
            Param {
                name: "args",
                kind: ParamKind::Args,
                optional: true,
            },
        ],
        options: &[],
        refused: &[],
        effect: Effect::Mutate,
        returns: "map",
        doc: "Runs action `name` of runbook.toml (`[actions.NAME]`: a `command` or a `webhook`), never a command written in the script: `args` as JSON on its stdin (a webhook's POST body), with RUNBOOK_RUN, RUNBOOK_STEP and RUNBOOK_IDEMPOTENCY_KEY (a webhook's `Idempotency-Key` header). Returns `ok`, `exit` (or `status`), `output` (its last 2 KiB) and `seconds`; a failure or timeout throws (catchable). Journaled before and after: a resume does not run it again once its end was recorded, unless the run stopped on it: one that never started (a variable missing) then runs, and one cut off or failed runs again only when `idempotent = true`, else after an operator's approval (a step of the run). A command runs in its own process group without the runbook's credentials or the project's secret variables; their values are `***` in `output`. `check` and `plan` never run it: they count its `expected` duration.",
        handler: actions::action,
    },
    Primitive {
        name: "notify",
        params: &[p("channel", ParamKind::Text), p("text", ParamKind::Text)],
        options: &[],
        refused: &[],
        effect: Effect::Control,
        returns: "()",
        doc: "Sends `text` to channel `channel` of runbook.toml (`[notify.NAME]`, a webhook of kind json, teams or slack), in the background: a delivery that fails is retried a few times, then a warning line; it never stops or slows the run. `check` validates the channel's name and sends nothing.",
        handler: steps::notify,
    },
    Primitive {
        name: "note",
        params: &[p("text", ParamKind::Text)],
        options: &[],
        refused: &[],
        effect: Effect::Control,
        returns: "()",
        doc: "An operator-visible line in the run's output.",
        handler: steps::note,
    },
];

/// A property of a handle scripts hold (`job.state`), read-only.
#[derive(Debug)]
pub struct Property {
    /// The type that has it: `Vm` or `Job`.
    pub owner: &'static str,
    pub name: &'static str,
    /// Its Rhai type: `String`, `Array`, or `?` when it may also be `()`.
    pub returns: &'static str,
    pub doc: &'static str,
}

/// The properties of `Vm` and `Job` (registered in `types.rs`; a test keeps the two in step).
pub static PROPERTIES: &[Property] = &[
    Property {
        owner: "Vm",
        name: "name",
        returns: "String",
        doc: "The VM's name.",
    },
    Property {
        owner: "Job",
        name: "id",
        returns: "String",
        doc: "The job's id in the service.",
    },
    Property {
        owner: "Job",
        name: "operation",
        returns: "String",
        doc: "What the job does: `planned_failover`, `unplanned_failover`, `commit`, `reverse_replicate`, `test_failover` or `test_failover_cleanup`.",
    },
    Property {
        owner: "Job",
        name: "vm",
        returns: "String",
        doc: "The name of the VM the job works on.",
    },
    Property {
        owner: "Job",
        name: "state",
        returns: "String",
        doc: "`NotStarted`, `InProgress`, `Succeeded`, `Failed` or `Cancelled`, as last seen: a handle is updated when the job is waited on.",
    },
    Property {
        owner: "Job",
        name: "errors",
        returns: "Array",
        doc: "The service's errors, each a map with `code`, `message`, `possible_causes` and `recommended_action`.",
    },
    Property {
        owner: "Job",
        name: "warnings",
        returns: "Array",
        doc: "The warnings of a job that succeeded with warnings (strings).",
    },
    Property {
        owner: "Job",
        name: "started",
        returns: "String",
        doc: "When the job started (RFC 3339).",
    },
    Property {
        owner: "Job",
        name: "ended",
        returns: "?",
        doc: "When the job ended (RFC 3339), or `()` while it runs.",
    },
    Property {
        owner: "Job",
        name: "duration",
        returns: "?",
        doc: "How long the job took, such as `8m 30s`, or `()` while it runs.",
    },
    Property {
        owner: "Job",
        name: "skipped",
        returns: "?",
        doc: "Why no operation was issued, when the VM was already where the call would take it (the job succeeded at once); `()` for an operation the service ran.",
    },
];

/// Looks a primitive up by name.
pub fn find(name: &str) -> Option<&'static Primitive> {
    PRIMITIVES.iter().find(|p| p.name == name)
}

/// The API table in markdown, as the README shows it.
pub fn markdown_table() -> String {
    let mut out =
        String::from("| function | returns | effect | what it does |\n|---|---|---|---|\n");
    for prim in PRIMITIVES {
        let mut doc = prim.doc.to_string();
        if !prim.options.is_empty() {
            let opts: Vec<String> = prim
                .options
                .iter()
                .map(|o| {
                    let req = if o.required { ", required" } else { "" };
                    format!(
                        "`{}` ({}{req}): {}",
                        o.key,
                        o.kind.describe().replace('"', "`").replace("``", "`"),
                        o.doc
                    )
                })
                .collect();
            doc.push_str(" Options: ");
            doc.push_str(&opts.join("; "));
            doc.push('.');
        }
        for r in prim.refused {
            doc.push_str(&format!(" Refused: `{}` ({}).", r.key, r.reason));
        }
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            prim.signature(),
            prim.returns,
            prim.effect.as_str(),
            doc.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_always_the_last_parameter() {
        for prim in PRIMITIVES {
            if let Some(i) = prim.options_index() {
                assert_eq!(i, prim.params.len() - 1, "{}", prim.name);
            } else {
                assert!(
                    prim.options.is_empty(),
                    "{} has options but no option parameter",
                    prim.name
                );
            }
        }
    }

    /// Every entry has a handler (the field is required), every handler an entry (a handler
    /// no entry names is dead code, which CI's `-D warnings` refuses), and no two entries
    /// share one: a copied entry that still points at its model's handler fails here.
    #[test]
    fn every_primitive_has_a_handler_of_its_own() {
        for (i, a) in PRIMITIVES.iter().enumerate() {
            for b in &PRIMITIVES[i + 1..] {
                assert!(
                    !std::ptr::fn_addr_eq(a.handler, b.handler),
                    "`{}` and `{}` share a handler",
                    a.name,
                    b.name
                );
            }
        }
    }

    #[test]
    fn names_are_unique_and_arity_ranges_sane() {
        let mut names: Vec<_> = PRIMITIVES.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PRIMITIVES.len());
        assert_eq!(find("wait_job").unwrap().arities(), 1..=2);
        assert_eq!(find("failover").unwrap().arities(), 2..=2);
    }
}
