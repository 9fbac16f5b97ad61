//! `runbook explain [CODE]`: the long text of one diagnostic code, or the list of them all.

use crate::diagnostics::{did_you_mean, explain, Code};
use crate::error::{exit, Error};

/// Prints the explanation of `code` (a code such as `RB101` or its slug, in any case), or
/// the list of every code without one.
pub(super) fn explain(code: Option<&str>) -> Result<i32, Error> {
    match code {
        None => out!("{}", explain::list()),
        Some(text) => {
            let code = Code::parse(text).ok_or_else(|| unknown(text))?;
            out!("{}", explain::text(code));
        }
    }
    Ok(exit::OK)
}

/// The usage error for a code that does not exist, with the closest code or slug.
fn unknown(text: &str) -> Error {
    let codes = did_you_mean(
        &text.to_ascii_uppercase(),
        Code::ALL.iter().map(|c| c.as_str()),
    );
    let slugs = did_you_mean(
        &text.to_ascii_lowercase(),
        Code::ALL.iter().map(|c| c.slug()),
    );
    let hint = codes
        .or(slugs)
        .map(|name| format!(": did you mean `{name}`?"))
        .unwrap_or_default();
    Error::Usage(format!(
        "there is no diagnostic code `{text}`{hint} (`runbook explain` lists them)"
    ))
}
