//! The teaching views: `--trace` at each level, the counters printed on
//! SIGUSR1 and at shutdown, and the JSON counters at `--stats-path`.

mod support;

use std::thread::sleep;
use std::time::Duration;

use support::*;

/// Starts a one-worker server with `extra` flags, makes two requests on one
/// connection (a 200 and a 404), stops it, and returns its stderr.
fn two_requests_then_stderr(extra: &[&str]) -> String {
    let fixture = Fixture::new();
    let mut args = vec!["--threads", "1"];
    args.extend_from_slice(extra);
    let mut server = TestServer::start(fixture.root(), &args);
    let mut client = server.connect();
    assert_eq!(client.get("/hello.txt").status, 200);
    assert_eq!(client.get("/missing").status, 404);
    drop(client);
    assert!(server.stop().success());
    server.stderr()
}

/// Whether `line` is a trace line: `<seconds with 6 decimals> w<worker> …`.
fn is_trace_line(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let time_ok = words.next().is_some_and(|t| {
        t.split_once('.').is_some_and(|(s, f)| {
            s.parse::<u64>().is_ok() && f.len() == 6 && f.parse::<u32>().is_ok()
        })
    });
    time_ok && words.next() == Some("w0")
}

fn trace_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| is_trace_line(l)).collect()
}

#[test]
fn trace_events_shows_readiness_syscalls_transitions_and_requests() {
    let stderr = two_requests_then_stderr(&["--trace=events"]);
    let lines = trace_lines(&stderr);
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(has(" w0  accept #0 from 127.0.0.1:"), "{stderr}");
    assert!(has(" w0 #0 t0  event readable"), "{stderr}");
    assert!(has(" w0 #0 t0  Idle -> ReadingRequest"), "{stderr}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" read ") && l.contains(" of 8192 bytes")),
        "{stderr}"
    );
    assert!(has("request GET /hello.txt HTTP/1.1 -> 200"), "{stderr}");
    assert!(has("request GET /missing HTTP/1.1 -> 404"), "{stderr}");
    assert!(has(" ReadingRequest -> WritingResponse"), "{stderr}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" send ") && l.contains(" bytes")),
        "{stderr}"
    );
    assert!(has(" WritingResponse -> Idle"), "{stderr}");
    assert!(has(" read EOF"), "{stderr}");
    assert!(has(" ReadingRequest -> closed"), "{stderr}");
    // Times never go backwards.
    let times: Vec<f64> = lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{stderr}");
}

#[test]
fn trace_levels_add_up() {
    let requests = two_requests_then_stderr(&["--trace=requests"]);
    let lines = trace_lines(&requests);
    assert_eq!(lines.len(), 2, "one line per request: {requests}");
    assert!(
        lines[0].ends_with("request GET /hello.txt HTTP/1.1 -> 200"),
        "{requests}"
    );
    assert!(
        lines[1].ends_with("request GET /missing HTTP/1.1 -> 404"),
        "{requests}"
    );

    // `--trace` alone means `states`: transitions and heads, no syscalls.
    let states = two_requests_then_stderr(&["--trace"]);
    let lines = trace_lines(&states);
    assert!(
        lines.iter().any(|l| l.ends_with("Idle -> ReadingRequest")),
        "{states}"
    );
    assert!(
        lines.iter().any(|l| l.contains("head  Host: localhost")),
        "{states}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains(" event ") || l.contains(" read ")),
        "{states}"
    );

    let off = two_requests_then_stderr(&[]);
    assert!(trace_lines(&off).is_empty(), "{off}");
}

/// The `total` row of the last counters table in `stderr`, as numbers:
/// accepted, open, requests, bytes sent, 1xx…5xx, timeouts, accept pauses.
fn last_total_row(stderr: &str, heading: &str) -> Vec<u64> {
    let table = stderr.rsplit(heading).next().expect("a counters table");
    let total = table
        .lines()
        .find(|l| l.trim_start().starts_with("total"))
        .unwrap_or_else(|| panic!("no total row: {stderr}"));
    total
        .split_whitespace()
        .skip(1)
        .filter_map(|word| word.parse().ok())
        .collect()
}

#[test]
fn counters_are_printed_on_sigusr1_and_at_shutdown() {
    let fixture = Fixture::new();
    let mut server = TestServer::start(fixture.root(), &["--threads", "2"]);
    let mut client = server.connect();
    for _ in 0..5 {
        assert_eq!(client.get("/hello.txt").status, 200);
    }
    assert_eq!(client.get("/missing").status, 404);
    assert_eq!(client.get("/sub").status, 301);
    server.signal("USR1");
    let printed = wait_until(Duration::from_secs(5), || {
        let stderr = server.stderr();
        stderr
            .split_once("mioserve: counters")
            .is_some_and(|(_, table)| table.lines().any(|l| l.trim_start().starts_with("total")))
    });
    assert!(printed, "no counters on SIGUSR1: {}", server.stderr());
    let total = last_total_row(&server.stderr(), "mioserve: counters");
    // accepted 1, open 1 (idle keep-alive), requests 7, …, 1xx…5xx = 0 5 1 1 0.
    assert_eq!(total[0], 1, "{total:?}");
    assert_eq!(total[1], 1, "{total:?}");
    assert_eq!(total[2], 7, "{total:?}");
    assert_eq!(&total[4..9], &[0, 5, 1, 1, 0], "{total:?}");
    drop(client);
    assert!(server.stop().success());
    let total = last_total_row(&server.stderr(), "mioserve: final counters");
    assert_eq!(total[2], 7, "{total:?}");
    assert_eq!(total[1], 0, "nothing open after shutdown: {total:?}");
}

#[test]
fn stats_path_serves_json_and_stays_out_of_the_access_log() {
    let fixture = Fixture::new();
    let mut server = TestServer::start(
        fixture.root(),
        &["--threads", "1", "--stats-path", "/_stats"],
    );
    let mut client = server.connect();
    for _ in 0..3 {
        assert_eq!(client.get("/hello.txt").status, 200);
    }
    // Workers publish their counters at most once a second.
    sleep(Duration::from_millis(1_300));
    let stats = client.get("/_stats");
    assert_eq!(stats.status, 200);
    assert_eq!(stats.header("Content-Type"), Some("application/json"));
    let json = stats.body_text();
    assert!(json.contains("\"total\":{\"accepted\":1,"), "{json}");
    assert!(json.contains("\"requests\":3,"), "{json}");
    assert!(json.contains("\"2xx\":3,"), "{json}");
    drop(client);
    assert!(server.stop().success());
    let lines = server.log_lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|l| !l.contains("/_stats")), "{lines:?}");
}
