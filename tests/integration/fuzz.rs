//! A bounded fuzz run of `check` in every `cargo test`: the runbooks of the repository
//! (`runbooks/`, `stdlib/`, `tests/fixtures/`) and the seeds in `tests/fuzz/corpus/`, mutated
//! by proptest (tokens inserted, text deleted, lines doubled, pieces of other runbooks spliced
//! in). Whatever comes out, `check` must not panic, must stop within its time limit, and
//! every finding must point at a line and column of a source it knows, in every format.
//!
//! `RUNBOOK_FUZZ_CASES` sets the number of cases (default 1,500, about 15 s in a debug
//! build) and `RUNBOOK_FUZZ_SEED` the seed (default fixed, so CI is repeatable); a longer
//! run: `RUNBOOK_FUZZ_CASES=20000 RUNBOOK_FUZZ_SEED=$RANDOM cargo test --release --test
//! integration fuzz`. A failing input is printed whole: add it to `tests/fuzz/corpus/`.

use crate::common::root;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use runbook::backend::inventory::Inventory;
use runbook::check::{check_text_within, whatif, Report};
use runbook::diagnostics::json::JsonFinding;
use runbook::diagnostics::{
    github, offset_of, render, sarif, summary_line, FileFindings, RenderOptions, Summary,
};
use runbook::script::limits::TimeLimit;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Pieces of Rhai and of the runbook API the mutations insert: the constructs that found
/// defects before, and the ones a parser trips over.
const TOKENS: &[&str] = &[
    "\"",
    "`",
    "'",
    "${",
    "}",
    "{",
    "(",
    ")",
    "[",
    "]",
    ";",
    ",",
    ":",
    ".",
    "#{",
    "\n",
    "\t",
    "\u{feff}",
    "é",
    "→",
    "\\",
    "//",
    "/*",
    "*/",
    "let ",
    "const ",
    "fn ",
    "return ",
    "throw ",
    "try {",
    "} catch (e) {",
    "if ",
    "else ",
    "while ",
    "loop { ",
    "for x in ",
    "0..100000",
    "break;",
    "import \"lib\" as lib;",
    "import \"runbook/failover\" as f;",
    "import \"../x\" as x;",
    "vm(\"web-01\")",
    "vm(\"nope\")",
    "vms(\"web-*\")",
    "status(",
    "failover(",
    "commit(",
    "reverse_replicate(",
    "test_failover(",
    "cleanup_test_failover(",
    "wait_job(",
    "wait_all(",
    "verify(",
    "preflight(",
    "manual_step(",
    "note(",
    "cancel(",
    ".state",
    ".stat",
    ".vm",
    ".id",
    ".message",
    "#{ kind: \"planned\" }",
    "#{ timeout: \"1h\" }",
    "#{ timeout: \"1s\" }",
    "#{ `${1}`: 1 }",
    "`${loop{}}`",
    "|| ",
    "|x| x",
    ".for_each(|| a.push(1))",
    "a.push(a)",
    "Fn(\"f\")",
    "eval(\"1\")",
    "sleep(1)",
    "exit()",
    "9999999999999999999",
    "-0",
    "1e308",
    "s += 1;",
    "s += s;",
    "x",
    "web-01",
    "\"\"",
    "()",
    "true",
    "false",
    "this",
    "global::",
    "::",
    "?.",
    "??",
    "!",
    "==",
    "=",
    "+",
    "*",
    "**",
    "<<",
    "%",
];

/// One change to a runbook's text, at a place given as a fraction of its length.
#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, usize),
    Delete(usize, usize),
    DoubleLine(usize),
    Splice(usize, usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, t)| Mutation::Insert(at, t)),
        2 => (any::<usize>(), 1usize..12).prop_map(|(at, n)| Mutation::Delete(at, n)),
        1 => any::<usize>().prop_map(Mutation::DoubleLine),
        1 => (any::<usize>(), any::<usize>(), any::<usize>(), 1usize..200)
            .prop_map(|(at, from, start, n)| Mutation::Splice(at, from, start, n)),
    ]
}

/// Applies `m` to `text` (in characters, so the text stays UTF-8).
fn apply(text: &mut Vec<char>, m: &Mutation, corpus: &[(String, String)]) {
    let place = |at: usize, len: usize| if len == 0 { 0 } else { at % (len + 1) };
    match *m {
        Mutation::Insert(at, token) => {
            let at = place(at, text.len());
            text.splice(at..at, TOKENS[token].chars());
        }
        Mutation::Delete(at, n) => {
            let at = place(at, text.len());
            let end = (at + n).min(text.len());
            text.drain(at..end);
        }
        Mutation::DoubleLine(at) => {
            let at = place(at, text.len());
            let start = text[..at]
                .iter()
                .rposition(|c| *c == '\n')
                .map_or(0, |i| i + 1);
            let end = text[at..]
                .iter()
                .position(|c| *c == '\n')
                .map_or(text.len(), |i| at + i);
            let line: Vec<char> = text[start..end].iter().copied().chain(['\n']).collect();
            text.splice(start..start, line);
        }
        Mutation::Splice(at, from, start, n) => {
            let other: Vec<char> = corpus[from % corpus.len()].1.chars().collect();
            let start = place(start, other.len());
            let end = (start + n).min(other.len());
            let at = place(at, text.len());
            text.splice(at..at, other[start..end].iter().copied());
        }
    }
}

/// The seeds: every runbook of the repository and the corpus folder's.
fn corpus() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for dir in [
        "runbooks",
        "stdlib",
        "tests/fixtures",
        "tests/fixtures/lib",
        "tests/fixtures/plan",
        "tests/fixtures/whatif",
        "tests/fuzz/corpus",
    ] {
        let Ok(entries) = std::fs::read_dir(root().join(dir)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap();
            files.push((
                path.strip_prefix(root()).unwrap().display().to_string(),
                text,
            ));
        }
    }
    assert!(files.len() > 40, "the corpus has {} files", files.len());
    files
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The time limit each case is checked with: short, so a runaway case costs little.
const LIMIT: Duration = Duration::from_millis(300);

/// How much later than its limit a check may return (the static checks are not watched, and
/// the machine is shared); far less than a runaway check takes.
const GRACE: Duration = Duration::from_secs(30);

/// Everything that must hold of a report, whatever the input.
fn holds(report: &Report, text: &str) -> Result<(), TestCaseError> {
    for f in &report.findings {
        let Some(location) = &f.location else {
            return Err(TestCaseError::fail(format!(
                "a finding without a place: {}",
                summary_line(f)
            )));
        };
        let Some(source) = report.sources.get(&location.source) else {
            return Err(TestCaseError::fail(format!(
                "a finding in an unknown source: {}",
                summary_line(f)
            )));
        };
        if location.line == 0 || offset_of(source, location.line, location.column).is_none() {
            return Err(TestCaseError::fail(format!(
                "a finding at a place its source does not have: {}",
                summary_line(f)
            )));
        }
        let _ = render(f, &report.sources, RenderOptions::default());
        let _ = github::command(f, &report.sources, &report.name);
        let _ = serde_json::to_string(&JsonFinding::new(f, &report.sources, &report.name));
    }
    let files = [FileFindings {
        file: &report.name,
        findings: &report.findings,
        sources: &report.sources,
    }];
    let mut summary = Summary::default();
    summary.add(&report.findings);
    let _ = serde_json::to_string(&sarif::log(&files, &[], &summary));
    let _ = text;
    Ok(())
}

#[test]
fn check_survives_mutated_runbooks() {
    let corpus = corpus();
    let inventory = Inventory::load(Path::new("tests/fixtures/inventory.toml")).unwrap();
    let cases = env_number("RUNBOOK_FUZZ_CASES", 1500) as u32;
    let seed = env_number("RUNBOOK_FUZZ_SEED", 11);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        max_shrink_iters: 300,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let fixtures = root().join("tests/fixtures");
    let strategy = (
        0..corpus.len(),
        proptest::collection::vec(mutation(), 1..6),
        0u8..4,
    );
    let result = runner.run(&strategy, |(seed, mutations, mode)| {
        let mut text: Vec<char> = corpus[seed].1.chars().collect();
        for m in &mutations {
            apply(&mut text, m, &corpus);
        }
        let text: String = text.into_iter().collect();
        let name = "fuzz.rhai";
        let started = Instant::now();
        let limit = TimeLimit::from_now(LIMIT);
        // One case in four also runs the what-if scenarios.
        let report = if mode == 0 {
            whatif::check_text_within(name, &text, Some(&fixtures), Some(&inventory), limit).0
        } else {
            check_text_within(name, &text, Some(&fixtures), Some(&inventory), limit)
        };
        let took = started.elapsed();
        prop_assert!(
            took < LIMIT + GRACE,
            "the check took {took:?} with a limit of {LIMIT:?}:\n{text}"
        );
        holds(&report, &text)
            .map_err(|e| TestCaseError::fail(format!("{e}\n--- input ---\n{text}")))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
