//! The ASR REST API's JSON, as far as runbooks need it: what the `azure` backend reads and
//! what `runbook simulator serve` writes. Field names follow the service (camelCase);
//! unknown fields are ignored and states are open strings.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A page of a list: `value` and the link to the next page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(rename = "nextLink", default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProtectedItem {
    pub id: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    pub properties: ProtectedItemProperties,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProtectedItemProperties {
    pub friendly_name: String,
    pub protection_state: String,
    pub protection_state_description: String,
    pub active_location: String,
    pub allowed_operations: Vec<String>,
    pub replication_health: String,
    pub replication_health_errors: Vec<HealthError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_failover_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_successful_test_failover_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_scenario: Option<CurrentScenario>,
    pub primary_fabric_friendly_name: String,
    pub recovery_fabric_friendly_name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HealthError {
    pub error_message: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CurrentScenario {
    pub scenario_name: String,
    pub job_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    pub properties: JobProperties,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobProperties {
    /// Holds the `x-ms-client-request-id` of the request that created the job.
    pub activity_id: String,
    pub scenario_name: String,
    pub friendly_name: String,
    pub state: String,
    pub state_description: String,
    pub tasks: Vec<Value>,
    pub errors: Vec<JobError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    pub allowed_actions: Vec<String>,
    pub target_object_id: String,
    pub target_object_name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_error_details: Option<ServiceErrorDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_error_details: Option<ProviderErrorDetails>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceErrorDetails {
    pub code: String,
    pub message: String,
    pub possible_causes: String,
    pub recommended_action: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProviderErrorDetails {
    pub error_code: Option<i64>,
    pub error_message: String,
    pub possible_causes: String,
    pub recommended_action: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub properties: ProviderProperties,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProviderProperties {
    pub friendly_name: String,
    pub connection_status: String,
    pub fabric_friendly_name: String,
}

/// A server-side recovery plan: its groups of protected items.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryPlan {
    pub id: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    pub properties: RecoveryPlanProperties,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RecoveryPlanProperties {
    pub friendly_name: String,
    pub primary_fabric_id: String,
    pub primary_fabric_friendly_name: String,
    pub recovery_fabric_id: String,
    pub recovery_fabric_friendly_name: String,
    pub failover_deployment_model: String,
    pub replication_providers: Vec<String>,
    pub allowed_operations: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_planned_failover_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_unplanned_failover_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_test_failover_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_scenario: Option<CurrentScenario>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_scenario_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_scenario_status_description: Option<String>,
    pub groups: Vec<RecoveryPlanGroup>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RecoveryPlanGroup {
    /// `Shutdown`, `Failover` or `Boot` (one `Boot` group per step of the boot order).
    pub group_type: String,
    pub replication_protected_items: Vec<PlanMember>,
    pub start_group_actions: Vec<Value>,
    pub end_group_actions: Vec<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PlanMember {
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub virtual_machine_id: String,
}

/// The body of every POST action that takes one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ActionInput {
    #[serde(default)]
    pub properties: ActionProperties,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ActionProperties {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover_direction: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_site_operations: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comments: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_specific_details: Option<Value>,
}

/// ARM's error body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArmError {
    pub error: ArmErrorBody,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ArmErrorBody {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job as the service shows it right after the 202: NotStarted, no tasks yet.
    const NOT_STARTED: &str = r#"{
        "id": "/Subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v/replicationJobs/6b1c",
        "name": "6b1c",
        "type": "Microsoft.RecoveryServices/vaults/replicationJobs",
        "properties": {
            "activityId": "a1 ActivityId: b2",
            "scenarioName": "PlannedFailover",
            "friendlyName": "Planned failover",
            "state": "NotStarted",
            "stateDescription": "NotStarted",
            "tasks": [],
            "errors": [],
            "startTime": "2026-11-26T02:00:00.1234567Z",
            "allowedActions": ["Cancel"],
            "targetObjectId": "1f2e",
            "targetObjectName": "web-01",
            "targetInstanceType": "ProtectionEntity",
            "customDetails": { "instanceType": "AsrJobDetails" }
        },
        "status": "NotStarted",
        "error": null
    }"#;

    /// A job that failed with 532: another operation is in progress on the item.
    const BUSY: &str = r#"{
        "id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v/replicationJobs/77aa",
        "name": "77aa",
        "properties": {
            "scenarioName": "CommitFailover",
            "state": "Failed",
            "errors": [{
                "serviceErrorDetails": {
                    "code": "532",
                    "message": "An operation PlannedFailover is in progress on the protected item 'web-01'.",
                    "possibleCauses": "Another operation is running.",
                    "recommendedAction": "Wait for it to complete."
                },
                "providerErrorDetails": null,
                "errorLevel": "Error",
                "creationTime": "2026-11-26T02:00:03Z"
            }],
            "startTime": "2026-11-26T02:00:02Z",
            "endTime": "2026-11-26T02:00:03Z"
        }
    }"#;

    #[test]
    fn jobs_parse_with_unknown_fields_and_missing_tasks() {
        let job: Job = serde_json::from_str(NOT_STARTED).unwrap();
        assert_eq!(job.properties.state, "NotStarted");
        assert!(job.properties.tasks.is_empty());
        assert_eq!(job.properties.target_object_name, "web-01");
        let busy: Job = serde_json::from_str(BUSY).unwrap();
        let details = busy.properties.errors[0]
            .service_error_details
            .as_ref()
            .unwrap();
        assert_eq!(details.code, "532");
        assert!(busy.properties.errors[0].provider_error_details.is_none());
    }

    #[test]
    fn action_bodies_have_the_service_shape() {
        let body = ActionInput {
            properties: ActionProperties {
                failover_direction: Some("PrimaryToRecovery".into()),
                source_site_operations: Some("Required".into()),
                provider_specific_details: Some(
                    serde_json::json!({"instanceType": "ProviderSpecificFailoverInput"}),
                ),
                ..ActionProperties::default()
            },
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"properties": {
                "failoverDirection": "PrimaryToRecovery",
                "sourceSiteOperations": "Required",
                "providerSpecificDetails": {"instanceType": "ProviderSpecificFailoverInput"}
            }})
        );
    }
}
