//! A deliberately tiny HTTP/1.1 client over a plain `TcpStream`.
//!
//! [`Client`] sends raw bytes and parses exactly one [`Response`] at a time, keeping any
//! extra bytes for the next one, so pipelining and keep-alive are observable. Every read has
//! a timeout: a server bug fails the test with what was received so far instead of hanging
//! it.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

/// How long one socket read or write may block before the test fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

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

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
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
