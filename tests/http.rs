//! Request → response behaviour of single requests: file serving, content types, HEAD,
//! directories and redirects, percent-decoding, conditional requests, every error status,
//! the request-head size limit, and large bodies (also to a slow reader).
//!
//! Each test starts its own server on an ephemeral port and compares status lines, header
//! values and bodies exactly.

mod support;

use std::io::Read;
use std::thread;
use std::time::{Duration, UNIX_EPOCH};

use support::*;

/// Every fixture file with a fixed type, and that type.
const TYPED_FILES: &[(&str, &str)] = &[
    ("index.html", "text/html; charset=utf-8"),
    ("sub/page.html", "text/html; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("logo.png", "image/png"),
    ("photo.jpg", "image/jpeg"),
    ("icon.svg", "image/svg+xml"),
    ("data.json", "application/json"),
    ("mod.wasm", "application/wasm"),
    ("blob.unknownext", "application/octet-stream"),
];

#[test]
fn serves_files_with_their_content_type() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    for (name, ty) in TYPED_FILES {
        let r = c.get(&format!("/{name}"));
        assert_file(&r, name, ty);
        assert_keeps_alive(&r);
        assert_eq!(r.header("Keep-Alive"), Some("timeout=10"), "{r:?}");
    }
    assert_hello(&c.get("/hello.txt"));
}

#[test]
fn javascript_is_served_as_a_javascript_type() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let r = server.connect().get("/app.js");
    assert_file_body(&r, content("app.js"));
    let ty = r.expect_header("Content-Type");
    assert!(
        ty == "text/javascript; charset=utf-8" || ty == "application/javascript; charset=utf-8",
        "Content-Type {ty:?} for app.js"
    );
}

#[test]
fn head_sends_the_get_headers_without_a_body() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    for path in ["/index.html", "/logo.png", "/hello.txt", "/", "/sub/"] {
        let head = c.head(path);
        let get = c.get(path);
        assert_eq!(head.status_line, "HTTP/1.1 200 OK", "HEAD {path}: {head:?}");
        assert_common_headers(&head);
        assert!(head.body.is_empty());
        assert!(!get.body.is_empty());
        // Same headers apart from Date, which may tick between the two.
        let without_date = |r: &Response| -> Vec<(String, String)> {
            r.headers
                .iter()
                .filter(|(n, _)| !n.eq_ignore_ascii_case("Date"))
                .cloned()
                .collect()
        };
        assert_eq!(
            without_date(&head),
            without_date(&get),
            "HEAD vs GET {path}"
        );
        assert_eq!(
            head.header("Content-Length"),
            Some(get.body.len().to_string().as_str())
        );
    }
    // Had a HEAD response carried body bytes, this GET would have parsed them instead.
    assert_hello(&c.get("/hello.txt"));
}

#[test]
fn directories_serve_their_index() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let html = "text/html; charset=utf-8";
    assert_file_body(&c.get("/"), content("index.html"));
    assert_eq!(c.get("/").header("Content-Type"), Some(html));
    let r = c.get("/sub/");
    assert_file(&r, "sub/index.html", html);
    assert_keeps_alive(&r);
}

#[test]
fn directory_without_slash_redirects_keeping_the_query() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    for (path, location) in [
        ("/sub", "/sub/"),
        ("/sub?x=1", "/sub/?x=1"),
        ("/emptydir", "/emptydir/"),
    ] {
        let r = c.get(path);
        assert_eq!(
            r.status_line, "HTTP/1.1 301 Moved Permanently",
            "{path}: {r:?}"
        );
        assert_common_headers(&r);
        assert_eq!(r.header("Location"), Some(location), "{path}: {r:?}");
        assert_keeps_alive(&r);
    }
    // The redirects' bodies were exactly Content-Length long: the connection still parses.
    assert_hello(&c.get("/hello.txt"));
}

#[test]
fn directory_without_index_is_forbidden() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let r = c.get("/emptydir/");
    assert_error(&r, 403);
    assert_keeps_alive(&r);
    assert_hello(&c.get("/hello.txt"));
}

#[test]
fn query_string_is_ignored_for_lookup() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let html = "text/html; charset=utf-8";
    assert_file(&c.get("/index.html?x=1"), "index.html", html);
    assert_file(&c.get("/sub/?a=b&c=d"), "sub/index.html", html);
    assert_file(
        &c.get("/style.css?"),
        "style.css",
        "text/css; charset=utf-8",
    );
    assert_hello(&c.get("/hello.txt?v=%2e%2e/x"));
}

#[test]
fn percent_encoded_names_are_decoded() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    for (path, name) in [
        ("/hello%20world.txt", "hello world.txt"),
        ("/caf%C3%A9.txt", "caf\u{e9}.txt"),
        ("/caf%c3%a9.txt", "caf\u{e9}.txt"),
        ("/%68ello.txt", "hello.txt"),
        ("/sub/%70age.html", "sub/page.html"),
    ] {
        let r = c.get(path);
        assert_file_body(&r, content(name));
    }
}

#[test]
fn missing_file_gets_the_roots_404_page() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    for path in ["/nope.txt", "/sub/nope.html", "/hello.txt/extra", "/nodir/"] {
        let r = c.get(path);
        assert_eq!(r.status_line, "HTTP/1.1 404 Not Found", "{path}: {r:?}");
        assert_common_headers(&r);
        assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.body, content("404.html"), "{path}: {r:?}");
        assert_keeps_alive(&r);
    }
    assert_hello(&c.get("/hello.txt"));
}

#[test]
fn missing_file_without_404_page_gets_a_builtin_page() {
    let fixture = Fixture::new();
    fixture.remove("404.html");
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let r = c.get("/nope.txt");
    assert_error(&r, 404);
    assert_keeps_alive(&r);
    assert_hello(&c.get("/hello.txt"));
}

#[test]
fn head_of_a_missing_file_has_no_body() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let r = c.head("/nope.txt");
    assert_eq!(r.status_line, "HTTP/1.1 404 Not Found");
    assert_common_headers(&r);
    // Any body bytes would be parsed as the next response's status line.
    assert_hello(&c.get("/hello.txt"));
}

fn if_modified_since(path: &str, date: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nIf-Modified-Since: {date}\r\n\r\n")
}

#[test]
fn if_modified_since_not_before_last_modified_gives_304() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let later =
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(FIXTURE_MTIME_SECS + 86_400));
    for date in [FIXTURE_LAST_MODIFIED, later.as_str()] {
        let r = c.roundtrip(&if_modified_since("/hello.txt", date));
        assert_eq!(
            r.status_line, "HTTP/1.1 304 Not Modified",
            "IMS {date}: {r:?}"
        );
        assert_common_headers(&r);
        assert!(r.body.is_empty());
        assert_keeps_alive(&r);
        // A 304 has no body even if it states a Content-Length: the next response must
        // start right after its head.
        assert_hello(&c.get("/hello.txt"));
    }
}

#[test]
fn if_modified_since_before_last_modified_or_invalid_gives_200() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let earlier = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(FIXTURE_MTIME_SECS - 1));
    for date in [
        earlier.as_str(),
        "yesterday",
        "Tue, 99 Foo 2023 99:99:99 GMT",
        "",
    ] {
        let r = c.roundtrip(&if_modified_since("/hello.txt", date));
        assert_hello(&r);
    }
}

#[test]
fn disallowed_methods_get_405_with_allow() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    for method in ["POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT"] {
        let r = c.roundtrip(&format!(
            "{method} /hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"
        ));
        assert_error(&r, 405);
        assert_eq!(
            r.header("Allow"),
            Some("GET, HEAD, OPTIONS"),
            "{method}: {r:?}"
        );
        assert_keeps_alive(&r);
    }
    assert_hello(&c.get("/hello.txt"));
}

#[test]
fn unknown_method_gets_501_and_close() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let r = c.roundtrip("BREW /pot HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_error(&r, 501);
    assert_closes(&r);
    c.expect_closed();
}

#[test]
fn unsupported_http_versions_get_505_and_close() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    for version in ["HTTP/2.0", "HTTP/3.0"] {
        let mut c = server.connect();
        let r = c.roundtrip(&format!(
            "GET /hello.txt {version}\r\nHost: localhost\r\n\r\n"
        ));
        assert_error(&r, 505);
        assert_closes(&r);
        c.expect_closed();
    }
}

/// Requests that are malformed in the request line or a header field.
const MALFORMED: &[&str] = &[
    "GARBAGE\r\n\r\n",
    "GET\r\n\r\n",
    "GET /hello.txt FOO/1.1\r\nHost: localhost\r\n\r\n",
    "GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nNo colon here\r\n\r\n",
    "GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nBad Name: x\r\n\r\n",
    "GET /hello.txt HTTP/1.1\r\nHost: localhost\r\n: empty name\r\n\r\n",
    // HTTP/1.1 requires Host (RFC 9112 section 3.2).
    "GET /hello.txt HTTP/1.1\r\n\r\n",
    "GET /hello.txt HTTP/1.1\r\nUser-Agent: test\r\n\r\n",
    // ...and exactly one (same section).
    "GET /hello.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
];

#[test]
fn malformed_requests_get_the_roots_400_page_and_close() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    for raw in MALFORMED {
        let mut c = server.connect();
        let r = c.roundtrip(raw);
        assert_eq!(r.status_line, "HTTP/1.1 400 Bad Request", "{raw:?}: {r:?}");
        assert_common_headers(&r);
        assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.body, content("400.html"), "{raw:?}: {r:?}");
        assert_closes(&r);
        c.expect_closed();
    }
}

#[test]
fn malformed_request_without_400_page_gets_a_builtin_page() {
    let fixture = Fixture::new();
    fixture.remove("400.html");
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let r = c.roundtrip("GARBAGE\r\n\r\n");
    assert_error(&r, 400);
    assert_closes(&r);
    c.expect_closed();
}

#[test]
fn http10_without_host_is_served() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let r = c.roundtrip("GET /hello.txt HTTP/1.0\r\n\r\n");
    assert_hello(&r);
    // HTTP/1.0 closes by default; `Connection: close` is optional there.
    assert_ne!(r.header("Connection"), Some("keep-alive"), "{r:?}");
    c.expect_closed();
}

#[test]
fn header_names_are_case_insensitive_and_unknown_headers_ignored() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let r = c.roundtrip(
        "GET /hello.txt HTTP/1.1\r\nhOsT: localhost\r\nUser-Agent: test/1.0\r\n\
         Accept: */*\r\nX-Custom:   padded value  \r\n\r\n",
    );
    assert_hello(&r);
}

#[test]
fn request_head_arriving_byte_by_byte_is_served() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    for byte in get("/hello.txt").as_bytes() {
        c.send([*byte]);
        thread::sleep(Duration::from_millis(3));
    }
    assert_hello(&c.read_response(false));
}

/// A request whose head (request line, headers and final CRLF) is exactly `len` bytes.
fn request_with_head_len(len: usize) -> String {
    let fixed = get("/hello.txt").len() + "X-Fill: \r\n".len();
    format!(
        "GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nX-Fill: {}\r\n\r\n",
        "a".repeat(len - fixed)
    )
}

#[test]
fn request_head_over_8_kib_gets_431_and_close() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    for len in [8193, 9000, 64 * 1024] {
        let raw = request_with_head_len(len);
        assert_eq!(raw.len(), len);
        let mut c = server.connect();
        let r = c.roundtrip(&raw);
        assert_error(&r, 431);
        assert_closes(&r);
        c.expect_closed();
    }
}

#[test]
fn request_head_over_8_kib_arriving_in_pieces_gets_431() {
    // The limit must hold while the head is still incomplete, not only once it is parsed.
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let raw = request_with_head_len(20_000);
    let mut c = server.connect();
    c.send(&raw[..5000]);
    thread::sleep(Duration::from_millis(50));
    c.send(&raw[5000..9000]);
    let r = c.read_response(false);
    assert_error(&r, 431);
    assert_closes(&r);
    c.expect_closed();
}

#[test]
fn request_head_under_8_kib_is_served() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    // "Over 8 KiB" is refused, so a head of exactly 8192 bytes is not.
    for len in [4096, 8000, 8192] {
        assert_hello(&c.roundtrip(&request_with_head_len(len)));
    }
}

#[test]
fn big_file_is_byte_exact() {
    let fixture = Fixture::new();
    let big = fixture.big();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let head = c.head("/big.bin");
    assert_eq!(head.status_line, "HTTP/1.1 200 OK");
    assert_eq!(head.header("Content-Length"), Some("20971520"));
    assert_eq!(
        head.header("Content-Type"),
        Some("application/octet-stream")
    );
    let r = c.get("/big.bin");
    assert_file_body(&r, &big);
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    // And the connection is still in sync after 20 MiB.
    assert_hello(&c.get("/hello.txt"));
}

#[test]
fn big_file_to_a_slow_reader_is_byte_exact() {
    let fixture = Fixture::new();
    let big = fixture.big();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    c.send(get("/big.bin"));
    // Let the server fill the socket buffers and hit WouldBlock before anything is read,
    // then read in small pieces so it must resume on writability many times.
    thread::sleep(Duration::from_millis(300));
    c.set_slow_reads(16 * 1024, Duration::from_micros(500));
    let r = c.read_response(false);
    assert_file_body(&r, &big);
}

#[test]
fn every_status_has_an_exact_content_length() {
    // Reads each response's raw bytes to EOF (Connection: close), so a Content-Length that
    // disagrees with the bytes actually sent fails here even where the client parser would
    // not notice.
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    for (raw, code) in [
        (
            "GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            200,
        ),
        (
            "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            404,
        ),
        (
            "GET /emptydir/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            403,
        ),
        (
            "GET /sub HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            301,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            405,
        ),
        ("BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        ("GARBAGE\r\n\r\n", 400),
    ] {
        let mut c = server.connect();
        c.send(raw);
        let bytes = c.read_until_closed();
        let text = String::from_utf8_lossy(&bytes);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{raw:?}: no complete head in {text:?}"));
        assert!(head.starts_with(&status_line(code)), "{raw:?}: {head:?}");
        let len = head
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.trim().parse::<usize>().unwrap())
            })
            .unwrap_or_else(|| panic!("{raw:?}: no Content-Length in {head:?}"));
        assert_eq!(body.len(), len, "{raw:?}: body {body:?}");
    }
}

#[test]
fn responses_are_readable_after_the_client_stops_reading_briefly() {
    // A response larger than the socket buffers, read only after a pause, then read fully
    // with an ordinary read loop: guards against a server that drops data on WouldBlock.
    let fixture = Fixture::new();
    let body = pseudo_random(3 * 1024 * 1024 + 17, 7);
    fixture.write("three.bin", &body);
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    c.send("GET /three.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    thread::sleep(Duration::from_millis(200));
    let mut all = Vec::new();
    let mut stream = c.stream();
    stream.read_to_end(&mut all).unwrap();
    assert!(all.ends_with(&body), "body of three.bin is not byte-exact");
    assert_eq!(all.len() - body.len(), find_head_len(&all));
}

fn find_head_len(bytes: &[u8]) -> usize {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4
}

#[test]
fn media_types_follow_todays_web() {
    let fixture = Fixture::new();
    let cases = [
        ("app.js.map", "application/json"),
        ("module.mjs", "text/javascript; charset=utf-8"),
        ("font.woff", "font/woff"),
        ("font.woff2", "font/woff2"),
        ("live.m3u8", "application/vnd.apple.mpegurl"),
        ("segment0.ts", "video/mp2t"),
    ];
    for (name, _) in cases {
        fixture.write(name, name.as_bytes());
    }
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    for (name, ty) in cases {
        let r = c.get(&format!("/{name}"));
        assert_eq!(r.status, 200, "{name}: {r:?}");
        assert_eq!(r.header("Content-Type"), Some(ty), "{name}");
    }
}
