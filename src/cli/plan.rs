//! `runbook plan FILE` and `runbook plan --compare OLD NEW`.

use crate::check::inventory_for;
use crate::error::{exit, Error};
use crate::plan::{self, compare, render, revision, Outcome};
use clap::ValueEnum;
use std::io::IsTerminal;
use std::path::Path;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PlanFormat {
    /// Tables for a terminal.
    Text,
    /// A pull-request comment, with a Mermaid Gantt chart of the lanes.
    Markdown,
    /// JSON (structure in docs/plan.md).
    Json,
}

fn print_json(value: &serde_json::Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Prints the plan of `file`, or its findings when it has errors (exit 1).
pub fn plan_file(
    file: &Path,
    inventory: Option<&Path>,
    format: PlanFormat,
    color: bool,
    sets: &[(String, String)],
) -> Result<i32, Error> {
    let text = crate::config::read_text(file)?;
    crate::check::params::values_for(&crate::paths::display(file), &text, sets)?;
    let inv = inventory_for(file, inventory)?;
    let outcome = plan::plan_file_params(file, inv.as_ref(), sets)?;
    Ok(print_outcome(&outcome, format, color))
}

fn print_outcome(outcome: &Outcome, format: PlanFormat, color: bool) -> i32 {
    let color = color && std::io::stdout().is_terminal();
    match (outcome, format) {
        (Outcome::Planned(p), PlanFormat::Text) => out!("{}", render::text(p)),
        (Outcome::Planned(p), PlanFormat::Markdown) => out!("{}", render::markdown(p)),
        (Outcome::Planned(p), PlanFormat::Json) => outln!("{}", render::json(p)),
        (Outcome::Rejected(r), PlanFormat::Text) => out!("{}", render::rejected_text(r, color)),
        (Outcome::Rejected(r), PlanFormat::Markdown) => out!("{}", render::rejected_markdown(r)),
        (Outcome::Rejected(r), PlanFormat::Json) => print_json(&render::rejected_json(r)),
    }
    match outcome {
        Outcome::Planned(_) => exit::OK,
        Outcome::Rejected(_) => exit::FINDINGS,
    }
}

/// The plan of `spec` (a file or `REV:PATH`), with `--inventory` or the inventory the
/// working tree's `runbook.toml` names for it.
fn plan_of(spec: &str, inventory: Option<&Path>) -> Result<Outcome, Error> {
    let source = revision::read(spec)?;
    let inv = inventory_for(&source.config_path, inventory)?;
    Ok(plan::plan_text(
        &source.name,
        &source.text,
        Some(&source.root),
        inv.as_ref(),
    ))
}

/// Prints how the plan changes from `old` to `new`; when either has errors, prints its
/// findings instead (exit 1).
pub fn compare_files(
    old: &str,
    new: &str,
    inventory: Option<&Path>,
    format: PlanFormat,
    color: bool,
) -> Result<i32, Error> {
    let (old, new) = (plan_of(old, inventory)?, plan_of(new, inventory)?);
    match (old, new) {
        (Outcome::Planned(old), Outcome::Planned(new)) => {
            let c = compare::compare(*old, *new);
            match format {
                PlanFormat::Text => out!("{}", compare::text(&c)),
                PlanFormat::Markdown => out!("{}", compare::markdown(&c)),
                PlanFormat::Json => print_json(&compare::json(&c)),
            }
            Ok(exit::OK)
        }
        (old, new) if matches!(format, PlanFormat::Json) => {
            let rejected = |side: &Outcome| match side {
                Outcome::Rejected(r) => render::rejected_json(r),
                Outcome::Planned(_) => serde_json::Value::Null,
            };
            print_json(&serde_json::json!({
                "format": compare::JSON_FORMAT,
                "error": "a runbook has errors",
                "old": rejected(&old),
                "new": rejected(&new),
            }));
            Ok(exit::FINDINGS)
        }
        (old, new) => {
            for side in [&old, &new] {
                if matches!(side, Outcome::Rejected(_)) {
                    print_outcome(side, format, color);
                }
            }
            Ok(exit::FINDINGS)
        }
    }
}
