//! The integration tests, one binary with a module per area.

#[path = "../common/mod.rs"]
mod common;

mod action_process;
mod action_resume;
mod actions;
mod api;
mod azure;
mod bad_input;
mod conformance;
mod durable;
mod explain;
mod faults;
mod fixtures;
mod formats;
mod fuzz;
mod hostile;
mod live;
mod located;
mod lro;
mod lsp;
mod mermaid;
mod notify;
mod options;
mod params;
mod pipes;
mod plan;
mod plans;
mod recovery;
mod reports;
mod rules;
mod runbooks;
mod runs;
mod shell;
mod team;
mod whatif;
