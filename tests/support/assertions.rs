//! Assertions shared by several test files: exact status lines, the headers every response
//! carries, and the shapes of file and error responses.

use std::time::{Duration, SystemTime};

use super::client::Response;
use super::fixture::{FIXTURE_LAST_MODIFIED, content};

/// The exact status line for each code the server uses.
pub fn status_line(code: u16) -> String {
    let reason = match code {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => panic!("no reason phrase known for {code}"),
    };
    format!("HTTP/1.1 {code} {reason}")
}

/// Headers every response carries: `Server: mioserve` and a current IMF-fixdate `Date`.
pub fn assert_common_headers(r: &Response) {
    assert_eq!(r.header("Server"), Some("mioserve"), "{r:?}");
    let date = r.expect_header("Date");
    let when = assert_imf_fixdate(date);
    let now = SystemTime::now();
    let skew = now.duration_since(when).unwrap_or_else(|e| e.duration());
    assert!(
        skew < Duration::from_secs(10),
        "Date {date:?} is {skew:?} away from now"
    );
}

/// Parses `value` as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), rejecting the
/// obsolete formats `httpdate` also accepts, and returns it.
pub fn assert_imf_fixdate(value: &str) -> SystemTime {
    let when = httpdate::parse_http_date(value)
        .unwrap_or_else(|e| panic!("{value:?} is not an HTTP date: {e}"));
    assert_eq!(
        httpdate::fmt_http_date(when),
        value,
        "{value:?} is not in IMF-fixdate form"
    );
    when
}

/// A 200 for fixture file `name`: exact status line, common headers, `Content-Type`,
/// `Content-Length`, `Last-Modified` and body.
pub fn assert_file(r: &Response, name: &str, content_type: &str) {
    assert_file_body(r, content(name));
    assert_eq!(r.header("Content-Type"), Some(content_type), "{r:?}");
}

/// A 200 for `hello.txt`. The spec fixes no type for `.txt`, only that it is `text/plain`.
pub fn assert_hello(r: &Response) {
    assert_file_body(r, content("hello.txt"));
    let ty = r.expect_header("Content-Type");
    assert!(
        ty.starts_with("text/plain"),
        "Content-Type {ty:?} for hello.txt"
    );
}

/// A 200 with body `body` from a fixture file: everything but `Content-Type`.
pub fn assert_file_body(r: &Response, body: &[u8]) {
    assert_eq!(r.status_line, "HTTP/1.1 200 OK", "{r:?}");
    assert_common_headers(r);
    assert_eq!(
        r.header("Content-Length"),
        Some(body.len().to_string().as_str()),
        "{r:?}"
    );
    assert_eq!(r.header("Last-Modified"), Some(FIXTURE_LAST_MODIFIED));
    assert!(
        r.body == body,
        "body mismatch: got {} bytes {:?}..., expected {} bytes {:?}...",
        r.body.len(),
        String::from_utf8_lossy(&r.body[..r.body.len().min(100)]),
        body.len(),
        String::from_utf8_lossy(&body[..body.len().min(100)]),
    );
}

/// An error response with the server's own small HTML body.
pub fn assert_error(r: &Response, code: u16) {
    assert_eq!(r.status_line, status_line(code), "{r:?}");
    assert_common_headers(r);
    assert_eq!(
        r.header("Content-Type"),
        Some("text/html; charset=utf-8"),
        "{r:?}"
    );
    assert!(!r.body.is_empty(), "error {code} has an empty body");
    let reason = &status_line(code)[13..];
    assert!(
        r.body_text().contains(reason),
        "error body does not name the status {reason:?}: {:?}",
        r.body_text()
    );
}

/// `Connection: close` on a response after which the server must close.
pub fn assert_closes(r: &Response) {
    assert_eq!(r.header("Connection"), Some("close"), "{r:?}");
}

/// `Connection: keep-alive` on a response after which the connection stays usable.
pub fn assert_keeps_alive(r: &Response) {
    assert_eq!(r.header("Connection"), Some("keep-alive"), "{r:?}");
}
