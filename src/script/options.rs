//! Strict parsing of option maps against the registry. The same checks serve the static
//! checker (on literal maps in the source) and the primitives at run time.

use super::registry::{OptKind, OptSpec, Primitive, Refused};
use crate::clock::parse_duration;
use crate::diagnostics::{did_you_mean, string_literal, Code};
use rhai::Dynamic;
use std::collections::BTreeMap;
use std::time::Duration;

/// An option value as far as it is known: literals in the source, or values at run time.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    Array(Vec<Literal>),
    /// A value of another type, named for messages.
    Other(String),
}

impl Literal {
    pub fn from_dynamic(value: &Dynamic) -> Literal {
        if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
            return Literal::Str(s.to_string());
        }
        if let Ok(b) = value.as_bool() {
            return Literal::Bool(b);
        }
        if let Ok(i) = value.as_int() {
            return Literal::Int(i);
        }
        if let Ok(f) = value.as_float() {
            return Literal::Float(f);
        }
        if value.is_array() {
            let items = value
                .read_lock::<rhai::Array>()
                .map(|a| a.iter().map(Literal::from_dynamic).collect())
                .unwrap_or_default();
            return Literal::Array(items);
        }
        Literal::Other(type_name(value))
    }

    fn describe(&self) -> String {
        match self {
            Literal::Str(s) => format!("the string \"{s}\""),
            Literal::Bool(b) => format!("the boolean {b}"),
            Literal::Int(i) => format!("the number {i}"),
            Literal::Float(f) => format!("the number {f}"),
            Literal::Array(_) => "an array".into(),
            Literal::Other(t) => t.clone(),
        }
    }
}

/// A readable name for a value's type.
pub fn type_name(value: &Dynamic) -> String {
    if value.is_unit() {
        return "()".into();
    }
    let name = value.type_name();
    let short = name.rsplit("::").next().unwrap_or(name);
    match short {
        "ImmutableString" | "string" => "a string".into(),
        "i64" => "a number".into(),
        "f64" => "a number".into(),
        "bool" => "a boolean".into(),
        "array" | "Array" => "an array".into(),
        "map" | "Map" => "a map".into(),
        "VmHandle" => "a Vm".into(),
        "JobHandle" => "a Job".into(),
        other => other.to_string(),
    }
}

/// Something wrong with an option map.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    UnknownKey {
        key: String,
        suggestion: Option<&'static str>,
    },
    Missing {
        key: &'static str,
    },
    BadValue {
        key: &'static str,
        found: String,
        expected: String,
        /// The allowed value closest to a misspelt one.
        suggestion: Option<&'static str>,
    },
    NotApplicable {
        key: &'static str,
        when: (&'static str, &'static str),
    },
    /// An option the service cannot take here: refused rather than dropped.
    Refused(&'static Refused),
}

impl Problem {
    pub fn code(&self) -> Code {
        match self {
            Problem::UnknownKey { .. } => Code::UnknownOption,
            _ => Code::InvalidOption,
        }
    }

    /// What replaces the key or value written to fix the problem: the known key or allowed
    /// value closest to a misspelt one (a value as a string literal).
    pub fn replacement(&self) -> Option<String> {
        match self {
            Problem::UnknownKey { suggestion, .. } => suggestion.map(str::to_string),
            Problem::BadValue { suggestion, .. } => suggestion.map(string_literal),
            _ => None,
        }
    }

    /// The option key the problem is about, for the label.
    pub fn key(&self) -> &str {
        match self {
            Problem::UnknownKey { key, .. } => key,
            Problem::Refused(r) => r.key,
            Problem::Missing { key }
            | Problem::BadValue { key, .. }
            | Problem::NotApplicable { key, .. } => key,
        }
    }

    pub fn message(&self, prim: &Primitive) -> String {
        match self {
            Problem::UnknownKey { key, .. } => format!("`{}` has no option `{key}`", prim.name),
            Problem::Refused(r) => format!(
                "option `{}` of `{}` is not supported: {}",
                r.key, prim.name, r.reason
            ),
            Problem::Missing { key } => format!("`{}` needs the option `{key}`", prim.name),
            Problem::BadValue { key, found, .. } => {
                format!("option `{key}` of `{}` cannot be {found}", prim.name)
            }
            Problem::NotApplicable { key, when } => {
                format!(
                    "option `{key}` of `{}` only applies when `{}` is \"{}\"",
                    prim.name, when.0, when.1
                )
            }
        }
    }

    pub fn help(&self, prim: &Primitive) -> String {
        let known = || {
            prim.options
                .iter()
                .map(|o| format!("`{}`", o.key))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Problem::UnknownKey {
                suggestion: Some(s),
                ..
            } => format!("did you mean `{s}`? `{}` knows {}", prim.name, known()),
            Problem::UnknownKey {
                suggestion: None, ..
            } => format!("`{}` knows {}", prim.name, known()),
            Problem::Missing { key } => {
                let spec = prim.option(key);
                format!(
                    "add `{key}: ...` ({}): {}",
                    spec.map(|s| s.kind.describe()).unwrap_or_default(),
                    spec.map(|s| s.doc).unwrap_or_default()
                )
            }
            Problem::BadValue { expected, .. } => format!("use {expected}"),
            Problem::Refused(r) => r.instead.to_string(),
            Problem::NotApplicable { key, when } => {
                format!("remove `{key}`, or set `{}: \"{}\"`", when.0, when.1)
                    + if *key == "shutdown_source" {
                        " (a planned failover always shuts the source down)"
                    } else {
                        ""
                    }
            }
        }
    }
}

/// Checks one key.
pub fn check_key(prim: &'static Primitive, key: &str) -> Result<&'static OptSpec, Problem> {
    if let Some(refused) = prim.refused.iter().find(|r| r.key == key) {
        return Err(Problem::Refused(refused));
    }
    prim.option(key).ok_or_else(|| Problem::UnknownKey {
        key: key.to_string(),
        suggestion: did_you_mean(key, prim.options.iter().map(|o| o.key)),
    })
}

/// Checks one value against its option's type.
pub fn check_value(spec: &'static OptSpec, value: &Literal) -> Result<(), Problem> {
    let bad = || Problem::BadValue {
        key: spec.key,
        found: value.describe(),
        expected: spec.kind.describe(),
        suggestion: None,
    };
    match (spec.kind, value) {
        (OptKind::Enum(values), Literal::Str(s)) => {
            if values.contains(&s.as_str()) {
                Ok(())
            } else {
                let suggestion = did_you_mean(s, values.iter().copied());
                Err(Problem::BadValue {
                    key: spec.key,
                    found: value.describe(),
                    expected: match suggestion {
                        Some(sug) => format!("\"{sug}\" ({})", spec.kind.describe()),
                        None => spec.kind.describe(),
                    },
                    suggestion,
                })
            }
        }
        (OptKind::Bool, Literal::Bool(_))
        | (OptKind::Text, Literal::Str(_))
        | (OptKind::Value, Literal::Str(_) | Literal::Int(_) | Literal::Bool(_))
        | (OptKind::Value, Literal::Array(_)) => Ok(()),
        (OptKind::TextList, Literal::Array(items))
            if items.iter().all(|i| matches!(i, Literal::Str(_))) =>
        {
            Ok(())
        }
        (OptKind::Duration, Literal::Str(s)) => parse_duration(s).map(|_| ()).map_err(|_| bad()),
        // An empty list would check (or do) nothing, silently.
        (OptKind::EnumList(_), Literal::Array(items)) if items.is_empty() => {
            Err(Problem::BadValue {
                key: spec.key,
                found: "an empty array".into(),
                expected: format!("at least one value: {}", spec.kind.describe()),
                suggestion: None,
            })
        }
        (OptKind::EnumList(values), Literal::Array(items)) => {
            match items
                .iter()
                .find(|i| !matches!(i, Literal::Str(s) if values.contains(&s.as_str())))
            {
                None => Ok(()),
                Some(item) => Err(Problem::BadValue {
                    key: spec.key,
                    found: format!("an array holding {}", item.describe()),
                    expected: spec.kind.describe(),
                    suggestion: None,
                }),
            }
        }
        (OptKind::VmList, Literal::Array(items)) => {
            if items
                .iter()
                .all(|i| matches!(i, Literal::Str(_) | Literal::Other(_)))
            {
                Ok(())
            } else {
                Err(bad())
            }
        }
        _ => Err(bad()),
    }
}

/// Checks the keys present against the required ones and the `only_with` conditions.
/// `known` holds the literal values that are known (all of them at run time).
pub fn check_combination(
    prim: &'static Primitive,
    present: &[&str],
    known: &BTreeMap<&str, Literal>,
) -> Vec<Problem> {
    let mut out = Vec::new();
    for spec in prim.options {
        if spec.required && !present.contains(&spec.key) {
            out.push(Problem::Missing { key: spec.key });
        }
        if let Some((other, wanted)) = spec.only_with {
            // When the other option's value is not known (not a literal, or absent and
            // reported as missing), give the benefit of the doubt.
            let applies = match known.get(other) {
                Some(Literal::Str(v)) => v == wanted,
                _ => true,
            };
            let value_is_off = matches!(known.get(spec.key), Some(Literal::Bool(false)));
            if present.contains(&spec.key) && !applies && !value_is_off {
                out.push(Problem::NotApplicable {
                    key: spec.key,
                    when: (other, wanted),
                });
            }
        }
    }
    out
}

/// A parsed option map.
#[derive(Debug, Default)]
pub struct Opts {
    values: BTreeMap<&'static str, Dynamic>,
}

impl Opts {
    /// Parses a map strictly; the first problem found is returned.
    pub fn parse(prim: &'static Primitive, map: Option<&rhai::Map>) -> Result<Opts, Problem> {
        let mut values = BTreeMap::new();
        let mut known = BTreeMap::new();
        if let Some(map) = map {
            for (key, value) in map {
                let spec = check_key(prim, key)?;
                let lit = Literal::from_dynamic(value);
                // Arrays of Vm handles are fine for VmList; check element types there.
                if spec.kind == OptKind::VmList {
                    let ok = value.read_lock::<rhai::Array>().is_some_and(|a| {
                        a.iter().all(|v| {
                            v.is::<rhai::ImmutableString>() || v.is::<super::types::VmHandle>()
                        })
                    });
                    if !ok {
                        return Err(Problem::BadValue {
                            key: spec.key,
                            found: lit.describe(),
                            expected: spec.kind.describe(),
                            suggestion: None,
                        });
                    }
                } else {
                    check_value(spec, &lit)?;
                }
                known.insert(spec.key, lit);
                values.insert(spec.key, value.clone());
            }
        }
        let present: Vec<&str> = values.keys().copied().collect();
        if let Some(problem) = check_combination(prim, &present, &known).into_iter().next() {
            return Err(problem);
        }
        Ok(Opts { values })
    }

    pub fn text(&self, key: &str) -> Option<String> {
        self.values.get(key).map(|v| v.to_string())
    }

    pub fn flag(&self, key: &str) -> Option<bool> {
        self.values.get(key).and_then(|v| v.as_bool().ok())
    }

    pub fn duration(&self, key: &str) -> Option<Duration> {
        self.text(key).and_then(|t| parse_duration(&t).ok())
    }

    pub fn get(&self, key: &str) -> Option<&Dynamic> {
        self.values.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::registry::find;

    fn map(pairs: &[(&str, Dynamic)]) -> rhai::Map {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.clone()))
            .collect()
    }

    #[test]
    fn unknown_keys_suggest_the_closest() {
        let prim = find("failover").unwrap();
        let m = map(&[("kind", "planned".into()), ("shutdown_sorce", true.into())]);
        let err = Opts::parse(prim, Some(&m)).unwrap_err();
        assert_eq!(
            err,
            Problem::UnknownKey {
                key: "shutdown_sorce".into(),
                suggestion: Some("shutdown_source")
            }
        );
    }

    #[test]
    fn values_are_checked_with_allowed_values_named() {
        let prim = find("failover").unwrap();
        let m = map(&[("kind", "planed".into())]);
        let err = Opts::parse(prim, Some(&m)).unwrap_err();
        let Problem::BadValue { expected, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(expected.contains("\"planned\""), "{expected}");
        let m = map(&[("kind", Dynamic::from(3_i64))]);
        assert!(matches!(
            Opts::parse(prim, Some(&m)),
            Err(Problem::BadValue { .. })
        ));
    }

    #[test]
    fn required_and_conditional_options() {
        let prim = find("failover").unwrap();
        assert_eq!(
            Opts::parse(prim, Some(&map(&[]))).unwrap_err(),
            Problem::Missing { key: "kind" }
        );
        let m = map(&[("kind", "planned".into()), ("shutdown_source", true.into())]);
        assert!(matches!(
            Opts::parse(prim, Some(&m)),
            Err(Problem::NotApplicable { .. })
        ));
        let m = map(&[
            ("kind", "unplanned".into()),
            ("shutdown_source", true.into()),
        ]);
        let opts = Opts::parse(prim, Some(&m)).unwrap();
        assert_eq!(opts.flag("shutdown_source"), Some(true));
    }

    #[test]
    fn durations_parse() {
        let prim = find("wait_job").unwrap();
        let opts = Opts::parse(prim, Some(&map(&[("timeout", "30m".into())]))).unwrap();
        assert_eq!(opts.duration("timeout"), Some(Duration::from_secs(1800)));
        assert!(Opts::parse(prim, Some(&map(&[("timeout", "thirty".into())]))).is_err());
    }
}
