//! Findings as GitHub Actions workflow commands (`::error file=F,line=L,...::message`): a
//! workflow step that prints them gets an annotation on each finding's line of the pull
//! request.

use super::{Finding, Severity, Sources, Unreadable};

/// The workflow command of one finding of the checked file `file`.
///
/// The annotation sits on the finding's anchor (inside the stdlib, on the runbook's call);
/// a finding without a place annotates the checked file as a whole.
pub fn command(finding: &Finding, sources: &Sources, file: &str) -> String {
    let level = match finding.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "notice",
    };
    let mut properties = Vec::new();
    match finding.anchor(sources) {
        Some(anchor) => {
            let region = sources.region(anchor);
            properties.push(("file", anchor.source.to_string()));
            properties.push(("line", region.line.to_string()));
            properties.push(("col", region.column.to_string()));
            properties.push(("endLine", region.end_line.to_string()));
            properties.push(("endColumn", region.end_column.to_string()));
        }
        None => properties.push(("file", file.to_string())),
    }
    properties.push((
        "title",
        format!("{} {}", finding.code.as_str(), finding.code.slug()),
    ));
    let properties: Vec<String> = properties
        .iter()
        .map(|(key, value)| format!("{key}={}", escape_property(value)))
        .collect();
    format!(
        "::{level} {}::{}",
        properties.join(","),
        escape_data(&text(finding, sources))
    )
}

/// The workflow command for a file that could not be checked, with the reason.
pub fn file_error(unreadable: &Unreadable) -> String {
    let place = match &unreadable.at {
        Some((file, line, column)) => {
            format!("file={},line={line},col={column}", escape_property(file))
        }
        None => format!("file={}", escape_property(&unreadable.file)),
    };
    format!(
        "::error {place},title=runbook check::{}",
        escape_data(&unreadable.why)
    )
}

/// The annotation's text: the message, then one line each for the place inside the stdlib
/// (when the annotation sits on the call instead), the calls that led into a module, the
/// help and the notes.
fn text(finding: &Finding, sources: &Sources) -> String {
    let mut lines = vec![finding.message.clone()];
    let anchor = finding.anchor(sources);
    if let Some(location) = &finding.location {
        if anchor != Some(location) {
            lines.push(format!("in {location}"));
        }
    }
    for frame in &finding.chain {
        if anchor != Some(&frame.location) {
            lines.push(format!(
                "called from {} (`{}`)",
                frame.location, frame.function
            ));
        }
    }
    if let Some(help) = &finding.help {
        lines.push(format!("help: {help}"));
    }
    lines.extend(finding.notes.iter().cloned());
    lines.join("\n")
}

/// Escapes a command's message as the runner reads it back: `%`, carriage returns and
/// line feeds.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value: as a message, and `:` and `,`, which separate properties.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::{Code, Frame, Location};

    #[test]
    fn messages_and_properties_are_escaped_as_the_runner_expects() {
        assert_eq!(escape_data("100% done\r\nnext"), "100%25 done%0D%0Anext");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        // `%` first, so escapes are not escaped twice.
        assert_eq!(escape_data("%0A"), "%250A");
    }

    #[test]
    fn a_finding_becomes_one_annotation_with_its_region_and_help() {
        let mut sources = Sources::default();
        sources.insert("dir,x/plan.rhai", "let j = commit(vm);\n");
        let finding = Finding::new(Code::NotAllowed, "commit: not allowed")
            .at(Some(Location::new("dir,x/plan.rhai", 1, 9, 6)))
            .help("fail over first");
        assert_eq!(
            command(&finding, &sources, "dir,x/plan.rhai"),
            "::error file=dir%2Cx/plan.rhai,line=1,col=9,endLine=1,endColumn=15,\
             title=RB101 not-allowed::commit: not allowed%0Ahelp: fail over first"
        );
    }

    #[test]
    fn a_finding_in_the_stdlib_annotates_the_runbook_call() {
        let mut sources = Sources::default();
        sources.insert("plan.rhai", "failover::group(all, opts, \"1m\");\n");
        sources.insert_embedded(
            "stdlib/failover.rhai",
            "fn group() {\n  wait_all(jobs);\n}\n",
        );
        let finding = Finding::new(Code::WaitTooShort, "too short")
            .at(Some(Location::new("stdlib/failover.rhai", 2, 3, 8)))
            .chain(vec![Frame {
                function: "group".into(),
                location: Location::new("plan.rhai", 1, 11, 5),
            }]);
        let line = command(&finding, &sources, "plan.rhai");
        assert!(
            line.starts_with("::error file=plan.rhai,line=1,col=11,endLine=1,endColumn=16,"),
            "{line}"
        );
        assert!(
            line.ends_with("::too short%0Ain stdlib/failover.rhai:2:3"),
            "{line}"
        );
    }

    #[test]
    fn warnings_and_notes_use_their_commands_and_placeless_findings_the_file() {
        let warning = Finding::new(Code::JobNotWaited, "w");
        let note = Finding::new(Code::NamesNotChecked, "n");
        let sources = Sources::default();
        assert!(command(&warning, &sources, "p.rhai").starts_with("::warning file=p.rhai,title="));
        assert_eq!(
            command(&note, &sources, "p.rhai"),
            "::notice file=p.rhai,title=RB010 names-not-checked::n"
        );
    }
}
