//! The `azure` backend against `runbook simulator serve` over real HTTP on loopback: the same
//! runbook gives the same operations and final states as on the in-process simulator.

use crate::common::root;
use runbook::backend::azure::auth::Credential;
use runbook::backend::azure::{Azure, TargetConfig};
use runbook::backend::inventory::Inventory;
use runbook::backend::sim::Simulator;
use runbook::clock::{Clock, RealClock};
use runbook::run::{run_on, Outcome, RunOptions, Venue};
use runbook::simulator::Server;
use std::net::SocketAddr;
use std::sync::Arc;

const TOKEN: &str = "test-token-7f3a";

/// Starts a simulator server on 127.0.0.1:0 on its own runtime thread.
fn start_server(inventory: &Inventory, speed: f64) -> (SocketAddr, Arc<Server>) {
    let clock: Arc<dyn Clock> = Arc::new(RealClock::starting_at(inventory.start, speed));
    let sim = Arc::new(Simulator::new(inventory, clock, false));
    let server = Server::new(sim, TOKEN.into(), speed);
    let (tx, rx) = std::sync::mpsc::channel();
    let shared = server.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            runbook::simulator::serve(listener, shared, std::future::pending())
                .await
                .unwrap();
        });
    });
    (rx.recv().unwrap(), server)
}

fn target(addr: SocketAddr) -> TargetConfig {
    TargetConfig {
        poll_min: "20ms".into(),
        ..TargetConfig::new(
            "00000000-0000-0000-0000-0000000000aa",
            "dr-rg",
            "dr-vault",
            &format!("http://{addr}"),
        )
    }
}

fn token(t: &str) -> Credential {
    Credential::Static(t.into())
}

const PLAN: &str = r#"
import "runbook/failover" as failover;
let database = [vm("sql-01")];
let app = vms(#{ plan: "app-tier" });
failover::group(database, #{ kind: "planned" }, "1h");
failover::group(app, #{ kind: "unplanned", shutdown_source: true }, "1h");
failover::protect(database + app, "1h");
let fs = vm("fs-01");
wait_job(reverse_replicate(fs), #{ timeout: "1h" });
verify(fs, #{ replicating: true });
"#;

fn summary(outcome: &Outcome) -> (Vec<String>, Vec<String>) {
    let ops = outcome
        .jobs
        .iter()
        .map(|j| format!("{} {} {}", j.info.operation, j.info.vm, j.info.state))
        .collect();
    let items = outcome
        .items
        .iter()
        .map(|i| {
            format!(
                "{} {} {} {}",
                i.name,
                i.protection_state,
                i.active_location.as_str(),
                i.replicating
            )
        })
        .collect();
    (ops, items)
}

#[test]
fn the_same_runbook_does_the_same_through_http_as_in_process() {
    let inventory = Inventory::load(&root().join("runbooks/inventory.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.rhai"), PLAN).unwrap();
    let opts = RunOptions {
        path: dir.path().join("plan.rhai"),
        target: None,
        inventory: None,
        speed: None,
        auto_approve: true,
        progress: false,
        color: false,
    };
    let (local, _) = run_on(
        &opts,
        Venue::simulator(inventory.clone(), 1_000_000.0),
        false,
    )
    .unwrap();
    assert!(local.failure.is_none(), "{:?}", local.failure);

    let (addr, server) = start_server(&inventory, 3000.0);
    let azure = Azure::new(&target(addr), token(TOKEN)).unwrap();
    let (remote, _) = run_on(
        &opts,
        Venue::service(Arc::new(azure), "the test server".into()),
        false,
    )
    .unwrap();
    assert!(remote.failure.is_none(), "{:?}", remote.failure);

    assert_eq!(summary(&remote), summary(&local));
    let stats = server.stats();
    assert_eq!(stats.get("POST plannedFailover"), Some(&1), "{stats:?}");
    assert_eq!(stats.get("POST unplannedFailover"), Some(&2), "{stats:?}");
    assert_eq!(stats.get("POST failoverCommit"), Some(&3), "{stats:?}");
    assert_eq!(stats.get("POST reProtect"), Some(&4), "{stats:?}");
    assert_eq!(stats.get("401"), None);
}

#[test]
fn a_wrong_token_or_an_insecure_endpoint_is_a_clear_error() {
    let inventory = Inventory::load(&root().join("runbooks/inventory.toml")).unwrap();
    let (addr, _server) = start_server(&inventory, 1000.0);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plan.rhai"),
        "let s = status(\"sql-01\");\n",
    )
    .unwrap();
    let opts = RunOptions {
        path: dir.path().join("plan.rhai"),
        target: None,
        inventory: None,
        speed: None,
        auto_approve: true,
        progress: false,
        color: false,
    };
    let azure = Azure::new(&target(addr), token("wrong-token")).unwrap();
    let (outcome, _) = run_on(
        &opts,
        Venue::service(Arc::new(azure), "the test server".into()),
        false,
    )
    .unwrap();
    let failure = outcome.failure.expect("refused");
    let text = format!("{} {:?}", failure.message, failure.notes);
    assert!(text.contains("AuthenticationFailed"), "{text}");
    assert!(
        !text.contains("wrong-token"),
        "the token never appears: {text}"
    );

    let remote = TargetConfig {
        endpoint: "http://10.1.2.3".into(),
        ..target(addr)
    };
    let err = Azure::new(&remote, token(TOKEN))
        .err()
        .expect("plain http off loopback is refused");
    assert!(err.contains("https is required"), "{err}");
}

/// Requests as a client would send them, and the service's answers, checked by shape.
#[test]
fn the_server_answers_like_the_service() {
    let inventory = Inventory::load(&root().join("runbooks/inventory.toml")).unwrap();
    let (addr, server) = start_server(&inventory, 1.0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let http = reqwest::Client::new();
        let vault = format!("http://{addr}/subscriptions/s1/resourceGroups/g1/providers/Microsoft.RecoveryServices/vaults/v1");
        let get = |url: String, token: Option<&'static str>| {
            let mut req = http.get(url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send()
        };
        // No token, no api-version, an unknown path: ARM error bodies.
        let r = get(format!("{vault}/replicationProtectedItems?api-version=2024-04-01"), None).await.unwrap();
        assert_eq!(r.status(), 401);
        let r = get(format!("{vault}/replicationProtectedItems"), Some(TOKEN)).await.unwrap();
        assert_eq!(r.status(), 400);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "MissingApiVersionParameter");
        let r = get(format!("{vault}/replicationWidgets?api-version=2024-04-01"), Some(TOKEN)).await.unwrap();
        assert_eq!(r.status(), 404);

        // The vault-wide list names the items; one of them is failed over.
        let r = get(format!("{vault}/replicationProtectedItems?api-version=2024-04-01"), Some(TOKEN)).await.unwrap();
        let list: serde_json::Value = r.json().await.unwrap();
        let item = list["value"].as_array().unwrap().iter().find(|i| i["properties"]["friendlyName"] == "web-01").unwrap().clone();
        assert_eq!(item["properties"]["protectionState"], "Protected");
        assert_eq!(item["properties"]["activeLocation"], "Primary");
        let id = item["id"].as_str().unwrap();
        assert!(id.contains("/replicationFabrics/") && id.contains("/replicationProtectedItems/"), "{id}");

        let post = |action: &str, body: &str| {
            http.post(format!("http://{addr}{id}/{action}?api-version=2024-04-01"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
        };
        let r = post("plannedFailover", "{not json").await.unwrap();
        assert_eq!(r.status(), 400);
        let r = post("plannedFailover", r#"{"properties":{"failoverDirection":"RecoveryToPrimary"}}"#).await.unwrap();
        assert_eq!(r.status(), 400, "wrong direction for an item active on the primary site");
        let r = post(
            "plannedFailover",
            r#"{"properties":{"failoverDirection":"PrimaryToRecovery","providerSpecificDetails":{"instanceType":"ProviderSpecificFailoverInput"}}}"#,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 202);
        let headers = r.headers().clone();
        assert!(r.text().await.unwrap().is_empty(), "202 has an empty body");
        let location = headers["location"].to_str().unwrap();
        assert!(location.contains("/operationresults/"), "{location}");
        assert!(headers["azure-asyncoperation"].to_str().unwrap().contains("/replicationOperationStatus/"));
        assert_eq!(headers["retry-after"], "30");
        let job = runbook::backend::azure::job_name(&headers).unwrap();
        assert_eq!(headers["x-ms-request-id"].to_str().unwrap(), job);

        // Right after the 202 the job has not started and has no tasks.
        let r = get(format!("{vault}/replicationJobs/{job}?api-version=2024-04-01"), Some(TOKEN)).await.unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["properties"]["state"], "NotStarted");
        assert_eq!(body["properties"]["scenarioName"], "PlannedFailover");
        assert_eq!(body["properties"]["tasks"].as_array().unwrap().len(), 0);
        assert_eq!(body["properties"]["allowedActions"][0], "Cancel");

        // A second operation on the busy item: a job that fails with 532.
        let r = post("failoverCommit", "").await.unwrap();
        assert_eq!(r.status(), 202);
        let busy = runbook::backend::azure::job_name(r.headers()).unwrap();
        let r = get(format!("{vault}/replicationJobs/{busy}?api-version=2024-04-01"), Some(TOKEN)).await.unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["properties"]["state"], "Failed");
        assert_eq!(body["properties"]["errors"][0]["serviceErrorDetails"]["code"], "532");
    });
    assert_eq!(server.stats().get("POST plannedFailover"), Some(&3));
}
