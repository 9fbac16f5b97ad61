//! Recovery plans: their ARM shape (groups in boot order, allowed operations, the current
//! scenario), the paged list, one plan, the plan actions (one job for the whole plan), and
//! a plan job's wire form with a task per member.

use super::items::{action_input, invalid_content, item_id_of};
use super::paging::page;
use super::responses::{accepted, arm_error, backend_error, json};
use super::routing::Caller;
use super::Server;
use crate::backend::azure::{convert, wire};
use crate::backend::sim::{PlanAction, PlanJobView, PlanRequest, PlanView};
use crate::backend::Direction;
use axum::http::{StatusCode, Uri};
use axum::response::Response;

fn plan_id(vault: &str, name: &str) -> String {
    format!("{vault}/replicationRecoveryPlans/{name}")
}

fn group(group_type: &str, members: Vec<wire::PlanMember>) -> wire::RecoveryPlanGroup {
    wire::RecoveryPlanGroup {
        group_type: group_type.into(),
        replication_protected_items: members,
        ..Default::default()
    }
}

/// A plan as the service shows it: the (empty) shutdown and failover groups, then a boot
/// group per step of its boot order.
pub(crate) async fn plan_wire(server: &Server, vault: &str, plan: &PlanView) -> wire::RecoveryPlan {
    let mut groups = vec![group("Shutdown", Vec::new()), group("Failover", Vec::new())];
    for members in &plan.groups {
        let mut ids = Vec::new();
        for name in members {
            let id = item_id_of(server, vault, name).await;
            ids.push(wire::PlanMember {
                virtual_machine_id: id.rsplit('/').next().unwrap_or_default().to_string(),
                id,
            });
        }
        groups.push(group("Boot", ids));
    }
    let current = plan.current.as_ref();
    wire::RecoveryPlan {
        id: plan_id(vault, &plan.name),
        name: plan.name.clone(),
        kind: "Microsoft.RecoveryServices/vaults/replicationRecoveryPlans".into(),
        properties: wire::RecoveryPlanProperties {
            friendly_name: plan.name.clone(),
            primary_fabric_id: format!("{vault}/replicationFabrics/primary"),
            primary_fabric_friendly_name: "primary".into(),
            recovery_fabric_id: format!("{vault}/replicationFabrics/recovery"),
            recovery_fabric_friendly_name: "recovery".into(),
            failover_deployment_model: "NotApplicable".into(),
            replication_providers: vec!["HyperVReplica2012R2".into()],
            allowed_operations: plan.allowed_operations.clone(),
            last_planned_failover_time: plan.last_planned_failover.map(|t| t.rfc3339()),
            last_unplanned_failover_time: plan.last_unplanned_failover.map(|t| t.rfc3339()),
            last_test_failover_time: plan.last_test_failover.map(|t| t.rfc3339()),
            current_scenario: current.map(|j| wire::CurrentScenario {
                scenario_name: j.action.scenario().into(),
                job_id: format!("{vault}/replicationJobs/{}", j.id),
                start_time: Some(j.started.rfc3339()),
            }),
            current_scenario_status: current.map(|j| j.state.to_string()),
            current_scenario_status_description: current
                .map(|j| convert::state_to_wire(&j.state).0.to_string()),
            groups,
        },
    }
}

/// A plan's job as the service shows it: the plan as its target, a task per member.
pub(crate) fn plan_job_wire(job: &PlanJobView, vault: &str, activity: Option<&str>) -> wire::Job {
    let (description, allowed) = convert::state_to_wire(&job.state);
    let scenario = job.action.scenario();
    let mut tasks: Vec<serde_json::Value> = job
        .tasks
        .iter()
        .map(|t| {
            serde_json::json!({
                "taskId": format!("Group{}-{}", t.group, t.vm),
                "name": format!("{scenario}Task"),
                "friendlyName": format!("Group {}: {scenario} of {}", t.group, t.vm),
                "state": t.state.as_str(),
                "stateDescription": t.state.as_str(),
                "startTime": t.started.map(|s| s.rfc3339()),
                "endTime": t.ended.map(|s| s.rfc3339()),
                "allowedActions": [],
                "taskType": "TaskDetails",
                "customDetails": { "instanceType": "TaskDetails" },
                "errors": convert::errors_to_wire(&t.errors),
            })
        })
        .collect();
    if let Some(manual) = &job.waiting {
        // The manual action the job is suspended at (before its group's tasks).
        let at = tasks
            .iter()
            .position(|t| {
                t["taskId"]
                    .as_str()
                    .is_some_and(|id| id.starts_with(&format!("Group{}-", manual.group)))
            })
            .unwrap_or(tasks.len());
        tasks.insert(
            at,
            serde_json::json!({
                "taskId": format!("ManualAction-{}", manual.group),
                "name": "ManualActionTask",
                "friendlyName": manual.name,
                "state": "Suspended",
                "stateDescription": "Suspended",
                "startTime": manual.since.rfc3339(),
                "allowedActions": ["Resume"],
                "taskType": "ManualActionTaskDetails",
                "customDetails": {
                    "instanceType": "ManualActionTaskDetails",
                    "name": manual.name,
                    "instructions": manual.instructions,
                },
                "errors": [],
            }),
        );
    }
    wire::Job {
        id: format!("{vault}/replicationJobs/{}", job.id),
        name: job.id.clone(),
        kind: "Microsoft.RecoveryServices/vaults/replicationJobs".into(),
        properties: wire::JobProperties {
            activity_id: activity.unwrap_or_default().into(),
            scenario_name: scenario.into(),
            friendly_name: format!("{scenario} of recovery plan {}", job.plan),
            state: job.state.as_str().into(),
            state_description: description.into(),
            tasks,
            errors: convert::errors_to_wire(&job.errors),
            start_time: Some(job.started.rfc3339()),
            end_time: job.ended.map(|t| t.rfc3339()),
            allowed_actions: allowed,
            target_object_id: plan_id(vault, &job.plan),
            target_object_name: job.plan.clone(),
        },
    }
}

pub(crate) async fn list(server: &Server, vault: &str, uri: &Uri, origin: &str) -> Response {
    let plans = server.sim.plans();
    let (plans, next_link) = page(&plans, server.page_size, uri, origin);
    let mut value = Vec::new();
    for plan in plans {
        value.push(plan_wire(server, vault, plan).await);
    }
    json(&wire::Page { value, next_link })
}

pub(crate) async fn get(server: &Server, vault: &str, name: &str) -> Response {
    match server.sim.plan(name) {
        Ok(plan) => json(&plan_wire(server, vault, &plan).await),
        Err(e) => backend_error(e),
    }
}

/// A plan action's request from its body, with the fields the swagger requires; else why
/// not, for a 400.
fn plan_request(action: PlanAction, body: &[u8]) -> Result<PlanRequest, String> {
    let input = action_input(body, true)?;
    let p = &input.properties;
    let direction = match p.failover_direction.as_deref() {
        None if action.directional() => {
            return Err(format!(
                "failoverDirection is required for {} of a recovery plan: PrimaryToRecovery or RecoveryToPrimary",
                action.rest()
            ))
        }
        None => None,
        Some("PrimaryToRecovery") => Some(Direction::PrimaryToRecovery),
        Some("RecoveryToPrimary") => Some(Direction::RecoveryToPrimary),
        Some(other) => {
            return Err(format!(
                "failoverDirection `{other}` is not PrimaryToRecovery or RecoveryToPrimary"
            ))
        }
    };
    let sources = p.source_site_operations.as_deref();
    if action == PlanAction::UnplannedFailover
        && !matches!(sources, Some("Required" | "NotRequired"))
    {
        return Err("sourceSiteOperations is required for unplannedFailover of a recovery plan: Required or NotRequired".into());
    }
    if action == PlanAction::TestFailover && p.network_type.is_none() {
        return Err("networkType is required for testFailover of a recovery plan, e.g. VmNetworkAsInput or NoNetworkAttachAsInput".into());
    }
    Ok(PlanRequest {
        action,
        direction,
        shutdown_source: sources == Some("Required"),
        network: p.network_id.clone(),
        comments: p.comments.clone(),
        key: None,
    })
}

/// Starts a plan action: 202 with the headers a client follows the plan's job by.
pub(crate) async fn action(
    server: &Server,
    vault: &str,
    path: &str,
    name: &str,
    action: &str,
    body: &[u8],
    caller: &Caller,
) -> Response {
    let Some(action) = PlanAction::parse_rest(action) else {
        return arm_error(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            format!("No POST operation exists at '{path}'."),
        );
    };
    let request = match plan_request(action, body) {
        Ok(r) => r,
        Err(m) => return invalid_content(m),
    };
    let request = PlanRequest {
        key: caller.client_request_id.clone(),
        ..request
    };
    server.count(&format!("issued plan {name} {}", action.rest()));
    match server.sim.start_plan(name, &request) {
        Ok(job) => {
            server.created(&job.id, caller);
            accepted(server, caller, vault, path, &job.id)
        }
        Err(e) => backend_error(e),
    }
}
