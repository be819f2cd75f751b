//! Connection handling: persistent connections (RFC 9112 section 9.3), pipelining,
//! `Connection: close`, HTTP/1.0, half-closed clients, the keep-alive and request-head
//! timeouts, and many concurrent clients.

mod support;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// Fixture files with distinct bodies, cycled through so a response in the wrong order or
/// for the wrong request fails.
const CYCLE: &[&str] = &[
    "index.html",
    "hello.txt",
    "style.css",
    "logo.png",
    "data.json",
    "sub/page.html",
    "mod.wasm",
];

fn assert_body_of(r: &Response, name: &str) {
    assert_file_body(r, content(name));
}

#[test]
fn hundred_requests_on_one_connection() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    for i in 0..100 {
        let name = CYCLE[i % CYCLE.len()];
        let r = c.get(&format!("/{name}"));
        assert_body_of(&r, name);
        assert_keeps_alive(&r);
        assert_eq!(r.header("Keep-Alive"), Some("timeout=10"));
    }
}

#[test]
fn twenty_pipelined_requests_are_answered_in_order() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let names: Vec<&str> = (0..20).map(|i| CYCLE[i % CYCLE.len()]).collect();
    let batch: String = names.iter().map(|n| get(&format!("/{n}"))).collect();
    c.send(batch);
    for name in names {
        let r = c.read_response(false);
        assert_body_of(&r, name);
        assert_keeps_alive(&r);
    }
    c.expect_open(Duration::from_millis(100));
}

#[test]
fn pipelined_mix_of_statuses_and_head_stays_in_sync() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let batch = [
        get("/hello.txt"),
        "HEAD /logo.png HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        get("/nope"),
        "DELETE /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        get("/sub"),
        get("/emptydir/"),
        format!("GET /data.json HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: {FIXTURE_LAST_MODIFIED}\r\n\r\n"),
        get("/data.json"),
    ]
    .concat();
    c.send(batch);
    assert_hello(&c.read_response(false));
    let head = c.read_response(true);
    assert_eq!(head.status_line, "HTTP/1.1 200 OK");
    assert_eq!(
        head.header("Content-Length"),
        Some(content("logo.png").len().to_string().as_str())
    );
    assert_eq!(c.read_response(false).body, content("404.html"));
    assert_error(&c.read_response(false), 405);
    assert_eq!(c.read_response(false).status, 301);
    assert_error(&c.read_response(false), 403);
    assert_eq!(
        c.read_response(false).status_line,
        "HTTP/1.1 304 Not Modified"
    );
    assert_body_of(&c.read_response(false), "data.json");
    c.expect_open(Duration::from_millis(100));
}

#[test]
fn pipelined_requests_after_connection_close_are_not_answered() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    c.send(
        [
            get("/hello.txt"),
            "GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned(),
            get("/data.json"),
        ]
        .concat(),
    );
    assert_hello(&c.read_response(false));
    let r = c.read_response(false);
    assert_body_of(&r, "style.css");
    assert_closes(&r);
    c.expect_closed();
}

#[test]
fn pipelined_requests_after_a_bad_request_are_not_answered() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    c.send(
        [
            get("/hello.txt"),
            "BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
            get("/data.json"),
        ]
        .concat(),
    );
    assert_hello(&c.read_response(false));
    let r = c.read_response(false);
    assert_error(&r, 501);
    assert_closes(&r);
    c.expect_closed();
}

#[test]
fn connection_close_request_gets_close_and_eof() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let r = c.roundtrip("GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_hello(&r);
    assert_closes(&r);
    c.expect_closed();
}

#[test]
fn half_closed_client_still_gets_the_whole_response() {
    let fixture = Fixture::new();
    let body = pseudo_random(1024 * 1024, 3);
    fixture.write("mib.bin", &body);
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    c.send(get("/mib.bin"));
    c.stream().shutdown(Shutdown::Write).unwrap();
    let r = c.read_response(false);
    assert_file_body(&r, &body);
    c.expect_closed();
}

#[test]
fn half_closed_client_gets_every_pipelined_response() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    c.send([get("/hello.txt"), get("/index.html"), get("/style.css")].concat());
    c.stream().shutdown(Shutdown::Write).unwrap();
    assert_hello(&c.read_response(false));
    assert_body_of(&c.read_response(false), "index.html");
    assert_body_of(&c.read_response(false), "style.css");
    c.expect_closed();
}

#[test]
fn http10_closes_by_default() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let r = c.roundtrip("GET /hello.txt HTTP/1.0\r\nHost: x\r\n\r\n");
    assert_hello(&r);
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_ne!(r.header("Connection"), Some("keep-alive"), "{r:?}");
    c.expect_closed();
}

#[test]
fn http10_keep_alive_is_honoured() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    for _ in 0..3 {
        let r = c.roundtrip("GET /hello.txt HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
        assert_hello(&r);
        assert_keeps_alive(&r);
    }
    let r = c.roundtrip("GET /hello.txt HTTP/1.0\r\nHost: x\r\n\r\n");
    assert_hello(&r);
    c.expect_closed();
}

#[test]
fn connection_header_tokens_are_case_insensitive() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let r = c.roundtrip("GET /hello.txt HTTP/1.1\r\nHost: x\r\nconnection: Close\r\n\r\n");
    assert_hello(&r);
    assert_closes(&r);
    c.expect_closed();
}

#[test]
fn keep_alive_header_shows_the_configured_timeout() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--keepalive-timeout", "3"]);
    let r = server.connect().get("/hello.txt");
    assert_keeps_alive(&r);
    assert_eq!(r.header("Keep-Alive"), Some("timeout=3"));
}

#[test]
fn idle_keep_alive_connection_is_closed_after_the_timeout() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--keepalive-timeout", "1"]);
    let mut c = server.connect();
    assert_hello(&c.get("/hello.txt"));
    let idle_since = Instant::now();
    let rest = c.read_until_closed();
    let idle = idle_since.elapsed();
    assert!(
        rest.is_empty(),
        "unexpected bytes: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(
        idle >= Duration::from_millis(500) && idle <= Duration::from_secs(3),
        "closed after {idle:?} of idleness with --keepalive-timeout 1"
    );
}

#[test]
fn active_connection_outlives_the_keep_alive_timeout() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--keepalive-timeout", "1"]);
    let mut c = server.connect();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        assert_hello(&c.get("/hello.txt"));
        thread::sleep(Duration::from_millis(300));
    }
}

/// Reads until the server closes; the server may first send a complete `408` response.
fn expect_408_or_plain_close(c: &mut Client) {
    let bytes = c.read_until_closed();
    if bytes.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "expected EOF or a 408, got {text:?}"
    );
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete 408 head");
    assert!(head.contains("\r\nServer: mioserve\r\n"), "{head:?}");
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length on the 408")
        .parse::<usize>()
        .unwrap();
    assert_eq!(body.len(), len, "408 body {body:?}");
}

#[test]
fn partial_request_head_is_closed_after_the_header_timeout() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--header-timeout", "1"]);
    let mut c = server.connect();
    c.send("GET /hello.txt HTTP/1.1\r\nHost: x\r\n");
    let start = Instant::now();
    expect_408_or_plain_close(&mut c);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited <= Duration::from_secs(3),
        "closed after {waited:?} with --header-timeout 1"
    );
}

#[test]
fn trickling_request_head_is_closed_after_the_header_timeout() {
    // A slowloris client: a byte every 200 ms never completes its head. The header timeout
    // bounds the whole head, not the gap between bytes.
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--header-timeout", "1"]);
    let mut c = server.connect();
    c.stream()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    c.send("GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    // The read timeout paces the loop: one byte per 200 ms.
    let mut probe = [0u8; 512];
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "trickling client still connected after {:?} with --header-timeout 1",
            start.elapsed()
        );
        // A write fails once the server has closed (EPIPE or ECONNRESET)...
        if c.stream().write_all(b"a").is_err() {
            break;
        }
        // ...and a read returns EOF, a reset, or the 408 once the close has arrived.
        match c.stream().read(&mut probe) {
            Err(e) if is_timeout(&e) => {}
            _ => break,
        }
    }
    assert!(
        start.elapsed() <= Duration::from_secs(3),
        "closed only after {:?}",
        start.elapsed()
    );
}

#[test]
fn silent_connection_is_closed_by_the_timeouts() {
    let fixture = Fixture::new();
    let server = TestServer::start(
        fixture.root(),
        &["--header-timeout", "1", "--keepalive-timeout", "1"],
    );
    let mut c = server.connect();
    let start = Instant::now();
    expect_408_or_plain_close(&mut c);
    assert!(
        start.elapsed() <= Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn hundred_concurrent_clients_get_exact_bodies() {
    let fixture = Fixture::new();
    let body = pseudo_random(256 * 1024 + 3, 11);
    fixture.write("quarter.bin", &body);
    let body = Arc::new(body);
    let server = TestServer::start(fixture.root(), &[]);
    let addr = server.addr();
    // Every client connects before any sends, so 100 connections are open at once.
    let barrier = Arc::new(Barrier::new(100));
    let clients: Vec<_> = (0..100)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            let body = Arc::clone(&body);
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                barrier.wait();
                for j in 0..5 {
                    let name = CYCLE[(i + j) % CYCLE.len()];
                    assert_body_of(&c.get(&format!("/{name}")), name);
                }
                let r = c.get("/quarter.bin");
                assert_file_body(&r, &body);
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client thread failed");
    }
}

#[test]
fn new_connections_are_served_while_another_is_mid_request() {
    // One client holding a half-sent head must not block anyone else (a worker that blocks
    // on one connection would stall here).
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--threads", "1"]);
    let mut stalled = server.connect();
    stalled.send("GET /hello.txt HTTP/1.1\r\nHo");
    for _ in 0..5 {
        assert_hello(&server.connect().get("/hello.txt"));
    }
    stalled.send("st: x\r\n\r\n");
    assert_hello(&stalled.read_response(false));
}

#[test]
fn client_that_stops_reading_is_dropped_after_the_send_timeout() {
    let fixture = Fixture::new();
    fixture.big();
    let server = TestServer::start(fixture.root(), &["--send-timeout", "1"]);
    let mut c = server.connect();
    c.send(get("/big.bin"));
    // 20 MiB is more than the socket buffers hold, so the server stalls and must give up.
    thread::sleep(Duration::from_secs(3));
    let received = c.read_until_closed();
    assert!(
        received.len() < BIG_LEN,
        "the whole body arrived although the client stalled past --send-timeout 1"
    );
    assert_hello(&server.connect().get("/hello.txt"));
}

#[test]
fn pipelined_batch_larger_than_the_head_limit_is_served() {
    // 300 small requests, about 15 KiB in one write: the 8 KiB limit is per request head,
    // not per read buffer.
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let batch: String = (0..300)
        .map(|i| format!("GET /hello.txt?i={i} HTTP/1.1\r\nHost: localhost\r\n\r\n"))
        .collect();
    assert!(batch.len() > 8192 + 4096);
    c.send(batch);
    for _ in 0..300 {
        assert_hello(&c.read_response(false));
    }
    c.expect_open(Duration::from_millis(100));
}

#[test]
fn a_request_body_is_never_parsed_as_the_next_request() {
    // A body the server does not want must be skipped or the connection closed; reading
    // it as a request line would desynchronise the connection (request smuggling).
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    for (first, code) in [
        (
            "POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            405,
        ),
        (
            "GET /style.css HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            200,
        ),
        (
            "GET /style.css HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            200,
        ),
    ] {
        let mut c = server.connect();
        c.send(format!("{first}{}", get("/hello.txt")));
        let r = c.read_response(false);
        assert_eq!(r.status_line, status_line(code), "{first:?}: {r:?}");
        if r.header("Connection") == Some("close") {
            c.expect_closed();
        } else {
            assert_hello(&c.read_response(false));
        }
    }
}
