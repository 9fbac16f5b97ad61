//! The registry is the single source of truth: the README's API table and the stdlib agree
//! with it.

use crate::common::{cli, root, text};
use runbook::check::check_text;
use runbook::diagnostics::summary_line;
use runbook::script::{registry, stdlib};

#[test]
fn the_readme_api_table_is_generated_from_the_registry() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("<!-- api:start -->\n")
        .expect("README has <!-- api:start -->")
        + "<!-- api:start -->\n".len();
    let end = readme
        .find("<!-- api:end -->")
        .expect("README has <!-- api:end -->");
    assert_eq!(
        &readme[start..end],
        registry::markdown_table(),
        "the README's API table differs from `runbook api`: paste its output between the markers"
    );
}

#[test]
fn every_stdlib_module_checks_clean_and_is_used_by_an_example() {
    let examples: String = std::fs::read_dir(root().join("runbooks"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect();
    for (name, text) in stdlib::MODULES {
        let report = check_text(&format!("stdlib/{name}.rhai"), text, None, None);
        let lines: Vec<String> = report.findings.iter().map(summary_line).collect();
        assert!(lines.is_empty(), "stdlib/{name}: {lines:#?}");
        let on_disk = std::fs::read_to_string(root().join(format!("stdlib/{name}.rhai"))).unwrap();
        assert_eq!(&on_disk, text, "the embedded module is the file");
        assert!(
            examples.contains(&format!("\"runbook/{name}\"")),
            "no example runbook imports runbook/{name}"
        );
    }
}

#[test]
fn every_primitive_is_implemented() {
    // A runbook that calls each primitive once in an order the simulator accepts.
    let text = r#"
        let site = param("site", #{ choices: ["primary", "recovery"], "default": "primary" });
        // No runbook.toml declares an action here: the error is caught.
        try { action("switch-dns", #{ to: site }); } catch (e) { note("no action"); }
        try { notify("ops", "starting"); } catch (e) { note("no channel"); }
        let web = vm("web-01");
        let all = vms(#{ name: "web-*" });
        let s = status(web);
        let p = preflight(#{ vms: all, max_drill_age: "30d" });
        note("start");
        manual_step("check", #{ instructions: "look", timeout: "5m" });
        let d = test_failover(web, #{ network: "iso" });
        wait_job(d, #{ timeout: "1h" });
        wait_all([cleanup_test_failover(web, #{ notes: "ok" })], #{ timeout: "1h" });
        let f = failover(web, #{ kind: "planned" });
        wait_job(f, #{ timeout: "1h" });
        verify(web, #{ active_location: "recovery", healthy: true });
        wait_job(commit(web), #{ timeout: "1h" });
        let r = reverse_replicate(web);
        let c = cancel(r);
        wait_job(reverse_replicate(web), #{ timeout: "1h" });
        wait_job(test_failover_plan("p", #{ network: "iso", direction: "recovery_to_primary" }), #{ timeout: "1h" });
        wait_job(cleanup_test_failover_plan("p", #{ notes: "ok" }), #{ timeout: "1h" });
        let back = failover_plan("p", #{ kind: "planned", direction: "recovery_to_primary" });
        wait_job(back, #{ timeout: "1h" });
        verify(web, #{ active_location: "primary", healthy: true });
        wait_job(commit_plan("p"), #{ timeout: "1h" });
        wait_job(reverse_replicate_plan("p"), #{ timeout: "1h" });
    "#;
    let inv = runbook::backend::inventory::Inventory::parse(
        "[plans]\np = [\"web-01\"]\n[[items]]\nname = \"web-01\"\nlast_test_failover = \"2026-11-20T00:00:00Z\"\n",
        "test",
    )
    .unwrap();
    let report = check_text("all.rhai", text, None, Some(&inv));
    let called: Vec<&str> = registry::PRIMITIVES
        .iter()
        .map(|p| p.name)
        .filter(|n| !text.contains(&format!("{n}(")))
        .collect();
    assert!(called.is_empty(), "not called: {called:?}");
    let lines: Vec<String> = report.findings.iter().map(summary_line).collect();
    assert!(lines.is_empty(), "{lines:#?}");
    assert!(report.dry_run.unwrap().completed);
}

#[test]
fn job_handles_show_the_latest_state_and_own_functions_win_over_primitives() {
    let text = r#"
        fn status(vm, verbose) { if verbose { note("status of " + vm) } 1 }
        let web = vm("web-01");
        let f = failover(web, #{ kind: "planned" });
        let copy = f;
        wait_job(f, #{ timeout: "1h" });
        if copy.state != "Succeeded" || f.ended == () {
            throw `the handle is stale: ${copy.state}`;
        }
        status("web-01", true);
        verify(web, #{ active_location: "recovery", healthy: true });
        wait_job(commit(web), #{ timeout: "1h" });
        wait_job(reverse_replicate(web), #{ timeout: "1h" });
    "#;
    let inv =
        runbook::backend::inventory::Inventory::parse("[[items]]\nname = \"web-01\"\n", "test")
            .unwrap();
    let report = check_text("handles.rhai", text, None, Some(&inv));
    let lines: Vec<String> = report.findings.iter().map(summary_line).collect();
    assert!(lines.is_empty(), "{lines:#?}");
    assert!(report.dry_run.unwrap().completed);
}

/// The parameter names of a definition line: `fn f(a: ?, b: Map) -> Job;` gives `[a, b]`.
fn parameter_names(definition: &str) -> Vec<&str> {
    let inside = &definition[definition.find('(').unwrap() + 1..definition.rfind(')').unwrap()];
    inside
        .split(", ")
        .filter(|p| !p.is_empty())
        .map(|p| p.split(':').next().unwrap())
        .collect()
}

/// The block of a definition file that ends with the definition starting `head`: its doc
/// comment and the definition.
fn definition_block<'a>(file: &'a str, head: &str) -> Option<&'a str> {
    let at = file.find(head)?;
    let start = file[..at].rfind("\n\n").map_or(0, |i| i + 2);
    let end = at + file[at..].find('\n').unwrap_or(file.len() - at);
    Some(&file[start..end])
}

#[test]
fn api_definitions_document_every_primitive_property_and_stdlib_function() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("editor/definitions");
    let out = cli(&["api", "--definitions", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("wrote 4 definition files"));
    let api = std::fs::read_to_string(target.join("runbook.d.rhai")).expect("runbook.d.rhai");
    assert!(api.contains("\nmodule static;\n"), "{api}");
    for prim in registry::PRIMITIVES {
        for arity in prim.arities() {
            let params: Vec<&str> = prim.params[..arity].iter().map(|p| p.name).collect();
            let definition = api
                .lines()
                .filter(|l| l.starts_with(&format!("fn {}(", prim.name)))
                .find(|l| parameter_names(l) == params)
                .unwrap_or_else(|| {
                    panic!(
                        "no `fn {}({})` in runbook.d.rhai",
                        prim.name,
                        params.join(", ")
                    )
                });
            assert!(
                definition.split(", ").all(|p| p.contains(": ")),
                "{}: every parameter typed: {definition}",
                prim.name
            );
            let block = definition_block(&api, definition).unwrap();
            assert!(
                block.contains(&format!("/// {}", prim.doc)),
                "{}: its documentation: {block}",
                prim.name
            );
            for option in prim.options {
                assert!(
                    block.contains(&format!("/// * `{}`", option.key))
                        && block.contains(option.doc),
                    "{}: option `{}` documented: {block}",
                    prim.name,
                    option.key
                );
            }
        }
    }
    for property in registry::PROPERTIES {
        let head = format!(
            "fn get {}({}: {})",
            property.name,
            property.owner.to_lowercase(),
            property.owner
        );
        let block = definition_block(&api, &head).unwrap_or_else(|| panic!("no `{head}`"));
        assert!(block.contains(property.doc), "{block}");
    }
    for (name, source) in stdlib::MODULES {
        let file = std::fs::read_to_string(target.join(format!("runbook-{name}.d.rhai")))
            .unwrap_or_else(|e| panic!("runbook-{name}.d.rhai: {e}"));
        assert!(
            file.contains(&format!("\nmodule \"runbook/{name}\";\n")),
            "{file}"
        );
        for function in source.lines().filter_map(|l| l.strip_prefix("fn ")) {
            let head = &function[..function.find('(').unwrap() + 1];
            let block = definition_block(&file, &format!("fn {head}"))
                .unwrap_or_else(|| panic!("runbook/{name}: no `fn {head}`: {file}"));
            assert!(
                block.starts_with("/// "),
                "runbook/{name}: `{head}` is documented"
            );
        }
    }
}

#[test]
fn every_definition_file_holds_only_docs_a_module_line_and_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(&["api", "--definitions", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1 + stdlib::MODULES.len());
    for entry in files {
        let path = entry.unwrap().path();
        let content = std::fs::read_to_string(&path).unwrap();
        let modules = content.lines().filter(|l| l.starts_with("module ")).count();
        assert_eq!(modules, 1, "{}: one module declaration", path.display());
        for line in content.lines() {
            assert!(
                line.is_empty()
                    || line.starts_with("///")
                    || (line.starts_with("module ") || line.starts_with("fn "))
                        && line.ends_with(';'),
                "{}: unexpected line `{line}`",
                path.display()
            );
        }
    }
}

#[test]
fn api_definitions_into_a_place_that_cannot_be_written_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "").unwrap();
    let out = cli(&["api", "--definitions", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is a file"),
        "{}",
        text(&out.stderr)
    );

    let below_a_file = file.join("definitions");
    let out = cli(&["api", "--definitions", below_a_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot write") && stderr.contains("definitions"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn api_without_definitions_prints_the_markdown_reference() {
    let out = cli(&["api"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), registry::markdown_table());
}

#[test]
fn every_documented_property_reads_on_its_type() {
    let reads: Vec<String> = registry::PROPERTIES
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let handle = if p.owner == "Vm" { "web" } else { "job" };
            format!("let read_{i} = {handle}.{};", p.name)
        })
        .collect();
    let text = format!(
        r#"
        let web = vm("web-01");
        let job = wait_job(failover(web, #{{ kind: "planned" }}), #{{ timeout: "1h" }});
        {}
        verify(web, #{{ active_location: "recovery", healthy: true }});
        wait_job(commit(web), #{{ timeout: "1h" }});
        wait_job(reverse_replicate(web), #{{ timeout: "1h" }});
        "#,
        reads.join("\n        ")
    );
    let inv =
        runbook::backend::inventory::Inventory::parse("[[items]]\nname = \"web-01\"\n", "test")
            .unwrap();
    let report = check_text("properties.rhai", &text, None, Some(&inv));
    let lines: Vec<String> = report.findings.iter().map(summary_line).collect();
    assert!(lines.is_empty(), "{lines:#?}");
    assert!(report.dry_run.unwrap().completed);
}
