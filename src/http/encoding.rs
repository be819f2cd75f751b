//! Content negotiation for precompressed files (`--precompressed`): which
//! content codings the server knows, which of a file's precompressed copies
//! ("sidecars": `style.css.br`, `.zst`, `.gz` beside `style.css`) a client
//! accepts, and what a response says about the choice.
//!
//! The server never compresses anything itself: someone ran `gzip -k -9` or
//! `brotli -k` over the site, and we pick among the files they made. The
//! choice follows `Accept-Encoding` (RFC 9110 §12.5.3):
//!
//! - each listed coding carries a weight, `q=1` unless given; `q=0` means
//!   "not acceptable" (static-web-server serves such a coding anyway; we
//!   don't);
//! - `*` gives its weight to every coding not listed by name;
//! - the highest weight wins, and ties go to the server's order
//!   ([`Coding::PREFERENCE`]: br, then zstd, then gzip, smallest first);
//! - the file as it is ("identity") is acceptable unless `identity;q=0` or
//!   `*;q=0` says otherwise, and it wins over a coding the client weighs
//!   lower. When nothing else is acceptable we still send it, with `200`,
//!   as nginx does: RFC 9110 allows this or `406`, and a page the client may
//!   fail to decode is more useful than an error it surely cannot.
//!
//! Two cases RFC 9110 leaves to the server: without the header at all every
//! coding is "acceptable", but a client that says nothing (`curl`, `wget`,
//! many scripts) may not decode any, so it gets the file as it is; an empty
//! header means "no coding, please", and gets the same. A request with the
//! field twice is answered the same way: the parser keeps one span per field
//! (see [`crate::http::request`]), so it hands us an empty value rather than
//! half a list.
//!
//! Weights are read by [`http::weight`], the same rules `Accept` follows.
//!
//! Nothing here allocates or does I/O: the header is read in place, at most
//! once per request, and only when a file has sidecars.

use crate::http::{self, Weight};

/// A content coding the server can serve from a sidecar file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// Brotli (RFC 7932): `file.br`.
    Brotli,
    /// Zstandard (RFC 8878): `file.zst`.
    Zstd,
    /// gzip (RFC 1952): `file.gz`.
    Gzip,
}

impl Coding {
    /// Every coding, in the server's order of preference: the one that
    /// usually makes the smallest file first. Ties between equally weighted
    /// codings go to the earlier one.
    pub const PREFERENCE: [Coding; 3] = [Coding::Brotli, Coding::Zstd, Coding::Gzip];

    /// The name in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// What the sidecar's name adds to the original's.
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Brotli => ".br",
            Coding::Zstd => ".zst",
            Coding::Gzip => ".gz",
        }
    }

    /// Whether `name` (from `Accept-Encoding`) names this coding. RFC 9110
    /// §8.4.1.3: `x-gzip` is the same as `gzip`.
    fn is_named(self, name: &[u8]) -> bool {
        name.eq_ignore_ascii_case(self.token().as_bytes())
            || (self == Coding::Gzip && name.eq_ignore_ascii_case(b"x-gzip"))
    }

    /// This coding's bit in [`Sidecars`].
    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Which precompressed copies of a file exist (and are not older than it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sidecars(u8);

impl Sidecars {
    /// None at all.
    pub const NONE: Sidecars = Sidecars(0);

    /// These sidecars and `coding`'s.
    pub fn with(self, coding: Coding) -> Sidecars {
        Sidecars(self.0 | coding.bit())
    }

    /// Whether `coding`'s sidecar is among these.
    pub fn contains(self, coding: Coding) -> bool {
        self.0 & coding.bit() != 0
    }

    /// Whether there are none.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// What a file response is, among the representations of its path: what it
/// says in `Content-Encoding` and `Vary`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Variant {
    /// The path's only representation (no sidecars, or `--precompressed`
    /// off): neither header.
    #[default]
    Sole,
    /// The file as it is, for a path that also has sidecars: `Vary:
    /// Accept-Encoding`, so that a cache between us and the client does not
    /// hand it to a client that would have got a coding, or the reverse.
    Identity,
    /// A sidecar: `Content-Encoding` and `Vary: Accept-Encoding`.
    Encoded(Coding),
}

impl Variant {
    /// The `Content-Encoding` value, if any.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Variant::Encoded(coding) => Some(coding.token()),
            Variant::Sole | Variant::Identity => None,
        }
    }

    /// Whether the response depends on `Accept-Encoding` (`Vary`).
    pub fn varies(self) -> bool {
        self != Variant::Sole
    }
}

/// A request's `Accept-Encoding`, read in place.
#[derive(Clone, Copy, Debug)]
pub struct AcceptEncoding<'a> {
    /// The field value; `None` when the request had no such field.
    value: Option<&'a [u8]>,
}

impl<'a> AcceptEncoding<'a> {
    /// The field value as sent, or `None` when the request had none.
    pub fn new(value: Option<&'a [u8]>) -> AcceptEncoding<'a> {
        AcceptEncoding { value }
    }

    /// The coding to serve among `sidecars`, or `None` for the file as it is
    /// (see the module docs for the rules).
    pub fn choose(self, sidecars: Sidecars) -> Option<Coding> {
        let value = self.value?;
        if sidecars.is_empty() {
            return None;
        }
        let identity = self.weight_of(value, |name| name.eq_ignore_ascii_case(b"identity"));
        let (coding, weight) = Coding::PREFERENCE
            .into_iter()
            .filter(|&coding| sidecars.contains(coding))
            .filter_map(|coding| Some((coding, self.weight_of(value, |n| coding.is_named(n))?)))
            // `max_by_key` keeps the last of equals: reversed, that is the
            // first in the server's order.
            .rev()
            .max_by_key(|&(_, weight)| weight)?;
        // The file as it is wins only when the client weighs it higher; it is
        // acceptable anyway, so a coding the client refused never is.
        let identity_preferred = identity.is_some_and(|identity| identity > weight);
        (weight > 0 && !identity_preferred).then_some(coding)
    }

    /// The weight the field gives the coding `is_named` recognises: its own
    /// entry's (the highest, if listed twice), else `*`'s, else `None` (not
    /// mentioned). An entry whose weight cannot be read is skipped.
    fn weight_of(self, value: &[u8], is_named: impl Fn(&[u8]) -> bool) -> Option<Weight> {
        let mut named = None;
        let mut any = None;
        for entry in value.split(|&b| b == b',') {
            let mut parts = entry.split(|&b| b == b';');
            let name = parts.next().unwrap_or_default().trim_ascii();
            let Some(weight) = http::weight(parts) else {
                continue;
            };
            let slot = if is_named(name) {
                &mut named
            } else if name == b"*" {
                &mut any
            } else {
                continue;
            };
            *slot = Some(weight.max(slot.unwrap_or(0)));
        }
        named.or(any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Sidecars = Sidecars(0b111);

    fn chosen(header: Option<&str>, sidecars: Sidecars) -> Option<&'static str> {
        AcceptEncoding::new(header.map(str::as_bytes))
            .choose(sidecars)
            .map(Coding::token)
    }

    #[test]
    fn weights_ties_wildcards_and_refusals() {
        let gzip_only = Sidecars::NONE.with(Coding::Gzip);
        let cases: &[(Option<&str>, Sidecars, Option<&str>)] = &[
            // What browsers send: ties go to the server's order.
            (Some("gzip, deflate, br, zstd"), ALL, Some("br")),
            (Some("gzip, deflate, br"), ALL, Some("br")),
            (Some("gzip, deflate"), ALL, Some("gzip")),
            (Some("gzip, deflate, br, zstd"), gzip_only, Some("gzip")),
            // No field: the file as it is. An empty field: likewise.
            (None, ALL, None),
            (Some(""), ALL, None),
            (Some("  "), ALL, None),
            // Weights decide before the server's order.
            (Some("br;q=0.5, gzip"), ALL, Some("gzip")),
            (Some("br;q=0.5, gzip;q=0.4"), ALL, Some("br")),
            (Some("gzip;q=0.001, zstd;q=0.002"), ALL, Some("zstd")),
            (Some("br;q=1.0, gzip;q=1"), ALL, Some("br")),
            (Some("BR;Q=0.9, GZip"), ALL, Some("gzip")),
            (Some("gzip ; q = 0.3 , br;q=0.2"), ALL, Some("gzip")),
            // q=0 means not acceptable, never "least preferred".
            (Some("br;q=0, gzip;q=0"), ALL, None),
            (Some("br;q=0"), Sidecars::NONE.with(Coding::Brotli), None),
            (Some("gzip;q=0.000"), gzip_only, None),
            // `*` covers what is not named.
            (Some("*"), ALL, Some("br")),
            (Some("*;q=0.5, br;q=0"), ALL, Some("zstd")),
            (Some("*;q=0"), ALL, None),
            (Some("gzip, *;q=0"), ALL, Some("gzip")),
            // identity: preferred only when weighed higher; refusing it does
            // not make a refused coding acceptable.
            (Some("identity, gzip;q=0.5"), ALL, None),
            (Some("identity;q=0.5, gzip;q=0.5"), ALL, Some("gzip")),
            (
                Some("identity;q=0, br;q=0"),
                Sidecars::NONE.with(Coding::Brotli),
                None,
            ),
            (Some("identity;q=0, gzip"), ALL, Some("gzip")),
            // x-gzip is gzip; unknown codings and bad weights are skipped.
            (Some("x-gzip"), ALL, Some("gzip")),
            (Some("compress, deflate"), ALL, None),
            (Some("br;q=2, gzip"), ALL, Some("gzip")),
            (Some("br;q=0.5000, gzip;q=0.1"), ALL, Some("gzip")),
            (Some("br;q=.5"), ALL, None),
            (Some("br;level=5"), ALL, Some("br")),
            // A listed coding without a sidecar is no choice.
            (Some("zstd"), gzip_only, None),
            (Some("gzip"), Sidecars::NONE, None),
        ];
        for &(header, sidecars, expected) in cases {
            assert_eq!(
                chosen(header, sidecars),
                expected,
                "{header:?}, {sidecars:?}"
            );
        }
    }

    #[test]
    fn variants_say_what_they_are() {
        assert_eq!(Variant::Sole.content_encoding(), None);
        assert!(!Variant::Sole.varies());
        assert_eq!(Variant::Identity.content_encoding(), None);
        assert!(Variant::Identity.varies());
        assert_eq!(
            Variant::Encoded(Coding::Zstd).content_encoding(),
            Some("zstd")
        );
        assert!(Variant::Encoded(Coding::Gzip).varies());
    }
}
