//! The standard library of runbook procedures, embedded in the binary and imported as
//! `import "runbook/<module>" as m;`.

/// `(module name, source)` of every stdlib module.
pub const MODULES: &[(&str, &str)] = &[
    ("failover", include_str!("../../stdlib/failover.rhai")),
    ("failback", include_str!("../../stdlib/failback.rhai")),
    ("drill", include_str!("../../stdlib/drill.rhai")),
];

pub fn get(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix(".rhai").unwrap_or(name);
    MODULES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}
