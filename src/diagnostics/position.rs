//! Conversion from Rhai positions (1-based line, 1-based column counted in characters, a tab
//! is one) to byte offsets and to the language server protocol's positions (0-based line,
//! column in UTF-16 code units), and the length of the token found at a position.

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

/// The language server protocol's position of Rhai's 1-based `line` and character `column`:
/// a 0-based line and a column in UTF-16 code units (a character outside the Basic
/// Multilingual Plane counts two). A column past the line's end clamps to its end; a line the
/// text does not have keeps its number, at column 0.
pub fn utf16_position(text: &str, line: usize, column: usize) -> (u32, u32) {
    let line0 = line.max(1) - 1;
    let Some(line_text) = text.split('\n').nth(line0) else {
        return (saturate(line0), 0);
    };
    let line_text = line_text.strip_suffix('\r').unwrap_or(line_text);
    let units: usize = line_text
        .chars()
        .take(column.max(1) - 1)
        .map(char::len_utf16)
        .sum();
    (saturate(line0), saturate(units))
}

/// The byte offset of a language server position (0-based `line`, `character` in UTF-16 code
/// units). A column past the line's end, or inside a character's surrogate pair, clamps to
/// the end of the line or of that character; `None` if the line does not exist.
pub fn offset_of_utf16(text: &str, line: u32, character: u32) -> Option<usize> {
    let mut start = 0usize;
    for _ in 0..line {
        start += text[start..].find('\n')? + 1;
    }
    let rest = &text[start..];
    let line_text = &rest[..rest.find('\n').unwrap_or(rest.len())];
    let line_text = line_text.strip_suffix('\r').unwrap_or(line_text);
    let mut units = 0usize;
    for (i, c) in line_text.char_indices() {
        if units >= character as usize {
            return Some(start + i);
        }
        units += c.len_utf16();
    }
    Some(start + line_text.len())
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
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

/// How many characters a label starting at byte `offset` covers: `len`, or the token found
/// there when `len` is 0 (a finding that names a place but not a length).
pub fn label_chars(text: &str, offset: usize, len: usize) -> usize {
    if len == 0 {
        token_chars_at(text, offset)
    } else {
        len
    }
}

/// A span of a source in 1-based lines and character columns. The end is the position just
/// after the last character (exclusive), as SARIF and GitHub annotations count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Region {
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
}

impl Region {
    /// The region of `len` characters (or the token, when `len` is 0) at `line`:`column` of
    /// `text`. A place the text does not have gets a one-character region there.
    pub fn of(text: Option<&str>, line: usize, column: usize, len: usize) -> Region {
        let located = text.and_then(|text| {
            let start = offset_of(text, line, column)?;
            let end = start + char_span_to_bytes(text, start, label_chars(text, start, len));
            Some((line_col_of(text, start), line_col_of(text, end.max(start))))
        });
        let ((line, column), (end_line, end_column)) = match located {
            // An empty label (at the end of the text) still covers one column.
            Some((start, end)) if end == start => (start, (start.0, start.1 + 1)),
            Some(span) => span,
            None => ((line, column), (line, column + len.max(1))),
        };
        Region {
            line,
            column,
            end_line,
            end_column,
        }
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

    #[test]
    fn regions_end_after_the_last_character_in_characters() {
        let text = "x\n\tvm(\"wéb\"); é\n";
        // tab(1) v(2) m(3) ((4) "(5)
        assert_eq!(
            Region::of(Some(text), 2, 5, 0),
            Region {
                line: 2,
                column: 5,
                end_line: 2,
                end_column: 10
            },
            "the string token with its quotes"
        );
        assert_eq!(Region::of(Some(text), 2, 2, 2).end_column, 4);
        // A label running past the line's end ends on the next line.
        assert_eq!(Region::of(Some(text), 1, 1, 3).end_line, 2);
        // Places the text does not have keep their position.
        assert_eq!(Region::of(Some(text), 9, 3, 2).end_column, 5);
        assert_eq!(Region::of(None, 1, 1, 0).end_column, 2);
        assert_eq!(Region::of(Some(""), 1, 1, 0).end_column, 2);
    }
    #[test]
    fn utf16_columns_count_astral_characters_twice() {
        // é is 2 bytes and 1 unit, → 3 bytes and 1 unit, 😀 4 bytes and 2 units (one char).
        let text = "a\n\té→😀x(\"😀\")\r\nz";
        // line 2: tab(1) é(2) →(3) 😀(4) x(5)
        assert_eq!(utf16_position(text, 2, 1), (1, 0));
        assert_eq!(utf16_position(text, 2, 4), (1, 3));
        assert_eq!(utf16_position(text, 2, 5), (1, 5), "😀 is two units");
        assert_eq!(utf16_position(text, 2, 8), (1, 8));
        // Past the line's end (the \r is not part of it), and lines the text lacks.
        assert_eq!(utf16_position(text, 2, 99), (1, 12));
        assert_eq!(utf16_position(text, 9, 3), (8, 0));
        assert_eq!(utf16_position(text, 3, 2), (2, 1));
    }

    #[test]
    fn utf16_positions_convert_back_to_byte_offsets() {
        let text = "a\n\té→😀x(\"😀\")\r\nz";
        let x = text.find('x').unwrap();
        assert_eq!(offset_of_utf16(text, 1, 5), Some(x));
        assert_eq!(offset_of_utf16(text, 1, 0), Some(2));
        // Inside the surrogate pair of 😀: the character's end.
        assert_eq!(offset_of_utf16(text, 1, 4), Some(x));
        assert_eq!(offset_of_utf16(text, 1, 99), text.find('\r'));
        assert_eq!(offset_of_utf16(text, 2, 0), text.find('z'));
        assert_eq!(offset_of_utf16(text, 3, 0), None);
        // Both ways agree on every character of a line with every kind of width.
        let line = "\tvm(\"wéb→😀\"); é";
        for (column, (byte, _)) in line.char_indices().enumerate() {
            let (l, units) = utf16_position(line, 1, column + 1);
            assert_eq!(offset_of_utf16(line, l, units), Some(byte));
            assert_eq!(offset_of(line, 1, column + 1), Some(byte));
        }
    }
}
