//! The access log: one Common Log Format line per request, exact field values, flushing
//! while running and on SIGTERM, standard output by default (banner on stderr, lines
//! written at once to a pipe), `--log PATH`, `--no-log`, and the log never served from the
//! root, whatever leads to it. Reopening on SIGHUP is in tests/log_rotation.rs.

mod support;

use std::collections::HashSet;
use std::fs;
use std::sync::Arc;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::*;

/// One parsed access-log line,
/// `127.0.0.1 - - [18/Apr/2023:08:32:14 +0000] "GET /index.html HTTP/1.1" 200 1234`.
#[derive(Debug)]
struct LogLine {
    client: String,
    /// Seconds since the epoch, from the bracketed UTC timestamp.
    time: u64,
    request_line: String,
    status: u16,
    bytes: u64,
}

impl LogLine {
    /// Everything except the timestamp, for exact comparisons.
    fn without_time(&self) -> String {
        format!(
            "{} \"{}\" {} {}",
            self.client, self.request_line, self.status, self.bytes
        )
    }
}

/// Parses one line, panicking (with the line) on any deviation from the format
/// ([`parse_access_line`] checks the shape; the timestamp is read here).
fn parse_clf(line: &str) -> LogLine {
    let parsed = parse_access_line(line);
    let time = parse_clf_time(&parsed.stamp)
        .unwrap_or_else(|| panic!("malformed access-log line (timestamp): {line:?}"));
    LogLine {
        client: parsed.client,
        time,
        request_line: parsed.request_line,
        status: parsed.status,
        bytes: parsed.bytes,
    }
}

/// log is in UTC.
fn parse_clf_time(stamp: &str) -> Option<u64> {
    let b = stamp.as_bytes();
    if b.len() != 26 || &stamp[20..] != " +0000" || b[2] != b'/' || b[6] != b'/' {
        return None;
    }
    if b[11] != b':' || b[14] != b':' || b[17] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let s = &stamp[r];
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == &stamp[3..6])? as u64 + 1;
    let (day, year) = (num(0..2)?, num(7..11)?);
    let (h, m, s) = (num(12..14)?, num(15..17)?, num(18..20)?);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn clf_time_parser_agrees_with_a_known_date() {
    // The parser the other tests rely on, checked against the spec's example.
    assert_eq!(
        parse_clf_time("18/Apr/2023:08:32:14 +0000"),
        Some(FIXTURE_MTIME_SECS)
    );
    assert_eq!(parse_clf_time("18/Apr/2023:08:32:14 +0100"), None);
    assert_eq!(parse_clf_time("18/Foo/2023:08:32:14 +0000"), None);
}

#[test]
fn two_thousand_requests_give_two_thousand_lines_after_sigterm() {
    const CLIENTS: usize = 50;
    const PER_CLIENT: usize = 40;
    let fixture = Fixture::new();
    let mut server = TestServer::start(fixture.root(), &[]);
    let addr = server.addr();
    let not_found_len = content("404.html").len();
    let hello_len = content("hello.txt").len();

    // Each request line is unique (client and index in the query), so the log must hold
    // exactly this set: no line lost, none duplicated, none altered.
    let mut expected = HashSet::new();
    let mut plans = Vec::new();
    for client in 0..CLIENTS {
        let mut plan = Vec::new();
        for i in 0..PER_CLIENT {
            let (method, path, status, bytes) = match i % 10 {
                3 => ("GET", "/missing.txt", 404, not_found_len),
                7 => ("HEAD", "/hello.txt", 200, 0),
                _ => ("GET", "/hello.txt", 200, hello_len),
            };
            let target = format!("{path}?c={client}&i={i}");
            expected.insert(format!(
                "127.0.0.1 \"{method} {target} HTTP/1.1\" {status} {bytes}"
            ));
            plan.push((method, target, status));
        }
        plans.push(plan);
    }
    assert_eq!(expected.len(), CLIENTS * PER_CLIENT);

    let barrier = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = plans
        .into_iter()
        .map(|plan| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                barrier.wait();
                for (method, target, status) in plan {
                    let r = c.roundtrip(&format!(
                        "{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n"
                    ));
                    assert_eq!(r.status, status, "{method} {target}: {r:?}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client thread failed");
    }

    let started = now_secs();
    let status = server.stop();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let lines = server.log_lines();
    assert_eq!(lines.len(), CLIENTS * PER_CLIENT, "number of log lines");
    let mut seen = HashSet::new();
    for line in &lines {
        let entry = parse_clf(line);
        assert!(
            entry.time.abs_diff(started) <= 60,
            "timestamp far from now in {line:?}"
        );
        let key = entry.without_time();
        assert!(expected.contains(&key), "unexpected log line {line:?}");
        assert!(seen.insert(key), "duplicate log line {line:?}");
    }
}

#[test]
fn not_found_and_head_lines_are_exact() {
    let fixture = Fixture::new();
    let mut server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let before = now_secs();
    assert_eq!(c.get("/nope.html").status, 404);
    assert_eq!(c.head("/hello.txt").status, 200);
    let after = now_secs();
    assert!(server.stop().success());

    let lines = server.log_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let expected = [
        format!(
            "127.0.0.1 \"GET /nope.html HTTP/1.1\" 404 {}",
            content("404.html").len()
        ),
        "127.0.0.1 \"HEAD /hello.txt HTTP/1.1\" 200 0".to_owned(),
    ];
    for (line, expected) in lines.iter().zip(&expected) {
        let entry = parse_clf(line);
        assert_eq!(&entry.without_time(), expected, "{line:?}");
        assert!(
            (before..=after + 1).contains(&entry.time),
            "timestamp not the time of the request in {line:?}"
        );
        // Nothing but the fields themselves: exactly one space between them.
        let rebuilt = format!(
            "127.0.0.1 - - [{}] \"{}\" {} {}",
            &line[line.find('[').unwrap() + 1..line.find(']').unwrap()],
            entry.request_line,
            entry.status,
            entry.bytes
        );
        assert_eq!(line, &rebuilt);
    }
}

#[test]
fn request_line_is_logged_as_sent() {
    let fixture = Fixture::new();
    let mut server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    assert_eq!(c.get("/hello%20world.txt?q=a%20b&x").status, 200);
    let r = c.roundtrip(&format!(
        "GET /style.css HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: {FIXTURE_LAST_MODIFIED}\r\n\r\n"
    ));
    assert_eq!(r.status, 304);
    assert_eq!(c.get("/sub").status, 301);
    let mut old = server.connect();
    assert_eq!(old.roundtrip("GET /hello.txt HTTP/1.0\r\n\r\n").status, 200);
    assert!(server.stop().success());

    // Lines of one connection are in order; the two connections may be served by
    // different workers with their own log buffers, so their lines may interleave.
    let (old_lines, entries): (Vec<LogLine>, Vec<LogLine>) = server
        .log_lines()
        .iter()
        .map(|l| parse_clf(l))
        .partition(|e| e.request_line.ends_with("HTTP/1.0"));
    let got: Vec<String> = entries.iter().map(LogLine::without_time).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got[0],
        format!(
            "127.0.0.1 \"GET /hello%20world.txt?q=a%20b&x HTTP/1.1\" 200 {}",
            content("hello world.txt").len()
        )
    );
    assert_eq!(got[1], "127.0.0.1 \"GET /style.css HTTP/1.1\" 304 0");
    assert_eq!(entries[2].request_line, "GET /sub HTTP/1.1");
    assert_eq!(entries[2].status, 301);
    let old_lines: Vec<String> = old_lines.iter().map(LogLine::without_time).collect();
    assert_eq!(
        old_lines,
        [format!(
            "127.0.0.1 \"GET /hello.txt HTTP/1.0\" 200 {}",
            content("hello.txt").len()
        )]
    );
}

#[test]
fn log_is_flushed_while_the_server_runs() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    assert_hello(&server.connect().get("/hello.txt"));
    let start = Instant::now();
    let lines = loop {
        let lines = server.log_lines();
        if !lines.is_empty() || start.elapsed() > Duration::from_secs(3) {
            break lines;
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(lines.len(), 1, "log after {:?}: {lines:?}", start.elapsed());
    assert_eq!(
        parse_clf(&lines[0]).without_time(),
        format!(
            "127.0.0.1 \"GET /hello.txt HTTP/1.1\" 200 {}",
            content("hello.txt").len()
        )
    );
}

#[test]
fn log_dash_writes_lines_to_stdout() {
    let fixture = Fixture::new();
    let mut server = TestServer::start(fixture.root(), &["--log", "-"]);
    assert_hello(&server.connect().get("/hello.txt"));
    let line = server
        .stdout_line(Duration::from_secs(3))
        .expect("an access-log line on stdout within 3 s");
    assert_eq!(
        parse_clf(&line).without_time(),
        format!(
            "127.0.0.1 \"GET /hello.txt HTTP/1.1\" 200 {}",
            content("hello.txt").len()
        )
    );
    assert!(server.stop().success());
    assert_eq!(server.stdout_line(Duration::from_millis(200)), None);
    // No file appears either.
    assert_eq!(fs::read_dir(server.workdir()).unwrap().count(), 0);
}

/// Names of the entries in `dir`, sorted.
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn no_log_creates_no_file() {
    let fixture = Fixture::new();
    let root_before = listing(fixture.root());
    let mut server = TestServer::start(fixture.root(), &["--no-log"]);
    assert_hello(&server.connect().get("/hello.txt"));
    assert!(server.stop().success());
    assert_eq!(listing(server.workdir()), Vec::<String>::new());
    assert_eq!(listing(fixture.root()), root_before);
    assert_eq!(server.stdout_line(Duration::from_millis(200)), None);
}

#[test]
fn by_default_lines_go_to_stdout_and_the_banner_to_stderr() {
    let fixture = Fixture::new();
    let root_before = listing(fixture.root());
    let workdir = tempfile::tempdir().unwrap();
    let mut server = TestServer::spawn(
        workdir,
        vec![fixture.root().into(), "--port".into(), "0".into()],
    );
    assert!(
        server.start_line.ends_with("; access log: stdout"),
        "{:?}",
        server.start_line
    );
    assert_hello(&server.connect().get("/hello.txt"));
    let line = server
        .stdout_line(Duration::from_secs(3))
        .expect("an access-log line on stdout");
    assert_eq!(
        parse_clf(&line).without_time(),
        format!(
            "127.0.0.1 \"GET /hello.txt HTTP/1.1\" 200 {}",
            content("hello.txt").len()
        )
    );
    assert!(server.stop().success());
    // Nothing else on stdout (the counters went to stderr), and no file anywhere.
    assert_eq!(server.stdout_line(Duration::from_millis(200)), None);
    assert!(server.stderr().contains("mioserve: final counters"));
    assert_eq!(listing(server.workdir()), Vec::<String>::new());
    assert_eq!(listing(fixture.root()), root_before);
}

#[test]
fn lines_reach_a_pipe_at_once() {
    // The file case batches writes once a second; a pipe (someone watching) gets each
    // line at the end of the loop iteration that answered the request.
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--log", "-", "--threads", "1"]);
    let mut c = server.connect();
    let mut delays = Vec::new();
    for i in 0..5 {
        assert_hello(&c.get(&format!("/hello.txt?{i}")));
        let answered = Instant::now();
        let line = server
            .stdout_line(Duration::from_secs(3))
            .expect("an access-log line on stdout");
        delays.push(answered.elapsed());
        assert!(line.contains(&format!("GET /hello.txt?{i} ")), "{line:?}");
        thread::sleep(Duration::from_millis(20));
    }
    delays.sort();
    assert!(
        delays[delays.len() / 2] < Duration::from_millis(50),
        "median delay of a line: {delays:?}"
    );
}

#[test]
fn the_log_is_never_served_whatever_leads_to_it() {
    let fixture = Fixture::new();
    let root = fixture.root();
    let log = root.join("access.log");
    let mut server = TestServer::start(root, &["--log", log.to_str().unwrap()]);
    assert_hello(&server.connect().get("/hello.txt"));
    assert!(wait_until(LOG_FLUSH_TIMEOUT, || !server
        .log_lines()
        .is_empty()));
    fs::hard_link(&log, root.join("hard.log")).unwrap();
    std::os::unix::fs::symlink("access.log", root.join("soft.log")).unwrap();
    fs::create_dir(root.join("logs")).unwrap();
    std::os::unix::fs::symlink("../access.log", root.join("logs/index.html")).unwrap();
    let mut c = server.connect();
    for path in [
        "/access.log",
        "/hard.log",
        "/soft.log",
        "/logs/",
        "/access.log?x",
    ] {
        for method in ["GET", "HEAD"] {
            let r = c.roundtrip(&format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
            assert_eq!(r.status, 404, "{method} {path}: {r:?}");
        }
    }
    // A copy is not the log: only the file itself is hidden.
    fs::copy(&log, root.join("copy.log")).unwrap();
    assert_eq!(c.get("/copy.log").status, 200);
    assert!(server.stop().success());
}

#[test]
fn log_file_is_appended_to_not_truncated() {
    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("my.log");
    let earlier = "10.0.0.1 - - [18/Apr/2023:08:32:14 +0000] \"GET / HTTP/1.1\" 200 5\n";
    fs::write(&log, earlier).unwrap();
    let log_arg = log.to_str().unwrap();
    let mut server = TestServer::start(fixture.root(), &["--log", log_arg]);
    assert_hello(&server.connect().get("/hello.txt"));
    assert!(server.stop().success());
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.starts_with(earlier), "earlier content lost: {text:?}");
    assert_eq!(text.lines().count(), 2, "{text:?}");
}

#[test]
fn a_stalled_log_reader_never_stops_serving_and_gets_the_lines_when_it_resumes() {
    // `mioserve --log - | sleep`: standard output is a pipe nobody reads. Each line is
    // about 1 KB, so 600 of them overfill the pipe (64 KiB) many times but stay within a
    // worker's backlog (1 MiB): every request is answered at once, and once the reader
    // reads, every line arrives.
    const REQUESTS: usize = 600;
    let fixture = Fixture::new();
    let root = fixture
        .root()
        .to_str()
        .expect("UTF-8 fixture path")
        .to_owned();
    let workdir = tempfile::tempdir().expect("server working directory");
    let fifo = workdir.path().join("log.fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|status| status.success()), "mkfifo");
    // Opening a FIFO waits for the other end: the reader opens in a thread.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::File::open(fifo).expect("open the FIFO"))
    };
    let script = format!("exec \"$0\" \"$@\" > '{}'", fifo.display());
    let args: Vec<std::ffi::OsString> = [
        "-c",
        &script,
        BIN,
        &root,
        "--port",
        "0",
        "--log",
        "-",
        "--threads",
        "1",
    ]
    .iter()
    .map(Into::into)
    .collect();
    let server = TestServer::spawn_program(workdir, "sh".as_ref(), args);
    let reader = reader.join().expect("the reader opened");
    let path = format!("/hello.txt?{}", "x".repeat(1000));
    let mut c = server.connect();
    for _ in 0..REQUESTS {
        assert_hello(&c.get(&path));
    }
    // Now read: the lines the pipe could not take come from the backlog.
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(reader).lines() {
            if sender.send(line.expect("a log line")).is_err() {
                return;
            }
        }
    });
    for n in 0..REQUESTS {
        let line = lines
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("only {n} of {REQUESTS} lines arrived"));
        assert!(line.contains("/hello.txt?x"), "{line}");
    }
}
