//! Reading the server's access log: one parsed line, and waiting until the workers have
//! flushed the lines a test expects.

use std::time::Duration;

use super::server::{TestServer, wait_until};

/// One access-log line,
/// `127.0.0.1 - - [18/Apr/2023:08:32:14 +0000] "GET /index.html HTTP/1.1" 200 1234`.
#[derive(Debug)]
pub struct AccessLine {
    pub client: String,
    /// Between the brackets: `18/Apr/2023:08:32:14 +0000`.
    pub stamp: String,
    /// Between the quotes, as logged.
    pub request_line: String,
    pub status: u16,
    /// Body bytes the server reports having sent.
    pub bytes: u64,
}

/// Parses one access-log line, panicking (with the line) on any deviation from the Common
/// Log Format shape. The timestamp's shape is checked, not its value.
pub fn parse_access_line(line: &str) -> AccessLine {
    let bad = |why: &str| -> ! { panic!("malformed access-log line ({why}): {line:?}") };
    let (client, rest) = line
        .split_once(" - - [")
        .unwrap_or_else(|| bad("no ` - - [`"));
    if client.parse::<std::net::IpAddr>().is_err() {
        bad("client is not an IP address");
    }
    let (stamp, rest) = rest.split_once("] \"").unwrap_or_else(|| bad("no `] \"`"));
    // dd/Mon/yyyy:hh:mm:ss +0000
    let shape_ok = stamp.len() == 26
        && stamp.ends_with(" +0000")
        && stamp.bytes().enumerate().all(|(i, b)| match i {
            2 | 6 => b == b'/',
            11 | 14 | 17 => b == b':',
            3..=5 => b.is_ascii_alphabetic(),
            20.. => true,
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        bad("timestamp");
    }
    let (request_line, rest) = rest
        .rsplit_once("\" ")
        .unwrap_or_else(|| bad("no closing quote"));
    let mut fields = rest.split(' ');
    let status = fields
        .next()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| bad("status"));
    let bytes = fields
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| bad("bytes"));
    if fields.next().is_some() {
        bad("trailing fields");
    }
    AccessLine {
        client: client.to_owned(),
        stamp: stamp.to_owned(),
        request_line: request_line.to_owned(),
        status,
        bytes,
    }
}

/// How long a test waits for lines to reach the access log: workers append their buffered
/// lines once a second, so this is several flushes even on a busy machine.
pub const LOG_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

impl TestServer {
    /// The access log, parsed, as soon as `ready` holds for it, or as it is after
    /// [`LOG_FLUSH_TIMEOUT`] (the caller's assertions then say what is missing).
    pub fn wait_for_log(&self, ready: impl Fn(&[AccessLine]) -> bool) -> Vec<AccessLine> {
        let parsed = || -> Vec<AccessLine> {
            self.log_lines()
                .iter()
                .map(|l| parse_access_line(l))
                .collect()
        };
        wait_until(LOG_FLUSH_TIMEOUT, || ready(&parsed()));
        parsed()
    }
}

/// Whether `lines` has one for `request_line` (as logged, e.g. `GET / HTTP/1.1`) with
/// `status`.
pub fn has_log_line(lines: &[AccessLine], request_line: &str, status: u16) -> bool {
    lines
        .iter()
        .any(|l| l.request_line == request_line && l.status == status)
}

/// `items`, sorted: for comparing the log lines of several connections, whose order in
/// the log depends on which worker served each (every worker appends its own buffer).
pub fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}
