//! The registry is the single source of truth: the README's API table and the stdlib agree
//! with it.

use crate::common::root;
use runbook::check::check_text;
use runbook::diagnostics::summary_line;
use runbook::script::{registry, stdlib};

#[test]
fn the_readme_api_table_is_generated_from_the_registry() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("<!-- api:start -->\n")
        .expect("README has <!-- api:start -->")
        + "<!-- api:start -->\n".len();
    let end = readme
        .find("<!-- api:end -->")
        .expect("README has <!-- api:end -->");
    assert_eq!(
        &readme[start..end],
        registry::markdown_table(),
        "the README's API table differs from `runbook api`: paste its output between the markers"
    );
}

#[test]
fn every_stdlib_module_checks_clean_and_is_used_by_an_example() {
    let examples: String = std::fs::read_dir(root().join("runbooks"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect();
    for (name, text) in stdlib::MODULES {
        let report = check_text(&format!("stdlib/{name}.rhai"), text, None, None);
        let lines: Vec<String> = report.findings.iter().map(summary_line).collect();
        assert!(lines.is_empty(), "stdlib/{name}: {lines:#?}");
        let on_disk = std::fs::read_to_string(root().join(format!("stdlib/{name}.rhai"))).unwrap();
        assert_eq!(&on_disk, text, "the embedded module is the file");
        assert!(
            examples.contains(&format!("\"runbook/{name}\"")),
            "no example runbook imports runbook/{name}"
        );
    }
}

#[test]
fn every_primitive_is_implemented() {
    // A runbook that calls each primitive once in an order the simulator accepts.
    let text = r#"
        let web = vm("web-01");
        let all = vms(#{ name: "web-*" });
        let s = status(web);
        let p = preflight(#{ vms: all, max_drill_age: "30d" });
        note("start");
        manual_step("check", #{ instructions: "look", timeout: "5m" });
        let d = test_failover(web, #{ network: "iso" });
        wait_job(d, #{ timeout: "1h" });
        wait_all([cleanup_test_failover(web, #{ notes: "ok" })], #{ timeout: "1h" });
        let f = failover(web, #{ kind: "planned" });
        wait_job(f, #{ timeout: "1h" });
        verify(web, #{ active_location: "recovery", healthy: true });
        wait_job(commit(web), #{ timeout: "1h" });
        let r = reverse_replicate(web);
        let c = cancel(r);
        wait_job(reverse_replicate(web), #{ timeout: "1h" });
    "#;
    let inv = runbook::backend::inventory::Inventory::parse(
        "[[items]]\nname = \"web-01\"\nlast_test_failover = \"2026-11-20T00:00:00Z\"\n",
        "test",
    )
    .unwrap();
    let report = check_text("all.rhai", text, None, Some(&inv));
    let called: Vec<&str> = registry::PRIMITIVES
        .iter()
        .map(|p| p.name)
        .filter(|n| !text.contains(&format!("{n}(")))
        .collect();
    assert!(called.is_empty(), "not called: {called:?}");
    let lines: Vec<String> = report.findings.iter().map(summary_line).collect();
    assert!(lines.is_empty(), "{lines:#?}");
    assert!(report.dry_run.unwrap().completed);
}

#[test]
fn job_handles_show_the_latest_state_and_own_functions_win_over_primitives() {
    let text = r#"
        fn status(vm, verbose) { if verbose { note("status of " + vm) } 1 }
        let web = vm("web-01");
        let f = failover(web, #{ kind: "planned" });
        let copy = f;
        wait_job(f, #{ timeout: "1h" });
        if copy.state != "Succeeded" || f.ended == () {
            throw `the handle is stale: ${copy.state}`;
        }
        status("web-01", true);
        verify(web, #{ active_location: "recovery", healthy: true });
        wait_job(commit(web), #{ timeout: "1h" });
        wait_job(reverse_replicate(web), #{ timeout: "1h" });
    "#;
    let inv =
        runbook::backend::inventory::Inventory::parse("[[items]]\nname = \"web-01\"\n", "test")
            .unwrap();
    let report = check_text("handles.rhai", text, None, Some(&inv));
    let lines: Vec<String> = report.findings.iter().map(summary_line).collect();
    assert!(lines.is_empty(), "{lines:#?}");
    assert!(report.dry_run.unwrap().completed);
}
