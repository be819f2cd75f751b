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

use std::io::ErrorKind::{Interrupted, WouldBlock};
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use static_site::Parsed;

/// Where rung 3 listens unless the command line says otherwise.
const DEFAULT_PORT: u16 = 8083;
/// The listener's token. Slab keys count up from 0 and never get this high.
const LISTENER: Token = Token(usize::MAX);
/// Readiness events taken from the kernel per `poll`.
const EVENTS_PER_POLL: usize = 1024;
/// Each connection's request buffer, allocated at accept, kept until close.
const REQUEST_BUFFER_BYTES: usize = 8 * 1024;
/// Bytes asked for per `read`.
const READ_CHUNK_BYTES: usize = 4096;

/// One client. What it is doing is spread over fields that must agree.
struct Connection {
    /// The nonblocking socket, registered under this connection's slab key.
    socket: TcpStream,
    /// Bytes of the request being read; its capacity stays between requests.
    request: Vec<u8>,
    /// The answer being written: `Some` means "writing", `None` "reading".
    response: Option<Vec<u8>>,
    /// Bytes of `response` the kernel has taken so far.
    written: usize,
    /// Close once `response` is written.
    closing: bool,
}

fn main() {
    let address = static_site::address_from_args(DEFAULT_PORT);
    if let Err(error) = run(address) {
        eprintln!("3_mio_loop: {address}: {error}");
        std::process::exit(1);
    }
}

/// The event loop. Only setting up and `poll` can fail it: whatever a client
/// does wrong closes that client's connection and nothing else.
fn run(address: SocketAddr) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(address)?;
    let registry = poll.registry();
    registry.register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut connections = Slab::new();
    let mut events = Events::with_capacity(EVENTS_PER_POLL);
    eprintln!("3_mio_loop: pid {}, http://{address}/", std::process::id());
    loop {
        // Sleep until some socket is ready. No timeout: there are no timers.
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(error) if error.kind() == Interrupted => continue,
            Err(error) => return Err(error),
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => accept_all(&listener, poll.registry(), &mut connections),
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

/// Accepts until the listen queue is empty: the listener is edge-triggered too.
fn accept_all(listener: &TcpListener, registry: &Registry, connections: &mut Slab<Connection>) {
    loop {
        let mut socket = match listener.accept() {
            Ok((socket, _peer)) => socket,
            Err(error) if error.kind() == WouldBlock => return,
            Err(error) if error.kind() == Interrupted => continue,
            Err(error) => return eprintln!("3_mio_loop: accept: {error}"),
        };
        let entry = connections.vacant_entry();
        // Both directions, once: an edge-triggered interest costs nothing
        // until an edge happens, so we never need epoll_ctl again.
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(error) = registry.register(&mut socket, Token(entry.key()), interest) {
            eprintln!("3_mio_loop: register: {error}");
            continue;
        }
        let request = Vec::with_capacity(REQUEST_BUFFER_BYTES);
        let (response, written, closing) = (None, 0, false);
        entry.insert(Connection {
            socket,
            request,
            response,
            written,
            closing,
        });
    }
}

impl Connection {
    /// Makes all the progress the socket allows. `false`: close me.
    fn on_ready(&mut self) -> bool {
        loop {
            if let Some(response) = &self.response {
                match self.socket.write(&response[self.written..]) {
                    Ok(0) => return false,
                    Ok(count) => self.written += count,
                    Err(e) if e.kind() == WouldBlock => return true, // send buffer full
                    Err(e) if e.kind() == Interrupted => continue,
                    Err(_) => return false,
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
            let mut chunk = [0; READ_CHUNK_BYTES];
            match self.socket.read(&mut chunk) {
                Ok(0) => return false, // EOF: the client is done, or gave up
                Ok(count) => self.request.extend_from_slice(&chunk[..count]),
                Err(e) if e.kind() == WouldBlock => return true, // drained
                Err(e) if e.kind() == Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}
