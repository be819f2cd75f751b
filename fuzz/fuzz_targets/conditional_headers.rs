//! The interpreters of `Range`, `If-None-Match`, `If-Modified-Since` and
//! `If-Range`, fed directly with a fuzzed file and a fuzzed header value
//! (`request_parser` only reaches them through a head that parses, which
//! costs most of each execution).
//!
//! Input layout (short inputs are padded with zeros):
//!
//! | bytes  | meaning                                                        |
//! |--------|----------------------------------------------------------------|
//! | 0..8   | the file's length, `u64` little-endian                         |
//! | 8..16  | its modification time in seconds since 1970, `u64` LE, reduced |
//! |        | to years 1970..=9999 (what an HTTP date can name)              |
//! | 16..20 | the nanoseconds of that time, `u32` LE, reduced below 10⁹      |
//! | 20..   | the header value, given to all four interpreters               |
//!
//! Checked:
//! - `byte_range` never panics, and a `Part { first, last }` always has
//!   `first <= last < len`: `respond` seeks to `first` and sends
//!   `last - first + 1` bytes without checking again;
//! - the file's own entity tag is well-formed (`"hex-hex"`, ASCII), and
//!   sending it back (plain or weak in `If-None-Match`, plain in `If-Range`)
//!   matches, while a weak one in `If-Range` does not;
//! - the file's own `Last-Modified` date in `If-Range` matches, and one
//!   second later does not;
//! - in `If-Modified-Since`, the file's own `Last-Modified` date means
//!   "unmodified", and one second earlier does not.

#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use mioserve::http::range::{ByteRange, byte_range};
use mioserve::http::validators::{
    EntityTag, if_range_holds, is_unmodified_since, none_match_fails,
};
use mioserve_fuzz::literal;

/// Seconds from 1970 to the end of 9999-12-31, the last day an HTTP date
/// (four-digit year) can name.
const LAST_HTTP_DATE_SECS: u64 = 253_402_300_799;

/// The fixed-size prefix: length, seconds, nanoseconds.
const PREFIX_BYTES: usize = 20;

fuzz_target!(|data: &[u8]| {
    let mut prefix = [0u8; PREFIX_BYTES];
    let split = data.len().min(PREFIX_BYTES);
    prefix[..split].copy_from_slice(&data[..split]);
    let header = &data[split..];

    let len = u64::from_le_bytes(prefix[0..8].try_into().unwrap());
    let secs = u64::from_le_bytes(prefix[8..16].try_into().unwrap()) % (LAST_HTTP_DATE_SECS + 1);
    let nanos = u32::from_le_bytes(prefix[16..20].try_into().unwrap()) % 1_000_000_000;
    let modified = UNIX_EPOCH + Duration::new(secs, nanos);

    check_range(header, len);
    check_validators(header, len, modified);
});

fn check_range(header: &[u8], len: u64) {
    if let ByteRange::Part { first, last } = byte_range(header, len) {
        assert!(
            first <= last && last < len,
            "Range {} of a {len}-byte file gave {first}..={last}",
            literal(header)
        );
    }
}

fn check_validators(header: &[u8], len: u64, modified: SystemTime) {
    let ours = EntityTag::of(modified, len);
    // Anything at all: must not panic.
    let _ = none_match_fails(header, &ours);
    let _ = if_range_holds(header, &ours, modified);
    let _ = is_unmodified_since(modified, header);

    let tag = ours.as_bytes();
    assert!(is_well_formed_tag(tag), "malformed tag {}", literal(tag));
    let weak = [b"W/".as_slice(), tag].concat();
    assert!(none_match_fails(tag, &ours), "own tag {}", literal(tag));
    assert!(
        none_match_fails(&weak, &ours),
        "own weak tag {}",
        literal(&weak)
    );
    assert!(if_range_holds(tag, &ours, modified), "If-Range own tag");
    assert!(!if_range_holds(&weak, &ours, modified), "If-Range weak tag");

    let date = httpdate::fmt_http_date(modified);
    assert!(
        if_range_holds(date.as_bytes(), &ours, modified),
        "If-Range {date} for a file modified at {modified:?}"
    );
    let a_second_later = modified + Duration::from_secs(1);
    if a_second_later <= UNIX_EPOCH + Duration::from_secs(LAST_HTTP_DATE_SECS) {
        let later = httpdate::fmt_http_date(a_second_later);
        assert!(
            !if_range_holds(later.as_bytes(), &ours, modified),
            "If-Range {later} for a file modified at {modified:?}"
        );
    }

    assert!(
        is_unmodified_since(modified, date.as_bytes()),
        "If-Modified-Since {date} for a file modified at {modified:?}"
    );
    if let Some(a_second_earlier) = modified.checked_sub(Duration::from_secs(1))
        && a_second_earlier >= UNIX_EPOCH
    {
        let earlier = httpdate::fmt_http_date(a_second_earlier);
        assert!(
            !is_unmodified_since(modified, earlier.as_bytes()),
            "If-Modified-Since {earlier} for a file modified at {modified:?}"
        );
    }
}

/// `"<hex>-<hex>"`.
fn is_well_formed_tag(tag: &[u8]) -> bool {
    let Some(inner) = tag.strip_prefix(b"\"").and_then(|t| t.strip_suffix(b"\"")) else {
        return false;
    };
    let mut parts = inner.split(|&b| b == b'-');
    let hex = |part: Option<&[u8]>| {
        part.is_some_and(|p| !p.is_empty() && p.iter().all(u8::is_ascii_hexdigit))
    };
    hex(parts.next()) && hex(parts.next()) && parts.next().is_none()
}
