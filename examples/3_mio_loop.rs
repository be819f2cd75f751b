//! Rung 3 of 4: one thread, many connections: a `mio` event loop.
//!
//! **What it fixes.** Rung 2 spent a thread per connection, mostly waiting.
//! Here sockets are nonblocking, and one thread asks the kernel which are
//! *ready* (`epoll_wait`, inside `Poll::poll`), then does the I/O itself. A
//! waiting connection costs a `Slab` entry, not a thread; its slab key is its
//! `Token`, so an event finds it with one index. The rules of readiness:
//! - mio registers edge-triggered: epoll reports a socket once, when it
//!   *becomes* readable or writable. So read (or write) until `WouldBlock`;
//!   stop earlier and no event will come for what is left.
//! - An event is a hint; spurious ones happen. `WouldBlock` is the kernel
//!   saying "not ready after all": wait for the next event.
//! - After writing a response, read again: the next request may have come
//!   in meanwhile, and its edge was reported while we were writing.
//!
//! **What it still gets wrong.** A connection's stage is implied by fields
//! (`response`, `written`, `closing`) that must agree and are reset by hand,
//! and the reset drops a request pipelined behind the last one. Every
//! connection keeps an 8 KiB buffer for life, idle or not. No timeouts: an
//! idle or stalled client keeps its slot forever. Each request reads its
//! whole file into memory.
//!
//! **Try it** (more in `examples/README.md`):
//! ```sh
//! cargo run --example 3_mio_loop                # 127.0.0.1:8083 (or: -- PORT)
//! curl -v http://127.0.0.1:8083/ http://127.0.0.1:8083/hello.html 2>&1 | grep -E '^< HTTP|Re-using'
//! wrk -t1 -c50 -d3s http://127.0.0.1:8083/hello.html   # 50 clients, one thread
//! strace -e trace=epoll_wait,accept4,recvfrom,sendto -p $(pidof 3_mio_loop) &
//! (printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'; sleep 1) | timeout 2 nc 127.0.0.1 8083 >/dev/null
//! # accept4 until EAGAIN; recvfrom, sendto, recvfrom = EAGAIN, then epoll_wait
//! printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n' \
//!   | timeout 2 nc 127.0.0.1 8083 | grep -c '^HTTP/1.1'   # 1: the second is lost
//! ```

mod static_site;

use mio::{Events, Poll, Token, net::TcpListener, net::TcpStream};
use slab::Slab;
use static_site::{EVENTS_PER_POLL, LISTENER, Parsed, Transfer, accept_all, read_some, write_some};
use std::io;

/// Where rung 3 listens unless the command line says otherwise.
const DEFAULT_PORT: u16 = 8083;
/// Each connection's request buffer, allocated at accept, kept until close.
const REQUEST_BUFFER_BYTES: usize = 8 * 1024;

/// One client. What it is doing is spread over fields that must agree:
/// `response` is `Some` while writing (else we are reading into `request`),
/// `written` counts the bytes of it the kernel has taken, and `closing` says
/// to close once it is all written.
struct Connection {
    socket: TcpStream,
    request: Vec<u8>,
    response: Option<Vec<u8>>,
    written: usize,
    closing: bool,
}

fn main() {
    static_site::serve("3_mio_loop", DEFAULT_PORT, run);
}

/// The event loop. `static_site::serve` has registered the listener with
/// `poll`. Only `poll` can fail it: whatever a client does wrong closes that
/// client's connection and nothing else.
fn run(mut poll: Poll, listener: TcpListener) -> io::Result<()> {
    let mut connections = Slab::new();
    let mut events = Events::with_capacity(EVENTS_PER_POLL);
    loop {
        // Sleep until some socket is ready. No timeout: there are no timers.
        static_site::wait(&mut poll, &mut events)?;
        for event in events.iter() {
            match event.token() {
                LISTENER => accept_all(&listener, &poll, &mut connections, Connection::new),
                Token(key) => {
                    // The connection may have closed earlier in this batch;
                    // its slot may even hold a newer one, for which the event
                    // is merely spurious.
                    if !connections.get_mut(key).is_none_or(Connection::on_ready) {
                        connections.remove(key); // closing the socket leaves epoll
                    }
                }
            }
        }
    }
}

impl Connection {
    /// A new connection is reading, into a buffer it keeps for life.
    fn new(socket: TcpStream) -> Self {
        Connection {
            socket,
            request: Vec::with_capacity(REQUEST_BUFFER_BYTES),
            response: None,
            written: 0,
            closing: false,
        }
    }

    /// Makes all the progress the socket allows. `false`: close me.
    fn on_ready(&mut self) -> bool {
        loop {
            if let Some(response) = &self.response {
                match write_some(&mut self.socket, &response[self.written..]) {
                    Transfer::Bytes(count) => self.written += count,
                    Transfer::WouldBlock => return true, // send buffer full: wait
                    Transfer::Closed => return false,
                }
                if self.written == response.len() {
                    if self.closing {
                        return false;
                    }
                    // Back to "reading": reset each field by hand. `clear()`
                    // also drops a request pipelined behind this one: its
                    // bytes are already in `request`, its edge long gone.
                    self.response = None;
                    self.written = 0;
                    self.request.clear();
                }
                continue;
            }
            if let Parsed::Complete(answer) = static_site::answer(&self.request, true) {
                self.response = Some(answer.bytes);
                self.closing = !answer.keep_alive;
                continue; // write at once: the send buffer very likely has room
            }
            match read_some(&mut self.socket, &mut self.request) {
                Transfer::Bytes(_) => {}
                Transfer::WouldBlock => return true, // drained: wait for the next edge
                Transfer::Closed => return false,    // EOF: the client is done, or gave up
            }
        }
    }
}
