//! `runbook`: a command-line interpreter for disaster-recovery runbooks written in Rhai.
//!
//! # Layout
//!
//! - [`cli`]: clap types and command dispatch (`check`, `plan`, `run`, `api`, `explain`, ...).
//! - [`check`]: the static checks (an AST walk) and the dry run on the simulator.
//! - [`plan`]: the dry run shown as a plan (times, lanes, states, estimated recovery time),
//!   and the comparison of two plans.
//! - [`run`]: executing a runbook with live progress and a summary.
//! - [`script`]: the engine builder, the primitive registry, the primitives' host, options,
//!   the module resolver, the embedded stdlib and the editor definitions.
//! - [`backend`]: the `Backend` trait and the in-process ASR simulator with its inventory.
//! - [`diagnostics`]: findings (code, severity, location, help), the explanation of each
//!   code, and their rendering (human, JSON, SARIF, GitHub workflow commands).
//! - [`lsp`]: `runbook lsp`, the language server editors start (diagnostics, hover,
//!   completion, definitions, quick fixes).
//! - [`clock`], [`config`], [`error`], [`files`], [`paths`]: time, `runbook.toml`, errors,
//!   reading the user's files (inside their project, regular, capped) and paths.
//!
//! Dependencies point one way: `cli` uses `plan`, `check` and `run`; `plan` uses `check`;
//! those use `script`, which uses `backend`; everything uses `diagnostics`.

#![warn(clippy::print_stdout, clippy::print_stderr)]

#[macro_use]
mod output;

pub mod actions;
pub mod backend;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod diagnostics;
pub mod error;
pub mod estate;
pub mod files;
pub mod journal;
pub mod lsp;
pub mod notify;
pub mod paths;
pub mod plan;
pub mod report;
pub mod run;
pub mod script;
pub mod simulator;
pub mod verbosity;
