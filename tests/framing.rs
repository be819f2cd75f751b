//! Strict message framing: every request whose length or syntax is ambiguous gets `400`
//! and the connection closes (RFC 9112 §6.3, §11.2: the defence against request
//! smuggling); the size limits (`414`, `431`, `413`); request bodies that are answered and
//! then never read as a next request; and the one leniency, bare-LF line endings.
//!
//! Every rejected request is followed, in the same write, by a valid `GET`. A server that
//! answered it would be reading past a head it just called unparseable, which is exactly
//! how a front end and a back end fall out of step.

mod support;

use support::*;

/// A valid request sent right behind each rejected one: it must never be answered.
fn follower() -> String {
    get("/style.css")
}

/// Sends `raw` followed by [`follower`] on a fresh connection; expects exactly one
/// response, a `code` that says `Connection: close`, and then the end of the connection.
fn assert_rejected_and_closed(server: &TestServer, raw: &[u8], code: u16) {
    let shown = String::from_utf8_lossy(raw).into_owned();
    let mut c = server.connect();
    let mut bytes = raw.to_vec();
    bytes.extend_from_slice(follower().as_bytes());
    c.send(bytes);
    let r = c.read_response(false);
    assert_eq!(r.status_line, status_line(code), "{shown:?}: {r:?}");
    assert_common_headers(&r);
    assert_closes(&r);
    if code == 400 {
        // The fixture root has its own 400 page.
        assert_eq!(r.body, content("400.html"), "{shown:?}: {r:?}");
    } else {
        assert_error(&r, code);
    }
    c.expect_closed();
}

#[test]
fn ambiguous_body_length_gets_400_and_close() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let cases: &[&str] = &[
        // Both framings at once, in either order.
        "Transfer-Encoding: chunked\r\nContent-Length: 5",
        "Content-Length: 5\r\nTransfer-Encoding: chunked",
        // Two different lengths.
        "Content-Length: 5\r\nContent-Length: 6",
        // Not 1*DIGIT, or too large for any integer.
        "Content-Length: abc",
        "Content-Length: -1",
        "Content-Length: 99999999999999999999999",
        "Content-Length: +5",
        "Content-Length: 0x10",
        "Content-Length: ",
        // Codings we cannot find the end of, or more than one.
        "Transfer-Encoding: gzip",
        "Transfer-Encoding: gzip, chunked",
        "Transfer-Encoding: chunked, chunked",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked",
    ];
    for fields in cases {
        let raw = format!("GET /hello.txt HTTP/1.1\r\nHost: x\r\n{fields}\r\n\r\n");
        assert_rejected_and_closed(&server, raw.as_bytes(), 400);
    }
}

#[test]
fn transfer_encoding_in_http10_gets_400_and_close() {
    // HTTP/1.0 has no chunked coding (RFC 9112 §6.1): such a request is a smuggling probe.
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    for raw in [
        "GET /hello.txt HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET /hello.txt HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        assert_rejected_and_closed(&server, raw.as_bytes(), 400);
    }
}

#[test]
fn malformed_syntax_gets_400_and_close() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let cases: &[&[u8]] = &[
        // Obsolete line folding, with a space and with a tab.
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-A: b\r\n folded\r\n\r\n",
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\tfolded\r\n\r\n",
        b"GET /hello.txt HTTP/1.1\r\n Host: x\r\n\r\n",
        // Whitespace between a field name and its colon (RFC 9112 §5.1).
        b"GET /hello.txt HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\n",
        // NUL in the request line and in a field.
        b"GET /hel\0lo.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /hello.txt HTTP/1.1\r\nHost: x\0y\r\n\r\n",
        // A bare CR in the request line and in a field.
        b"GET /hello.txt HTTP/1.1\rHost: x\r\n\r\n",
        b"GET /hel\rlo.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /hello.txt HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n",
        // A method that is not a token.
        b"GE(T /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"G\x01T /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        // A space inside the target.
        b"GET /hello .txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /hello.txt?a b HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    for raw in cases {
        assert_rejected_and_closed(&server, raw, 400);
    }
}

/// A `GET` whose target is exactly `len` bytes: `/hello.txt?` and a padding query.
fn get_with_target_len(len: usize) -> String {
    let mut target = String::from("/hello.txt?");
    target.push_str(&"q".repeat(len - target.len()));
    get(&target)
}

#[test]
fn target_over_4096_bytes_gets_414_and_close() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    // The boundary: 4096 is served, on a connection that stays open.
    let mut c = server.connect();
    let r = c.roundtrip(&get_with_target_len(4096));
    assert_hello(&r);
    assert_keeps_alive(&r);
    assert_hello(&c.get("/hello.txt"));
    assert_rejected_and_closed(&server, get_with_target_len(4097).as_bytes(), 414);
    assert_rejected_and_closed(&server, get_with_target_len(8000).as_bytes(), 414);
}

#[test]
fn request_line_over_8_kib_without_a_line_end_gets_414() {
    // The server cannot wait for the end of a line that will not fit its buffer.
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let raw = format!("GET /{}", "a".repeat(9000));
    let mut c = server.connect();
    c.send(&raw);
    let r = c.read_response(false);
    assert_error(&r, 414);
    assert_closes(&r);
    c.expect_closed();
}

#[test]
fn long_header_field_gets_431_not_414() {
    // Over 8 KiB, but the request line is short: the head is too large, not the URI.
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let complete = format!(
        "GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
        "b".repeat(9000)
    );
    assert_rejected_and_closed(&server, complete.as_bytes(), 431);
    // Also while the long field has no line end yet.
    let mut c = server.connect();
    c.send(format!(
        "GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Long: {}",
        "b".repeat(9000)
    ));
    let r = c.read_response(false);
    assert_error(&r, 431);
    assert_closes(&r);
    c.expect_closed();
}

#[test]
fn content_length_over_1_mib_gets_413_and_close() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    for method in ["GET", "POST"] {
        let raw =
            format!("{method} /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n");
        assert_rejected_and_closed(&server, raw.as_bytes(), 413);
    }
    // The boundary: a 1 MiB body is announced acceptably. The GET is answered (and then
    // the connection ends, as after any body the server does not read); the client never
    // sends the body, so the close cannot be waiting for it.
    let mut c = server.connect();
    c.send("GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n");
    let r = c.read_response(false);
    assert_hello(&r);
    assert_closes(&r);
    c.expect_closed();
}

/// Sends `first` and then [`follower`] in one write; expects `hello.txt` with
/// `Connection: close`, then the end of the connection without a second response.
fn assert_body_is_not_a_request(server: &TestServer, first: &str) {
    let mut c = server.connect();
    c.send(format!("{first}{}", follower()));
    let r = c.read_response(false);
    assert_hello(&r);
    assert_closes(&r);
    c.expect_closed();
}

#[test]
fn get_with_a_content_length_body_is_answered_then_closed() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    assert_body_is_not_a_request(
        &server,
        "GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    );
    // A body that is itself a request: answering it would be request smuggling.
    let smuggled = get("/index.html");
    assert_body_is_not_a_request(
        &server,
        &format!(
            "GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{smuggled}",
            smuggled.len()
        ),
    );
}

#[test]
fn get_with_a_chunked_body_is_answered_then_closed() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    assert_body_is_not_a_request(
        &server,
        "GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    let smuggled = get("/index.html");
    assert_body_is_not_a_request(
        &server,
        &format!(
            "GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
            smuggled.len()
        ),
    );
}

#[test]
fn bare_lf_line_endings_are_accepted() {
    // A documented leniency (RFC 9112 §2.2 allows it): pinned so it changes only on purpose.
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    for _ in 0..2 {
        let r = c.roundtrip("GET /hello.txt HTTP/1.1\nHost: x\n\n");
        assert_hello(&r);
        assert_keeps_alive(&r);
    }
    // Mixed with CRLF on the same connection, and pipelined.
    c.send("GET /hello.txt HTTP/1.1\r\nHost: x\n\nGET /hello.txt HTTP/1.1\nHost: x\r\n\r\n");
    assert_hello(&c.read_response(false));
    assert_hello(&c.read_response(false));
    c.expect_open(std::time::Duration::from_millis(100));
}

#[test]
fn an_invalid_host_gets_400_and_close() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    for host in ["bad/host", "a b", "x@y", "\"x\"", "<x>", "x:80a", "[::1"] {
        let raw = format!("GET /hello.txt HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_rejected_and_closed(&server, raw.as_bytes(), 400);
    }
    let mut c = server.connect();
    for host in [
        "example.com",
        "example.com:8080",
        "[::1]:8080",
        "127.0.0.1",
        "",
    ] {
        let r = c.roundtrip(&format!("GET /hello.txt HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        assert_hello(&r);
        assert_keeps_alive(&r);
    }
}
