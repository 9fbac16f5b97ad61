//! The source text miette draws under a message: only the lines around the label, and on
//! a very long line only a window of columns around the label, so a finding on a 5 MB line
//! prints a few lines, not megabytes. Line numbers stay those of the whole text; the
//! `path:line:col` above the drawing is computed from the whole text too.

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

/// Lines around the label that are drawn (miette's default context).
const CONTEXT: usize = 1;

/// A line with more characters than this is cut to a window around the label.
const LONG: usize = 160;

/// How many characters of a cut line are shown before the label.
const BEFORE: usize = 40;

/// How many characters of a cut line are shown in all.
const WINDOW: usize = 120;

/// The mark for the cut-off part of a line.
const CUT: char = '…';

/// Part of a named source: whole lines starting at `first_line` (0-based), maybe cut.
#[derive(Debug, Clone)]
pub(crate) struct Snippet {
    name: String,
    text: String,
    first_line: usize,
}

impl Snippet {
    /// The lines of `text` around the label of `len` bytes at byte `offset`, and the label's
    /// span in them.
    pub(crate) fn around(
        name: &str,
        text: &str,
        offset: usize,
        len: usize,
    ) -> (Snippet, SourceSpan) {
        let offset = floor_boundary(text, offset);
        let end = floor_boundary(text, offset.saturating_add(len)).max(offset);
        let line_start = |at: usize| text[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = |at: usize| text[at..].find('\n').map_or(text.len(), |i| at + i);
        // `CONTEXT` whole lines before the label's first line and after its last one.
        let mut from = line_start(offset);
        let mut first_line = text[..from].matches('\n').count();
        for _ in 0..CONTEXT {
            if from > 0 {
                from = line_start(from - 1);
                first_line -= 1;
            }
        }
        let mut to = line_end(end);
        for _ in 0..CONTEXT {
            if to < text.len() {
                to = line_end(to + 1);
            }
        }
        let lines = &text[from..to];
        let long = lines
            .split('\n')
            .any(|l| l.len() > LONG && l.chars().count() > LONG);
        if !long {
            let snippet = Snippet {
                name: name.to_string(),
                text: lines.to_string(),
                first_line,
            };
            return (
                snippet,
                SourceSpan::new((offset - from).into(), end - offset),
            );
        }
        // Cut each long line to the same columns around the label, which keeps to its first
        // line; short lines stay whole.
        let label_line_start = line_start(offset);
        let column = text[label_line_start..offset].chars().count();
        let label_chars = text[offset..end.min(line_end(offset))]
            .chars()
            .count()
            .min(WINDOW - BEFORE);
        let first = column.saturating_sub(BEFORE);
        let last = (first + WINDOW).max(column + label_chars);
        let mut cut = String::new();
        let mut span = SourceSpan::new((offset - from).into(), end - offset);
        let mut start = from;
        for line in lines.split('\n') {
            if start > from {
                cut.push('\n');
            }
            let is_long = line.len() > LONG && line.chars().count() > LONG;
            if !is_long {
                if start == label_line_start {
                    let len = end.min(line_end(offset)) - offset;
                    span = SourceSpan::new((cut.len() + offset - start).into(), len);
                }
                cut.push_str(line);
            } else {
                if start == label_line_start {
                    let lead = if first > 0 { CUT.len_utf8() } else { 0 };
                    let skipped: usize = line.chars().take(first).map(char::len_utf8).sum();
                    let at = cut.len() + lead + (offset - start - skipped);
                    let label_bytes: usize = line[offset - start..]
                        .chars()
                        .take(label_chars)
                        .map(char::len_utf8)
                        .sum();
                    span = SourceSpan::new(at.into(), label_bytes);
                }
                cut.push_str(&window(line, first, last));
            }
            start += line.len() + 1;
        }
        let snippet = Snippet {
            name: name.to_string(),
            text: cut,
            first_line,
        };
        (snippet, span)
    }
}

/// The longest message shown whole, in characters.
const MESSAGE: usize = 1_000;

/// `text`, with the middle of a very long one left out: messages quote the input (a TOML
/// value, a string a runbook threw), which may be megabytes long.
pub fn shorten(text: String) -> String {
    let count = text.chars().count();
    if count <= MESSAGE {
        return text;
    }
    let head: String = text.chars().take(MESSAGE * 3 / 4).collect();
    let tail: String = text.chars().skip(count - MESSAGE / 4).collect();
    let left_out = count - MESSAGE * 3 / 4 - MESSAGE / 4;
    format!("{head}…({left_out} characters left out)…{tail}")
}

/// Characters `first..last` of `line`, with a mark where a part was cut off.
fn window(line: &str, first: usize, last: usize) -> String {
    let count = line.chars().count();
    let mut out = String::new();
    if first > 0 && count > 0 {
        out.push(CUT);
    }
    out.extend(line.chars().skip(first).take(last - first));
    if count > last {
        out.push(CUT);
    }
    out
}

/// The nearest character boundary at or before `at`, within `text`.
fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

impl SourceCode for Snippet {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self.text.read_span(span, before, after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line() + self.first_line,
            inner.column(),
            inner.line_count(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(snippet: &Snippet, span: SourceSpan) -> &str {
        &snippet.text[span.offset()..span.offset() + span.len()]
    }

    #[test]
    fn short_lines_are_kept_whole_with_one_line_of_context() {
        let text = "a\nb\nlet é = vm(\"x\");\nd\ne\n";
        let at = text.find("vm").unwrap();
        let (snippet, span) = Snippet::around("f", text, at, 2);
        assert_eq!(snippet.text, "b\nlet é = vm(\"x\");\nd");
        assert_eq!(snippet.first_line, 1);
        assert_eq!(shown(&snippet, span), "vm");
        let contents = snippet.read_span(&span, 1, 1).unwrap();
        assert_eq!(contents.line(), 1, "0-based line of `b` in the whole text");
    }

    #[test]
    fn a_long_line_is_cut_to_a_window_around_the_label() {
        let long = format!("{}TARGET{}", "é".repeat(1_000_000), "x".repeat(1_000_000));
        let text = format!("first\n{long}\n{}\n", "y".repeat(500_000));
        let at = text.find("TARGET").unwrap();
        let (snippet, span) = Snippet::around("f", &text, at, 6);
        assert_eq!(shown(&snippet, span), "TARGET");
        assert!(snippet.text.len() < 1_000, "{} bytes", snippet.text.len());
        let lines: Vec<&str> = snippet.text.lines().collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(
            lines[0], "first",
            "a short line before the window's columns"
        );
        assert!(lines[1].starts_with('…') && lines[1].ends_with('…'));
        assert_eq!(snippet.first_line, 0);
    }

    #[test]
    fn a_label_at_the_start_or_end_of_a_long_line() {
        let text = "z".repeat(10_000);
        let (snippet, span) = Snippet::around("f", &text, 0, 1);
        assert_eq!(span.offset(), 0);
        assert!(!snippet.text.starts_with('…') && snippet.text.ends_with('…'));
        let (snippet, span) = Snippet::around("f", &text, text.len(), 0);
        assert_eq!(span.offset(), snippet.text.len());
        assert!(snippet.text.starts_with('…'));
    }

    #[test]
    fn long_messages_lose_their_middle() {
        assert_eq!(shorten("short".into()), "short");
        let long = format!(
            "unknown variant `{}`, expected one of `a`",
            "v".repeat(5_000_000)
        );
        let short = shorten(long);
        assert!(short.len() < 1_200, "{}", short.len());
        assert!(
            short.starts_with("unknown variant `vvv") && short.ends_with("expected one of `a`")
        );
        assert!(short.contains("characters left out"));
    }

    #[test]
    fn a_huge_label_is_clamped_to_the_window() {
        let text = format!("let s = \"{}\";", "q".repeat(100_000));
        let at = text.find('"').unwrap();
        let (snippet, span) = Snippet::around("f", &text, at, text.len() - at);
        assert!(span.len() <= WINDOW * 4, "{}", span.len());
        assert!(snippet.text.len() < 1_000);
    }
}
