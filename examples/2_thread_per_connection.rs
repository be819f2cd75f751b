//! Rung 2 of 4: one thread per connection, with keep-alive.
//!
//! **What it fixes.** In rung 1 one slow client stopped everybody. Here the
//! main thread only accepts, and each connection gets a thread of its own:
//! a `read` that blocks parks just that connection's thread, and the kernel's
//! scheduler runs whichever thread has data. The code stays straight-line:
//! read, answer, write, repeat. Keep-alive (several requests on one
//! connection, RFC 9112 §9.3) comes almost free, and so does pipelining:
//! bytes received after a request stay in `input` for the next one.
//!
//! **What it still gets wrong.** A connection that *waits* still costs a
//! whole thread: a kernel task, a stack (Rust reserves 2 MiB of address space
//! per thread), scheduler work and a context switch every time it wakes. Most
//! keep-alive connections are idle most of the time, so 1,000 idle clients
//! cost 1,000 sleeping threads (and 3 GB of address space), and at the
//! thread limit (`ulimit -u`, `/proc/sys/kernel/threads-max`) new clients are
//! turned away. No timeouts either: an idle client keeps its thread forever.
//!
//! **Try it.**
//! ```sh
//! cargo run --example 2_thread_per_connection    # 127.0.0.1:8082 (or: -- PORT)
//! curl -v http://127.0.0.1:8082/ http://127.0.0.1:8082/hello.html 2>&1 | grep -E '^< HTTP|Re-using'
//! nc 127.0.0.1 8082                              # (another terminal) idle client
//! curl -m 3 -sI http://127.0.0.1:8082/           # answered at once this time
//! # 1,000 idle connections (raise `ulimit -n` above 1,024 first):
//! python3 -c 'import socket,time; s=[socket.create_connection(("127.0.0.1",8082)) for _ in range(1000)]; time.sleep(60)' &
//! ss -Htn state established '( sport = :8082 )' | wc -l   # 1000 connections ...
//! ps -T -p $(pidof 2_thread_per_connection) | tail -n +2 | wc -l   # ... 1001 threads
//! grep -E 'VmSize|VmRSS|Threads' /proc/$(pidof 2_thread_per_connection)/status
//! ```
//!
//! Next, `3_mio_loop.rs`: one thread that waits for all connections at once.

mod static_site;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread;

use static_site::Parsed;

/// Where rung 2 listens unless the command line says otherwise.
const DEFAULT_PORT: u16 = 8082;

/// Bytes asked for per `read`.
const READ_CHUNK_BYTES: usize = 4096;

fn main() {
    let listener = static_site::listen_blocking(
        "2_thread_per_connection",
        DEFAULT_PORT,
        "a thread per client",
    );
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(error) => {
                eprintln!("2_thread_per_connection: accept: {error}");
                continue;
            }
        };
        // `thread::spawn` panics when the OS refuses a new thread (EAGAIN at
        // the thread limit). `Builder::spawn` returns the error instead; the
        // closure, and with it this one connection, is dropped and closed.
        let spawned = thread::Builder::new().spawn(move || serve(stream));
        if let Err(error) = spawned {
            eprintln!("2_thread_per_connection: no thread for a client: {error}");
        }
    }
}

/// Answers requests on one connection until the client closes, asks to
/// close, or misbehaves. Runs on the connection's own thread, so blocking here
/// blocks nobody else.
fn serve(mut stream: TcpStream) {
    let mut input = Vec::new();
    let mut chunk = [0; READ_CHUNK_BYTES];
    loop {
        // A whole request may already be buffered (pipelined behind the last
        // one): answer it before reading more.
        if let Parsed::Complete(answer) = static_site::answer(&input, true) {
            if stream.write_all(&answer.bytes).is_err() || !answer.keep_alive {
                return; // dropping `stream` closes the connection
            }
            input.drain(..answer.consumed);
            continue;
        }
        // Blocks this thread, and only this thread, until the client sends.
        // An idle keep-alive client leaves its thread asleep right here.
        match stream.read(&mut chunk) {
            Ok(0) => return, // the client closed: normal end of keep-alive
            Ok(count) => input.extend_from_slice(&chunk[..count]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return, // reset by the client, or worse: close
        }
    }
}
