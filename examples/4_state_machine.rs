//! Rung 4 of 4: rung 3's event loop, each connection an explicit state
//! machine: the shape of mioserve's `src/connection.rs`.
//!
//! **What it fixes.** Rung 3 implied a connection's stage by fields reset by
//! hand. Here `State` is an enum whose variants hold exactly their data: `Idle`
//! holds no buffer; `Writing` keeps the bytes after its request, so a pipelined
//! request is answered, not lost; the next request *assigns* a state, nothing
//! is reset. Handlers return a `Step`: `Next` (run the new state at once: its
//! data may already be here), `Wait` (for the next event) or `Close`; one
//! driver, `drive`, applies them, and only the event loop removes a connection.
//!
//! **What it still lacks**, each in mioserve (see `examples/README.md`): a
//! loop per core; timeouts, so stalled clients give up their slot; `sendfile`
//! and a file cache; strict HTTP; pooled buffers; `EMFILE` back-off.
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

use mio::{Events, Poll, Token, net::TcpListener, net::TcpStream};
use slab::Slab;
use static_site::{EVENTS_PER_POLL, LISTENER, Parsed, Transfer, accept_all, read_some, write_some};
use std::{io, mem};

/// Where rung 4 listens unless the command line says otherwise.
const DEFAULT_PORT: u16 = 8084;

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

/// What a state handler decided (see the top). Closing is an outcome, not a state.
enum Step {
    Next(State),
    Wait(State),
    Close,
}

/// One client: its socket and where it is. Nothing else.
struct Connection {
    socket: TcpStream,
    state: State,
}

fn main() {
    static_site::serve("4_state_machine", DEFAULT_PORT, run);
}

/// The event loop: rung 3's, with `drive` in place of `on_ready`.
fn run(mut poll: Poll, listener: TcpListener) -> io::Result<()> {
    let mut connections = Slab::new();
    let mut events = Events::with_capacity(EVENTS_PER_POLL);
    loop {
        static_site::wait(&mut poll, &mut events)?;
        for event in events.iter() {
            match event.token() {
                LISTENER => accept_all(&listener, &poll, &mut connections, |socket| Connection {
                    socket,
                    state: State::Idle,
                }),
                Token(key) => {
                    if !connections.get_mut(key).is_none_or(Connection::drive) {
                        connections.remove(key); // closing the socket leaves epoll
                    }
                }
            }
        }
    }
}

impl Connection {
    /// Runs state handlers until one must wait (`true`) or the connection is
    /// finished (`false`). Every transition passes through here.
    fn drive(&mut self) -> bool {
        loop {
            // Take the state out (leaving `Idle`) so its handler owns its data.
            let step = match mem::replace(&mut self.state, State::Idle) {
                // Any event while idle: try reading (`Vec::new()` allocates nothing).
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
            match read_some(&mut self.socket, &mut buf) {
                Transfer::Bytes(_) => {}
                // Drained. Nothing came (a spurious event, or the end of an
                // exchange): wait holding nothing.
                Transfer::WouldBlock if buf.is_empty() => return Step::Wait(State::Idle),
                Transfer::WouldBlock => return Step::Wait(State::Reading { buf }),
                // EOF: between requests the normal end; mid-head, the client gave up.
                Transfer::Closed => return Step::Close,
            }
        }
    }

    /// `Writing`: write until `out` is gone, then choose the next state.
    fn write(&mut self, out: Vec<u8>, mut sent: usize, rest: Option<Vec<u8>>) -> Step {
        while sent < out.len() {
            match write_some(&mut self.socket, &out[sent..]) {
                Transfer::Bytes(count) => sent += count,
                Transfer::WouldBlock => return Step::Wait(State::Writing { out, sent, rest }),
                Transfer::Closed => return Step::Close,
            }
        }
        // Sent; `out` is freed here. Read at once, starting from `rest`: it
        // may hold a pipelined request, and one may have come while we wrote,
        // its edge already spent. If nothing has, `read` waits as `Idle`.
        match rest {
            None => Step::Close,
            Some(buf) => Step::Next(State::Reading { buf }),
        }
    }
}
