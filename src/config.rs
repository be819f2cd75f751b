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

use crate::listeners::Binding;
use crate::trace::TraceLevel;

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

/// How long a shutdown (SIGINT, SIGTERM) waits for responses in flight before
/// closing the connections that still have one.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How often each worker writes its buffered access-log lines to the log file.
pub const LOG_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// A worker also writes its access-log buffer as soon as it holds this many
/// bytes, so a burst of requests never grows the buffer without bound.
pub const LOG_BUFFER_FLUSH_BYTES: usize = 64 * 1024;

/// When `accept` fails because the process ran out of file descriptors
/// (`EMFILE`, `ENFILE`), a worker stops accepting for this long (or until one
/// of its connections closes) instead of retrying in a busy loop.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Length of each listening socket's queue of connections that the kernel
/// has completed but we have not accepted yet (capped by
/// `net.core.somaxconn`).
pub const LISTEN_BACKLOG: i32 = 4096;

/// Readiness events fetched from the kernel in one `poll` call.
pub const EVENTS_PER_POLL: usize = 1024;

/// File descriptors kept free for everything that is not a client connection:
/// listeners, the epoll instances, files being sent, the log.
pub const RESERVED_FILE_DESCRIPTORS: u64 = 64;

/// Where access-log lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// Append to this file (created if missing).
    File(PathBuf),
    /// Write to standard output (`--log -`).
    Stdout,
    /// No access log (`--no-log`).
    Off,
}

/// Everything a server needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// The document root: only files beneath it are ever served.
    pub root: PathBuf,
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
    /// Most simultaneous client connections for the whole process; `None`
    /// sizes it from the open-files limit.
    pub max_connections: Option<usize>,
    /// Where the access log goes.
    pub log: LogTarget,
    /// See [`DEFAULT_KEEPALIVE_TIMEOUT`].
    pub keepalive_timeout: Duration,
    /// See [`DEFAULT_HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// See [`DEFAULT_SEND_TIMEOUT`].
    pub send_timeout: Duration,
    /// What `--trace` prints to stderr.
    pub trace: TraceLevel,
    /// Where the live counters are served as JSON (`--stats-path`), if at all.
    pub stats_path: Option<String>,
}

impl Config {
    /// A configuration with every default, serving `root`.
    pub fn new(root: impl Into<PathBuf>) -> Config {
        Config {
            root: root.into(),
            bind: IpAddr::from([127, 0, 0, 1]),
            port: DEFAULT_PORT,
            binding: Binding::Fresh,
            threads: available_cores(),
            max_connections: None,
            log: LogTarget::File(PathBuf::from("access.log")),
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            trace: TraceLevel::Off,
            stats_path: None,
        }
    }
}

/// The number of cores this process may run on: the default worker count.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
