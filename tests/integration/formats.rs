//! `check --format human|short|json|sarif|github` on the example runbooks (clean) and on
//! fixtures with findings: every output is snapshotted, the JSON and SARIF documents are
//! parsed and their structure checked, the formats agree on what they found, and the
//! summary comes last (or on stderr for the documents).

use crate::common::{cli, root, text};
use serde_json::Value;
use std::collections::BTreeSet;

const FORMATS: &[&str] = &["human", "short", "json", "sarif", "github"];

/// Fixtures with errors, a warning, a finding in a module, one in the stdlib and one after
/// tabs and multibyte text, checked against the fixtures' inventory.
const WITH_FINDINGS: &[&str] = &[
    "tests/fixtures/RB006-unknown-vm.rhai",
    "tests/fixtures/RB101-not-allowed.rhai",
    "tests/fixtures/RB105-job-not-waited.rhai",
    "tests/fixtures/chain-in-module.rhai",
    "tests/fixtures/in-stdlib.rhai",
    "tests/fixtures/positions.rhai",
];

/// Fixtures whose findings have no place in the file: an empty runbook, and one checked
/// without an inventory.
const PLACELESS: &[&str] = &[
    "tests/fixtures/RB009-empty-runbook.rhai",
    "tests/fixtures/RB010-names-not-checked.rhai",
];

struct Checked {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn check(format: &str, files: &[&str], inventory: bool) -> Checked {
    let mut args = vec!["check", "--format", format];
    if inventory {
        args.extend(["--inventory", "tests/fixtures/inventory.toml"]);
    }
    args.extend(files);
    let out = cli(&args);
    let checked = Checked {
        code: out.status.code(),
        stdout: text(&out.stdout),
        stderr: text(&out.stderr),
    };
    assert!(
        !checked.stderr.contains("panicked"),
        "{format}: {}",
        checked.stderr
    );
    checked
}

fn examples(format: &str) -> Checked {
    // Quoted: runbook expands the glob itself.
    check(format, &["runbooks/*.rhai"], false)
}

fn example_count() -> usize {
    std::fs::read_dir(root().join("runbooks"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "rhai")
        })
        .count()
}

/// The SARIF log with each rule reduced to its id: the rules' texts are checked by
/// [`sarif_structure`], and the snapshot stays readable.
fn sarif_for_snapshot(mut log: Value) -> Value {
    let rules = &mut log["runs"][0]["tool"]["driver"]["rules"];
    let ids: Vec<Value> = rules
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    *rules = Value::Array(ids);
    log
}

fn snapshot(name: &str, format: &str, checked: &Checked) {
    let body = match format {
        "sarif" => serde_json::to_string_pretty(&sarif_for_snapshot(
            serde_json::from_str(&checked.stdout).expect("SARIF is JSON"),
        ))
        .unwrap(),
        _ => checked.stdout.clone(),
    };
    insta::assert_snapshot!(format!("{name}-{format}"), body);
}

#[test]
fn every_format_of_the_clean_examples_is_as_snapshotted() {
    for format in FORMATS {
        let checked = examples(format);
        assert_eq!(checked.code, Some(0), "{format}: {}", checked.stderr);
        snapshot("examples", format, &checked);
    }
}

#[test]
fn every_format_of_fixtures_with_findings_is_as_snapshotted() {
    for format in FORMATS {
        let checked = check(format, WITH_FINDINGS, true);
        assert_eq!(checked.code, Some(1), "{format}: {}", checked.stderr);
        snapshot("findings", format, &checked);
        let checked = check(format, PLACELESS, false);
        assert_eq!(
            checked.code,
            Some(0),
            "{format}: a warning and a note do not fail: {}",
            checked.stderr
        );
        snapshot("placeless", format, &checked);
    }
}

#[test]
fn the_summary_ends_the_text_formats_and_goes_to_stderr_for_documents() {
    let n = example_count();
    let clean = format!("checked {n} files: 0 errors, 0 warnings");
    for format in FORMATS {
        let checked = examples(format);
        let (summary, other) = if ["json", "sarif"].contains(format) {
            (&checked.stderr, &checked.stdout)
        } else {
            (&checked.stdout, &checked.stderr)
        };
        assert_eq!(
            summary.lines().last(),
            Some(clean.as_str()),
            "{format}: {summary}"
        );
        assert!(!other.contains(&clean), "{format}: once: {other}");
    }
    let checked = check("short", WITH_FINDINGS, true);
    assert_eq!(
        checked.stdout.lines().last(),
        Some("checked 6 files: 5 errors, 2 warnings")
    );
}

/// `(code, file, line)` of every finding, from the JSON document (`line` 0 when it has none).
fn json_findings(document: &Value) -> BTreeSet<(String, String, u64)> {
    let mut found = BTreeSet::new();
    for file in document["files"].as_array().expect("files") {
        for f in file["findings"].as_array().expect("findings") {
            found.insert((
                f["code"].as_str().unwrap().to_string(),
                f["file"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap_or(0),
            ));
        }
    }
    found
}

#[test]
fn json_has_every_field_of_every_finding_and_a_summary() {
    let checked = check("json", WITH_FINDINGS, true);
    let document: Value = serde_json::from_str(&checked.stdout).expect("one JSON document");
    let files = document["files"].as_array().expect("files");
    assert_eq!(files.len(), WITH_FINDINGS.len());
    let mut total = 0;
    for file in files {
        assert!(WITH_FINDINGS.contains(&file["file"].as_str().unwrap()));
        let findings = file["findings"].as_array().expect("findings");
        assert_eq!(
            file["errors"].as_u64().unwrap() + file["warnings"].as_u64().unwrap(),
            findings.len() as u64
        );
        for f in findings {
            for key in [
                "code",
                "slug",
                "severity",
                "message",
                "file",
                "line",
                "column",
                "end",
                "label",
                "help",
                "notes",
                "called_from",
            ] {
                assert!(f.get(key).is_some(), "no `{key}` in {f}");
            }
            assert!(f["code"].as_str().unwrap().starts_with("RB"));
            assert!(["error", "warning", "note"].contains(&f["severity"].as_str().unwrap()));
            let (line, column) = (f["line"].as_u64().unwrap(), f["column"].as_u64().unwrap());
            let (end_line, end_column) = (
                f["end"]["line"].as_u64().unwrap(),
                f["end"]["column"].as_u64().unwrap(),
            );
            assert!(
                (end_line, end_column) > (line, column),
                "the end follows the start: {f}"
            );
            assert!(
                f["help"].is_string(),
                "every fixture's finding has help: {f}"
            );
            total += 1;
        }
    }
    assert_eq!(document["summary"]["files"], WITH_FINDINGS.len());
    assert_eq!(document["summary"]["errors"], 5);
    assert_eq!(document["summary"]["warnings"], 2);
    assert_eq!(total, 7);

    // The multibyte fixture: the end is counted in characters, after `failovr`.
    let positions = files
        .iter()
        .find(|f| f["file"] == "tests/fixtures/positions.rhai")
        .unwrap();
    let f = &positions["findings"][0];
    assert_eq!(
        f["end"]["column"].as_u64().unwrap() - f["column"].as_u64().unwrap(),
        "failovr".len() as u64
    );
}

/// Checks the SARIF log has what code scanning requires; returns `(ruleId, uri, startLine)`
/// of every result.
fn sarif_structure(log: &Value) -> BTreeSet<(String, String, u64)> {
    assert_eq!(log["version"], "2.1.0");
    assert!(log["$schema"]
        .as_str()
        .unwrap()
        .ends_with("sarif-2.1.0.json"));
    let runs = log["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "runbook");
    let rules = driver["rules"].as_array().expect("rules");
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    for code in runbook::diagnostics::Code::ALL {
        assert!(ids.contains(&code.as_str()), "no rule {}", code.as_str());
    }
    for rule in rules {
        assert!(rule["shortDescription"]["text"].is_string(), "{rule}");
        assert!(rule["help"]["text"].as_str().unwrap().contains("Example"));
        assert!(rule["help"]["markdown"].as_str().unwrap().contains("```"));
    }
    let mut found = BTreeSet::new();
    for result in run["results"].as_array().expect("results") {
        let id = result["ruleId"].as_str().expect("ruleId");
        let index = result["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(rules[index]["id"], id, "ruleIndex points at the rule");
        assert!(["error", "warning", "note"].contains(&result["level"].as_str().unwrap()));
        assert!(result["message"]["text"].is_string());
        let physical = &result["locations"][0]["physicalLocation"];
        let uri = physical["artifactLocation"]["uri"].as_str().expect("uri");
        assert!(
            !uri.starts_with('/') && root().join(uri).is_file(),
            "a relative path of a file in the repository: {uri}"
        );
        let region = &physical["region"];
        let line = region["startLine"].as_u64().expect("startLine");
        assert!(line >= 1);
        if region.get("endLine").is_some() {
            assert!(region["startColumn"].as_u64().unwrap() >= 1);
            assert!(
                (
                    region["endLine"].as_u64().unwrap(),
                    region["endColumn"].as_u64().unwrap()
                ) > (line, region["startColumn"].as_u64().unwrap())
            );
        }
        found.insert((id.to_string(), uri.to_string(), line));
    }
    found
}

#[test]
fn sarif_has_what_code_scanning_requires_and_reads_back_as_sarif() {
    for (files, inventory) in [(WITH_FINDINGS, true), (PLACELESS, false)] {
        let checked = check("sarif", files, inventory);
        let log: Value = serde_json::from_str(&checked.stdout).expect("SARIF is JSON");
        sarif_structure(&log);
        serde_json::from_str::<serde_sarif::sarif::Sarif>(&checked.stdout)
            .expect("the log reads back into the SARIF schema's types");
    }
    let log: Value = serde_json::from_str(&examples("sarif").stdout).unwrap();
    assert!(sarif_structure(&log).is_empty(), "the examples are clean");
    assert_eq!(
        log["runs"][0]["properties"]["summary"]["files"],
        example_count()
    );
}

#[test]
fn json_sarif_and_github_report_the_same_findings() {
    let json: Value = serde_json::from_str(&check("json", WITH_FINDINGS, true).stdout).unwrap();
    let sarif: Value = serde_json::from_str(&check("sarif", WITH_FINDINGS, true).stdout).unwrap();
    let sarif = sarif_structure(&sarif);
    let github = check("github", WITH_FINDINGS, true).stdout;
    let commands: Vec<&str> = github.lines().filter(|l| l.starts_with("::")).collect();
    assert_eq!(commands.len(), sarif.len());
    // JSON keeps the stdlib's own place; SARIF and GitHub place it on the runbook's call.
    let stdlib =
        |(code, file, _): &(String, String, u64)| (code.clone(), file.starts_with("stdlib/"));
    let json = json_findings(&json);
    assert_eq!(json.len(), sarif.len());
    assert!(json.iter().any(|f| stdlib(f).1));
    assert!(!sarif.iter().any(|f| stdlib(f).1));
    let outside_stdlib: BTreeSet<_> = json.iter().filter(|f| !stdlib(f).1).cloned().collect();
    assert!(outside_stdlib.is_subset(&sarif));
    for (code, file, line) in &sarif {
        let expected = format!("file={file},line={line},");
        assert!(
            commands
                .iter()
                .any(|c| c.contains(&expected) && c.contains(&format!("title={code} "))),
            "no annotation {code} at {file}:{line}: {github}"
        );
    }
}

#[test]
fn github_commands_are_well_formed_and_escaped() {
    let out = check("github", WITH_FINDINGS, true).stdout;
    for line in out.lines().filter(|l| l.starts_with("::")) {
        let (command, message) = line[2..]
            .split_once("::")
            .expect("::command props::message");
        let (level, properties) = command.split_once(' ').expect("a level and properties");
        assert!(["error", "warning", "notice"].contains(&level), "{line}");
        for property in properties.split(',') {
            let (key, value) = property.split_once('=').expect("key=value");
            assert!(
                ["file", "line", "col", "endLine", "endColumn", "title"].contains(&key),
                "{line}"
            );
            assert!(!value.contains(':'), "`:` escaped in {line}");
        }
        assert!(!message.contains('\n') && !message.contains('\r'));
    }
    assert!(
        out.contains("%0Ahelp: "),
        "multi-line messages are escaped: {out}"
    );
}

#[test]
fn deny_warnings_fails_warnings_in_every_format() {
    for format in FORMATS {
        let only_warning = ["tests/fixtures/RB105-job-not-waited.rhai"];
        assert_eq!(check(format, &only_warning, true).code, Some(0), "{format}");
        let out = cli(&[
            "check",
            "--deny-warnings",
            "--format",
            format,
            "--inventory",
            "tests/fixtures/inventory.toml",
            only_warning[0],
        ]);
        assert_eq!(out.status.code(), Some(1), "{format}");
    }
}

#[test]
fn a_glob_matching_nothing_is_a_usage_error_naming_it() {
    for format in FORMATS {
        let out = cli(&[
            "check",
            "--format",
            format,
            "runbooks/*.rhai",
            "runbooks/nothing-*.rhai",
        ]);
        assert_eq!(out.status.code(), Some(2), "{format}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("`runbooks/nothing-*.rhai` matches no file"),
            "{stderr}"
        );
        assert!(text(&out.stdout).is_empty(), "nothing is checked");
    }
}

#[test]
fn an_unreadable_file_is_reported_in_each_machine_format_and_exits_2() {
    let files = ["no/such.rhai", "runbooks/planned-failover.rhai"];
    let json: Value = serde_json::from_str(&check("json", &files, false).stdout).unwrap();
    assert_eq!(json["files"][0]["file"], "no/such.rhai");
    assert!(json["files"][0]["error"]
        .as_str()
        .unwrap()
        .contains("no such file"));
    assert_eq!(json["summary"]["unreadable"], 1);
    assert_eq!(json["summary"]["files"], 1);

    let checked = check("sarif", &files, false);
    assert_eq!(checked.code, Some(2));
    let sarif: Value = serde_json::from_str(&checked.stdout).unwrap();
    let invocation = &sarif["runs"][0]["invocations"][0];
    assert_eq!(invocation["executionSuccessful"], false);
    assert!(
        invocation["toolExecutionNotifications"][0]["message"]["text"]
            .as_str()
            .unwrap()
            .contains("no such file")
    );

    let checked = check("github", &files, false);
    assert_eq!(checked.code, Some(2));
    assert!(
        checked
            .stdout
            .starts_with("::error file=no/such.rhai,title=runbook check::"),
        "{}",
        checked.stdout
    );
}

#[test]
fn the_example_workflow_runs_checks_that_work_and_the_readme_links_it() {
    let workflow = std::fs::read_to_string(root().join("docs/examples/runbook-pr.yml")).unwrap();
    let checks: Vec<&str> = workflow
        .lines()
        .filter_map(|l| l.trim().strip_prefix("run: runbook check "))
        .collect();
    assert_eq!(
        checks.len(),
        2,
        "the github and the sarif check: {checks:?}"
    );
    for check in checks {
        // The arguments up to a redirection, without the shell's quotes.
        let args: Vec<String> = check
            .split(" > ")
            .next()
            .unwrap()
            .split_whitespace()
            .map(|a| a.trim_matches('"').to_string())
            .collect();
        let mut argv = vec!["check"];
        argv.extend(args.iter().map(String::as_str));
        let out = cli(&argv);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{argv:?}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stdout).is_empty());
    }
    for needed in [
        "upload-sarif",
        "runbook plan --format markdown",
        "gh pr comment",
    ] {
        assert!(workflow.contains(needed), "the workflow has {needed}");
    }
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for link in ["docs/pull-requests.md", "docs/examples/runbook-pr.yml"] {
        assert!(
            readme.contains(&format!("]({link})")),
            "README links {link}"
        );
    }
    let guide = std::fs::read_to_string(root().join("docs/pull-requests.md")).unwrap();
    assert!(guide.contains("](examples/runbook-pr.yml)"));
}
