//! JSON strings (RFC 8259 §7) appended to byte buffers: the one escaper
//! behind every JSON the server writes, the access log's `--log-format json`
//! ([`crate::log`]), the trace's `--trace-format json` ([`crate::trace`]) and
//! a directory listing's JSON form ([`crate::listing`]).
//!
//! What goes in is bytes, not `&str`: request lines, header values and file
//! names come from clients and file systems, and need not be UTF-8. Nothing
//! is allocated: valid UTF-8 is copied in runs, and each sequence that is not
//! UTF-8 becomes `\ufffd`, the replacement `String::from_utf8_lossy` would
//! make, without building that string.

use crate::ascii::push_hex_byte;

/// Appends `raw` as a JSON string, quotes included: UTF-8 text as is, except
/// `"`, `\` and the control characters, which are escaped. RFC 8259 requires
/// that only of C0; DEL and C1 (`U+007F` to `U+009F`) are escaped too, so
/// that a line printed on a terminal cannot carry a control sequence (C1's
/// `U+009B` is a CSI, like `ESC [`).
pub fn push_string(out: &mut Vec<u8>, raw: &[u8]) {
    out.push(b'"');
    for chunk in raw.utf8_chunks() {
        let mut rest = chunk.valid();
        while let Some((at, special)) = rest
            .char_indices()
            .find(|&(_, character)| matches!(character, '"' | '\\') || character.is_control())
        {
            out.extend_from_slice(&rest.as_bytes()[..at]);
            match special {
                '"' => out.extend_from_slice(br#"\""#),
                '\\' => out.extend_from_slice(br"\\"),
                '\n' => out.extend_from_slice(br"\n"),
                '\r' => out.extend_from_slice(br"\r"),
                '\t' => out.extend_from_slice(br"\t"),
                // Every control character is below U+0100.
                control => {
                    out.extend_from_slice(br"\u00");
                    push_hex_byte(out, control as u32 as u8);
                }
            }
            rest = &rest[at + special.len_utf8()..];
        }
        out.extend_from_slice(rest.as_bytes());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(br"\ufffd");
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::push_string;

    #[test]
    fn strings_escape_quotes_backslashes_and_every_control() {
        let cases: &[(&[u8], &str)] = &[
            (b"", r#""""#),
            (b"plain text", r#""plain text""#),
            (b"a\"b\\c", r#""a\"b\\c""#),
            (b"\n\r\t", r#""\n\r\t""#),
            (b"\x01\x1b[31m", r#""\u0001\u001B[31m""#),
            // DEL and C1 (U+009B, CSI) as well, for terminals.
            ("\u{7f}\u{9b}".as_bytes(), r#""\u007F\u009B""#),
            // Other non-ASCII text as itself: JSON text is UTF-8.
            ("café \u{fffd}".as_bytes(), "\"café \u{fffd}\""),
            // Each invalid sequence: one replacement character.
            (b"not utf-8 \xff\xfe.bin", r#""not utf-8 \ufffd\ufffd.bin""#),
            (b"cut \xe2\x82", r#""cut \ufffd""#),
        ];
        for &(raw, expected) in cases {
            let mut out = Vec::new();
            push_string(&mut out, raw);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
