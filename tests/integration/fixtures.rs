//! One fixture per diagnostic code: the fixture names the codes and lines it expects, the
//! check must find exactly those, and the rendered diagnostics are snapshotted. A fixture
//! whose header says `// check: --what-if` is checked with its what-if scenarios.

use crate::common::{expectations, inventory_of, root, Expected};
use runbook::backend::inventory::Inventory;
use runbook::check::whatif;
use runbook::check::{check_file, check_file_within, TIME_LIMIT};
use runbook::diagnostics::{render_all, Code, RenderOptions};
use runbook::script::limits::TimeLimit;
use std::path::PathBuf;
use std::time::Duration;

/// Codes only a real run can produce (an operator's interrupt, a refusal to go on without
/// an operator); they are tested in `bad_input`.
const RUN_ONLY: &[Code] = &[
    Code::Interrupted,
    Code::Refused,
    Code::NoAnswer,
    Code::ServiceRefused,
    Code::CredentialsRejected,
    Code::ActionFailed,
];

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fixtures"))
        .expect("the fixtures folder")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    files.sort();
    files
}

/// Whether the fixture's header asks for `check --what-if`.
fn wants_what_if(text: &str) -> bool {
    text.lines()
        .take_while(|l| l.starts_with("//"))
        .any(|l| l.trim_start_matches("//").trim() == "check: --what-if")
}

/// The fixture's `// time-limit: 50ms`, for the check's time limit (RB119).
fn time_limit(text: &str) -> Option<Duration> {
    text.lines()
        .take_while(|l| l.starts_with("//"))
        .find_map(|l| {
            l.trim_start_matches("//")
                .trim()
                .strip_prefix("time-limit:")
        })
        .map(|d| runbook::clock::parse_duration(d).expect("a duration"))
}

#[test]
fn every_check_code_has_a_fixture() {
    let names: Vec<String> = fixtures()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for code in Code::ALL.iter().filter(|c| !RUN_ONLY.contains(c)) {
        let wanted = format!("{}-{}", code.as_str(), code.slug());
        assert!(
            names.contains(&wanted),
            "no fixture tests/fixtures/{wanted}.rhai"
        );
    }
}

#[test]
fn fixtures_find_exactly_what_they_expect_and_render_as_snapshotted() {
    for path in fixtures() {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = expectations(&text);
        assert!(
            !expected.is_empty(),
            "{} names no expected code",
            path.display()
        );
        let inventory = inventory_of(&text).map(|name| {
            Inventory::load(&root().join("tests/fixtures").join(name))
                .expect("the fixture inventory loads")
        });
        let rel = path.strip_prefix(root()).unwrap().to_path_buf();
        let limit = TimeLimit::from_now(time_limit(&text).unwrap_or(TIME_LIMIT));
        let report = if wants_what_if(&text) {
            whatif::check_file_within(&rel, inventory.as_ref(), limit)
                .expect("the fixture is readable")
                .0
        } else {
            check_file_within(&rel, inventory.as_ref(), limit).expect("the fixture is readable")
        };
        let fixture_name = rel.display().to_string();
        let mut found: Vec<Expected> = report
            .findings
            .iter()
            .map(|f| {
                let (file, line) = match &f.location {
                    None => (None, None),
                    Some(l) if *l.source == *fixture_name => (None, Some(l.line)),
                    Some(l) => (
                        Some(l.source.trim_start_matches("tests/fixtures/").to_string()),
                        Some(l.line),
                    ),
                };
                Expected {
                    code: f.code.as_str().to_string(),
                    file,
                    line,
                }
            })
            .collect();
        found.sort();
        assert_eq!(found, expected, "findings of {fixture_name}");
        let rendered = render_all(
            &report.findings,
            &report.sources,
            RenderOptions {
                color: false,
                width: 100,
            },
        );
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        insta::assert_snapshot!(stem, rendered);
    }
}

#[test]
fn findings_inside_modules_carry_the_chain_back_to_the_runbook() {
    let inv = Inventory::load(&root().join("tests/fixtures/inventory.toml")).unwrap();
    let report = check_file(
        std::path::Path::new("tests/fixtures/chain-in-module.rhai"),
        Some(&inv),
    )
    .unwrap();
    let finding = report
        .findings
        .iter()
        .find(|f| f.code == Code::CommitWithoutVerify)
        .expect("RB108");
    let loc = finding.location.as_ref().unwrap();
    assert_eq!(&*loc.source, "tests/fixtures/lib/steps.rhai");
    assert_eq!((loc.line, loc.column), (7, 14));
    assert_eq!(finding.chain.len(), 1, "{:?}", finding.chain);
    assert_eq!(finding.chain[0].function, "fail_over_and_commit");
    assert_eq!(
        &*finding.chain[0].location.source,
        "tests/fixtures/chain-in-module.rhai"
    );
    assert_eq!(finding.chain[0].location.line, 6);
}

#[test]
fn labels_land_on_the_right_characters_after_tabs_and_multibyte_text() {
    let inv = Inventory::load(&root().join("tests/fixtures/inventory.toml")).unwrap();
    let report = check_file(
        std::path::Path::new("tests/fixtures/positions.rhai"),
        Some(&inv),
    )
    .unwrap();
    let finding = &report.findings[0];
    let loc = finding.location.as_ref().unwrap();
    let text = std::fs::read_to_string(root().join("tests/fixtures/positions.rhai")).unwrap();
    let offset = runbook::diagnostics::offset_of(&text, loc.line, loc.column).unwrap();
    let bytes = runbook::diagnostics::char_span_to_bytes(&text, offset, loc.len);
    assert_eq!(&text[offset..offset + bytes], "failovr");
    // The line holds a tab and multibyte characters before the call.
    let line = text.lines().nth(loc.line - 1).unwrap();
    assert!(line.contains('\t') && line.contains('→'));
    assert!(
        offset - text[..offset].rfind('\n').unwrap() - 1 > loc.column - 1,
        "byte column differs from character column"
    );
}
