//! The integration tests, one binary with a module per area.

#[path = "../common/mod.rs"]
mod common;

mod api;
mod azure;
mod bad_input;
mod conformance;
mod durable;
mod explain;
mod fixtures;
mod formats;
mod live;
mod lro;
mod lsp;
mod options;
mod plan;
mod reports;
mod rules;
mod runbooks;
mod whatif;
