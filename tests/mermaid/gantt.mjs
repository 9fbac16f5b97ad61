// Parses a Mermaid Gantt chart (read from standard input) with Mermaid's own parser, as a
// renderer would, and prints its tasks as JSON: [{ "task", "section", "start", "end",
// "milestone" }], times in ISO 8601 (run it with TZ=UTC). A chart Mermaid rejects exits 1
// with Mermaid's error. Set up, with Mermaid, by `.ci/deps mermaid`, which prints this
// script's path in its cache.
import { JSDOM } from "jsdom";

// Mermaid sanitises text (a chart's title, labels) with DOMPurify, which needs a DOM: the
// window of an empty page, as a browser would give it.
const { window } = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = window;
globalThis.document = window.document;
const { default: mermaid } = await import("mermaid");

const chunks = [];
for await (const chunk of process.stdin) {
  chunks.push(chunk);
}
const text = Buffer.concat(chunks).toString("utf8");
try {
  mermaid.initialize({ startOnLoad: false });
  await mermaid.parse(text);
  const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
  const tasks = diagram.db.getTasks().map((t) => ({
    task: t.task.trim(),
    section: t.section,
    start: t.startTime.toISOString(),
    end: t.endTime.toISOString(),
    milestone: Boolean(t.milestone),
  }));
  process.stdout.write(JSON.stringify(tasks) + "\n");
} catch (e) {
  process.stderr.write(`mermaid: ${e.message ?? e}\n`);
  process.exit(1);
}
