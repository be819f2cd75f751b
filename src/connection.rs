//! One client connection as an explicit state machine.
//!
//! ```text
//!            accept
//!              │
//!              ▼
//!   ┌──────► Idle ───────────── readable ──────────┐
//!   │          │ timeout, EOF: close                │
//!   │          ▼                                    ▼
//!   │   ┌─ ReadingRequest ◄──── pipelined bytes ─┐  │
//!   │   │   │ head complete (or invalid: 4xx)    │  │
//!   │   │   ▼                                    │  │
//!   │   │ WritingResponse ──── file body ──► SendingFile
//!   │   │   │ head, and a body from memory       │ done
//!   │   │   │ done                               │
//!   │   │   ▼                                    ▼
//!   │   │  (response finished: log line, then one of)
//!   │   │   ├── keep-alive, bytes already buffered ──► ReadingRequest
//!   └───┼───┴── keep-alive, nothing buffered ────────► Idle
//!       │       close, client may still be sending ──► Lingering ──► close
//!       │       close, nothing pending ───────────────────────────► close
//!       └── timeout with a partial head: 408, then close
//! ```
//!
//! Behind a load balancer (`--proxy-protocol`) a connection starts one state
//! earlier, reading the PROXY protocol header that names the client (see
//! [`crate::proxy`]):
//!
//! ```text
//!   accept ──► ReadingProxyHeader ── header read ──► ReadingRequest
//!                │                  (bytes after it are the first request)
//!                └── invalid, EOF, header timeout: close without an answer
//! ```
//!
//! Each state holds exactly the data it needs, nothing else: the input buffer
//! while a request is arriving or being answered (it also holds any
//! pipelined request behind it), the response head and how much of it was
//! written (with a cached body sent beside it, and how much of that), the
//! open file with its offset and remaining length. A state with
//! more than one piece of data carries it as one struct (`ProxyReading`,
//! `Writing`, `Sending`), moved whole from handler to handler. `Idle` holds nothing: its
//! buffers are back in the worker's pool. Starting the next request is
//! assigning a new state, never resetting fields. Each state has one handler
//! method, and every transition goes through `drive` (and `enter`).
//!
//! ## How a body leaves: copied, by reference, or by `sendfile`
//! The head is formatted into a pooled output buffer. The body follows it
//! one of three ways, by where its bytes are and how many there are
//! ([`BodySend`] names the two that do not go through the buffer):
//! - **Copied after the head**: status pages, and cached files shorter than
//!   [`respond::MIN_CACHED_SEND_BYTES`] (8 KiB). The response is one buffer
//!   and one `send`, and the answers to pipelined requests are appended to
//!   the same buffer, so a whole batch leaves in one `send`.
//! - **By reference, in the same `sendmsg` as the head**: cached files from
//!   8 KiB up (the cache holds files up to 64 KiB). The body is the cache
//!   entry's own bytes, shared (`Arc<[u8]>`): nothing is copied in user
//!   space, and the kernel copies into the socket from one buffer that every
//!   connection asking for that file shares and keeps hot, instead of from
//!   each connection's own, cold, output buffer. A write the kernel takes
//!   only part of resumes inside the head or the body (`Writing::advance`).
//!   If the entry is evicted or the file changes meanwhile, the response
//!   still holds the bytes its head announced until the last one is out.
//!   Only the last response of a pipelined batch sends its body by
//!   reference (with the batch, in the same `sendmsg`): one with a request
//!   waiting behind it copies its body into the batch, which goes on. A
//!   body by reference in the middle would end the batch, and a `sendmsg`
//!   per response costs far more than the copy: 16 pipelined requests for
//!   8 KiB cost 2.1 µs of CPU each copied into 64 KiB batches, 7.0 by
//!   reference one `sendmsg` each (for 16 KiB, 4.1 against 6.7).
//! - **`sendfile` after the head** (`SendingFile`): files not in the cache.
//!
//! Why these lines. A 16 KiB cached file served copied cost 10.7 µs of
//! server CPU per request under `wrk -t1 -c256`, where `benches/ceiling.c`
//! (a C loop writing canned responses from one hot buffer) needs 8.5; `perf`
//! put 20.5 % of mioserve's time in the kernel's copy from our buffer into
//! the socket and 4.2 % in our own copy into the output buffer. For the
//! kernel alone, `send` from one hot buffer against `sendfile` (the ceiling
//! in both modes, CPU µs per request) is 6.37 against 7.49 at 1 KiB, 7.82
//! against 8.46 at 8 KiB, 8.39 against 9.19 at 16 KiB, 10.64 against 8.80
//! at 32 KiB: from memory wins up to 16 KiB, and for the larger cached
//! files a hit still saves the `open`, `fstat` and `close` that `sendfile`
//! needs (see [`crate::cache`]). Copied against by reference, in mioserve
//! (one worker without access log, `wrk -t1 -c256`, CPU µs per request,
//! median of three alternating runs): 1 KiB 6.52 against 7.06, 4 KiB 7.05 against 7.18,
//! 8 KiB 8.36 against 7.84, 16 KiB 8.85 against 8.42, 32 KiB 11.10 against
//! 10.32, 64 KiB 18.32 against 17.18. Below 8 KiB the copy is cheaper than
//! a second `iovec` and a batch that stops growing; from 8 KiB on, not
//! copying wins.
//!
//! ## Invariants
//! - **Drain to `WouldBlock`.** mio registers sockets edge-triggered: epoll
//!   reports a socket once when it *becomes* readable or writable, not for as
//!   long as it *is*. A handler that stops early would never be woken for the
//!   bytes it left behind. So every handler reads or writes until the kernel
//!   says `WouldBlock`. One documented shortcut (epoll(7), "Q9"): on a stream
//!   socket, a read that returns fewer bytes than asked, or a write that takes
//!   fewer than offered, has also drained the buffer, and a new edge will come
//!   when that changes. That saves one failing system call per request.
//!   `Connection::account` reads every system call's result this way, in one
//!   place for `read`, `send` and `sendfile`.
//! - **Remember readiness.** Because edges come once, `Readiness` records
//!   them until a system call proves them used up. An edge in a direction the
//!   current state does not need is remembered for the state that will (a
//!   request pipelined behind a file being sent).
//! - **Ask for writability only once a write has blocked.** A new socket is
//!   registered for reading only. It starts with an empty send buffer, so it
//!   is assumed writable; asking epoll for `EPOLLOUT` at once would only
//!   report that, a wasted wakeup for every new connection. The first time a
//!   write says `WouldBlock`, the connection adds write interest (one
//!   `epoll_ctl`) and keeps it for life: after that, both directions cost
//!   nothing until an edge happens. Most keep-alive connections serving small
//!   files never block, and never pay for it.
//! - **After a transition, run the next state at once.** The data it needs
//!   may already be here: a pipelined request in the buffer, room in the send
//!   buffer. Waiting for another event would stall the connection.
//! - **Take turns.** A worker serves many connections on one thread, so
//!   no connection may keep it for long. Draining to `WouldBlock` would let
//!   one download do just that: on loopback or a fast link the kernel keeps
//!   taking file bytes for as long as the receiver's window is open, several
//!   MiB in one `sendfile`, while the worker's other connections wait. So
//!   `SendingFile` sends at most [`FILE_BYTES_PER_TURN`] per turn and then
//!   *yields*: it stops while the socket is still writable and
//!   [`Connection::on_event`] returns [`Outcome::Yielded`]. That breaks the
//!   drain rule on purpose, and with it the promise of a new edge: the
//!   kernel reports none for a socket that is still writable. So the worker
//!   keeps a list of yielded connections and gives each another turn
//!   ([`Connection::take_turn`]) once every ready connection has had one,
//!   without sleeping in `epoll_wait` while the list is not empty (nginx does
//!   the same with `sendfile_max_chunk` and its "posted next" events). A
//!   connection is on that list at most once (`owed_turn`): one that also
//!   gets an event meanwhile runs a turn for it but does not queue a second.
//! - **Every event may be spurious.** Handlers act on what the system calls
//!   say, never on the event alone.
//! - **Closing is an outcome, not a state.** Handlers return
//!   `Transition::Close`, with what they leave behind (nothing after a
//!   finished exchange; else the state they stopped in, with its buffers);
//!   [`Connection::on_event`] returns [`Outcome::Close`]; the worker removes
//!   the connection from its slab and calls [`Connection::close`], which logs
//!   a response cut short and returns the buffers to the pool.

use std::io::{self, Read};
use std::mem;
use std::net::{IpAddr, Shutdown};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::buffer::{BufferPool, InputBuffer};
use crate::cache::FileCache;
use crate::clock::Clock;
use crate::config::{FILE_BYTES_PER_TURN, LINGER_TIMEOUT};
use crate::http::request::{self, first_line_span};
use crate::http::{Parsed, Request, Span, Status};
use crate::log::{AccessLog, LogEntry};
use crate::proxy::{self, Cidr, HeaderStatus};
use crate::respond::{self, Answer, BodySend, Env, FileSend, Record, Site, StatusPage};
use crate::stats::WorkerStats;
use crate::sys;
use crate::timer::TimerSlot;
use crate::trace::{ConnectionId, Syscall, TraceLevel, Tracer};

/// A batch of pipelined responses stops growing past this many bytes; the
/// rest of the pipeline is answered once the batch is sent.
const MAX_BATCHED_OUTPUT_BYTES: usize = 64 * 1024;

/// Bytes read and thrown away per `read` while lingering.
const LINGER_DISCARD_BYTES: usize = 4096;

/// The timeouts that apply to each state (from the command line).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// A request head must arrive within this.
    pub header: Duration,
    /// A client must accept some of our response within this.
    pub send: Duration,
    /// An idle keep-alive connection is closed after this.
    pub keepalive: Duration,
}

/// What a connection needs from its worker while it runs. The worker owns
/// it; connections borrow it one at a time.
#[derive(Debug)]
pub struct Context {
    /// The document root and status pages, shared read-only by all workers.
    pub site: Arc<Site>,
    /// This loop iteration's time, and the cached date strings.
    pub clock: Clock,
    /// Spare input and output buffers.
    pub pool: BufferPool,
    /// This worker's access-log buffer.
    pub log: AccessLog,
    /// Reusable space for decoding a request path.
    pub scratch: Vec<u8>,
    /// Small files kept in memory.
    pub cache: FileCache,
    /// The timeouts of each state.
    pub timeouts: Timeouts,
    /// Whether the worker's shutdown phase has reached draining (see
    /// [`crate::drain`]): every response closes its connection and the health
    /// check fails. The worker's phase is the source of truth; this is
    /// [`crate::drain::Phase::is_draining`] of it, written only where the phase
    /// changes (`Worker::advance_phase`), so the connections, which never see
    /// the phase, can read it.
    pub draining: bool,
    /// `--trace`: prints the steps of the loop, if asked.
    pub tracer: Tracer,
    /// This worker's counters.
    pub stats: WorkerStats,
    /// `--proxy-protocol`: every connection starts by reading a PROXY
    /// protocol header (`ReadingProxyHeader`).
    pub proxy_protocol: bool,
    /// `--trusted-proxy`: when not empty, the only peers the worker lets
    /// connect; it closes the others at accept, before reading a byte.
    pub trusted_proxies: Vec<Cidr>,
}

/// What a state handler decided.
#[derive(Debug)]
enum Transition {
    /// Enter this state and run it at once.
    Next(State),
    /// Stay in this state until the next readiness event or timeout.
    Wait(State),
    /// Stay in this state, still ready to go on, but let the worker's other
    /// connections have their turn first (see "Take turns" above).
    Yield(State),
    /// The connection is finished; [`Connection::close`] cleans up what it
    /// leaves.
    Close(Leftover),
}

/// What a handler that ends the connection leaves for [`Connection::close`].
#[derive(Debug)]
enum Leftover {
    /// Nothing: the last response is logged and its buffers are back in the
    /// pool (a finished exchange, or lingering that ended).
    Nothing,
    /// The state the connection stopped in, with its buffers, and perhaps a
    /// request or a response cut short (logged with the bytes actually sent).
    Held(State),
}

/// What the worker must do with a connection after an event or timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Keep it registered; it waits for its next event or deadline.
    Open,
    /// Keep it registered, and give it another turn
    /// ([`Connection::take_turn`]) before the worker sleeps again: it
    /// stopped with its socket still writable, and no event will come for
    /// that (see "Take turns" above).
    Yielded,
    /// Remove it from the slab and [`Connection::close`] it.
    Close,
}

/// The request being answered: what the log line and the keep-alive decision
/// need once the response is out.
#[derive(Debug)]
struct Exchange {
    /// The request line, in the input buffer, for the log.
    request_line: Span,
    /// Input bytes this request occupied; the next request starts after them.
    consumed: usize,
    /// The status sent.
    status: Status,
    /// Whether the connection stays open afterwards.
    keep_alive: bool,
    /// Whether the client may have sent bytes we will not read (a body, or
    /// whatever followed an invalid head): then closing must linger.
    unread_input: bool,
    /// Where in the output buffer this response's head ends (its body, if
    /// in memory, follows; earlier pipelined responses may precede it).
    head_len: usize,
    /// Body bytes sent so far.
    body_bytes: u64,
    /// Whether it gets a log line, a count, or neither.
    record: Record,
}

/// The names of the connection states, in the order of their variants (the
/// private `State::index` maps each to its place): the trace prints them,
/// and the counters ([`WorkerStats::open`]) count open connections by them.
/// A test holds this list and `State::index` to the variants' own names, so
/// neither can drift when a state is added.
/// `ReadingProxyHeader`, the newest, comes last so that the columns of the
/// counters keep their places.
pub const STATE_NAMES: [&str; 6] = [
    "Idle",
    "ReadingRequest",
    "WritingResponse",
    "SendingFile",
    "Lingering",
    "ReadingProxyHeader",
];

/// The connection's stage, with the data that stage needs.
#[derive(Debug)]
enum State {
    /// Waiting for the next request; no buffers held.
    Idle,
    /// Reading a request head into the input buffer (which may also hold
    /// pipelined requests behind it).
    ReadingRequest(InputBuffer),
    /// Writing the head, and a body from memory if there is one (a status
    /// page, or a cached file: copied after the head, or by reference).
    WritingResponse(Writing),
    /// Sending a file body with `sendfile`.
    SendingFile(Sending),
    /// Our side is shut down after the last response; reading and discarding
    /// what the client still sends, so closing does not reset the connection
    /// before the client has read our response.
    Lingering,
    /// `--proxy-protocol` only, first and once: reading the PROXY protocol
    /// header that names the client, into the input buffer that will hold
    /// the first request.
    ReadingProxyHeader(ProxyReading),
}

/// `ReadingProxyHeader`'s data.
#[derive(Debug)]
struct ProxyReading {
    /// The header as it arrives, and whatever the balancer sent after it
    /// (usually the whole first request, in the same segment).
    input: InputBuffer,
    /// Header bytes (v2 TLVs) the parser asked us to skip that have not
    /// arrived yet. Nonzero only once the header's addresses are read: the
    /// next bytes read, up to this many, are dropped.
    tlv_bytes_to_skip: usize,
}

/// `WritingResponse`'s data.
#[derive(Debug)]
struct Writing {
    /// The request's bytes and anything pipelined after it.
    input: InputBuffer,
    /// The request being answered.
    exchange: Exchange,
    /// The response head (and a body copied after it); earlier pipelined
    /// responses may precede it.
    output: Vec<u8>,
    /// Bytes of `output` already sent.
    written: usize,
    /// The body that follows `output` from where it lies: a cached body
    /// goes out with it, in the same system calls; a file, once `output` is
    /// out, in `SendingFile`.
    body: Option<BodySend>,
}

impl Writing {
    /// Whether everything this state sends is out: the output buffer, and
    /// the cached body that goes with it.
    fn is_sent(&self) -> bool {
        let body_sent = match &self.body {
            Some(BodySend::Cached(cached)) => cached.unsent().is_empty(),
            Some(BodySend::File(_)) | None => true,
        };
        self.written == self.output.len() && body_sent
    }

    /// Records that the kernel took `count` more bytes of the response, as
    /// if the output buffer and the cached body were one: a write that ends
    /// inside the output buffer leaves the body untouched, one that crosses
    /// into the body resumes there.
    fn advance(&mut self, count: usize) {
        let from_output = count.min(self.output.len() - self.written);
        self.written += from_output;
        if let Some(BodySend::Cached(cached)) = &mut self.body {
            let from_body = count - from_output;
            cached.advance(from_body);
            self.exchange.body_bytes += from_body as u64;
        }
    }
}

/// `SendingFile`'s data.
#[derive(Debug)]
struct Sending {
    /// The request's bytes and anything pipelined after it.
    input: InputBuffer,
    /// The request being answered.
    exchange: Exchange,
    /// The file, the offset to resume at and the bytes left.
    body: FileSend,
}

impl State {
    /// This state's position in [`STATE_NAMES`] and in the counters.
    const fn index(&self) -> usize {
        match self {
            State::Idle => 0,
            State::ReadingRequest(_) => 1,
            State::WritingResponse(_) => 2,
            State::SendingFile(_) => 3,
            State::Lingering => 4,
            State::ReadingProxyHeader(_) => 5,
        }
    }

    /// This state's name, for traces and tests.
    fn name(&self) -> &'static str {
        STATE_NAMES[self.index()]
    }

    /// How long a connection may stay in this state without progress.
    fn timeout(&self, timeouts: &Timeouts) -> Duration {
        match self {
            State::Idle => timeouts.keepalive,
            State::ReadingRequest(_) | State::ReadingProxyHeader(_) => timeouts.header,
            State::WritingResponse(_) | State::SendingFile(_) => timeouts.send,
            State::Lingering => LINGER_TIMEOUT,
        }
    }
}

/// Readiness the kernel has reported and no system call has used up yet.
#[derive(Clone, Copy, Debug, Default)]
struct Readiness {
    /// There may be bytes to read (or an EOF or error to discover).
    readable: bool,
    /// There may be room in the send buffer.
    writable: bool,
    /// The peer shut down its side (the event said so): read to EOF, do not
    /// trust a short read to mean "drained".
    hangup: bool,
    /// A read returned EOF: the client will send nothing more.
    eof: bool,
}

impl Readiness {
    /// Forgets readiness in `call`'s direction: the kernel said it is used
    /// up, and only a new edge brings it back.
    fn use_up(&mut self, call: Syscall) {
        match call {
            Syscall::Read => self.readable = false,
            Syscall::Send | Syscall::SendMsg | Syscall::Sendfile => self.writable = false,
        }
    }
}

/// What one `read`, `send` or `sendfile` came to, once
/// [`Connection::account`] has noted what it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transfer {
    /// This many bytes moved. 0 is EOF for a read, and for `sendfile` a file
    /// that ended before its announced length.
    Moved(usize),
    /// Nothing moved: `WouldBlock` (the readiness is used up, so the
    /// handler's loop will wait) or a signal (`Interrupted`: the loop tries
    /// again).
    Nothing,
    /// The socket failed: the connection is over.
    Failed,
}

/// A client connection.
#[derive(Debug)]
pub struct Connection {
    /// The nonblocking socket, registered with the worker's `Poll`.
    socket: TcpStream,
    /// The client's address, for the access log: the socket's peer, or the
    /// client a PROXY protocol header names.
    peer: IpAddr,
    /// The slab key and token (for traces).
    token: usize,
    /// The deadline of the current state (and the connection's serial).
    pub timer: TimerSlot,
    /// Readiness not used up yet.
    readiness: Readiness,
    /// Whether the socket is registered for writability too (after the first
    /// write that blocked).
    watching_writes: bool,
    /// Whether the worker owes this connection a turn: it yielded, and the
    /// worker's list of yielded connections holds it. Keeps a connection
    /// that yields again before that turn (after an event) from being
    /// listed twice, which would double its share.
    owed_turn: bool,
    /// Where the connection is in its life.
    state: State,
}

impl Connection {
    /// A freshly accepted connection. It starts `Idle` (no buffer until bytes
    /// arrive) but with the *header* timeout: a client that connects and
    /// sends nothing is as slow as one that sends half a head. With
    /// `--proxy-protocol` it starts `ReadingProxyHeader` instead, holding a
    /// buffer at once: a balancer sends the header as soon as it has
    /// connected, usually with the first request. It is assumed writable (a
    /// new socket has an empty send buffer) but not readable: the
    /// registration reports data that is already there.
    pub fn new(
        socket: TcpStream,
        peer: IpAddr,
        serial: u64,
        token: usize,
        ctx: &mut Context,
    ) -> Connection {
        let state = if ctx.proxy_protocol {
            State::ReadingProxyHeader(ProxyReading {
                input: ctx.pool.take_input(),
                tlv_bytes_to_skip: 0,
            })
        } else {
            State::Idle
        };
        Connection {
            socket,
            peer,
            token,
            timer: TimerSlot::new(serial, ctx.clock.now() + ctx.timeouts.header),
            readiness: Readiness {
                writable: true,
                ..Readiness::default()
            },
            watching_writes: false,
            owed_turn: false,
            state,
        }
    }

    /// Adds the socket to `registry` under its token, for reading only (see
    /// "Ask for writability only once a write has blocked" above).
    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        registry.register(&mut self.socket, Token(self.token), Interest::READABLE)
    }

    /// Handles a readiness event: remembers what it says, then runs the
    /// state machine as far as it can go.
    pub fn on_event(&mut self, event: &Event, registry: &Registry, ctx: &mut Context) -> Outcome {
        let error = event.is_error();
        self.readiness.readable |= event.is_readable() || event.is_read_closed() || error;
        self.readiness.writable |= event.is_writable() || event.is_write_closed() || error;
        self.readiness.hangup |= event.is_read_closed();
        ctx.tracer.event(self.id(), event);
        self.drive(registry, ctx)
    }

    /// Gives a connection that yielded ([`Outcome::Yielded`]) its next turn:
    /// runs the state machine on from where it stopped. Its readiness still
    /// says writable, so it needs no event.
    pub fn take_turn(&mut self, registry: &Registry, ctx: &mut Context) -> Outcome {
        self.owed_turn = false;
        self.drive(registry, ctx)
    }

    /// Handles the expiry of the current state's deadline.
    pub fn on_timeout(&mut self, registry: &Registry, ctx: &mut Context) -> Outcome {
        let from = self.state.name();
        ctx.tracer.timeout(self.id(), from);
        match mem::replace(&mut self.state, State::Idle) {
            // The client sent part of a head and stalled: tell it why we
            // hang up (nginx closes silently; a 408 is kinder to debug).
            State::ReadingRequest(input) if !input.is_empty() => {
                let next = self.begin_response(input, Err(Status::RequestTimeout), ctx);
                self.enter(from, next, ctx);
                self.drive(registry, ctx)
            }
            // Draining: the client may be sending a request just now, and a
            // plain close would answer it with a reset. Send our FIN and
            // read until the client closes too.
            State::Idle if ctx.draining => {
                let _ = self.socket.shutdown(Shutdown::Write);
                self.enter(from, State::Lingering, ctx);
                self.drive(registry, ctx)
            }
            state => {
                self.state = state;
                ctx.tracer.transition(self.id(), from, "closed");
                Outcome::Close
            }
        }
    }

    /// Called when the server stops accepting, and after every event from
    /// then on (a response that ends turns its connection idle if it promised
    /// keep-alive, see `finish_exchange`). A connection in the middle of an
    /// exchange finishes it. An idle one may have a request on the wire, which a FIN now
    /// would cross (see [`crate::drain`], "Ending an idle keep-alive
    /// connection"): it stays idle, and a request that arrives is answered
    /// with `Connection: close`, but only until `idle_until`; then
    /// [`Connection::on_timeout`] half-closes it. Nothing to read or write
    /// here: an idle connection has used up its readiness, so bytes that
    /// arrive bring an event of their own.
    pub fn on_stop(&mut self, idle_until: Instant) {
        if let State::Idle = self.state {
            self.timer.deadline = self.timer.deadline.min(idle_until);
        }
    }

    /// Tears the connection down: logs a response that was cut short (with
    /// the bytes actually sent), counts a connection that never sent its
    /// whole PROXY protocol header, and returns buffers to the pool. Dropping
    /// the socket closes it, which also removes it from the epoll set.
    pub fn close(self, ctx: &mut Context) {
        match self.state {
            State::Idle | State::Lingering => {}
            State::ReadingRequest(input) => ctx.pool.put_input(input),
            // Whatever ended it (an invalid header, EOF, the header timeout,
            // a reset), the balancer's connection was refused.
            State::ReadingProxyHeader(reading) => {
                ctx.stats.proxy_header_refusals += 1;
                ctx.pool.put_input(reading.input);
            }
            State::WritingResponse(Writing {
                input,
                mut exchange,
                output,
                written,
                ..
            }) => {
                // Plus the cached body's bytes, counted as they left.
                exchange.body_bytes += written.saturating_sub(exchange.head_len) as u64;
                log_exchange(self.peer, &input, &exchange, ctx);
                ctx.pool.put_input(input);
                ctx.pool.put_output(output);
            }
            State::SendingFile(Sending {
                input, exchange, ..
            }) => {
                log_exchange(self.peer, &input, &exchange, ctx);
                ctx.pool.put_input(input);
            }
        }
    }

    /// The current state's position in [`STATE_NAMES`], for the counters.
    pub fn state_index(&self) -> usize {
        self.state.index()
    }

    /// Runs state handlers until one has to wait for the network or the
    /// connection is finished. Every transition passes through here.
    fn drive(&mut self, registry: &Registry, ctx: &mut Context) -> Outcome {
        loop {
            // Take the state out (leaving `Idle`) so its handler owns its data.
            let current = mem::replace(&mut self.state, State::Idle);
            let from = current.name();
            let transition = match current {
                State::Idle => self.idle(ctx),
                State::ReadingRequest(input) => self.read_request(input, ctx),
                State::WritingResponse(writing) => self.write_response(writing, ctx),
                State::SendingFile(sending) => self.send_file(sending, ctx),
                State::Lingering => self.linger(ctx),
                State::ReadingProxyHeader(reading) => self.read_proxy_header(reading, ctx),
            };
            match transition {
                Transition::Next(next) => self.enter(from, next, ctx),
                Transition::Wait(state) => {
                    self.state = state;
                    // Waiting for room in the send buffer: make sure epoll
                    // will say when there is some.
                    if !self.readiness.writable
                        && !self.watching_writes
                        && self.watch_writes(registry, ctx).is_err()
                    {
                        return Outcome::Close;
                    }
                    return Outcome::Open;
                }
                Transition::Yield(state) => {
                    self.state = state;
                    // Already listed: the turn owed covers this one too.
                    if mem::replace(&mut self.owed_turn, true) {
                        return Outcome::Open;
                    }
                    return Outcome::Yielded;
                }
                Transition::Close(leftover) => {
                    ctx.tracer.transition(self.id(), from, "closed");
                    if let Leftover::Held(state) = leftover {
                        self.state = state;
                    }
                    return Outcome::Close;
                }
            }
        }
    }

    /// Adds write interest to the socket's registration, for good. epoll
    /// checks readiness when the interest changes, so room that appeared
    /// since the write blocked is still reported.
    fn watch_writes(&mut self, registry: &Registry, ctx: &Context) -> io::Result<()> {
        let result = registry.reregister(
            &mut self.socket,
            Token(self.token),
            Interest::READABLE | Interest::WRITABLE,
        );
        match &result {
            Ok(()) => ctx.tracer.line(
                TraceLevel::Events,
                self.id(),
                format_args!("watch writes too"),
            ),
            Err(error) => ctx.tracer.line(
                TraceLevel::Events,
                self.id(),
                format_args!("watch writes too: error: {error}"),
            ),
        }
        self.watching_writes = result.is_ok();
        result
    }

    /// Makes `next` the current state and starts its timeout.
    fn enter(&mut self, from: &str, next: State, ctx: &Context) {
        ctx.tracer.transition(self.id(), from, next.name());
        self.timer.deadline = ctx.clock.now() + next.timeout(&ctx.timeouts);
        self.state = next;
    }

    /// `Idle`: wait for the client's next request without holding a buffer.
    fn idle(&mut self, ctx: &mut Context) -> Transition {
        if self.readiness.readable {
            Transition::Next(State::ReadingRequest(ctx.pool.take_input()))
        } else {
            Transition::Wait(State::Idle)
        }
    }

    /// `ReadingRequest`: read until a whole head is buffered, then answer it.
    fn read_request(&mut self, mut input: InputBuffer, ctx: &mut Context) -> Transition {
        // Bytes already buffered (a pipelined request) are parsed before
        // reading anything: they may hold a whole request.
        let mut unparsed = !input.is_empty();
        loop {
            if unparsed {
                match request::parse(input.filled()) {
                    Ok(Parsed::Complete(request)) => {
                        return Transition::Next(self.begin_response(input, Ok(request), ctx));
                    }
                    Ok(Parsed::Partial) => {}
                    Err(error) => {
                        let status = error.status();
                        return Transition::Next(self.begin_response(input, Err(status), ctx));
                    }
                }
            }
            if self.readiness.eof {
                // EOF between requests is the normal end of a connection; in
                // the middle of a head, the client gave up on its request.
                return Transition::Close(Leftover::Held(State::ReadingRequest(input)));
            }
            if !self.readiness.readable {
                if input.is_empty() {
                    // A spurious wake-up: nothing arrived after all. Wait
                    // without holding a buffer (the deadline stays).
                    ctx.pool.put_input(input);
                    let nothing = format_args!("ReadingRequest -> Idle (nothing to read)");
                    ctx.tracer.line(TraceLevel::States, self.id(), nothing);
                    return Transition::Wait(State::Idle);
                }
                return Transition::Wait(State::ReadingRequest(input));
            }
            // A full buffer always parses as complete or too large, so there
            // is room here.
            unparsed = match self.read_input(&mut input, ctx) {
                Transfer::Moved(count) => count > 0,
                Transfer::Nothing => false,
                Transfer::Failed => {
                    return Transition::Close(Leftover::Held(State::ReadingRequest(input)));
                }
            };
        }
    }

    /// One `read` into `input`'s free space (which must not be empty): keeps
    /// the bytes that came, and notes an EOF (`Moved(0)`) in the readiness.
    #[inline]
    fn read_input(&mut self, input: &mut InputBuffer, ctx: &mut Context) -> Transfer {
        let spare = input.spare_mut();
        let wanted = spare.len();
        let result = (&self.socket).read(spare);
        let transfer = self.account(Syscall::Read, result, wanted, ctx);
        match transfer {
            Transfer::Moved(0) => {
                self.readiness.eof = true;
                self.readiness.readable = false;
            }
            Transfer::Moved(count) => input.fill(count),
            Transfer::Nothing | Transfer::Failed => {}
        }
        transfer
    }

    /// `ReadingProxyHeader`: read until the PROXY protocol header is complete
    /// and its TLVs (if any) are skipped, take the client's address from it,
    /// then read the first request from the bytes after it.
    ///
    /// Anything but a valid header closes the connection without an HTTP
    /// answer: whoever sent it does not speak the protocol the balancer
    /// would, so an error page would be garbage to it (see
    /// [`crate::proxy`]).
    ///
    /// Cold: it runs once per connection, and kept out of line it leaves
    /// `drive`'s request path as it was without `--proxy-protocol`.
    #[cold]
    fn read_proxy_header(&mut self, mut reading: ProxyReading, ctx: &mut Context) -> Transition {
        // Nothing is buffered when the state starts: read first.
        let mut unparsed = false;
        loop {
            if reading.tlv_bytes_to_skip > 0 {
                let skipped = reading.tlv_bytes_to_skip.min(reading.input.filled().len());
                reading.input.consume(skipped);
                reading.tlv_bytes_to_skip -= skipped;
                if reading.tlv_bytes_to_skip == 0 {
                    return Transition::Next(State::ReadingRequest(reading.input));
                }
            } else if unparsed {
                match proxy::parse_header(reading.input.filled()) {
                    Ok(HeaderStatus::Complete(header)) => {
                        // `LOCAL` and `UNKNOWN` name no client: the peer is
                        // the one to log (a balancer's own health check).
                        if let Some(client) = header.source {
                            self.peer = client.ip();
                        }
                        let client = format_args!("PROXY header: client {}", self.peer);
                        ctx.tracer.line(TraceLevel::States, self.id(), client);
                        reading.input.consume(header.consumed);
                        if header.remaining == 0 {
                            return Transition::Next(State::ReadingRequest(reading.input));
                        }
                        reading.tlv_bytes_to_skip = header.remaining;
                    }
                    // A full buffer is never `Partial`: the parser decides
                    // within 107 bytes (v1) or 52 (v2, up to its addresses).
                    Ok(HeaderStatus::Partial) => {}
                    Err(error) => {
                        let refused = format_args!("PROXY header refused: {error}");
                        ctx.tracer.line(TraceLevel::States, self.id(), refused);
                        let held = State::ReadingProxyHeader(reading);
                        return Transition::Close(Leftover::Held(held));
                    }
                }
            }
            // The state is held on every close, so that `close` counts the
            // refusal: EOF before the header is complete, or a failed read.
            if self.readiness.eof {
                return Transition::Close(Leftover::Held(State::ReadingProxyHeader(reading)));
            }
            if !self.readiness.readable {
                return Transition::Wait(State::ReadingProxyHeader(reading));
            }
            unparsed = match self.read_input(&mut reading.input, ctx) {
                Transfer::Moved(count) => count > 0,
                Transfer::Nothing => false,
                Transfer::Failed => {
                    return Transition::Close(Leftover::Held(State::ReadingProxyHeader(reading)));
                }
            };
        }
    }

    /// Answers a request (or the status an invalid head earned): the head goes
    /// into a pooled output buffer, and the connection moves on to write it.
    ///
    /// Pipelining: while the answers so far are all in memory and the next
    /// request is already complete in the input buffer, it is answered into
    /// the same output buffer, so a batch of pipelined requests leaves in one
    /// `send`. A cached body is copied into the batch, except the last one's,
    /// which leaves by reference with the batch. (Each batched response is
    /// logged when it is queued, with its full length; only the last one is
    /// tracked to the byte.)
    fn begin_response(
        &mut self,
        mut input: InputBuffer,
        mut request: Result<Request, Status>,
        ctx: &mut Context,
    ) -> State {
        let mut output = ctx.pool.take_output();
        loop {
            let (exchange, body) = self.answer_one(&input, request, ctx, &mut output);
            let rest = &input.filled()[exchange.consumed..];
            // Nothing pipelined (the usual case): no second parse. A file
            // body ends the batch.
            let batchable = !rest.is_empty()
                && !matches!(body, Some(BodySend::File(_)))
                && exchange.keep_alive
                && !ctx.draining
                && output.len() < MAX_BATCHED_OUTPUT_BYTES;
            if batchable {
                // The next request's spans are relative to `rest`, which is
                // what `input.filled()` will be once this one is consumed.
                if let Ok(Parsed::Complete(next)) = request::parse(rest) {
                    // The batch goes on, so a cached body joins it as a
                    // copy: sent by reference it would need a send of its
                    // own (see "How a body leaves").
                    if let Some(BodySend::Cached(cached)) = &body {
                        output.extend_from_slice(cached.unsent());
                    }
                    let queued = Exchange {
                        body_bytes: (output.len() - exchange.head_len) as u64,
                        ..exchange
                    };
                    log_exchange(self.peer, &input, &queued, ctx);
                    input.consume(exchange.consumed);
                    request = Ok(next);
                    continue;
                }
            }
            return State::WritingResponse(Writing {
                input,
                exchange,
                output,
                written: 0,
                body,
            });
        }
    }

    /// Appends the answer to one request to `output`.
    fn answer_one(
        &self,
        input: &InputBuffer,
        request: Result<Request, Status>,
        ctx: &mut Context,
        output: &mut Vec<u8>,
    ) -> (Exchange, Option<BodySend>) {
        let env = Env {
            date: ctx.clock.http_date(),
            keep_alive: ctx.timeouts.keepalive,
            draining: ctx.draining,
            now: ctx.clock.now(),
        };
        let (answer, request_line, consumed, unread_input): (Answer, Span, usize, bool) =
            match request {
                Ok(request) => (
                    respond::answer(
                        &ctx.site,
                        &mut ctx.cache,
                        &request,
                        input.filled(),
                        env,
                        &mut ctx.scratch,
                        output,
                    ),
                    request.request_line,
                    request.head_len,
                    request.has_body,
                ),
                Err(status) => (
                    StatusPage::for_invalid_head(status).write(&ctx.site, env, output),
                    first_line_span(input.filled()),
                    input.filled().len(),
                    true,
                ),
            };
        let head = &input.filled()[..consumed];
        ctx.tracer
            .request(self.id(), request_line.of(head), head, answer.status);
        let exchange = Exchange {
            request_line,
            consumed,
            status: answer.status,
            keep_alive: answer.keep_alive,
            unread_input,
            head_len: answer.head_len,
            body_bytes: 0,
            record: answer.record,
        };
        (exchange, answer.body)
    }

    /// `WritingResponse`: write the output buffer (with a cached body by
    /// reference, in the same `sendmsg`), then go on to the file body if
    /// there is one.
    fn write_response(&mut self, mut writing: Writing, ctx: &mut Context) -> Transition {
        while !writing.is_sent() {
            if !self.readiness.writable {
                return Transition::Wait(State::WritingResponse(writing));
            }
            let unsent = &writing.output[writing.written..];
            // MSG_MORE holds back a partial segment: with a file to follow,
            // the head shares its first TCP segment with the body; before a
            // close, the last bytes share theirs with the FIN.
            let closing = !writing.exchange.keep_alive;
            let (call, result, asked) = match &writing.body {
                Some(BodySend::Cached(cached)) => {
                    let body = cached.unsent();
                    let result = sys::send_pair(&self.socket, unsent, body, closing);
                    (Syscall::SendMsg, result, unsent.len() + body.len())
                }
                Some(BodySend::File(_)) => (
                    Syscall::Send,
                    sys::send(&self.socket, unsent, true),
                    unsent.len(),
                ),
                None => (
                    Syscall::Send,
                    sys::send(&self.socket, unsent, closing),
                    unsent.len(),
                ),
            };
            match self.account(call, result, asked, ctx) {
                Transfer::Moved(count) => writing.advance(count),
                Transfer::Nothing => {}
                Transfer::Failed => {
                    return Transition::Close(Leftover::Held(State::WritingResponse(writing)));
                }
            }
        }
        let Writing {
            input,
            mut exchange,
            output,
            body,
            ..
        } = writing;
        exchange.body_bytes += (output.len() - exchange.head_len) as u64;
        ctx.pool.put_output(output);
        match body {
            Some(BodySend::File(body)) => Transition::Next(State::SendingFile(Sending {
                input,
                exchange,
                body,
            })),
            // A cached body is out with the buffer; dropping it here lets
            // go of the entry's bytes.
            Some(BodySend::Cached(_)) | None => self.finish_exchange(input, exchange, ctx),
        }
    }

    /// `SendingFile`: `sendfile` until the body is out. After `WouldBlock` the
    /// offset in the body is where the next writable event resumes; after
    /// [`FILE_BYTES_PER_TURN`] bytes, where the next turn resumes.
    fn send_file(&mut self, mut sending: Sending, ctx: &mut Context) -> Transition {
        let mut turn_left = FILE_BYTES_PER_TURN;
        while sending.body.remaining > 0 {
            if !self.readiness.writable {
                return Transition::Wait(State::SendingFile(sending));
            }
            if turn_left == 0 {
                let turn =
                    format_args!("SendingFile yields its turn ({FILE_BYTES_PER_TURN} bytes sent)");
                ctx.tracer.line(TraceLevel::States, self.id(), turn);
                return Transition::Yield(State::SendingFile(sending));
            }
            let body = &mut sending.body;
            let count = usize::try_from(body.remaining).map_or(turn_left, |n| n.min(turn_left));
            let result = sys::sendfile(&self.socket, &body.file, &mut body.offset, count);
            match self.account(Syscall::Sendfile, result, count, ctx) {
                // The file shrank after we announced its length. The client
                // would wait forever for the missing bytes; the only honest
                // end is to close.
                Transfer::Moved(0) | Transfer::Failed => {
                    return Transition::Close(Leftover::Held(State::SendingFile(sending)));
                }
                Transfer::Moved(sent) => {
                    turn_left -= sent;
                    body.remaining -= sent as u64;
                    sending.exchange.body_bytes += sent as u64;
                }
                Transfer::Nothing => {}
            }
        }
        self.finish_exchange(sending.input, sending.exchange, ctx)
    }

    /// The response is out: log it, drop the request's bytes, and decide what
    /// the connection does next.
    ///
    /// What the response promised decides, not whether the server is
    /// draining now: a response that went out with `Connection: keep-alive`
    /// before draining began told the client it may send another request,
    /// and a close here would answer that request with a reset. So the
    /// connection stays open; its next request is answered with `Connection:
    /// close`, and if none comes, the idle grace of a stop ends it cleanly
    /// ([`Connection::on_stop`]).
    fn finish_exchange(
        &mut self,
        mut input: InputBuffer,
        exchange: Exchange,
        ctx: &mut Context,
    ) -> Transition {
        log_exchange(self.peer, &input, &exchange, ctx);
        input.consume(exchange.consumed);
        let pipelined = !input.is_empty();
        if exchange.keep_alive {
            if pipelined {
                return Transition::Next(State::ReadingRequest(input));
            }
            ctx.pool.put_input(input);
            return Transition::Next(State::Idle);
        }
        ctx.pool.put_input(input);
        if (pipelined || exchange.unread_input) && !self.readiness.eof {
            // Send our FIN after the response, then discard what arrives.
            let _ = self.socket.shutdown(Shutdown::Write);
            return Transition::Next(State::Lingering);
        }
        Transition::Close(Leftover::Nothing)
    }

    /// `Lingering`: read and discard until the client closes or the linger
    /// timeout runs out.
    fn linger(&mut self, ctx: &mut Context) -> Transition {
        let mut discard = [0u8; LINGER_DISCARD_BYTES];
        while self.readiness.readable {
            let result = (&self.socket).read(&mut discard);
            match self.account(Syscall::Read, result, discard.len(), ctx) {
                Transfer::Moved(0) | Transfer::Failed => {
                    return Transition::Close(Leftover::Nothing);
                }
                Transfer::Moved(_) | Transfer::Nothing => {}
            }
        }
        Transition::Wait(State::Lingering)
    }

    /// Makes sense of one system call's result, in one place for all three:
    /// traces it; marks the readiness it used up as gone when the kernel says
    /// so (`WouldBlock`, or a short count where epoll(7) lets that mean
    /// "drained": a `read`, unless the peer hung up and we must read on to
    /// EOF, and a `send`, but not a `sendfile`, whose short count may also
    /// mean the file ended); and for a write, counts the bytes and restarts
    /// the send deadline (the client is accepting our response).
    #[inline]
    fn account(
        &mut self,
        call: Syscall,
        result: io::Result<usize>,
        asked: usize,
        ctx: &mut Context,
    ) -> Transfer {
        let short_means_drained = match call {
            Syscall::Read => !self.readiness.hangup,
            Syscall::Send | Syscall::SendMsg => true,
            Syscall::Sendfile => false,
        };
        let drained = matches!(result, Ok(done) if done < asked && short_means_drained);
        ctx.tracer.syscall(self.id(), call, &result, asked, drained);
        match result {
            Ok(done) => {
                if drained {
                    self.readiness.use_up(call);
                }
                if call != Syscall::Read {
                    ctx.stats.bytes_sent += done as u64;
                    self.timer.deadline = ctx.clock.now() + ctx.timeouts.send;
                }
                Transfer::Moved(done)
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                self.readiness.use_up(call);
                Transfer::Nothing
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Transfer::Nothing,
            Err(_) => Transfer::Failed,
        }
    }

    /// Which connection trace lines are about.
    fn id(&self) -> ConnectionId {
        ConnectionId {
            serial: self.timer.serial,
            token: self.token,
        }
    }
}

/// Records the access-log line of an exchange, and counts it.
fn log_exchange(peer: IpAddr, input: &InputBuffer, exchange: &Exchange, ctx: &mut Context) {
    match exchange.record {
        Record::Logged => ctx.stats.count_response(exchange.status),
        Record::HealthCheck => {
            ctx.stats.health_checks += 1;
            return;
        }
        Record::Unrecorded => return,
    }
    let now = ctx.clock.now();
    ctx.log.record(
        &LogEntry {
            client: peer,
            time: ctx.clock.log_time(),
            request_line: exchange.request_line.of(input.filled()),
            head: &input.filled()[..exchange.consumed],
            status: exchange.status,
            body_bytes: exchange.body_bytes,
        },
        now,
    );
}

#[cfg(test)]
mod tests {
    //! State transitions, driven by real readiness events from a real `Poll`
    //! over a real loopback connection.
    use super::*;
    use std::io::Write;
    use std::net::TcpStream as StdTcpStream;
    use std::time::{Duration, Instant};

    use mio::{Events, Poll};

    use crate::cache::MAX_CACHED_FILE_BYTES;
    use crate::respond::{CachedSend, MIN_CACHED_SEND_BYTES};

    struct Harness {
        poll: Poll,
        events: Events,
        connection: Connection,
        client: StdTcpStream,
        ctx: Context,
        root: tempfile::TempDir,
    }

    impl Harness {
        fn new(files: &[(&str, &[u8])]) -> Harness {
            Harness::start(files, false)
        }

        /// A connection accepted with `--proxy-protocol`.
        fn behind_balancer(files: &[(&str, &[u8])]) -> Harness {
            Harness::start(files, true)
        }

        fn start(files: &[(&str, &[u8])], proxy_protocol: bool) -> Harness {
            let root = tempfile::tempdir().unwrap();
            for (name, contents) in files {
                std::fs::write(root.path().join(name), contents).unwrap();
            }
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let client = StdTcpStream::connect(listener.local_addr().unwrap()).unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let (accepted, peer) = listener.accept().unwrap();
            accepted.set_nonblocking(true).unwrap();
            let socket = TcpStream::from_std(accepted);
            let poll = Poll::new().unwrap();
            let mut ctx = Context {
                site: Arc::new(Site::open(root.path()).unwrap()),
                clock: Clock::new(),
                pool: BufferPool::default(),
                log: AccessLog::new(None, Arc::default()),
                scratch: Vec::new(),
                cache: FileCache::default(),
                timeouts: Timeouts {
                    header: Duration::from_secs(10),
                    send: Duration::from_secs(30),
                    keepalive: Duration::from_secs(10),
                },
                draining: false,
                tracer: Tracer::new(TraceLevel::Off, Instant::now(), 0),
                stats: WorkerStats::default(),
                proxy_protocol,
                trusted_proxies: Vec::new(),
            };
            let mut connection = Connection::new(socket, peer.ip(), 1, 0, &mut ctx);
            connection.register(poll.registry()).unwrap();
            Harness {
                poll,
                events: Events::with_capacity(16),
                connection,
                client,
                ctx,
                root,
            }
        }

        /// Waits for readiness events and feeds them to the connection until
        /// the connection closes or nothing happens for a while.
        fn pump(&mut self) -> Outcome {
            loop {
                self.poll
                    .poll(&mut self.events, Some(Duration::from_millis(200)))
                    .unwrap();
                if self.events.is_empty() {
                    return Outcome::Open;
                }
                for event in self.events.iter() {
                    let mut outcome =
                        self.connection
                            .on_event(event, self.poll.registry(), &mut self.ctx);
                    // What the worker does for a connection that yielded.
                    while outcome == Outcome::Yielded {
                        outcome = self
                            .connection
                            .take_turn(self.poll.registry(), &mut self.ctx);
                    }
                    if outcome == Outcome::Close {
                        return Outcome::Close;
                    }
                }
            }
        }

        fn state(&self) -> &'static str {
            self.connection.state.name()
        }

        fn read_exactly(&mut self, len: usize) -> Vec<u8> {
            let mut received = vec![0; len];
            self.client.read_exact(&mut received).unwrap();
            received
        }

        /// A client thread that reads one response head and then `len`
        /// body bytes, returning the body: a reader that frees the socket
        /// buffers while the test pumps the connection.
        fn body_reader(&self, len: usize) -> std::thread::JoinHandle<Vec<u8>> {
            let mut client = self.client.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let mut byte = [0];
                    client.read_exact(&mut byte).unwrap();
                    head.push(byte[0]);
                }
                let mut body = vec![0; len];
                client.read_exact(&mut body).unwrap();
                body
            })
        }

        /// Pumps until the response is out and the connection idle. Each
        /// pump returns after 200 ms without events: a lost writable event
        /// fails here instead of hanging.
        fn pump_until_idle(&mut self) {
            for _ in 0..50 {
                if self.state() == "Idle" {
                    break;
                }
                assert_eq!(self.pump(), Outcome::Open);
            }
            assert_eq!(self.state(), "Idle", "the transfer stalled");
        }
    }

    fn count_responses(bytes: &[u8]) -> usize {
        bytes.windows(9).filter(|w| w == b"HTTP/1.1 ").count()
    }

    /// An exchange with placeholder data.
    fn exchange() -> Exchange {
        Exchange {
            request_line: Span::default(),
            consumed: 0,
            status: Status::Ok,
            keep_alive: true,
            unread_input: false,
            head_len: 0,
            body_bytes: 0,
            record: Record::Logged,
        }
    }

    /// One connection state of every kind, with placeholder data.
    fn every_state() -> Vec<State> {
        vec![
            State::Idle,
            State::ReadingRequest(InputBuffer::new()),
            State::WritingResponse(Writing {
                input: InputBuffer::new(),
                exchange: exchange(),
                output: Vec::new(),
                written: 0,
                body: None,
            }),
            State::SendingFile(Sending {
                input: InputBuffer::new(),
                exchange: exchange(),
                body: FileSend {
                    file: tempfile::tempfile().unwrap(),
                    offset: 0,
                    remaining: 0,
                },
            }),
            State::Lingering,
            State::ReadingProxyHeader(ProxyReading {
                input: InputBuffer::new(),
                tlv_bytes_to_skip: 0,
            }),
        ]
    }

    /// Every transition moves the state (out of the connection, through a
    /// `Transition`, back in). Up to 128 bytes the compiler does that with a
    /// few inline instructions; beyond, each move is a call to `memcpy`,
    /// about 70 instructions per request on the hot path (`benches/
    /// instructions.py`). `InputBuffer` and `CachedSend` keep `u32` offsets
    /// for this.
    #[test]
    fn the_connection_state_fits_in_128_bytes() {
        assert!(size_of::<State>() <= 128, "{} bytes", size_of::<State>());
    }

    /// `STATE_NAMES` and `State::index` are written by hand; the variant
    /// names `Debug` prints are the compiler's. Every index is used once,
    /// and each names its own variant.
    #[test]
    fn state_names_are_the_variant_names() {
        let states = every_state();
        let mut indices: Vec<usize> = states.iter().map(State::index).collect();
        indices.sort_unstable();
        assert_eq!(indices, (0..STATE_NAMES.len()).collect::<Vec<_>>());
        for state in &states {
            let debug = format!("{state:?}");
            let variant = debug.split('(').next().unwrap();
            assert_eq!(state.name(), variant, "{debug}");
        }
    }

    #[test]
    fn a_partial_write_resumes_within_the_head_or_the_cached_body() {
        let mut writing = Writing {
            input: InputBuffer::new(),
            exchange: Exchange {
                head_len: 4,
                ..exchange()
            },
            output: b"HEAD".to_vec(),
            written: 0,
            // A range, bytes 2..9 of the entry.
            body: Some(BodySend::Cached(CachedSend::new(
                Arc::from(&b"0123456789"[..]),
                2,
                9,
            ))),
        };
        let unsent = |writing: &Writing| {
            let Some(BodySend::Cached(cached)) = &writing.body else {
                unreachable!()
            };
            let head = &writing.output[writing.written..];
            (head.to_vec(), cached.unsent().to_vec())
        };
        // Within the head: the body is untouched.
        writing.advance(3);
        assert_eq!(unsent(&writing), (b"D".to_vec(), b"2345678".to_vec()));
        // Across the boundary: the rest of the head and two body bytes.
        writing.advance(3);
        assert_eq!(unsent(&writing), (Vec::new(), b"45678".to_vec()));
        assert_eq!(writing.exchange.body_bytes, 2);
        assert!(!writing.is_sent());
        // Within the body, to its end.
        writing.advance(5);
        assert!(writing.is_sent());
        assert_eq!(writing.exchange.body_bytes, 7);
    }

    #[test]
    fn a_pipelined_batch_copies_its_cached_bodies_but_the_last() {
        let body: Vec<u8> = (0..MIN_CACHED_SEND_BYTES)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut h = Harness::new(&[("c.bin", &body)]);
        let request = b"GET /c.bin HTTP/1.1\r\nHost: t\r\n\r\n";
        // Twice, whatever the cache's admission rule: the file is in memory.
        for _ in 0..2 {
            h.client.write_all(request).unwrap();
            assert_eq!(h.pump(), Outcome::Open);
        }
        let mut input = InputBuffer::new();
        let pipelined = [&request[..], &request[..]].concat();
        input.spare_mut()[..pipelined.len()].copy_from_slice(&pipelined);
        input.fill(pipelined.len());
        let Ok(Parsed::Complete(first)) = request::parse(input.filled()) else {
            panic!("the request does not parse");
        };
        let State::WritingResponse(writing) =
            h.connection.begin_response(input, Ok(first), &mut h.ctx)
        else {
            panic!("expected WritingResponse");
        };
        // One batch: the first response whole, copied; the second's head.
        assert_eq!(count_responses(&writing.output), 2);
        assert!(writing.output.windows(body.len()).any(|w| w == body));
        assert!(writing.output.ends_with(b"\r\n\r\n"));
        let Some(BodySend::Cached(last)) = &writing.body else {
            panic!("the last body should leave by reference");
        };
        assert!(last.unsent() == body);
    }

    #[test]
    fn a_cached_body_sent_by_reference_outlives_its_entry() {
        let len = MAX_CACHED_FILE_BYTES as usize;
        let contents: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut h = Harness::new(&[("c.bin", &contents)]);
        // Small socket buffers on both sides: the body cannot leave at once.
        socket2::SockRef::from(&h.client)
            .set_recv_buffer_size(4096)
            .unwrap();
        socket2::SockRef::from(&h.connection.socket)
            .set_send_buffer_size(4096)
            .unwrap();
        h.client
            .write_all(b"GET /c.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(h.pump(), Outcome::Open);
        let State::WritingResponse(Writing {
            body: Some(BodySend::Cached(cached)),
            ..
        }) = &h.connection.state
        else {
            panic!("expected a cached body by reference, got {}", h.state());
        };
        assert!(!cached.unsent().is_empty(), "the body left at once");
        // The entry goes, as an invalidation or an eviction would take it,
        // and the file changes: the response keeps the bytes its head
        // announced.
        h.ctx.cache = FileCache::default();
        std::fs::write(h.root.path().join("c.bin"), vec![b'x'; len]).unwrap();

        let reader = h.body_reader(len);
        h.pump_until_idle();
        assert!(reader.join().unwrap() == contents);
    }

    #[test]
    fn pipelined_requests_are_all_answered_then_idle_holds_no_buffer() {
        let mut h = Harness::new(&[("a.txt", b"aaaa"), ("b.txt", b"bb")]);
        let request = |path: &str| format!("GET /{path} HTTP/1.1\r\nHost: t\r\n\r\n");
        let batch = [request("a.txt"), request("b.txt"), request("a.txt")].concat();
        h.client.write_all(batch.as_bytes()).unwrap();
        assert_eq!(h.pump(), Outcome::Open);
        assert_eq!(h.state(), "Idle");

        let mut received = Vec::new();
        while count_responses(&received) < 3 || !received.ends_with(b"aaaa") {
            let mut chunk = [0; 4096];
            let n = h.client.read(&mut chunk).unwrap();
            assert!(n > 0);
            received.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8(received).unwrap();
        let bodies: Vec<&str> = text
            .split("HTTP/1.1 200 OK")
            .skip(1)
            .map(|response| response.rsplit("\r\n\r\n").next().unwrap())
            .collect();
        assert_eq!(bodies, ["aaaa", "bb", "aaaa"]);
        // Both buffers went back to the pool.
        assert_eq!(h.ctx.pool.spare_counts(), (1, 1));
        // No write blocked, so no epoll_ctl was spent on write interest.
        assert!(!h.connection.watching_writes);
    }

    #[test]
    fn a_slow_reader_parks_the_file_and_resumes_at_its_offset() {
        let len = 8 << 20;
        let contents: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut h = Harness::new(&[("big.bin", &contents)]);
        h.client
            .write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(h.pump(), Outcome::Open);
        // The client has not read anything: the socket buffers are full, and
        // the connection waits for a writable event partway through.
        let State::SendingFile(Sending { body, .. }) = &h.connection.state else {
            panic!("expected SendingFile, got {}", h.state());
        };
        assert!(body.offset > 0 && body.remaining > 0);
        assert_eq!(body.offset + body.remaining, len as u64);
        // Registered for reading only at first; the blocked sendfile added
        // write interest, without which no writable event would ever come.
        assert!(h.connection.watching_writes);

        let reader = h.body_reader(len);
        h.pump_until_idle();
        assert!(reader.join().unwrap() == contents);
    }

    #[test]
    fn a_file_truncated_mid_send_closes_the_connection() {
        let len = 8 << 20;
        let mut h = Harness::new(&[("big.bin", &vec![7u8; len])]);
        h.client
            .write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(h.pump(), Outcome::Open);
        assert_eq!(h.state(), "SendingFile");
        std::fs::write(h.root.path().join("big.bin"), b"short").unwrap();
        let mut client = h.client.try_clone().unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = client.read_to_end(&mut all);
            all.len()
        });
        let mut outcome = Outcome::Open;
        for _ in 0..50 {
            outcome = h.pump();
            if outcome == Outcome::Close {
                break;
            }
        }
        assert_eq!(outcome, Outcome::Close);
        assert_eq!(h.state(), "SendingFile");
        h.connection.close(&mut h.ctx);
        assert!(reader.join().unwrap() < len);
    }

    #[test]
    fn an_invalid_head_is_answered_then_the_connection_ends() {
        let mut h = Harness::new(&[]);
        h.client.write_all(b"NOT HTTP AT ALL\r\n\r\nmore").unwrap();
        // The client has not closed: the connection answers, shuts down its
        // sending side and lingers (it does not close at once).
        assert_eq!(h.pump(), Outcome::Open);
        assert_eq!(h.state(), "Lingering");
        let mut response = Vec::new();
        h.client.read_to_end(&mut response).unwrap();
        assert!(response.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
        assert!(String::from_utf8_lossy(&response).contains("Connection: close\r\n"));
        // Lingering ends when the client closes too.
        h.client.shutdown(std::net::Shutdown::Both).unwrap();
        assert_eq!(h.pump(), Outcome::Close);
    }

    #[test]
    fn a_partial_head_times_out_with_408() {
        let mut h = Harness::new(&[]);
        h.client.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
        assert_eq!(h.pump(), Outcome::Open);
        assert_eq!(h.state(), "ReadingRequest");
        let _ = h.connection.on_timeout(h.poll.registry(), &mut h.ctx);
        let response = h.read_exactly(30);
        assert_eq!(&response, b"HTTP/1.1 408 Request Timeout\r\n");
    }

    #[test]
    fn once_stopping_an_idle_connection_answers_a_last_request_with_close() {
        let mut h = Harness::new(&[("a.txt", b"aaaa")]);
        assert_eq!(h.pump(), Outcome::Open);
        h.ctx.draining = true;
        let idle_until = h.ctx.clock.now() + Duration::from_secs(1);
        h.connection.on_stop(idle_until);
        assert_eq!(
            h.state(),
            "Idle",
            "no FIN yet: a request may be on the wire"
        );
        assert_eq!(h.connection.timer.deadline, idle_until);
        h.client
            .write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(h.pump(), Outcome::Close);
        h.connection.close(&mut h.ctx);
        let mut response = Vec::new();
        h.client.read_to_end(&mut response).unwrap();
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("Connection: close\r\n"), "{response}");
        assert!(response.ends_with("aaaa"), "{response}");
    }

    #[test]
    fn once_stopping_an_idle_connection_still_idle_after_the_grace_half_closes() {
        let mut h = Harness::new(&[]);
        assert_eq!(h.pump(), Outcome::Open);
        h.ctx.draining = true;
        h.connection.on_stop(h.ctx.clock.now());
        assert_eq!(
            h.connection.on_timeout(h.poll.registry(), &mut h.ctx),
            Outcome::Open
        );
        // Our FIN, not a reset: a request sent now is read and discarded, and
        // the client sees an orderly end it may retry after.
        assert_eq!(h.state(), "Lingering");
        h.client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut received = Vec::new();
        h.client.read_to_end(&mut received).unwrap();
        assert!(received.is_empty());
        h.client.shutdown(std::net::Shutdown::Both).unwrap();
        assert_eq!(h.pump(), Outcome::Close);
    }

    #[test]
    fn an_idle_connection_times_out_silently() {
        let mut h = Harness::new(&[]);
        assert_eq!(h.pump(), Outcome::Open);
        assert_eq!(h.state(), "Idle");
        assert_eq!(
            h.connection.on_timeout(h.poll.registry(), &mut h.ctx),
            Outcome::Close
        );
    }

    const PROXY_V1: &[u8] = b"PROXY TCP4 203.0.113.7 127.0.0.1 5000 8888\r\n";

    /// A v2 `PROXY` header for TCP over IPv4 from 198.51.100.9:6000, with
    /// `tlv_len` bytes of (no-op) TLVs after the addresses.
    fn proxy_v2(tlv_len: u16) -> Vec<u8> {
        let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11".to_vec();
        header.extend_from_slice(&(12 + tlv_len).to_be_bytes());
        header.extend_from_slice(&[198, 51, 100, 9, 127, 0, 0, 1]);
        header.extend_from_slice(&6000u16.to_be_bytes());
        header.extend_from_slice(&8888u16.to_be_bytes());
        // PP2_TYPE_NOOP (0x04) TLVs: type, 16-bit length, value.
        let mut left = usize::from(tlv_len);
        while left > 0 {
            let value_len = (left - 3).min(1000);
            header.push(0x04);
            header.extend_from_slice(&(value_len as u16).to_be_bytes());
            header.resize(header.len() + value_len, 0);
            left -= 3 + value_len;
        }
        header
    }

    #[test]
    fn a_proxy_header_split_into_bytes_names_the_client_then_requests_follow() {
        let mut h = Harness::behind_balancer(&[("a.txt", b"aaaa")]);
        assert_eq!(h.state(), "ReadingProxyHeader");
        for byte in PROXY_V1 {
            h.client.write_all(&[*byte]).unwrap();
            assert_eq!(h.pump(), Outcome::Open);
        }
        // The header is complete; no request byte has come, so the buffer
        // went back to the pool.
        assert_eq!(h.state(), "Idle");
        assert_eq!(h.connection.peer, IpAddr::from([203, 0, 113, 7]));
        h.client
            .write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(h.pump(), Outcome::Open);
        let response = h.read_exactly(17);
        assert_eq!(&response, b"HTTP/1.1 200 OK\r\n");
        assert_eq!(h.ctx.stats.requests, 1);
    }

    #[test]
    fn tlvs_longer_than_the_buffer_are_skipped_and_the_request_behind_them_answered() {
        let mut h = Harness::behind_balancer(&[("a.txt", b"aaaa")]);
        let mut bytes = proxy_v2(9000);
        bytes.extend_from_slice(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        h.client.write_all(&bytes).unwrap();
        assert_eq!(h.pump(), Outcome::Open);
        assert_eq!(h.state(), "Idle");
        assert_eq!(h.connection.peer, IpAddr::from([198, 51, 100, 9]));
        let response = h.read_exactly(17);
        assert_eq!(&response, b"HTTP/1.1 200 OK\r\n");
    }

    #[test]
    fn a_request_without_a_proxy_header_is_closed_unanswered_and_counted() {
        let mut h = Harness::behind_balancer(&[]);
        h.client
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(h.pump(), Outcome::Close);
        assert_eq!(h.state(), "ReadingProxyHeader");
        let Harness {
            connection,
            mut ctx,
            mut client,
            ..
        } = h;
        connection.close(&mut ctx);
        assert_eq!(ctx.stats.proxy_header_refusals, 1);
        assert_eq!(ctx.pool.spare_counts(), (1, 0));
        let mut response = Vec::new();
        let _ = client.read_to_end(&mut response);
        assert!(response.is_empty(), "{response:?}");
    }

    #[test]
    fn a_partial_proxy_header_times_out_without_an_answer() {
        let mut h = Harness::behind_balancer(&[]);
        h.client.write_all(&PROXY_V1[..10]).unwrap();
        assert_eq!(h.pump(), Outcome::Open);
        assert_eq!(h.state(), "ReadingProxyHeader");
        assert_eq!(
            h.connection.on_timeout(h.poll.registry(), &mut h.ctx),
            Outcome::Close
        );
    }
}
