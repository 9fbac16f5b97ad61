//! The integration tests, one binary with a module per area.

#[path = "../common/mod.rs"]
mod common;

mod api;
mod azure;
mod bad_input;
mod fixtures;
mod plan;
mod runbooks;
mod whatif;
