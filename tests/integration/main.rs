//! The integration tests, one binary with a module per area.

#[path = "../common/mod.rs"]
mod common;

mod api;
mod azure;
mod bad_input;
mod durable;
mod explain;
mod faults;
mod fixtures;
mod formats;
mod plan;
mod recovery;
mod reports;
mod runbooks;
mod whatif;
