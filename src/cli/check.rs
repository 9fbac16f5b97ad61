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
use crate::config::Config;
use crate::diagnostics::json::JsonFinding;
use crate::diagnostics::{
    github, render, sarif, summary_line, FileFindings, RenderOptions, Severity, Summary, Unreadable,
};
use crate::error::{exit, Error};
use crate::script::limits::TimeLimit;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The file `path` that could not be checked because of `error`.
fn unreadable(path: &Path, error: &Error) -> Unreadable {
    Unreadable {
        file: crate::paths::display(path),
        why: error.to_string(),
        at: error.location(),
    }
}

/// A file's report, and its what-if scenarios when they were asked for and ran.
type Checked = (Report, Option<WhatIf>);

/// The outcome of one file, or why it could not be checked.
type Outcome = Result<Checked, Unreadable>;

/// A file to check, or a glob's match refused (it resolves outside the glob's folder).
type Arg = Result<PathBuf, (PathBuf, Error)>;

/// Checks `files` (paths or globs) and prints the findings in `format`. Returns the exit
/// code: 0 clean, 1 findings that fail the check, 2 a file or configuration that could not
/// be read (the other files are still checked).
pub(super) fn check_files(
    files: &[PathBuf],
    inventory: Option<&Path>,
    flags: &Flags,
    color: bool,
) -> Result<i32, Error> {
    let Flags {
        deny_warnings,
        format,
        what_if,
        time_limit,
        ..
    } = *flags;
    let paths = expand(files)?;
    let sets = sets_of(&paths, &flags.sets)?;
    let color = color && std::io::stdout().is_terminal();
    let mut code = exit::OK;
    let mut summary = Summary::default();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for arg in paths {
        let (path, checked) = match arg {
            Ok(path) => {
                let given = sets.get(&path).map_or(&[][..], Vec::as_slice);
                let checked = check_one(&path, inventory, what_if, time_limit, given);
                (path, checked)
            }
            Err((path, refused)) => (path, Err(refused)),
        };
        let outcome = match checked {
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
                err!("{}", e.render(color));
                code = code.max(e.exit_code());
                summary.unreadable += 1;
                let unreadable = unreadable(&path, &e);
                if matches!(format, Format::Github) {
                    outln!("{}", github::file_error(&unreadable));
                }
                Err(unreadable)
            }
        };
        if matches!(format, Format::Json | Format::Sarif) {
            outcomes.push(outcome);
        }
    }
    match format {
        Format::Human | Format::Short | Format::Github => outln!("{summary}"),
        Format::Json => print_document(&json_document(&outcomes, &summary), &summary),
        Format::Sarif => print_document(&sarif_document(&outcomes, &summary), &summary),
    }
    Ok(code)
}

/// Checks one file within its time limit (`--time-limit`, else its `runbook.toml`'s, else
/// [`check::TIME_LIMIT`]), and runs its what-if scenarios when asked.
fn check_one(
    path: &Path,
    inventory: Option<&Path>,
    what_if: bool,
    time_limit: Option<Duration>,
    sets: &[(String, String)],
) -> Result<Checked, Error> {
    let started = Instant::now();
    let inv = inventory_for(path, inventory)?;
    let limit = match time_limit {
        Some(limit) => limit,
        None => Config::discover(&crate::paths::folder_of(path))?
            .time_limit
            .unwrap_or(check::TIME_LIMIT),
    };
    let limit = TimeLimit {
        allowed: limit,
        deadline: started + limit,
    };
    if what_if {
        whatif::check_file_params(path, inv.as_ref(), limit, sets)
    } else {
        check::check_file_params(path, inv.as_ref(), limit, sets).map(|report| (report, None))
    }
}

/// What `check` was asked to do beyond its files.
#[derive(Debug, Clone)]
pub(super) struct Flags {
    pub deny_warnings: bool,
    pub format: Format,
    pub what_if: bool,
    pub time_limit: Option<Duration>,
    /// `--set NAME=VALUE`.
    pub sets: Vec<(String, String)>,
}

/// The `--set` values each file declares, checked before any file is: a name no file
/// declares (with the closest declared one) or a value a file's declaration refuses is a
/// usage error. Files that cannot be read are left to their check.
fn sets_of(
    paths: &[Arg],
    sets: &[(String, String)],
) -> Result<std::collections::HashMap<PathBuf, Vec<(String, String)>>, Error> {
    let mut out = std::collections::HashMap::new();
    if sets.is_empty() {
        return Ok(out);
    }
    let mut all = Vec::new();
    for path in paths.iter().filter_map(|a| a.as_ref().ok()) {
        let Ok(text) = crate::config::read_text(path) else {
            continue;
        };
        let name = crate::paths::display(path);
        // A runbook that does not parse is reported by its check.
        let Ok(declared) = check::params::declared_in(&name, &text) else {
            continue;
        };
        let mine: Vec<(String, String)> = sets
            .iter()
            .filter(|(n, _)| declared.iter().any(|d| &d.name == n))
            .cloned()
            .collect();
        crate::script::params::resolve(&declared, &mine, false)
            .map_err(|e| Error::Usage(format!("{name}: {e}; nothing was checked")))?;
        all.extend(declared);
        out.insert(path.clone(), mine);
    }
    // A name no file declares: resolved against all of them, for the closest name.
    let unknown: Vec<(String, String)> = sets
        .iter()
        .filter(|(n, _)| !all.iter().any(|d| &d.name == n))
        .cloned()
        .collect();
    if let Some(first) = unknown.first() {
        let e = crate::script::params::resolve(&all, std::slice::from_ref(first), false)
            .err()
            .unwrap_or_default();
        return Err(Error::Usage(format!("{e}; nothing was checked")));
    }
    Ok(out)
}

/// The files to check, in order and each once: an argument naming a file is taken as it is;
/// one with `*`, `?` or `[` is a glob, expanded here so quoted globs work on every shell.
/// A glob that matches no file is a usage error; a match that resolves outside the glob's
/// folder (through a link) is refused, and reported like a file that cannot be read.
fn expand(args: &[PathBuf]) -> Result<Vec<Arg>, Error> {
    let mut files: Vec<Arg> = Vec::new();
    let mut add = |arg: Arg| {
        let path = match &arg {
            Ok(path) | Err((path, _)) => path,
        };
        if !files
            .iter()
            .any(|f| matches!(f, Ok(p) | Err((p, _)) if p == path))
        {
            files.push(arg);
        }
    };
    for arg in args {
        let text = arg.to_string_lossy();
        if arg.exists() || !text.contains(GLOB) {
            add(Ok(arg.clone()));
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
        let base = glob_base(arg);
        for path in found {
            match crate::files::resolve_inside(&path, &base) {
                Ok(_) => add(Ok(path)),
                Err(e) => add(Err((path, e))),
            }
        }
    }
    Ok(files)
}

/// The characters that make an argument a glob.
const GLOB: [char; 3] = ['*', '?', '['];

/// The folder a glob searches: its components before the first with a glob character.
fn glob_base(pattern: &Path) -> PathBuf {
    let base: PathBuf = pattern
        .components()
        .take_while(|c| !c.as_os_str().to_string_lossy().contains(GLOB))
        .collect();
    if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    }
}

/// Prints one file's findings in the formats that stream (human, short, github); the human
/// form also lists the what-if scenarios, one line each.
fn print_report(report: &Report, scenarios: Option<&WhatIf>, format: Format, color: bool) {
    match format {
        Format::Human => {
            for f in &report.findings {
                outln!(
                    "{}",
                    render(f, &report.sources, RenderOptions { color, width: 100 })
                );
            }
            if let Some(w) = scenarios {
                out!("{}", whatif::summary(w));
            }
            outln!("{}", verdict(report));
        }
        Format::Short => {
            for f in &report.findings {
                outln!("{}", summary_line(f));
            }
            outln!("{}", verdict(report));
        }
        Format::Github => {
            for f in &report.findings {
                outln!("{}", github::command(f, &report.sources, &report.name));
            }
        }
        Format::Json | Format::Sarif => {}
    }
}

/// A machine-readable document on stdout, and the summary line on stderr.
fn print_document(document: &serde_json::Value, summary: &Summary) {
    outln!(
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
            Err(u) => {
                let mut file = serde_json::json!({ "file": u.file, "error": u.why });
                if let (Some((path, line, column)), Some(map)) = (&u.at, file.as_object_mut()) {
                    map.insert(
                        "location".into(),
                        serde_json::json!({ "file": path, "line": line, "column": column }),
                    );
                }
                file
            }
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
    let unreadable: Vec<Unreadable> = outcomes
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

    /// The files of `args`, none refused.
    fn accepted(args: Vec<Arg>) -> Vec<PathBuf> {
        args.into_iter().map(|a| a.unwrap()).collect()
    }

    #[test]
    fn glob_matches_through_a_link_out_of_the_globs_folder_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("x.rhai"), "SECRET=1").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.rhai"), "").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("linked")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("x.rhai"), dir.path().join("b.rhai"))
            .unwrap();
        let args = expand(&[dir.path().join("**/*.rhai")]).unwrap();
        let refused: Vec<&PathBuf> = args
            .iter()
            .filter_map(|a| a.as_ref().err())
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            refused,
            [
                &dir.path().join("b.rhai"),
                &dir.path().join("linked/x.rhai")
            ],
            "{args:?}"
        );
        assert!(args
            .iter()
            .any(|a| a.as_ref().ok() == Some(&dir.path().join("a.rhai"))));
        for (_, e) in args.iter().filter_map(|a| a.as_ref().err()) {
            assert!(e.to_string().contains("outside"), "{e}");
        }
    }

    #[test]
    fn globs_expand_in_order_and_files_count_once() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.rhai", "a.rhai", "notes.txt"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.rhai")).unwrap();
        let glob = dir.path().join("*.rhai");
        let a = dir.path().join("a.rhai");
        let files = accepted(expand(&[a.clone(), glob, dir.path().join("missing.rhai")]).unwrap());
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
        assert_eq!(accepted(expand(std::slice::from_ref(&odd)).unwrap()), [odd]);
    }
}
