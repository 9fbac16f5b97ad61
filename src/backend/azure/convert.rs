//! Between the backend's types and the service's JSON, both ways: the client reads what
//! the simulator server writes, so one place decides the mapping.

use super::parse_time;
use super::wire;
use crate::backend::{
    Direction, Item, JobInfo, JobState, Operation, OperationRequest, ServiceError, Site, TaskInfo,
};

/// The service's protected item as the backend's [`Item`].
pub fn item_from_wire(item: &wire::ProtectedItem) -> Item {
    let p = &item.properties;
    Item {
        name: p.friendly_name.clone(),
        id: item.id.clone(),
        protection_state: p.protection_state.clone(),
        active_location: if p.active_location.eq_ignore_ascii_case("Recovery") {
            Site::Recovery
        } else {
            Site::Primary
        },
        health: p.replication_health.clone(),
        health_errors: p
            .replication_health_errors
            .iter()
            .map(|e| e.error_message.clone())
            .collect(),
        allowed_operations: p.allowed_operations.clone(),
        // After a cleanup the service shows e.g. `MarkedForDeletion`: only a drill waiting
        // for its cleanup (or still starting) is in progress.
        test_failover_state: p
            .test_failover_state
            .clone()
            .filter(|s| s == "WaitingForCompletion" || s.contains("InProgress")),
        last_test_failover: p
            .last_successful_test_failover_time
            .as_deref()
            .and_then(parse_time),
        // An idle item shows `currentScenario { scenarioName: "None", jobId: ".../None" }`.
        current_job: p
            .current_scenario
            .as_ref()
            .filter(|c| {
                c.scenario_name != "None" && !c.job_id.ends_with("/None") && c.job_id != "None"
            })
            .map(|c| c.job_id.rsplit('/').next().unwrap_or(&c.job_id).to_string())
            .filter(|j| !j.is_empty()),
        replicating: p.protection_state == "Protected",
    }
}

/// An [`Item`] as the service shows it; `id` is its full resource path.
pub fn item_to_wire(item: &Item, id: &str, current: Option<&JobInfo>) -> wire::ProtectedItem {
    wire::ProtectedItem {
        id: id.to_string(),
        name: id.rsplit('/').next().unwrap_or(id).to_string(),
        kind: "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems".into(),
        properties: wire::ProtectedItemProperties {
            friendly_name: item.name.clone(),
            protection_state: item.protection_state.clone(),
            protection_state_description: item.protection_state.clone(),
            active_location: item.active_location.asr().into(),
            allowed_operations: item.allowed_operations.clone(),
            replication_health: item.health.clone(),
            replication_health_errors: item
                .health_errors
                .iter()
                .map(|e| wire::HealthError { error_message: e.clone() })
                .collect(),
            test_failover_state: item.test_failover_state.clone(),
            last_successful_test_failover_time: item.last_test_failover.map(|t| t.rfc3339()),
            current_scenario: current.map(|j| wire::CurrentScenario {
                scenario_name: j.operation.scenario().into(),
                job_id: j.id.clone(),
                start_time: Some(j.started.rfc3339()),
            }),
            primary_fabric_friendly_name: "primary".into(),
            recovery_fabric_friendly_name: "recovery".into(),
        },
    }
}

/// The service's job as a [`JobInfo`]; `None` for jobs that are not runbook operations.
/// `known` is what the client already knows of the job (the service leaves fields empty
/// until a job starts).
pub fn job_from_wire(job: &wire::Job, known: Option<&JobInfo>) -> Option<JobInfo> {
    let p = &job.properties;
    let operation = Operation::ALL
        .into_iter()
        .find(|o| o.scenario() == p.scenario_name)
        .or(known.map(|k| k.operation))?;
    let errors = p
        .errors
        .iter()
        .filter_map(|e| {
            e.service_error_details
                .as_ref()
                .map(|d| ServiceError {
                    code: d.code.clone(),
                    message: d.message.clone(),
                    possible_causes: d.possible_causes.clone(),
                    recommended_action: d.recommended_action.clone(),
                })
                .or_else(|| {
                    e.provider_error_details.as_ref().map(|d| ServiceError {
                        code: d.error_code.map(|c| c.to_string()).unwrap_or_default(),
                        message: d.error_message.clone(),
                        possible_causes: d.possible_causes.clone(),
                        recommended_action: d.recommended_action.clone(),
                    })
                })
        })
        .collect();
    // A recovery plan's job targets the plan (its ARM id names `replicationRecoveryPlans`).
    let plan = known.is_some_and(|k| k.plan)
        || p.target_object_id
            .to_ascii_lowercase()
            .contains("/replicationrecoveryplans/");
    let (tasks, waiting) = if plan {
        plan_tasks(&p.tasks)
    } else {
        (Vec::new(), None)
    };
    Some(JobInfo {
        id: job.name.clone(),
        operation,
        vm: if p.target_object_name.is_empty() {
            known.map(|k| k.vm.clone()).unwrap_or_default()
        } else {
            p.target_object_name.clone()
        },
        state: JobState::parse(&p.state),
        errors,
        warnings: Vec::new(),
        started: p
            .start_time
            .as_deref()
            .and_then(parse_time)
            .or(known.map(|k| k.started))
            .unwrap_or_else(|| crate::clock::Timestamp::from_system(std::time::SystemTime::now())),
        ended: p.end_time.as_deref().and_then(parse_time),
        retry_after: None,
        expected_end: None,
        skipped: None,
        plan,
        tasks,
        waiting,
    })
}

/// A [`JobInfo`] as the service shows it, under the vault path `vault`.
pub fn job_to_wire(
    job: &JobInfo,
    vault: &str,
    item_id: &str,
    activity_id: Option<&str>,
) -> wire::Job {
    let (description, actions) = state_to_wire(&job.state);
    let tasks = if job.state == JobState::NotStarted {
        Vec::new()
    } else {
        vec![serde_json::json!({
            "name": format!("{}Task", job.operation.scenario()),
            "friendlyName": job.operation.scenario(),
            "state": job.state.as_str(),
            "startTime": job.started.rfc3339(),
        })]
    };
    wire::Job {
        id: format!("{vault}/replicationJobs/{}", job.id),
        name: job.id.clone(),
        kind: "Microsoft.RecoveryServices/vaults/replicationJobs".into(),
        properties: wire::JobProperties {
            activity_id: activity_id.unwrap_or_default().into(),
            scenario_name: job.operation.scenario().into(),
            friendly_name: job.operation.scenario().into(),
            state: job.state.as_str().into(),
            state_description: description.into(),
            tasks,
            errors: errors_to_wire(&job.errors),
            start_time: Some(job.started.rfc3339()),
            end_time: job.ended.map(|t| t.rfc3339()),
            allowed_actions: actions,
            target_object_id: item_id.rsplit('/').next().unwrap_or(item_id).into(),
            target_object_name: job.vm.clone(),
        },
    }
}

/// A job state's `stateDescription` and the `allowedActions` it offers.
pub fn state_to_wire(state: &JobState) -> (&'static str, Vec<String>) {
    match state {
        JobState::NotStarted => ("NotStarted", vec!["Cancel".to_string()]),
        JobState::InProgress => ("InProgress", vec!["Cancel".to_string()]),
        JobState::Succeeded => ("Completed", Vec::new()),
        JobState::Failed => ("Failed", vec!["Restart".to_string()]),
        JobState::Other(s) if s == "Suspended" => (
            "Suspended",
            vec!["Cancel".to_string(), "Resume".to_string()],
        ),
        _ => ("Cancelled", Vec::new()),
    }
}

/// A job's errors as the service shows them.
pub fn errors_to_wire(errors: &[ServiceError]) -> Vec<wire::JobError> {
    errors
        .iter()
        .map(|e| wire::JobError {
            service_error_details: Some(wire::ServiceErrorDetails {
                code: e.code.clone(),
                message: e.message.clone(),
                possible_causes: e.possible_causes.clone(),
                recommended_action: e.recommended_action.clone(),
            }),
            provider_error_details: None,
        })
        .collect()
}

/// The POST action and body for an operation.
pub fn action_of(request: &OperationRequest) -> (&'static str, Option<wire::ActionInput>) {
    let generic = || Some(serde_json::json!({ "instanceType": "ProviderSpecificFailoverInput" }));
    let props = |p: wire::ActionProperties| Some(wire::ActionInput { properties: p });
    let direction = request.direction.map(|d| d.asr().to_string());
    match request.operation {
        Operation::PlannedFailover => (
            "plannedFailover",
            props(wire::ActionProperties {
                failover_direction: direction,
                provider_specific_details: generic(),
                ..Default::default()
            }),
        ),
        Operation::UnplannedFailover => (
            "unplannedFailover",
            props(wire::ActionProperties {
                failover_direction: direction,
                source_site_operations: Some(
                    if request.shutdown_source {
                        "Required"
                    } else {
                        "NotRequired"
                    }
                    .into(),
                ),
                provider_specific_details: generic(),
                ..Default::default()
            }),
        ),
        Operation::Commit => ("failoverCommit", None),
        Operation::ReverseReplicate => (
            "reProtect",
            props(wire::ActionProperties {
                failover_direction: direction,
                provider_specific_details: Some(
                    serde_json::json!({ "instanceType": "ReverseReplicationProviderSpecificInput" }),
                ),
                ..Default::default()
            }),
        ),
        Operation::TestFailover => (
            "testFailover",
            props(wire::ActionProperties {
                failover_direction: direction,
                network_type: Some(
                    if request.network.is_some() {
                        "VmNetworkAsInput"
                    } else {
                        "NoNetworkAttachAsInput"
                    }
                    .into(),
                ),
                network_id: request.network.clone(),
                provider_specific_details: generic(),
                ..Default::default()
            }),
        ),
        Operation::TestFailoverCleanup => (
            "testFailoverCleanup",
            props(wire::ActionProperties {
                comments: Some(request.comments.clone().unwrap_or_default()),
                ..Default::default()
            }),
        ),
    }
}

/// The POST action and body for an operation on a recovery plan: `failoverDirection` is
/// required (failovers and drills) and `providerSpecificDetails` is an array; a plan's
/// `reProtect` and `failoverCommit` take no body.
pub fn plan_action_of(request: &OperationRequest) -> (&'static str, Option<wire::ActionInput>) {
    let (action, body) = action_of(request);
    let body = match request.operation {
        Operation::ReverseReplicate | Operation::Commit => None,
        _ => body.map(|mut input| {
            input.properties.provider_specific_details = input
                .properties
                .provider_specific_details
                .take()
                .map(|d| serde_json::Value::Array(vec![d]));
            input
        }),
    };
    (action, body)
}

/// A plan job's tasks: one per member, and the manual action it is suspended at, if it is.
/// Two shapes are read: the service's, where a group's task holds its members' tasks in
/// `groupTaskCustomDetails.childTasks` (each naming its VM in `customDetails.jobTask`), and
/// a flat list with `Group{n}-{vm}` task ids.
fn plan_tasks(tasks: &[serde_json::Value]) -> (Vec<TaskInfo>, Option<String>) {
    let mut out = Vec::new();
    let mut waiting = None;
    let mut groups = 0;
    let children = |t: &serde_json::Value| {
        t.pointer("/groupTaskCustomDetails/childTasks")
            .and_then(|v| v.as_array())
            .cloned()
    };
    // In the service's shape, the tasks outside the groups (prerequisite checks, the
    // shutdown of the source) are not members.
    let nested = tasks.iter().any(|t| children(t).is_some());
    for t in tasks {
        let manual = t
            .pointer("/customDetails/instanceType")
            .and_then(|v| v.as_str())
            == Some("ManualActionTaskDetails");
        match children(t) {
            Some(members) => {
                groups += 1;
                let group = group_number(t).unwrap_or(groups);
                for member in &members {
                    plan_task(member, Some(group), &mut out, &mut waiting);
                }
            }
            None if nested && !manual => {}
            None => plan_task(t, None, &mut out, &mut waiting),
        }
    }
    (out, waiting)
}

/// A group task's number in the boot order, from its `groupId` or its name ("Group 2").
fn group_number(t: &serde_json::Value) -> Option<usize> {
    let details = t.get("groupTaskCustomDetails")?;
    ["groupId", "name"].iter().find_map(|k| {
        let digits: String = details
            .get(*k)?
            .as_str()?
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

/// One task of a plan's job: a member's (in `group` when its group task says), or the
/// manual action the job waits at.
fn plan_task(
    t: &serde_json::Value,
    group: Option<usize>,
    out: &mut Vec<TaskInfo>,
    waiting: &mut Option<String>,
) {
    let text = |k: &str| t.get(k).and_then(|v| v.as_str()).map(String::from);
    let state = JobState::parse(&text("state").unwrap_or_default());
    let kind = t
        .pointer("/customDetails/instanceType")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if kind == "ManualActionTaskDetails" {
        if !state.is_terminal() && state != JobState::NotStarted {
            *waiting = t
                .pointer("/customDetails/name")
                .and_then(|v| v.as_str())
                .map(String::from)
                .or_else(|| text("friendlyName"));
        }
        return;
    }
    let id = text("taskId").unwrap_or_default();
    let flat = id
        .strip_prefix("Group")
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(n, vm)| Some((n.parse().ok()?, vm.to_string())));
    let named = t
        .pointer("/customDetails/jobTask/targetObjectName")
        .and_then(|v| v.as_str())
        .map(String::from);
    let (group, vm) = match (group, flat) {
        (Some(g), _) => (g, named.or_else(|| text("friendlyName")).unwrap_or(id)),
        (None, Some(flat)) => flat,
        (None, None) => (0, named.or_else(|| text("friendlyName")).unwrap_or(id)),
    };
    out.push(TaskInfo {
        group,
        vm,
        state,
        started: text("startTime").as_deref().and_then(parse_time),
        ended: text("endTime").as_deref().and_then(parse_time),
        errors: Vec::new(),
    });
}

/// The operation a POST action asks for (the server's side of [`action_of`]).
pub fn request_of(action: &str, body: &wire::ActionInput) -> Result<OperationRequest, String> {
    let operation = match action.to_ascii_lowercase().as_str() {
        "plannedfailover" => Operation::PlannedFailover,
        "unplannedfailover" => Operation::UnplannedFailover,
        "failovercommit" => Operation::Commit,
        "reprotect" => Operation::ReverseReplicate,
        "testfailover" => Operation::TestFailover,
        "testfailovercleanup" => Operation::TestFailoverCleanup,
        other => return Err(format!("unknown action `{other}`")),
    };
    let p = &body.properties;
    let direction = match p.failover_direction.as_deref() {
        None => None,
        Some("PrimaryToRecovery") => Some(Direction::PrimaryToRecovery),
        Some("RecoveryToPrimary") => Some(Direction::RecoveryToPrimary),
        Some(other) => {
            return Err(format!(
                "failoverDirection `{other}` is not PrimaryToRecovery or RecoveryToPrimary"
            ))
        }
    };
    Ok(OperationRequest {
        operation,
        direction,
        shutdown_source: p.source_site_operations.as_deref() == Some("Required"),
        network: p.network_id.clone(),
        comments: p.comments.clone(),
        key: None,
        plan: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plans_action_gives_its_direction_and_a_list_of_provider_inputs() {
        let failover = OperationRequest {
            direction: Some(Direction::PrimaryToRecovery),
            plan: true,
            ..OperationRequest::new(Operation::UnplannedFailover)
        };
        let (action, body) = plan_action_of(&failover);
        let body = serde_json::to_value(body.unwrap()).unwrap();
        assert_eq!(action, "unplannedFailover");
        assert_eq!(body["properties"]["failoverDirection"], "PrimaryToRecovery");
        assert!(body["properties"]["providerSpecificDetails"].is_array());
        for op in [Operation::ReverseReplicate, Operation::Commit] {
            let (_, body) = plan_action_of(&OperationRequest {
                plan: true,
                ..OperationRequest::new(op)
            });
            assert!(body.is_none(), "{op}");
        }
    }

    #[test]
    fn a_plans_job_reads_its_tasks_and_the_manual_action_it_waits_at() {
        let job: wire::Job = serde_json::from_value(serde_json::json!({
            "id": "/v/replicationJobs/j", "name": "j",
            "properties": {
                "scenarioName": "PlannedFailover", "state": "Suspended",
                "targetObjectId": "/v/replicationRecoveryPlans/tiers", "targetObjectName": "tiers",
                "tasks": [
                    {"taskId": "Group1-db", "state": "Succeeded"},
                    {"taskId": "ManualAction-2", "state": "Suspended",
                     "customDetails": {"instanceType": "ManualActionTaskDetails", "name": "look"}},
                    {"taskId": "Group2-web", "state": "NotStarted"}
                ]
            }
        }))
        .unwrap();
        let info = job_from_wire(&job, None).unwrap();
        assert!(info.plan);
        assert_eq!(info.waiting.as_deref(), Some("look"));
        let tasks: Vec<(usize, &str)> = info
            .tasks
            .iter()
            .map(|t| (t.group, t.vm.as_str()))
            .collect();
        assert_eq!(tasks, [(1, "db"), (2, "web")]);
    }

    /// The service's shape: a group's task holds its members' tasks, each naming its VM in
    /// `customDetails.jobTask` (the swagger's GroupTaskDetails and JobTaskDetails).
    #[test]
    fn a_plans_job_in_the_services_shape_reads_its_groups_members() {
        let member = |vm: &str, state: &str| {
            serde_json::json!({
                "taskId": format!("t-{vm}"), "name": "VmFailover", "state": state,
                "friendlyName": "Start the virtual machine",
                "customDetails": {"instanceType": "VirtualMachineTaskDetails",
                    "jobTask": {"jobId": "x", "targetObjectName": vm}}
            })
        };
        let job: wire::Job = serde_json::from_value(serde_json::json!({
            "id": "/v/replicationJobs/j", "name": "j",
            "properties": {
                "scenarioName": "PlannedFailover", "state": "Suspended",
                "targetObjectId": "/v/replicationRecoveryPlans/tiers", "targetObjectName": "tiers",
                "tasks": [
                    {"taskId": "prereq", "name": "Prerequisites check", "state": "Succeeded",
                     "friendlyName": "Prerequisites check for planned failover"},
                    {"taskId": "g1", "state": "Succeeded",
                     "groupTaskCustomDetails": {"instanceType": "RecoveryPlanGroupTaskDetails",
                        "name": "Group 1: Start", "groupId": "1", "rpGroupType": "Boot",
                        "childTasks": [member("db", "Succeeded")]}},
                    {"taskId": "g2", "state": "Suspended",
                     "groupTaskCustomDetails": {"instanceType": "RecoveryPlanGroupTaskDetails",
                        "name": "Group 2: Start", "groupId": "2", "rpGroupType": "Boot",
                        "childTasks": [
                            {"taskId": "m", "state": "Suspended", "friendlyName": "check the network",
                             "customDetails": {"instanceType": "ManualActionTaskDetails",
                                "name": "check the network"}},
                            member("web-1", "NotStarted"), member("web-2", "NotStarted")
                        ]}}
                ]
            }
        }))
        .unwrap();
        let info = job_from_wire(&job, None).unwrap();
        assert_eq!(info.waiting.as_deref(), Some("check the network"));
        let tasks: Vec<(usize, &str)> = info
            .tasks
            .iter()
            .map(|t| (t.group, t.vm.as_str()))
            .collect();
        assert_eq!(tasks, [(1, "db"), (2, "web-1"), (2, "web-2")]);
    }
}
