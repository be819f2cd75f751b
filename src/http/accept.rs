//! `Accept` (RFC 9110 §12.5.1): how much a client wants a media type.
//!
//! Read only where an answer depends on it, never for an ordinary file: a
//! directory listing's format ([`crate::listing::Format::negotiate`]) and the
//! `--fallback` page ([`accepts_html`]). Both answers then carry
//! `Vary: Accept`, so caches keep the representations apart.

/// The weight, in thousandths (`q=0.5` is 500, no `q` is 1000), that
/// `accept` gives to the media range `range`, compared without regard to
/// case; the highest when it is listed twice; `None` when it is not listed.
/// Only the exact range counts: `*/*` is not an answer for `text/html`.
pub fn weight(accept: &[u8], range: &[u8]) -> Option<u16> {
    accept
        .split(|&b| b == b',')
        .filter_map(|listed| {
            let mut parts = listed.split(|&b| b == b';');
            let media_range = parts.next()?.trim_ascii();
            if !media_range.eq_ignore_ascii_case(range) {
                return None;
            }
            Some(parts.find_map(quality).unwrap_or(1000))
        })
        .max()
}

/// Whether a request with this `Accept` (or none, which accepts anything)
/// takes an HTML page: `text/html`, `text/*` or `*/*` with a weight above
/// zero. A browser's navigation does; `fetch()` of a JSON API with
/// `Accept: application/json` does not.
pub fn accepts_html(accept: Option<&[u8]>) -> bool {
    let Some(accept) = accept else {
        return true;
    };
    [&b"text/html"[..], b"text/*", b"*/*"]
        .iter()
        .any(|range| weight(accept, range).is_some_and(|weight| weight > 0))
}

/// A `q=` parameter's weight in thousandths; `None` for other parameters.
/// A malformed weight counts as zero: not acceptable.
fn quality(parameter: &[u8]) -> Option<u16> {
    let (name, value) = parameter.trim_ascii().split_at_checked(2)?;
    if !name.eq_ignore_ascii_case(b"q=") {
        return None;
    }
    let (whole, fraction) = match value.split_first() {
        Some((b'1', rest)) => (1000, rest),
        Some((b'0', rest)) => (0, rest),
        _ => return Some(0),
    };
    let digits = match fraction {
        [] => &[][..],
        [b'.', digits @ ..] if digits.len() <= 3 && digits.iter().all(u8::is_ascii_digit) => digits,
        _ => return Some(0),
    };
    let thousandths: u16 = [100, 10, 1]
        .iter()
        .zip(digits)
        .map(|(place, &digit)| place * u16::from(digit - b'0'))
        .sum();
    Some((whole + thousandths).min(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights() {
        let cases = [
            ("q=1", Some(1000)),
            ("q=0.5", Some(500)),
            (" Q=0.125", Some(125)),
            ("q=0", Some(0)),
            ("q=1.0", Some(1000)),
            ("q=2", Some(0)),
            ("q=0.1234", Some(0)),
            ("charset=utf-8", None),
        ];
        for (parameter, expected) in cases {
            assert_eq!(quality(parameter.as_bytes()), expected, "{parameter}");
        }
        assert_eq!(
            weight(b"text/html;level=1;q=0.4, TEXT/HTML;q=0.6", b"text/html"),
            Some(600)
        );
        assert_eq!(weight(b"*/*", b"text/html"), None);
    }

    #[test]
    fn html_is_accepted_by_browsers_and_wildcards() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        for accept in [None, Some("*/*"), Some("text/*"), Some(browser)] {
            assert!(accepts_html(accept.map(str::as_bytes)), "{accept:?}");
        }
        for accept in [
            "application/json",
            "image/*",
            "text/html;q=0, */*;q=0",
            "text/css",
        ] {
            assert!(!accepts_html(Some(accept.as_bytes())), "{accept}");
        }
    }
}
