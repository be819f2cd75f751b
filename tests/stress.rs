//! The access log under load and under failure: 100,000 requests from 200 concurrent
//! keep-alive connections leave exactly 100,000 well-formed lines, one per request, none
//! lost or repeated; and a log that cannot be written (`/dev/full`) costs nothing but a
//! single report on stderr while requests go on being served.

mod support;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const CONNECTIONS: usize = 200;
const REQUESTS_PER_CONNECTION: usize = 500;
const REQUESTS: usize = CONNECTIONS * REQUESTS_PER_CONNECTION;

#[test]
fn hundred_thousand_requests_leave_exactly_one_log_line_each() {
    mioserve::sys::raise_open_files_limit().expect("raise the open-files limit");
    let fixture = Fixture::new();
    let mut server = TestServer::start(fixture.root(), &[]);
    let addr = server.addr();
    let start = Instant::now();
    // All connections are open before any sends, so all 200 are concurrent.
    let barrier = Arc::new(Barrier::new(CONNECTIONS));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|connection| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                barrier.wait();
                for i in 0..REQUESTS_PER_CONNECTION {
                    // A unique query per request: a lost or duplicated line shows up.
                    let n = connection * REQUESTS_PER_CONNECTION + i;
                    let r = c.get(&format!("/index.html?n={n}"));
                    assert_eq!(r.status, 200, "request {n}: {r:?}");
                    assert_eq!(r.body, content("index.html"), "request {n}");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client thread failed");
    }
    let served = start.elapsed();
    let status = server.stop();
    assert!(status.success(), "exit status {status:?} after SIGTERM");

    let lines = server.log_lines();
    assert_eq!(
        lines.len(),
        REQUESTS,
        "log lines after {REQUESTS} requests (served in {served:?})"
    );
    let body_len = content("index.html").len() as u64;
    let mut seen = vec![false; REQUESTS];
    for line in &lines {
        let entry = parse_access_line(line);
        assert_eq!(entry.client, "127.0.0.1", "{line:?}");
        assert_eq!((entry.status, entry.bytes), (200, body_len), "{line:?}");
        let n: usize = entry
            .request_line
            .strip_prefix("GET /index.html?n=")
            .and_then(|rest| rest.strip_suffix(" HTTP/1.1"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected request line in {line:?}"));
        assert!(n < REQUESTS, "{line:?}");
        assert!(!seen[n], "request {n} logged twice");
        seen[n] = true;
    }
    let missing = seen.iter().filter(|&&logged| !logged).count();
    assert_eq!(missing, 0, "requests without a log line");
}

#[test]
fn unwritable_log_is_reported_once_and_serving_goes_on() {
    let fixture = Fixture::new();
    let mut server = TestServer::start(fixture.root(), &["--log", "/dev/full"]);
    let addr = server.addr();
    // A new connection per request, so the requests reach every worker.
    let batch = || {
        for _ in 0..50 {
            assert_hello(&Client::connect(addr).get("/hello.txt"));
        }
    };
    batch();
    // Past the one-second flush: every worker has now failed to write its lines.
    thread::sleep(Duration::from_millis(1500));
    batch();
    assert!(server.stop().success());
    let stderr = server.stderr();
    let reports: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("cannot write the access log"))
        .collect();
    assert_eq!(
        reports.len(),
        1,
        "expected one report of the failing access log on stderr: {stderr:?}"
    );
}
