//! Rotating the access log under load: SIGHUP reopens the path (logrotate's `create` +
//! `postrotate` signal), `O_APPEND` keeps `copytruncate` from leaving a hole of zeros, and
//! a file that becomes the log on a reopen is never served, even from the cache. Checked
//! with a renaming test of our own and with the real `logrotate` while a client sends
//! requests steadily.

mod support;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use support::*;

/// How long after SIGHUP a test waits before it counts on every worker having switched to
/// the new file: a worker switches as soon as it is woken, so this is generous.
const SWITCH_WAIT: Duration = Duration::from_millis(300);

/// Times the real logrotate rotates the log during one test.
const ROTATIONS: usize = 3;

/// Time between two rotations, while the client keeps sending.
const BETWEEN_ROTATIONS: Duration = Duration::from_millis(400);

/// Most lines one worker's buffer holds when it is written: the server writes at 64 KiB
/// (`LOG_BUFFER_FLUSH_BYTES`), and a line of [`SteadyClient`]'s is over 60 bytes.
const LINES_PER_BATCH_AT_MOST: usize = 64 * 1024 / 60;

/// A client thread sending `GET /hello.txt?n=<i>` on one keep-alive connection, with i
/// counting from 0, until told to stop; joining it gives the number of requests answered.
struct SteadyClient {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<usize>,
}

impl SteadyClient {
    fn start(server: &TestServer) -> SteadyClient {
        let stop = Arc::new(AtomicBool::new(false));
        let mut client = server.connect();
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut sent = 0;
            while !stopped.load(Ordering::Relaxed) {
                assert_hello(&client.get(&format!("/hello.txt?n={sent}")));
                sent += 1;
                // Steady, not flat out: a few thousand requests over the test.
                thread::sleep(Duration::from_micros(200));
            }
            sent
        });
        SteadyClient { stop, thread }
    }

    /// Stops the client and returns how many requests it made.
    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the client thread failed")
    }
}

/// Every request number found in `files`, with how many times each was logged. Panics on a
/// malformed line (a NUL byte included).
fn logged_requests(files: &[PathBuf]) -> HashMap<usize, usize> {
    let mut seen = HashMap::new();
    for file in files {
        let bytes = fs::read(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        assert!(
            !bytes.contains(&0),
            "{} has NUL bytes (a hole from a write past the end)",
            file.display()
        );
        for line in String::from_utf8(bytes).unwrap().lines() {
            let entry = parse_access_line(line);
            let number = entry
                .request_line
                .strip_prefix("GET /hello.txt?n=")
                .and_then(|rest| rest.strip_suffix(" HTTP/1.1"))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {line:?}"));
            *seen.entry(number).or_insert(0) += 1;
        }
    }
    seen
}

/// Request numbers below `sent` logged other than exactly once, as (number, times).
fn not_logged_once(seen: &HashMap<usize, usize>, sent: usize) -> Vec<(usize, usize)> {
    let mut wrong: Vec<(usize, usize)> = (0..sent)
        .map(|n| (n, seen.get(&n).copied().unwrap_or(0)))
        .filter(|&(_, times)| times != 1)
        .collect();
    wrong.extend(
        seen.iter()
            .filter(|(n, _)| **n >= sent)
            .map(|(n, t)| (*n, *t)),
    );
    wrong
}

/// The log and its rotated copies in `dir`, by name.
fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("access.log"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn sighup_after_a_rename_sends_new_lines_to_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let fixture = Fixture::new();
    let mut server = TestServer::start(fixture.root(), &["--log", log.to_str().unwrap()]);
    let mut c = server.connect();
    for n in 0..10 {
        assert_hello(&c.get(&format!("/hello.txt?n={n}")));
    }
    fs::rename(&log, &rotated).unwrap();
    // Until the signal, lines still go to the renamed file.
    assert_hello(&c.get("/hello.txt?n=10"));
    server.signal("HUP");
    assert!(wait_until(SWITCH_WAIT, || log.exists()), "no new file");
    thread::sleep(SWITCH_WAIT);
    for n in 11..20 {
        assert_hello(&c.get(&format!("/hello.txt?n={n}")));
    }
    assert!(server.stop().success(), "stderr: {}", server.stderr());

    let old = logged_requests(&[rotated]);
    let new = logged_requests(&[log]);
    let mut old_numbers: Vec<usize> = old.keys().copied().collect();
    old_numbers.sort();
    let mut new_numbers: Vec<usize> = new.keys().copied().collect();
    new_numbers.sort();
    assert_eq!(old_numbers, (0..=10).collect::<Vec<_>>());
    assert_eq!(new_numbers, (11..20).collect::<Vec<_>>());
    assert!(old.values().chain(new.values()).all(|times| *times == 1));
}

#[test]
fn a_failed_reopen_is_reported_and_the_old_file_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let fixture = Fixture::new();
    let mut server = TestServer::start(fixture.root(), &["--log", log.to_str().unwrap()]);
    let rotated = dir.path().join("access.log.1");
    fs::rename(&log, &rotated).unwrap();
    fs::create_dir(&log).unwrap();
    server.signal("HUP");
    assert!(
        wait_until(SWITCH_WAIT * 10, || server
            .stderr()
            .contains("cannot reopen access log")),
        "stderr: {}",
        server.stderr()
    );
    assert_hello(&server.connect().get("/hello.txt?n=0"));
    assert!(server.stop().success());
    assert_eq!(not_logged_once(&logged_requests(&[rotated]), 1), []);
}

#[test]
fn sighup_without_a_log_file_is_a_hangup() {
    // With the log on the terminal (the default) or off, there is nothing to
    // reopen: SIGHUP means the terminal went away, and the server drains and
    // exits as on SIGTERM instead of living on in the background.
    let fixture = Fixture::new();
    for flags in [&["--log", "-"][..], &["--no-log"]] {
        let mut server = TestServer::start(fixture.root(), flags);
        assert_hello(&server.connect().get("/hello.txt"));
        server.signal("HUP");
        let status = server.wait_exit(Duration::from_secs(5));
        assert!(status.success(), "{flags:?}: {status:?}");
        assert!(!server.stderr().contains("reopen"), "{}", server.stderr());
    }
}

#[test]
fn a_cached_file_that_becomes_the_log_on_a_reopen_is_not_served() {
    // The log path is re-pointed at a small file the worker has cached; creating a symlink
    // does not touch that file, so no inotify event drops the entry: the reopen must.
    let fixture = Fixture::new();
    let root = fixture.root();
    let log = root.join("access.log");
    let mut server = TestServer::start(root, &["--log", log.to_str().unwrap(), "--threads", "1"]);
    let mut c = server.connect();
    assert_hello(&c.get("/hello.txt"));
    fs::rename(&log, root.join("old.log")).unwrap();
    std::os::unix::fs::symlink("hello.txt", &log).unwrap();
    server.signal("HUP");
    thread::sleep(SWITCH_WAIT);
    assert_eq!(c.get("/hello.txt").status, 404);
    assert_eq!(c.get("/access.log").status, 404);
    assert!(server.stop().success());
}

/// Runs the real logrotate, forcing a rotation, with `config` (whose `{log}` and `{pid}`
/// are filled in) and its state file in `dir`.
fn logrotate(dir: &Path, config: &str, log: &Path, pid: u32) {
    let conf = dir.join("logrotate.conf");
    let config = config
        .replace("{log}", log.to_str().unwrap())
        .replace("{pid}", &pid.to_string());
    fs::write(&conf, config).unwrap();
    let program = ["/usr/sbin/logrotate", "/sbin/logrotate"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .unwrap_or("logrotate");
    let out = Command::new(program)
        .arg("--force")
        .arg("--state")
        .arg(dir.join("logrotate.state"))
        .arg(&conf)
        .output()
        .expect("run logrotate (apt install logrotate; tests/run.sh does)");
    assert!(
        out.status.success(),
        "logrotate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts a server logging to `<dir>/access.log`, has logrotate rotate it with `config`
/// [`ROTATIONS`] times while a client sends requests, and returns the number of requests
/// made and how often each was logged, across every file.
fn rotate_under_load(config: &str) -> (usize, HashMap<usize, usize>) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let fixture = Fixture::new();
    let mut server = TestServer::start(fixture.root(), &["--log", log.to_str().unwrap()]);
    let client = SteadyClient::start(&server);
    for _ in 0..ROTATIONS {
        thread::sleep(BETWEEN_ROTATIONS);
        logrotate(dir.path(), config, &log, server.pid());
    }
    thread::sleep(BETWEEN_ROTATIONS);
    let sent = client.finish();
    assert!(server.stop().success(), "stderr: {}", server.stderr());
    let files = log_files(dir.path());
    assert_eq!(files.len(), ROTATIONS + 1, "{files:?}");
    (sent, logged_requests(&files))
}

#[test]
fn logrotate_create_and_sighup_lose_and_duplicate_nothing() {
    let config = "{log} {\n    rotate 10\n    create\n    postrotate\n        kill -HUP {pid}\n    endscript\n}\n";
    let (sent, seen) = rotate_under_load(config);
    assert!(sent > 1000, "only {sent} requests");
    assert_eq!(not_logged_once(&seen, sent), [], "of {sent} requests");
}

#[test]
fn logrotate_copytruncate_leaves_no_hole_and_duplicates_nothing() {
    // copytruncate copies the file, then truncates it: logrotate itself documents that a
    // line written between the two is lost, so a loss of at most one worker's batch per
    // rotation is tolerated (rare: a batch is written at most once a second per worker).
    // What the server owes is no hole of zeros (`O_APPEND`: after the truncation the next
    // write starts at offset 0, checked in `logged_requests`) and no duplicate.
    let config = "{log} {\n    rotate 10\n    copytruncate\n}\n";
    let (sent, seen) = rotate_under_load(config);
    assert!(sent > 1000, "only {sent} requests");
    let wrong = not_logged_once(&seen, sent);
    assert!(
        wrong.iter().all(|&(_, times)| times == 0),
        "duplicated: {wrong:?}"
    );
    assert!(
        wrong.len() <= ROTATIONS * LINES_PER_BATCH_AT_MOST,
        "{} of {sent} requests lost",
        wrong.len()
    );
}
