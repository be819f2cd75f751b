//! Shared helpers for the integration tests.
//!
//! Three pieces, each as small as the tests allow:
//!
//! - [`TestServer`]: the real `mioserve` binary as a child process on an ephemeral port
//!   (`--port 0`), found by parsing its start line, stopped with a real SIGTERM and killed
//!   on drop so a failing test never leaks a server.
//! - [`Fixture`]: a temporary document root whose files have distinct, known contents and a
//!   fixed modification time, so bodies and `Last-Modified` can be compared exactly.
//! - [`Client`]: a deliberately tiny HTTP/1.1 client over a plain `TcpStream`. It sends raw
//!   bytes and parses exactly one response at a time, keeping any extra bytes for the next
//!   one, so pipelining and keep-alive are observable. Every read has a timeout: a server
//!   bug fails the test with what was received so far instead of hanging it.
//!
//! Every test crate compiles this module on its own and uses only part of it, hence the
//! `dead_code` allowance.
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

/// The binary under test, built by Cargo for this package.
pub const BIN: &str = env!("CARGO_BIN_EXE_mioserve");

/// How long one socket read or write may block before the test fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the server may take to print its start line.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a process may take to exit after SIGTERM, or after a startup error.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The modification time given to every fixture file: 2023-04-18 08:32:14 UTC.
pub const FIXTURE_MTIME_SECS: u64 = 1_681_806_734;

/// `FIXTURE_MTIME_SECS` as an IMF-fixdate, the exact expected `Last-Modified` value.
pub const FIXTURE_LAST_MODIFIED: &str = "Tue, 18 Apr 2023 08:32:14 GMT";

/// Size of `big.bin`, written by [`Fixture::big`].
pub const BIG_LEN: usize = 20 * 1024 * 1024;

// ---------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------

/// A running `mioserve` child process.
pub struct TestServer {
    child: Child,
    /// Where the server listens, parsed from its start line.
    addr: SocketAddr,
    /// The start line exactly as printed (without the newline).
    pub start_line: String,
    /// Access log the server writes, when the test knows where that is.
    pub log_path: Option<PathBuf>,
    /// Lines printed on stdout after the start line (the access log under `--log -`).
    stdout: Receiver<String>,
    /// Everything printed on stderr so far, for failure messages.
    stderr: Arc<Mutex<String>>,
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
        let stderr = collect_in_background(child.stderr.take().expect("piped stderr"));

        let start_line = match stdout.recv_timeout(START_TIMEOUT) {
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
                        RecvTimeoutError::Disconnected => "stdout closed",
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

    /// The next line the server printed on stdout after its start line, waiting at most
    /// `limit`. `None` on timeout or once stdout is closed.
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
fn server_args(workdir: &TempDir, root: &Path, extra: &[&str]) -> (Vec<OsString>, Option<PathBuf>) {
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
/// `mioserve: serving <root> on http://<ip>:<port> (<n> workers)`, and returns the address.
pub fn parse_start_line(line: &str) -> SocketAddr {
    let rest = line
        .strip_prefix("mioserve: serving ")
        .unwrap_or_else(|| panic!("start line {line:?} does not begin with `mioserve: serving `"));
    let (_root, rest) = rest
        .rsplit_once(" on http://")
        .unwrap_or_else(|| panic!("start line {line:?} has no ` on http://`"));
    let (authority, workers) = rest
        .split_once(" (")
        .unwrap_or_else(|| panic!("start line {line:?} has no ` (<n> workers)`"));
    // `(1 worker)` is accepted as the grammatical form of `(<n> workers)`.
    let n: u32 = workers
        .strip_suffix(" workers)")
        .or_else(|| workers.strip_suffix(" worker)").filter(|n| *n == "1"))
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

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
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

// ---------------------------------------------------------------------------------------
// The document root
// ---------------------------------------------------------------------------------------

/// The files every fixture root starts with: path, contents. Contents are distinct so a
/// response can never match the wrong file.
pub const FILES: &[(&str, &[u8])] = &[
    (
        "index.html",
        b"<!doctype html>\n<title>fixture</title>\n<h1>root index</h1>\n",
    ),
    ("hello.txt", b"Hello, world!\n"),
    ("sub/index.html", b"<h1>sub index</h1>\n"),
    ("sub/page.html", b"<p>a page in sub</p>\n"),
    ("style.css", b"body { color: #333; }\n"),
    ("app.js", b"console.log(\"app\");\n"),
    // PNG signature: not UTF-8, with CR, LF and NUL, so the body must be binary-safe.
    (
        "logo.png",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89",
    ),
    (
        "photo.jpg",
        b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0\xff\xd9",
    ),
    (
        "icon.svg",
        b"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1\" height=\"1\"/>\n",
    ),
    ("data.json", b"{\"answer\": 42}\n"),
    ("mod.wasm", b"\0asm\x01\0\0\0"),
    ("blob.unknownext", b"opaque bytes \x00\x01\x02\xfe\xff"),
    ("hello world.txt", b"a name with a space\n"),
    ("caf\u{e9}.txt", b"a UTF-8 name\n"),
    (
        "404.html",
        b"<!doctype html>\n<title>custom 404</title>\n<p>fixture: nothing here</p>\n",
    ),
    (
        "400.html",
        b"<!doctype html>\n<title>custom 400</title>\n<p>fixture: bad request</p>\n",
    ),
];

/// The contents of fixture file `name` (as listed in [`FILES`]).
pub fn content(name: &str) -> &'static [u8] {
    FILES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("{name} is not a fixture file"))
        .1
}

/// A temporary directory holding `root/` (the document root, filled from [`FILES`], plus an
/// empty `emptydir/`) and `outside/` (next to the root, never to be served).
pub struct Fixture {
    dir: TempDir,
    root: PathBuf,
}

/// The contents of `outside/secret.txt`, which must never appear in a response.
pub const SECRET: &[u8] = b"TOP-SECRET-OUTSIDE-THE-ROOT\n";

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("create fixture directory");
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        fs::create_dir(root.join("emptydir")).unwrap();
        let fixture = Fixture { dir, root };
        for (name, body) in FILES {
            fixture.write(name, body);
        }
        let outside = fixture.outside();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret.txt"), SECRET).unwrap();
        fixture
    }

    /// The document root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A directory beside the root (same parent) holding `secret.txt`.
    pub fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    /// `root/rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Writes `root/rel` and gives it the fixed fixture mtime.
    pub fn write(&self, rel: &str, body: &[u8]) {
        let path = self.path(rel);
        fs::write(&path, body).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        let mtime = UNIX_EPOCH + Duration::from_secs(FIXTURE_MTIME_SECS);
        fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(mtime))
            .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
    }

    pub fn remove(&self, rel: &str) {
        fs::remove_file(self.path(rel)).unwrap();
    }

    /// Writes `big.bin`, `BIG_LEN` pseudo-random bytes, and returns its contents.
    pub fn big(&self) -> Vec<u8> {
        let body = pseudo_random(BIG_LEN, 0x9E37_79B9_7F4A_7C15);
        self.write("big.bin", &body);
        body
    }
}

/// Deterministic incompressible bytes (xorshift64*), so a misplaced or repeated chunk of a
/// large body shows up as a mismatch.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

// ---------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------

/// One parsed response.
pub struct Response {
    /// e.g. `HTTP/1.1 200 OK`.
    pub status_line: String,
    pub status: u16,
    /// In the order received, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Shows at most 200 bytes of the body, so a failing 20 MiB comparison stays readable.
impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = &self.body[..self.body.len().min(200)];
        f.debug_struct("Response")
            .field("status_line", &self.status_line)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("body", &String::from_utf8_lossy(shown))
            .finish()
    }
}

impl Response {
    /// Parses a response head (status line and header lines, without the blank line that
    /// ends it) strictly: exact status-line shape, well-formed header lines. The body is
    /// left empty.
    pub fn from_head(head: &str) -> Response {
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_owned();
        let status = parse_status_line(&status_line);
        let headers = lines
            .map(|line| {
                let (name, value) = line
                    .split_once(':')
                    .unwrap_or_else(|| panic!("malformed header line {line:?} in {head:?}"));
                assert!(
                    !name.is_empty() && !name.contains([' ', '\t']),
                    "malformed header name in {line:?}"
                );
                (name.to_owned(), value.trim_matches([' ', '\t']).to_owned())
            })
            .collect();
        Response {
            status_line,
            status,
            headers,
            body: Vec::new(),
        }
    }

    /// The value of header `name` (case-insensitive). Panics if it is sent more than once,
    /// which for every header the server sends would be a bug.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let first = values.next();
        assert!(
            values.next().is_none(),
            "header {name} sent more than once: {:?}",
            self.headers
        );
        first
    }

    /// `Content-Length` as a number; panics if it is missing or malformed.
    pub fn content_length(&self) -> usize {
        self.expect_header("Content-Length")
            .parse()
            .unwrap_or_else(|_| panic!("bad Content-Length in {:?}", self.headers))
    }

    /// The value of header `name`, which must be present.
    pub fn expect_header(&self, name: &str) -> &str {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection with its unparsed input.
pub struct Client {
    stream: TcpStream,
    /// Bytes received but not yet parsed: the rest of a pipelined batch.
    buf: Vec<u8>,
    /// Largest single read, to simulate a slow reader.
    read_chunk: usize,
    /// Pause after each read, to simulate a slow reader.
    read_pause: Duration,
}

impl Client {
    /// Connects with `IO_TIMEOUT` read and write timeouts.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Client::from_stream(stream)
    }

    /// Connects with a receive buffer of (about) `receive_buffer` bytes set before the
    /// handshake, so the window the client advertises stays small and bounded (an unset
    /// buffer autotunes to megabytes), and, with `max_segment`, announces that maximum
    /// segment size.
    ///
    /// A small segment size is what keeps a client that stops reading cheap for the
    /// *server*: Linux sizes a socket's send buffer from its congestion window in
    /// segments, so on loopback (64 KiB segments) every stalled download would otherwise
    /// pin megabytes of the server's send buffer, whatever the receiver's window.
    pub fn connect_with_buffers(
        addr: SocketAddr,
        receive_buffer: usize,
        max_segment: Option<u32>,
    ) -> Client {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .expect("create socket");
        socket
            .set_recv_buffer_size(receive_buffer)
            .expect("set SO_RCVBUF");
        if let Some(mss) = max_segment {
            socket.set_tcp_mss(mss).expect("set TCP_MAXSEG");
        }
        socket
            .connect(&addr.into())
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Client::from_stream(socket.into())
    }

    /// Wraps a connected stream with `IO_TIMEOUT` read and write timeouts.
    fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
            read_chunk: 64 * 1024,
            read_pause: Duration::ZERO,
        }
    }

    /// Makes every later read take at most `chunk` bytes and then sleep `pause`.
    pub fn set_slow_reads(&mut self, chunk: usize, pause: Duration) {
        self.read_chunk = chunk;
        self.read_pause = pause;
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Writes all of `bytes` in one `write_all`.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream
            .write_all(bytes.as_ref())
            .unwrap_or_else(|e| panic!("send request: {e}"));
    }

    /// Sends `raw` and reads one response; a HEAD request when `raw` starts with `HEAD `.
    pub fn roundtrip(&mut self, raw: &str) -> Response {
        self.send(raw);
        self.read_response(raw.starts_with("HEAD "))
    }

    /// `GET path HTTP/1.1` with a `Host` header, on this connection.
    pub fn get(&mut self, path: &str) -> Response {
        self.roundtrip(&get(path))
    }

    /// `HEAD path HTTP/1.1` with a `Host` header, on this connection.
    pub fn head(&mut self, path: &str) -> Response {
        self.roundtrip(&format!("HEAD {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"))
    }

    /// Reads one response. The body is `Content-Length` bytes, except that a response to
    /// HEAD (`head_request`) and a 304 have none. Panics on anything malformed, on EOF
    /// before the end, on a missing `Content-Length`, and after `IO_TIMEOUT` of silence.
    pub fn read_response(&mut self, head_request: bool) -> Response {
        let mut response = self.read_head();
        if head_request || response.status == 304 {
            return response;
        }
        let len = response.content_length();
        response.body = self.read_body_bytes(len);
        response
    }

    /// Reads one response head and leaves the body unread (`body` is empty): for tests
    /// that read a large body piece by piece, or not at all.
    pub fn read_head(&mut self) -> Response {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            self.fill("a response head");
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .unwrap_or_else(|_| panic!("response head is not UTF-8: {:?}", self.received()))
            .to_owned();
        self.buf.drain(..head_end + 4);

        Response::from_head(&head)
    }

    /// Reads exactly `len` more bytes of a body (after [`Client::read_head`]); panics on
    /// EOF or silence before they arrive.
    pub fn read_body_bytes(&mut self, len: usize) -> Vec<u8> {
        while self.buf.len() < len {
            self.fill("a response body");
        }
        self.buf.drain(..len).collect()
    }

    /// Ends the connection with a TCP reset instead of a FIN: `SO_LINGER` with a zero
    /// timeout makes `close` discard unsent data and send RST, as a client that crashes
    /// or gives up abruptly would.
    pub fn reset(self) {
        socket2::SockRef::from(&self.stream)
            .set_linger(Some(Duration::ZERO))
            .expect("set SO_LINGER");
        drop(self);
    }

    /// Asserts that the server closes the connection: nothing more is received and the next
    /// read sees EOF (or a reset) within `IO_TIMEOUT`.
    pub fn expect_closed(&mut self) {
        assert!(
            self.buf.is_empty(),
            "unexpected bytes after the response: {:?}",
            self.received()
        );
        match self.read_or_eof() {
            Ok(None) => {}
            Ok(Some(n)) => panic!(
                "expected the server to close, got {n} more bytes: {:?}",
                self.received()
            ),
            Err(e) => panic!("expected the server to close, got {e}"),
        }
    }

    /// Waits (up to `IO_TIMEOUT`) for the server to close the connection, returning all
    /// bytes received before it did.
    pub fn read_until_closed(&mut self) -> Vec<u8> {
        loop {
            match self.read_or_eof() {
                Ok(None) => return std::mem::take(&mut self.buf),
                Ok(Some(_)) => {}
                Err(e) => panic!(
                    "expected the server to close, got {e} after {:?}",
                    self.received()
                ),
            }
        }
    }

    /// Asserts the connection is still open: nothing arrives and no EOF within `wait`.
    pub fn expect_open(&mut self, wait: Duration) {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let result = self.read_or_eof();
        self.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        match result {
            Err(e) if is_timeout(&e) => {}
            Ok(None) => panic!("server closed a connection that should stay open"),
            Ok(Some(n)) => panic!("{n} unexpected bytes: {:?}", self.received()),
            Err(e) => panic!("connection failed: {e}"),
        }
    }

    /// One read into the buffer: `Some(n)` bytes, `None` at EOF or on a reset (a server may
    /// reset when it closes with unread input), or an error (timeout).
    fn read_or_eof(&mut self) -> io::Result<Option<usize>> {
        let mut chunk = vec![0u8; self.read_chunk];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if !self.read_pause.is_zero() {
                        thread::sleep(self.read_pause);
                    }
                    return Ok(Some(n));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    fn fill(&mut self, waiting_for: &str) {
        match self.read_or_eof() {
            Ok(Some(_)) => {}
            Ok(None) => panic!(
                "connection closed while waiting for {waiting_for}; received {:?}",
                self.received()
            ),
            Err(e) => panic!(
                "no {waiting_for} within {IO_TIMEOUT:?} ({e}); received {:?}",
                self.received()
            ),
        }
    }

    /// The unparsed input, abbreviated for messages.
    fn received(&self) -> String {
        let shown = &self.buf[..self.buf.len().min(600)];
        let text = String::from_utf8_lossy(shown);
        if shown.len() < self.buf.len() {
            format!("{text}... ({} bytes)", self.buf.len())
        } else {
            text.into_owned()
        }
    }
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// A minimal HTTP/1.1 GET for `path`.
pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Checks `HTTP/1.1 <3 digits> <reason>` and returns the code.
fn parse_status_line(line: &str) -> u16 {
    let rest = line
        .strip_prefix("HTTP/1.1 ")
        .unwrap_or_else(|| panic!("status line {line:?} does not start with `HTTP/1.1 `"));
    let (code, reason) = rest
        .split_once(' ')
        .unwrap_or_else(|| panic!("status line {line:?} has no reason phrase"));
    assert!(
        code.len() == 3 && !reason.is_empty(),
        "malformed status line {line:?}"
    );
    code.parse()
        .unwrap_or_else(|_| panic!("malformed status code in {line:?}"))
}

// ---------------------------------------------------------------------------------------
// The access log
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Assertions shared by several test files
// ---------------------------------------------------------------------------------------

/// The exact status line for each code the server uses.
pub fn status_line(code: u16) -> String {
    let reason = match code {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => panic!("no reason phrase known for {code}"),
    };
    format!("HTTP/1.1 {code} {reason}")
}

/// Headers every response carries: `Server: mioserve` and a current IMF-fixdate `Date`.
pub fn assert_common_headers(r: &Response) {
    assert_eq!(r.header("Server"), Some("mioserve"), "{r:?}");
    let date = r.expect_header("Date");
    let when = assert_imf_fixdate(date);
    let now = SystemTime::now();
    let skew = now.duration_since(when).unwrap_or_else(|e| e.duration());
    assert!(
        skew < Duration::from_secs(10),
        "Date {date:?} is {skew:?} away from now"
    );
}

/// Parses `value` as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), rejecting the
/// obsolete formats `httpdate` also accepts, and returns it.
pub fn assert_imf_fixdate(value: &str) -> SystemTime {
    let when = httpdate::parse_http_date(value)
        .unwrap_or_else(|e| panic!("{value:?} is not an HTTP date: {e}"));
    assert_eq!(
        httpdate::fmt_http_date(when),
        value,
        "{value:?} is not in IMF-fixdate form"
    );
    when
}

/// A 200 for fixture file `name`: exact status line, common headers, `Content-Type`,
/// `Content-Length`, `Last-Modified` and body.
pub fn assert_file(r: &Response, name: &str, content_type: &str) {
    assert_file_body(r, content(name));
    assert_eq!(r.header("Content-Type"), Some(content_type), "{r:?}");
}

/// A 200 for `hello.txt`. The spec fixes no type for `.txt`, only that it is `text/plain`.
pub fn assert_hello(r: &Response) {
    assert_file_body(r, content("hello.txt"));
    let ty = r.expect_header("Content-Type");
    assert!(
        ty.starts_with("text/plain"),
        "Content-Type {ty:?} for hello.txt"
    );
}

/// A 200 with body `body` from a fixture file: everything but `Content-Type`.
pub fn assert_file_body(r: &Response, body: &[u8]) {
    assert_eq!(r.status_line, "HTTP/1.1 200 OK", "{r:?}");
    assert_common_headers(r);
    assert_eq!(
        r.header("Content-Length"),
        Some(body.len().to_string().as_str()),
        "{r:?}"
    );
    assert_eq!(r.header("Last-Modified"), Some(FIXTURE_LAST_MODIFIED));
    assert!(
        r.body == body,
        "body mismatch: got {} bytes {:?}..., expected {} bytes {:?}...",
        r.body.len(),
        String::from_utf8_lossy(&r.body[..r.body.len().min(100)]),
        body.len(),
        String::from_utf8_lossy(&body[..body.len().min(100)]),
    );
}

/// An error response with the server's own small HTML body.
pub fn assert_error(r: &Response, code: u16) {
    assert_eq!(r.status_line, status_line(code), "{r:?}");
    assert_common_headers(r);
    assert_eq!(
        r.header("Content-Type"),
        Some("text/html; charset=utf-8"),
        "{r:?}"
    );
    assert!(!r.body.is_empty(), "error {code} has an empty body");
    let reason = &status_line(code)[13..];
    assert!(
        r.body_text().contains(reason),
        "error body does not name the status {reason:?}: {:?}",
        r.body_text()
    );
}

/// `Connection: close` on a response after which the server must close.
pub fn assert_closes(r: &Response) {
    assert_eq!(r.header("Connection"), Some("close"), "{r:?}");
}

/// `Connection: keep-alive` on a response after which the connection stays usable.
pub fn assert_keeps_alive(r: &Response) {
    assert_eq!(r.header("Connection"), Some("keep-alive"), "{r:?}");
}

/// Whether this process can read files it has no permission for (root, CAP_DAC_OVERRIDE):
/// then a "file the server cannot read" cannot be made, and such tests skip.
pub fn ignores_file_permissions(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let probe = dir.join(".permission-probe");
    fs::write(&probe, b"x").unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o000)).unwrap();
    let readable = fs::read(&probe).is_ok();
    fs::remove_file(&probe).unwrap();
    readable
}

// ---------------------------------------------------------------------------------------
// External programs: clients, a browser, network namespaces
// ---------------------------------------------------------------------------------------

pub mod browser;
pub mod netns;
pub mod tools;

// ---------------------------------------------------------------------------------------
// Waiting for the access log
// ---------------------------------------------------------------------------------------

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
