//! The server under test: the real `mioserve` binary as a child process.
//!
//! [`TestServer`] starts it on an ephemeral port (`--port 0`), learns the address from its
//! start line (the first line on stderr; stdout carries only access-log lines), stops it with a real SIGTERM and kills it on drop, so a failing test never
//! leaks a server. [`run_to_exit`] is for runs that must end on their own (startup errors,
//! `--help`). The child's stdout and stderr are drained by background threads, because a
//! pipe nobody reads fills up and would block the server.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::client::Client;

/// The binary under test, built by Cargo for this package.
pub const BIN: &str = env!("CARGO_BIN_EXE_mioserve");

/// How long the server may take to print its start line.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a process may take to exit after SIGTERM, or after a startup error.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `mioserve` child process.
pub struct TestServer {
    child: Child,
    /// Where the server listens, parsed from its start line.
    addr: SocketAddr,
    /// The start line exactly as printed (without the newline).
    pub start_line: String,
    /// Access log the server writes, when the test knows where that is.
    pub log_path: Option<PathBuf>,
    /// Lines printed on stdout: the access log under `--log -`.
    stdout: Receiver<String>,
    /// Everything printed on stderr so far (the start line first), for failure messages.
    stderr: Arc<Mutex<String>>,
    /// The thread reading stderr: once the child has exited, [`TestServer::wait_exit`]
    /// waits for it to reach EOF, so `stderr()` holds the last lines (the final counters).
    stderr_reader: thread::JoinHandle<()>,
    /// Working directory of the child; holds the default access log. Kept so it outlives the
    /// child.
    workdir: TempDir,
    /// Set once the child has been reaped, so `Drop` does not kill a recycled pid.
    exited: Option<ExitStatus>,
}

impl TestServer {
    /// Starts `mioserve ROOT --port 0 --log <tmp>/access.log EXTRA...`.
    ///
    /// `--port 0` is left out when `extra` has its own `--port`, and the log flag when
    /// `extra` has `--log` or `--no-log`.
    pub fn start(root: &Path, extra: &[&str]) -> TestServer {
        let workdir = tempfile::tempdir().expect("create server working directory");
        let (args, log_path) = server_args(&workdir, root, extra);
        let mut server = TestServer::spawn(workdir, args);
        server.log_path = log_path;
        server
    }

    /// Like [`TestServer::start`], but with the process's open-files limit (soft and hard)
    /// lowered to `limit` first: the binary is started as
    /// `sh -c 'ulimit -n LIMIT && exec "$0" "$@"' mioserve ARGS...`. `exec` keeps the pid,
    /// so [`TestServer::pid`], signals and the kill on drop reach the server itself, and
    /// the hard limit keeps the server from raising its own soft limit past `limit`.
    pub fn start_with_open_files_limit(root: &Path, limit: u32, extra: &[&str]) -> TestServer {
        let workdir = tempfile::tempdir().expect("create server working directory");
        let (server_args, log_path) = server_args(&workdir, root, extra);
        let mut args: Vec<OsString> = vec![
            "-c".into(),
            format!("ulimit -n {limit} && exec \"$0\" \"$@\"").into(),
            BIN.into(),
        ];
        args.extend(server_args);
        let mut server = TestServer::spawn_program(workdir, "sh".as_ref(), args);
        server.log_path = log_path;
        server
    }

    /// Starts the binary with exactly `args` (nothing added) in the working directory
    /// `workdir`, and waits for its start line. Panics with the child's stderr if it exits
    /// or stays silent instead.
    pub fn spawn(workdir: TempDir, args: Vec<OsString>) -> TestServer {
        TestServer::spawn_program(workdir, BIN.as_ref(), args)
    }

    /// [`TestServer::spawn`] with another program in front of the binary (a shell that
    /// `exec`s it); `program` must end up as the process that prints the start line.
    pub fn spawn_program(workdir: TempDir, program: &OsStr, args: Vec<OsString>) -> TestServer {
        let mut child = Command::new(program)
            .args(&args)
            .current_dir(workdir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mioserve");
        let stdout = line_channel(child.stdout.take().expect("piped stdout"));
        let (first_stderr_line, stderr, stderr_reader) =
            collect_lines_in_background(child.stderr.take().expect("piped stderr"));

        let start_line = match first_stderr_line.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                // Give the stderr thread a moment to see EOF.
                thread::sleep(Duration::from_millis(50));
                panic!(
                    "mioserve {args:?} printed no start line ({}); exit: {status:?}; stderr: {:?}",
                    match e {
                        RecvTimeoutError::Timeout => "timed out",
                        RecvTimeoutError::Disconnected => "stderr closed",
                    },
                    stderr.lock().unwrap()
                );
            }
        };
        // Own the child before checking the line, so a malformed line (a panic) still
        // kills it through `Drop` instead of leaking a server.
        let mut server = TestServer {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            start_line,
            log_path: None,
            stdout,
            stderr,
            stderr_reader,
            workdir,
            exited: None,
        };
        server.addr = parse_start_line(&server.start_line);
        server
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's working directory (where a relative `--log` path would land).
    pub fn workdir(&self) -> &Path {
        self.workdir.path()
    }

    /// A new connection to the server.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Sends a signal by name (`"TERM"`, `"INT"`) with `kill(1)`, so the tests need no
    /// `unsafe`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// Sends SIGTERM and waits (at most `EXIT_TIMEOUT`) for the process to exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(EXIT_TIMEOUT)
    }

    /// Waits for the child to exit; panics (after killing it) if it has not within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        match wait_timeout(&mut self.child, limit) {
            Some(status) => {
                self.exited = Some(status);
                // The pipe reaches EOF with the process; give the reader a moment to
                // take what was printed last.
                wait_until(Duration::from_secs(1), || self.stderr_reader.is_finished());
                status
            }
            None => {
                let _ = self.child.kill();
                let status = self.child.wait().expect("reap killed child");
                self.exited = Some(status);
                panic!(
                    "mioserve did not exit within {limit:?}; stderr: {:?}",
                    self.stderr()
                );
            }
        }
    }

    /// `Some(status)` if the child has already exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("try_wait");
        }
        self.exited
    }

    /// The next line the server printed on stdout (an access-log line under `--log -`),
    /// waiting at most `limit`. `None` on timeout or once stdout is closed.
    pub fn stdout_line(&self, limit: Duration) -> Option<String> {
        self.stdout.recv_timeout(limit).ok()
    }

    /// Everything printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The access log's lines (empty if the file does not exist yet).
    pub fn log_lines(&self) -> Vec<String> {
        let path = self
            .log_path
            .as_ref()
            .expect("this server has a known log path");
        match fs::read_to_string(path) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("read {}: {e}", path.display()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The arguments [`TestServer::start`] passes: `ROOT --port 0 --log <workdir>/access.log
/// EXTRA...` (see there for when the defaults are left out), and the log path if known.
pub(super) fn server_args(
    workdir: &TempDir,
    root: &Path,
    extra: &[&str],
) -> (Vec<OsString>, Option<PathBuf>) {
    let mut args: Vec<OsString> = vec![root.into()];
    if !extra.contains(&"--port") {
        args.extend(["--port".into(), "0".into()]);
    }
    let mut log_path = None;
    if let Some(i) = extra.iter().position(|a| *a == "--log") {
        if let Some(p) = extra.get(i + 1).filter(|p| **p != "-") {
            log_path = Some(PathBuf::from(p));
        }
    } else if !extra.contains(&"--no-log") {
        let path = workdir.path().join("access.log");
        args.extend(["--log".into(), path.clone().into()]);
        log_path = Some(path);
    }
    args.extend(extra.iter().map(OsString::from));
    (args, log_path)
}

/// Checks the start line's exact shape,
/// `mioserve: serving <root> on http://<ip>:<port> (<n> workers); access log: <where>` (or
/// `; no access log`), and returns the address.
pub fn parse_start_line(line: &str) -> SocketAddr {
    let rest = line
        .strip_prefix("mioserve: serving ")
        .unwrap_or_else(|| panic!("start line {line:?} does not begin with `mioserve: serving `"));
    let (_root, rest) = rest
        .rsplit_once(" on http://")
        .unwrap_or_else(|| panic!("start line {line:?} has no ` on http://`"));
    let (rest, log) = rest
        .rsplit_once("); ")
        .unwrap_or_else(|| panic!("start line {line:?} has no `); ` before the log"));
    assert!(
        log == "no access log"
            || log
                .strip_prefix("access log: ")
                .is_some_and(|place| !place.is_empty()),
        "start line {line:?} does not end with `; access log: <where>` or `; no access log`"
    );
    let (authority, workers) = rest
        .split_once(" (")
        .unwrap_or_else(|| panic!("start line {line:?} has no ` (<n> workers)`"));
    // `(1 worker)` is accepted as the grammatical form of `(<n> workers)`.
    let n: u32 = workers
        .strip_suffix(" workers")
        .or_else(|| workers.strip_suffix(" worker").filter(|n| *n == "1"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("start line {line:?} does not end with ` (<n> workers)`"));
    assert!(n > 0, "worker count in {line:?}");
    let addr: SocketAddr = authority
        .parse()
        .unwrap_or_else(|_| panic!("bad address {authority:?} in start line {line:?}"));
    assert_ne!(addr.port(), 0, "start line {line:?} shows port 0");
    addr
}

/// The output of a process that is expected to exit on its own (startup errors, `--help`).
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `mioserve ARGS` in a fresh temporary directory and waits for it to exit. Panics if
/// it is still running after `EXIT_TIMEOUT` (a server that should have refused to start).
pub fn run_to_exit(args: &[&str]) -> Exited {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mioserve");
    let stdout = collect_in_background(child.stdout.take().expect("piped stdout"));
    let stderr = collect_in_background(child.stderr.take().expect("piped stderr"));
    let Some(status) = wait_timeout(&mut child, EXIT_TIMEOUT) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "mioserve {args:?} still running after {EXIT_TIMEOUT:?}; stdout {:?}",
            stdout.lock().unwrap()
        );
    };
    // The pipes reach EOF when the process exits; give the reader threads a moment.
    thread::sleep(Duration::from_millis(50));
    let stdout = stdout.lock().unwrap().clone();
    let stderr = stderr.lock().unwrap().clone();
    Exited {
        status,
        stdout,
        stderr,
    }
}

pub(super) fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Forwards each line of `pipe` into a channel, from a background thread.
fn line_channel(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Appends every line read from `pipe` to a shared string, from a background thread, and
/// sends the first one the server printed (`mioserve: ...`, without its newline) on the
/// returned channel; returns the reading thread too.
fn collect_lines_in_background(
    pipe: impl Read + Send + 'static,
) -> (Receiver<String>, Arc<Mutex<String>>, thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let mut first_line = Some(tx);
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    let reader = thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&line);
                    sink.lock().unwrap().push_str(&line);
                    // A program in front of the binary (systemd-socket-activate)
                    // may print lines of its own first.
                    if line.starts_with("mioserve: ")
                        && let Some(tx) = first_line.take()
                    {
                        let _ = tx.send(line.trim_end_matches('\n').to_owned());
                    }
                }
            }
        }
    });
    (rx, text, reader)
}

/// Appends everything read from `pipe` to a shared string, from a background thread.
fn collect_in_background(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    });
    text
}

/// Polls `condition` every 10 ms until it holds (true) or `limit` has passed (false).
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}
