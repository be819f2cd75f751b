//! Starting and stopping the server: one worker thread per core, each with a
//! listening socket.
//!
//! Where the listening sockets come from (a fresh `SO_REUSEPORT` group with
//! one socket per worker, a predecessor's group joined on purpose, or sockets
//! inherited from systemd) is [`crate::listeners`]' business.
//!
//! ## Shutdown
//! The main thread waits for SIGINT or SIGTERM, sets a shared flag and wakes
//! every worker through its `mio::Waker`. Each worker then stops accepting,
//! finishes the responses in flight (bounded by
//! [`crate::config::SHUTDOWN_GRACE`]), flushes its log buffer and returns.
//! `SIGUSR1` wakes the workers too, to publish their counters for the main
//! thread to print.
//!
//! A worker whose `epoll_wait` fails cannot go on: it prints one line at once
//! and raises `SIGTERM`, so the shutdown above follows, [`run`] returns that
//! worker's error and `main` exits with status 1.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::Waker;

use crate::buffer::BufferPool;
use crate::cache::FileCache;
use crate::clock::Clock;
use crate::config::{Config, LogTarget, RESERVED_FILE_DESCRIPTORS};
use crate::connection::{Context, Timeouts};
use crate::listeners;
use crate::log::AccessLog;
use crate::respond::Site;
use crate::stats::{StatsBoard, WorkerStats};
use crate::sys;
use crate::trace::Tracer;
use crate::worker::Worker;

/// After SIGUSR1 asks the workers to publish their counters, how long the
/// main thread waits before printing them.
const STATS_REFRESH_WAIT: Duration = Duration::from_millis(50);

/// A startup failure, printed by `main` as one line.
#[derive(Debug)]
pub struct StartError {
    /// What we were doing.
    what: String,
    /// Why it failed.
    source: io::Error,
}

impl StartError {
    /// A failure to do `what`, caused by `source`.
    pub(crate) fn new(what: impl Into<String>, source: io::Error) -> StartError {
        StartError {
            what: what.into(),
            source,
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A running server: its workers and the means to stop them.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    workers: Vec<JoinHandle<io::Result<()>>>,
    wakers: Vec<Waker>,
    shutdown: Arc<AtomicBool>,
    board: Arc<StatsBoard>,
}

impl Server {
    /// Opens the root, opens the listeners, opens the log and starts the
    /// workers. Every error here is a configuration problem worth one clear
    /// line.
    pub fn start(config: &Config) -> Result<Server, StartError> {
        let threads = config.threads.max(1);
        let board = Arc::new(StatsBoard::new(threads));
        let stats_endpoint = config
            .stats_path
            .as_deref()
            .map(|path| (path, Arc::clone(&board)));
        let site = Site::open_with_stats(&config.root, stats_endpoint).map_err(|error| {
            StartError::new(format!("cannot serve '{}'", config.root.display()), error)
        })?;
        let site = Arc::new(site);
        let open_files = sys::raise_open_files_limit()
            .map_err(|error| StartError::new("cannot read the open-files limit", error))?;
        let started = Instant::now();
        let addr = SocketAddr::new(config.bind, config.port);
        let listeners = listeners::open(addr, config.binding, threads)?;
        let local_addr = listeners[0]
            .local_addr()
            .map_err(|error| StartError::new("cannot read the bound address", error))?;
        let log = open_log(&config.log)?;
        let max_connections = config.max_connections.unwrap_or_else(|| {
            // A connection sending a file holds two descriptors.
            (open_files.saturating_sub(RESERVED_FILE_DESCRIPTORS) / 2) as usize
        });
        let per_worker = (max_connections / threads).max(1);
        let shutdown = Arc::new(AtomicBool::new(false));
        let log_error_reported = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::with_capacity(threads);
        let mut wakers = Vec::with_capacity(threads);
        for (worker_id, listener) in listeners.into_iter().enumerate() {
            let sink = log
                .as_ref()
                .map(File::try_clone)
                .transpose()
                .map_err(|error| StartError::new("cannot share the access log", error))?;
            let ctx = Context {
                site: Arc::clone(&site),
                clock: Clock::new(),
                pool: BufferPool::default(),
                log: AccessLog::new(sink, Arc::clone(&log_error_reported)),
                scratch: Vec::new(),
                cache: FileCache::default(),
                timeouts: Timeouts {
                    header: config.header_timeout,
                    send: config.send_timeout,
                    keepalive: config.keepalive_timeout,
                },
                draining: false,
                tracer: Tracer::new(config.trace, started, worker_id),
                stats: WorkerStats::default(),
            };
            let (worker, waker) = Worker::new(
                worker_id,
                listener,
                ctx,
                per_worker,
                Arc::clone(&shutdown),
                Arc::clone(&board),
            )
            .map_err(|error| StartError::new("cannot create an event loop", error))?;
            let handle = std::thread::Builder::new()
                .name(format!("mioserve-worker-{worker_id}"))
                .spawn(move || worker.run())
                .map_err(|error| StartError::new("cannot start a worker thread", error))?;
            workers.push(handle);
            wakers.push(waker);
        }
        Ok(Server {
            local_addr,
            workers,
            wakers,
            shutdown,
            board,
        })
    }

    /// The address the workers listen on (with the real port if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Every worker's counters as a text table. Workers publish them once a
    /// second; call [`Server::refresh_stats`] first for up-to-date figures.
    pub fn stats_table(&self) -> String {
        self.board.table()
    }

    /// Asks every worker to publish its counters now (they do so on their
    /// next loop iteration, within milliseconds).
    pub fn refresh_stats(&self) -> io::Result<()> {
        for waker in &self.wakers {
            waker.wake()?;
        }
        Ok(())
    }

    /// Stops gracefully: workers stop accepting, finish responses in flight,
    /// flush their logs and exit. Returns the first worker error, if any.
    pub fn shutdown(self) -> io::Result<()> {
        self.shutdown.store(true, Ordering::Relaxed);
        for waker in &self.wakers {
            waker.wake()?;
        }
        let mut result = Ok(());
        for worker in self.workers {
            let outcome = worker
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a worker panicked")));
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }

    /// Stops like [`Server::shutdown`], then returns the final counters.
    pub fn shutdown_with_stats(self) -> (io::Result<()>, String) {
        let board = Arc::clone(&self.board);
        (self.shutdown(), board.table())
    }
}

/// Runs the server until SIGINT or SIGTERM, then shuts it down gracefully.
/// Prints the start line on stdout.
pub fn run(config: &Config) -> Result<(), StartError> {
    // Handle the signals before anyone can learn our port and send one.
    let mut signals =
        signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM, libc::SIGUSR1])
            .map_err(|error| StartError::new("cannot install signal handlers", error))?;
    let server = Server::start(config)?;
    let mut stdout = io::stdout().lock();
    let _ = writeln!(
        stdout,
        "mioserve: serving {} on http://{} ({} worker{})",
        config.root.display(),
        server.local_addr(),
        server.workers(),
        if server.workers() == 1 { "" } else { "s" }
    );
    let _ = stdout.flush();
    drop(stdout);
    for signal in signals.forever() {
        if signal != libc::SIGUSR1 {
            break;
        }
        // SIGUSR1: the counters, as fresh as the workers can make them.
        if server.refresh_stats().is_ok() {
            std::thread::sleep(STATS_REFRESH_WAIT);
        }
        let report = format!("mioserve: counters\n{}", server.stats_table());
        let _ = io::stderr().write_all(report.as_bytes());
    }
    let (result, table) = server.shutdown_with_stats();
    let report = format!("mioserve: final counters\n{table}");
    let _ = io::stderr().write_all(report.as_bytes());
    result.map_err(|error| StartError::new("a worker failed", error))
}

/// Opens the access log: one descriptor, duplicated for each worker. Every
/// duplicate shares the open file description, `O_APPEND` included.
fn open_log(target: &LogTarget) -> Result<Option<File>, StartError> {
    match target {
        LogTarget::Off => Ok(None),
        LogTarget::Stdout => io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map(|fd| Some(File::from(fd)))
            .map_err(|error| StartError::new("cannot use stdout for the access log", error)),
        LogTarget::File(path) => OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map(Some)
            .map_err(|error| {
                StartError::new(
                    format!("cannot open access log '{}'", path.display()),
                    error,
                )
            }),
    }
}
