//! The simulator server's long-running operations as ARM clients follow them, over real
//! HTTP on loopback, on a virtual clock the test moves: both polling links of a 202, a job
//! action's own operation, recovery plans and their actions, the request's api-version in
//! every link, GUID request ids and Retry-After of at least 1.

use runbook::backend::inventory::Inventory;
use runbook::backend::sim::Simulator;
use runbook::clock::{Timestamp, VirtualClock};
use runbook::simulator::ServerOptions;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "lro-token";
/// Not the server's default: links must carry the caller's.
const V: &str = "api-version=2025-08-01";

const ESTATE: &str = r#"
[plans]
pair = ["web-01", "web-02"]
[plans.tiers]
groups = [["db-01"], ["web-03"]]
[[items]]
name = "web-01"
[[items]]
name = "web-02"
[[items]]
name = "web-03"
[[items]]
name = "db-01"
[[items]]
name = "bad-01"
fail = ["planned_failover"]
"#;

struct Api {
    http: reqwest::Client,
    origin: String,
    vault: String,
    clock: Arc<VirtualClock>,
    rt: tokio::runtime::Runtime,
}

/// An answer: status, headers, JSON body (`Null` when empty).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

fn is_guid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

impl Api {
    fn start(page_size: usize) -> Api {
        let clock = Arc::new(VirtualClock::new(Timestamp(0)));
        let inventory = Inventory::parse(ESTATE, "lro estate").unwrap();
        let sim = Arc::new(Simulator::new(&inventory, clock.clone(), false));
        let (addr, _server) = crate::common::serve(
            sim,
            ServerOptions {
                token: TOKEN.into(),
                // 30 s / 100000 rounds to 0: Retry-After must still say 1.
                speed: 100_000.0,
                page_size,
                ..ServerOptions::default()
            },
        );
        let origin = format!("http://{addr}");
        Api {
            http: reqwest::Client::new(),
            vault: format!("{origin}/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v"),
            origin,
            clock,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    fn send(&self, method: reqwest::Method, url: &str, body: Option<&str>) -> Answer {
        let url = if url.starts_with("http") {
            url.to_string()
        } else {
            format!("{}{url}", self.vault)
        };
        self.rt.block_on(async {
            let mut req = self.http.request(method, &url).bearer_auth(TOKEN);
            if let Some(body) = body {
                req = req
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let text = r.text().await.unwrap();
            let body = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
            };
            Answer {
                status,
                headers,
                body,
            }
        })
    }

    fn get(&self, url: &str) -> Answer {
        self.send(reqwest::Method::GET, url, None)
    }

    fn post(&self, url: &str, body: &str) -> Answer {
        self.send(reqwest::Method::POST, url, Some(body))
    }

    /// The ARM path of an item, from the list (all its pages).
    fn item_path(&self, name: &str) -> String {
        let mut url = format!("/replicationProtectedItems?{V}");
        loop {
            let page = self.get(&url);
            let found = page.body["value"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["properties"]["friendlyName"] == name)
                .map(|i| i["id"].as_str().unwrap().to_string());
            if let Some(id) = found {
                return id;
            }
            url = page.body["nextLink"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} is not listed"))
                .to_string();
        }
    }

    fn failover(&self, name: &str) -> Answer {
        let path = self.item_path(name);
        self.post(
            &format!("{}{path}/plannedFailover?{V}", self.origin),
            r#"{"properties":{"failoverDirection":"PrimaryToRecovery","providerSpecificDetails":{"instanceType":"ProviderSpecificFailoverInput"}}}"#,
        )
    }
}

/// The checks every 202 passes: both links with the caller's api-version, Retry-After 1 at
/// this speed, the operation's GUID as the request id. Returns the operation's id.
fn accepted(a: &Answer) -> String {
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.body, Value::Null, "empty body");
    let op = a.header("x-ms-request-id").to_string();
    assert!(is_guid(&op), "x-ms-request-id {op}");
    let status = a.header("azure-asyncoperation");
    assert!(
        status.contains(&format!("/replicationOperationStatus/{op}?{V}")),
        "{status}"
    );
    let location = a.header("location");
    assert!(
        location.contains(&format!("/operationresults/{op}?{V}")),
        "{location}"
    );
    assert_eq!(a.header("retry-after"), "1");
    op
}

#[test]
fn both_polling_links_of_a_202_are_served() {
    let api = Api::start(100);
    let r = api.failover("web-01");
    let op = accepted(&r);
    let (status_url, location) = (r.header("azure-asyncoperation"), r.header("location"));

    // While the job runs: InProgress (ARM's spelling) and a 202 on the result.
    let s = api.get(status_url);
    assert_eq!(s.status, 200);
    assert_eq!(s.body["status"], "InProgress");
    assert_eq!(s.body["name"], op.as_str());
    assert!(s.body["id"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/replicationOperationStatus/{op}")));
    assert!(
        s.body["startTime"].is_string() && s.body["endTime"].is_null() && s.body["error"].is_null()
    );
    assert_eq!(s.header("retry-after"), "1");
    let running = api.get(location);
    assert_eq!((running.status, running.body.clone()), (202, Value::Null));
    assert_eq!(running.header("location"), location);
    assert_eq!(running.header("retry-after"), "1");

    // Once it ended: Succeeded, then the protected item.
    api.clock.advance(Duration::from_secs(9 * 60));
    let s = api.get(status_url);
    assert_eq!(s.body["status"], "Succeeded");
    assert!(s.body["endTime"].is_string());
    assert!(s.headers.get("retry-after").is_none());
    let done = api.get(location);
    assert_eq!(done.status, 200);
    assert_eq!(done.body["properties"]["friendlyName"], "web-01");
    assert_eq!(
        done.body["properties"]["protectionState"],
        "PlannedFailoverCommitRequired"
    );

    // A job that fails: Failed with its error, and the result is that error.
    let r = api.failover("bad-01");
    let op = accepted(&r);
    api.clock.advance(Duration::from_secs(9 * 60));
    let s = api.get(&format!("/replicationOperationStatus/{op}?{V}"));
    assert_eq!(s.body["status"], "Failed");
    assert_eq!(s.body["error"]["code"], "SimulatedFault");
    let failed = api.get(r.header("location"));
    assert_eq!(failed.status, 400);
    assert_eq!(failed.body["error"]["code"], "SimulatedFault");

    let unknown = api.get(&format!(
        "/replicationOperationStatus/00000000-0000-0000-0000-000000000000?{V}"
    ));
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["error"]["code"], "ResourceNotFound");
}

#[test]
fn a_job_action_is_an_operation_with_its_own_id() {
    let api = Api::start(100);
    let job = accepted(&api.failover("web-01"));
    let r = api.post(&format!("/replicationJobs/{job}/cancel?{V}"), "");
    let op = accepted(&r);
    assert_ne!(op, job, "the cancel's own id");
    assert!(r.header("location").contains(&format!(
        "/replicationJobs/{job}/cancel/operationresults/{op}"
    )));
    // The cancel succeeded; the failover it cancelled was canceled.
    assert_eq!(
        api.get(r.header("azure-asyncoperation")).body["status"],
        "Succeeded"
    );
    let failover = api.get(&format!("/replicationOperationStatus/{job}?{V}"));
    assert_eq!(failover.body["status"], "Canceled");
    assert_eq!(failover.body["error"]["code"], "OperationCanceled");
    let result = api.get(r.header("location"));
    assert_eq!(result.status, 200);
    assert_eq!(
        (
            result.body["name"].as_str(),
            result.body["properties"]["state"].as_str()
        ),
        (Some(job.as_str()), Some("Cancelled"))
    );
    let again = api.post(&format!("/replicationJobs/{job}/cancel?{V}"), "");
    assert_eq!(again.status, 400, "a job that ended is not cancelled twice");

    // A commit refused while web-02 fails over (532), restarted once the failover ended:
    // the restart's operation follows the new job, and its result is that job.
    let path = api.item_path("web-02");
    api.failover("web-02");
    let refused = accepted(&api.post(&format!("{}{path}/failoverCommit?{V}", api.origin), ""));
    assert_eq!(
        api.get(&format!("/replicationJobs/{refused}?{V}")).body["properties"]["errors"][0]
            ["serviceErrorDetails"]["code"],
        "532"
    );
    api.clock.advance(Duration::from_secs(9 * 60));
    let r = api.post(&format!("/replicationJobs/{refused}/restart?{V}"), "");
    let op = accepted(&r);
    assert_eq!(
        api.get(r.header("azure-asyncoperation")).body["status"],
        "InProgress"
    );
    assert_eq!(api.get(r.header("location")).status, 202);
    api.clock.advance(Duration::from_secs(60));
    assert_eq!(
        api.get(r.header("azure-asyncoperation")).body["status"],
        "Succeeded"
    );
    let new = api.get(r.header("location"));
    assert_ne!(new.body["name"], refused.as_str());
    assert_ne!(new.body["name"], op.as_str());
    assert_eq!(new.body["properties"]["scenarioName"], "CommitFailover");
    assert_eq!(new.body["properties"]["state"], "Succeeded");

    // Resume is for a job suspended at a manual action; none is.
    let r = api.post(
        &format!("/replicationJobs/{job}/resume?{V}"),
        r#"{"properties":{"comments":"go on"}}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "OperationNotAllowed");
    let r = api.post(&format!("/replicationJobs/{job}/pause?{V}"), "");
    assert_eq!(r.status, 404);
}

#[test]
fn recovery_plans_are_listed_read_and_run_as_one_job() {
    let api = Api::start(1);
    // Paged: one plan a page, the nextLink keeps the caller's api-version.
    let first = api.get(&format!("/replicationRecoveryPlans?{V}"));
    assert_eq!(first.status, 200);
    assert_eq!(first.body["value"][0]["name"], "pair");
    let next = first.body["nextLink"].as_str().unwrap();
    assert!(next.starts_with("http://") && next.contains(V), "{next}");
    let second = api.get(next);
    assert_eq!(second.body["value"][0]["name"], "tiers");
    assert!(second.body.get("nextLink").is_none());

    let plan = api.get(&format!("/replicationRecoveryPlans/tiers?{V}"));
    let p = &plan.body["properties"];
    let groups: Vec<(&str, usize)> = p["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["groupType"].as_str().unwrap(),
                g["replicationProtectedItems"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [("Shutdown", 0), ("Failover", 0), ("Boot", 1), ("Boot", 1)]
    );
    let db = api.item_path("db-01");
    assert_eq!(
        p["groups"][2]["replicationProtectedItems"][0]["id"],
        db.as_str()
    );
    assert_eq!(
        p["allowedOperations"],
        serde_json::json!(["PlannedFailover", "UnplannedFailover", "TestFailover"])
    );
    assert_eq!(
        plan.body["type"],
        "Microsoft.RecoveryServices/vaults/replicationRecoveryPlans"
    );

    // What the swagger requires of a plan action's body.
    let action =
        |a: &str, body: &str| api.post(&format!("/replicationRecoveryPlans/tiers/{a}?{V}"), body);
    for (a, body, says) in [
        ("plannedFailover", "", "failoverDirection is required"),
        (
            "plannedFailover",
            r#"{"properties":{"failoverDirection":"Sideways"}}"#,
            "Sideways",
        ),
        (
            "plannedFailover",
            r#"{"properties":{"failoverDirection":"PrimaryToRecovery","providerSpecificDetails":{"instanceType":"HyperVReplicaAzure"}}}"#,
            "is a list",
        ),
        (
            "unplannedFailover",
            r#"{"properties":{"failoverDirection":"PrimaryToRecovery"}}"#,
            "sourceSiteOperations is required",
        ),
        (
            "testFailover",
            r#"{"properties":{"failoverDirection":"PrimaryToRecovery"}}"#,
            "networkType is required",
        ),
        ("failoverCommit", "", "not allowed now"),
        (
            "plannedFailover",
            r#"{"properties":{"failoverDirection":"RecoveryToPrimary"}}"#,
            "direction must be",
        ),
    ] {
        let r = action(a, body);
        assert_eq!(r.status, 400, "{a} {body}");
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(says),
            "{a} {body}: {}",
            r.body
        );
    }
    assert_eq!(action("explode", "").status, 404);
    assert_eq!(
        api.get(&format!("/replicationRecoveryPlans/nope?{V}"))
            .status,
        404
    );
    let item = api.post(
        &format!("{}{db}/plannedFailover?{V}", api.origin),
        r#"{"properties":{"failoverDirection":"PrimaryToRecovery","providerSpecificDetails":[]}}"#,
    );
    assert_eq!(
        item.status, 400,
        "an item's providerSpecificDetails is one object"
    );

    // One job for the plan; its members show it as their current scenario.
    let r = action(
        "plannedFailover",
        r#"{"properties":{"failoverDirection":"PrimaryToRecovery","providerSpecificDetails":[{"instanceType":"ProviderSpecificFailoverInput"}]}}"#,
    );
    let job = accepted(&r);
    assert!(r.header("location").contains(&format!(
        "/replicationRecoveryPlans/tiers/plannedFailover/operationresults/{job}"
    )));
    let j = api.get(&format!("/replicationJobs/{job}?{V}"));
    assert_eq!(j.body["properties"]["scenarioName"], "PlannedFailover");
    assert_eq!(j.body["properties"]["targetObjectName"], "tiers");
    let tasks: Vec<&str> = j.body["properties"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(tasks, ["InProgress", "NotStarted"]);
    assert_eq!(j.header("retry-after"), "1");
    let member = api.get(&format!("{}{db}?{V}", api.origin));
    assert_eq!(
        member.body["properties"]["currentScenario"]["jobId"],
        format!("/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v/replicationJobs/{job}").as_str()
    );
    let listed = api.get(&format!("/replicationJobs?{V}"));
    assert_eq!(
        listed.body["value"][0]["name"],
        job.as_str(),
        "listed with the items' jobs"
    );
    assert_eq!(api.get(r.header("location")).status, 202);

    api.clock.advance(Duration::from_secs(20 * 60));
    assert_eq!(
        api.get(r.header("azure-asyncoperation")).body["status"],
        "Succeeded"
    );
    let done = api.get(r.header("location"));
    assert_eq!(done.status, 200);
    assert_eq!(done.body["name"], "tiers");
    assert_eq!(
        done.body["properties"]["currentScenarioStatus"],
        "Succeeded"
    );
    assert_eq!(
        done.body["properties"]["allowedOperations"],
        serde_json::json!(["Commit", "CancelFailover"])
    );

    // Commit, then reProtect without a body.
    let commit = accepted(&action("failoverCommit", ""));
    api.clock.advance(Duration::from_secs(2 * 60));
    assert_eq!(
        api.get(&format!("/replicationOperationStatus/{commit}?{V}"))
            .body["status"],
        "Succeeded"
    );
    let reprotect = accepted(&action("reProtect", ""));
    api.clock.advance(Duration::from_secs(30 * 60));
    assert_eq!(
        api.get(&format!("/replicationOperationStatus/{reprotect}?{V}"))
            .body["status"],
        "Succeeded"
    );
    let web = api.get(&format!("{}{}?{V}", api.origin, api.item_path("web-03")));
    assert_eq!(
        (
            web.body["properties"]["protectionState"].as_str(),
            web.body["properties"]["activeLocation"].as_str()
        ),
        (Some("Protected"), Some("Recovery"))
    );
}

#[test]
fn every_answer_has_a_guid_request_id_and_links_echo_the_api_version() {
    let api = Api::start(2);
    let answers = [
        api.get(&format!("/replicationProtectedItems?{V}")),
        api.get("/replicationProtectedItems"),
        api.get(&format!("/replicationWidgets?{V}")),
        api.rt.block_on(async {
            let r = api
                .http
                .get(format!("{}/replicationJobs?{V}", api.vault))
                .send()
                .await
                .unwrap();
            Answer {
                status: r.status().as_u16(),
                headers: r.headers().clone(),
                body: Value::Null,
            }
        }),
    ];
    assert_eq!(
        answers.iter().map(|a| a.status).collect::<Vec<_>>(),
        [200, 400, 404, 401]
    );
    let ids: Vec<&str> = answers
        .iter()
        .map(|a| a.header("x-ms-request-id"))
        .collect();
    assert!(ids.iter().all(|id| is_guid(id)), "{ids:?}");
    assert!(
        ids.windows(2).all(|w| w[0] != w[1]),
        "one per answer: {ids:?}"
    );
    let next = answers[0].body["nextLink"].as_str().unwrap();
    assert!(next.contains(V) && next.contains("$skiptoken=2"), "{next}");

    // A running job's Retry-After is at least 1 second too.
    let job = accepted(&api.failover("web-01"));
    let j = api.get(&format!("/replicationJobs/{job}?{V}"));
    assert_eq!(j.header("retry-after"), "1");
    // The job list's nextLink keeps the caller's filter and api-version.
    accepted(&api.failover("web-02"));
    accepted(&api.failover("web-03"));
    let filter = "$filter=startTime%20eq%20%271970-01-01T00:00:00Z%27";
    let page = api.get(&format!("/replicationJobs?{V}&{filter}"));
    let next = page.body["nextLink"].as_str().unwrap();
    assert!(next.contains(V) && next.contains(filter), "{next}");
    assert_eq!(api.get(next).body["value"].as_array().unwrap().len(), 1);
}
