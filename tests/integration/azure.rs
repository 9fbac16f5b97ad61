//! The `azure` backend against `runbook simulator serve` over real HTTP on loopback: the same
//! runbook gives the same operations and final states as on the in-process simulator.

use crate::common::root;
use runbook::backend::azure::auth::Credential;
use runbook::backend::azure::{Azure, TargetConfig};
use runbook::backend::inventory::Inventory;
use runbook::backend::sim::Simulator;
use runbook::clock::{Clock, RealClock};
use runbook::run::{run_on, Outcome, RunOptions, Venue};
use runbook::simulator::faults::{Fault, FaultKind};
use runbook::simulator::{Server, ServerOptions};
use std::net::SocketAddr;
use std::sync::Arc;

const TOKEN: &str = "test-token-7f3a";

/// Starts a simulator server on 127.0.0.1:0 on its own runtime thread.
fn start_server(inventory: &Inventory, speed: f64) -> (SocketAddr, Arc<Server>) {
    start_server_with(
        inventory,
        ServerOptions {
            token: TOKEN.into(),
            speed,
            ..ServerOptions::default()
        },
    )
}

fn start_server_with(inventory: &Inventory, options: ServerOptions) -> (SocketAddr, Arc<Server>) {
    let clock: Arc<dyn Clock> = Arc::new(RealClock::new(options.speed));
    let sim = Arc::new(Simulator::new(inventory, clock, false));
    crate::common::serve(sim, options)
}

/// A target on the test server (any subscription, group and vault; quick polls).
pub(crate) fn target(addr: SocketAddr) -> TargetConfig {
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
    let opts = RunOptions::unattended(dir.path().join("plan.rhai"));
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
    let opts = RunOptions::unattended(dir.path().join("plan.rhai"));
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
        assert!(location.starts_with("http://"), "absolute, as the service's: {location}");
        assert_eq!(headers["x-ms-request-id"].to_str().unwrap(), job, "the operation's GUID");

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

/// One VM failed over, committed and protected again.
pub(crate) const ONE_VM: &str = r#"
let web = vm("web-01");
wait_job(failover(web, #{ kind: "planned" }), #{ timeout: "1h" });
verify(web, #{ active_location: "recovery", healthy: true });
wait_job(commit(web), #{ timeout: "1h" });
wait_job(reverse_replicate(web), #{ timeout: "1h" });
verify(web, #{ replicating: true });
"#;

fn one_vm_options(dir: &std::path::Path) -> RunOptions {
    std::fs::write(dir.join("plan.rhai"), ONE_VM).unwrap();
    RunOptions::unattended(dir.join("plan.rhai"))
}

#[test]
fn faults_end_in_success_and_the_failover_is_issued_once() {
    let inventory = Inventory::load(&root().join("runbooks/inventory.toml")).unwrap();
    let drop_now = Fault {
        delay_ms: Some(0),
        ..Fault::new("GET job", FaultKind::Drop, 1)
    };
    let (addr, server) = start_server_with(
        &inventory,
        ServerOptions {
            token: TOKEN.into(),
            speed: 3000.0,
            faults: vec![
                // The POST creates the job, then its answer never comes.
                Fault::new("POST plannedFailover", FaultKind::AcceptThenHang, 1),
                Fault::new("GET job", FaultKind::TooManyRequests, 2),
                Fault::new("GET job", FaultKind::ServerError, 2),
                Fault::new("GET job", FaultKind::Malformed, 1),
                drop_now,
            ],
            ..ServerOptions::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let opts = one_vm_options(dir.path());
    let target = TargetConfig {
        timeout: "700ms".into(),
        ..target(addr)
    };
    let azure = Azure::new(&target, token(TOKEN)).unwrap();
    let (outcome, _) = run_on(
        &opts,
        Venue::service(Arc::new(azure), "the test server".into()),
        false,
    )
    .unwrap();
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    let stats = server.stats();
    assert_eq!(
        stats.get("POST plannedFailover"),
        Some(&1),
        "issued exactly once: {stats:?}"
    );
    for fired in [
        "fault accept-then-hang",
        "fault 429",
        "fault 500",
        "fault malformed",
        "fault drop",
    ] {
        assert!(
            stats.get(fired).is_some_and(|n| *n >= 1),
            "{fired} did not fire: {stats:?}"
        );
    }
    let web = &outcome.items[0];
    assert_eq!(
        (web.active_location.as_str(), web.replicating),
        ("recovery", true)
    );
}

#[test]
fn an_expired_token_is_refreshed_mid_run_and_secrets_never_show() {
    let inventory = Inventory::load(&root().join("runbooks/inventory.toml")).unwrap();
    const SECRET: &str = "sEcReT-client-value-91c2";
    let (addr, server) = start_server_with(
        &inventory,
        ServerOptions {
            token: String::new(),
            speed: 600.0,
            client_id: Some("app-1".into()),
            client_secret: Some(SECRET.into()),
            token_lifetime: std::time::Duration::from_secs(1),
            ..ServerOptions::default()
        },
    );
    // Through the library: a run longer than a token's life.
    let dir = tempfile::tempdir().unwrap();
    let opts = one_vm_options(dir.path());
    let credential = Credential::ClientSecret {
        authority: format!("http://{addr}"),
        tenant: "tenant-1".into(),
        client_id: "app-1".into(),
        secret: SECRET.into(),
    };
    let azure = Azure::new(&target(addr), credential).unwrap();
    let (outcome, _) = run_on(
        &opts,
        Venue::service(Arc::new(azure), "the test server".into()),
        false,
    )
    .unwrap();
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    assert!(
        server.stats().get("POST token").is_some_and(|n| *n >= 2),
        "{:?}",
        server.stats()
    );

    // Through the binary, with every log on: neither the secret nor a token appears (a
    // fresh server: the runbook starts from web-01 on the primary site).
    let (addr, _server) = start_server_with(
        &inventory,
        ServerOptions {
            token: String::new(),
            speed: 600.0,
            client_id: Some("app-1".into()),
            client_secret: Some(SECRET.into()),
            ..ServerOptions::default()
        },
    );
    write_target(dir.path(), addr, true);
    let (code, all) = run_target(
        dir.path(),
        &[
            ("AZURE_ACCESS_TOKEN", None),
            ("AZURE_TENANT_ID", Some("tenant-1")),
            ("AZURE_CLIENT_ID", Some("app-1")),
            ("AZURE_CLIENT_SECRET", Some(SECRET)),
        ],
    );
    assert_eq!(code, Some(0), "{all}");
    assert!(all.contains("LIVE RUN"), "{all}");
    assert!(!all.contains(SECRET), "the secret leaked: {all}");
    assert!(!all.contains("rbsim."), "a token leaked: {all}");
    assert!(
        !all.to_lowercase().contains("bearer "),
        "a token leaked: {all}"
    );
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        assert!(!text.contains("rbsim.") && !text.contains(SECRET));
    }

    // A token given directly does not show either.
    let (addr2, _server2) = start_server(&inventory, 3000.0);
    write_target(dir.path(), addr2, false);
    let (code, all) = run_target(dir.path(), &[("AZURE_ACCESS_TOKEN", Some(TOKEN))]);
    assert_eq!(code, Some(0), "{all}");
    assert!(!all.contains(TOKEN), "the token leaked: {all}");
}

/// Writes a runbook.toml naming target `sim` at `addr` (and its token endpoint, if asked).
fn write_target(dir: &std::path::Path, addr: SocketAddr, authority: bool) {
    let mut toml = format!(
        "[targets.sim]\nsubscription = \"s\"\nresource_group = \"g\"\nvault = \"v\"\nendpoint = \"http://{addr}\"\npoll_min = \"20ms\"\n"
    );
    if authority {
        toml.push_str(&format!("authority = \"http://{addr}\"\n"));
    }
    std::fs::write(dir.join("runbook.toml"), toml).unwrap();
}

/// Runs `runbook run plan.rhai --target sim` in `dir` with every log on and `env` set
/// (`None` removes a variable); returns the exit code and all it printed.
fn run_target(dir: &std::path::Path, env: &[(&str, Option<&str>)]) -> (Option<i32>, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"));
    cmd.args([
        "run",
        "plan.rhai",
        "--target",
        "sim",
        "--yes",
        "--no-progress",
    ])
    .current_dir(dir)
    .env("RUNBOOK_LOG", "trace")
    .stdin(std::process::Stdio::null());
    for (name, value) in env {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    let out = cmd.output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), all)
}

#[test]
fn status_and_inventory_export_read_the_live_estate() {
    let inventory = Inventory::load(&root().join("runbooks/inventory.toml")).unwrap();
    let (addr, _server) = start_server(&inventory, 1.0);
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("[targets.sim]\nsubscription = \"s\"\nresource_group = \"g\"\nvault = \"v\"\nendpoint = \"http://{addr}\"\n");
    std::fs::write(dir.path().join("runbook.toml"), toml).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
            .args(args)
            .current_dir(dir.path())
            .env("AZURE_ACCESS_TOKEN", TOKEN)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&["status", "--target", "sim"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("fs-01") && stdout.contains("PlannedFailoverCommitted"),
        "{stdout}"
    );

    let out = run(&[
        "inventory",
        "export",
        "--target",
        "sim",
        "--output",
        "live.toml",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = Inventory::load(&dir.path().join("live.toml")).unwrap();
    let names = |inv: &Inventory| -> Vec<String> {
        let mut n: Vec<String> = inv.items.iter().map(|i| i.name.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&exported), names(&inventory));
    let fs = exported.items.iter().find(|i| i.name == "fs-01").unwrap();
    assert_eq!(fs.active_location.as_str(), "recovery");

    let out = run(&["status", "--target", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no target `nope`"));
}

#[test]
fn a_lost_post_is_never_sent_again_nor_matched_to_an_older_job() {
    let inventory = Inventory::load(&root().join("runbooks/inventory.toml")).unwrap();
    let (addr, server) = start_server(&inventory, 3000.0);
    let dir = tempfile::tempdir().unwrap();
    let drill = "let w = vm(\"web-02\");\nwait_job(test_failover(w), #{ timeout: \"1h\" });\nwait_job(cleanup_test_failover(w), #{ timeout: \"1h\" });\n";
    std::fs::write(dir.path().join("plan.rhai"), drill).unwrap();
    let opts = RunOptions::unattended(dir.path().join("plan.rhai"));
    let run = || {
        let azure = Azure::new(
            &TargetConfig {
                timeout: "700ms".into(),
                ..target(addr)
            },
            token(TOKEN),
        )
        .unwrap();
        run_on(
            &opts,
            Venue::service(Arc::new(azure), "the test server".into()),
            false,
        )
        .unwrap()
        .0
    };
    assert!(run().failure.is_none());
    // The next drill's POST is dropped before the service takes it: the earlier drill's
    // finished job must not be taken for it, and the POST must not be sent again.
    server.arm(Fault {
        delay_ms: Some(0),
        ..Fault::new("POST testFailover", FaultKind::Drop, 1)
    });
    let outcome = run();
    let failure = outcome.failure.expect("the lost POST is reported");
    assert!(
        failure.message.contains("may have been issued"),
        "{}",
        failure.message
    );
    assert_eq!(
        server.stats().get("POST testFailover"),
        Some(&2),
        "one POST per run: {:?}",
        server.stats()
    );
    assert!(
        outcome.jobs.is_empty(),
        "no job was adopted: {:?}",
        outcome.jobs.len()
    );
}
