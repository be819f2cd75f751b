//! What the four rungs share, so that they differ only in how they juggle
//! connections: parse one request head with `httparse` and answer it from the
//! repo's demo site, `htdocs/`. Every rung says the same bytes on the wire;
//! `diff` two rungs and you see only the concurrency model change. Rungs 3
//! and 4 also share the plumbing around their event loops (`serve` binds and
//! registers the listener, `wait` polls, `accept_all` accepts, `read_some` and
//! `write_some` retry `EINTR` and say what came of it as a `Transfer`), so
//! each of them shows only its loop and what a connection is.
//!
//! It is deliberately small, and each shortcut has a grown-up version in
//! mioserve: the whole file is read into memory for every request
//! (`src/cache.rs` keeps small files, `src/connection.rs` sends large ones
//! with `sendfile`); only flat file names are served (`src/files.rs` decodes
//! paths and confines them with `openat2`); the checks are minimal
//! (`src/http/request.rs` enforces `Host`, framing, versions and limits).

// Rung 1 closes after every answer, so it never reads `consumed` or
// `keep_alive`; rungs 1 and 2 use none of the `mio` helpers, and rungs 3
// and 4 not `listen_blocking`.
#![allow(dead_code)]

use std::io::{self, ErrorKind::Interrupted, ErrorKind::WouldBlock, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::SystemTime;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

/// The site, located from the crate root so the examples run from anywhere.
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/htdocs");

/// A request head still incomplete at this size is answered `400` and the
/// connection closed, so one client cannot make us buffer without bound.
/// (mioserve answers `431`: `src/config.rs`.)
const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;

/// Header fields we make room for; a request with more is a `400`.
const MAX_HEADER_FIELDS: usize = 32;

/// Bytes asked for per `read` by [`read_some`].
const READ_CHUNK_BYTES: usize = 4096;

/// Readiness events rungs 3 and 4 take from the kernel per `poll`.
pub const EVENTS_PER_POLL: usize = 1024;

/// The media type of our own short messages.
const TEXT: &str = "text/plain; charset=utf-8";

/// What the bytes received so far amount to.
pub enum Parsed {
    /// Not a whole head yet: read more. "Need more bytes" is not an error.
    Partial,
    /// A whole head (or hopeless garbage), and the answer to it.
    Complete(Answer),
}

/// The answer to one request.
pub struct Answer {
    /// The response, head and body, ready to write.
    pub bytes: Vec<u8>,
    /// Input bytes the request took; a pipelined request starts after them.
    pub consumed: usize,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
}

/// Parses the head at the start of `input` and answers it. With
/// `keep_alive_allowed` false, every response says `Connection: close`.
pub fn answer(input: &[u8], keep_alive_allowed: bool) -> Parsed {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADER_FIELDS];
    let mut request = httparse::Request::new(&mut fields);
    let consumed = match request.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if input.len() < MAX_REQUEST_HEAD_BYTES => {
            return Parsed::Partial;
        }
        // Malformed, or too long to ever finish. We cannot tell where a next
        // request would start, so this answer also ends the connection.
        _ => return Parsed::Complete(bad_request(input.len())),
    };
    let field = |name: &str| {
        let mut named = request
            .headers
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name));
        named.next().map(|f| f.value)
    };
    // We never read request bodies: after answering a request that has one,
    // close, so its bytes are never mistaken for the next request.
    let has_body = field("transfer-encoding").is_some()
        || field("content-length").is_some_and(|length| length != b"0");
    // RFC 9112 §9.3: HTTP/1.1 stays open unless "close"; 1.0 closes unless
    // "keep-alive".
    let wants_keep_alive = match request.version {
        Some(1) => !has_option(field("connection"), "close"),
        _ => has_option(field("connection"), "keep-alive"),
    };
    let keep_alive = keep_alive_allowed && wants_keep_alive && !has_body;
    let (status, kind, body) = match (request.method, request.path.and_then(file_name)) {
        // Any failure to read is a 404 here; mioserve maps each errno to its
        // status (`status_for_error` in `src/files.rs`).
        (Some("GET" | "HEAD"), Some(name)) => match std::fs::read(format!("{ROOT}/{name}")) {
            Ok(body) => ("200 OK", content_type(name), body),
            Err(_) => ("404 Not Found", TEXT, b"Not found\n".to_vec()),
        },
        (Some("GET" | "HEAD"), None) => ("404 Not Found", TEXT, b"Not found\n".to_vec()),
        // RFC 9110 §15.6.2. (mioserve says 405 and `Allow` to methods it knows.)
        _ => ("501 Not Implemented", TEXT, b"GET or HEAD\n".to_vec()),
    };
    let head_only = request.method == Some("HEAD");
    let bytes = response(status, kind, &body, head_only, keep_alive);
    Parsed::Complete(Answer {
        bytes,
        consumed,
        keep_alive,
    })
}

/// The answer to a request we cannot parse: `400`, then close.
fn bad_request(consumed: usize) -> Answer {
    Answer {
        bytes: response("400 Bad Request", TEXT, b"Bad request\n", false, false),
        consumed,
        keep_alive: false,
    }
}

/// The file a request path names, or `None`. Only one path segment of plain
/// characters, not starting with a dot, is accepted: no `/`, no `..`, so the
/// name can never leave `htdocs/` (which is flat).
fn file_name(path: &str) -> Option<&str> {
    let name = path.split('?').next()?.strip_prefix('/')?;
    if name.is_empty() {
        return Some("index.html");
    }
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    (plain && !name.starts_with('.')).then_some(name)
}

/// Whether a comma-separated `Connection` value lists `option`.
fn has_option(value: Option<&[u8]>, option: &str) -> bool {
    value.is_some_and(|value| {
        (value.split(|&b| b == b','))
            .any(|item| item.trim_ascii().eq_ignore_ascii_case(option.as_bytes()))
    })
}

/// The media type, from the extensions the demo site uses.
fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// A whole response: status line, the fields every response carries, body.
fn response(status: &str, kind: &str, body: &[u8], head_only: bool, keep_alive: bool) -> Vec<u8> {
    let date = httpdate::fmt_http_date(SystemTime::now());
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let length = body.len();
    let mut bytes = format!(
        "HTTP/1.1 {status}\r\nDate: {date}\r\nServer: mioserve-example\r\n\
         Content-Type: {kind}\r\nContent-Length: {length}\r\nConnection: {connection}\r\n\r\n"
    )
    .into_bytes();
    if !head_only {
        bytes.extend_from_slice(body);
    }
    bytes
}

/// 127.0.0.1 and the port given as the first argument, or `default_port`.
/// A bad argument ends the program with one line on stderr.
pub fn address_from_args(default_port: u16) -> SocketAddr {
    let port = match std::env::args().nth(1) {
        None => default_port,
        Some(arg) => arg.parse().unwrap_or_else(|_| {
            eprintln!("usage: cargo run --example NAME -- [PORT]  ('{arg}' is not a port)");
            std::process::exit(2)
        }),
    };
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Rungs 1 and 2: a blocking listener on [`address_from_args`], announced
/// with the pid and `how` it serves. Failing to bind ends the program with
/// one line on stderr.
pub fn listen_blocking(name: &str, default_port: u16, how: &str) -> std::net::TcpListener {
    let address = address_from_args(default_port);
    match std::net::TcpListener::bind(address) {
        Ok(listener) => {
            eprintln!(
                "{name}: pid {}, http://{address}/ ({how})",
                std::process::id()
            );
            listener
        }
        Err(error) => {
            eprintln!("{name}: {address}: {error}");
            std::process::exit(1);
        }
    }
}

// Below: the plumbing rungs 3 and 4 share around their event loops.

/// The listener's token in rungs 3 and 4. Slab keys count up from 0 and never
/// get this high.
pub const LISTENER: Token = Token(usize::MAX);

/// Rungs 3 and 4: binds a nonblocking listener to [`address_from_args`],
/// registers it with a new `Poll` under [`LISTENER`] (readable: a connection
/// is waiting) and runs `event_loop`. If any of it fails (in the loop, only
/// `poll` can), says so in one line and exits with 1.
pub fn serve(name: &str, default_port: u16, event_loop: fn(Poll, TcpListener) -> io::Result<()>) {
    let address = address_from_args(default_port);
    let result = TcpListener::bind(address).and_then(|mut listener| {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        eprintln!("{name}: pid {}, http://{address}/", std::process::id());
        event_loop(poll, listener)
    });
    if let Err(error) = result {
        eprintln!("{name}: {address}: {error}");
        std::process::exit(1);
    }
}

/// Rungs 3 and 4: sleeps until some socket is ready, filling `events`. A
/// signal interrupting the sleep is no error: sleep again.
pub fn wait(poll: &mut Poll, events: &mut Events) -> io::Result<()> {
    loop {
        match poll.poll(events, None) {
            Err(error) if error.kind() == Interrupted => continue,
            result => return result,
        }
    }
}

/// What one nonblocking `read` or `write` came to, for rungs 3 and 4.
pub enum Transfer {
    /// This many bytes moved (never 0).
    Bytes(usize),
    /// The kernel saying "not ready after all": nothing to read (drained) or
    /// no room to write (send buffer full). Wait for the next event.
    WouldBlock,
    /// EOF, or an error: the connection is over either way.
    Closed,
}

impl From<io::Result<usize>> for Transfer {
    fn from(result: io::Result<usize>) -> Self {
        match result {
            Ok(0) => Transfer::Closed,
            Ok(count) => Transfer::Bytes(count),
            Err(error) if error.kind() == WouldBlock => Transfer::WouldBlock,
            Err(_) => Transfer::Closed,
        }
    }
}

/// Rungs 3 and 4: one `read` of up to [`READ_CHUNK_BYTES`], appended to
/// `buf`; retried if a signal interrupts it.
pub fn read_some(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Transfer {
    let mut chunk = [0; READ_CHUNK_BYTES];
    let result = loop {
        match socket.read(&mut chunk) {
            Err(error) if error.kind() == Interrupted => continue,
            result => break result,
        }
    };
    if let Ok(count) = result {
        buf.extend_from_slice(&chunk[..count]);
    }
    Transfer::from(result)
}

/// Rungs 3 and 4: one `write` of `bytes`; retried if a signal interrupts it.
pub fn write_some(socket: &mut TcpStream, bytes: &[u8]) -> Transfer {
    loop {
        match socket.write(bytes) {
            Err(error) if error.kind() == Interrupted => continue,
            result => break Transfer::from(result),
        }
    }
}

/// Rungs 3 and 4: accepts until the listen queue is empty (the listener is
/// edge-triggered too) and registers each socket under its slab key, which is
/// thus its `Token`. A failed accept or register costs that connection only.
pub fn accept_all<C>(
    listener: &TcpListener,
    poll: &Poll,
    connections: &mut Slab<C>,
    new_connection: fn(TcpStream) -> C,
) {
    loop {
        let mut socket = match listener.accept() {
            Ok((socket, _peer)) => socket,
            Err(error) if error.kind() == WouldBlock => return,
            Err(error) if error.kind() == Interrupted => continue,
            Err(error) => return eprintln!("accept: {error}"),
        };
        let entry = connections.vacant_entry();
        // Both directions, once: an edge-triggered interest costs nothing
        // until an edge happens, so we never need epoll_ctl again.
        let interest = Interest::READABLE | Interest::WRITABLE;
        match poll
            .registry()
            .register(&mut socket, Token(entry.key()), interest)
        {
            Ok(()) => _ = entry.insert(new_connection(socket)),
            Err(error) => eprintln!("register: {error}"),
        }
    }
}
