//! Findings as a SARIF 2.1.0 log, for GitHub code scanning and other SARIF viewers: one run
//! of the `runbook` tool, a rule per diagnostic code (its summary, why, and explanation with
//! an example) and a result per finding, built with the `serde-sarif` types.

use super::{
    explain, Code, FileFindings, Finding, Location, Region, Severity, Sources, Summary, Unreadable,
};
use serde_sarif::sarif::{
    ArtifactLocation, Invocation, Location as SarifLocation, Message, MultiformatMessageString,
    Notification, PhysicalLocation, PropertyBag, Region as SarifRegion, ReportingConfiguration,
    ReportingDescriptor, Result as SarifResult, ResultLevel, Run, Sarif, Tool, ToolComponent,
    Version, SCHEMA_URL,
};
use std::collections::BTreeMap;

/// The SARIF log of one `check`: the findings of every checked file, the files that could
/// not be read (`(file, why)`, as notifications of a failed invocation) and the summary (in
/// the run's properties).
pub fn log(files: &[FileFindings], unreadable: &[Unreadable], summary: &Summary) -> Sarif {
    let results: Vec<SarifResult> = files
        .iter()
        .flat_map(|f| {
            f.findings
                .iter()
                .map(|finding| result(finding, f.sources, f.file))
        })
        .collect();
    let notifications: Vec<Notification> = unreadable
        .iter()
        .map(|u| {
            let location = match &u.at {
                Some((file, line, column)) => {
                    file_location(file, Some(Region::of(None, *line, *column, 1)))
                }
                None => file_location(&u.file, None),
            };
            Notification::builder()
                .level("error")
                .message(text(&u.why))
                .locations(vec![location])
                .build()
        })
        .collect();
    let summary = serde_json::to_value(summary).unwrap_or_default();
    let mut invocation = Invocation::builder()
        .execution_successful(unreadable.is_empty())
        .build();
    invocation.tool_execution_notifications = (!notifications.is_empty()).then_some(notifications);
    let run = Run::builder()
        .tool(tool())
        .column_kind("unicodeCodePoints")
        .results(results)
        .invocations(vec![invocation])
        .properties(
            PropertyBag::builder()
                .additional_properties(BTreeMap::from([("summary".to_string(), summary)]))
                .build(),
        )
        .build();
    Sarif::builder()
        .schema(SCHEMA_URL)
        .version(serde_json::to_value(Version::V2_1_0).unwrap_or_default())
        .runs(vec![run])
        .build()
}

/// `runbook`, with a rule for every code (in the order of [`Code::ALL`], which results
/// refer to by index).
fn tool() -> Tool {
    let driver = ToolComponent::builder()
        .name("runbook")
        .semantic_version(env!("CARGO_PKG_VERSION"))
        .rules(Code::ALL.iter().map(|code| rule(*code)).collect::<Vec<_>>())
        .build();
    Tool::builder().driver(driver).build()
}

fn rule(code: Code) -> ReportingDescriptor {
    ReportingDescriptor::builder()
        .id(code.as_str())
        .name(code.slug())
        .short_description(multiformat(code.summary()))
        .full_description(multiformat(code.why()))
        .help(
            MultiformatMessageString::builder()
                .text(explain::text(code))
                .markdown(explain::markdown(code))
                .build(),
        )
        .default_configuration(
            ReportingConfiguration::builder()
                .level(level_name(code.severity()))
                .build(),
        )
        .build()
}

fn multiformat(text: &str) -> MultiformatMessageString {
    MultiformatMessageString::builder().text(text).build()
}

fn text(text: &str) -> Message {
    Message::builder().text(text).build()
}

/// One finding of the checked file `file`. It is placed at its anchor (inside the stdlib, at
/// the runbook's call); the calls that led into a module are its related locations.
fn result(finding: &Finding, sources: &Sources, file: &str) -> SarifResult {
    let anchor = finding.anchor(sources);
    let location = match anchor {
        Some(at) => file_location(&at.source, Some(sources.region(at))),
        None => file_location(file, None),
    };
    let related: Vec<SarifLocation> = finding
        .chain
        .iter()
        .filter(|frame| Some(&frame.location) != anchor)
        .map(|frame| {
            related(
                &frame.location,
                sources,
                &format!("`{}` called here", frame.function),
            )
        })
        .collect();
    let mut result = SarifResult::builder()
        .rule_id(finding.code.as_str())
        .rule_index(
            Code::ALL
                .iter()
                .position(|c| *c == finding.code)
                .unwrap_or(0) as i64,
        )
        .level(level(finding.severity))
        .message(text(&message(finding, anchor)))
        .locations(vec![location])
        .build();
    result.related_locations = (!related.is_empty()).then_some(related);
    result
}

/// The result's message: the finding's, where it lies when that is not where the result
/// is shown, its help and its notes.
fn message(finding: &Finding, anchor: Option<&Location>) -> String {
    let mut lines = vec![finding.message.clone()];
    if let Some(location) = &finding.location {
        if anchor != Some(location) {
            lines.push(format!("In {location}."));
        }
    }
    if let Some(help) = &finding.help {
        lines.push(format!("Help: {help}"));
    }
    lines.extend(finding.notes.iter().cloned());
    lines.join("\n")
}

fn related(location: &Location, sources: &Sources, note: &str) -> SarifLocation {
    let mut found = file_location(&location.source, Some(sources.region(location)));
    found.message = Some(text(note));
    found
}

/// A file and, when known, the region in it. A finding about a whole file (no region) is
/// placed on its first line, as code scanning wants a line for every result.
fn file_location(file: &str, region: Option<Region>) -> SarifLocation {
    let region = match region {
        Some(r) => SarifRegion::builder()
            .start_line(r.line as i64)
            .start_column(r.column as i64)
            .end_line(r.end_line as i64)
            .end_column(r.end_column as i64)
            .build(),
        None => SarifRegion::builder().start_line(1).build(),
    };
    let physical = PhysicalLocation::builder()
        .artifact_location(ArtifactLocation::builder().uri(uri(file)).build())
        .region(region)
        .build();
    SarifLocation::builder().physical_location(physical).build()
}

fn level(severity: Severity) -> ResultLevel {
    match severity {
        Severity::Error => ResultLevel::Error,
        Severity::Warning => ResultLevel::Warning,
        Severity::Note => ResultLevel::Note,
    }
}

fn level_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

/// A path as a URI reference: relative paths stay relative (to the folder `check` ran in,
/// the repository's root in CI), with `/` separators and reserved characters
/// percent-encoded; absolute paths become `file://` URIs.
pub fn uri(path: &str) -> String {
    let path = path.replace('\\', "/");
    let mut out = String::new();
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    if path.starts_with('/') {
        format!("file://{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_uri_references() {
        assert_eq!(
            uri("runbooks/site failover.rhai"),
            "runbooks/site%20failover.rhai"
        );
        assert_eq!(uri("dir\\plan.rhai"), "dir/plan.rhai");
        assert_eq!(uri("/srv/plans/ü.rhai"), "file:///srv/plans/%C3%BC.rhai");
        assert_eq!(uri("a#b?.rhai"), "a%23b%3F.rhai");
    }

    #[test]
    fn the_log_has_the_fields_code_scanning_requires() {
        let mut sources = Sources::default();
        sources.insert("plan.rhai", "let j = commit(vm);\n");
        let findings = [
            Finding::new(Code::NotAllowed, "commit: not allowed")
                .at(Some(Location::new("plan.rhai", 1, 9, 6)))
                .help("fail over first"),
            Finding::new(Code::NamesNotChecked, "no inventory"),
        ];
        let files = [FileFindings {
            file: "plan.rhai",
            findings: &findings,
            sources: &sources,
        }];
        let mut summary = Summary::default();
        summary.add(&findings);
        let json = serde_json::to_value(log(&files, &[], &summary)).unwrap();
        assert_eq!(json["version"], "2.1.0");
        assert!(json["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
        let run = &json["runs"][0];
        assert_eq!(run["tool"]["driver"]["name"], "runbook");
        assert_eq!(
            run["tool"]["driver"]["rules"].as_array().unwrap().len(),
            Code::ALL.len()
        );
        let first = &run["results"][0];
        assert_eq!(first["ruleId"], "RB101");
        assert_eq!(
            run["tool"]["driver"]["rules"][first["ruleIndex"].as_u64().unwrap() as usize]["id"],
            "RB101"
        );
        assert_eq!(first["level"], "error");
        assert_eq!(
            first["message"]["text"],
            "commit: not allowed\nHelp: fail over first"
        );
        let physical = &first["locations"][0]["physicalLocation"];
        assert_eq!(physical["artifactLocation"]["uri"], "plan.rhai");
        assert_eq!(
            physical["region"],
            serde_json::json!({ "startLine": 1, "startColumn": 9, "endLine": 1, "endColumn": 15 })
        );
        let second = &run["results"][1];
        assert_eq!(second["level"], "note");
        assert_eq!(
            second["locations"][0]["physicalLocation"]["region"]["startLine"],
            1
        );
        assert_eq!(run["properties"]["summary"]["errors"], 1);
        assert_eq!(run["invocations"][0]["executionSuccessful"], true);
    }

    #[test]
    fn unreadable_files_fail_the_invocation_with_a_notification() {
        let json = serde_json::to_value(log(
            &[],
            &[Unreadable {
                file: "gone.rhai".into(),
                why: "cannot read `gone.rhai`: no such file".into(),
                at: None,
            }],
            &Summary::default(),
        ))
        .unwrap();
        let invocation = &json["runs"][0]["invocations"][0];
        assert_eq!(invocation["executionSuccessful"], false);
        let notification = &invocation["toolExecutionNotifications"][0];
        assert_eq!(notification["level"], "error");
        assert!(notification["message"]["text"]
            .as_str()
            .unwrap()
            .contains("no such file"));
    }
}
