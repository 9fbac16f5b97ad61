//! The audit report of a fixed simulated run (the site failover on the example inventory,
//! on a virtual clock): snapshots of its markdown and JSON forms.

use crate::common::root;
use runbook::backend::inventory::Inventory;
use runbook::journal;
use runbook::report::{self, Audit};
use runbook::run::{run_on, RunOptions, Venue};

/// Runs the site failover in a temporary project and returns its audit record, with the
/// fields that differ between runs (id, operator, wall clock, folder) fixed.
pub(crate) fn audit_of_the_site_failover() -> Audit {
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
    for step in &mut audit.approvals {
        assert!(step.answered_wall.is_some() && step.waited_real_seconds.is_some());
        step.answered_wall = Some("2026-11-26T00:00:00Z".into());
        step.waited_real_seconds = Some(0);
    }
    let folder = format!("{}/", dir.path().display());
    for op in &mut audit.operations {
        if let Some(place) = op.location.as_mut() {
            place.file = place.file.replace(&folder, "");
        }
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
        .filter(|o| o.vm.starts_with("web-") && o.operation == "planned_failover")
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

/// The JSON form says its format, places are objects, states are in the script's words with
/// the service's beside them, and a manual step names both of its clocks.
#[test]
fn the_json_report_is_versioned_with_places_and_states_in_the_scripts_words() {
    let audit = audit_of_the_site_failover();
    let v: serde_json::Value = serde_json::from_str(&report::json(&audit)).unwrap();
    assert_eq!(v["format"], report::JSON_FORMAT);
    assert_eq!(report::JSON_FORMAT, "runbook-report/1");
    let op = &v["operations"][0];
    assert_eq!(op["operation"], "planned_failover");
    assert_eq!(op["location"]["file"], "site-failover.rhai");
    assert!(op["location"]["line"].as_u64().is_some_and(|l| l > 1));
    assert!(op["location"]["column"].as_u64().is_some_and(|c| c >= 1));
    let sql = v["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|vm| vm["vm"] == "sql-01")
        .unwrap();
    let states: Vec<(&str, &str)> = sql["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["state"].as_str().unwrap(),
                s["service_state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("protected", "Protected"),
            ("failover_commit_pending", "PlannedFailoverCommitRequired"),
            ("failover_committed", "PlannedFailoverCommitted"),
            ("protected", "Protected"),
        ]
    );
    let step = &v["approvals"][0];
    assert_eq!(step["at"], 0, "on the run's clock");
    assert_eq!(step["timeout_real_seconds"], 1800);
    assert!(step["answered_wall"].is_string() && step["waited_real_seconds"].is_u64());
    // The plan's vocabulary is the same.
    let plan = crate::common::cli(&["plan", "--format", "json", "runbooks/site-failover.rhai"]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["operations"][0]["operation"], op["operation"]);
    assert_eq!(plan["operations"][0]["after"]["state"], states[1].0);
}

/// The HTML chart has a time axis, and every label in full beside its bar (a 46-second
/// commit's bar is too narrow for "commit", which used to show as "co…").
#[test]
fn the_html_chart_has_a_time_axis_and_every_label_in_full() {
    let audit = audit_of_the_site_failover();
    let html = report::html(&audit);
    for o in &audit.operations {
        let label = format!(">{} {}</span>", o.operation, o.vm);
        assert!(html.contains(&label), "{label} in full");
    }
    let ticks: Vec<&str> = html
        .split("<span class=\"tick\"")
        .skip(1)
        .map(|t| t.split('>').nth(1).unwrap().trim_end_matches("</span"))
        .collect();
    assert_eq!(ticks.first(), Some(&"T+0:00:00"), "{ticks:?}");
    assert!(ticks.len() >= 4 && ticks.len() <= 11, "{ticks:?}");
    assert!(
        ticks.contains(&"T+0:10:00") && ticks.contains(&"T+0:40:00"),
        "{ticks:?}"
    );
    assert!(!html.contains("overflow:hidden"), "no label is clipped");
}

/// What a runbook wrote (a step's title, a note, a VM's name in the chart) is text in the
/// markdown report: no HTML of its own reaches the page or the chart.
#[test]
fn the_markdown_report_shows_the_runbooks_words_as_text() {
    let mut audit = audit_of_the_site_failover();
    let hostile = "<img src=x onerror=alert(1)> & <b>bold</b> | cell";
    audit.approvals[0].title = hostile.into();
    if let Some(note) = audit.notes.first_mut() {
        note.text = hostile.into();
    }
    audit.operations[0].vm = hostile.into();
    let markdown = report::markdown(&audit);
    assert!(!markdown.contains("<img"), "{markdown}");
    assert!(!markdown.contains("<b>"), "{markdown}");
    assert!(
        markdown.contains("&lt;img src=x onerror=alert(1)&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"),
        "{markdown}"
    );
}
