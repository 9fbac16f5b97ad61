//! What a runbook may use: the engine's limits, identical in debug and release builds, and
//! the symbols it may not call. The engine sets them, the checks and the error messages
//! quote them.

pub const OPERATIONS: u64 = 5_000_000;
pub const CALL_LEVELS: usize = 48;
pub const EXPR_DEPTH: usize = 64;
pub const FN_EXPR_DEPTH: usize = 32;
pub const STRING_SIZE: usize = 1 << 20;
pub const ARRAY_SIZE: usize = 10_000;
pub const MAP_SIZE: usize = 10_000;
pub const MODULES: usize = 32;

/// Symbols a runbook may not use: dynamic dispatch hides calls from the checks; `sleep` and
/// `exit` bypass the run's clock and outcome.
pub const FORBIDDEN: &[&str] = &["eval", "Fn", "sleep", "exit"];
