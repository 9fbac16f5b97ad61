//! Findings the fuzzer found without a place, runbooks that kept `check` busy for tens of
//! seconds, and property typos: each is now a finding at its `file:line:col`.

use crate::common::{cli_in, text};

/// `check --format FORMAT` of `runbook` (with `files` beside it) in a fresh folder.
fn check(runbook: &str, files: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.rhai"), runbook).unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    all.push("plan.rhai");
    let out = cli_in(dir.path(), &all);
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code(), text(&out.stdout))
}

#[test]
fn errors_rhai_leaves_without_a_position_are_placed() {
    for (runbook, place, code) in [
        // A template string open at the end of the file.
        ("note(\"x\");\nlet a = `${1}", "plan.rhai:2:14:", "RB001"),
        // A closure that changes the array it runs over.
        (
            "let a = [1, 2];\na.for_each(|| a.push(1));\n",
            "plan.rhai:2:3:",
            "RB113",
        ),
    ] {
        for format in ["short", "json", "github"] {
            let (status, stdout) = check(runbook, &[], &["--format", format]);
            assert_eq!(status, Some(1), "{stdout}");
            let wanted = match format {
                "short" => place.to_string(),
                "json" => "\"line\": 2".to_string(),
                _ => ",line=2,".to_string(),
            };
            assert!(
                stdout.contains(&wanted) && stdout.contains(code),
                "{runbook:?} in {format}: {stdout}"
            );
        }
    }
    let (_, stdout) = check(
        "let a = [1];\na.for_each(|| a.push(1));\n",
        &[],
        &["--format", "short"],
    );
    assert!(
        stdout.contains("was changed while it was in use") && !stdout.contains("Data race"),
        "in words people use: {stdout}"
    );
}

#[test]
fn the_time_limit_stops_a_runaway_check_with_a_finding() {
    let growing = "let s = \"x\";\nloop { s += 1; }\n";
    let (status, stdout) = check(growing, &[], &["--format", "short", "--time-limit", "50ms"]);
    assert_eq!(status, Some(1), "{stdout}");
    assert!(
        stdout.contains("plan.rhai:2:") && stdout.contains("RB119") && stdout.contains("50ms"),
        "{stdout}"
    );
    let (status, stdout) = check(
        growing,
        &[("runbook.toml", "[check]\ntime_limit = \"50ms\"\n")],
        &["--format", "short"],
    );
    assert_eq!(status, Some(1), "{stdout}");
    assert!(stdout.contains("RB119"), "runbook.toml sets it: {stdout}");
    let (status, _) = check(
        growing,
        &[("runbook.toml", "[check]\ntime_limit = \"soon\"\n")],
        &[],
    );
    assert_eq!(
        status,
        Some(2),
        "a malformed limit is a configuration error"
    );

    // Every what-if scenario of this runbook loops when its failover fails.
    let what_if = "for name in [\"web-01\", \"web-02\", \"web-03\"] {\n    let v = vm(name);\n    try { wait_job(failover(v, #{ kind: \"planned\" }), #{ timeout: \"1h\" }); } catch (e) { let s = \"\"; loop { s += 1; } }\n    wait_job(commit(v), #{ timeout: \"1h\" });\n    wait_job(reverse_replicate(v), #{ timeout: \"1h\" });\n}\n";
    let (status, stdout) = check(
        what_if,
        &[],
        &["--format", "short", "--what-if", "--time-limit", "200ms"],
    );
    assert_eq!(status, Some(1), "{stdout}");
    assert!(
        stdout.contains("RB119") && stdout.contains("what-if scenarios took longer"),
        "{stdout}"
    );
    assert!(
        stdout.contains("plan.rhai:3:"),
        "where a scenario was running: {stdout}"
    );
}

#[test]
fn a_runbook_or_module_that_parses_too_slowly_is_stopped_by_the_time_limit() {
    // Rhai's parser takes time quadratic in the variables declared: seconds for these.
    let many: String = (0..8_000).map(|i| format!("let v{i} = {i};\n")).collect();
    let (status, stdout) = check(&many, &[], &["--format", "short", "--time-limit", "100ms"]);
    assert_eq!(status, Some(1), "{stdout}");
    assert!(
        stdout.contains("plan.rhai:1:1: error[RB119]: parsing the runbook took longer"),
        "{stdout}"
    );
    let (status, stdout) = check(
        "import \"big\" as big;\nnote(\"x\");\n",
        &[("big.rhai", &many)],
        &["--format", "short", "--time-limit", "100ms"],
    );
    assert_eq!(status, Some(1), "{stdout}");
    assert!(
        stdout.contains("plan.rhai:1:8: error[RB007]") && stdout.contains("took longer"),
        "{stdout}"
    );
}

#[test]
fn property_typos_get_a_suggestion() {
    let runbook = "let v = vm(\"web-01\");\nlet s = status(v);\nif s.stat == \"protected\" { note(\"ok\"); }\n";
    let (status, stdout) = check(runbook, &[], &["--format", "short"]);
    assert_eq!(status, Some(1), "{stdout}");
    assert!(stdout.contains("plan.rhai:3:6: error[RB120]"), "{stdout}");
    let (_, stdout) = check(runbook, &[], &["--format", "json"]);
    assert!(stdout.contains("did you mean `state`?"), "{stdout}");

    // A job in a list is only known to be a job when the runbook runs.
    let runbook =
        "let jobs = [failover(vm(\"web-01\"), #{ kind: \"planned\" })];\nnote(jobs[0].stat);\n";
    let (status, stdout) = check(runbook, &[], &["--format", "json"]);
    assert_eq!(status, Some(1), "{stdout}");
    assert!(
        stdout.contains("RB120")
            && stdout.contains("did you mean `state`?")
            && !stdout.contains("getter"),
        "{stdout}"
    );
}
