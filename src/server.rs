//! Starting and stopping the server: one worker thread per core, each with a
//! listening socket.
//!
//! Where the listening sockets come from (a fresh `SO_REUSEPORT` group with
//! one socket per worker, a predecessor's group joined on purpose, or sockets
//! inherited from systemd) is [`crate::listeners`]' business.
//!
//! ## Shutdown
//! The main thread waits for SIGINT or SIGTERM, asks for a drain in the
//! shared [`ShutdownRequest`] and wakes every worker through its
//! `mio::Waker`. Each worker then walks the phases of [`crate::drain`]: keeps
//! accepting for `--drain-delay` (health check failing, every response
//! closing its connection), stops accepting, finishes the responses in flight
//! within `--shutdown-timeout`, flushes its log buffer and returns. The main
//! thread says on stderr what it is waiting for; a second SIGINT or SIGTERM
//! asks the workers to stop at once (they still flush the log), and [`run`]
//! reports that as [`Stopped::Forced`]. `SIGUSR1` wakes the workers too, to
//! publish their counters for the main thread to print.
//!
//! ## The access log on SIGHUP
//! `SIGHUP` reopens the access log file (logrotate's `create` then
//! `postrotate` signal): the main thread opens the path again, publishes the
//! new file and wakes the workers, which switch to it
//! ([`crate::log::SharedLog`] tells how no line is lost). A failed reopen is
//! reported on stderr and the old file kept. With `--log -` or `--no-log`
//! there is nothing to reopen, and `SIGHUP` keeps its usual meaning, a hangup
//! of the terminal that started us: the server drains and exits as on
//! `SIGTERM`.
//!
//! A worker whose `epoll_wait` fails cannot go on: it prints one line at once
//! and raises `SIGTERM`, so the shutdown above follows, [`run`] returns that
//! worker's error and `main` exits with status 1.

use std::fmt;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::Waker;

use crate::buffer::BufferPool;
use crate::cache::FileCache;
use crate::clock::Clock;
use crate::config::{self, Config, LogFormat, LogTarget};
use crate::connection::{Context, Timeouts};
use crate::drain::ShutdownRequest;
use crate::listeners;
use crate::log::{AccessLog, SharedLog};
use crate::respond::Site;
use crate::stats::{StatsBoard, WorkerStats};
use crate::sys;
use crate::trace::Tracer;
use crate::worker::Worker;

/// After SIGUSR1 asks the workers to publish their counters, how long the
/// main thread waits before printing them.
const STATS_REFRESH_WAIT: Duration = Duration::from_millis(50);

/// While draining, how often the main thread looks for a second signal and
/// for the workers' end. Short enough that a second Ctrl-C feels immediate.
const DRAIN_WATCH_INTERVAL: Duration = Duration::from_millis(20);

/// How the server came to stop, for the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// A graceful drain ran to its end: exit status 0.
    Drained,
    /// A second signal cut the drain short (responses in flight may have been
    /// cut): exit status `128 + signal`, as a shell reports a process killed
    /// by that signal, so that scripts and supervisors can tell it from a
    /// clean stop.
    Forced {
        /// The signal that forced the stop.
        signal: i32,
    },
}

impl Stopped {
    /// The process's exit status.
    pub fn exit_status(self) -> u8 {
        match self {
            Stopped::Drained => 0,
            Stopped::Forced { signal } => u8::try_from(128 + signal).unwrap_or(u8::MAX),
        }
    }
}

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
    shutdown: Arc<ShutdownRequest>,
    board: Arc<StatsBoard>,
    /// The access log the workers write to, reopened on SIGHUP; `None` with
    /// `--no-log`.
    log: Option<Arc<SharedLog>>,
}

impl Server {
    /// Opens the root, opens the listeners, opens the log and starts the
    /// workers. Every error here is a configuration problem worth one clear
    /// line.
    ///
    /// A socket-activated program must call this before it opens any
    /// descriptor of its own (see [`listeners::Inherited::take`]).
    pub fn start(config: &Config) -> Result<Server, StartError> {
        Server::start_with(config, listeners::Inherited::take()?)
    }

    /// [`Server::start`] with the sockets systemd passed already taken.
    fn start_with(config: &Config, inherited: listeners::Inherited) -> Result<Server, StartError> {
        let threads = config.threads.max(1);
        let board = Arc::new(StatsBoard::new(threads));
        let site = Site::open_with(&config.root, config.site.clone(), Arc::clone(&board)).map_err(
            |error| StartError::new(format!("cannot serve '{}'", config.root.display()), error),
        )?;
        let site = Arc::new(site);
        let open_files = sys::raise_open_files_limit()
            .map_err(|error| StartError::new("cannot read the open-files limit", error))?;
        let started = Instant::now();
        let addr = SocketAddr::new(config.bind, config.port);
        let (listeners, origin) = listeners::open(addr, config.binding, threads, inherited)?;
        let local_addr = listeners[0]
            .local_addr()
            .map_err(|error| StartError::new("cannot read the bound address", error))?;
        let log = open_log(&config.log, config.log_format)?;
        let max_connections = config
            .max_connections
            .unwrap_or_else(|| config::default_max_connections(open_files, threads));
        let shutdown = Arc::new(ShutdownRequest::new(
            config.drain_delay,
            config.shutdown_timeout,
        ));
        let log_error_reported = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::with_capacity(threads);
        let mut wakers = Vec::with_capacity(threads);
        for (worker_id, listener) in listeners.into_iter().enumerate() {
            let ctx = Context {
                site: Arc::clone(&site),
                clock: Clock::new(),
                pool: BufferPool::default(),
                log: AccessLog::new(log.clone(), Arc::clone(&log_error_reported)),
                scratch: Vec::new(),
                cache: FileCache::default(),
                timeouts: Timeouts {
                    header: config.header_timeout,
                    send: config.send_timeout,
                    keepalive: config.keepalive_timeout,
                },
                draining: false,
                tracer: Tracer::new(config.trace, started, worker_id)
                    .in_format(config.trace_format),
                stats: WorkerStats::default(),
                proxy_protocol: config.proxy_protocol,
                trusted_proxies: config.trusted_proxies.clone(),
            };
            let (worker, waker) = Worker::new(
                worker_id,
                listener,
                origin,
                ctx,
                config::worker_share(max_connections, threads, worker_id),
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
            log,
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
    fn stats_table(&self) -> String {
        self.board.table()
    }

    /// Connections open in all workers, as last published.
    fn open_connections(&self) -> u64 {
        self.board
            .snapshot()
            .iter()
            .flat_map(|stats| stats.open)
            .sum()
    }

    /// Asks every worker to publish its counters now (they do so on their
    /// next loop iteration, within milliseconds).
    fn refresh_stats(&self) -> io::Result<()> {
        self.wake_workers()
    }

    /// Opens the access log's path again (after logrotate renamed the file)
    /// and has every worker switch to the new file; on an error the old file
    /// is kept. `None` when the log is not a file (`--log -`, `--no-log`).
    fn reopen_log(&self) -> Option<io::Result<()>> {
        let reopened = self.log.as_ref()?.reopen()?;
        Some(reopened.and_then(|()| self.wake_workers()))
    }

    /// Interrupts every worker's `poll`; each then looks at what the main
    /// thread asked for (shutdown, counters, a reopened log).
    fn wake_workers(&self) -> io::Result<()> {
        for waker in &self.wakers {
            waker.wake()?;
        }
        Ok(())
    }

    /// Starts a graceful drain (see [`crate::drain`]) and returns at once.
    pub fn drain(&self) -> io::Result<()> {
        self.shutdown.drain();
        self.wake_workers()
    }

    /// Asks the workers to stop at once: close every connection, flush the
    /// log. Returns at once.
    pub fn stop_now(&self) -> io::Result<()> {
        self.shutdown.stop_now();
        self.wake_workers()
    }

    /// Whether every worker has returned.
    fn has_stopped(&self) -> bool {
        self.workers.iter().all(JoinHandle::is_finished)
    }

    /// Stops gracefully: drains, then waits for the workers. Returns the
    /// first worker error, if any.
    pub fn shutdown(self) -> io::Result<()> {
        self.drain()?;
        self.join()
    }

    /// Waits for every worker to return (after [`Server::drain`] or
    /// [`Server::stop_now`]), then returns the first worker error, if any,
    /// and the final counters.
    fn join_with_stats(self) -> (io::Result<()>, String) {
        let board = Arc::clone(&self.board);
        (self.join(), board.table())
    }

    fn join(self) -> io::Result<()> {
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
}

/// Runs the server until SIGINT or SIGTERM, then drains it (a second signal
/// stops it at once) and says how it stopped. Prints the start line on
/// stderr (stdout carries only access-log lines), and the drain and the
/// final counters on stderr too.
pub fn run(config: &Config) -> Result<Stopped, StartError> {
    // Before the signal handling below opens its pipe: descriptors from 3 up
    // must be inherited ones or none (see `listeners::Inherited::take`).
    let inherited = listeners::Inherited::take()?;
    // Handle the signals before anyone can learn our port and send one.
    let mut signals = signal_hook::iterator::Signals::new([
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGHUP,
    ])
    .map_err(|error| StartError::new("cannot install signal handlers", error))?;
    let server = Server::start_with(config, inherited)?;
    let _ = io::stderr().write_all(start_line(config, &server).as_bytes());
    for signal in signals.forever() {
        match signal {
            libc::SIGINT | libc::SIGTERM => break,
            libc::SIGUSR1 => print_counters(&server),
            libc::SIGHUP if reopen_log(&server, config) => {}
            // A hangup with no log file to reopen: the terminal that ran us
            // went away, so we stop as its other programs do.
            libc::SIGHUP => break,
            _ => {}
        }
    }
    let _ = server.drain();
    // The workers publish their counters as they start draining.
    std::thread::sleep(STATS_REFRESH_WAIT);
    let announcement = drain_announcement(
        server.open_connections(),
        config.drain_delay,
        config.shutdown_timeout,
    );
    let _ = writeln!(io::stderr(), "mioserve: {announcement}");
    let stopped = watch_drain(&mut signals, &server, config);
    let (result, table) = server.join_with_stats();
    let report = format!("mioserve: final counters\n{table}");
    let _ = io::stderr().write_all(report.as_bytes());
    result.map_err(|error| StartError::new("a worker failed", error))?;
    Ok(stopped)
}

/// SIGHUP: opens the access log file again, reporting a failure. `false`
/// when there is no log file to reopen (`--log -`, `--no-log`).
fn reopen_log(server: &Server, config: &Config) -> bool {
    let Some(reopened) = server.reopen_log() else {
        return false;
    };
    if let (Err(error), LogTarget::File(path)) = (reopened, &config.log) {
        eprintln!(
            "mioserve: cannot reopen access log '{}': {error}; keeping the old file",
            path.display()
        );
    }
    true
}

/// Waits for the workers to finish draining. A second SIGINT or SIGTERM
/// meanwhile asks them to stop at once; a SIGHUP still reopens the log.
fn watch_drain(
    signals: &mut signal_hook::iterator::Signals,
    server: &Server,
    config: &Config,
) -> Stopped {
    let mut stopped = Stopped::Drained;
    while !server.has_stopped() {
        for signal in signals.pending() {
            match signal {
                libc::SIGINT | libc::SIGTERM if stopped == Stopped::Drained => {
                    let _ = writeln!(io::stderr(), "mioserve: stopping now");
                    let _ = server.stop_now();
                    stopped = Stopped::Forced { signal };
                }
                libc::SIGUSR1 => print_counters(server),
                libc::SIGHUP => {
                    reopen_log(server, config);
                }
                _ => {}
            }
        }
        std::thread::sleep(DRAIN_WATCH_INTERVAL);
    }
    stopped
}

/// The line printed when a drain starts: what it waits for, and for how long.
fn drain_announcement(open: u64, drain_delay: Duration, shutdown_timeout: Duration) -> String {
    let connections = if open == 1 {
        "connection"
    } else {
        "connections"
    };
    let timeout = shutdown_timeout.as_secs();
    let wait = if drain_delay.is_zero() {
        format!(", up to {timeout} s")
    } else {
        let delay = drain_delay.as_secs();
        format!(": accepting for {delay} s more, then up to {timeout} s")
    };
    format!("draining {open} {connections}{wait} (press Ctrl-C again to stop now)")
}

/// SIGUSR1: prints the counters, as fresh as the workers can make them.
fn print_counters(server: &Server) {
    if server.refresh_stats().is_ok() {
        std::thread::sleep(STATS_REFRESH_WAIT);
    }
    let report = format!("mioserve: counters\n{}", server.stats_table());
    let _ = io::stderr().write_all(report.as_bytes());
}

/// `mioserve: serving ROOT on http://ADDR (N workers); access log: WHERE`,
/// with its newline.
fn start_line(config: &Config, server: &Server) -> String {
    let log = match &config.log {
        LogTarget::File(path) => format!("access log: {}", path.display()),
        LogTarget::Stdout => "access log: stdout".to_owned(),
        LogTarget::Off => "no access log".to_owned(),
    };
    format!(
        "mioserve: serving {} on http://{} ({} worker{}); {log}\n",
        config.root.display(),
        server.local_addr(),
        server.workers(),
        if server.workers() == 1 { "" } else { "s" }
    )
}

/// Opens the access log: one file, which every worker writes to.
fn open_log(target: &LogTarget, format: LogFormat) -> Result<Option<Arc<SharedLog>>, StartError> {
    let opened = SharedLog::open(target, format).map_err(|error| match target {
        LogTarget::File(path) => StartError::new(
            format!("cannot open access log '{}'", path.display()),
            error,
        ),
        _ => StartError::new("cannot use stdout for the access log", error),
    })?;
    Ok(opened.map(Arc::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drain_announcement_says_what_it_waits_for() {
        let second = Duration::from_secs(1);
        assert_eq!(
            drain_announcement(3, Duration::ZERO, 5 * second),
            "draining 3 connections, up to 5 s (press Ctrl-C again to stop now)"
        );
        assert_eq!(
            drain_announcement(1, 10 * second, 5 * second),
            "draining 1 connection: accepting for 10 s more, then up to 5 s \
             (press Ctrl-C again to stop now)"
        );
    }

    #[test]
    fn a_forced_stop_exits_like_a_shell_reports_the_signal() {
        assert_eq!(Stopped::Drained.exit_status(), 0);
        assert_eq!(
            Stopped::Forced {
                signal: libc::SIGINT
            }
            .exit_status(),
            130
        );
        assert_eq!(
            Stopped::Forced {
                signal: libc::SIGTERM
            }
            .exit_status(),
            143
        );
    }
}
