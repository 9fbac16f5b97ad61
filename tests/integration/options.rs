//! No option is silently dropped: every option of every primitive in the registry either
//! reaches the service (over HTTP, as the simulator server reads the request) or changes
//! what the run does (its findings or its plan), or `check` refuses it by name. The test
//! enumerates the registry, so a new option cannot land without a probe that proves it.

use crate::common::{root, serve};
use runbook::backend::azure::auth::Credential;
use runbook::backend::azure::{Azure, TargetConfig};
use runbook::backend::inventory::Inventory;
use runbook::backend::sim::Simulator;
use runbook::backend::OperationRequest;
use runbook::clock::{Clock, RealClock};
use runbook::plan::{plan_text, render, Outcome};
use runbook::run::{run_on, RunOptions, Venue};
use runbook::script::registry::PRIMITIVES;
use runbook::simulator::ServerOptions;
use std::sync::Arc;

/// How an option's effect is seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// In the requests the service received (the simulator server behind the azure client).
    AtService,
    /// In the dry run: its findings and its plan.
    InDryRun,
}

/// Two runbooks that differ only in one option (`a` with one value or without the option,
/// `b` with another).
struct Probe {
    primitive: &'static str,
    key: &'static str,
    a: &'static str,
    b: &'static str,
    seen: Seen,
}

const FAILOVER_THEN: &str = "wait_job(j, #{ timeout: \"1h\" });\n";

const PROBES: &[Probe] = &[
    // A parameter's options change its value, or how the plan lists it.
    Probe {
        primitive: "param",
        key: "type",
        a: "let n = param(\"n\", #{ \"default\": \"3\" }); note(type_of(n));",
        b: "let n = param(\"n\", #{ type: \"int\", \"default\": \"3\" }); note(type_of(n));",
        seen: Seen::InDryRun,
    },
    Probe {
        primitive: "param",
        key: "choices",
        a: "let s = param(\"s\", #{ choices: [\"a\", \"b\"], \"default\": \"a\" }); note(s);",
        b: "let s = param(\"s\", #{ choices: [\"a\", \"c\"], \"default\": \"a\" }); note(s);",
        seen: Seen::InDryRun,
    },
    Probe {
        primitive: "param",
        key: "default",
        a: "let s = param(\"s\", #{ \"default\": \"a\" }); note(s);",
        b: "let s = param(\"s\", #{ \"default\": \"b\" }); note(s);",
        seen: Seen::InDryRun,
    },
    Probe {
        primitive: "param",
        key: "help",
        a: "let s = param(\"s\", #{ \"default\": \"a\", help: \"one\" }); note(s);",
        b: "let s = param(\"s\", #{ \"default\": \"a\", help: \"two\" }); note(s);",
        seen: Seen::InDryRun,
    },
    Probe {
        primitive: "vms",
        key: "name",
        a: "note(`${vms(#{ name: \"web-*\" }).len()}`);",
        b: "note(`${vms(#{ name: \"app-*\" }).len()}`);",
        seen: Seen::InDryRun,
    },
    Probe {
        primitive: "vms",
        key: "plan",
        a: "note(`${vms(#{ plan: \"web-tier\" }).len()}`);",
        b: "note(`${vms(#{ plan: \"app-tier\" }).len()}`);",
        seen: Seen::InDryRun,
    },
    Probe {
        primitive: "failover",
        key: "kind",
        a: "let j = failover(\"sql-01\", #{ kind: \"planned\" });",
        b: "let j = failover(\"sql-01\", #{ kind: \"unplanned\", shutdown_source: true });",
        seen: Seen::AtService,
    },
    Probe {
        primitive: "failover",
        key: "direction",
        a: "let j = failover(\"crm-01\", #{ kind: \"planned\" });",
        b: "let j = failover(\"crm-01\", #{ kind: \"planned\", direction: \"recovery_to_primary\" });",
        seen: Seen::AtService,
    },
    Probe {
        primitive: "failover",
        key: "shutdown_source",
        a: "let j = failover(\"sql-01\", #{ kind: \"unplanned\", shutdown_source: false });",
        b: "let j = failover(\"sql-01\", #{ kind: \"unplanned\", shutdown_source: true });",
        seen: Seen::AtService,
    },
    Probe {
        primitive: "test_failover",
        key: "network",
        a: "let j = test_failover(\"web-01\");",
        b: "let j = test_failover(\"web-01\", #{ network: \"drill-net\" });",
        seen: Seen::AtService,
    },
    Probe {
        primitive: "cleanup_test_failover",
        key: "notes",
        a: "wait_job(test_failover(\"web-01\"), #{ timeout: \"1h\" });\nlet j = cleanup_test_failover(\"web-01\");",
        b: "wait_job(test_failover(\"web-01\"), #{ timeout: \"1h\" });\nlet j = cleanup_test_failover(\"web-01\", #{ notes: \"all good\" });",
        seen: Seen::AtService,
    },
    Probe {
        primitive: "failover_plan",
        key: "kind",
        a: "let j = failover_plan(\"web-tier\", #{ kind: \"planned\" });",
        b: "let j = failover_plan(\"web-tier\", #{ kind: \"unplanned\", shutdown_source: true });",
        seen: Seen::AtService,
    },
    Probe {
        primitive: "failover_plan",
        key: "direction",
        a: "try { failover_plan(\"web-tier\", #{ kind: \"planned\" }); } catch (e) { note(\"refused\"); }",
        b: "try { failover_plan(\"web-tier\", #{ kind: \"planned\", direction: \"recovery_to_primary\" }); } catch (e) { note(\"refused\"); }",
        seen: Seen::AtService,
    },
    Probe {
        primitive: "failover_plan",
        key: "shutdown_source",
        a: "let j = failover_plan(\"web-tier\", #{ kind: \"unplanned\", shutdown_source: false });",
        b: "let j = failover_plan(\"web-tier\", #{ kind: \"unplanned\", shutdown_source: true });",
        seen: Seen::AtService,
    },
    Probe {
        primitive: "test_failover_plan",
        key: "network",
        a: "let j = test_failover_plan(\"web-tier\");",
        b: "let j = test_failover_plan(\"web-tier\", #{ network: \"drill-net\" });",
        seen: Seen::AtService,
    },
    Probe {
        primitive: "test_failover_plan",
        key: "direction",
        a: "try { test_failover_plan(\"web-tier\"); } catch (e) { note(\"refused\"); }",
        b: "try { test_failover_plan(\"web-tier\", #{ direction: \"recovery_to_primary\" }); } catch (e) { note(\"refused\"); }",
        seen: Seen::AtService,
    },
    Probe {
        primitive: "cleanup_test_failover_plan",
        key: "notes",
        a: "wait_job(test_failover_plan(\"web-tier\"), #{ timeout: \"1h\" });\nlet j = cleanup_test_failover_plan(\"web-tier\");",
        b: "wait_job(test_failover_plan(\"web-tier\"), #{ timeout: \"1h\" });\nlet j = cleanup_test_failover_plan(\"web-tier\", #{ notes: \"all good\" });",
        seen: Seen::AtService,
    },
    Probe {
        primitive: "wait_job",
        key: "timeout",
        a: "wait_job(failover(\"sql-01\", #{ kind: \"planned\" }), #{ timeout: \"1m\" });",
        b: "wait_job(failover(\"sql-01\", #{ kind: \"planned\" }), #{ timeout: \"1h\" });",
        seen: Seen::InDryRun,
    },
    Probe {
        primitive: "wait_all",
        key: "timeout",
        a: "wait_all([failover(\"sql-01\", #{ kind: \"planned\" })], #{ timeout: \"1m\" });",
        b: "wait_all([failover(\"sql-01\", #{ kind: \"planned\" })], #{ timeout: \"1h\" });",
        seen: Seen::InDryRun,
    },
    Probe {
        primitive: "verify",
        key: "active_location",
        a: "verify(\"sql-01\", #{ active_location: \"primary\" });",
        b: "verify(\"sql-01\", #{ active_location: \"recovery\" });",
        seen: Seen::InDryRun,
    },
    Probe {
        primitive: "verify",
        key: "healthy",
        a: "verify(\"sql-01\", #{ healthy: true });",
        b: "verify(\"sql-01\", #{ healthy: false });",
        seen: Seen::InDryRun,
    },
    Probe {
        primitive: "verify",
        key: "replicating",
        a: "verify(\"sql-01\", #{ replicating: true });",
        b: "verify(\"sql-01\", #{ replicating: false });",
        seen: Seen::InDryRun,
    },
    Probe {
        primitive: "preflight",
        key: "vms",
        a: "note(`${preflight(#{ vms: [\"sql-01\"] }).problems}`);",
        b: "note(`${preflight(#{ vms: [\"fs-01\"] }).problems}`);",
        seen: Seen::InDryRun,
    },
    Probe {
        primitive: "preflight",
        key: "max_drill_age",
        a: "note(`${preflight(#{ vms: [\"sql-01\"], max_drill_age: \"365d\" }).problems}`);",
        b: "note(`${preflight(#{ vms: [\"sql-01\"], max_drill_age: \"1d\" }).problems}`);",
        seen: Seen::InDryRun,
    },
    Probe {
        primitive: "preflight",
        key: "sites",
        a: "note(`${preflight(#{ vms: [\"sql-01\"], sites: [\"recovery\"] }).checked}`);\nnote(`${preflight(#{ vms: [], sites: [\"recovery\"] })}`);",
        b: "note(`${preflight(#{ vms: [\"sql-01\"], sites: [\"primary\"] }).checked}`);\nnote(`${preflight(#{ vms: [], sites: [\"primary\"] })}`);",
        seen: Seen::InDryRun,
    },
    Probe {
        primitive: "manual_step",
        key: "instructions",
        a: "manual_step(\"Go\");",
        b: "manual_step(\"Go\", #{ instructions: \"Call the owners.\" });",
        seen: Seen::InDryRun,
    },
    Probe {
        primitive: "manual_step",
        key: "timeout",
        a: "manual_step(\"Go\", #{ timeout: \"5m\" });",
        b: "manual_step(\"Go\", #{ timeout: \"2h\" });",
        seen: Seen::InDryRun,
    },
];

#[test]
fn every_option_of_every_primitive_has_a_probe_and_every_refused_one_a_reason() {
    for prim in PRIMITIVES {
        for option in prim.options {
            assert!(
                PROBES
                    .iter()
                    .any(|p| p.primitive == prim.name && p.key == option.key),
                "option `{}` of `{}` has no probe: prove it reaches the service or changes the run",
                option.key,
                prim.name
            );
        }
        for refused in prim.refused {
            assert!(prim.option(refused.key).is_none());
            assert!(!refused.reason.is_empty() && !refused.instead.is_empty());
        }
    }
    for probe in PROBES {
        let prim = runbook::script::registry::find(probe.primitive).unwrap();
        assert!(
            prim.option(probe.key).is_some(),
            "a probe for `{}` of `{}`, which has no such option",
            probe.key,
            probe.primitive
        );
    }
}

fn inventory() -> Inventory {
    Inventory::load(&root().join("runbooks/inventory.toml")).unwrap()
}

/// What the service received for `text`, run through the azure client against the
/// simulator server over HTTP (keys aside: they are unique to each request).
fn at_service(text: &str) -> Vec<(String, OperationRequest)> {
    let clock: Arc<dyn Clock> = Arc::new(RealClock::new(100_000.0));
    let sim = Arc::new(Simulator::new(&inventory(), clock, false));
    let (addr, _server) = serve(
        sim.clone(),
        ServerOptions {
            token: "t".into(),
            speed: 100_000.0,
            ..ServerOptions::default()
        },
    );
    let target = TargetConfig {
        poll_min: "10ms".into(),
        ..TargetConfig::new("s", "g", "v", &format!("http://{addr}"))
    };
    let azure = Azure::new(&target, Credential::Static("t".into())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("probe.rhai"), text).unwrap();
    let opts = RunOptions::unattended(dir.path().join("probe.rhai"));
    let (outcome, _) = run_on(
        &opts,
        Venue::service(Arc::new(azure), "the probe".into()),
        false,
    )
    .expect("the probe runs");
    assert!(outcome.failure.is_none(), "{text}: {:?}", outcome.failure);
    sim.received()
        .into_iter()
        .map(|(vm, r)| (vm, OperationRequest { key: None, ..r }))
        .collect()
}

/// The dry run of `text`: its findings and its plan, as JSON.
fn in_dry_run(text: &str) -> String {
    match plan_text("probe.rhai", text, None, Some(&inventory())) {
        Outcome::Planned(plan) => render::json(&plan),
        Outcome::Rejected(report) => format!("{:?}", report.findings),
    }
}

#[test]
fn every_option_reaches_the_service_or_changes_the_dry_run() {
    for probe in PROBES {
        let what = format!("option `{}` of `{}`", probe.key, probe.primitive);
        let (a, b) = (
            format!("{}\n{}", probe.a, tail(probe)),
            format!("{}\n{}", probe.b, tail(probe)),
        );
        match probe.seen {
            Seen::AtService => {
                let (ra, rb) = (at_service(&a), at_service(&b));
                assert!(
                    !ra.is_empty() || !rb.is_empty(),
                    "{what}: nothing reached the service"
                );
                assert_ne!(ra, rb, "{what} did not reach the service: {ra:?}");
            }
            Seen::InDryRun => {
                let (da, db) = (in_dry_run(&a), in_dry_run(&b));
                assert_ne!(da, db, "{what} changed nothing in the dry run: {da}");
            }
        }
    }
}

/// What follows a probe's call: a wait for the job it started, if it started one.
fn tail(probe: &Probe) -> &'static str {
    if probe.a.contains("let j =") {
        FAILOVER_THEN
    } else {
        ""
    }
}
