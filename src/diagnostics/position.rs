//! Conversion from Rhai positions (1-based line, 1-based column counted in characters, a tab
//! is one) to byte offsets, and the length of the token found at a position.

/// Byte offset of the character at `line`:`column` (both 1-based, column in characters).
/// A column past the end of the line clamps to the line's end. `None` if the line does not exist.
pub fn offset_of(text: &str, line: usize, column: usize) -> Option<usize> {
    if line == 0 {
        return None;
    }
    let mut start = 0usize;
    for _ in 1..line {
        let nl = text[start..].find('\n')?;
        start += nl + 1;
    }
    let line_text = &text[start..];
    let line_end = line_text.find('\n').unwrap_or(line_text.len());
    let line_text = &line_text[..line_end];
    let col = column.max(1) - 1;
    let within = line_text
        .char_indices()
        .nth(col)
        .map_or(line_text.len(), |(i, _)| i);
    Some(start + within)
}

/// The 1-based line and character column of byte `offset` (clamped to the text).
pub fn line_col_of(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Converts a span of `chars` characters starting at byte `offset` into a byte length.
pub fn char_span_to_bytes(text: &str, offset: usize, chars: usize) -> usize {
    text.get(offset..)
        .map(|rest| {
            rest.char_indices()
                .nth(chars)
                .map_or(rest.len(), |(i, _)| i)
        })
        .unwrap_or(0)
}

/// The length in characters of the token that starts at byte `offset`: an identifier or
/// number, a string literal with its quotes, or else one character.
pub fn token_chars_at(text: &str, offset: usize) -> usize {
    let Some(rest) = text.get(offset..) else {
        return 1;
    };
    let mut chars = rest.chars();
    match chars.next() {
        Some(q @ ('"' | '`' | '\'')) => {
            let mut n = 1;
            let mut escaped = false;
            for c in chars {
                n += 1;
                if c == '\n' {
                    return n - 1;
                }
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    return n;
                }
            }
            n
        }
        Some(c) if c.is_alphanumeric() || c == '_' => {
            1 + chars
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .count()
        }
        Some(_) => 1,
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters_not_bytes() {
        let text = "let a = 1;\n\tlet é = \"ü\"; fail(x)\n";
        // line 2: tab(1) l(2) e(3) t(4) ' '(5) é(6) ...
        let off = offset_of(text, 2, 6).unwrap();
        assert_eq!(&text[off..off + 'é'.len_utf8()], "é");
        let col = text
            .lines()
            .nth(1)
            .unwrap()
            .chars()
            .position(|c| c == 'f')
            .unwrap()
            + 1;
        let off = offset_of(text, 2, col).unwrap();
        assert!(text[off..].starts_with("fail(x)"));
        assert_eq!(token_chars_at(text, off), 4);
    }

    #[test]
    fn string_tokens_include_their_quotes() {
        let text = "x(\"wéb-01\", 2)";
        let off = text.find('"').unwrap();
        let n = token_chars_at(text, off);
        assert_eq!(n, 8);
        let bytes = char_span_to_bytes(text, off, n);
        assert_eq!(&text[off..off + bytes], "\"wéb-01\"");
    }

    #[test]
    fn line_and_column_of_an_offset() {
        let text = "ab\n\té→x\n";
        let x = text.find('x').unwrap();
        assert_eq!(line_col_of(text, x), (2, 4));
        assert_eq!(offset_of(text, 2, 4), Some(x));
        assert_eq!(line_col_of(text, 0), (1, 1));
        assert_eq!(line_col_of(text, 999).0, 3);
    }

    #[test]
    fn out_of_range_positions() {
        assert_eq!(offset_of("abc", 2, 1), None);
        assert_eq!(offset_of("abc", 0, 1), None);
        assert_eq!(offset_of("abc", 1, 99), Some(3));
        assert_eq!(char_span_to_bytes("abc", 10, 2), 0);
    }
}
