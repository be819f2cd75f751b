//! One worker: a thread running its own event loop over its own listening
//! socket and its own connections.
//!
//! ## The loop
//! ```text
//! loop {
//!     wait in epoll_wait until a socket is ready or the next deadline passes
//!     (`--trace=events` prints each wake-up: "woke with 3 events")
//!     read the clock once for the whole iteration
//!     drop files that changed from the cache (inotify)
//!     for each readiness event: run that connection's state machine
//!     give connections that yielded their turn another one
//!     close or answer connections whose deadline passed
//!     accept new connections until WouldBlock or the connection cap
//!     follow the shutdown phases: drain, stop accepting, end idle connections
//!     if woken: switch to a reopened access log
//!     write the access-log buffer and publish the counters if a second has passed
//! }
//! ```
//! If `epoll_wait` itself fails, the loop cannot go on: the worker says so on
//! stderr at once and raises `SIGTERM`, so that the whole server shuts down
//! (see [`crate::server`]) and the process exits with a nonzero status.
//! Readiness (epoll) means the kernel tells us *when* a socket can make
//! progress and we do the I/O ourselves, without ever blocking: one thread can
//! juggle ten thousand connections because a connection that waits costs a
//! slab entry, not a thread.
//!
//! ## At the connection cap
//! A worker holding its share of `--max-connections` stops accepting; new
//! connections wait in its listener's queue. The listener is edge-triggered:
//! it reported those connections once, when they arrived, and will not report
//! them again. So the worker remembers that it stopped at the cap
//! (`AcceptState::AtCapacity`) and every close turns that back into
//! "connections may be waiting". Accepting comes after *all* the closes of an
//! iteration, those of readiness events and those of expired deadlines, so a
//! slot freed by a timeout is taken by a waiting client in the same
//! iteration, not whenever some unrelated event next wakes the loop. Below the
//! cap, none of this costs a system call.
//!
//! ## Turns
//! A connection sending a big file stops after its share of bytes while its
//! socket still takes more, so that one download cannot hold the loop (see
//! [`crate::connection`], "Take turns"). No event will come for a socket
//! that stays writable, so the worker lists such connections (`yielded`)
//! and runs them again itself, after the events of the batch; while that
//! list is not empty, `epoll_wait` does not sleep, it only collects what
//! became ready meanwhile.
//!
//! A worker that cannot accept (at the cap, or backing off after `EMFILE`)
//! also takes its listener out of its epoll set, and puts it back (which
//! reports connections already queued) when it can accept again. With a
//! socket of its own this changes nothing but two `epoll_ctl` calls at the
//! cap; it matters when all workers share one inherited socket: there the
//! kernel wakes only *one* waiting worker per new connection
//! (`EPOLLEXCLUSIVE`, see [`crate::sys::register_exclusive`]), always the
//! first registered one that is waiting, and a worker that could not accept
//! would take the wake-up and leave the connection unanswered in the queue
//! while another worker had free slots.
//!
//! ## Trusted proxies
//! With `--trusted-proxy`, a connection whose peer is in no trusted block is
//! closed as soon as it is accepted: before it is registered, before a byte
//! of it is read. Behind a balancer that sends the PROXY protocol, this is
//! what keeps anyone else from writing a header that names any client they
//! like (see [`crate::proxy`]).
//!
//! ## Tokens and the slab
//! Connections live in a [`Slab`]; a connection's slab key is its
//! [`mio::Token`], so an event finds its connection with one index. Keys are
//! reused after a close, which makes stale events possible: an event queued
//! for a connection closed earlier in the same batch would land on a new
//! connection accepted into the same slot. We avoid that by accepting only
//! after the whole batch (and the deadlines) is handled, and by closing sockets (which removes them
//! from epoll) before the next `poll`. Even so, handlers treat every event as a
//! hint that may be spurious.
//!
//! ## Why not share anything
//! Each worker owns its `Poll`, listener, slab, timers, buffer pool, clock and
//! log buffer. Nothing on the request path takes a lock or touches another
//! core's cache lines; the kernel spreads connections across the workers'
//! listeners (`SO_REUSEPORT`, see [`crate::server`]).

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::os::fd::AsRawFd;

use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::config::{ACCEPT_BACKOFF, EVENTS_PER_POLL};
use crate::connection::{Connection, Context, Outcome};
use crate::drain::{Asked, Phase, ShutdownRequest};
use crate::listeners::{self, Origin};
use crate::proxy::Cidr;
use crate::stats::{StatsBoard, WorkerStats};
use crate::sys;
use crate::timer::{Due, Timers};
use crate::trace::TraceLevel;

/// The listening socket's token. Slab keys count up from zero, so the top of
/// the token space is free for the three sources that are not connections:
/// this one, [`WAKER`] and [`FILE_CHANGES`].
const LISTENER: Token = Token(usize::MAX - 1);

/// The token of the waker the main thread uses to announce shutdown (and to
/// ask for the counters).
const WAKER: Token = Token(usize::MAX - 2);

/// The token of the file cache's inotify descriptor.
const FILE_CHANGES: Token = Token(usize::MAX - 3);

/// How often a worker copies its counters to the shared board (only when
/// they changed).
const STATS_PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// Whether the listener may have connections to accept, and whether we may
/// try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AcceptState {
    /// Nothing pending: the last `accept` said `WouldBlock`.
    Drained,
    /// Connections may be waiting in the listener's queue.
    Pending,
    /// At the connection cap, with connections perhaps waiting in the
    /// queue: the next close makes it `Pending` again. The listener gives no
    /// new event for connections already queued, so without this a slot
    /// freed by a timeout would stay unused until some new client arrived.
    AtCapacity,
    /// Out of file descriptors: try again at this instant, or as soon as one
    /// of our connections closes and frees one.
    BackingOff(Instant),
}

impl AcceptState {
    /// Whether a worker in this state can accept, and so keeps its listener
    /// in its epoll set (see the module docs).
    fn can_accept(self) -> bool {
        matches!(self, AcceptState::Drained | AcceptState::Pending)
    }
}

/// A worker and everything it owns.
#[derive(Debug)]
pub struct Worker {
    /// This worker's epoll instance.
    poll: Poll,
    /// This worker's listener in the `SO_REUSEPORT` group; `None` once
    /// shutting down.
    listener: Option<TcpListener>,
    /// Whether this process bound the listener or inherited it, which
    /// decides how it is closed when accepting stops ([`listeners::close`]).
    listener_origin: Origin,
    /// This worker's number.
    id: usize,
    /// Whether there may be connections to accept.
    accept: AcceptState,
    /// Open connections; the key is the token.
    connections: Slab<Connection>,
    /// Connections that yielded their turn with their socket still
    /// writable, each with its serial (the slot may be reused once it
    /// closes), in the order they yielded: the worker owes each a turn.
    yielded: Vec<(usize, u64)>,
    /// Most connections this worker holds at once; beyond it, new ones wait
    /// in the kernel's accept queue. No limit once accepting stops (see
    /// `stop_accepting`).
    max_connections: usize,
    /// Serial number for the next connection.
    next_serial: u64,
    /// Every connection's deadline.
    timers: Timers,
    /// What connections use while they run.
    ctx: Context,
    /// What the main thread asks: drain, or stop now.
    shutdown: Arc<ShutdownRequest>,
    /// Where this worker is between serving and stopped.
    phase: Phase,
    /// Where this worker publishes its counters for others to read.
    board: Arc<StatsBoard>,
    /// The counters as last published, and when they were.
    published: (WorkerStats, Instant),
}

impl Worker {
    /// Creates a worker around its listener, and the waker that interrupts
    /// its `poll` for shutdown.
    pub fn new(
        id: usize,
        listener: StdTcpListener,
        listener_origin: Origin,
        ctx: Context,
        max_connections: usize,
        shutdown: Arc<ShutdownRequest>,
        board: Arc<StatsBoard>,
    ) -> io::Result<(Worker, Waker)> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let listener = TcpListener::from_std(listener);
        // Exclusive: when workers share one inherited socket, a connection
        // wakes one of them, not all (see `crate::listeners`).
        sys::register_exclusive(&poll, &listener, LISTENER)?;
        if let Some(watcher) = ctx.cache.watcher() {
            poll.registry().register(
                &mut SourceFd(&watcher.as_raw_fd()),
                FILE_CHANGES,
                Interest::READABLE,
            )?;
        }
        let mut worker = Worker {
            poll,
            listener: Some(listener),
            listener_origin,
            id,
            accept: AcceptState::Pending,
            connections: Slab::new(),
            yielded: Vec::new(),
            max_connections,
            next_serial: 0,
            timers: Timers::default(),
            ctx,
            shutdown,
            phase: Phase::Serving,
            board,
            published: (WorkerStats::default(), Instant::now()),
        };
        worker.follow_log();
        Ok((worker, waker))
    }

    /// Runs the event loop until a graceful shutdown completes, then closes
    /// what is still open, flushes the log and publishes the final counters.
    ///
    /// If `epoll_wait` fails, reports it on stderr at once and raises
    /// `SIGTERM` to stop the whole server (a server with a dead worker would
    /// leave that worker's share of new connections unanswered in its listen
    /// queue); [`crate::server::run`] handles the signal as a shutdown, and
    /// the error returned here becomes its exit status. A program that runs a
    /// [`crate::Server`] without handling `SIGTERM` is terminated by it.
    pub fn run(mut self) -> io::Result<()> {
        let result = self.event_loop();
        let why_closed = match &result {
            Ok(()) if self.shutdown.asked() == Asked::StopNow => "stopped at once",
            Ok(()) => "shutdown timeout over",
            Err(error) => {
                self.report(format_args!("epoll_wait failed, stopping: {error}"));
                let _ = signal_hook::low_level::raise(libc::SIGTERM);
                "event loop failed"
            }
        };
        // Stopped at once, the listener is still open. It is closed first,
        // the way an orderly stop closes it (a bound one shut down before
        // the close, so that a handshake completing meanwhile is not born
        // half closed); with `net.ipv4.tcp_migrate_req` its queue goes to
        // the group's other listeners.
        self.close_listener();
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.ctx.tracer.worker_line(
                TraceLevel::States,
                format_args!("t{key} closed: {why_closed}"),
            );
            self.close(key);
        }
        self.ctx.log.flush();
        self.publish_stats();
        result
    }

    /// The event loop itself: returns once the shutdown phases reach
    /// `Stopped` (see [`crate::drain`]), or when `epoll_wait` fails.
    fn event_loop(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        loop {
            let timeout = self.poll_timeout();
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
            self.ctx.tracer.wake(&events);
            self.ctx.clock.update();
            // Files that changed are dropped from the cache before any request
            // of this batch is answered: a request sent after a change never
            // gets the old copy.
            if events.iter().any(|event| event.token() == FILE_CHANGES) {
                self.ctx.cache.apply_changes();
            }
            let mut woken = false;
            for event in events.iter() {
                match event.token() {
                    // New arrivals matter only to a worker that emptied its
                    // queue. At the cap or backing off the listener is out of
                    // the epoll set; an event queued before it left is stale.
                    LISTENER if self.accept == AcceptState::Drained => {
                        self.accept = AcceptState::Pending;
                    }
                    LISTENER => {}
                    // Shutdown, a request for the counters (SIGUSR1) or a
                    // reopened access log (SIGHUP).
                    WAKER => woken = true,
                    FILE_CHANGES => {} // handled above
                    Token(key) => self.on_connection_event(key, event),
                }
            }
            self.give_owed_turns();
            // Deadlines before accepting: a slot freed by a timeout goes to a
            // connection waiting in the queue now, not at the next wake-up.
            self.expire_deadlines();
            self.accept_connections();
            self.advance_phase();
            if woken {
                self.follow_log();
            }
            let now = self.ctx.clock.now();
            self.ctx.log.flush_if_due(now);
            if woken || self.stats_due().is_some_and(|due| due <= now) {
                self.publish_stats();
            }
            if self.phase == Phase::Stopped {
                return Ok(());
            }
        }
    }

    /// When the counters should be published next: a second after the last
    /// time, if any counter changed since. A connection that only changes
    /// state or closes (without sending) changes no counter: it shows in the
    /// open-by-state figures with the next change, or when the main thread
    /// asks (`SIGUSR1`).
    fn stats_due(&self) -> Option<Instant> {
        let (published, at) = &self.published;
        // `open` is counted only when publishing (the live counters keep it at
        // zero), so the comparison leaves it out.
        let published_counters = WorkerStats {
            open: Default::default(),
            ..*published
        };
        (self.ctx.stats != published_counters).then_some(*at + STATS_PUBLISH_INTERVAL)
    }

    /// Copies this worker's counters (and its connections by state) to the
    /// board.
    fn publish_stats(&mut self) {
        let mut stats = self.ctx.stats;
        stats.log_lines_dropped = self.ctx.log.dropped_lines();
        for (_, connection) in &self.connections {
            stats.open[connection.state_index()] += 1;
        }
        self.board.publish(self.id, &stats);
        self.published = (stats, self.ctx.clock.now());
    }

    /// How long `poll` may sleep: not at all while connections are owed a
    /// turn; else until the earliest deadline of any kind, or forever when
    /// nothing is scheduled. mio rounds up to whole milliseconds, so a
    /// deadline never makes the loop spin.
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.yielded.is_empty() {
            return Some(Duration::ZERO);
        }
        let backoff = match self.accept {
            AcceptState::BackingOff(until) => Some(until),
            _ => None,
        };
        [
            self.timers.next_due(),
            self.ctx.log.flush_due(),
            self.stats_due(),
            backoff,
            self.phase.ends_at(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    fn on_connection_event(&mut self, key: usize, event: &mio::event::Event) {
        // A connection closed earlier in this batch has no slot any more.
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        match connection.on_event(event, self.poll.registry(), &mut self.ctx) {
            Outcome::Open => {
                keep_open(self.phase, &self.ctx, connection);
                self.timers.schedule(key, &mut connection.timer);
            }
            Outcome::Yielded => {
                self.timers.schedule(key, &mut connection.timer);
                self.yielded.push((key, connection.timer.serial));
            }
            Outcome::Close => self.close(key),
        }
    }

    /// Gives each connection listed in `yielded` its turn, in the order
    /// they yielded: those listed before this call, and those that yielded
    /// in this iteration's events (every ready connection has had its turn
    /// by now). One that yields again is listed anew, for the next
    /// iteration.
    fn give_owed_turns(&mut self) {
        let owed = self.yielded.len();
        for index in 0..owed {
            let (key, serial) = self.yielded[index];
            // Closed since (a deadline), its slot perhaps reused: the serial
            // tells.
            let Some(connection) = self.connections.get_mut(key) else {
                continue;
            };
            if connection.timer.serial != serial {
                continue;
            }
            match connection.take_turn(self.poll.registry(), &mut self.ctx) {
                Outcome::Open => {
                    keep_open(self.phase, &self.ctx, connection);
                    self.timers.schedule(key, &mut connection.timer);
                }
                Outcome::Yielded => {
                    self.timers.schedule(key, &mut connection.timer);
                    self.yielded.push((key, serial));
                }
                Outcome::Close => self.close(key),
            }
        }
        self.yielded.drain(..owed);
    }

    /// Accepts until the listener's queue is empty (`WouldBlock`), the
    /// connection limit is reached, or descriptors run out.
    fn accept_connections(&mut self) {
        let now = self.ctx.clock.now();
        match self.accept {
            AcceptState::Drained | AcceptState::AtCapacity => return,
            AcceptState::BackingOff(until) if now < until => return,
            AcceptState::BackingOff(_) => self.set_accept(AcceptState::Pending),
            AcceptState::Pending => {}
        }
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            if self.connections.len() >= self.max_connections {
                self.set_accept(AcceptState::AtCapacity);
                return;
            }
            match listener.accept() {
                Ok((_, peer)) if !is_trusted(&self.ctx.trusted_proxies, peer.ip()) => {
                    // Dropping the socket closes it, unread and unregistered.
                    self.ctx.stats.accepted += 1;
                    self.ctx.stats.untrusted_peers += 1;
                    self.ctx.tracer.worker_line(
                        TraceLevel::Events,
                        format_args!(
                            "refused #{} from {peer}: not a trusted proxy",
                            self.next_serial
                        ),
                    );
                    self.next_serial += 1;
                }
                Ok((socket, peer)) => {
                    if let Err(error) = add_connection(
                        &self.poll,
                        &mut self.connections,
                        &mut self.timers,
                        &mut self.ctx,
                        socket,
                        peer,
                        self.next_serial,
                    ) {
                        self.report(format_args!("cannot set up a connection: {error}"));
                    } else {
                        self.ctx.stats.accepted += 1;
                        self.ctx.tracer.accept(self.next_serial, peer);
                    }
                    self.next_serial += 1;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.accept = AcceptState::Drained;
                    return;
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(error) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: the listener stays
                    // readable, so retrying now would spin. Back off.
                    if self.ctx.stats.accept_pauses == 0 {
                        self.report(format_args!("accept failed, pausing accepts: {error}"));
                    }
                    self.ctx.stats.accept_pauses += 1;
                    self.set_accept(AcceptState::BackingOff(now + ACCEPT_BACKOFF));
                    return;
                }
            }
        }
    }

    /// Moves to `next`, taking the listener out of the epoll set when the
    /// worker can no longer accept and putting it back when it can again (see
    /// the module docs). Adding it back reports connections already queued,
    /// though `next` is `Pending` then anyway.
    fn set_accept(&mut self, next: AcceptState) {
        let was_listening = self.accept.can_accept();
        self.accept = next;
        let Some(listener) = &self.listener else {
            return;
        };
        let result = match (was_listening, next.can_accept()) {
            (true, false) => self
                .poll
                .registry()
                .deregister(&mut SourceFd(&listener.as_raw_fd())),
            (false, true) => sys::register_exclusive(&self.poll, listener, LISTENER),
            _ => Ok(()),
        };
        if let Err(error) = result {
            self.report(format_args!(
                "cannot change the listener's epoll registration: {error}"
            ));
        }
    }

    /// Acts on every deadline that has passed.
    fn expire_deadlines(&mut self) {
        let now = self.ctx.clock.now();
        while let Some(entry) = self.timers.pop_due(now) {
            let Some(connection) = self.connections.get_mut(entry.key) else {
                continue;
            };
            match connection.timer.judge(entry, now) {
                Due::Stale => {}
                Due::Postponed => self.timers.schedule(entry.key, &mut connection.timer),
                Due::Expired => {
                    self.ctx.stats.timeouts += 1;
                    match connection.on_timeout(self.poll.registry(), &mut self.ctx) {
                        Outcome::Open => self.timers.schedule(entry.key, &mut connection.timer),
                        Outcome::Yielded => {
                            self.timers.schedule(entry.key, &mut connection.timer);
                            self.yielded.push((entry.key, connection.timer.serial));
                        }
                        Outcome::Close => self.close(entry.key),
                    }
                }
            }
        }
    }

    /// Follows the shutdown phases as far as they go now, acting on each
    /// step (see [`crate::drain`]).
    fn advance_phase(&mut self) {
        loop {
            let now = self.ctx.clock.now();
            let next = self
                .phase
                .next(&self.shutdown, now, !self.connections.is_empty());
            if next == self.phase {
                return;
            }
            self.ctx.tracer.worker_line(
                TraceLevel::States,
                format_args!("shutdown phase {} -> {next}", self.phase),
            );
            self.phase = next;
            // The connections' one view of the phase: from draining on,
            // every response closes its connection and the health check fails.
            self.ctx.draining = next.is_draining();
            if let Phase::Stopping { idle_until, .. } = next {
                self.stop_accepting();
                self.stop_idle_connections(idle_until);
            }
        }
    }

    /// Closes this worker's listener: new connections go to the other
    /// listeners of the `SO_REUSEPORT` group (and with
    /// `net.ipv4.tcp_migrate_req` those still queued too), or are refused
    /// once every worker has stopped. A listener this process bound is shut
    /// down before it is closed, or a handshake completing during the close
    /// could give a connection that is half closed from birth (see
    /// [`crate::listeners`], "Leaving the group"). Connections the kernel
    /// has completed but we have not accepted would be reset by the close,
    /// so the queue is emptied first, past the connection cap: they are
    /// answered like the others, with `Connection: close`, and end within
    /// the shutdown timeout.
    ///
    /// Going past the cap is safe for descriptors: the queue holds at most
    /// the listen backlog ([`crate::config::LISTEN_BACKLOG`], capped by
    /// `net.core.somaxconn`), and if descriptors do run out, `accept` fails
    /// with `EMFILE` and the rest of the queue is reset as it would have been
    /// (the one case left; opening a file for one of the extra connections
    /// may meet `EMFILE` too, and that request gets `503`).
    fn stop_accepting(&mut self) {
        self.max_connections = usize::MAX;
        match self.accept {
            AcceptState::Drained | AcceptState::AtCapacity => {
                self.set_accept(AcceptState::Pending);
            }
            AcceptState::Pending | AcceptState::BackingOff(_) => {}
        }
        self.accept_connections();
        self.close_listener();
    }

    /// Closes the listener, if still open, the way [`listeners::close`] says
    /// for its origin: after an orderly stop has emptied its queue
    /// ([`Worker::stop_accepting`]), or at once when asked to stop now.
    fn close_listener(&mut self) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        // Leave the epoll set before closing: a socket shared with other
        // workers (inherited from systemd) stays open after our close, and
        // if it stayed in our set an exclusive wake-up could pick this
        // worker, which no longer accepts, instead of one that does.
        if self.accept.can_accept() {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&listener.as_raw_fd()));
        }
        listeners::close(listener, self.listener_origin);
    }

    /// Tells every connection that accepting has stopped: idle ones may
    /// send one last request until `idle_until`, then end without racing a
    /// request on the wire ([`Connection::on_stop`]); the others finish their
    /// response.
    fn stop_idle_connections(&mut self, idle_until: Instant) {
        for (key, connection) in &mut self.connections {
            connection.on_stop(idle_until);
            self.timers.schedule(key, &mut connection.timer);
        }
    }

    /// Removes a connection and tears it down.
    fn close(&mut self, key: usize) {
        let connection = self.connections.remove(key);
        connection.close(&mut self.ctx);
        // A descriptor and a slot are free again: connections that waited
        // for either are accepted later in this loop iteration.
        if !self.accept.can_accept() {
            self.set_accept(AcceptState::Pending);
        }
    }

    /// Writes to the access log's current file (after a reopen, the lines
    /// buffered so far go to the old one first), and keeps the cache from
    /// ever serving that file.
    fn follow_log(&mut self) {
        if let Some(log_file) = self.ctx.log.switch_to_current() {
            self.ctx.cache.hide(log_file);
        }
    }

    /// Prints one line about this worker on stderr, at once.
    fn report(&self, what: std::fmt::Arguments<'_>) {
        eprintln!("mioserve: worker {}: {what}", self.id);
    }
}

/// Whether `--trusted-proxy` lets `peer` connect: always when no block is
/// given.
fn is_trusted(trusted_proxies: &[Cidr], peer: IpAddr) -> bool {
    trusted_proxies.is_empty() || trusted_proxies.iter().any(|block| block.contains(peer))
}

/// Registers a new connection under its slab key and schedules its header
/// deadline.
fn add_connection(
    poll: &Poll,
    connections: &mut Slab<Connection>,
    timers: &mut Timers,
    ctx: &mut Context,
    socket: TcpStream,
    peer: SocketAddr,
    serial: u64,
) -> io::Result<()> {
    // `TCP_NODELAY` came with the socket: Linux copies it from the listener.
    let entry = connections.vacant_entry();
    let key = entry.key();
    let mut connection = Connection::new(socket, peer.ip(), serial, key, ctx);
    // On failure the connection is dropped: its socket closes, and a buffer
    // it took (`--proxy-protocol`) is freed rather than pooled.
    connection.register(poll.registry())?;
    let connection = entry.insert(connection);
    timers.schedule(key, &mut connection.timer);
    Ok(())
}

/// A connection stays open after an event or a turn. A response that promised
/// keep-alive may have ended after the stop and left its connection idle: it
/// gets the grace that the connections idle at the stop got (see
/// [`crate::drain`]).
fn keep_open(phase: Phase, ctx: &Context, connection: &mut Connection) {
    if let Some(grace_end) = phase.idle_grace_end(ctx.clock.now()) {
        connection.on_stop(grace_end);
    }
}
