//! Parsing one request head out of the bytes a connection has received.
//!
//! `httparse` does the tokenising: it is fast, never allocates, and validates
//! the request line and header syntax of RFC 9112 (it refuses obsolete line
//! folding and whitespace before a header's colon in requests). On top of it
//! this module applies the rules a static-file server needs: which methods
//! exist, the `Host` requirement, keep-alive and unambiguous message framing;
//! and it notes where the conditional, `Range` and `Accept-Encoding` headers
//! are, which [`crate::respond`] interprets only when a file is answered (and
//! `Accept-Encoding` only with `--precompressed`).
//!
//! The `Referer` and `User-Agent` values, which only the access log quotes
//! (`--log-format combined|json`), are not noted by [`parse`]: two more names
//! to compare for every field of every request, and two more spans carried
//! through the connection's states, would cost every request about 4 % (the
//! larger state no longer moves in registers), whatever the log format. The
//! log finds them itself, in the head still in the buffer, with
//! [`logged_headers`].
//!
//! [`parse`] separates three outcomes, as httparse does: a complete request, a
//! head that is merely incomplete (`Parsed::Partial`: "need more bytes" is not
//! an error) and a head that can never become valid ([`ParseError`]).
//!
//! The parsed [`Request`] does not borrow the buffer. It records *where* the
//! interesting bytes are ([`Span`]s), so the connection can keep its buffer and
//! its request side by side without a self-referential struct, and without
//! copying the target.

use std::mem::MaybeUninit;

use crate::config::{
    MAX_DISCARDED_BODY_BYTES, MAX_HEADER_FIELDS, MAX_REQUEST_HEAD_BYTES, MAX_REQUEST_TARGET_BYTES,
};
use crate::http::{Status, decimal};

/// A range of bytes in the connection's input buffer. `Copy`, unlike
/// `Range<usize>`, and it never dangles: it is just two offsets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// Offset of the first byte.
    pub start: u32,
    /// Offset one past the last byte.
    pub end: u32,
}

impl Span {
    /// The span that `part` (a subslice of `whole`) occupies in `whole`.
    fn within(whole: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - whole.as_ptr() as usize;
        debug_assert!(start + part.len() <= whole.len());
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    /// The bytes this span covers in `buffer`.
    pub fn of(self, buffer: &[u8]) -> &[u8] {
        &buffer[self.start as usize..self.end as usize]
    }
}

/// The request methods, as far as a static-file server cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`: send the file.
    Get,
    /// `HEAD`: send what `GET` would, without the body.
    Head,
    /// `OPTIONS`: which methods the server allows (RFC 9110 §9.3.7); the
    /// only method whose target may be `*`.
    Options,
    /// A method HTTP defines that makes no sense on static files (`POST`,
    /// `PUT`, `DELETE`, …): answered with `405` and an `Allow` header.
    NotAllowed,
    /// A method we have never heard of: answered with `501`.
    Unknown,
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            "POST" | "PUT" | "DELETE" | "CONNECT" | "TRACE" | "PATCH" => Method::NotAllowed,
            _ => Method::Unknown,
        }
    }
}

/// The protocol versions we speak. httparse accepts exactly these two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: connections close after each response unless asked otherwise.
    Http10,
    /// HTTP/1.1: connections persist unless asked otherwise.
    Http11,
}

/// One parsed request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// What the client wants done.
    pub method: Method,
    /// The protocol version of the request line.
    pub version: Version,
    /// The request target as sent (path and query, still percent-encoded).
    pub target: Span,
    /// The request line without its line ending, for the access log.
    pub request_line: Span,
    /// Bytes of the buffer this head occupies, blank line included; the next
    /// pipelined request starts right after.
    pub head_len: usize,
    /// Whether the client is willing to send another request on this
    /// connection (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// The `If-Modified-Since` value, a date. Parsed only when it matters:
    /// when `If-None-Match` is present it is ignored (RFC 9110 §13.1.3).
    pub if_modified_since: Option<Span>,
    /// The `If-None-Match` value (a list of entity tags, or `*`).
    pub if_none_match: Option<Span>,
    /// The `Range` value.
    pub range: Option<Span>,
    /// The `If-Range` value (an entity tag or a date).
    pub if_range: Option<Span>,
    /// The `Accept` value: read only where the answer depends on it (a
    /// listing's format, the `--fallback` page).
    pub accept: Option<Span>,
    /// The `Origin` value, for `--cors`.
    pub origin: Option<Span>,
    /// Whether an `Access-Control-Request-Method` field is present: an
    /// `OPTIONS` with it (and `Origin`) is a CORS preflight.
    pub is_cors_preflight: bool,
    /// The `Accept-Encoding` value (codings with weights), read only with
    /// `--precompressed` ([`crate::http::encoding`]). A request with the
    /// field twice gets an empty span: "no coding", always a safe answer,
    /// where joining the two lists would need a copy.
    pub accept_encoding: Option<Span>,
    /// Whether a body follows the head (`Content-Length` > 0 or
    /// `Transfer-Encoding`). We never read bodies, so such a connection is
    /// closed after the response rather than misreading the body as the next
    /// request.
    pub has_body: bool,
}

/// The outcome of [`parse`] on a buffer that did not hold an invalid head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole head was found.
    Complete(Request),
    /// The bytes so far are a valid beginning; wait for more.
    Partial,
}

/// Why a request head was rejected. Small and `Copy`: rejecting never
/// allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The request line or a header field breaks the syntax of RFC 9112.
    Malformed,
    /// The head is larger than [`MAX_REQUEST_HEAD_BYTES`], or has more than
    /// [`MAX_HEADER_FIELDS`] fields.
    HeadTooLarge,
    /// The request line names an HTTP version other than 1.0 and 1.1.
    UnsupportedVersion,
    /// An HTTP/1.1 request without `Host`, or any request with two
    /// (RFC 9112 §3.2).
    BadHost,
    /// The body's length is ambiguous: `Content-Length` together with
    /// `Transfer-Encoding`, differing or invalid `Content-Length` values, a
    /// transfer coding other than exactly `chunked`, `Transfer-Encoding` in
    /// an HTTP/1.0 request. Accepting these is how request smuggling starts
    /// (RFC 9112 §6.1, §6.3).
    AmbiguousLength,
    /// The request target is longer than [`MAX_REQUEST_TARGET_BYTES`].
    TargetTooLong,
    /// The announced body is larger than [`MAX_DISCARDED_BODY_BYTES`].
    BodyTooLarge,
}

impl ParseError {
    /// The status that answers this error.
    pub fn status(self) -> Status {
        match self {
            ParseError::Malformed | ParseError::BadHost | ParseError::AmbiguousLength => {
                Status::BadRequest
            }
            ParseError::HeadTooLarge => Status::RequestHeaderFieldsTooLarge,
            ParseError::UnsupportedVersion => Status::HttpVersionNotSupported,
            ParseError::TargetTooLong => Status::UriTooLong,
            ParseError::BodyTooLarge => Status::ContentTooLarge,
        }
    }
}

/// Parses the request head at the start of `buffer`.
pub fn parse(buffer: &[u8]) -> Result<Parsed, ParseError> {
    // Uninitialised slots: httparse writes each field before it hands it
    // back, so zeroing 64 of them (2 KiB) for every request would be waste.
    let mut fields = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADER_FIELDS];
    let mut request = httparse::Request::new(&mut []);
    let head_len = match request.parse_with_uninit_headers(buffer, &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buffer.len() >= MAX_REQUEST_HEAD_BYTES => {
            // Still inside the request line: it is the target that is long.
            let line_complete = first_line(buffer).len() < buffer.len().saturating_sub(2);
            return Err(if line_complete {
                ParseError::HeadTooLarge
            } else {
                ParseError::TargetTooLong
            });
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::HeadTooLarge),
        Err(httparse::Error::Version) if names_other_http_version(buffer) => {
            return Err(ParseError::UnsupportedVersion);
        }
        Err(_) => return Err(ParseError::Malformed),
    };
    if head_len > MAX_REQUEST_HEAD_BYTES {
        return Err(ParseError::HeadTooLarge);
    }
    // A complete parse always fills in method, path and version.
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version)
    else {
        return Err(ParseError::Malformed);
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    // From the method to the version: httparse accepts exactly one space
    // between the three parts, and the version is exactly `HTTP/1.x`.
    let request_line = Span {
        start: Span::within(buffer, method.as_bytes()).start,
        end: Span::within(buffer, target.as_bytes()).end + " HTTP/1.x".len() as u32,
    };
    debug_assert!(matches!(
        request_line.of(buffer).rsplit(|&b| b == b' ').next(),
        Some(b"HTTP/1.0" | b"HTTP/1.1")
    ));
    if target.len() > MAX_REQUEST_TARGET_BYTES {
        return Err(ParseError::TargetTooLong);
    }
    let method = Method::from_token(method);
    // The asterisk-form names the server itself, not a resource, and exists
    // for OPTIONS only (RFC 9112 §3.2.4).
    if target == "*" && method != Method::Options {
        return Err(ParseError::Malformed);
    }
    let fields = Fields::read(buffer, request.headers)?;
    if fields.host_count > 1 || (version == Version::Http11 && fields.host_count == 0) {
        return Err(ParseError::BadHost);
    }
    if fields.chunked && version == Version::Http10 {
        return Err(ParseError::AmbiguousLength);
    }
    if fields
        .content_length
        .is_some_and(|len| len > MAX_DISCARDED_BODY_BYTES)
    {
        return Err(ParseError::BodyTooLarge);
    }
    let keep_alive = match version {
        Version::Http11 => !fields.connection_close,
        Version::Http10 => fields.connection_keep_alive && !fields.connection_close,
    };
    Ok(Parsed::Complete(Request {
        method,
        version,
        target: Span::within(buffer, target.as_bytes()),
        request_line,
        head_len,
        keep_alive,
        if_modified_since: fields.if_modified_since,
        if_none_match: fields.if_none_match,
        range: fields.range,
        if_range: fields.if_range,
        accept: fields.accept,
        origin: fields.origin,
        is_cors_preflight: fields.access_control_request_method,
        accept_encoding: fields.accept_encoding,
        has_body: fields.has_body,
    }))
}

/// The header values an access-log line may quote, as received: slices of
/// the request head, never copies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoggedHeaders<'a> {
    /// The first `Referer` value: the page that linked here (RFC 9110
    /// §10.1.3).
    pub referer: Option<&'a [u8]>,
    /// The first `User-Agent` value: the client program (RFC 9110 §10.1.5).
    pub user_agent: Option<&'a [u8]>,
}

/// The `Referer` and `User-Agent` of the request head at the start of
/// `head`, tokenised again by httparse exactly as [`parse`] did; none if the
/// head does not tokenise (it was refused, and its line is logged for what
/// it is). Called only by the log formats that quote them.
pub fn logged_headers(head: &[u8]) -> LoggedHeaders<'_> {
    let mut fields = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADER_FIELDS];
    let mut request = httparse::Request::new(&mut []);
    let mut logged = LoggedHeaders::default();
    if !matches!(
        request.parse_with_uninit_headers(head, &mut fields),
        Ok(httparse::Status::Complete(_))
    ) {
        return logged;
    }
    for header in request.headers.iter() {
        let slot = if header.name.eq_ignore_ascii_case("referer") {
            &mut logged.referer
        } else if header.name.eq_ignore_ascii_case("user-agent") {
            &mut logged.user_agent
        } else {
            continue;
        };
        slot.get_or_insert(header.value);
    }
    logged
}

/// The first line of `buffer` (after any blank lines, which RFC 9112 §2.2
/// lets a server skip), without its line ending: the request line. Used for
/// the access log of heads that failed to parse (a parsed head's
/// `request_line` comes from httparse's spans instead).
pub fn first_line(buffer: &[u8]) -> &[u8] {
    let start = buffer
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buffer.len());
    let rest = &buffer[start..];
    let end = rest
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The span of [`first_line`] within `buffer`.
pub fn first_line_span(buffer: &[u8]) -> Span {
    Span::within(buffer, first_line(buffer))
}

/// Whether a request line httparse rejected for its version is otherwise
/// well-formed and names an HTTP version: `GET / HTTP/2.0` deserves `505`,
/// while `GET / FOO` is just malformed (`400`).
fn names_other_http_version(buffer: &[u8]) -> bool {
    let line = first_line(buffer);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(_method), Some(_target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    match version.strip_prefix(b"HTTP/") {
        Some([major]) => major.is_ascii_digit(),
        Some([major, b'.', minor]) => major.is_ascii_digit() && minor.is_ascii_digit(),
        _ => false,
    }
}

/// Whether a `Host` value is `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986
/// §3.2.2): a registered name or IPv4 address of unreserved, sub-delims and
/// `%XX` bytes, or an IP literal in brackets; then an optional port of
/// digits. An empty value is allowed (RFC 9112 §3.2). Anything else (`/`,
/// `@`, spaces, quotes, `<`) is an invalid field value, which RFC 9112 §3.2
/// answers with `400`. One pass over the value, a table lookup per byte: it
/// runs for every request.
fn is_valid_host(value: &[u8]) -> bool {
    let name = match value.strip_prefix(b"[") {
        Some(literal) => {
            let Some(end) = literal.iter().position(|&b| b == b']') else {
                return false;
            };
            let address = &literal[..end];
            if address.is_empty()
                || !address
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return false;
            }
            return is_port(&literal[end + 1..]);
        }
        None => value,
    };
    let mut bytes = name.iter();
    while let Some(&byte) = bytes.next() {
        if REG_NAME_BYTES[usize::from(byte)] {
            continue;
        }
        let valid = match byte {
            b'%' => {
                bytes.next().is_some_and(u8::is_ascii_hexdigit)
                    && bytes.next().is_some_and(u8::is_ascii_hexdigit)
            }
            b':' => return bytes.all(u8::is_ascii_digit),
            _ => false,
        };
        if !valid {
            return false;
        }
    }
    true
}

/// `[ ":" *DIGIT ]` after an IP literal.
fn is_port(rest: &[u8]) -> bool {
    rest.is_empty()
        || rest
            .strip_prefix(b":")
            .is_some_and(|digits| digits.iter().all(u8::is_ascii_digit))
}

/// The bytes RFC 3986's `reg-name` takes as themselves: `unreserved` and
/// `sub-delims` (`%` starts an escape and is checked apart).
const REG_NAME_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        byte += 1;
    }
    table
};

/// What the header fields say, as far as we care.
#[derive(Default)]
struct Fields {
    host_count: usize,
    connection_close: bool,
    connection_keep_alive: bool,
    content_length: Option<u64>,
    chunked: bool,
    has_body: bool,
    if_modified_since: Option<Span>,
    if_none_match: Option<Span>,
    range: Option<Span>,
    if_range: Option<Span>,
    accept: Option<Span>,
    origin: Option<Span>,
    access_control_request_method: bool,
    accept_encoding: Option<Span>,
}

impl Fields {
    fn read(buffer: &[u8], headers: &[httparse::Header<'_>]) -> Result<Fields, ParseError> {
        let mut fields = Fields::default();
        for header in headers {
            let name = header.name;
            let value = || Some(Span::within(buffer, header.value));
            if name.eq_ignore_ascii_case("host") {
                if !is_valid_host(header.value) {
                    return Err(ParseError::BadHost);
                }
                fields.host_count += 1;
            } else if name.eq_ignore_ascii_case("connection") {
                for option in header.value.split(|&b| b == b',') {
                    let option = option.trim_ascii();
                    fields.connection_close |= option.eq_ignore_ascii_case(b"close");
                    fields.connection_keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case("content-length") {
                // `Content-Length = 1*DIGIT` (RFC 9110 §8.6).
                let length =
                    decimal(header.value.trim_ascii()).ok_or(ParseError::AmbiguousLength)?;
                if fields
                    .content_length
                    .is_some_and(|earlier| earlier != length)
                {
                    return Err(ParseError::AmbiguousLength);
                }
                fields.content_length = Some(length);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                // We never decode bodies, so the only coding whose framing we
                // can follow to the end is a single `chunked`; anything else
                // (a list, `gzip`, a second header) is refused.
                if fields.chunked || !header.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    return Err(ParseError::AmbiguousLength);
                }
                fields.chunked = true;
            } else if name.eq_ignore_ascii_case("if-none-match") {
                fields.if_none_match = value();
            } else if name.eq_ignore_ascii_case("range") {
                fields.range = value();
            } else if name.eq_ignore_ascii_case("if-range") {
                fields.if_range = value();
            } else if name.eq_ignore_ascii_case("if-modified-since") {
                fields.if_modified_since = value();
            } else if name.eq_ignore_ascii_case("accept") {
                fields.accept = value();
            } else if name.eq_ignore_ascii_case("origin") {
                fields.origin = value();
            } else if name.eq_ignore_ascii_case("access-control-request-method") {
                fields.access_control_request_method = true;
            } else if name.eq_ignore_ascii_case("accept-encoding") {
                fields.accept_encoding = match fields.accept_encoding {
                    None => value(),
                    Some(_) => Some(Span::default()),
                };
            }
        }
        if fields.chunked && fields.content_length.is_some() {
            return Err(ParseError::AmbiguousLength);
        }
        fields.has_body = fields.chunked || fields.content_length.is_some_and(|len| len > 0);
        Ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(raw: &[u8]) -> Request {
        match parse(raw) {
            Ok(Parsed::Complete(request)) => request,
            other => panic!("expected a complete request from {raw:?}, got {other:?}"),
        }
    }

    #[test]
    fn the_request_line_spans_method_to_version_after_blank_lines() {
        let raw = b"\r\n\r\nHEAD /a%20b HTTP/1.0\r\nHost: a\r\n\r\n";
        assert_eq!(complete(raw).request_line.of(raw), b"HEAD /a%20b HTTP/1.0");
    }

    #[test]
    fn simple_get() {
        let raw = b"GET /index.html?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
        let request = complete(raw);
        assert_eq!(request.method, Method::Get);
        assert_eq!(request.version, Version::Http11);
        assert_eq!(request.target.of(raw), b"/index.html?x=1");
        assert_eq!(
            request.request_line.of(raw),
            b"GET /index.html?x=1 HTTP/1.1"
        );
        assert_eq!(request.head_len, raw.len());
        assert!(request.keep_alive);
        assert!(!request.has_body);
        assert_eq!(request.if_modified_since, None);
    }

    #[test]
    fn referer_and_user_agent_are_found_as_sent() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nreferer: http://a/b?c\r\n\
                    USER-AGENT: x/1 (\"y\")\r\nUser-Agent: second\r\nReferer:\r\n\r\nGET /next";
        let logged = logged_headers(raw);
        assert_eq!(logged.referer, Some(&b"http://a/b?c"[..]));
        assert_eq!(
            logged.user_agent,
            Some(&b"x/1 (\"y\")"[..]),
            "the first one"
        );
        let none = LoggedHeaders::default();
        assert_eq!(logged_headers(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), none);
        assert_eq!(
            logged_headers(b"GET / HTTP/1.1\r\nUser-Agent: \x1b\r\n\r\n"),
            none
        );
        assert_eq!(logged_headers(b"GET / HTTP/1.1\r\nUser-Agent: x\r\n"), none);
    }

    #[test]
    fn head_len_stops_before_the_pipelined_request() {
        let first = b"HEAD /a HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut raw = first.to_vec();
        raw.extend_from_slice(b"GET /b HTTP/1.1\r\n");
        let request = complete(&raw);
        assert_eq!(request.method, Method::Head);
        assert_eq!(request.head_len, first.len());
    }

    #[test]
    fn incomplete_heads_are_partial_not_errors() {
        let raw = b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 0..raw.len() {
            assert_eq!(parse(&raw[..cut]), Ok(Parsed::Partial), "cut at {cut}");
        }
    }

    #[test]
    fn keep_alive_rules() {
        let cases: &[(&[u8], bool)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
                false,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            (
                b"GET / HTTP/1.0\r\nConnection: foo , Keep-Alive\r\n\r\n",
                true,
            ),
        ];
        for (raw, keep_alive) in cases {
            assert_eq!(complete(raw).keep_alive, *keep_alive, "{raw:?}");
        }
    }

    #[test]
    fn methods() {
        let cases: &[(&[u8], Method)] = &[
            (b"GET", Method::Get),
            (b"HEAD", Method::Head),
            (b"POST", Method::NotAllowed),
            (b"PUT", Method::NotAllowed),
            (b"DELETE", Method::NotAllowed),
            (b"OPTIONS", Method::Options),
            (b"PATCH", Method::NotAllowed),
            (b"TRACE", Method::NotAllowed),
            (b"BREW", Method::Unknown),
            (b"get", Method::Unknown),
        ];
        for (token, method) in cases {
            let mut raw = token.to_vec();
            raw.extend_from_slice(b" / HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(complete(&raw).method, *method, "{token:?}");
        }
    }

    #[test]
    fn asterisk_form_is_for_options_only() {
        // Other methods with `*` are among the `rejections`.
        let request = complete(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(request.method, Method::Options);
    }

    #[test]
    fn if_modified_since_is_kept_as_sent() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n";
        let since = complete(raw).if_modified_since.unwrap();
        assert_eq!(since.of(raw), b"Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn accept_encoding_is_kept_as_sent_and_a_repeated_field_is_empty() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip, br;q=0.5\r\n\r\n";
        let codings = complete(raw).accept_encoding.unwrap();
        assert_eq!(codings.of(raw), b"gzip, br;q=0.5");
        let raw =
            b"GET / HTTP/1.1\r\nHost: a\r\naccept-encoding: gzip\r\nAccept-Encoding: br\r\n\r\n";
        assert_eq!(complete(raw).accept_encoding.unwrap().of(raw), b"");
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(complete(raw).accept_encoding, None);
    }

    #[test]
    fn bodies_are_noticed() {
        let cases: &[(&[u8], bool)] = &[
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
                false,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
                true,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                true,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                true,
            ),
        ];
        for (raw, has_body) in cases {
            assert_eq!(complete(raw).has_body, *has_body, "{raw:?}");
        }
    }

    #[test]
    fn valid_hosts_are_accepted() {
        for host in [
            "",
            "a",
            "example.com",
            "example.com:8080",
            "127.0.0.1",
            "127.0.0.1:8888",
            "[::1]",
            "[::1]:8080",
            "[2001:db8::7]",
            "xn--bcher-kva.example",
            "a_b~c-d",
            "%41",
            "host:",
        ] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert!(
                matches!(parse(raw.as_bytes()), Ok(Parsed::Complete(_))),
                "Host: {host:?}"
            );
        }
    }

    /// Every way a head can be rejected, and the status each one gets.
    #[test]
    fn rejections() {
        let too_many_fields: Vec<u8> = {
            let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
            for i in 0..MAX_HEADER_FIELDS {
                raw.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
            }
            raw.extend_from_slice(b"\r\n");
            raw
        };
        let too_long: Vec<u8> = {
            let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
            raw.resize(MAX_REQUEST_HEAD_BYTES + 10, b'y');
            raw
        };
        let long_target: Vec<u8> = {
            let mut raw = b"GET /".to_vec();
            raw.resize(5 + MAX_REQUEST_TARGET_BYTES, b'a');
            raw.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
            raw
        };
        let endless_request_line: Vec<u8> = {
            let mut raw = b"GET /".to_vec();
            raw.resize(MAX_REQUEST_HEAD_BYTES, b'a');
            raw
        };
        let cases: &[(&[u8], ParseError)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", ParseError::BadHost),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ParseError::BadHost),
            (b"GET / HTTP/1.1\r\nHost: bad/host\r\n\r\n", ParseError::BadHost),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", ParseError::BadHost),
            (b"GET / HTTP/1.1\r\nHost: x@y\r\n\r\n", ParseError::BadHost),
            (b"GET / HTTP/1.1\r\nHost: \"x\"\r\n\r\n", ParseError::BadHost),
            (b"GET / HTTP/1.1\r\nHost: <x>\r\n\r\n", ParseError::BadHost),
            (b"GET / HTTP/1.1\r\nHost: x:80a\r\n\r\n", ParseError::BadHost),
            (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", ParseError::BadHost),
            (b"GET / HTTP/1.1\r\nHost: [x]\r\n\r\n", ParseError::BadHost),
            (b"GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", ParseError::BadHost),
            (b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", ParseError::BadHost),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", ParseError::UnsupportedVersion),
            (b"GET / HTTP/3\r\nHost: a\r\n\r\n", ParseError::UnsupportedVersion),
            (b"GET / FTP/1.0\r\nHost: a\r\n\r\n", ParseError::Malformed),
            (b"GET /\r\n\r\n", ParseError::Malformed),
            (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::Malformed),
            (b"GET / HTTP/1.1\r\nHost a\r\n\r\n", ParseError::Malformed),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", ParseError::Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", ParseError::Malformed),
            (b"GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::Malformed),
            (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::Malformed),
            (b"HEAD * HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\0\r\n\r\n", ParseError::Malformed),
            (b"G\x01T / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::Malformed),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                ParseError::AmbiguousLength,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                ParseError::AmbiguousLength,
            ),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", ParseError::AmbiguousLength),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", ParseError::AmbiguousLength),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                ParseError::AmbiguousLength,
            ),
            (&too_many_fields, ParseError::HeadTooLarge),
            (&too_long, ParseError::HeadTooLarge),
            (&long_target, ParseError::TargetTooLong),
            (&endless_request_line, ParseError::TargetTooLong),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
                ParseError::AmbiguousLength,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                ParseError::AmbiguousLength,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                ParseError::AmbiguousLength,
            ),
            (
                b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                ParseError::AmbiguousLength,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n",
                ParseError::BodyTooLarge,
            ),
            (b"GET / HTTP/1.1\rHost: a\r\n\r\n", ParseError::Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", ParseError::Malformed),
            (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::Malformed),
            (b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::Malformed),
            (b"GET / HTTP/1.1\r\nHo\x01st: a\r\n\r\n", ParseError::Malformed),
            (b"GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", ParseError::Malformed),
            (b"GET / HTTP/1.1\r\nHost:\x00a\r\n\r\n", ParseError::Malformed),
            (b"GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::Malformed),
        ];
        for (raw, error) in cases {
            assert_eq!(
                parse(raw),
                Err(*error),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn error_statuses() {
        assert_eq!(ParseError::Malformed.status(), Status::BadRequest);
        assert_eq!(
            ParseError::HeadTooLarge.status(),
            Status::RequestHeaderFieldsTooLarge
        );
        assert_eq!(
            ParseError::UnsupportedVersion.status(),
            Status::HttpVersionNotSupported
        );
    }

    #[test]
    fn first_line_skips_leading_blank_lines() {
        assert_eq!(
            first_line(b"\r\nGET / HTTP/1.1\r\nHost: a"),
            b"GET / HTTP/1.1"
        );
        assert_eq!(first_line(b"GARBAGE"), b"GARBAGE");
        assert_eq!(first_line(b""), b"");
    }
}
