//! The connection cap (`--max-connections`, or its default from the open-files limit) and
//! running out of descriptors: connections beyond the cap wait in the kernel's accept
//! queue and are taken the moment a slot frees, whatever freed it (a timeout included);
//! the default cap lets ten thousand idle keep-alive clients in under a 20,000 limit; a
//! file that cannot be opened for want of descriptors gets `503` with `Retry-After`, on a
//! connection that stays usable.
//!
//! Timing bounds are loose (the machine is small and shared): each one separates "at once"
//! from "whenever something unrelated wakes the worker", or from "never".

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// How long a test client waits for anything before giving up: longer than every wait the
/// server is expected to impose here.
const PATIENCE: Duration = Duration::from_secs(10);

/// Connects and returns the connection with `PATIENCE` as its read timeout.
fn connect_patiently(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Reads until the server closes `stream` (or resets it) and returns when that happened
/// and what was received; panics if it stays open for `PATIENCE`.
fn wait_for_close(mut stream: TcpStream) -> (Instant, Vec<u8>) {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return (Instant::now(), received),
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (Instant::now(), received),
            Err(e) => panic!(
                "the server neither answered nor closed within {PATIENCE:?} ({e}); received {:?}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
}

/// Issue 12, item 5. `threads` workers share a cap of ten connections; ten silent clients
/// fill it and five clients that sent a request wait in the accept queues. The header
/// timeout closes the silent ones; no new client arrives after that, and the listeners,
/// being edge-triggered, report nothing new. Every waiting request must still be answered
/// as soon as the slots free, in every worker, not whenever something unrelated next
/// wakes the loop (or never).
fn queued_clients_are_served_when_timeouts_free_slots(threads: &str) {
    let fixture = Fixture::new();
    let server = TestServer::start(
        fixture.root(),
        &[
            "--threads",
            threads,
            "--max-connections",
            "10",
            "--header-timeout",
            "1",
        ],
    );
    let addr = server.addr();
    let silent: Vec<TcpStream> = (0..10).map(|_| connect_patiently(addr)).collect();
    let waiting: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut stream = connect_patiently(addr);
            stream.write_all(get("/hello.txt").as_bytes()).unwrap();
            stream
        })
        .collect();
    let start = Instant::now();
    let silent = silent
        .into_iter()
        .map(|stream| thread::spawn(move || wait_for_close(stream).0));
    let waiting: Vec<_> = waiting
        .into_iter()
        .map(|mut stream| {
            thread::spawn(move || {
                let mut head = [0u8; 17];
                stream.read_exact(&mut head).unwrap_or_else(|e| {
                    panic!("no answer to a queued request within {PATIENCE:?}: {e}")
                });
                assert_eq!(&head, b"HTTP/1.1 200 OK\r\n");
                Instant::now()
            })
        })
        .collect();
    let last_silent_closed = silent
        .map(|handle| handle.join().expect("a silent client failed"))
        .max()
        .expect("ten silent clients");
    for handle in waiting {
        let answered = handle.join().expect("a queued client failed");
        let late = answered.saturating_duration_since(last_silent_closed);
        assert!(
            late < Duration::from_millis(500),
            "a queued request was answered {late:?} after the last silent client was closed \
             ({:?} after the start)",
            answered - start
        );
    }
}

#[test]
fn queued_clients_are_served_when_timeouts_free_slots_one_worker() {
    queued_clients_are_served_when_timeouts_free_slots("1");
}

#[test]
fn queued_clients_are_served_when_timeouts_free_slots_in_every_worker() {
    queued_clients_are_served_when_timeouts_free_slots("2");
}

/// The open-files limit the C10K test runs the server under, as in issue 12.
const C10K_OPEN_FILES: u32 = 20_000;

/// Idle keep-alive clients in the C10K test.
const C10K_CLIENTS: usize = 10_000;

/// This process's hard open-files limit, from `/proc/self/limits`.
fn hard_open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read /proc/self/limits");
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("a `Max open files` line");
    let hard = line.split_whitespace().nth(4).expect("a hard limit");
    hard.parse().unwrap_or(u64::MAX)
}

/// Raises this test process's soft open-files limit to `limit` with `prlimit(1)` (the
/// tests hold no `unsafe` for `setrlimit`): it needs a descriptor per client.
fn raise_own_open_files_limit(limit: u64) {
    let status = Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit --nofile={limit} failed");
}

/// Issue 12, item 6. Under an open-files limit of 20,000 and with default flags, ten
/// thousand keep-alive clients all get in and are served, and are all held at once: each
/// is answered a second time after the last one connected. (The old default, half the
/// limit split over the workers, left hundreds of them waiting in an accept queue.)
#[test]
fn ten_thousand_idle_keep_alive_clients_fit_under_the_default_cap() {
    let hard = hard_open_files_limit();
    assert!(
        hard >= u64::from(C10K_OPEN_FILES),
        "this test needs a hard open-files limit of at least {C10K_OPEN_FILES} \
         (`ulimit -Hn` is {hard})"
    );
    raise_own_open_files_limit(hard);
    let fixture = Fixture::new();
    let server = TestServer::start_with_open_files_limit(fixture.root(), C10K_OPEN_FILES, &[]);
    let start = Instant::now();
    let mut clients: Vec<Client> = (0..C10K_CLIENTS)
        .map(|_| {
            let mut c = server.connect();
            assert_hello(&c.get("/hello.txt"));
            c
        })
        .collect();
    let connected = start.elapsed();
    for c in &mut clients {
        c.send(get("/hello.txt"));
    }
    for c in &mut clients {
        let r = c.read_response(false);
        assert_hello(&r);
        assert_keeps_alive(&r);
    }
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{C10K_CLIENTS} clients took {connected:?} to connect and {:?} in all",
        start.elapsed()
    );
}

/// The number in `"NAME":N` in a counters JSON document.
fn json_counter(json: &str, name: &str) -> u64 {
    let key = format!("\"{name}\":");
    let at = json
        .rfind(&key)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + key.len();
    let digits: String = json[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {key} in {json}"))
}

/// Issue 12, item 6, the other half: a server out of descriptors (idle connections took
/// them all) cannot open a file that is not cached. That request gets `503` with
/// `Retry-After: 1` on a connection that stays open, the answer is counted, and once
/// descriptors come back the same connection is served normally.
#[test]
fn a_file_that_cannot_be_opened_for_want_of_descriptors_gets_503_and_retry_after() {
    let fixture = Fixture::new();
    let server = TestServer::start_with_open_files_limit(
        fixture.root(),
        40,
        &[
            "--threads",
            "1",
            "--max-connections",
            "1000",
            "--stats-path",
            "/_stats",
        ],
    );
    let addr = server.addr();
    let mut client = server.connect();
    assert_hello(&client.get("/hello.txt"));
    // Idle connections until accepting fails for want of descriptors: none is left.
    let idle: Vec<Client> = (0..60).map(|_| Client::connect(addr)).collect();
    assert!(
        wait_until(Duration::from_secs(5), || server
            .stderr()
            .contains("accept failed")),
        "no `accept failed` report with 60 idle connections and 40 descriptors; stderr: {:?}",
        server.stderr()
    );

    let r = client.get("/style.css");
    assert_error(&r, 503);
    assert_eq!(r.header("Retry-After"), Some("1"), "{r:?}");
    assert_keeps_alive(&r);
    let counted = wait_until(Duration::from_secs(3), || {
        json_counter(&client.get("/_stats").body_text(), "unavailable") >= 1
    });
    assert!(counted, "the 503 is not counted as `unavailable`");

    // The idle connections go (those still queued are accepted, see EOF and are closed
    // too): descriptors are back, and the same connection gets the file.
    drop(idle);
    let mut last = None;
    let served = wait_until(Duration::from_secs(3), || {
        let r = client.get("/style.css");
        let ok = r.status == 200;
        last = Some(r);
        ok
    });
    let r = last.expect("at least one try");
    assert!(served, "still no file once descriptors were back: {r:?}");
    assert_file_body(&r, content("style.css"));
    assert_keeps_alive(&r);
}
