//! Microsoft's Python SDK for Site Recovery (`azure-mgmt-recoveryservicessiterecovery`, with
//! azure-core; versions pinned in tests/conformance/requirements.txt) drives the simulator
//! server through the seed's flow, each long-running operation through the SDK's own poller
//! (tests/conformance/sdk_flow.py); then our own client runs a plan's worth of operations on
//! the same server. `.ci/deps python` sets up the SDK's virtual environment once.

use crate::common::{root, text};
use runbook::backend::azure::auth::Credential;
use runbook::backend::azure::Azure;
use runbook::backend::inventory::Inventory;
use runbook::backend::sim::Simulator;
use runbook::clock::{Clock, RealClock};
use runbook::run::{run_on, RunOptions, Venue};
use runbook::simulator::ServerOptions;
use std::process::{Command, Stdio};
use std::sync::Arc;

const TOKEN: &str = "conformance-token";

/// The virtual environment's interpreter, set up by `.ci/deps python`.
fn python() -> String {
    crate::common::deps("python")
}

#[test]
fn microsofts_python_sdk_runs_the_seed_flow_against_the_server() {
    let python = python();
    let inventory = Inventory::load(&root().join("tests/conformance/inventory.toml")).unwrap();
    let options = ServerOptions {
        token: TOKEN.into(),
        // Each job ends before the SDK's first poll (Retry-After is then 1 s).
        speed: 3000.0,
        // Small pages: the SDK follows nextLink on every list.
        page_size: 2,
        ..ServerOptions::default()
    };
    let clock: Arc<dyn Clock> = Arc::new(RealClock::starting_at(inventory.start, options.speed));
    let sim = Arc::new(Simulator::new(&inventory, clock, false));
    let (addr, server) = crate::common::serve(sim, options);
    let out = Command::new(&python)
        .arg(root().join("tests/conformance/sdk_flow.py"))
        .args(["--endpoint", &format!("http://{addr}"), "--token", TOKEN])
        .stdin(Stdio::null())
        .output()
        .expect("the venv's python runs");
    let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "the SDK's flow failed:\n{shown}");
    assert!(shown.contains("every check passed"), "{shown}");
    // What the SDK sent, as the server counted it.
    let stats = server.stats();
    for (kind, least) in [
        ("GET operationStatus", 20),
        ("GET operationResult", 18),
        ("POST plan plannedFailover", 3),
        ("POST cancel", 1),
        ("POST restart", 1),
    ] {
        let n = stats.get(kind).copied().unwrap_or(0);
        assert!(n >= least, "{kind}: {n} < {least}: {stats:?}");
    }
    assert_eq!(stats.get("401"), None, "{stats:?}");
    assert_eq!(stats.get("404"), None, "{stats:?}");

    // Our own client on the same server, after the SDK's changes: the plans' members (read
    // from the plans the SDK failed over and back) fail over, commit and replicate back.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.rhai"), OURS).unwrap();
    let target = crate::azure::target(addr);
    let azure = Azure::new(&target, Credential::Static(TOKEN.into())).unwrap();
    let (outcome, _) = run_on(
        &RunOptions::unattended(dir.path().join("plan.rhai")),
        Venue::service(Arc::new(azure), "the conformance server".into()),
        false,
    )
    .unwrap();
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    let mut moved: Vec<(&str, &str, bool)> = outcome
        .items
        .iter()
        .map(|i| (i.name.as_str(), i.active_location.as_str(), i.replicating))
        .collect();
    moved.sort();
    assert_eq!(
        moved,
        [
            ("app-01", "recovery", true),
            ("app-02", "recovery", true),
            ("sql-01", "recovery", true),
            ("web-01", "recovery", true),
            ("web-02", "recovery", true),
            ("web-03", "recovery", true),
        ]
    );
}

/// What our client runs after the SDK: every member of two plans, by the plans' groups.
const OURS: &str = r#"
import "runbook/failover" as failover;
let tiers = vms(#{ plan: "three-tier" });
let web = vms(#{ plan: "web-tier" });
failover::group(tiers + web, #{ kind: "planned" }, "1h");
failover::protect(tiers + web, "1h");
"#;
