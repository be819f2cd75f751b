//! `Accept` (RFC 9110 §12.5.1): how much a client wants a media type.
//!
//! Read only where an answer depends on it, never for an ordinary file: a
//! directory listing's format ([`crate::listing::Format::negotiate`]) and the
//! `--fallback` page ([`accepts_html`]). Both answers then carry
//! `Vary: Accept`, so caches keep the representations apart.

use crate::http::{self, Weight};

/// The weight, in thousandths (`q=0.5` is 500, no `q` is 1000), that
/// `accept` gives to the media range `range`, compared without regard to
/// case; the highest when it is listed twice; `None` when it is not listed.
/// Only the exact range counts: `*/*` is not an answer for `text/html`. A
/// listed range whose weight cannot be read ([`http::weight`]) is skipped,
/// as `Accept-Encoding`'s are.
pub fn weight(accept: &[u8], range: &[u8]) -> Option<Weight> {
    accept
        .split(|&b| b == b',')
        .filter_map(|listed| {
            let mut parts = listed.split(|&b| b == b';');
            let media_range = parts.next()?.trim_ascii();
            if !media_range.eq_ignore_ascii_case(range) {
                return None;
            }
            http::weight(parts)
        })
        .max()
}

/// Whether a request with this `Accept` (or none, which accepts anything)
/// takes an HTML page: the weight of the most specific range listed among
/// `text/html`, `text/*` and `*/*` is above zero (RFC 9110 §12.5.1: the most
/// specific reference wins, so `text/html;q=0, */*` refuses HTML). A
/// browser's navigation does take it; `fetch()` of a JSON API with
/// `Accept: application/json` does not.
pub fn accepts_html(accept: Option<&[u8]>) -> bool {
    let Some(accept) = accept else {
        return true;
    };
    [&b"text/html"[..], b"text/*", b"*/*"]
        .iter()
        .find_map(|range| weight(accept, range))
        .is_some_and(|weight| weight > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights() {
        assert_eq!(
            weight(b"text/html;level=1;q=0.4, TEXT/HTML;q=0.6", b"text/html"),
            Some(600)
        );
        assert_eq!(weight(b"*/*", b"text/html"), None);
        assert_eq!(
            weight(b"text/html;q=1.5, text/html;q=0.2", b"text/html"),
            Some(200)
        );
        assert_eq!(weight(b"text/html;q=2", b"text/html"), None);
    }

    #[test]
    fn html_is_accepted_by_browsers_and_wildcards() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        for accept in [
            None,
            Some("*/*"),
            Some("text/*"),
            Some(browser),
            Some("text/html, text/*;q=0, */*;q=0"),
            Some("text/*;q=0.1, */*;q=0"),
            Some("text/html;q=2, */*"),
        ] {
            assert!(accepts_html(accept.map(str::as_bytes)), "{accept:?}");
        }
        for accept in [
            "application/json",
            "image/*",
            "text/html;q=0, */*;q=0",
            "text/html;q=0, */*;q=0.8",
            "text/html;q=0, text/*, */*",
            "text/*;q=0, */*",
            "text/css",
        ] {
            assert!(!accepts_html(Some(accept.as_bytes())), "{accept}");
        }
    }
}
