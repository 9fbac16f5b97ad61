//! The totals of one `check` over several files: its last line, and the summary object of
//! the machine-readable formats.

use super::{Finding, Severity};
use std::fmt;

/// How many files were checked and what they hold.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Files read and checked.
    pub files: usize,
    pub errors: usize,
    pub warnings: usize,
    pub notes: usize,
    /// Files that could not be read (or whose configuration could not be), so not checked.
    pub unreadable: usize,
}

impl Summary {
    /// Counts one checked file and its findings.
    pub fn add(&mut self, findings: &[Finding]) {
        self.files += 1;
        for finding in findings {
            match finding.severity {
                Severity::Error => self.errors += 1,
                Severity::Warning => self.warnings += 1,
                Severity::Note => self.notes += 1,
            }
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// `checked 3 files: 1 error, 2 warnings`, with notes and unreadable files when there are.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checked {}: {}, {}",
            plural(self.files, "file"),
            plural(self.errors, "error"),
            plural(self.warnings, "warning")
        )?;
        if self.notes > 0 {
            write!(f, ", {}", plural(self.notes, "note"))?;
        }
        if self.unreadable > 0 {
            write!(f, "; {} could not be read", plural(self.unreadable, "file"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Code;

    #[test]
    fn counts_findings_by_severity_and_reads_as_a_sentence() {
        let mut summary = Summary::default();
        summary.add(&[
            Finding::new(Code::NotAllowed, "e"),
            Finding::new(Code::JobNotWaited, "w"),
            Finding::new(Code::NamesNotChecked, "n"),
        ]);
        summary.add(&[]);
        assert_eq!(
            summary.to_string(),
            "checked 2 files: 1 error, 1 warning, 1 note"
        );
        summary.unreadable = 1;
        summary.errors = 0;
        summary.notes = 0;
        assert_eq!(
            summary.to_string(),
            "checked 2 files: 0 errors, 1 warning; 1 file could not be read"
        );
    }
}
