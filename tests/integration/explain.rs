//! `runbook explain`: every code has a text, and every example in it is true: checked (with
//! `--what-if` for the codes only it reports), the example produces its code, and the fix
//! removes it without bringing anything new.

use crate::common::{cli, text};
use runbook::backend::inventory::Inventory;
use runbook::check::whatif;
use runbook::check::{check_text, check_text_within};
use runbook::diagnostics::explain::{explanation, Estate, Snippet};
use runbook::diagnostics::Code;
use runbook::script::limits::TimeLimit;
use std::collections::BTreeSet;

/// The codes a check of `snippet` finds.
fn codes_of(code: Code, what: &str, snippet: Snippet) -> BTreeSet<Code> {
    let inventory = match snippet.estate {
        Estate::Demo => Some(Inventory::demo()),
        Estate::Unknown => None,
        Estate::Inventory(toml) => Some(
            Inventory::parse(toml, "example")
                .unwrap_or_else(|e| panic!("{}: the {what}'s inventory: {e}", code.as_str())),
        ),
        Estate::Run => unreachable!("run-only snippets are not checked"),
    };
    let name = format!("{}-{what}.rhai", code.as_str());
    let report = if whatif::CODES.contains(&code) {
        whatif::check_text(&name, snippet.text, None, inventory.as_ref()).0
    } else if code == Code::TimeLimit {
        // The example would take the default 10 s to show its code.
        let limit = TimeLimit::from_now(std::time::Duration::from_millis(50));
        check_text_within(&name, snippet.text, None, inventory.as_ref(), limit)
    } else {
        check_text(&name, snippet.text, None, inventory.as_ref())
    };
    report.findings.iter().map(|f| f.code).collect()
}

#[test]
fn every_example_produces_its_code_and_its_fix_removes_it() {
    let mut checked = 0;
    for code in Code::ALL {
        let e = explanation(*code);
        if e.example.estate == Estate::Run {
            continue;
        }
        let example = codes_of(*code, "example", e.example);
        assert!(
            example.contains(code),
            "{}: the example finds {example:?}",
            code.as_str()
        );
        let fix = codes_of(*code, "fix", e.fix);
        let mut allowed = example.clone();
        allowed.remove(code);
        assert!(
            fix.is_subset(&allowed),
            "{}: the fix finds {fix:?}; only {allowed:?} may remain",
            code.as_str()
        );
        checked += 1;
    }
    assert!(
        checked + 6 >= Code::ALL.len(),
        "only {checked} examples were checked"
    );
}

#[test]
fn only_codes_of_a_real_run_have_unchecked_examples() {
    let run_only: Vec<Code> = Code::ALL
        .iter()
        .copied()
        .filter(|c| explanation(*c).example.estate == Estate::Run)
        .collect();
    assert_eq!(
        run_only,
        [
            Code::Interrupted,
            Code::Refused,
            Code::NoAnswer,
            Code::ServiceRefused,
            Code::CredentialsRejected,
            Code::ActionFailed
        ]
    );
}

#[test]
fn explain_prints_one_code_by_code_or_slug_in_any_case() {
    for arg in ["RB101", "rb101", "not-allowed", "NOT-ALLOWED"] {
        let out = cli(&["explain", arg]);
        assert_eq!(out.status.code(), Some(0), "{arg}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.starts_with("RB101 not-allowed (error): "),
            "{stdout}"
        );
        for heading in [
            "What it detects",
            "Why it matters in a recovery",
            "Example",
            "Fix",
        ] {
            assert!(stdout.contains(heading), "{arg}: no {heading}: {stdout}");
        }
    }
}

#[test]
fn explain_alone_lists_every_code() {
    let out = cli(&["explain"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    for code in Code::ALL {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(code.as_str()))
            .unwrap_or_else(|| panic!("{} is not listed: {stdout}", code.as_str()));
        assert!(
            line.contains(code.slug()) && line.contains(code.summary()),
            "{line}"
        );
    }
}

#[test]
fn an_unknown_code_exits_2_with_a_suggestion() {
    let out = cli(&["explain", "RB1O1"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("RB1O1") && stderr.contains("did you mean `RB101`"),
        "{stderr}"
    );
    assert!(text(&out.stdout).is_empty());

    let out = cli(&["explain", "not-alowed"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("did you mean `not-allowed`"),
        "{}",
        text(&out.stderr)
    );

    let out = cli(&["explain", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("`runbook explain` lists them"),
        "{}",
        text(&out.stderr)
    );
}
