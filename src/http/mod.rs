//! HTTP/1.1 as mioserve speaks it: parsing request heads ([`request`]),
//! interpreting the conditional headers ([`validators`]), `Range`
//! ([`range`]) and `Accept` ([`accept`]), choosing among precompressed files
//! by `Accept-Encoding` ([`encoding`]), writing response heads ([`response`]) and the status codes we
//! answer with ([`status`]).
//!
//! Nothing here does I/O or allocates per request: the parser borrows the
//! connection's read buffer and describes the request with offsets into it;
//! the head writer appends to a pooled output buffer.

pub mod accept;
pub mod encoding;
pub mod range;
pub mod request;
pub mod response;
pub mod status;
pub mod validators;

pub use request::{Method, ParseError, Parsed, Request, Span, Version};
pub use status::Status;

/// A decimal number as HTTP writes one, `1*DIGIT` (`Content-Length`, the
/// positions in `Range`): `None` for an empty value, any byte that is not a
/// digit (signs and spaces included), or a value beyond `u64`.
pub fn decimal(digits: &[u8]) -> Option<u64> {
    decimal_or_overflow(digits)?.ok()
}

/// Like [`decimal`], but tells a well-formed number too large for `u64`
/// (`Err(())`) from a malformed one (`None`): a byte position that large is
/// past the end of any file, while a `Content-Length` that large is refused.
pub fn decimal_or_overflow(digits: &[u8]) -> Option<Result<u64, ()>> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .try_fold(0u64, |total, &digit| {
                total.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
            })
            .ok_or(()),
    )
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimals_are_digits_only_and_never_overflow() {
        let cases: &[(&[u8], Option<u64>)] = &[
            (b"0", Some(0)),
            (b"007", Some(7)),
            (b"18446744073709551615", Some(u64::MAX)),
            (b"18446744073709551616", None),
            (b"", None),
            (b"+1", None),
            (b"-1", None),
            (b" 1", None),
            (b"1x", None),
        ];
        for (digits, expected) in cases {
            assert_eq!(
                decimal(digits),
                *expected,
                "{:?}",
                String::from_utf8_lossy(digits)
            );
        }
    }
}
