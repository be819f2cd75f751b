//! The `Range` header (RFC 9110 §14.2): which bytes of a file to send.
//!
//! mioserve serves exactly one range per response. A request for several
//! ranges (`bytes=0-1,5-9`) gets the whole file with `200`, which RFC 9110
//! §14.2 allows ("a server MAY ignore the Range header field"), and which is
//! what browsers and download managers expect: they only ever ask for one
//! range at a time. A `Range` we cannot parse, or in a unit other than bytes,
//! is ignored the same way.

use crate::http::decimal_or_overflow;

/// What a `Range` header asks of a file of a given length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// Send the whole file (no usable range).
    Whole,
    /// Send bytes `first..=last` (both within the file) with `206`.
    Part {
        /// Offset of the first byte.
        first: u64,
        /// Offset of the last byte (inclusive, as in `Content-Range`).
        last: u64,
    },
    /// No requested byte exists: `416` with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Interprets a `Range` header value for a file of `len` bytes.
pub fn byte_range(header: &[u8], len: u64) -> ByteRange {
    let header = header.trim_ascii();
    let Some(unit_end) = header.iter().position(|&b| b == b'=') else {
        return ByteRange::Whole;
    };
    if !header[..unit_end]
        .trim_ascii()
        .eq_ignore_ascii_case(b"bytes")
    {
        return ByteRange::Whole;
    }
    let spec = header[unit_end + 1..].trim_ascii();
    if spec.contains(&b',') {
        return ByteRange::Whole;
    }
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return ByteRange::Whole;
    };
    let (first, last) = (spec[..dash].trim_ascii(), spec[dash + 1..].trim_ascii());
    match (position(first), position(last)) {
        // bytes=-N: the last N bytes.
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 || len == 0 {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Part {
                    first: len.saturating_sub(suffix),
                    last: len - 1,
                }
            }
        }
        // bytes=N-: from N to the end.
        (Some(first), None) if last.is_empty() => part_from(first, u64::MAX, len),
        // bytes=N-M
        (Some(first), Some(last)) if first <= last => part_from(first, last, len),
        _ => ByteRange::Whole,
    }
}

/// A byte position or suffix length. RFC 9110 §14.1.1 sets no upper bound,
/// and a number beyond `u64` lies past the end of every file just as
/// `u64::MAX` does, so it is read as `u64::MAX`: `bytes=99999999999999999999-`
/// is unsatisfiable like `bytes=18446744073709551615-`, not ignored.
fn position(digits: &[u8]) -> Option<u64> {
    decimal_or_overflow(digits).map(|number| number.unwrap_or(u64::MAX))
}

fn part_from(first: u64, last: u64, len: u64) -> ByteRange {
    if first >= len {
        ByteRange::Unsatisfiable
    } else {
        ByteRange::Part {
            first,
            last: last.min(len - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_of_a_thousand_byte_file() {
        use ByteRange::{Part, Unsatisfiable, Whole};
        let cases: &[(&str, ByteRange)] = &[
            ("bytes=0-99", Part { first: 0, last: 99 }),
            (
                "bytes=100-",
                Part {
                    first: 100,
                    last: 999,
                },
            ),
            (
                "bytes=-100",
                Part {
                    first: 900,
                    last: 999,
                },
            ),
            (
                "bytes=-5000",
                Part {
                    first: 0,
                    last: 999,
                },
            ),
            (
                "bytes=990-5000",
                Part {
                    first: 990,
                    last: 999,
                },
            ),
            (
                "bytes=999-999",
                Part {
                    first: 999,
                    last: 999,
                },
            ),
            ("Bytes = 5 - 6 ", Part { first: 5, last: 6 }),
            ("bytes=1000-", Unsatisfiable),
            ("bytes=1000-2000", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=5-4", Whole),
            ("bytes=0-1,5-9", Whole),
            ("bytes=abc", Whole),
            ("bytes=-", Whole),
            ("bytes=1-2-3", Whole),
            ("bytes=+1-2", Whole),
            ("items=0-1", Whole),
            ("bytes 0-1", Whole),
            // Numbers past u64 are past the end, like u64::MAX.
            ("bytes=99999999999999999999-", Unsatisfiable),
            ("bytes=18446744073709551615-", Unsatisfiable),
            (
                "bytes=99999999999999999999-99999999999999999999",
                Unsatisfiable,
            ),
            (
                "bytes=0-99999999999999999999",
                Part {
                    first: 0,
                    last: 999,
                },
            ),
            (
                "bytes=-99999999999999999999",
                Part {
                    first: 0,
                    last: 999,
                },
            ),
            ("bytes=99999999999999999999-5", Whole),
            ("", Whole),
        ];
        for (header, expected) in cases {
            assert_eq!(byte_range(header.as_bytes(), 1000), *expected, "{header}");
        }
    }

    #[test]
    fn an_empty_file_has_no_satisfiable_range() {
        assert_eq!(byte_range(b"bytes=0-", 0), ByteRange::Unsatisfiable);
        assert_eq!(byte_range(b"bytes=-1", 0), ByteRange::Unsatisfiable);
    }
}
