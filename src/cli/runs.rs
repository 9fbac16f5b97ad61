//! The commands about runs kept in the project's journal: `resume`, `runs`, `show`,
//! `approve` and `report`.

use crate::error::{exit, Error};
use crate::journal::{self, runs, store};
use crate::report;
use crate::run::{self, ResumeOptions};
use clap::{Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Resume an interrupted or crashed run: replays its journal, then goes on.
    Resume {
        /// The run's id (or a unique prefix), as `runbook runs` lists it.
        run: String,
        /// The runbook project (default: the nearest folder from here up with runs or
        /// runbook.toml).
        #[arg(long, value_name = "DIR")]
        project: Option<PathBuf>,
        /// Resume even though the runbook or a module changed since the run started (the new
        /// text is dry-run against the live state first).
        #[arg(long)]
        allow_changed: bool,
        /// Plain progress lines instead of spinners.
        #[arg(long)]
        no_progress: bool,
        /// A parameter's value, NAME=VALUE: a resume goes on with the values the run
        /// started with, and refuses one that differs.
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = crate::script::params::parse_set)]
        set: Vec<(String, String)>,
    },
    /// List the project's runs and their state.
    Runs {
        /// The runbook project (default: the nearest folder from here up with runs or
        /// runbook.toml).
        #[arg(long, value_name = "DIR")]
        project: Option<PathBuf>,
        /// A table, or JSON for tools.
        #[arg(long, value_enum, default_value = "text")]
        format: ListFormat,
        /// Follow a live run's records as they are written, until it ends: the run named
        /// (its id or a unique prefix), else the newest one that is running.
        #[arg(long, value_name = "RUN", num_args = 0..=1, default_missing_value = "")]
        watch: Option<String>,
    },
    /// Print one run's journal, record by record.
    Show {
        /// The run's id (or a unique prefix), as `runbook runs` lists it.
        run: String,
        /// The runbook project (default: the nearest folder from here up with runs or
        /// runbook.toml).
        #[arg(long, value_name = "DIR")]
        project: Option<PathBuf>,
    },
    /// Approve the manual step a run waits at, from another terminal.
    Approve {
        /// The run's id (or a unique prefix), as `runbook runs` lists it.
        run: String,
        /// The step's number (as the run shows it) or its title.
        step: String,
        /// The runbook project (default: the nearest folder from here up with runs or
        /// runbook.toml).
        #[arg(long, value_name = "DIR")]
        project: Option<PathBuf>,
    },
    /// The audit record of a run: timeline, VM states, jobs, approvals, recovery time.
    Report {
        /// The run's id (or a unique prefix), as `runbook runs` lists it.
        run: String,
        /// The runbook project (default: the nearest folder from here up with runs or
        /// runbook.toml).
        #[arg(long, value_name = "DIR")]
        project: Option<PathBuf>,
        /// Markdown (with a Mermaid Gantt chart), JSON (`runbook-report/1`, see
        /// docs/report.md) or a self-contained HTML page.
        #[arg(long, value_enum, default_value = "markdown")]
        format: ReportFormat,
        /// Write it to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Markdown,
    Json,
    Html,
}

pub fn dispatch(command: RunCommand, color: bool) -> Result<i32, Error> {
    match command {
        RunCommand::Resume {
            run,
            project,
            allow_changed,
            no_progress,
            set,
        } => {
            crate::output::survive_hangup();
            run::resume(&ResumeOptions {
                project,
                run,
                allow_changed,
                progress: !no_progress,
                color,
                params: set,
            })
        }
        RunCommand::Runs {
            project,
            format,
            watch: Some(run),
        } => {
            let store = store::discover(project.as_deref())?;
            let _ = format;
            crate::report::watch::follow(
                store.as_ref(),
                Some(run.as_str()).filter(|r| !r.is_empty()),
            )
        }
        RunCommand::Runs {
            project, format, ..
        } => {
            let store = store::discover(project.as_deref())?;
            let list = runs::list(store.as_ref())?;
            match format {
                ListFormat::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                ),
                ListFormat::Text if list.is_empty() => {
                    errln!("{}", store.none_found());
                }
                ListFormat::Text => {
                    let mut table = crate::run::summary::plain_table(vec![
                        "run",
                        "state",
                        "runbook",
                        "target",
                        "operations",
                        "operator",
                        "started",
                    ]);
                    for r in &list {
                        table.add_row(vec![
                            r.id.clone(),
                            r.state.clone(),
                            r.runbook.clone(),
                            r.target.clone(),
                            r.operations.to_string(),
                            r.operator.clone(),
                            r.started.clone(),
                        ]);
                    }
                    outln!("{table}");
                }
            }
            Ok(exit::OK)
        }
        RunCommand::Show { run, project } => {
            let store = store::discover(project.as_deref())?;
            let id = runs::find(store.as_ref(), &run)?;
            let loaded = store.load(&id).map_err(Error::Usage)?;
            out!("{}", report::show(&id, &loaded));
            Ok(exit::OK)
        }
        RunCommand::Approve { run, step, project } => {
            let store = store::discover(project.as_deref())?;
            let id = runs::find(store.as_ref(), &run)?;
            let given =
                journal::approvals::approve(store.as_ref(), &id, &step, &journal::operator())?;
            errln!(
                "approved step {} of run {id} as {} at {}",
                given.step,
                given.by,
                given.at
            );
            Ok(exit::OK)
        }
        RunCommand::Report {
            run,
            project,
            format,
            output,
        } => {
            let store = store::discover(project.as_deref())?;
            let id = runs::find(store.as_ref(), &run)?;
            let loaded = store.load(&id).map_err(Error::Usage)?;
            let audit = report::Audit::of(&id, &loaded)?;
            let text = match format {
                ReportFormat::Markdown => report::markdown(&audit),
                ReportFormat::Json => report::json(&audit),
                ReportFormat::Html => report::html(&audit),
            };
            match output {
                Some(path) => {
                    std::fs::write(&path, text).map_err(|e| Error::io(&path, &e))?;
                    crate::verbosity::inform!("wrote {}", crate::paths::display(&path));
                }
                None => out!("{text}"),
            }
            Ok(exit::OK)
        }
    }
}
