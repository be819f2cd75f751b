//! What a running server is told: the [`Config`] built from the command line,
//! and every limit and timeout as a named constant.
//!
//! Limits are deliberate. A server that accepts unbounded input can be made to
//! use unbounded memory by one client; a server without timeouts can be made
//! to hold a connection (a file descriptor, a slab slot) forever. Each
//! constant below says what happens when it is hit.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::files::SymlinkPolicy;
use crate::listeners::Binding;
use crate::proxy::Cidr;
use crate::trace::{TraceFormat, TraceLevel};

/// Port used when `--port` is not given.
pub const DEFAULT_PORT: u16 = 8888;

/// Largest request head (request line plus header fields plus the blank line)
/// we accept. A head that does not fit gets `431 Request Header Fields Too
/// Large` and the connection is closed. It is also the size of every read
/// buffer, so it bounds the memory a busy connection can pin.
pub const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;

/// Longest request target (path and query) we accept; longer gets `414 URI
/// Too Long` and the connection is closed.
pub const MAX_REQUEST_TARGET_BYTES: usize = 4 * 1024;

/// Largest request body we are willing to receive and throw away. mioserve
/// never uses request bodies: a request that announces one is answered and
/// its connection closed, reading and discarding what the client still sends
/// for at most [`LINGER_TIMEOUT`]. A larger announced body gets `413 Content
/// Too Large` straight away.
pub const MAX_DISCARDED_BODY_BYTES: u64 = 1024 * 1024;

/// Most header fields in one request; more gets `431`.
pub const MAX_HEADER_FIELDS: usize = 64;

/// How long an idle keep-alive connection waits for its next request before we
/// close it (`--keepalive-timeout`). Announced to clients as
/// `Keep-Alive: timeout=N`.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a complete request head, counted from
/// the first moment we wait for it (`--header-timeout`). When it runs out the
/// client gets `408 Request Timeout` (if it sent anything) and is closed: this
/// is what defeats "slowloris" clients that trickle a header byte at a time.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may go without accepting any of the response we are
/// sending (`--send-timeout`): the clock restarts on every byte of progress.
/// When it runs out the connection is closed.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// After the last response on a connection we are closing with unread input
/// pending, how long we keep reading and discarding what the client still
/// sends before closing anyway. Closing a socket with unread data makes the
/// kernel send a reset, which can destroy the response before the client has
/// read it ("lingering close", as nginx calls it).
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a shutdown (SIGINT, SIGTERM), once it has stopped accepting,
/// waits for responses in flight before closing the connections that still
/// have one (`--shutdown-timeout`).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a shutdown keeps accepting and serving (with the health check
/// failing and every response closing its connection) before it stops
/// accepting (`--drain-delay`): none by default, so Ctrl-C stays quick. Set it
/// to a few health-check intervals behind a load balancer.
pub const DEFAULT_DRAIN_DELAY: Duration = Duration::ZERO;

/// How long a worker holds an access-log line before writing its buffer to a
/// log that is a regular file: at most one write a second per busy worker.
/// A log that is a terminal, pipe or socket is written at the end of every
/// loop iteration that recorded a line instead (see [`crate::log`]).
pub const LOG_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// A worker also writes its access-log buffer as soon as it holds this many
/// bytes, so a burst of requests never grows the buffer without bound.
pub const LOG_BUFFER_FLUSH_BYTES: usize = 64 * 1024;

/// Most bytes of access-log lines a worker keeps while the reader of a
/// terminal, pipe or socket log does not take them; past it, new lines are
/// dropped and counted (`log_lines_dropped`), so that a stalled reader never
/// blocks serving (see [`crate::log`]).
pub const LOG_BACKLOG_BYTES: usize = 1024 * 1024;

/// How soon a worker tries again to write access-log lines that a terminal,
/// pipe or socket did not take.
pub const LOG_STALLED_RETRY: Duration = Duration::from_millis(100);

/// When `accept` fails because the process ran out of file descriptors
/// (`EMFILE`, `ENFILE`), a worker stops accepting for this long (or until one
/// of its connections closes) instead of retrying in a busy loop.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The `Retry-After` of a `503 Service Unavailable` (RFC 9110 §10.2.3), the
/// answer to a request whose file could not be opened because descriptors ran
/// out (`EMFILE`, `ENFILE`). Descriptors come back as connections close and
/// bodies finish sending, which on a busy server takes well under a second;
/// the connection stays open for the retry.
pub const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Length of each listening socket's queue of connections that the kernel
/// has completed but we have not accepted yet (capped by
/// `net.core.somaxconn`).
pub const LISTEN_BACKLOG: i32 = 4096;

/// Readiness events fetched from the kernel in one `poll` call.
pub const EVENTS_PER_POLL: usize = 1024;

/// Most file bytes one connection sends per turn of the event loop. A
/// connection that reaches it while its socket still takes bytes yields: the
/// worker serves every other ready connection before giving it another turn
/// (see [`crate::connection`], "Take turns"). Without it, one `sendfile` on
/// loopback or a fast link keeps copying for as long as the receiver's window
/// is open (measured: up to 10 MiB in one call), and every other connection
/// of the worker waits. nginx's `sendfile_max_chunk` is 2 MiB for the same
/// reason; the measurement behind this value is in `docs/benchmarks.md`.
pub const FILE_BYTES_PER_TURN: usize = 2 * 1024 * 1024;

/// File descriptors the default connection cap leaves free for the process
/// itself (standard streams, the document root, the access log) and, above
/// all, for files being sent from disk: a connection answered from the memory
/// cache holds one descriptor, its socket, and one sending a file from disk
/// holds a second for as long as the body takes. When more files are open at
/// once than this leaves room for, opening the next one fails (`EMFILE`) and
/// its request gets `503 Service Unavailable` with `Retry-After`.
pub const RESERVED_FILE_DESCRIPTORS: u64 = 64;

/// File descriptors each worker holds besides its connections: its listener
/// (a socket of its own, or its duplicate of a socket inherited from systemd,
/// see `listeners::deal_out`), its epoll instance, its waker (an eventfd) and
/// its file cache's inotify instance. The access log's descriptor is not
/// among them: the workers share one (`Arc<LogFile>`), counted in
/// [`RESERVED_FILE_DESCRIPTORS`].
pub const FILE_DESCRIPTORS_PER_WORKER: u64 = 4;

/// The connection cap when `--max-connections` is not given: every descriptor
/// the open-files limit `open_files` allows, less what `workers` workers hold
/// and [`RESERVED_FILE_DESCRIPTORS`]. Sized for a connection holding one
/// descriptor (see there for those that hold two); with a limit of 20,000 and
/// two workers it is 19,928, enough for a C10K run of idle keep-alive clients.
/// At least one connection per worker.
pub fn default_max_connections(open_files: u64, workers: usize) -> usize {
    let workers = workers as u64;
    let reserved = RESERVED_FILE_DESCRIPTORS + FILE_DESCRIPTORS_PER_WORKER * workers;
    usize::try_from(open_files.saturating_sub(reserved).max(workers)).unwrap_or(usize::MAX)
}

/// Worker `worker`'s share of a cap of `max_connections` over `workers`
/// workers. Each worker holds its own share: it accepts only from its own
/// listener (`SO_REUSEPORT`), and a cap shared between workers would need a
/// counter every accept and close touches on every core, and a wake-up
/// across threads whenever a close frees a slot that a connection queued at
/// another worker could take. The shares add up to the cap exactly (the
/// remainder goes one each to the first workers), except that every worker
/// gets at least one: a worker that could hold no connection would leave its
/// share of new clients in its queue forever.
pub fn worker_share(max_connections: usize, workers: usize, worker: usize) -> usize {
    let workers = workers.max(1);
    let share = max_connections / workers + usize::from(worker < max_connections % workers);
    share.max(1)
}

/// Header fields the server writes itself, which `--header` may not add: a
/// second `Content-Length` or `Transfer-Encoding` would make the framing
/// ambiguous, and a second copy of the others would contradict the first.
const MANAGED_HEADERS: [&str; 13] = [
    "Accept-Ranges",
    "Connection",
    "Content-Length",
    "Content-Range",
    "Content-Type",
    "Date",
    "ETag",
    "Keep-Alive",
    "Last-Modified",
    "Server",
    "Transfer-Encoding",
    "Upgrade",
    "Vary",
];

/// One header field added to every file response (`--header`), checked
/// once at start so that nothing a client receives can be malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHeader {
    /// The field name, a token (RFC 9110 §5.1).
    pub name: String,
    /// The value, without surrounding whitespace: visible ASCII, spaces and
    /// tabs (RFC 9110 §5.5); never CR, LF or NUL.
    pub value: String,
}

impl ResponseHeader {
    /// Parses `Name: value`, refusing what would corrupt a response: a name
    /// that is not a token, a value with control characters (CR or LF would
    /// start a new field, or end the head), and the fields in
    /// `MANAGED_HEADERS`.
    pub fn parse(field: &str) -> Result<ResponseHeader, String> {
        let Some((name, value)) = field.split_once(':') else {
            return Err("expected 'Name: value', e.g. 'Cache-Control: max-age=3600'".to_owned());
        };
        let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(format!("'{name}' is not a valid header name"));
        }
        if let Some(managed) = MANAGED_HEADERS
            .iter()
            .find(|managed| managed.eq_ignore_ascii_case(name))
        {
            return Err(format!("{managed} is set by mioserve itself"));
        }
        let value = value.trim_matches([' ', '\t']);
        let is_field_byte = |b: u8| b == b' ' || b == b'\t' || b.is_ascii_graphic();
        if !value.bytes().all(is_field_byte) {
            return Err("a header value may hold only visible ASCII, spaces and tabs".to_owned());
        }
        Ok(ResponseHeader {
            name: name.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// Which origins may read responses from other sites' pages (`--cors`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsOrigins {
    /// Any origin: `Access-Control-Allow-Origin: *` (`--cors`).
    Any,
    /// Only these, each `scheme://host[:port]` (`--cors=ORIGIN`, repeatable):
    /// a request's `Origin` is echoed when it is one of them.
    Only(Vec<String>),
}

/// Checks a `--cors=ORIGIN` value: a serialized origin (RFC 6454 §6.2),
/// `scheme://host` with an optional port and nothing after it, as browsers
/// send it in `Origin` and compare it with `Access-Control-Allow-Origin`.
pub fn parse_origin(origin: &str) -> Result<String, String> {
    let host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let valid = host.is_some_and(|host| {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    });
    if valid {
        Ok(origin.to_owned())
    } else {
        Err("an origin is scheme://host[:port], e.g. https://app.example.com".to_owned())
    }
}

/// Where access-log lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// Append to this file (created if missing), opened again on SIGHUP.
    File(PathBuf),
    /// Write to standard output (`--log -`, the default).
    Stdout,
    /// No access log (`--no-log`).
    Off,
}

/// What an access-log line holds and how it is written (`--log-format`);
/// [`crate::log`] shows each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Common Log Format: client, time, request line, status, body bytes.
    #[default]
    Common,
    /// Combined Log Format (Apache's and nginx's default): the common
    /// fields, then `Referer` and `User-Agent`.
    Combined,
    /// One JSON object per line, with the combined format's facts.
    Json,
}

/// What a site serves and how, as the command line chose: the part of
/// [`Config`] that [`crate::respond::Site::open_with`] takes, and that the
/// site keeps to answer by.
#[derive(Clone, Debug, Default)]
pub struct SiteConfig {
    /// Where the health check is answered (`--health-path`), if at all:
    /// `200` while serving, `503` once draining.
    pub health_path: Option<String>,
    /// Where the live counters are served as JSON (`--stats-path`), if at all.
    pub stats_path: Option<String>,
    /// Where symlinks under the root may lead (`--follow-symlinks`).
    pub symlinks: SymlinkPolicy,
    /// Whether a directory without an index file gets a listing
    /// (`--list-dirs`) instead of `403`.
    pub list_dirs: bool,
    /// Fields added to every `2xx` and `304` answer with a file or a listing
    /// (`--header`).
    pub headers: Vec<ResponseHeader>,
    /// Which origins get CORS headers (`--cors`), if any.
    pub cors: Option<CorsOrigins>,
    /// The page served for missing paths that ask for HTML (`--fallback`),
    /// an absolute URL path such as `/index.html` that must name a file in
    /// the root.
    pub fallback: Option<String>,
    /// Whether to serve a file's precompressed sidecars (`file.br`,
    /// `file.zst`, `file.gz`) to clients that accept them
    /// (`--precompressed`; see [`crate::http::encoding`]); when off,
    /// `Accept-Encoding` is never read.
    pub precompressed: bool,
}

/// Everything a server needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// The document root: only files beneath it are ever served.
    pub root: PathBuf,
    /// What is served from it, and what besides: everything
    /// [`crate::respond::Site`] is opened with.
    pub site: SiteConfig,
    /// Address every worker's listener binds to.
    pub bind: IpAddr,
    /// Port to listen on; `0` lets the kernel pick one.
    pub port: u16,
    /// Whether to bind a fresh `SO_REUSEPORT` group or join a running
    /// predecessor's (`--reuse-port`). `bind`, `port` and this are unused
    /// when systemd passes the listening sockets (see [`crate::listeners`]).
    pub binding: Binding,
    /// Number of worker threads (each with its own listener and event loop).
    pub threads: usize,
    /// Most simultaneous client connections for the whole process, split
    /// over the workers by [`worker_share`]; `None` sizes it from the
    /// open-files limit ([`default_max_connections`]).
    pub max_connections: Option<usize>,
    /// Where the access log goes.
    pub log: LogTarget,
    /// How its lines are written.
    pub log_format: LogFormat,
    /// See [`DEFAULT_KEEPALIVE_TIMEOUT`].
    pub keepalive_timeout: Duration,
    /// See [`DEFAULT_HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// See [`DEFAULT_SEND_TIMEOUT`].
    pub send_timeout: Duration,
    /// What `--trace` prints to stderr.
    pub trace: TraceLevel,
    /// How `--trace` writes its lines: text for people, JSON for tools.
    pub trace_format: TraceFormat,
    /// See [`DEFAULT_DRAIN_DELAY`].
    pub drain_delay: Duration,
    /// See [`DEFAULT_SHUTDOWN_TIMEOUT`].
    pub shutdown_timeout: Duration,
    /// Whether every connection must start with a PROXY protocol header
    /// (`--proxy-protocol`, see [`crate::proxy`]), under the header timeout.
    pub proxy_protocol: bool,
    /// The only peers allowed to connect (`--trusted-proxy`); empty allows
    /// every peer.
    pub trusted_proxies: Vec<Cidr>,
}

impl Config {
    /// A configuration with every default, serving `root`.
    pub fn new(root: impl Into<PathBuf>) -> Config {
        Config {
            root: root.into(),
            site: SiteConfig::default(),
            bind: IpAddr::from([127, 0, 0, 1]),
            port: DEFAULT_PORT,
            binding: Binding::Fresh,
            threads: available_cores(),
            max_connections: None,
            log: LogTarget::Stdout,
            log_format: LogFormat::Common,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            trace: TraceLevel::Off,
            trace_format: TraceFormat::Text,
            drain_delay: DEFAULT_DRAIN_DELAY,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            proxy_protocol: false,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The number of cores this process may run on: the default worker count.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_counts_one_descriptor_per_connection() {
        // Issue 12: a C10K run under a limit of 20,000 must fit.
        assert_eq!(default_max_connections(20_000, 2), 19_928);
        assert!(default_max_connections(20_000, 64) >= 10_000);
        assert_eq!(default_max_connections(1024, 1), 956);
        // A limit too small for the reserve still lets every worker hold one.
        assert_eq!(default_max_connections(40, 4), 4);
    }

    #[test]
    fn response_headers_are_checked_at_start() {
        let parsed = ResponseHeader::parse("Cache-Control:  max-age=3600 ").unwrap();
        assert_eq!(
            (parsed.name.as_str(), parsed.value.as_str()),
            ("Cache-Control", "max-age=3600")
        );
        assert!(ResponseHeader::parse("X-Empty:").is_ok());
        for bad in [
            "no colon",
            ": value",
            "Bad Name: x",
            "X-Split: a\r\nSet-Cookie: b",
            "X-Line: a\nb",
            "X-Nul: a\0b",
            "X-Utf8: caf\u{e9}",
            "content-length: 5",
            "Transfer-Encoding: chunked",
        ] {
            assert!(ResponseHeader::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        for good in [
            "https://app.example.com",
            "http://localhost:3000",
            "http://[::1]:8080",
        ] {
            assert_eq!(parse_origin(good).as_deref(), Ok(good));
        }
        for bad in [
            "app.example.com",
            "https://",
            "https://a.example/path",
            "*",
            "https://a b",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn worker_shares_add_up_to_the_cap() {
        let shares = |max, workers| -> Vec<usize> {
            (0..workers)
                .map(|worker| worker_share(max, workers, worker))
                .collect()
        };
        assert_eq!(shares(10, 2), [5, 5]);
        assert_eq!(shares(10, 3), [4, 3, 3]);
        assert_eq!(shares(19_928, 2), [9_964, 9_964]);
        assert_eq!(shares(2, 4), [1, 1, 1, 1]);
    }
}
