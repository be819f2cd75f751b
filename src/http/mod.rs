//! HTTP/1.1 as mioserve speaks it: parsing request heads ([`request`]),
//! interpreting the conditional headers ([`validators`]), `Range`
//! ([`range`]) and `Accept` ([`accept`]), choosing among precompressed files
//! by `Accept-Encoding` ([`encoding`]), writing response heads ([`response`]) and the status codes we
//! answer with ([`status`]). The small pieces of grammar several of them
//! share sit here: numbers ([`decimal`]) and weights ([`weight`], [`qvalue`]).
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

/// A weight (RFC 9110 §12.4.2) in thousandths, `0` to `1000`: how much a
/// client wants a listed media type (`Accept`) or coding
/// (`Accept-Encoding`). Zero means "not acceptable", not "least preferred".
pub type Weight = u16;

/// The weight of a list member without `q`.
pub const DEFAULT_WEIGHT: Weight = 1000;

/// The weight among a list member's parameters (the pieces after its first
/// `;`, `q` case-insensitive): [`DEFAULT_WEIGHT`] without one, `None` when
/// it is malformed. Both negotiations skip a member whose weight cannot be
/// read, rather than guess what its sender meant.
///
/// RFC 9110 §12.4.2 allows no space around the `=` (`OWS ";" OWS "q="
/// qvalue`); we read `q = 0.3` as well: leniency here costs nothing, and
/// the value itself is still held to the grammar.
pub fn weight<'p>(parameters: impl Iterator<Item = &'p [u8]>) -> Option<Weight> {
    let mut weight = DEFAULT_WEIGHT;
    for parameter in parameters {
        let parameter = parameter.trim_ascii();
        let Some((name, value)) = parameter.split_at_checked(1) else {
            continue;
        };
        let Some(value) = value.trim_ascii_start().strip_prefix(b"=") else {
            continue;
        };
        if name.eq_ignore_ascii_case(b"q") {
            weight = qvalue(value.trim_ascii())?;
        }
    }
    Some(weight)
}

/// A `qvalue` in thousandths, `None` unless it follows RFC 9110 §12.4.2:
/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`. So `1.5`,
/// `2`, `.5` and `0.1234` are all malformed, not rounded into range.
pub fn qvalue(text: &[u8]) -> Option<Weight> {
    let (whole, fraction) = match text.split_first()? {
        (&digit @ (b'0' | b'1'), rest) => match rest {
            [] => (digit, &[][..]),
            [b'.', fraction @ ..] if fraction.len() <= 3 => (digit, fraction),
            _ => return None,
        },
        _ => return None,
    };
    let mut thousandths: Weight = 0;
    for place in 0..3 {
        let digit = match fraction.get(place) {
            Some(&digit) if digit.is_ascii_digit() => digit - b'0',
            Some(_) => return None,
            None => 0,
        };
        thousandths = thousandths * 10 + Weight::from(digit);
    }
    let weight = Weight::from(whole - b'0') * 1000 + thousandths;
    (weight <= DEFAULT_WEIGHT).then_some(weight)
}

#[cfg(test)]
mod tests {
    use super::{Weight, decimal, qvalue, weight};

    #[test]
    fn qvalues_are_thousandths() {
        let cases: &[(&[u8], Option<Weight>)] = &[
            (b"0", Some(0)),
            (b"1", Some(1000)),
            (b"1.", Some(1000)),
            (b"1.000", Some(1000)),
            (b"1.001", None),
            (b"1.5", None),
            (b"0.5", Some(500)),
            (b"0.05", Some(50)),
            (b"0.123", Some(123)),
            (b"0.1234", None),
            (b"2", None),
            (b".5", None),
            (b"", None),
            (b"0.a", None),
            (b"-0", None),
        ];
        for &(text, expected) in cases {
            assert_eq!(
                qvalue(text),
                expected,
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn weights_come_from_the_q_parameter() {
        let cases: &[(&str, Option<Weight>)] = &[
            ("", Some(1000)),
            ("q=0.5", Some(500)),
            (" Q=0.125", Some(125)),
            ("q = 0.3 ", Some(300)),
            ("level=1;q=0", Some(0)),
            ("charset=utf-8", Some(1000)),
            ("q=2", None),
            ("q=1.5", None),
            ("q=", None),
        ];
        for &(parameters, expected) in cases {
            let split = parameters.as_bytes().split(|&b| b == b';');
            assert_eq!(weight(split), expected, "{parameters:?}");
        }
    }

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
