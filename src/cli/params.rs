//! `runbook params FILE`: the parameters a runbook declares, found without running it.

use super::runs::ListFormat;
use crate::error::{exit, Error};
use std::path::Path;

/// Prints the parameters of `file` as a table or JSON.
pub fn list(file: &Path, format: ListFormat) -> Result<i32, Error> {
    let text = crate::config::read_text(file)?;
    let name = crate::paths::display(file);
    let declared = crate::check::params::declared_in(&name, &text)?;
    match format {
        ListFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&declared).unwrap_or_default()
        ),
        ListFormat::Text if declared.is_empty() => {
            errln!("{name} declares no parameters");
        }
        ListFormat::Text => {
            let mut table = crate::run::summary::plain_table(vec![
                "parameter",
                "type",
                "choices",
                "default",
                "help",
            ]);
            for d in &declared {
                table.add_row(vec![
                    d.name.clone(),
                    d.ty.as_str().to_string(),
                    d.choices.join(", "),
                    d.default.clone().unwrap_or_else(|| "(required)".into()),
                    d.help.clone().unwrap_or_default(),
                ]);
            }
            outln!("{table}");
            outln!("set them with --set NAME=VALUE on run, check and plan");
        }
    }
    Ok(exit::OK)
}
