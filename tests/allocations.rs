//! Steady-state serving allocates nothing: once a worker's buffer pool, file
//! cache, timer heap and log buffer are warm, a request costs no heap
//! allocation at all.
//!
//! This test runs the server in-process (one worker) under a counting global
//! allocator. The client side of the measured phase allocates nothing either
//! (fixed buffers, a static request), so every allocation counted during it
//! is the server's.

use std::alloc::System;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mioserve::{Config, LogTarget, Server};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

/// Counts every allocation made by the process (test and server threads).
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const REQUEST: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n";
/// A small body copied into the output buffer, a 404 page, and a body large
/// enough to leave by reference from its cache entry (`large.bin`).
const PIPELINED: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n\
GET /style.css HTTP/1.1\r\nHost: localhost\r\n\r\n\
GET /missing HTTP/1.1\r\nHost: localhost\r\n\r\n\
GET /large.bin HTTP/1.1\r\nHost: localhost\r\n\r\n";
/// Requests per [`exchange`] of `REQUEST` and one of `PIPELINED`.
const REQUESTS_PER_ROUND: usize = 5;
/// The size of `large.bin`.
const LARGE_BYTES: usize = 16 * 1024;

/// Sends `request` and reads exactly `response_len` bytes, without allocating.
fn exchange(stream: &mut TcpStream, request: &[u8], response_len: usize, buffer: &mut [u8]) {
    stream.write_all(request).unwrap();
    let mut received = 0;
    while received < response_len {
        let n = stream.read(&mut buffer[received..response_len]).unwrap();
        assert!(n > 0, "server closed the connection");
        received += n;
    }
}

/// The length of the responses to `request`, learned (with allocations)
/// during warm-up: read until the connection is quiet.
fn response_len(stream: &mut TcpStream, request: &[u8], buffer: &mut [u8]) -> usize {
    stream.write_all(request).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut received = 0;
    while let Ok(n) = stream.read(&mut buffer[received..]) {
        if n == 0 {
            break;
        }
        received += n;
    }
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    received
}

#[test]
fn serving_a_warm_worker_allocates_nothing() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), vec![b'x'; 1024]).unwrap();
    std::fs::write(root.path().join("style.css"), b"body { color: teal }").unwrap();
    std::fs::write(root.path().join("large.bin"), vec![b'y'; LARGE_BYTES]).unwrap();
    let log = root.path().join("access.log");
    let mut config = Config::new(root.path());
    config.port = 0;
    config.threads = 1;
    config.log = LogTarget::File(log.clone());
    let server = Server::start(&config).unwrap();

    let mut stream = TcpStream::connect(server.local_addr()).unwrap();
    let mut buffer = vec![0u8; 64 * 1024];
    let single = response_len(&mut stream, REQUEST, &mut buffer);
    let batch = response_len(&mut stream, PIPELINED, &mut buffer);
    assert!(
        single > 1024 && batch > single + LARGE_BYTES,
        "{single} {batch}"
    );
    // Warm up: pools, cache, timer heap and log buffer reach their size.
    for _ in 0..2_000 {
        exchange(&mut stream, REQUEST, single, &mut buffer);
        exchange(&mut stream, PIPELINED, batch, &mut buffer);
    }

    let region = Region::new(ALLOCATOR);
    let rounds = 5_000;
    for _ in 0..rounds {
        exchange(&mut stream, REQUEST, single, &mut buffer);
        exchange(&mut stream, PIPELINED, batch, &mut buffer);
    }
    let change = region.change();
    let allocations = change.allocations + change.reallocations;
    drop(stream);
    server.shutdown().unwrap();

    let requests = rounds * REQUESTS_PER_ROUND;
    // Dates are reformatted into fixed arrays, log flushes reuse their
    // buffer, timer entries reuse the heap's capacity: nothing allocates.
    assert_eq!(allocations, 0, "heap allocations for {requests} requests");
    let lines = std::fs::read_to_string(&log).unwrap().lines().count();
    assert_eq!(lines, (1 + 2_000 + rounds) * REQUESTS_PER_ROUND);
}
