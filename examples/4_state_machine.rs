//! Rung 4 of 4: rung 3's event loop, each connection an explicit state
//! machine: the shape of mioserve's `src/connection.rs`.
//!
//! **What it fixes.** Rung 3 implied a connection's stage by fields reset by
//! hand. Here `State` is an enum whose variants hold exactly their data:
//! `Idle` holds no buffer; `Writing` carries the bytes that came after its
//! request, so a pipelined request is answered, not lost. The next request
//! starts by *assigning* a state; nothing is reset. Handlers return a `Step`:
//! `Next` (run the new state at once: its data may already be here), `Wait`
//! (for the next event) or `Close`. One driver, `drive`, applies them, so
//! every transition passes one place; only the event loop removes a connection.
//!
//! **What it still lacks**, each in mioserve: a loop per core, each on its
//! own `SO_REUSEPORT` listener (`src/server.rs`); timeouts, so idle and
//! stalled clients give up their slot (`src/timer.rs`); `sendfile(2)` and a
//! small-file cache instead of reading every file (`src/connection.rs`,
//! `src/cache.rs`); strict HTTP and paths (`src/http/`, `src/files.rs`);
//! pooled buffers (`src/buffer.rs`); `EMFILE` back-off (`src/worker.rs`).
//!
//! **Try it** (more in `examples/README.md`):
//! ```sh
//! cargo run --example 4_state_machine           # 127.0.0.1:8084 (or: -- PORT)
//! curl -v http://127.0.0.1:8084/ http://127.0.0.1:8084/hello.html 2>&1 | grep -E '^< HTTP|Re-using'
//! wrk -t1 -c50 -d3s http://127.0.0.1:8084/hello.html
//! printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n' \
//!   | timeout 2 nc 127.0.0.1 8084 | grep -c '^HTTP/1.1'   # 2: both answered
//! ```

mod static_site;

use std::io::ErrorKind::{Interrupted, WouldBlock};
use std::io::{self, Read, Write};
use std::mem;
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use static_site::Parsed;

/// Where rung 4 listens unless the command line says otherwise.
const DEFAULT_PORT: u16 = 8084;
/// The listener's token. Slab keys count up from 0 and never get this high.
const LISTENER: Token = Token(usize::MAX);
/// Readiness events taken from the kernel per `poll`.
const EVENTS_PER_POLL: usize = 1024;
/// Bytes asked for per `read`.
const READ_CHUNK_BYTES: usize = 4096;

/// Where a connection is in its life, with exactly the data that stage needs.
enum State {
    /// Between requests: nothing held. A new connection starts here.
    Idle,
    /// A request head is arriving into `buf` (with whatever follows it).
    Reading { buf: Vec<u8> },
    /// `out[sent..]` is still to go. If the connection stays open, `rest`
    /// holds the bytes received after the request: a pipelined request, or
    /// nothing (an empty `Vec` owns no memory). `None`: close after `out`.
    Writing {
        out: Vec<u8>,
        sent: usize,
        rest: Option<Vec<u8>>,
    },
}

/// What a state handler decided. Closing is an outcome, not a state.
enum Step {
    /// Enter this state and run it at once.
    Next(State),
    /// Stay in this state until the next readiness event.
    Wait(State),
    /// The connection is finished.
    Close,
}

/// One client: its socket and where it is. Nothing else.
struct Connection {
    /// The nonblocking socket, registered under this connection's slab key.
    socket: TcpStream,
    /// The stage, holding its data.
    state: State,
}

fn main() {
    let address = static_site::address_from_args(DEFAULT_PORT);
    if let Err(error) = run(address) {
        eprintln!("4_state_machine: {address}: {error}");
        std::process::exit(1);
    }
}

/// The event loop: rung 3's, with `drive` in place of `on_ready`.
fn run(address: SocketAddr) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(address)?;
    let registry = poll.registry();
    registry.register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut connections = Slab::new();
    let mut events = Events::with_capacity(EVENTS_PER_POLL);
    let pid = std::process::id();
    eprintln!("4_state_machine: pid {pid}, http://{address}/");
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(error) if error.kind() == Interrupted => continue,
            Err(error) => return Err(error),
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => accept_all(&listener, poll.registry(), &mut connections),
                Token(key) => {
                    if !connections.get_mut(key).is_none_or(Connection::drive) {
                        connections.remove(key); // closing the socket leaves epoll
                    }
                }
            }
        }
    }
}

/// Accepts until the listen queue is empty. A new connection starts `Idle`.
fn accept_all(listener: &TcpListener, registry: &Registry, connections: &mut Slab<Connection>) {
    loop {
        let mut socket = match listener.accept() {
            Ok((socket, _peer)) => socket,
            Err(error) if error.kind() == WouldBlock => return,
            Err(error) if error.kind() == Interrupted => continue,
            Err(error) => return eprintln!("4_state_machine: accept: {error}"),
        };
        let entry = connections.vacant_entry();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(error) = registry.register(&mut socket, Token(entry.key()), interest) {
            eprintln!("4_state_machine: register: {error}");
            continue;
        }
        let state = State::Idle;
        entry.insert(Connection { socket, state });
    }
}

impl Connection {
    /// Runs state handlers until one must wait (`true`) or the connection is
    /// finished (`false`). Every transition passes through here.
    fn drive(&mut self) -> bool {
        loop {
            // Take the state out (leaving `Idle`) so its handler owns its data.
            let step = match mem::replace(&mut self.state, State::Idle) {
                // Any event while idle: try reading. `Vec::new()` allocates
                // nothing until bytes actually arrive.
                State::Idle => Step::Next(State::Reading { buf: Vec::new() }),
                State::Reading { buf } => self.read(buf),
                State::Writing { out, sent, rest } => self.write(out, sent, rest),
            };
            match step {
                Step::Next(state) => self.state = state,
                Step::Wait(state) => {
                    self.state = state;
                    return true;
                }
                Step::Close => return false,
            }
        }
    }

    /// `Reading`: answer a whole buffered request, else read until drained.
    fn read(&mut self, mut buf: Vec<u8>) -> Step {
        loop {
            if let Parsed::Complete(answer) = static_site::answer(&buf, true) {
                let (out, sent) = (answer.bytes, 0);
                let rest = answer.keep_alive.then(|| buf.split_off(answer.consumed));
                return Step::Next(State::Writing { out, sent, rest });
            }
            let mut chunk = [0; READ_CHUNK_BYTES];
            match self.socket.read(&mut chunk) {
                // EOF: between requests the normal end; mid-head, the client gave up.
                Ok(0) => return Step::Close,
                Ok(count) => buf.extend_from_slice(&chunk[..count]),
                // Drained. Nothing came (a spurious event, or the end of an
                // exchange): wait holding nothing.
                Err(e) if e.kind() == WouldBlock && buf.is_empty() => {
                    return Step::Wait(State::Idle);
                }
                Err(e) if e.kind() == WouldBlock => return Step::Wait(State::Reading { buf }),
                Err(e) if e.kind() == Interrupted => {}
                Err(_) => return Step::Close,
            }
        }
    }

    /// `Writing`: write until `out` is gone, then choose the next state.
    fn write(&mut self, out: Vec<u8>, mut sent: usize, rest: Option<Vec<u8>>) -> Step {
        while sent < out.len() {
            match self.socket.write(&out[sent..]) {
                Ok(0) => return Step::Close,
                Ok(count) => sent += count,
                Err(e) if e.kind() == WouldBlock => {
                    return Step::Wait(State::Writing { out, sent, rest });
                }
                Err(e) if e.kind() == Interrupted => {}
                Err(_) => return Step::Close,
            }
        }
        // Sent; `out` is freed here. A pipelined request is parsed at once.
        // Otherwise `Idle` tries one read (a request may have come while we
        // wrote, its edge already spent) and then waits holding nothing.
        match rest {
            None => Step::Close,
            Some(rest) if rest.is_empty() => Step::Next(State::Idle),
            Some(buf) => Step::Next(State::Reading { buf }),
        }
    }
}
