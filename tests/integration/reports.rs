//! The audit report of a fixed simulated run (the site failover on the example inventory,
//! on a virtual clock): snapshots of its markdown and JSON forms.

use crate::common::root;
use runbook::backend::inventory::Inventory;
use runbook::journal;
use runbook::report::{self, Audit};
use runbook::run::{run_on, RunOptions, Venue};

/// Runs the site failover in a temporary project and returns its audit record, with the
/// fields that differ between runs (id, operator, wall clock, folder) fixed.
fn audit_of_the_site_failover() -> Audit {
    let dir = tempfile::tempdir().unwrap();
    for file in ["site-failover.rhai", "inventory.toml"] {
        std::fs::copy(root().join("runbooks").join(file), dir.path().join(file)).unwrap();
    }
    let inventory = Inventory::load(&dir.path().join("inventory.toml")).unwrap();
    let opts = RunOptions {
        journal: true,
        ..RunOptions::unattended(dir.path().join("site-failover.rhai"))
    };
    let (outcome, _) = run_on(&opts, Venue::simulator_virtual(inventory), false).unwrap();
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    let run = outcome.run.expect("the run kept a journal");
    let loaded = journal::load(&run.dir.join(journal::FILE)).unwrap();
    let mut audit = Audit::of(&run.id, &loaded).unwrap();
    audit.run = "RUN-ID".into();
    audit.operator = "operator@host".into();
    audit.started = "2026-11-26T00:00:00Z".into();
    audit.runbook = "site-failover.rhai".into();
    let folder = format!("{}/", dir.path().display());
    for op in &mut audit.operations {
        op.line = op.line.take().map(|l| l.replace(&folder, ""));
    }
    audit
}

#[test]
fn the_report_of_a_fixed_run_in_markdown_and_json() {
    let audit = audit_of_the_site_failover();
    assert_eq!(audit.state, "succeeded");
    // 6 VMs: failover, commit and reverse replication each.
    assert_eq!(audit.operations.len(), 18, "{:#?}", audit.operations);
    assert!(audit.operations.iter().all(|o| o.state == "Succeeded"));
    assert!(audit.recovery_time_seconds.is_some());
    assert_eq!(audit.approvals.len(), 1);
    let markdown = report::markdown(&audit);
    assert!(markdown.contains("```mermaid\ngantt"), "{markdown}");
    insta::assert_snapshot!("report_markdown", markdown);
    let json = report::json(&audit);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["operations"].as_array().unwrap().len(), 18);
    insta::assert_snapshot!("report_json", json);
}

#[test]
fn the_recovery_time_runs_until_every_failed_over_vm_was_verified() {
    let audit = audit_of_the_site_failover();
    let first = audit.operations.iter().map(|o| o.start).min().unwrap();
    // The web tier is failed over last; its VMs are verified when their failovers end.
    let web_failed_over = audit
        .operations
        .iter()
        .filter(|o| o.vm.starts_with("web-") && o.operation == "planned failover")
        .map(|o| o.end.unwrap())
        .max()
        .unwrap();
    assert_eq!(audit.recovery_time_seconds, Some(web_failed_over - first));
    let last_verification = audit.verifications.iter().map(|v| v.at).max().unwrap();
    assert!(
        web_failed_over < last_verification,
        "the verifications after reverse replication do not count"
    );
    // Operations in one lane never overlap.
    for a in &audit.operations {
        for b in &audit.operations {
            if std::ptr::eq(a, b) || a.lane != b.lane {
                continue;
            }
            let (a_end, b_end) = (a.end.unwrap(), b.end.unwrap());
            assert!(a_end <= b.start || b_end <= a.start, "{a:?} overlaps {b:?}");
        }
    }
}
