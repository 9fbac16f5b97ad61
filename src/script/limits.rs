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

/// How long one check may take: every dry run of a runbook (the check's and its what-if
/// scenarios) stops once `deadline` has passed. A script stopped by it ends with this value
/// as its termination token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeLimit {
    /// The time allowed, for messages.
    pub allowed: std::time::Duration,
    pub deadline: std::time::Instant,
}

impl TimeLimit {
    /// `allowed` from now on.
    pub fn from_now(allowed: std::time::Duration) -> Self {
        TimeLimit {
            allowed,
            deadline: std::time::Instant::now() + allowed,
        }
    }

    pub fn passed(&self) -> bool {
        std::time::Instant::now() >= self.deadline
    }
}

/// Symbols a runbook may not use: dynamic dispatch hides calls from the checks; `sleep` and
/// `exit` bypass the run's clock and outcome.
pub const FORBIDDEN: &[&str] = &["eval", "Fn", "sleep", "exit"];
