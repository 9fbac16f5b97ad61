//! `param(name, opts)`: a runbook's input. Its value was resolved before the run started
//! (from `--set`, its default, or the journal on resume; see `script::params`); here the
//! declaration is read again as the script makes it, and the value handed over in its type.

use super::{Call, Host, Mode, Raise};
use crate::diagnostics::{Code, Finding};
use crate::script::options::Literal;
use crate::script::params::Declared;
use rhai::Dynamic;
use std::collections::BTreeMap;

/// `param(name, [opts])`.
pub(in crate::script) fn param(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let name = h.text_arg(call)?;
    let opts = h.opts(call)?;
    let literals: BTreeMap<String, Literal> = ["type", "choices", "default", "help"]
        .into_iter()
        .filter_map(|k| {
            opts.get(k)
                .map(|v| (k.to_string(), Literal::from_dynamic(v)))
        })
        .collect();
    let line = call.ctx.call_position().line().unwrap_or(0);
    let decl = Declared::from_options(&name, &literals, line).map_err(|message| {
        h.fail(
            call.ctx,
            Finding::new(Code::BadParam, message).label("this parameter"),
        )
    })?;
    if let Some((_, value)) = h.used.borrow().iter().find(|(d, _)| d.name == decl.name) {
        // Declared again (a function called twice): the same value.
        return Ok(decl.dynamic(value));
    }
    let given = h.params.borrow().get(&decl.name).cloned();
    let text = match (given, &decl.default) {
        (Some(text), _) => text,
        (None, Some(default)) => default.clone(),
        (None, None) if h.mode == Mode::Check => decl.stand_in(),
        (None, None) => {
            return Err(h.refuse(
                call.ctx,
                Finding::new(
                    Code::BadParam,
                    format!("parameter `{}` has no value", decl.name),
                )
                .label("declared here")
                .help(format!(
                    "declare it in the runbook itself with a literal name and option map, so `--set {}=...` can give it a value, or give it a default",
                    decl.name
                )),
            ))
        }
    };
    let value = decl.value(&text).map_err(|message| {
        h.refuse(
            call.ctx,
            Finding::new(
                Code::BadParam,
                format!("parameter `{}`: {message}", decl.name),
            )
            .label("declared here"),
        )
    })?;
    let out = decl.dynamic(&value);
    h.used.borrow_mut().push((decl, value));
    Ok(out)
}
