//! Arbitrary bytes into the request-head parser, as a connection's read buffer
//! would hold them.
//!
//! The connection trusts what [`parse`] returns without re-checking it: it
//! slices its buffer with the spans, drops `head_len` bytes before the next
//! pipelined request, and hands the target to the file lookup. So beyond
//! "never panics" this target checks the promises that trust rests on:
//!
//! - a complete head fits in the buffer and in `MAX_REQUEST_HEAD_BYTES`;
//! - every span lies inside the head, and the target inside the request line;
//! - the target is non-empty and holds no space, CR, LF or NUL (it goes into
//!   the access log and to the path decoder as one token);
//! - the head alone (`data[..head_len]`) parses to the same request, so bytes
//!   pipelined after it cannot change how it is read;
//! - every proper prefix of a complete head is `Partial`: a request arriving
//!   one byte at a time is read exactly as if it came in one piece;
//! - `Partial` only while the buffer is below `MAX_REQUEST_HEAD_BYTES`, or a
//!   client could park a connection on a full buffer forever.
//!
//! The `Range`, `If-None-Match` and `If-Range` values it finds go on to the
//! functions that interpret them, as `respond` would pass them
//! (`conditional_headers` fuzzes those functions directly and harder).

#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use mioserve::config::MAX_REQUEST_HEAD_BYTES;
use mioserve::http::range::{ByteRange, byte_range};
use mioserve::http::request::{Parsed, Request, Span, first_line_span, parse};
use mioserve::http::validators::{EntityTag, if_range_holds, none_match_fails};
use mioserve_fuzz::literal;

/// Heads up to this long get every prefix re-parsed; longer ones a sample, to
/// keep an execution cheap (re-parsing every prefix is quadratic).
const ALL_PREFIXES_UP_TO_BYTES: usize = 512;

/// How many evenly spaced prefixes a longer head gets.
const SAMPLED_PREFIXES: usize = 32;

fuzz_target!(|data: &[u8]| {
    // The access log calls this on heads that failed to parse, too.
    let line = first_line_span(data).of(data);
    assert!(
        !line.contains(&b'\r') && !line.contains(&b'\n'),
        "first line of {}",
        literal(data)
    );

    match parse(data) {
        Ok(Parsed::Complete(request)) => check_complete(data, &request),
        Ok(Parsed::Partial) => assert!(
            data.len() < MAX_REQUEST_HEAD_BYTES,
            "Partial on a {}-byte buffer: a full buffer must be an error",
            data.len()
        ),
        Err(error) => {
            let _ = error.status();
        }
    }
});

fn check_complete(data: &[u8], request: &Request) {
    let head_len = request.head_len;
    assert!(
        head_len <= data.len(),
        "head_len {head_len} > {}: {}",
        data.len(),
        literal(data)
    );
    assert!(head_len <= MAX_REQUEST_HEAD_BYTES, "head_len {head_len}");
    let head = &data[..head_len];

    assert_within(request.request_line, head_len, "request line");
    assert_within(request.target, head_len, "target");
    assert!(
        request.request_line.start <= request.target.start
            && request.target.end <= request.request_line.end,
        "target {:?} outside request line {:?}: {}",
        request.target,
        request.request_line,
        literal(head)
    );
    let line = request.request_line.of(head);
    assert!(
        !line.contains(&b'\r') && !line.contains(&b'\n'),
        "request line {}",
        literal(line)
    );

    let target = request.target.of(head);
    assert!(!target.is_empty(), "empty target: {}", literal(head));
    assert!(
        !target.iter().any(|b| matches!(b, b' ' | b'\r' | b'\n' | 0)),
        "target {}",
        literal(target)
    );

    // Header values come after the request line.
    for (span, what) in [
        (request.if_modified_since, "If-Modified-Since"),
        (request.if_none_match, "If-None-Match"),
        (request.range, "Range"),
        (request.if_range, "If-Range"),
    ] {
        if let Some(span) = span {
            assert_within(span, head_len, what);
            assert!(
                span.start >= request.request_line.end,
                "{what} {span:?} in the request line: {}",
                literal(head)
            );
        }
    }

    assert_eq!(
        parse(head),
        Ok(Parsed::Complete(*request)),
        "the head alone parses differently: {}",
        literal(head)
    );

    for cut in prefix_cuts(head_len) {
        assert_eq!(
            parse(&data[..cut]),
            Ok(Parsed::Partial),
            "prefix of {cut} bytes of the complete head {}",
            literal(head)
        );
    }

    interpret_conditionals(head, request);
}

fn assert_within(span: Span, head_len: usize, what: &str) {
    assert!(
        span.start <= span.end && span.end as usize <= head_len,
        "{what} span {span:?} outside the {head_len}-byte head"
    );
}

/// Which prefix lengths to re-parse: all of them for a short head, otherwise
/// an even sample plus the one-byte-short prefix (the last byte of the blank
/// line is where "complete" flips).
fn prefix_cuts(head_len: usize) -> impl Iterator<Item = usize> {
    let step = if head_len <= ALL_PREFIXES_UP_TO_BYTES {
        1
    } else {
        head_len / SAMPLED_PREFIXES
    };
    (0..head_len).step_by(step).chain(head_len.checked_sub(1))
}

/// Feeds the conditional headers to their interpreters, with a few file
/// lengths that sit on the edges (empty, one byte, `u64::MAX`) and one the
/// input chooses.
fn interpret_conditionals(head: &[u8], request: &Request) {
    let modified = UNIX_EPOCH + Duration::new(1_681_806_734, 5);
    let chosen_len = head.len() as u64 * 37;
    for len in [0, 1, chosen_len, u64::MAX] {
        let tag = EntityTag::of(modified, len);
        if let Some(range) = request.range
            && let ByteRange::Part { first, last } = byte_range(range.of(head), len)
        {
            assert!(
                first <= last && last < len,
                "Range {} of a {len}-byte file gave {first}..={last}",
                literal(range.of(head))
            );
        }
        if let Some(list) = request.if_none_match {
            let _ = none_match_fails(list.of(head), &tag);
        }
        if let Some(value) = request.if_range {
            let _ = if_range_holds(value.of(head), &tag, modified);
        }
    }
}
