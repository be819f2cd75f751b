//! Validators and byte ranges: the strong `ETag` and `Accept-Ranges` on file responses,
//! `If-None-Match` (and its precedence over `If-Modified-Since`), single byte ranges with
//! `206`/`416`, the ranges that are ignored (`200`, whole file), `If-Range` by tag and by
//! date, and a range from the middle of a 20 MiB file (`sendfile` from an offset).
//!
//! Most tests send several requests on one keep-alive connection: a `304`, `206` or `416`
//! that sent one byte more or less than it announced would garble the next response.

mod support;

use std::fs;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use support::*;

/// The ranged test file: long enough for distinct prefixes and suffixes, incompressible so
/// a shifted range cannot match by accident.
const RANGE_FILE: &str = "range.bin";
const RANGE_LEN: usize = 10_000;

/// The expected `ETag` of the file at `path`: `"<mtime in ns, hex>-<size, hex>"`, computed
/// from the file's metadata the way the server documents it.
fn etag_of(path: &Path) -> String {
    let metadata = fs::metadata(path).unwrap();
    let nanos = metadata
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("\"{nanos:x}-{:x}\"", metadata.len())
}

/// `GET` (or `HEAD`) of `path` with extra header lines.
fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    raw
}

/// A fixture with `range.bin` and a server on it; returns the file's body and tag.
fn range_server() -> (Fixture, TestServer, Vec<u8>, String) {
    let fixture = Fixture::new();
    let body = pseudo_random(RANGE_LEN, 0x5eed);
    fixture.write(RANGE_FILE, &body);
    let server = TestServer::start(fixture.root(), &[]);
    let etag = etag_of(&fixture.path(RANGE_FILE));
    (fixture, server, body, etag)
}

/// The headers every response about a file carries, whatever its status.
fn assert_validators(r: &Response, etag: &str) {
    assert_common_headers(r);
    assert_eq!(r.header("ETag"), Some(etag), "{r:?}");
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"), "{r:?}");
    assert_eq!(
        r.header("Last-Modified"),
        Some(FIXTURE_LAST_MODIFIED),
        "{r:?}"
    );
}

/// A `206` carrying bytes `first..=last` of `body`.
fn assert_partial(r: &Response, body: &[u8], first: usize, last: usize, etag: &str) {
    assert_eq!(r.status_line, status_line(206), "{r:?}");
    assert_validators(r, etag);
    assert_keeps_alive(r);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes {first}-{last}/{}", body.len()).as_str()),
        "{r:?}"
    );
    assert_eq!(r.content_length(), last - first + 1, "{r:?}");
    assert!(
        r.body == body[first..=last],
        "bytes {first}-{last}: the body is not that slice of the file ({} bytes)",
        r.body.len()
    );
}

/// A `200` with the whole of `body` and no `Content-Range`.
fn assert_whole(r: &Response, body: &[u8], etag: &str) {
    assert_file_body(r, body);
    assert_validators(r, etag);
    assert_eq!(r.header("Content-Range"), None, "{r:?}");
}

/// A `304`: no body (the client reads none; the next response on the connection proves
/// none was sent), the validators, keep-alive.
fn assert_not_modified(r: &Response, etag: &str) {
    assert_eq!(r.status_line, status_line(304), "{r:?}");
    assert_common_headers(r);
    assert_eq!(r.header("ETag"), Some(etag), "{r:?}");
    // RFC 9110 §15.4.5: the ETag names the copy; no other representation
    // metadata, and no length (clients such as wrk would wait for that many bytes).
    let names: Vec<&str> = r.headers.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["Server", "Date", "ETag", "Connection", "Keep-Alive"],
        "{r:?}"
    );
    assert_keeps_alive(r);
}

#[test]
fn file_responses_carry_a_strong_etag_and_accept_ranges() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    // Pinned literally once: 1681806734 s in ns is 0x1756fa5060ee0c00; 14 bytes is 0xe.
    let hello_tag = "\"1756fa5060ee0c00-e\"";
    assert_eq!(etag_of(&fixture.path("hello.txt")), hello_tag);
    let r = c.get("/hello.txt");
    assert_hello(&r);
    assert_validators(&r, hello_tag);
    let r = c.head("/hello.txt");
    assert_eq!(r.status_line, status_line(200), "{r:?}");
    assert_validators(&r, hello_tag);
    // Same mtime, other size: another tag.
    let r = c.get("/index.html");
    assert_validators(&r, &etag_of(&fixture.path("index.html")));
    assert_ne!(r.header("ETag"), Some(hello_tag));
    // Directory requests serve the index file, with its tag.
    let r = c.get("/sub/");
    assert_validators(&r, &etag_of(&fixture.path("sub/index.html")));
}

#[test]
fn etag_changes_with_a_nanosecond_of_mtime() {
    // Same size, same whole second: only the tag can tell the versions apart.
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let path = fixture.path("hello.txt");
    let old_tag = etag_of(&path);
    let mut c = server.connect();
    assert_not_modified(
        &c.roundtrip(&request(
            "GET",
            "/hello.txt",
            &[("If-None-Match", &old_tag)],
        )),
        &old_tag,
    );
    let mtime = UNIX_EPOCH + Duration::new(FIXTURE_MTIME_SECS, 1);
    fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(mtime))
        .unwrap();
    let new_tag = etag_of(&path);
    assert_ne!(new_tag, old_tag, "the file system kept no nanoseconds");
    let r = c.roundtrip(&request(
        "GET",
        "/hello.txt",
        &[("If-None-Match", &old_tag)],
    ));
    assert_whole(&r, content("hello.txt"), &new_tag);
}

#[test]
fn if_none_match_with_our_tag_gives_304() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let tag = etag_of(&fixture.path("hello.txt"));
    let weak = format!("W/{tag}");
    let listed = format!("\"nope\", {tag}");
    let listed_weak = format!("\"nope\" , W/\"other\",{weak}");
    let mut c = server.connect();
    for value in [tag.as_str(), &weak, "*", &listed, &listed_weak] {
        for method in ["GET", "HEAD"] {
            let r = c.roundtrip(&request(method, "/hello.txt", &[("If-None-Match", value)]));
            assert_not_modified(&r, &tag);
        }
    }
    // Nothing stray followed any 304 on this connection.
    assert_hello(&c.get("/hello.txt"));
}

#[test]
fn if_none_match_without_our_tag_gives_200_even_when_unmodified_since() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let path = fixture.path("hello.txt");
    let tag = etag_of(&path);
    let mut c = server.connect();
    let ims = ("If-Modified-Since", FIXTURE_LAST_MODIFIED);
    // Control: the date alone makes this a 304...
    assert_not_modified(&c.roundtrip(&request("GET", "/hello.txt", &[ims])), &tag);
    // ...but If-None-Match, when present, decides (RFC 9110 §13.2.2).
    let other_size = format!("{}f\"", &tag[..tag.len() - 2]);
    let index_tag = etag_of(&fixture.path("index.html"));
    let unquoted = tag.trim_matches('"').to_owned();
    for value in [
        "\"nope\"",
        &other_size,
        &index_tag,
        &unquoted,
        "\"a\", \"b\"",
    ] {
        let r = c.roundtrip(&request(
            "GET",
            "/hello.txt",
            &[("If-None-Match", value), ims],
        ));
        assert_whole(&r, content("hello.txt"), &tag);
        assert_keeps_alive(&r);
    }
}

#[test]
fn single_ranges_get_206_with_the_exact_bytes() {
    let (_fixture, server, body, etag) = range_server();
    let last = RANGE_LEN - 1;
    let cases: &[(&str, usize, usize)] = &[
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, last),
        ("bytes=-100", RANGE_LEN - 100, last),
        // An end beyond the file is clamped to its last byte.
        ("bytes=9990-20000", 9990, last),
        ("bytes=0-0", 0, 0),
        ("bytes=9999-", last, last),
        ("bytes=1234-1234", 1234, 1234),
        // A suffix longer than the file is the whole file, still as a 206.
        ("bytes=-20000", 0, last),
    ];
    let mut c = server.connect();
    let content_type = c.get("/range.bin").expect_header("Content-Type").to_owned();
    for &(range, first, last) in cases {
        let r = c.roundtrip(&request("GET", "/range.bin", &[("Range", range)]));
        assert_partial(&r, &body, first, last, &etag);
        assert_eq!(
            r.header("Content-Type"),
            Some(content_type.as_str()),
            "{range}"
        );
    }
}

#[test]
fn range_beyond_the_end_gets_416_and_keeps_the_connection() {
    let (_fixture, server, body, etag) = range_server();
    let mut c = server.connect();
    for range in [
        "bytes=10000-",
        "bytes=20000-30000",
        "bytes=-0",
        // Past u64 is past the end too, not an unusable range.
        "bytes=18446744073709551615-",
        "bytes=99999999999999999999-",
    ] {
        let r = c.roundtrip(&request("GET", "/range.bin", &[("Range", range)]));
        assert_error(&r, 416);
        assert_eq!(r.header("Content-Range"), Some("bytes */10000"), "{r:?}");
        assert_keeps_alive(&r);
        // The connection is still in step.
        assert_whole(&c.get("/range.bin"), &body, &etag);
    }
}

#[test]
fn unusable_ranges_get_the_whole_file() {
    let (_fixture, server, body, etag) = range_server();
    let mut c = server.connect();
    for range in [
        // More than one range: mioserve serves one range per response, or none.
        "bytes=0-1,5-9",
        "bytes=0-1, 20000-",
        // Syntactically invalid, or not in bytes.
        "bytes=abc",
        "bytes=5-4",
        "bytes=-",
        "bytes=1-2-3",
        "bytes 0-1",
        "items=0-1",
        "=0-1",
    ] {
        let r = c.roundtrip(&request("GET", "/range.bin", &[("Range", range)]));
        assert_whole(&r, &body, &etag);
        assert_keeps_alive(&r);
    }
}

#[test]
fn head_with_a_range_gets_the_200_head_without_a_body() {
    let (_fixture, server, body, etag) = range_server();
    let mut c = server.connect();
    // The GET rides in the same write: any body bytes after the HEAD's head would be read
    // as the start of its response.
    c.send(request("HEAD", "/range.bin", &[("Range", "bytes=0-99")]) + &get("/range.bin"));
    let r = c.read_response(true);
    assert_eq!(r.status_line, status_line(200), "{r:?}");
    assert_validators(&r, &etag);
    assert_eq!(r.content_length(), RANGE_LEN, "{r:?}");
    assert_eq!(r.header("Content-Range"), None, "{r:?}");
    assert_whole(&c.read_response(false), &body, &etag);
}

#[test]
fn if_range_with_our_etag_or_exact_date_honours_the_range() {
    let (_fixture, server, body, etag) = range_server();
    let mut c = server.connect();
    let range = ("Range", "bytes=10-19");
    for if_range in [etag.as_str(), FIXTURE_LAST_MODIFIED] {
        let r = c.roundtrip(&request(
            "GET",
            "/range.bin",
            &[range, ("If-Range", if_range)],
        ));
        assert_partial(&r, &body, 10, 19, &etag);
    }
    let weak = format!("W/{etag}");
    let a_second_later =
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(FIXTURE_MTIME_SECS + 1));
    let a_second_earlier =
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(FIXTURE_MTIME_SECS - 1));
    for if_range in [
        "\"other\"",
        &weak,
        &a_second_later,
        &a_second_earlier,
        "not a date",
    ] {
        let r = c.roundtrip(&request(
            "GET",
            "/range.bin",
            &[range, ("If-Range", if_range)],
        ));
        assert_whole(&r, &body, &etag);
    }
}

#[test]
fn range_with_a_matching_if_none_match_gives_304() {
    let (_fixture, server, body, etag) = range_server();
    let mut c = server.connect();
    let range = ("Range", "bytes=0-99");
    let r = c.roundtrip(&request(
        "GET",
        "/range.bin",
        &[range, ("If-None-Match", &etag)],
    ));
    assert_not_modified(&r, &etag);
    // Control: with a tag that does not match, the range is served.
    let r = c.roundtrip(&request(
        "GET",
        "/range.bin",
        &[range, ("If-None-Match", "\"nope\"")],
    ));
    assert_partial(&r, &body, 0, 99, &etag);
}

#[test]
fn range_from_the_middle_of_a_large_file_is_byte_exact() {
    let fixture = Fixture::new();
    let body = fixture.big();
    let etag = etag_of(&fixture.path("big.bin"));
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    // Offsets that are not page-aligned, spans larger than the socket buffers.
    let cases = [
        (7_340_033, 17_825_791),
        (10_485_761, BIG_LEN - 1),
        (BIG_LEN - 3_000_001, BIG_LEN - 2),
    ];
    for (first, last) in cases {
        let r = c.roundtrip(&request(
            "GET",
            "/big.bin",
            &[("Range", &format!("bytes={first}-{last}"))],
        ));
        assert_partial(&r, &body, first, last, &etag);
    }
    let r = c.roundtrip(&request("GET", "/big.bin", &[("Range", "bytes=-5000000")]));
    assert_partial(&r, &body, BIG_LEN - 5_000_000, BIG_LEN - 1, &etag);
}
