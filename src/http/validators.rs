//! Validators: the entity tag we give each file, and the conditional request
//! headers that compare against it (RFC 9110 §8.8, §13).
//!
//! Each function interprets one header value; [`crate::respond`] applies them
//! in the order of RFC 9110 §13.2.2: `If-None-Match` decides a `304` when
//! present, and only when absent does `If-Modified-Since`; then `If-Range`
//! decides whether a `Range` is honoured. (`If-Match` and
//! `If-Unmodified-Since` guard writes; a read-only server ignores them.)
//!
//! HTTP dates have whole seconds, so a file's modification time is truncated
//! to the second before it is compared with one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::encoding::Coding;

/// Longest tag: two quotes, 16 + 16 hex digits and a dash, then a dash and
/// the longest content coding's name (`zstd`) for a precompressed copy.
const ENTITY_TAG_CAPACITY: usize = 40;

/// A strong entity tag for a file: `"<mtime ns hex>-<size hex>"`, the shape
/// nginx uses, but with nanoseconds so that rewriting a file within the same
/// second (same size) still changes the tag. Fixed-size: formatting one
/// allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntityTag {
    bytes: [u8; ENTITY_TAG_CAPACITY],
    len: u8,
}

impl EntityTag {
    /// The tag of a file with this modification time and length.
    pub fn of(modified: SystemTime, len: u64) -> EntityTag {
        EntityTag::format(modified, len, "")
    }

    /// The tag of a precompressed copy (`--precompressed`) with this
    /// modification time and length: `"<mtime>-<size>-<coding>"`. Each
    /// variant of a path needs its own strong tag (RFC 9110 §8.8.3), and the
    /// coding's name keeps it apart from the original's even when `gzip -k`
    /// copied the modification time and the sizes happen to match.
    pub fn of_encoded(modified: SystemTime, len: u64, coding: Coding) -> EntityTag {
        EntityTag::format(modified, len, coding.token())
    }

    /// `"<mtime ns hex>-<size hex>"`, then `-<coding>` unless `coding` is
    /// empty.
    fn format(modified: SystemTime, len: u64, coding: &str) -> EntityTag {
        let nanos = modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |age| age.as_nanos() as u64);
        EntityTag::from_parts(nanos, len, coding)
    }

    /// A tag of the same shape for content the server generates (a
    /// directory listing): `digest` is a hash of the content, `len` its
    /// length.
    pub fn of_digest(digest: u64, len: u64) -> EntityTag {
        EntityTag::from_parts(digest, len, "")
    }

    /// `"<first hex>-<len hex>"`, then `-<coding>` unless `coding` is empty.
    ///
    /// Written byte by byte rather than with `write!`: every cache miss and
    /// revalidation makes a tag, and `core::fmt` spent about 900
    /// instructions on it (callgrind), this about 250.
    fn from_parts(first: u64, len: u64, coding: &str) -> EntityTag {
        let mut tag = EntityTag {
            bytes: [0u8; ENTITY_TAG_CAPACITY],
            len: 0,
        };
        // Two u64 in hex and a coding's name always fit.
        tag.push(b"\"");
        tag.push_hex(first);
        tag.push(b"-");
        tag.push_hex(len);
        if !coding.is_empty() {
            tag.push(b"-");
            tag.push(coding.as_bytes());
        }
        tag.push(b"\"");
        tag
    }

    /// Appends `piece` to the tag.
    fn push(&mut self, piece: &[u8]) {
        let start = usize::from(self.len);
        self.bytes[start..start + piece.len()].copy_from_slice(piece);
        self.len += piece.len() as u8;
    }

    /// Appends `n` in lowercase hex, without leading zeros (`0` for zero).
    fn push_hex(&mut self, n: u64) {
        const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
        let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
        let mut hex = [0u8; 16];
        for (i, digit) in hex[..digits].iter_mut().rev().enumerate() {
            *digit = HEX_DIGITS[((n >> (4 * i)) & 15) as usize];
        }
        self.push(&hex[..digits]);
    }

    /// The tag as sent in `ETag`, quotes included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// `If-None-Match` (RFC 9110 §13.1.2): true when `*` or any listed tag
/// matches ours by *weak* comparison (a `W/` prefix is ignored), i.e. when a
/// `GET` or `HEAD` should get `304`. A malformed list matches nothing.
pub fn none_match_fails(header: &[u8], ours: &EntityTag) -> bool {
    let header = header.trim_ascii();
    // A browser revalidating sends back the one tag it was given: compared
    // whole, that common case skips splitting the list.
    if header == b"*" || header == ours.as_bytes() {
        return true;
    }
    let mut rest = header;
    while !rest.is_empty() {
        let Some((tag, after)) = split_entity_tag(rest) else {
            return false;
        };
        let opaque = tag.strip_prefix(b"W/").unwrap_or(tag);
        if opaque == ours.as_bytes() {
            return true;
        }
        rest = after;
    }
    false
}

/// `If-Range` (RFC 9110 §13.1.5): whether the `Range` may be honoured. An
/// entity tag must match ours by *strong* comparison (weak tags never match);
/// a date must equal the file's `Last-Modified` exactly. Anything else means
/// "send the whole file".
pub fn if_range_holds(header: &[u8], ours: &EntityTag, modified: SystemTime) -> bool {
    let header = header.trim_ascii();
    if header.starts_with(b"\"") {
        return header == ours.as_bytes();
    }
    if header.starts_with(b"W/") {
        return false;
    }
    http_date(header).is_some_and(|date| date == whole_seconds(modified))
}

/// `If-Modified-Since` (RFC 9110 §13.1.3): true when the file has not been
/// modified since the date in `header`, i.e. when a `GET` or `HEAD` should get
/// `304`. A value that is not a valid HTTP date is ignored (false).
pub fn is_unmodified_since(modified: SystemTime, header: &[u8]) -> bool {
    http_date(header).is_some_and(|since| since >= whole_seconds(modified))
}

/// An HTTP date (RFC 9110 §5.6.7), or `None` for anything else.
fn http_date(value: &[u8]) -> Option<SystemTime> {
    let value = std::str::from_utf8(value).ok()?;
    httpdate::parse_http_date(value).ok()
}

/// `time` without its fraction of a second, the precision of an HTTP date.
fn whole_seconds(time: SystemTime) -> SystemTime {
    time.duration_since(UNIX_EPOCH).map_or(UNIX_EPOCH, |age| {
        UNIX_EPOCH + Duration::from_secs(age.as_secs())
    })
}

/// Splits the first entity tag (`"…"` or `W/"…"`) off a comma-separated list;
/// returns it and the rest after the comma.
fn split_entity_tag(list: &[u8]) -> Option<(&[u8], &[u8])> {
    let list = list.trim_ascii_start();
    let prefix = if list.starts_with(b"W/") { 2 } else { 0 };
    if list.get(prefix) != Some(&b'"') {
        return None;
    }
    let close = prefix + 1 + list[prefix + 1..].iter().position(|&b| b == b'"')?;
    let (tag, rest) = list.split_at(close + 1);
    let rest = rest.trim_ascii_start();
    match rest.split_first() {
        None => Some((tag, rest)),
        Some((b',', after)) => Some((tag, after)),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag() -> EntityTag {
        EntityTag::of(UNIX_EPOCH + Duration::new(1_681_806_734, 5), 1234)
    }

    #[test]
    fn tag_shape() {
        assert_eq!(tag().as_bytes(), b"\"1756fa5060ee0c05-4d2\"");
        let modified = UNIX_EPOCH + Duration::new(1_681_806_734, 5);
        let zstd = EntityTag::of_encoded(modified, u64::MAX, Coding::Zstd);
        assert_eq!(
            zstd.as_bytes(),
            b"\"1756fa5060ee0c05-ffffffffffffffff-zstd\""
        );
        assert_ne!(EntityTag::of_encoded(modified, 1234, Coding::Gzip), tag());
        // Zero, and every digit count from one to sixteen, as `{:x}` writes them.
        for n in [0, 1, 0xf, 0x10, 0xabc, 1 << 35, (1 << 60) - 1, u64::MAX] {
            let expected = format!("\"{n:x}-{:x}\"", n / 3);
            assert_eq!(
                EntityTag::of_digest(n, n / 3).as_bytes(),
                expected.as_bytes()
            );
        }
        assert_ne!(
            EntityTag::of(UNIX_EPOCH + Duration::new(1_681_806_734, 6), 1234),
            tag()
        );
    }

    #[test]
    fn if_none_match_lists() {
        let ours = tag();
        let cases: &[(&[u8], bool)] = &[
            (b"*", true),
            (b"\"1756fa5060ee0c05-4d2\"", true),
            (b"W/\"1756fa5060ee0c05-4d2\"", true),
            (b"\"x\", W/\"1756fa5060ee0c05-4d2\"", true),
            (b" \"x\" ,\"y\" , \"1756fa5060ee0c05-4d2\" ", true),
            (b"\"x\", \"y\"", false),
            (b"\"1756fa5060ee0c05-4d3\"", false),
            (b"1756fa5060ee0c05-4d2", false),
            (b"\"unterminated", false),
            (b"", false),
        ];
        for (header, matches) in cases {
            assert_eq!(
                none_match_fails(header, &ours),
                *matches,
                "{:?}",
                String::from_utf8_lossy(header)
            );
        }
    }

    #[test]
    fn if_modified_since_compares_whole_seconds_and_ignores_invalid_dates() {
        let modified = UNIX_EPOCH + Duration::from_millis(1_000_500);
        let at = |secs| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
        assert!(is_unmodified_since(modified, at(1000).as_bytes()));
        assert!(is_unmodified_since(modified, at(2000).as_bytes()));
        assert!(!is_unmodified_since(modified, at(999).as_bytes()));
        assert!(!is_unmodified_since(modified, b"yesterday"));
        assert!(!is_unmodified_since(modified, b"\xff"));
    }

    #[test]
    fn if_range_needs_a_strong_match_or_the_exact_date() {
        let ours = tag();
        let modified = UNIX_EPOCH + Duration::new(1_681_806_734, 5);
        assert!(if_range_holds(b"\"1756fa5060ee0c05-4d2\"", &ours, modified));
        assert!(!if_range_holds(
            b"W/\"1756fa5060ee0c05-4d2\"",
            &ours,
            modified
        ));
        assert!(!if_range_holds(b"\"other\"", &ours, modified));
        assert!(if_range_holds(
            b"Tue, 18 Apr 2023 08:32:14 GMT",
            &ours,
            modified
        ));
        assert!(!if_range_holds(
            b"Tue, 18 Apr 2023 08:32:15 GMT",
            &ours,
            modified
        ));
        assert!(!if_range_holds(b"not a date", &ours, modified));
    }
}
