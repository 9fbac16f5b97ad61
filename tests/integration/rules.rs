//! The domain rules at the strength Azure's guidance gives them, as the dry run applies them:
//! margins on waits, verifications that count before a commit, data loss that could be
//! avoided, options the service cannot take, sites that come back, preflight during an
//! outage, failures inside callbacks, and re-runs that converge.

use crate::common::root;
use runbook::backend::inventory::Inventory;
use runbook::check::{check_text, Report};
use runbook::diagnostics::{Code, Severity};
use runbook::run::{simulate, RunOptions};

const ESTATE: &str = r#"start = "2026-11-26T02:00:00Z"
[durations]
planned_failover = "8m"
[[items]]
name = "web-01"
last_test_failover = "2026-11-20T21:00:00Z"
[[items]]
name = "web-02"
last_test_failover = "2026-11-20T21:00:00Z"
"#;

fn estate(extra: &str) -> Inventory {
    Inventory::parse(&format!("{ESTATE}{extra}"), "test estate").expect("the estate parses")
}

fn check(text: &str, inventory: &Inventory) -> Report {
    check_text("t.rhai", text, None, Some(inventory))
}

/// The findings of `code`, with their severity and message.
fn of(report: &Report, code: Code) -> Vec<(Severity, String)> {
    report
        .findings
        .iter()
        .filter(|f| f.code == code)
        .map(|f| (f.severity, f.message.clone()))
        .collect()
}

fn failover_and_wait(timeout: &str) -> String {
    format!(
        "let j = failover(\"web-01\", #{{ kind: \"planned\" }});\nwait_job(j, #{{ timeout: \"{timeout}\" }});\nverify(\"web-01\", #{{ active_location: \"recovery\" }});\nwait_job(commit(\"web-01\"), #{{ timeout: \"10m\" }});\nwait_job(reverse_replicate(\"web-01\"), #{{ timeout: \"1h\" }});\n"
    )
}

#[test]
fn a_wait_needs_half_the_jobs_duration_to_spare() {
    // The planned failover takes 8m: 5m times out (an error), 10m has too little margin
    // (a warning), 12m is 1.5 times (clean).
    let inv = estate("");
    let short = check(&failover_and_wait("5m"), &inv);
    assert_eq!(of(&short, Code::WaitTooShort).len(), 1);
    assert_eq!(of(&short, Code::WaitTooShort)[0].0, Severity::Error);
    let tight = of(&check(&failover_and_wait("10m"), &inv), Code::WaitTooShort);
    assert_eq!(tight.len(), 1, "{tight:?}");
    assert_eq!(tight[0].0, Severity::Warning);
    assert!(tight[0].1.contains("less than 1.5 times"), "{tight:?}");
    let enough = check(&failover_and_wait("12m"), &inv);
    assert!(
        of(&enough, Code::WaitTooShort).is_empty(),
        "{:?}",
        enough.findings
    );
    assert!(!enough.fails(true), "{:?}", enough.findings);
}

#[test]
fn only_a_verification_of_the_site_counts_before_a_commit() {
    let inv = estate("");
    let health_only = "wait_job(failover(\"web-01\", #{ kind: \"planned\" }), #{ timeout: \"1h\" });\nverify(\"web-01\", #{ healthy: true });\nwait_job(commit(\"web-01\"), #{ timeout: \"10m\" });\nwait_job(reverse_replicate(\"web-01\"), #{ timeout: \"1h\" });\n";
    assert_eq!(
        of(&check(health_only, &inv), Code::CommitWithoutVerify).len(),
        1
    );
    let site = health_only.replace("#{ healthy: true }", "#{ active_location: \"recovery\" }");
    assert!(of(&check(&site, &inv), Code::CommitWithoutVerify).is_empty());
}

#[test]
fn left_without_replication_is_a_warning_that_names_the_consequence() {
    let inv = estate("");
    let committed = "wait_job(failover(\"web-01\", #{ kind: \"planned\" }), #{ timeout: \"1h\" });\nverify(\"web-01\", #{ active_location: \"recovery\" });\nwait_job(commit(\"web-01\"), #{ timeout: \"10m\" });\n";
    let report = check(committed, &inv);
    let found = of(&report, Code::LeftUnprotected);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, Severity::Warning);
    assert!(!report.fails(false) && report.fails(true));
    let never_committed =
        "wait_job(failover(\"web-01\", #{ kind: \"planned\" }), #{ timeout: \"1h\" });\n";
    let found = of(&check(never_committed, &inv), Code::LeftUnprotected);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, Severity::Warning);
    assert!(
        found[0].1.contains("was failed over but never committed"),
        "{found:?}"
    );
}

#[test]
fn an_unplanned_failover_while_the_source_answers_is_avoidable_data_loss() {
    let failover = |opts: &str| {
        format!("let j = failover(\"web-01\", #{{ {opts} }});\nwait_job(j, #{{ timeout: \"1h\" }});\nverify(\"web-01\", #{{ active_location: \"recovery\" }});\nwait_job(commit(\"web-01\"), #{{ timeout: \"10m\" }});\nwait_job(reverse_replicate(\"web-01\"), #{{ timeout: \"1h\" }});\n")
    };
    let connected = estate("");
    let down = estate("[sites.primary]\nconnected = false\n");
    let unplanned = failover("kind: \"unplanned\"");
    assert_eq!(
        of(&check(&unplanned, &connected), Code::AvoidableDataLoss).len(),
        1
    );
    // During an outage it is the only way, and with a shutdown first nothing is lost.
    assert!(of(&check(&unplanned, &down), Code::AvoidableDataLoss).is_empty());
    let shutdown = failover("kind: \"unplanned\", shutdown_source: true");
    assert!(of(&check(&shutdown, &connected), Code::AvoidableDataLoss).is_empty());
    assert!(of(
        &check(&failover("kind: \"planned\""), &connected),
        Code::AvoidableDataLoss
    )
    .is_empty());
}

#[test]
fn a_recovery_point_is_refused_with_its_reason_not_dropped() {
    let inv = estate("");
    // Static (a literal map) and at run time (a map the script builds).
    for text in [
        "failover(\"web-01\", #{ kind: \"unplanned\", recovery_point: \"latest\" });\n",
        "let o = #{ kind: \"unplanned\" };\no.recovery_point = \"latest\";\nfailover(\"web-01\", o);\n",
        "test_failover(\"web-01\", #{ recovery_point: \"latest\" });\n",
        "let o = #{};\no.recovery_point = \"latest\";\ntest_failover(\"web-01\", o);\n",
    ] {
        let report = check(text, &inv);
        let found = of(&report, Code::InvalidOption);
        assert_eq!(found.len(), 1, "{text}: {:?}", report.findings);
        assert!(
            found[0].1.contains("`recovery_point`")
                && found[0].1.contains("is not supported")
                && found[0].1.contains("Hyper-V between two VMM sites"),
            "{text}: {found:?}"
        );
    }
}

#[test]
fn preflight_checks_the_sites_it_is_given_and_operations_in_progress() {
    let down = estate("[sites.primary]\nconnected = false\n");
    let ask = |opts: &str| {
        format!("let p = preflight(#{{ vms: [\"web-01\"]{opts} }});\nif !p.ok {{ throw `not ready: ${{p.problems}}`; }}\n")
    };
    // The primary site is down: a full preflight fails, one of the recovery site passes.
    assert_eq!(of(&check(&ask(""), &down), Code::ScriptError).len(), 1);
    let recovery_only = check(&ask(", sites: [\"recovery\"]"), &down);
    assert!(
        recovery_only.findings.is_empty(),
        "{:?}",
        recovery_only.findings
    );
    // A job running on a VM makes it not ready.
    let busy = "let j = failover(\"web-01\", #{ kind: \"planned\" });\nlet p = preflight(#{ vms: [\"web-01\"] });\nif p.ok { throw \"ready while a failover runs\"; }\nif !p.problems.some(|x| x.contains(\"operation in progress\")) { throw `${p.problems}`; }\nwait_job(j, #{ timeout: \"1h\" });\nverify(\"web-01\", #{ active_location: \"recovery\" });\nwait_job(commit(\"web-01\"), #{ timeout: \"10m\" });\nwait_job(reverse_replicate(\"web-01\"), #{ timeout: \"1h\" });\n";
    let report = check(busy, &estate(""));
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    // A site name that does not exist is refused.
    let bad = check(&ask(", sites: [\"dr\"]"), &down);
    assert_eq!(of(&bad, Code::InvalidOption).len(), 1, "{:?}", bad.findings);
    // No site at all would check nothing: refused too.
    let none = check(&ask(", sites: []"), &down);
    let found = of(&none, Code::InvalidOption);
    assert_eq!(found.len(), 1, "{:?}", none.findings);
    assert!(
        format!("{:?}", none.findings).contains("an empty array"),
        "{:?}",
        none.findings
    );
}

#[test]
fn a_verification_failing_inside_a_sort_comparator_still_stops_the_run() {
    let inv = estate("");
    // Rhai's own sort drops a comparator's error: the failed verification would vanish.
    let sort = "let vms = [vm(\"web-01\"), vm(\"web-02\")];\nvms.sort(|a, b| { verify(a, #{ active_location: \"recovery\" }); 0 });\nnote(\"went on\");\n";
    let report = check(sort, &inv);
    assert_eq!(
        of(&report, Code::VerifyFailed).len(),
        1,
        "{:?}",
        report.findings
    );
    let dedup = "let vms = [vm(\"web-01\"), vm(\"web-01\")];\nvms.dedup(|a, b| { verify(a, #{ active_location: \"recovery\" }); true });\n";
    assert_eq!(of(&check(dedup, &inv), Code::VerifyFailed).len(), 1);
    // The comparator named by a string: the same.
    let by_name = "fn by_site(a, b) { verify(a, #{ active_location: \"recovery\" }); 0 }\nlet vms = [vm(\"web-01\"), vm(\"web-02\")];\nvms.sort(\"by_site\");\nnote(\"went on\");\n";
    assert_eq!(of(&check(by_name, &inv), Code::VerifyFailed).len(), 1);
    let dedup_by_name = "fn same(a, b) { verify(a, #{ active_location: \"recovery\" }); true }\nlet vms = [vm(\"web-01\"), vm(\"web-01\")];\nvms.dedup(\"same\");\n";
    assert_eq!(of(&check(dedup_by_name, &inv), Code::VerifyFailed).len(), 1);
    // Caught around the sort, it is handled like any other failure.
    let caught =
        format!("try {{\n{sort}}} catch (e) {{\n    note(`not yet: ${{e.message}}`);\n}}\n");
    assert!(check(&caught, &inv).findings.is_empty());
    // Sorting itself still works.
    let plain = "let a = [3, 1, 2];\na.sort(|x, y| x - y);\nif a != [1, 2, 3] { throw `${a}`; }\na.sort(|x, y| x > y);\nif a != [3, 2, 1] { throw `${a}`; }\nlet d = [1, 1, 2];\nd.dedup(|x, y| x == y);\nif d != [1, 2] { throw `${d}`; }\nfn up(x, y) { x - y }\nlet n = [3, 1, 2];\nn.sort(\"up\");\nif n != [1, 2, 3] { throw `${n}`; }\n";
    let report = check(plain, &inv);
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

#[test]
fn a_site_that_comes_back_at_a_step_or_after_a_time_lets_an_outage_runbook_protect_its_vms() {
    let protect = "wait_job(failover(\"web-01\", #{ kind: \"unplanned\", shutdown_source: true }), #{ timeout: \"1h\" });\nverify(\"web-01\", #{ active_location: \"recovery\" });\nwait_job(commit(\"web-01\"), #{ timeout: \"10m\" });\nmanual_step(\"Primary site back\");\nwait_job(reverse_replicate(\"web-01\"), #{ timeout: \"1h\" });\n";
    let stays_down = estate("[sites.primary]\nconnected = false\n");
    assert_eq!(of(&check(protect, &stays_down), Code::JobFailed).len(), 1);
    for back in [
        "reconnects_at = \"Primary site back\"",
        "reconnects_after = \"5m\"",
    ] {
        let inv = estate(&format!("[sites.primary]\nconnected = false\n{back}\n"));
        let report = check(protect, &inv);
        assert_eq!(
            report.count(Severity::Error),
            0,
            "{back}: {:?}",
            report.findings
        );
    }
    // At a step with another title, or too late, it is still down.
    let other = estate("[sites.primary]\nconnected = false\nreconnects_at = \"Something else\"\n");
    assert_eq!(of(&check(protect, &other), Code::JobFailed).len(), 1);
    let late = estate("[sites.primary]\nconnected = false\nreconnects_after = \"10h\"\n");
    assert_eq!(of(&check(protect, &late), Code::JobFailed).len(), 1);
    // Both, or a site that never went away, are refused where they are written.
    for bad in [
        "[sites.primary]\nconnected = false\nreconnects_at = \"x\"\nreconnects_after = \"1h\"\n",
        "[sites.primary]\nreconnects_at = \"x\"\n",
    ] {
        let err = Inventory::parse(&format!("{ESTATE}{bad}"), "bad").unwrap_err();
        assert!(err.to_string().contains("reconnect"), "{err}");
    }
}

#[test]
fn the_outage_runbook_rehearses_clean_against_an_outage() {
    let path = root().join("runbooks/outage-unplanned-failover.rhai");
    let outage = Inventory::load(&root().join("runbooks/outage.toml")).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let report = check_text(
        "runbooks/outage-unplanned-failover.rhai",
        &text,
        Some(&root().join("runbooks")),
        Some(&outage),
    );
    assert_eq!(report.count(Severity::Error), 0, "{:?}", report.findings);
    // Every warning is the data loss an outage costs, nothing left unprotected.
    assert!(
        report.findings.iter().all(|f| f.code == Code::JobWarning),
        "{:?}",
        report.findings
    );
    let (outcome, _) = simulate(
        &RunOptions {
            inventory: Some(root().join("runbooks/outage.toml")),
            speed: Some(1_000_000.0),
            ..RunOptions::unattended(&path)
        },
        false,
    )
    .unwrap();
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    assert!(!outcome.items.is_empty());
    for item in &outcome.items {
        assert!(
            item.replicating,
            "{} does not replicate: {item:?}",
            item.name
        );
        assert_eq!(item.active_location.as_str(), "recovery");
    }
}

#[test]
fn a_re_run_against_an_estate_already_failed_over_skips_and_converges() {
    // The example estate after the site failover ran: every VM protected on the recovery
    // site. The plan of the same runbook issues nothing and fails nothing back.
    let text = std::fs::read_to_string(root().join("runbooks/site-failover.rhai")).unwrap();
    let mut after = String::from("start = \"2026-11-26T02:00:00Z\"\n[plans]\nweb-tier = [\"web-01\", \"web-02\", \"web-03\"]\napp-tier = [\"app-01\", \"app-02\"]\n");
    for vm in ["sql-01", "app-01", "app-02", "web-01", "web-02", "web-03"] {
        after.push_str(&format!("[[items]]\nname = \"{vm}\"\nactive_location = \"recovery\"\nlast_test_failover = \"2026-11-20T21:00:00Z\"\n"));
    }
    let inv = Inventory::parse(&after, "after the failover").unwrap();
    let plan = match runbook::plan::plan_text(
        "runbooks/site-failover.rhai",
        &text,
        Some(&root().join("runbooks")),
        Some(&inv),
    ) {
        runbook::plan::Outcome::Planned(plan) => plan,
        runbook::plan::Outcome::Rejected(report) => panic!("{:?}", report.findings),
    };
    let report = check_text(
        "runbooks/site-failover.rhai",
        &text,
        Some(&root().join("runbooks")),
        Some(&inv),
    );
    let dry = report.dry_run.expect("a dry run");
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!((dry.jobs, dry.skipped), (18, 18));
    assert_eq!(plan.operations.len(), 18);
    assert!(
        plan.operations.iter().all(|s| s.result == "Skipped"),
        "{:?}",
        plan.operations
    );
    assert!(plan.findings.is_empty(), "{:?}", plan.findings);
}

#[test]
fn a_plans_commit_wants_each_member_verified_since_its_failover() {
    let inv = estate("[plans]\nweb = [\"web-01\", \"web-02\"]\n");
    let run = |verify: &str| {
        format!("wait_job(failover_plan(\"web\", #{{ kind: \"planned\" }}), #{{ timeout: \"1h\" }});\n{verify}wait_job(commit_plan(\"web\"), #{{ timeout: \"1h\" }});\nwait_job(reverse_replicate_plan(\"web\"), #{{ timeout: \"1h\" }});\n")
    };
    let none = check(&run(""), &inv);
    let found = of(&none, Code::CommitWithoutVerify);
    assert_eq!(found.len(), 1, "{:?}", none.findings);
    assert_eq!(found[0].0, Severity::Warning);
    assert!(
        found[0]
            .1
            .contains("2 of its VMs on their site: web-01, web-02"),
        "{found:?}"
    );
    let one = check(
        &run("verify(\"web-01\", #{ active_location: \"recovery\" });\n"),
        &inv,
    );
    let found = of(&one, Code::CommitWithoutVerify);
    assert!(
        found.len() == 1 && found[0].1.contains(": web-02"),
        "{found:?}"
    );
    let both = check(
        &run("for vm in [\"web-01\", \"web-02\"] { verify(vm, #{ active_location: \"recovery\" }); }\n"),
        &inv,
    );
    assert!(both.findings.is_empty(), "{:?}", both.findings);
}
