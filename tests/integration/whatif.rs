//! `runbook check --what-if`: a runbook that does not handle a failure is reported at the
//! failing operation; the stdlib's drill and a runbook that catches its failures pass.

use crate::common::{cli, root, text};
use serde_json::Value;

const FIXTURES: &str = "tests/fixtures/inventory.toml";

/// The example estate, and the example planned failover as it was before it handled its
/// failures.
const EXAMPLES: &str = "runbooks/inventory.toml";
const UNHANDLED: &str = "tests/fixtures/whatif/unhandled.rhai";

/// Runs `runbook check --what-if ARGS`, expecting `code`; returns standard output.
fn what_if(args: &[&str], code: i32) -> String {
    let mut all = vec!["check", "--what-if"];
    all.extend(args);
    let out = cli(&all);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(code), "{all:?}\n{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stdout
}

/// The JSON entry of the one runbook checked.
fn json(args: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend(args);
    let v: Value = serde_json::from_str(&what_if(&all, 0)).expect("the JSON parses");
    v["files"][0].clone()
}

/// The 1-based line of the first line of `path` that contains `needle`.
fn line_of(path: &str, needle: &str) -> usize {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` in {path}"))
        + 1
}

#[test]
fn a_runbook_without_failure_handling_is_reported_at_each_failing_operation() {
    let path = UNHANDLED;
    let out = what_if(&["--inventory", EXAMPLES, "--format", "short", path], 0);
    for (needle, op) in [
        ("failover(vm, #{ kind: \"planned\" })", "planned_failover"),
        ("commit(vm)", "commit"),
        ("reverse_replicate(vm)", "reverse_replicate"),
    ] {
        let at = format!("{path}:{}:", line_of(path, needle));
        let line = out
            .lines()
            .find(|l| l.starts_with(&at) && l.contains("warning[RB117]"))
            .unwrap_or_else(|| panic!("RB117 at {at}\n{out}"));
        assert!(
            line.contains(&format!("the {op} of `app-01` fails")),
            "{line}"
        );
    }
    // Warnings: the check passes unless warnings are denied.
    what_if(
        &[
            "--inventory",
            EXAMPLES,
            "--deny-warnings",
            "--format",
            "short",
            path,
        ],
        1,
    );
    let v = json(&["--inventory", EXAMPLES, path]);
    let scenarios = v["what_if"]["scenarios"].as_array().unwrap();
    assert_eq!(
        scenarios.len(),
        4,
        "three operations and the unreachable primary site"
    );
    assert_eq!(scenarios[1]["handled"], false);
    assert_eq!(scenarios[1]["unsafe"][0]["vm"], "app-01");
    assert_eq!(
        scenarios[1]["unsafe"][0]["state"],
        "failover_commit_pending"
    );
    assert_eq!(scenarios[1]["error"]["code"], "RB111");
    // With the primary site down, its preflight stops the runbook before any operation.
    assert_eq!(scenarios[3]["scenario"], "primary_unreachable");
    assert_eq!(scenarios[3]["handled"], true);
    assert_eq!(scenarios[3]["ending"], "stopped_by_runbook");
    assert_eq!(scenarios[3]["first_failed"], Value::Null);
}

#[test]
fn the_human_form_lists_one_line_per_scenario() {
    let out = what_if(&["--inventory", EXAMPLES, UNHANDLED], 0);
    let lines: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("what-if: "))
        .collect();
    assert!(lines[0].starts_with("what-if: 4 scenarios"), "{out}");
    assert!(lines[0].ends_with("1 pass"), "{out}");
    let commit = lines
        .iter()
        .find(|l| l.contains("#2 commit app-01"))
        .unwrap();
    assert!(
        commit.contains("line 16")
            && commit.contains("handled: no")
            && commit.contains("app-01 failed over but never committed"),
        "{commit}"
    );
    let site = lines
        .iter()
        .find(|l| l.trim_start().starts_with("primary site unreachable"))
        .unwrap();
    assert!(
        site.contains("handled: yes") && site.contains("unsafe: none"),
        "{site}"
    );
}

#[test]
fn the_stdlib_drill_passes_every_scenario() {
    let v = json(&["runbooks/dr-drill.rhai"]);
    assert_eq!(v["findings"].as_array().unwrap().len(), 0, "{v:#}");
    let scenarios = v["what_if"]["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 7, "three drills, three cleanups, the site");
    for s in scenarios {
        assert_eq!(s["passes"], true, "{s:#}");
    }
    // A failed test failover is cleaned up and then reported by the drill itself.
    assert_eq!(scenarios[0]["operation"], "test_failover");
    assert_eq!(scenarios[0]["ending"], "stopped_by_runbook");
    // A failed cleanup is cleaned up again, and the drill completes.
    assert_eq!(scenarios[3]["operation"], "test_failover_cleanup");
    assert_eq!(scenarios[3]["ending"], "completed");
    assert_eq!(v["what_if"]["failed"], 0);
}

#[test]
fn a_runbook_that_catches_its_failures_passes() {
    let path = "tests/fixtures/whatif/handled.rhai";
    let v = json(&["--inventory", FIXTURES, path]);
    assert_eq!(v["findings"].as_array().unwrap().len(), 0, "{v:#}");
    let scenarios = v["what_if"]["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 4);
    assert!(scenarios
        .iter()
        .all(|s| s["passes"] == true && s["ending"] == "completed"));
    // The same runbook without its handling is reported: the check can fail.
    let bare = what_if(
        &[
            "--inventory",
            FIXTURES,
            "--format",
            "short",
            "tests/fixtures/RB117-unhandled-failure.rhai",
        ],
        0,
    );
    assert!(bare.contains("warning[RB117]"), "{bare}");
}

#[test]
fn failures_at_the_same_line_make_one_finding_that_names_the_others() {
    let path = "tests/fixtures/whatif/loop.rhai";
    let v = json(&["--inventory", FIXTURES, path]);
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(
        findings.len(),
        3,
        "failover, commit, reverse replication: {v:#}"
    );
    let failover = &findings[0];
    assert_eq!(failover["code"], "RB117");
    assert_eq!(failover["line"], line_of(path, "failover(vm"));
    let notes: Vec<&str> = failover["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("the same happens here with the unplanned_failover of `web-02`")),
        "{notes:?}"
    );
    // The unreachable primary site breaks reverse replication, at its line.
    let site = v["what_if"]["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scenario"] == "primary_unreachable")
        .unwrap()
        .clone();
    assert_eq!(site["handled"], false);
    assert_eq!(site["first_failed"]["operation"], "reverse_replicate");
    assert_eq!(site["line"], line_of(path, "reverse_replicate(vm)"));
}

#[test]
fn scenarios_follow_the_order_of_the_plan() {
    let path = "runbooks/site-failover.rhai";
    let plan: Value =
        serde_json::from_str(&text(&cli(&["plan", "--format", "json", path]).stdout)).unwrap();
    let ops = plan["operations"].as_array().unwrap();
    let v = json(&[path]);
    let scenarios = v["what_if"]["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), ops.len() + 1);
    for (s, op) in scenarios.iter().zip(ops) {
        assert_eq!(s["number"], op["number"]);
        assert_eq!(s["operation"], op["operation"]);
        assert_eq!(s["vm"], op["vm"]);
        assert_eq!(s["line"], op["line"]);
    }
    assert_eq!(scenarios.last().unwrap()["scenario"], "primary_unreachable");
}

#[test]
fn what_if_runs_only_when_asked_and_only_on_runbooks_without_errors() {
    let out = cli(&[
        "check",
        "--format",
        "json",
        "runbooks/planned-failover.rhai",
    ]);
    let v: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert!(v["files"][0].get("what_if").is_none(), "{v:#}");
    assert!(!text(&out.stdout).contains("RB117"));
    let out = what_if(
        &[
            "--inventory",
            FIXTURES,
            "tests/fixtures/RB101-not-allowed.rhai",
        ],
        1,
    );
    assert!(out.contains("RB101") && !out.contains("what-if:"), "{out}");
}

/// The stdlib handles its failures, and so does every example: none is reported inside the
/// stdlib, where a user could not fix it.
#[test]
fn the_examples_pass_what_if_with_warnings_denied() {
    let out = cli(&[
        "check",
        "--what-if",
        "--deny-warnings",
        "--format",
        "short",
        "runbooks/*.rhai",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("0 errors, 0 warnings"), "{stdout}");
    assert!(!stdout.contains("stdlib/"), "{stdout}");
}
