//! `runbook check`: expands the files and globs given, checks each runbook (with its what-if
//! scenarios when asked), and prints the findings in the format asked for, with a summary of
//! all files.
//!
//! Human, short and github output is printed file by file as the checks go, and ends with the
//! summary line. JSON and SARIF are one document on stdout, printed at the end, that holds the
//! summary; the summary line also goes to stderr, for the CI log.

use super::Format;
use crate::check::whatif::{self, WhatIf};
use crate::check::{self, inventory_for, Report};
use crate::clock::human;
use crate::diagnostics::json::JsonFinding;
use crate::diagnostics::{
    github, render, sarif, summary_line, FileFindings, RenderOptions, Severity, Summary,
};
use crate::error::{exit, Error};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// A file's report, and its what-if scenarios when they were asked for and ran.
type Checked = (Report, Option<WhatIf>);

/// The outcome of one file, or `(file, why)` when it could not be checked.
type Outcome = Result<Checked, (String, String)>;

/// Checks `files` (paths or globs) and prints the findings in `format`. Returns the exit
/// code: 0 clean, 1 findings that fail the check, 2 a file or configuration that could not
/// be read (the other files are still checked).
pub(super) fn check_files(
    files: &[PathBuf],
    inventory: Option<&Path>,
    deny_warnings: bool,
    format: Format,
    what_if: bool,
    color: bool,
) -> Result<i32, Error> {
    let paths = expand(files)?;
    let color = color && std::io::stdout().is_terminal();
    let mut code = exit::OK;
    let mut summary = Summary::default();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for path in &paths {
        let outcome = match check_one(path, inventory, what_if) {
            Ok((report, scenarios)) => {
                summary.add(&report.findings);
                if report.fails(deny_warnings) {
                    code = code.max(exit::FINDINGS);
                }
                print_report(&report, scenarios.as_ref(), format, color);
                Ok((report, scenarios))
            }
            Err(e) => {
                // A file that cannot be read does not stop the others from being checked.
                eprint!("{}", e.render(color));
                code = code.max(e.exit_code());
                summary.unreadable += 1;
                let file = crate::paths::display(path);
                if matches!(format, Format::Github) {
                    println!("{}", github::file_error(&file, &e.to_string()));
                }
                Err((file, e.to_string()))
            }
        };
        if matches!(format, Format::Json | Format::Sarif) {
            outcomes.push(outcome);
        }
    }
    match format {
        Format::Human | Format::Short | Format::Github => println!("{summary}"),
        Format::Json => print_document(&json_document(&outcomes, &summary), &summary),
        Format::Sarif => print_document(&sarif_document(&outcomes, &summary), &summary),
    }
    Ok(code)
}

/// Checks one file, and runs its what-if scenarios when asked.
fn check_one(path: &Path, inventory: Option<&Path>, what_if: bool) -> Result<Checked, Error> {
    let inv = inventory_for(path, inventory)?;
    if what_if {
        whatif::check_file(path, inv.as_ref())
    } else {
        check::check_file(path, inv.as_ref()).map(|report| (report, None))
    }
}

/// The files to check, in order and each once: an argument naming a file is taken as it is;
/// one with `*`, `?` or `[` is a glob, expanded here so quoted globs work on every shell.
/// A glob that matches no file is a usage error.
fn expand(args: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut add = |path: PathBuf| {
        if !files.contains(&path) {
            files.push(path);
        }
    };
    for arg in args {
        let text = arg.to_string_lossy();
        if arg.exists() || !text.contains(['*', '?', '[']) {
            add(arg.clone());
            continue;
        }
        let matches = glob::glob(&text)
            .map_err(|e| Error::Usage(format!("`{text}` is not a valid glob: {}", e.msg)))?;
        let mut found: Vec<PathBuf> = matches
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        if found.is_empty() {
            return Err(Error::Usage(format!("`{text}` matches no file")));
        }
        found.sort();
        found.into_iter().for_each(&mut add);
    }
    Ok(files)
}

/// Prints one file's findings in the formats that stream (human, short, github); the human
/// form also lists the what-if scenarios, one line each.
fn print_report(report: &Report, scenarios: Option<&WhatIf>, format: Format, color: bool) {
    match format {
        Format::Human => {
            for f in &report.findings {
                println!(
                    "{}",
                    render(f, &report.sources, RenderOptions { color, width: 100 })
                );
            }
            if let Some(w) = scenarios {
                print!("{}", whatif::summary(w));
            }
            println!("{}", verdict(report));
        }
        Format::Short => {
            for f in &report.findings {
                println!("{}", summary_line(f));
            }
            println!("{}", verdict(report));
        }
        Format::Github => {
            for f in &report.findings {
                println!("{}", github::command(f, &report.sources, &report.name));
            }
        }
        Format::Json | Format::Sarif => {}
    }
}

/// A machine-readable document on stdout, and the summary line on stderr.
fn print_document(document: &serde_json::Value, summary: &Summary) {
    println!(
        "{}",
        serde_json::to_string_pretty(document).unwrap_or_default()
    );
    crate::verbosity::inform!("{summary}");
}

/// `{"files": [...], "summary": {...}}`: for each file its counts, the dry run, every
/// finding and the what-if scenarios when asked for, or why it could not be checked.
fn json_document(outcomes: &[Outcome], summary: &Summary) -> serde_json::Value {
    let files: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|outcome| match outcome {
            Ok((report, scenarios)) => {
                let mut file = serde_json::json!({
                    "file": report.name,
                    "errors": report.count(Severity::Error),
                    "warnings": report.count(Severity::Warning),
                    "notes": report.count(Severity::Note),
                    "dry_run": report.dry_run,
                    "findings": report
                        .findings
                        .iter()
                        .map(|f| JsonFinding::new(f, &report.sources, &report.name))
                        .collect::<Vec<_>>(),
                });
                if let (Some(w), Some(map)) = (scenarios, file.as_object_mut()) {
                    map.insert("what_if".into(), whatif::json(w));
                }
                file
            }
            Err((file, error)) => serde_json::json!({ "file": file, "error": error }),
        })
        .collect();
    serde_json::json!({ "files": files, "summary": summary })
}

/// The SARIF log of all files.
fn sarif_document(outcomes: &[Outcome], summary: &Summary) -> serde_json::Value {
    let files: Vec<FileFindings> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .map(|(report, _)| FileFindings {
            file: &report.name,
            findings: &report.findings,
            sources: &report.sources,
        })
        .collect();
    let unreadable: Vec<(String, String)> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().err().cloned())
        .collect();
    serde_json::to_value(sarif::log(&files, &unreadable, summary)).unwrap_or_default()
}

/// The last line of a file in the human and short formats: its counts and what the dry run
/// did.
fn verdict(report: &Report) -> String {
    let errors = report.count(Severity::Error);
    let warnings = report.count(Severity::Warning);
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    let head = if errors + warnings == 0 {
        format!("{}: ok", report.name)
    } else {
        format!(
            "{}: {}, {}",
            report.name,
            plural(errors, "error"),
            plural(warnings, "warning")
        )
    };
    match &report.dry_run {
        Some(d) if d.completed => format!(
            "{head} (dry run: {} simulated, {}{})",
            human(d.simulated),
            plural(d.jobs, "job"),
            if d.skipped > 0 {
                format!(", {} skipped: already done", d.skipped)
            } else {
                String::new()
            }
        ),
        Some(_) => format!("{head} (dry run stopped at the error)"),
        None if errors > 0 => format!("{head} (dry run skipped: fix the errors first)"),
        None => head,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_expand_in_order_and_files_count_once() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.rhai", "a.rhai", "notes.txt"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.rhai")).unwrap();
        let glob = dir.path().join("*.rhai");
        let a = dir.path().join("a.rhai");
        let files = expand(&[a.clone(), glob, dir.path().join("missing.rhai")]).unwrap();
        assert_eq!(
            files,
            [
                a,
                dir.path().join("b.rhai"),
                dir.path().join("missing.rhai")
            ],
            "a file named twice is checked once; folders are not files; a missing file is \
             left for check to report"
        );
    }

    #[test]
    fn a_glob_matching_nothing_or_malformed_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let none = dir.path().join("*.rhai");
        let err = expand(std::slice::from_ref(&none)).unwrap_err();
        assert!(
            matches!(&err, Error::Usage(m) if m.contains(&*none.to_string_lossy()) && m.contains("matches no file")),
            "{err}"
        );
        let err = expand(&[PathBuf::from("plans/[a.rhai")]).unwrap_err();
        assert!(
            matches!(&err, Error::Usage(m) if m.contains("not a valid glob")),
            "{err}"
        );
    }

    #[test]
    fn a_file_whose_name_looks_like_a_glob_is_taken_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("plan[1].rhai");
        std::fs::write(&odd, "").unwrap();
        assert_eq!(expand(std::slice::from_ref(&odd)).unwrap(), [odd]);
    }
}
