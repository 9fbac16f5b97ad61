//! Parameters end to end, through the binary: `--set` refused before anything runs (exit 2,
//! with the closest name or choice), `check` dry-running the combinations of choices with
//! each finding labelled by the values producing it, `runbook params`, and a live run whose
//! values are recorded in its journal, used by its resume (after a kill -9) and defended
//! against a resume with other values.

use crate::durable::{journal_of, killed, run_ids, runbook, start_server, text};
use std::path::Path;

/// Fails over the VM the `vm` parameter names; with `down_site=recovery` and `tier=app`
/// it also commits without waiting (RB102 in the dry run, in that combination only).
const PARAMS: &str = r#"let site = param("down_site", #{ choices: ["primary", "recovery"], "default": "primary", help: "the site that is down" });
let tier = param("tier", #{ choices: ["web", "app"], "default": "web" });
let vm = param("vm", #{ choices: ["app-01", "app-02"], "default": "app-01" });
let j = failover(vm, #{ kind: "planned" });
if site == "recovery" && tier == "app" {
    commit(vm);
}
wait_job(j);
verify(vm, #{ active_location: "recovery", healthy: true });
wait_job(commit(vm));
wait_job(reverse_replicate(vm));
"#;

fn project_with(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("inventory.toml"),
        "start = \"2026-11-26T00:00:00Z\"\n\n[[items]]\nname = \"app-01\"\n\n[[items]]\nname = \"app-02\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("runbook.toml"),
        "inventory = \"inventory.toml\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("p.rhai"), text).unwrap();
    dir
}

fn no_runs(dir: &Path) -> bool {
    run_ids(dir).is_empty()
}

#[test]
fn a_bad_set_is_exit_2_with_the_closest_name_before_anything_runs() {
    let dir = project_with(PARAMS);
    let cases: [(&[&str], &str); 4] = [
        (&["--set", "down_sit=recovery"], "did you mean `down_site`?"),
        (
            &["--set", "down_site=recovry"],
            "did you mean \"recovery\"?",
        ),
        (&["--set", "nothing"], "is not NAME=VALUE"),
        (&["--set", "colour=blue"], "it declares down_site, tier, vm"),
    ];
    for command in ["run", "check", "plan"] {
        for (set, says) in cases {
            let mut args = vec![command, "p.rhai"];
            args.extend_from_slice(set);
            let out = runbook(dir.path(), &args, None);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
            assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
            assert!(no_runs(dir.path()), "{args:?} left a run");
        }
    }
    // A required parameter without a value: run and plan refuse, check dry-runs a stand-in.
    let needs = project_with("let t = param(\"ticket\", #{ help: \"the change\" });\nnote(t);\n");
    for command in ["run", "plan"] {
        let out = runbook(needs.path(), &[command, "p.rhai"], None);
        assert_eq!(out.status.code(), Some(2), "{command}: {}", text(&out));
        assert!(text(&out).contains("--set ticket=..."), "{}", text(&out));
    }
    assert!(no_runs(needs.path()));
    let out = runbook(needs.path(), &["check", "p.rhai"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("RB131"), "{}", text(&out));
    let out = runbook(
        needs.path(),
        &["run", "p.rhai", "--set", "ticket=CHG-7", "--no-progress"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("note: CHG-7"), "{}", text(&out));
    // An empty value is no value.
    let out = runbook(needs.path(), &["run", "p.rhai", "--set", "ticket="], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("an empty value"), "{}", text(&out));
    // A runbook that does not parse: its parameters cannot be known, and it says why.
    let broken = project_with("let t = param(\"ticket\", #{ help: \"the change\" });\nnote(t;\n");
    let out = runbook(broken.path(), &["params", "p.rhai"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("p.rhai:2:") && text(&out).contains("error[RB001]"),
        "{}",
        text(&out)
    );
    let out = runbook(
        broken.path(),
        &["run", "p.rhai", "--set", "ticket=CHG-7"],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        !text(&out).contains("declares no parameters"),
        "{}",
        text(&out)
    );
    assert!(no_runs(broken.path()));
}

/// The check's findings as JSON: (code, line, params) of each.
fn findings(dir: &Path, extra: &[&str]) -> Vec<(String, u64, Vec<String>)> {
    let mut args = vec!["check", "p.rhai", "--format", "json"];
    args.extend_from_slice(extra);
    let out = runbook(dir, &args, None);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON document");
    doc["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap_or(0),
                f["params"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn check_dry_runs_every_combination_and_labels_what_each_produces() {
    let dir = project_with(PARAMS);
    let all = findings(dir.path(), &[]);
    // The early commit is refused only with recovery and app, once for each VM (their
    // messages name the VM): both were dry-run in that combination.
    let mut busy: Vec<(u64, Vec<String>)> = all
        .iter()
        .filter(|(code, ..)| code == "RB102")
        .map(|(_, line, params)| (*line, params.clone()))
        .collect();
    busy.sort();
    assert_eq!(
        busy,
        vec![
            (
                6,
                vec!["down_site=recovery, tier=app, vm=app-01".to_string()]
            ),
            (
                6,
                vec!["down_site=recovery, tier=app, vm=app-02".to_string()]
            ),
        ],
        "{all:?}"
    );
    // A finding every combination produces carries no label.
    assert!(
        all.iter()
            .all(|(code, _, params)| code == "RB102" || params.is_empty()),
        "{all:?}"
    );
    // Human and GitHub output say it too.
    let human = text(&runbook(dir.path(), &["check", "p.rhai"], None));
    assert!(
        human.contains("(with down_site=recovery, tier=app, vm=app-0"),
        "{human}"
    );
    let github = text(&runbook(
        dir.path(),
        &["check", "p.rhai", "--format", "github"],
        None,
    ));
    assert!(github.contains("(with down_site=recovery"), "{github}");
    // Fixing a value leaves the others to vary; fixing it elsewhere removes the finding.
    let fixed = findings(dir.path(), &["--set", "tier=web"]);
    assert!(fixed.iter().all(|(code, ..)| code != "RB102"), "{fixed:?}");
    let only = findings(dir.path(), &["--set", "tier=app", "--set", "vm=app-02"]);
    let busy: Vec<_> = only.iter().filter(|(code, ..)| code == "RB102").collect();
    assert_eq!(busy.len(), 1, "{only:?}");
    assert_eq!(busy[0].2, vec!["down_site=recovery, tier=app, vm=app-02"]);
}

#[test]
fn params_lists_the_declarations_in_json_and_text() {
    let dir = project_with(PARAMS);
    let out = runbook(dir.path(), &["params", "p.rhai", "--format", "json"], None);
    assert!(out.status.success(), "{}", text(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["down_site", "tier", "vm"]);
    assert_eq!(list[0]["default"], "primary");
    assert_eq!(list[0]["help"], "the site that is down");
    assert_eq!(list[0]["choices"][1], "recovery");
    assert_eq!(list[0]["line"], 1);
    let table = text(&runbook(dir.path(), &["params", "p.rhai"], None));
    assert!(table.contains("the site that is down"), "{table}");
    // A declaration that cannot be read statically is an error, located.
    std::fs::write(
        dir.path().join("bad.rhai"),
        "let n = \"x\";\nlet v = param(n, #{});\n",
    )
    .unwrap();
    let out = runbook(dir.path(), &["params", "bad.rhai"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("bad.rhai:2:15"), "{}", text(&out));
}

/// A live run with `vm=app-02`, killed after its failover was issued: the resume goes on
/// with app-02 (the recorded value, though the default is app-01), and a resume asking for
/// another value is refused. The values are in the journal's header and the report.
#[test]
fn a_resume_after_kill_9_uses_the_recorded_values_and_refuses_others() {
    let (addr, server, _sim) = start_server();
    let dir = crate::durable::project(addr);
    std::fs::write(dir.path().join("plan.rhai"), PARAMS).unwrap();
    let run = [
        "run",
        "plan.rhai",
        "--target",
        "sim",
        "--yes",
        "--no-progress",
        "--set",
        "vm=app-02",
    ];
    // Killed after record 6 (past the failover's intent) is written.
    let out = runbook(dir.path(), &run, Some("6:after"));
    assert!(killed(&out), "{}", text(&out));
    let id = run_ids(dir.path()).pop().expect("a run");
    let journal = std::fs::read_to_string(journal_of(dir.path(), &id)).unwrap();
    let header: serde_json::Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    assert_eq!(
        header["params"]["vm"],
        "app-02",
        "{}",
        journal.lines().next().unwrap()
    );
    assert!(
        journal.contains("planned_failover") && journal.contains("app-02"),
        "the kill came before the failover: {journal}"
    );
    let refused = runbook(
        dir.path(),
        &["resume", &id, "--no-progress", "--set", "vm=app-01"],
        None,
    );
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("it started with vm=app-02"),
        "{}",
        text(&refused)
    );
    let resumed = runbook(dir.path(), &["resume", &id, "--no-progress"], None);
    assert!(resumed.status.success(), "{}", text(&resumed));
    let stats = server.stats();
    for op in ["planned_failover", "commit", "reverse_replicate"] {
        assert_eq!(
            stats.get(&format!("issued app-02 {op}")).copied(),
            Some(1),
            "{op}: {stats:?}"
        );
        assert_eq!(
            stats.get(&format!("issued app-01 {op}")).copied(),
            None,
            "{op}: {stats:?}"
        );
    }
    let report = runbook(dir.path(), &["report", &id, "--format", "json"], None);
    let audit: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(audit["params"]["vm"], "app-02", "{audit}");
    assert_eq!(audit["params"]["down_site"], "primary", "{audit}");
}

/// The plan a live run shows and checks is the one of its `--set` values, not of the
/// defaults: a combination `check` refuses is refused before anything is issued.
#[test]
fn a_live_run_is_planned_with_its_set_values() {
    let (addr, server, _sim) = start_server();
    let dir = crate::durable::project(addr);
    std::fs::write(dir.path().join("plan.rhai"), PARAMS).unwrap();
    let out = runbook(
        dir.path(),
        &[
            "run",
            "plan.rhai",
            "--target",
            "sim",
            "--yes",
            "--no-progress",
            "--set",
            "down_site=recovery",
            "--set",
            "tier=app",
        ],
        None,
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("[RB102]"), "{shown}");
    assert!(shown.contains("nothing was issued"), "{shown}");
    assert!(
        !server.stats().keys().any(|k| k.starts_with("issued")),
        "{:?}",
        server.stats()
    );
}
