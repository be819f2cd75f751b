//! Rung 1 of 4: a blocking server on one thread. Accept a connection, read
//! one request, write the answer, close; then accept the next.
//!
//! **What it gets right.** This is the whole protocol exchange, with nothing
//! in the way. The answer comes from `static_site`, shared by all four rungs,
//! so nothing later in the ladder changes *what* is said on the wire, only
//! *how many* clients can be talking at once.
//!
//! **What it gets wrong.** Every `read` and `write` blocks the only thread.
//! One client that connects and sends nothing (or sends its request slowly,
//! or reads its response slowly) stops the server for everybody: the kernel
//! still completes other clients' TCP handshakes into the listen backlog, and
//! they send their requests, but nobody `accept`s them until that one client
//! is done. No keep-alive either: a new connection for every request.
//!
//! **Try it.**
//! ```sh
//! cargo run --example 1_blocking              # 127.0.0.1:8081 (or: -- PORT)
//! curl -i http://127.0.0.1:8081/hello.html    # 200, at once
//! nc 127.0.0.1 8081                           # (in another terminal) connects, sends nothing
//! curl -m 3 http://127.0.0.1:8081/            # curl: (28) timed out: nc holds the only thread
//! # press Ctrl-C in nc's terminal: the curl that was waiting is answered.
//! strace -T -e trace=accept4,recvfrom,sendto,close -p $(pidof 1_blocking)
//! # with nc connected: accept4, then recvfrom(... sits there until nc leaves.
//! ```
//!
//! Next, `2_thread_per_connection.rs`: give every connection its own thread.

mod static_site;

use std::io::{self, Read, Write};
use std::net::TcpStream;

use static_site::Parsed;

/// Where rung 1 listens unless the command line says otherwise.
const DEFAULT_PORT: u16 = 8081;

/// Bytes asked for per `read`.
const READ_CHUNK_BYTES: usize = 4096;

fn main() {
    let listener = static_site::listen_blocking("1_blocking", DEFAULT_PORT, "one client at a time");
    // `incoming()` is `accept()` in a loop: it blocks until a client arrives.
    for stream in listener.incoming() {
        match stream {
            // A failed exchange ends that client's connection, nothing more.
            Ok(stream) => {
                if let Err(error) = serve(stream) {
                    eprintln!("1_blocking: client: {error}");
                }
            }
            // A client that gave up while queued (ECONNABORTED), or a lack of
            // descriptors (EMFILE); mioserve backs off then (src/worker.rs).
            Err(error) => eprintln!("1_blocking: accept: {error}"),
        }
    }
}

/// Reads one request, writes its answer, and closes the connection (dropping
/// `stream` closes the socket).
fn serve(mut stream: TcpStream) -> io::Result<()> {
    let mut input = Vec::new();
    let mut chunk = [0; READ_CHUNK_BYTES];
    let answer = loop {
        if let Parsed::Complete(answer) = static_site::answer(&input, false) {
            break answer;
        }
        // The whole problem is this line: until this client sends something,
        // the server's only thread sleeps here, and nobody else is served.
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()), // the client left before finishing a request
            Ok(count) => input.extend_from_slice(&chunk[..count]),
            // A signal interrupted the wait; nothing was lost, so just retry.
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    };
    // This blocks too, until the kernel has taken every byte: a client that
    // stops reading a large response stalls the server just the same.
    stream.write_all(&answer.bytes)
}
