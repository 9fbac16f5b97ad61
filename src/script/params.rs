//! A runbook's parameters: what `param(name, #{ ... })` declares (its type, choices, default
//! and help), the values `--set name=value` gives, checked against the declarations before
//! anything runs, and the combinations of choices `check` dry-runs. Values are kept as the
//! text `--set` takes (`web-01,web-02` for vms), the form the journal records.

use super::options::Literal;
use crate::clock::parse_duration;
use crate::diagnostics::did_you_mean;
use rhai::Dynamic;
use std::collections::BTreeMap;

/// The types a parameter may have, as `type:` names them.
pub const TYPES: &[&str] = &["string", "int", "bool", "duration", "vms"];

/// The most combinations of choices `check` dry-runs; beyond, the defaults and each choice once.
pub const MAX_COMBINATIONS: usize = 16;

/// A parameter's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Int,
    Bool,
    Duration,
    Vms,
}

impl ParamType {
    fn parse(text: &str) -> Option<ParamType> {
        Some(match text {
            "string" => ParamType::String,
            "int" => ParamType::Int,
            "bool" => ParamType::Bool,
            "duration" => ParamType::Duration,
            "vms" => ParamType::Vms,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Bool => "bool",
            ParamType::Duration => "duration",
            ParamType::Vms => "vms",
        }
    }
}

/// A declared parameter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Declared {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ParamType,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// The default, as `--set` would give it; none: the parameter is required.
    pub default: Option<String>,
    pub help: Option<String>,
    /// The line of the declaration in the runbook (0 when declared while running).
    pub line: usize,
}

/// Values of parameters by name, as text.
pub type Values = BTreeMap<String, String>;

/// A literal as the text `--set` would give, for defaults and choices.
fn text_of(lit: &Literal) -> Option<String> {
    match lit {
        Literal::Str(s) => Some(s.clone()),
        Literal::Int(i) => Some(i.to_string()),
        Literal::Bool(b) => Some(b.to_string()),
        Literal::Array(items) => items
            .iter()
            .map(|i| match i {
                Literal::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        Literal::Float(_) | Literal::Other(_) => None,
    }
}

impl Declared {
    /// The declaration `param(name, opts)` makes, from its options' values (literals in the
    /// source, or values at run time); a message when they do not make one.
    pub fn from_options(
        name: &str,
        opts: &BTreeMap<String, Literal>,
        line: usize,
    ) -> Result<Declared, String> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "parameter name `{name}` must be letters, digits, `_` or `-` (it is written `--set {name}=...`)"
            ));
        }
        let default = opts.get("default");
        let ty = match opts.get("type") {
            Some(Literal::Str(t)) => ParamType::parse(t).ok_or_else(|| {
                let hint = did_you_mean(t, TYPES.iter().copied())
                    .map(|s| format!("; did you mean \"{s}\"?"))
                    .unwrap_or_default();
                format!(
                    "parameter `{name}` has an unknown type \"{t}\": use one of {}{hint}",
                    TYPES.join(", ")
                )
            })?,
            Some(_) => return Err(format!("the type of parameter `{name}` must be a string")),
            None => match default {
                Some(Literal::Bool(_)) => ParamType::Bool,
                Some(Literal::Int(_)) => ParamType::Int,
                Some(Literal::Array(_)) => ParamType::Vms,
                _ => ParamType::String,
            },
        };
        let choices = match opts.get("choices") {
            None => Vec::new(),
            Some(Literal::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|i| match i {
                    Literal::Str(s) => Some(s.clone()),
                    Literal::Int(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("the choices of parameter `{name}` must be strings"))?,
            Some(_) => {
                return Err(format!(
                    "the choices of parameter `{name}` must be a non-empty array of strings"
                ))
            }
        };
        if !choices.is_empty() && !matches!(ty, ParamType::String | ParamType::Int) {
            return Err(format!(
                "parameter `{name}` of type {} cannot have choices (only string and int ones can)",
                ty.as_str()
            ));
        }
        let help = match opts.get("help") {
            None => None,
            Some(Literal::Str(s)) => Some(s.clone()),
            Some(_) => return Err(format!("the help of parameter `{name}` must be a string")),
        };
        let mut declared = Declared {
            name: name.to_string(),
            ty,
            choices,
            default: None,
            help,
            line,
        };
        for choice in &declared.choices {
            declared
                .value(choice)
                .map_err(|e| format!("a choice of parameter `{name}`: {e}"))?;
        }
        if let Some(lit) = default {
            let text = text_of(lit).ok_or_else(|| {
                format!("the default of parameter `{name}` must be a string, number, boolean or array of strings")
            })?;
            let value = declared
                .value(&text)
                .map_err(|e| format!("the default of parameter `{name}`: {e}"))?;
            declared.default = Some(value);
        }
        Ok(declared)
    }

    /// Whether the parameter needs a value from `--set`.
    pub fn required(&self) -> bool {
        self.default.is_none()
    }

    /// `text` as a value of this parameter, in its usual form; why not, with the closest
    /// choice when it is one of them misspelt.
    pub fn value(&self, text: &str) -> Result<String, String> {
        let text = text.trim();
        if text.is_empty() && matches!(self.ty, ParamType::String | ParamType::Vms) {
            return Err(format!(
                "an empty value is not a {}",
                if self.ty == ParamType::Vms {
                    "list of VM names"
                } else {
                    "value"
                }
            ));
        }
        let value = match self.ty {
            ParamType::String => text.to_string(),
            ParamType::Int => text
                .parse::<i64>()
                .map_err(|_| format!("\"{text}\" is not a whole number"))?
                .to_string(),
            ParamType::Bool => match text.to_ascii_lowercase().as_str() {
                "true" => "true".into(),
                "false" => "false".into(),
                _ => return Err(format!("\"{text}\" is not true or false")),
            },
            ParamType::Duration => {
                parse_duration(text).map_err(|e| format!("\"{text}\" is not a duration: {e}"))?;
                text.to_string()
            }
            ParamType::Vms => text
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect::<Vec<_>>()
                .join(","),
        };
        if !self.choices.is_empty() && !self.choices.contains(&value) {
            let hint = did_you_mean(&value, self.choices.iter().map(String::as_str))
                .map(|s| format!("; did you mean \"{s}\"?"))
                .unwrap_or_default();
            return Err(format!(
                "\"{value}\" is not one of {}{hint}",
                quoted(&self.choices)
            ));
        }
        Ok(value)
    }

    /// The value the script sees for `text` (a value [`Declared::value`] accepted).
    pub fn dynamic(&self, text: &str) -> Dynamic {
        match self.ty {
            ParamType::String | ParamType::Duration => Dynamic::from(text.to_string()),
            ParamType::Int => Dynamic::from(text.parse::<i64>().unwrap_or_default()),
            ParamType::Bool => Dynamic::from(text == "true"),
            ParamType::Vms => Dynamic::from_array(
                text.split(',')
                    .filter(|n| !n.is_empty())
                    .map(|n| Dynamic::from(n.to_string()))
                    .collect(),
            ),
        }
    }

    /// What `check` dry-runs with when a required parameter has no value.
    pub fn stand_in(&self) -> String {
        if let Some(first) = self.choices.first() {
            return first.clone();
        }
        match self.ty {
            ParamType::String => format!("<{}>", self.name),
            ParamType::Int => "0".into(),
            ParamType::Bool => "false".into(),
            ParamType::Duration => "1m".into(),
            ParamType::Vms => String::new(),
        }
    }

    /// The parameter in a line: `down_site` (string, one of "primary", "recovery"; default "primary").
    pub fn describe(&self) -> String {
        let mut out = format!("{} ({}", self.name, self.ty.as_str());
        if !self.choices.is_empty() {
            out.push_str(&format!(", one of {}", quoted(&self.choices)));
        }
        match &self.default {
            Some(d) => out.push_str(&format!("; default \"{d}\")")),
            None => out.push_str("; required)"),
        }
        out
    }
}

fn quoted(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("\"{v}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `name=value`, as `--set` takes it.
pub fn parse_set(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("`{arg}` is not NAME=VALUE")),
    }
}

/// The values `sets` give the parameters `declared`, defaults filling the rest. An unknown
/// name (with the closest declared one), a bad value or, when `require`, a required
/// parameter without a value is an error that says so.
pub fn resolve(
    declared: &[Declared],
    sets: &[(String, String)],
    require: bool,
) -> Result<Values, String> {
    let mut values = Values::new();
    for (name, text) in sets {
        let Some(decl) = declared.iter().find(|d| &d.name == name) else {
            let known: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
            let hint = match did_you_mean(name, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? "),
                None => String::new(),
            };
            return Err(if known.is_empty() {
                format!("--set {name}: the runbook declares no parameters")
            } else {
                format!(
                    "--set {name}: the runbook has no parameter `{name}`; {hint}it declares {}",
                    known.join(", ")
                )
            });
        };
        let value = decl
            .value(text)
            .map_err(|e| format!("--set {name}={text}: {e}"))?;
        if values.get(name).is_some_and(|v| v != &value) {
            return Err(format!(
                "--set {name} is given twice, with different values"
            ));
        }
        values.insert(name.clone(), value);
    }
    let mut missing = Vec::new();
    for decl in declared {
        if values.contains_key(&decl.name) {
            continue;
        }
        match &decl.default {
            Some(d) => {
                values.insert(decl.name.clone(), d.clone());
            }
            None => missing.push(decl),
        }
    }
    if require && !missing.is_empty() {
        let shown: Vec<String> = missing.iter().map(|d| d.describe()).collect();
        let sets: Vec<String> = missing
            .iter()
            .map(|d| format!("--set {}=...", d.name))
            .collect();
        return Err(format!(
            "the runbook needs a value for {}: pass {}",
            shown.join(", "),
            sets.join(" ")
        ));
    }
    Ok(values)
}

/// The parameters' values for each dry run of `check`: every combination of the choices of
/// the parameters `fixed` does not set (when there are at most [`MAX_COMBINATIONS`]), else
/// the defaults and each choice once; the first is always the defaults. Required
/// parameters without a value get their stand-in.
pub fn combinations(declared: &[Declared], fixed: &Values) -> Vec<Values> {
    let mut base = fixed.clone();
    for decl in declared {
        base.entry(decl.name.clone())
            .or_insert_with(|| decl.default.clone().unwrap_or_else(|| decl.stand_in()));
    }
    let varying: Vec<&Declared> = declared
        .iter()
        .filter(|d| d.choices.len() > 1 && !fixed.contains_key(&d.name))
        .collect();
    let total = varying
        .iter()
        .try_fold(1usize, |n, d| n.checked_mul(d.choices.len()));
    let mut out = vec![base.clone()];
    let mut push = |values: Values| {
        if !out.contains(&values) {
            out.push(values);
        }
    };
    match total {
        Some(total) if total <= MAX_COMBINATIONS => {
            for mut n in 0..total {
                let mut values = base.clone();
                for d in &varying {
                    values.insert(d.name.clone(), d.choices[n % d.choices.len()].clone());
                    n /= d.choices.len();
                }
                push(values);
            }
        }
        _ => {
            for d in &varying {
                for choice in &d.choices {
                    let mut values = base.clone();
                    values.insert(d.name.clone(), choice.clone());
                    push(values);
                }
            }
        }
    }
    out
}

/// `name=value, name=value` for the parameters of `values` whose choices vary in `check`.
pub fn label(values: &Values, declared: &[Declared]) -> String {
    declared
        .iter()
        .filter(|d| d.choices.len() > 1)
        .filter_map(|d| values.get(&d.name).map(|v| format!("{}={v}", d.name)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(name: &str, opts: &[(&str, Literal)]) -> Result<Declared, String> {
        let map = opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Declared::from_options(name, &map, 1)
    }

    fn strs(items: &[&str]) -> Literal {
        Literal::Array(items.iter().map(|s| Literal::Str(s.to_string())).collect())
    }

    fn site() -> Declared {
        decl(
            "down_site",
            &[
                ("choices", strs(&["primary", "recovery"])),
                ("default", Literal::Str("primary".into())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn declarations_are_checked_and_types_inferred() {
        assert_eq!(site().ty, ParamType::String);
        assert_eq!(
            decl("n", &[("default", Literal::Int(3))]).unwrap().ty,
            ParamType::Int
        );
        assert!(decl("d", &[("type", Literal::Str("durration".into()))])
            .unwrap_err()
            .contains("did you mean \"duration\""));
        let outside = decl(
            "s",
            &[
                ("choices", strs(&["a", "b"])),
                ("default", Literal::Str("c".into())),
            ],
        );
        assert!(outside.unwrap_err().contains("not one of"));
        assert!(decl("bad name", &[]).is_err());
        let d = decl(
            "t",
            &[
                ("type", Literal::Str("duration".into())),
                ("default", Literal::Str("soon".into())),
            ],
        );
        assert!(d.unwrap_err().contains("not a duration"));
    }

    #[test]
    fn sets_are_resolved_with_did_you_mean() {
        let declared = vec![site()];
        let e = resolve(&declared, &[("down_sit".into(), "primary".into())], true).unwrap_err();
        assert!(e.contains("did you mean `down_site`"), "{e}");
        let e = resolve(&declared, &[("down_site".into(), "recovry".into())], true).unwrap_err();
        assert!(e.contains("did you mean \"recovery\""), "{e}");
        let v = resolve(&declared, &[], true).unwrap();
        assert_eq!(v["down_site"], "primary");
        let needed = decl("tier", &[("type", Literal::Str("vms".into()))]).unwrap();
        let e = resolve(std::slice::from_ref(&needed), &[], true).unwrap_err();
        assert!(e.contains("--set tier=..."), "{e}");
        let v = resolve(&[needed], &[("tier".into(), " a, b ,".into())], true).unwrap();
        assert_eq!(v["tier"], "a,b");
    }

    #[test]
    fn combinations_are_bounded_and_start_with_the_defaults() {
        let a = site();
        let b = decl(
            "tier",
            &[
                ("choices", strs(&["web", "app", "db"])),
                ("default", Literal::Str("app".into())),
            ],
        )
        .unwrap();
        let all = combinations(&[a.clone(), b.clone()], &Values::new());
        assert_eq!(all.len(), 6);
        assert_eq!(all[0]["down_site"], "primary");
        assert_eq!(all[0]["tier"], "app");
        let fixed: Values = [("tier".to_string(), "web".to_string())].into();
        assert_eq!(combinations(&[a, b], &fixed).len(), 2);
        let many: Vec<Declared> = (0..5)
            .map(|i| {
                decl(
                    &format!("p{i}"),
                    &[
                        ("choices", strs(&["x", "y"])),
                        ("default", Literal::Str("x".into())),
                    ],
                )
                .unwrap()
            })
            .collect();
        // 32 combinations: the defaults, then each other choice once.
        assert_eq!(combinations(&many, &Values::new()).len(), 6);
    }
}
