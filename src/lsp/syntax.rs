//! What the text around a position is, for hover, completion and go to definition: Rhai's
//! own tokenizer (so strings, comments and interpolations are read as Rhai reads them), and
//! the calls, option maps and arrays open at a token. It works on text that does not parse,
//! as a buffer being typed usually is. Rhai's token type is volatile across versions (rhai
//! is pinned); it stays in this file.

use crate::diagnostics::{char_span_to_bytes, token_chars_at};
use rhai::Token as Rhai;

/// A token with its byte range in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

/// The tokens the language server reads; everything else is `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Ident(String),
    /// A string literal (its value); the range includes the quotes.
    Str(String),
    /// A string literal that runs to the end of its line without a closing quote.
    Unterminated,
    LParen,
    RParen,
    /// `()`, which Rhai reads as one token.
    Unit,
    LBracket,
    RBracket,
    /// `#{`
    MapStart,
    LBrace,
    RBrace,
    Colon,
    DoubleColon,
    Comma,
    Period,
    Fn,
    Import,
    As,
    Other,
}

/// The tokens of `text`, in order.
pub(crate) fn tokens(text: &str) -> Vec<Token> {
    let lines = LineStarts::of(text);
    let engine = rhai::Engine::new_raw();
    let inputs = [text];
    let (stream, control) = engine.lex(&inputs);
    let mut out = Vec::new();
    // Brace depths at which an interpolation `${ ... }` closes: the text goes on after it.
    let mut interpolations: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut continuation = false;
    for (token, pos) in stream {
        if token == Rhai::EOF {
            break;
        }
        // The rest of an interpolated string that is empty has no position.
        let (Some(line), Some(column)) = (pos.line(), pos.position()) else {
            continuation = false;
            continue;
        };
        let start = lines.offset(text, line, column);
        let string_end = || start + char_span_to_bytes(text, start, token_chars_at(text, start));
        let kind = match token {
            Rhai::EOF => break,
            Rhai::Comment(_) => continue,
            Rhai::Identifier(name) => Kind::Ident(name.to_string()),
            // The rest of an interpolated string after `}` starts at no quote of its own.
            Rhai::StringConstant(_) if continuation => Kind::Other,
            Rhai::StringConstant(value) => Kind::Str(value.to_string()),
            Rhai::InterpolatedString(_) => {
                interpolations.push(depth + 1);
                Kind::Other
            }
            Rhai::LexError(e) if matches!(*e, rhai::LexError::UnterminatedString) => {
                Kind::Unterminated
            }
            Rhai::LeftParen => Kind::LParen,
            Rhai::RightParen => Kind::RParen,
            Rhai::Unit => Kind::Unit,
            Rhai::LeftBracket => Kind::LBracket,
            Rhai::RightBracket => Kind::RBracket,
            Rhai::MapStart => Kind::MapStart,
            Rhai::LeftBrace => Kind::LBrace,
            Rhai::RightBrace => Kind::RBrace,
            Rhai::Colon => Kind::Colon,
            Rhai::DoubleColon => Kind::DoubleColon,
            Rhai::Comma => Kind::Comma,
            Rhai::Period => Kind::Period,
            Rhai::Fn => Kind::Fn,
            Rhai::Import => Kind::Import,
            Rhai::As => Kind::As,
            _ => Kind::Other,
        };
        continuation = false;
        match kind {
            Kind::LBrace | Kind::MapStart => depth += 1,
            Kind::RBrace => {
                if interpolations.last() == Some(&depth) {
                    interpolations.pop();
                    // As Rhai's parser does: what follows is the string's text again.
                    control.borrow_mut().is_within_text = true;
                    continuation = true;
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        let end = match &kind {
            Kind::Ident(name) => start + name.len(),
            Kind::Str(_) => string_end(),
            Kind::Unterminated => text[start..].find('\n').map_or(text.len(), |n| start + n),
            Kind::MapStart | Kind::DoubleColon | Kind::Unit => start + 2,
            Kind::Fn => start + 2,
            Kind::Import => start + 6,
            Kind::As => start + 2,
            Kind::Other => start + text[start..].chars().next().map_or(0, char::len_utf8),
            _ => start + 1,
        };
        out.push(Token {
            kind,
            start,
            end: end.min(text.len()),
        });
    }
    out
}

/// Byte offsets of line starts, to turn Rhai's positions into offsets in one pass.
struct LineStarts(Vec<usize>);

impl LineStarts {
    fn of(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineStarts(starts)
    }

    /// The byte offset of Rhai's 1-based `line` and character `column`.
    fn offset(&self, text: &str, line: usize, column: usize) -> usize {
        let Some(&start) = self.0.get(line - 1) else {
            return text.len();
        };
        let rest = &text[start..];
        let rest = &rest[..rest.find('\n').unwrap_or(rest.len())];
        start
            + rest
                .char_indices()
                .nth(column.max(1) - 1)
                .map_or(rest.len(), |(i, _)| i)
    }
}

/// A call being written: `name(` or `alias::name(`, or a method call `x.name(`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Callee {
    pub namespace: Option<String>,
    pub name: String,
    pub method: bool,
}

/// What is open at a token, innermost last.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    /// A call's parentheses (or plain ones: `None`) and the argument the position is in.
    Paren(Option<Callee>, usize),
    Bracket,
    /// An option map: the key being written, or whose value is being written.
    Map {
        key: Option<String>,
        at_key: bool,
    },
    Brace,
}

/// Where a token stands in the calls around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// The `index`-th argument of a call (a method call's receiver is argument 0).
    Argument {
        call: Callee,
        index: usize,
    },
    /// A key of the option map that is the `index`-th argument of a call.
    OptionKey {
        call: Callee,
        index: usize,
    },
    /// The value of `key` in such a map, or (`in_array`) an element of that value.
    OptionValue {
        call: Callee,
        index: usize,
        key: String,
        in_array: bool,
    },
    Other,
}

/// The place of the token at index `at` of `tokens` (or of a position after all of them,
/// when `at` is their count).
pub(crate) fn place(tokens: &[Token], at: usize) -> Place {
    let mut stack: Vec<Frame> = Vec::new();
    for (i, token) in tokens[..at.min(tokens.len())].iter().enumerate() {
        match &token.kind {
            Kind::LParen => {
                let call = callee(tokens, i);
                // A method's receiver is its first argument.
                let first = usize::from(call.as_ref().is_some_and(|c| c.method));
                stack.push(Frame::Paren(call, first));
            }
            Kind::LBracket => stack.push(Frame::Bracket),
            Kind::MapStart => stack.push(Frame::Map {
                key: None,
                at_key: true,
            }),
            Kind::LBrace => stack.push(Frame::Brace),
            Kind::RParen => pop_to(&mut stack, |f| matches!(f, Frame::Paren(..))),
            Kind::RBracket => pop_to(&mut stack, |f| matches!(f, Frame::Bracket)),
            Kind::RBrace => pop_to(&mut stack, |f| {
                matches!(f, Frame::Map { .. } | Frame::Brace)
            }),
            Kind::Comma => match stack.last_mut() {
                Some(Frame::Paren(_, index)) => *index += 1,
                Some(Frame::Map { key, at_key }) => {
                    *key = None;
                    *at_key = true;
                }
                _ => {}
            },
            Kind::Colon => {
                let written = match i.checked_sub(1).map(|j| &tokens[j].kind) {
                    Some(Kind::Ident(k) | Kind::Str(k)) => Some(k.clone()),
                    _ => None,
                };
                if let Some(Frame::Map { key, at_key }) = stack.last_mut() {
                    if *at_key {
                        *key = written;
                        *at_key = false;
                    }
                }
            }
            _ => {}
        }
    }
    let call_below = |n: usize| match stack.len().checked_sub(n + 1).map(|i| &stack[i]) {
        Some(Frame::Paren(Some(call), index)) => Some((call.clone(), *index)),
        _ => None,
    };
    match stack.last() {
        Some(Frame::Paren(Some(call), index)) => Place::Argument {
            call: call.clone(),
            index: *index,
        },
        Some(Frame::Map { key, at_key }) => match (call_below(1), key) {
            (Some((call, index)), _) if *at_key => Place::OptionKey { call, index },
            (Some((call, index)), Some(key)) => Place::OptionValue {
                call,
                index,
                key: key.clone(),
                in_array: false,
            },
            _ => Place::Other,
        },
        Some(Frame::Bracket) => match (stack.iter().rev().nth(1), call_below(2)) {
            (
                Some(Frame::Map {
                    key: Some(key),
                    at_key: false,
                }),
                Some((call, index)),
            ) => Place::OptionValue {
                call,
                index,
                key: key.clone(),
                in_array: true,
            },
            _ => Place::Other,
        },
        _ => Place::Other,
    }
}

fn pop_to(stack: &mut Vec<Frame>, opens: impl Fn(&Frame) -> bool) {
    if let Some(i) = stack.iter().rposition(opens) {
        stack.truncate(i);
    }
}

/// The call whose `(` is token `paren`: `name(`, `alias::name(` or `x.name(`; none for
/// plain parentheses and for a function's definition (`fn name(`).
fn callee(tokens: &[Token], paren: usize) -> Option<Callee> {
    let kind = |back: usize| paren.checked_sub(back).map(|i| &tokens[i].kind);
    let Some(Kind::Ident(name)) = kind(1) else {
        return None;
    };
    match (kind(2), kind(3)) {
        (Some(Kind::Fn), _) => None,
        (Some(Kind::DoubleColon), Some(Kind::Ident(alias))) => Some(Callee {
            namespace: Some(alias.clone()),
            name: name.clone(),
            method: false,
        }),
        (Some(Kind::Period), _) => Some(Callee {
            namespace: None,
            name: name.clone(),
            method: true,
        }),
        _ => Some(Callee {
            namespace: None,
            name: name.clone(),
            method: false,
        }),
    }
}

/// The index of the token that holds byte `offset` (its start included, its end excluded).
pub(crate) fn token_at(tokens: &[Token], offset: usize) -> Option<usize> {
    tokens
        .iter()
        .position(|t| t.start <= offset && offset < t.end)
}

/// The module alias before the identifier at token `at` (`alias::name`), if any.
pub(crate) fn namespace_of(tokens: &[Token], at: usize) -> Option<&str> {
    match (
        at.checked_sub(1).map(|i| &tokens[i].kind),
        at.checked_sub(2).map(|i| &tokens[i].kind),
    ) {
        (Some(Kind::DoubleColon), Some(Kind::Ident(alias))) => Some(alias),
        _ => None,
    }
}

/// Whether the token at `at` follows a `.` (a property or a method).
pub(crate) fn after_period(tokens: &[Token], at: usize) -> bool {
    at.checked_sub(1)
        .is_some_and(|i| tokens[i].kind == Kind::Period)
}

/// `import "path" as alias;` statements: `(path, alias)`.
pub(crate) fn imports(tokens: &[Token]) -> Vec<(String, String)> {
    tokens
        .windows(4)
        .filter_map(|w| match (&w[0].kind, &w[1].kind, &w[2].kind, &w[3].kind) {
            (Kind::Import, Kind::Str(path), Kind::As, Kind::Ident(alias)) => {
                Some((path.clone(), alias.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The import path bound to `alias`.
pub(crate) fn import_of(tokens: &[Token], alias: &str) -> Option<String> {
    imports(tokens)
        .into_iter()
        .find(|(_, a)| a == alias)
        .map(|(path, _)| path)
}

/// The name tokens of the functions `text` defines (`fn name(`), in order.
pub(crate) fn definitions(tokens: &[Token]) -> Vec<&Token> {
    tokens
        .windows(3)
        .filter(|w| w[0].kind == Kind::Fn && matches!(w[2].kind, Kind::LParen | Kind::Unit))
        .filter(|w| matches!(w[1].kind, Kind::Ident(_)))
        .map(|w| &w[1])
        .collect()
}

/// Whether byte `offset`, which no token holds, lies inside a comment: a `//` or an unclosed
/// `/*` between the previous token and it (strings are tokens, so one there is a comment).
pub(crate) fn in_comment(text: &str, tokens: &[Token], offset: usize) -> bool {
    let from = tokens
        .iter()
        .rev()
        .find(|t| t.end <= offset)
        .map_or(0, |t| t.end);
    let gap = &text[from.min(offset)..offset];
    let line_comment = gap
        .rsplit('\n')
        .next()
        .is_some_and(|line| line.contains("//"));
    let block = gap
        .rfind("/*")
        .is_some_and(|open| !gap[open..].contains("*/"));
    line_comment || block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Kind> {
        tokens(text).into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn tokens_carry_byte_ranges_in_multibyte_text() {
        let text = "note(\"é😀\"); vm(\"x\")";
        let all = tokens(text);
        let s = &all[2];
        assert_eq!(s.kind, Kind::Str("é😀".into()));
        assert_eq!(&text[s.start..s.end], "\"é😀\"");
        let vm = all
            .iter()
            .find(|t| t.kind == Kind::Ident("vm".into()))
            .unwrap();
        assert_eq!(&text[vm.start..vm.end], "vm");
    }

    #[test]
    fn interpolations_and_comments_are_read_as_rhai_reads_them() {
        let text = "let x = `a${ vm(\"b\") }c`; // vm(\"no\")\nnote(\"d\");";
        let strings: Vec<Kind> = kinds(text)
            .into_iter()
            .filter(|k| matches!(k, Kind::Str(_)))
            .collect();
        assert_eq!(strings, [Kind::Str("b".into()), Kind::Str("d".into())]);
        let all = tokens(text);
        let comment = text.find("no").unwrap();
        assert!(in_comment(text, &all, comment));
        assert!(!in_comment(text, &all, text.find("note").unwrap()));
        assert!(in_comment("/* a\n b", &tokens("/* a\n b"), 6));
        assert!(!in_comment("/* a */ ", &tokens("/* a */ "), 8));
    }

    #[test]
    fn an_interpolation_ending_its_string_does_not_end_the_tokens() {
        let text = "let t = if a { b } else { `, ${b}` };\nfn after() {}\n";
        let all = tokens(text);
        let names: Vec<&str> = definitions(&all)
            .iter()
            .map(|t| &text[t.start..t.end])
            .collect();
        assert_eq!(names, ["after"]);
        // Every public function of the stdlib is found where it is defined.
        for (name, source) in crate::script::stdlib::MODULES {
            let all = tokens(source);
            let defined: Vec<&str> = definitions(&all)
                .iter()
                .map(|t| &source[t.start..t.end])
                .collect();
            for function in crate::script::definitions::module_functions(source) {
                assert!(
                    defined.contains(&function.name.as_str()),
                    "{name}: {}",
                    function.name
                );
            }
        }
    }

    #[test]
    fn places_of_arguments_option_keys_and_values() {
        let text = "failover::group([vm(\"a\")], #{ kind: \"planned\", direction: x }, \"1h\");\npreflight(#{ vms: [\"b\"] }); job.wait(1);";
        let all = tokens(text);
        let at = |needle: &str| {
            let offset = text.find(needle).unwrap();
            place(&all, token_at(&all, offset).unwrap())
        };
        let call = |ns: Option<&str>, name: &str| Callee {
            namespace: ns.map(str::to_string),
            name: name.into(),
            method: false,
        };
        assert_eq!(
            at("\"a\""),
            Place::Argument {
                call: call(None, "vm"),
                index: 0
            }
        );
        assert_eq!(
            at("direction"),
            Place::OptionKey {
                call: call(Some("failover"), "group"),
                index: 1
            }
        );
        assert_eq!(
            at("\"planned\""),
            Place::OptionValue {
                call: call(Some("failover"), "group"),
                index: 1,
                key: "kind".into(),
                in_array: false
            }
        );
        assert_eq!(
            at("\"1h\""),
            Place::Argument {
                call: call(Some("failover"), "group"),
                index: 2
            }
        );
        assert_eq!(
            at("\"b\""),
            Place::OptionValue {
                call: call(None, "preflight"),
                index: 0,
                key: "vms".into(),
                in_array: true
            }
        );
        let method = place(&all, token_at(&all, text.find("1)").unwrap()).unwrap());
        assert!(matches!(method, Place::Argument { call, index: 1 } if call.method));
    }

    #[test]
    fn unfinished_text_still_has_places() {
        let text = "vms(#{ plan: \"we";
        let all = tokens(text);
        assert_eq!(all.last().unwrap().kind, Kind::Unterminated);
        assert!(matches!(
            place(&all, all.len() - 1),
            Place::OptionValue { key, .. } if key == "plan"
        ));
        let text = "failover(vm(\"a\"), #{ ";
        let all = tokens(text);
        assert!(matches!(
            place(&all, all.len()),
            Place::OptionKey { call, index: 1 } if call.name == "failover"
        ));
    }

    #[test]
    fn imports_aliases_and_definitions() {
        let text = "import \"runbook/failover\" as f;\nimport \"lib/steps\" as steps;\nfn run(a) { f::group(a) }\nprivate fn hidden() {}";
        let all = tokens(text);
        assert_eq!(import_of(&all, "steps").as_deref(), Some("lib/steps"));
        assert_eq!(import_of(&all, "g"), None);
        let names: Vec<&str> = definitions(&all)
            .iter()
            .map(|t| &text[t.start..t.end])
            .collect();
        assert_eq!(names, ["run", "hidden"]);
        let group = token_at(&all, text.find("group").unwrap()).unwrap();
        assert_eq!(namespace_of(&all, group), Some("f"));
        assert!(!after_period(&all, group));
        // A definition's parentheses are no call.
        let paren = token_at(&all, text.find("(a)").unwrap()).unwrap();
        assert_eq!(place(&all, paren + 1), Place::Other);
    }
}
