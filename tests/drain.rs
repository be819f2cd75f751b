//! Health checks and draining (issue 13): `OPTIONS`, `--health-path`, and the phases of a
//! graceful stop: draining while still accepting (`--drain-delay`), then finishing what is in
//! flight (`--shutdown-timeout`), the Ctrl-C messages, and a second Ctrl-C.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// Sends `raw` and reads one response head (the `204` answer to `OPTIONS` has no body and
/// no `Content-Length`).
fn options(c: &mut Client, raw: &str) -> Response {
    c.send(raw);
    c.read_head()
}

#[test]
fn options_for_any_path_and_asterisk_is_204_with_allow() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    for target in ["/hello.txt", "/no-such-file", "/", "*"] {
        let r = options(
            &mut c,
            &format!("OPTIONS {target} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        );
        assert_eq!(r.status, 204, "{target}: {r:?}");
        assert_eq!(r.header("Allow"), Some("GET, HEAD, OPTIONS"), "{target}");
        assert_eq!(r.header("Content-Length"), None, "{target}: a 204 has none");
        assert_keeps_alive(&r);
    }
    // The same connection still serves files: nothing was left unread.
    assert_hello(&c.get("/hello.txt"));
    // The asterisk-form is for OPTIONS only (RFC 9112 §3.2.4).
    let r = c.roundtrip("GET * HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(r.status, 400, "{r:?}");
    assert_closes(&r);
}

#[test]
fn haproxy_default_check_gets_204() {
    // HAProxy's bare `option httpchk` sends exactly this.
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let r = options(&mut c, "OPTIONS / HTTP/1.0\r\n\r\n");
    assert_eq!(r.status_line, "HTTP/1.1 204 No Content");
    c.expect_closed();
}

/// The total `health_checks` counter served at `/_stats`.
fn health_checks(server: &TestServer) -> u64 {
    let json = server.connect().get("/_stats").body_text();
    let total = &json[json.find("\"total\"").expect("a total")..];
    let value = &total[total.find("\"health_checks\":").expect("the counter") + 16..];
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

#[test]
fn health_turns_503_on_sigterm_while_accepting_for_the_drain_delay() {
    let fixture = Fixture::new();
    let flags = [
        "--health-path",
        "/healthz",
        "--stats-path",
        "/_stats",
        "--drain-delay",
        "2",
        "--threads",
        "2",
    ];
    let mut server = TestServer::start(fixture.root(), &flags);
    let mut before = server.connect();
    let r = before.get("/healthz");
    assert_eq!((r.status, r.body_text().as_str()), (200, "ok\n"), "{r:?}");
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    assert_keeps_alive(&r);
    assert_hello(&before.get("/hello.txt"));
    assert_eq!(before.head("/healthz").status, 200);
    assert!(
        wait_until(Duration::from_secs(5), || health_checks(&server) == 2),
        "health checks are counted"
    );

    let signalled = Instant::now();
    term_and_wait_for_the_drain(&server);
    assert!(
        server
            .stderr()
            .contains("accepting for 2 s more, then up to 5 s (press Ctrl-C again to stop now)"),
        "{}",
        server.stderr()
    );
    // During the delay: new connections are accepted and served, the health check fails,
    // and every response closes its connection, old connections included.
    let mut during = server.connect();
    let r = during.get("/healthz");
    assert_eq!(
        (r.status, r.body_text().as_str()),
        (503, "draining\n"),
        "{r:?}"
    );
    assert_closes(&r);
    let r = server.connect().get("/hello.txt");
    assert_eq!(r.status, 200);
    assert_closes(&r);
    let r = before.get("/hello.txt");
    assert_eq!(r.status, 200);
    assert_closes(&r);
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "too slow to tell"
    );

    // After the delay: refused, then a clean exit.
    let status = server.wait_exit(EXIT_TIMEOUT);
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "stopped before the drain delay: {:?}",
        signalled.elapsed()
    );
    assert!(TcpStream::connect(server.addr()).is_err());
    let lines = server.log_lines();
    assert!(
        lines.iter().all(|line| !line.contains("/healthz")),
        "{lines:?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|line| line.contains("/hello.txt"))
            .count(),
        3,
        "{lines:?}"
    );
    assert!(
        server.stderr().contains("health checks"),
        "the final counters show them"
    );
}

#[test]
fn shutdown_timeout_bounds_a_stalled_download() {
    let fixture = Fixture::new();
    fixture.big();
    let mut server = TestServer::start(fixture.root(), &["--shutdown-timeout", "1"]);
    let mut c = server.connect();
    c.send(get("/big.bin"));
    let r = c.read_head();
    assert_eq!(r.status, 200);
    // Read nothing more: the response stays in flight until the timeout cuts it.
    let signalled = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(EXIT_TIMEOUT);
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let received = c.read_until_closed().len();
    assert!(received < BIG_LEN, "the cut response is incomplete");
    // The cut response is logged with the bytes actually sent.
    assert_eq!(server.log_lines().len(), 1, "{:?}", server.log_lines());
}

#[test]
fn a_second_ctrl_c_stops_at_once_and_keeps_the_log() {
    let fixture = Fixture::new();
    let mut server = TestServer::start(fixture.root(), &["--drain-delay", "30"]);
    let mut c = server.connect();
    for _ in 0..5 {
        assert_hello(&c.get("/hello.txt"));
    }
    server.signal("INT");
    assert!(
        wait_until(Duration::from_secs(1), || server.stderr().contains(
            "mioserve: draining 1 connection: accepting for 30 s more"
        )),
        "{}",
        server.stderr()
    );
    let signalled = Instant::now();
    server.signal("INT");
    let status = server.wait_exit(EXIT_TIMEOUT);
    assert!(signalled.elapsed() < Duration::from_secs(1));
    // 128 + SIGINT, as a shell reports a process stopped by Ctrl-C.
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(server.stderr().contains("mioserve: stopping now"));
    assert_eq!(server.log_lines().len(), 5, "no log line lost");
}

#[test]
fn a_request_sent_as_the_server_stops_is_answered_or_cleanly_refused_never_reset() {
    // Many idle keep-alive connections send their next request at the moment the server
    // stops accepting. Each must get its response, or an orderly close (FIN) it can retry
    // after; a reset would lose the request without telling whether it was processed.
    const CLIENTS: usize = 64;
    let mut resets = 0;
    let mut answered = 0;
    for _round in 0..5 {
        let fixture = Fixture::new();
        let mut server = TestServer::start(fixture.root(), &["--threads", "1"]);
        let start = Arc::new(Barrier::new(CLIENTS + 1));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let mut c = server.connect();
                assert_hello(&c.get("/hello.txt"));
                let start = Arc::clone(&start);
                thread::spawn(move || {
                    let mut stream = c.stream().try_clone().unwrap();
                    start.wait();
                    // Spread the requests over the ~10 ms in which the signal arrives
                    // (`kill` is a process of its own), so some land while the worker is
                    // busy stopping.
                    thread::sleep(Duration::from_micros(150) * i as u32);
                    let sent = stream.write_all(get("/hello.txt").as_bytes());
                    let mut received = Vec::new();
                    let read = stream.read_to_end(&mut received);
                    let reset = [sent.err(), read.err()]
                        .into_iter()
                        .flatten()
                        .any(|e| e.kind() == ErrorKind::ConnectionReset);
                    (reset, !received.is_empty())
                })
            })
            .collect();
        start.wait();
        server.signal("TERM");
        for client in clients {
            let (reset, got_response) = client.join().unwrap();
            resets += usize::from(reset);
            answered += usize::from(got_response);
        }
        assert!(server.wait_exit(EXIT_TIMEOUT).success());
    }
    assert_eq!(
        resets,
        0,
        "resets out of {} requests ({answered} answered)",
        5 * CLIENTS
    );
}

/// Starts `big.bin` on a keep-alive connection (its head promises keep-alive), sends
/// SIGTERM while the body is still on its way, then reads the whole body: the response
/// ends after the drain began.
fn download_across_the_drain(fixture: &Fixture, flags: &[&str]) -> (TestServer, Client) {
    let body = fixture.big();
    let server = TestServer::start(fixture.root(), flags);
    let mut c = server.connect();
    c.send(get("/big.bin"));
    let r = c.read_head();
    assert_eq!(r.status, 200);
    assert_keeps_alive(&r);
    term_and_wait_for_the_drain(&server);
    assert_eq!(c.read_body_bytes(body.len()), body);
    (server, c)
}

/// A download whose head promised keep-alive before `SIGTERM`, read to its end after it:
/// the same connection must answer the next request (with `Connection: close`), not reset
/// it. `flags` choose whether the download ends while still accepting or after the stop.
fn keep_alive_promised_before_the_drain_is_kept(flags: &[&str]) {
    let fixture = Fixture::new();
    let (mut server, mut c) = download_across_the_drain(&fixture, flags);
    let r = c.get("/hello.txt");
    assert_hello(&r);
    assert_closes(&r);
    assert!(server.wait_exit(EXIT_TIMEOUT).success());
}

#[test]
fn a_response_that_promised_keep_alive_before_the_drain_answers_the_next_request() {
    keep_alive_promised_before_the_drain_is_kept(&["--drain-delay", "3"]);
}

#[test]
fn a_response_that_promised_keep_alive_and_ends_after_the_stop_answers_the_next_request() {
    keep_alive_promised_before_the_drain_is_kept(&["--shutdown-timeout", "5"]);
}

#[test]
fn a_connection_idle_after_a_download_that_ended_after_the_stop_gets_the_idle_grace() {
    let fixture = Fixture::new();
    let (mut server, mut c) = download_across_the_drain(&fixture, &["--shutdown-timeout", "8"]);
    // No next request: the grace (a second) ends in our FIN, long before the keep-alive
    // timeout (10 s) or the shutdown timeout (8 s) would.
    let finished = Instant::now();
    c.expect_closed();
    assert!(
        finished.elapsed() < Duration::from_secs(3),
        "{:?}",
        finished.elapsed()
    );
    drop(c);
    assert!(server.wait_exit(EXIT_TIMEOUT).success());
}

#[test]
fn connections_queued_past_the_cap_are_answered_when_accepting_stops_not_reset() {
    // One worker holding its one connection; a second client waits, fully connected, in
    // the listener's queue with its request sent. Closing the listener would reset it:
    // stopping accepts it anyway, past the cap, and answers it with `Connection: close`.
    let fixture = Fixture::new();
    let mut server = TestServer::start(
        fixture.root(),
        &["--threads", "1", "--max-connections", "1"],
    );
    let mut held = server.connect();
    assert_hello(&held.get("/hello.txt"));
    let mut queued = server.connect();
    queued.send(get("/hello.txt"));
    queued.expect_open(Duration::from_millis(300));
    server.signal("TERM");
    let r = queued.read_response(false);
    assert_hello(&r);
    assert_closes(&r);
    drop(held);
    assert!(server.wait_exit(EXIT_TIMEOUT).success());
}

/// Sends SIGTERM and waits (at most a second) for the drain's announcement on stderr.
fn term_and_wait_for_the_drain(server: &TestServer) {
    server.signal("TERM");
    assert!(
        wait_until(Duration::from_secs(1), || server
            .stderr()
            .contains("draining")),
        "{}",
        server.stderr()
    );
}
