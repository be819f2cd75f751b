//! Writing response heads.
//!
//! A head is a handful of lines appended to the connection's pooled output
//! buffer, so writing one allocates nothing once the pool is warm. The
//! [`HeadWriter`] knows the fixed shape (status line first, blank line last);
//! what goes in between is decided by [`crate::respond`]. The fields that
//! describe a file are formatted once per cache entry, by
//! [`crate::cache::FileFacts::write_fields`] on a [`HeadWriter::fields_only`].

use std::fmt;
use std::io::Write as _;
use std::time::{Duration, SystemTime};

use crate::ascii::push_decimal;
use crate::http::Status;

/// The value of our `Server` header.
pub const SERVER_NAME: &str = "mioserve";

/// Appends one response head to a buffer.
pub struct HeadWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> HeadWriter<'a> {
    /// Starts a head with its status line and the headers every response
    /// carries: `Server` and `Date` (RFC 9110 §6.6.1: an origin server with a
    /// clock must send `Date`). `date` is the worker's cached IMF-fixdate.
    pub fn start(out: &'a mut Vec<u8>, status: Status, date: &[u8]) -> HeadWriter<'a> {
        let mut writer = HeadWriter { out };
        // Every status code has three digits (RFC 9110 §15): written as
        // three bytes, with no loop, since every response pays for this.
        let code = status.code();
        let digit = |n: u16| b'0' + (n % 10) as u8;
        writer.out.extend_from_slice(b"HTTP/1.1 ");
        writer
            .out
            .extend_from_slice(&[digit(code / 100), digit(code / 10), digit(code), b' ']);
        writer.out.extend_from_slice(status.reason().as_bytes());
        writer.out.extend_from_slice(b"\r\nServer: ");
        writer.out.extend_from_slice(SERVER_NAME.as_bytes());
        writer.header("Date", date);
        writer
    }

    /// A writer for header fields alone, without a status line: used to
    /// format fields once and reuse them ([`Self::fields`]).
    pub fn fields_only(out: &'a mut Vec<u8>) -> HeadWriter<'a> {
        HeadWriter { out }
    }

    /// Appends header fields formatted earlier by a [`Self::fields_only`]
    /// writer.
    pub fn fields(&mut self, formatted: &[u8]) {
        self.out.extend_from_slice(formatted);
    }

    /// Appends `name: value`. Inlined: every caller names a constant field,
    /// whose copy then compiles to a few moves instead of a `memcpy` call.
    #[inline]
    pub fn header(&mut self, name: &str, value: &[u8]) {
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
    }

    /// Appends `name: value` for a number.
    pub fn header_number(&mut self, name: &str, value: u64) {
        self.header(name, b"");
        push_decimal(self.out, value);
    }

    /// Appends `name: value` for a value formatted with `Display` (dates,
    /// ranges), formatting straight into the buffer.
    pub fn header_display(&mut self, name: &str, value: impl fmt::Display) {
        self.header(name, b"");
        self.display(value);
    }

    /// Appends `Content-Type`, adding `; charset=utf-8` for text, so browsers
    /// never have to guess the encoding of our pages.
    pub fn content_type(&mut self, mime: &str) {
        self.header("Content-Type", mime.as_bytes());
        if is_text(mime) {
            self.out.extend_from_slice(b"; charset=utf-8");
        }
    }

    /// Appends an HTTP date (IMF-fixdate, RFC 9110 §5.6.7).
    pub fn date(&mut self, name: &str, time: SystemTime) {
        self.header_display(name, httpdate::HttpDate::from(time));
    }

    /// Appends the `Connection` headers. Every response says explicitly what
    /// happens next, so no client has to apply the version defaults:
    /// `keep-alive` plus how long we will wait (`Keep-Alive: timeout=N`), or
    /// `close`.
    pub fn connection(&mut self, keep_alive: Option<Duration>) {
        match keep_alive {
            Some(timeout) => {
                // Every keep-alive response carries these: one constant copy.
                self.out
                    .extend_from_slice(b"\r\nConnection: keep-alive\r\nKeep-Alive: timeout=");
                push_decimal(self.out, timeout.as_secs());
            }
            None => self.header("Connection", b"close"),
        }
    }

    /// Ends the head with the blank line.
    pub fn finish(self) {
        self.out.extend_from_slice(b"\r\n\r\n");
    }

    fn display(&mut self, value: impl fmt::Display) {
        // Writing into a Vec cannot fail.
        let _ = write!(self.out, "{value}");
    }
}

/// Whether a media type is text we serve as UTF-8.
fn is_text(mime: &str) -> bool {
    mime.starts_with("text/") || mime == "application/javascript"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_complete_head() {
        let mut out = Vec::new();
        let mut head = HeadWriter::start(&mut out, Status::Ok, b"Sun, 06 Nov 1994 08:49:37 GMT");
        head.content_type("text/html");
        head.header_number("Content-Length", 1234);
        head.date(
            "Last-Modified",
            httpdate::parse_http_date("Sat, 05 Nov 1994 08:49:37 GMT").unwrap(),
        );
        head.connection(Some(Duration::from_secs(10)));
        head.finish();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\n\
             Server: mioserve\r\n\
             Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: text/html; charset=utf-8\r\n\
             Content-Length: 1234\r\n\
             Last-Modified: Sat, 05 Nov 1994 08:49:37 GMT\r\n\
             Connection: keep-alive\r\n\
             Keep-Alive: timeout=10\r\n\r\n"
        );
    }

    #[test]
    fn close_and_binary_types() {
        let mut out = Vec::new();
        let mut head = HeadWriter::start(&mut out, Status::NotFound, b"D");
        head.content_type("image/png");
        head.connection(None);
        head.finish();
        assert_eq!(
            out,
            b"HTTP/1.1 404 Not Found\r\nServer: mioserve\r\nDate: D\r\n\
              Content-Type: image/png\r\nConnection: close\r\n\r\n"
        );
    }
}
