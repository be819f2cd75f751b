//! Cached bodies of at least `MIN_CACHED_SEND_BYTES` leave by reference, from the cache
//! entry's bytes in the same `sendmsg` as the head; smaller ones are copied after the
//! head. Either way the client gets the exact bytes: around the threshold, in ranges, in
//! a pipelined batch that mixes both, and while the file changes under a slow download.

mod support;

use std::time::Duration;

use mioserve::cache::MAX_CACHED_FILE_BYTES;
use mioserve::respond::MIN_CACHED_SEND_BYTES;
use support::*;

/// The sizes on both sides of the threshold, and the largest file the cache takes.
fn sizes() -> [usize; 4] {
    [
        MIN_CACHED_SEND_BYTES - 1,
        MIN_CACHED_SEND_BYTES,
        MIN_CACHED_SEND_BYTES + 1,
        MAX_CACHED_FILE_BYTES as usize,
    ]
}

/// A fixture with `n{size}.bin` for each of [`sizes`], pseudo-random, and the server on it.
fn serve_sizes() -> (Fixture, TestServer, Vec<Vec<u8>>) {
    let fixture = Fixture::new();
    let bodies: Vec<Vec<u8>> = sizes()
        .iter()
        .map(|&size| {
            let body = pseudo_random(size, size as u64);
            fixture.write(&format!("n{size}.bin"), &body);
            body
        })
        .collect();
    let server = TestServer::start(fixture.root(), &["--threads", "1"]);
    (fixture, server, bodies)
}

#[test]
fn bodies_around_the_threshold_are_byte_exact() {
    let (_fixture, server, bodies) = serve_sizes();
    let mut client = server.connect();
    // The first round fills the cache, the second is served from it.
    for _ in 0..2 {
        for (size, body) in sizes().iter().zip(&bodies) {
            assert_file_body(&client.get(&format!("/n{size}.bin")), body);
        }
    }
}

#[test]
fn ranges_inside_a_by_reference_body_are_exact() {
    let (_fixture, server, bodies) = serve_sizes();
    let size = MAX_CACHED_FILE_BYTES as usize;
    let body = &bodies[3];
    let mut client = server.connect();
    client.get(&format!("/n{size}.bin"));
    let threshold = MIN_CACHED_SEND_BYTES;
    // By reference (a range at least the threshold long), copied (shorter), and the tail.
    let ranges = [
        (100, 100 + threshold),
        (size - threshold - 1, size - 1),
        (5, 9),
        (size - 10, size - 1),
    ];
    for (first, last) in ranges {
        let r = client.roundtrip(&format!(
            "GET /n{size}.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes={first}-{last}\r\n\r\n"
        ));
        assert_eq!(r.status, 206, "{r:?}");
        let content_range = format!("bytes {first}-{last}/{size}");
        assert_eq!(r.header("Content-Range"), Some(content_range.as_str()));
        assert!(r.body == body[first..=last], "bytes {first}-{last}");
    }
}

#[test]
fn pipelined_small_and_by_reference_responses_arrive_in_order() {
    let (_fixture, server, bodies) = serve_sizes();
    let [small, at, _, largest] = sizes();
    let mut client = server.connect();
    // Fill the cache.
    for size in [small, at, largest] {
        client.get(&format!("/n{size}.bin"));
    }
    let order = [
        "/hello.txt",
        &format!("/n{largest}.bin"),
        &format!("/n{small}.bin"),
        "/style.css",
        &format!("/n{at}.bin"),
        &format!("/n{largest}.bin"),
        "/hello.txt",
    ];
    let batch: String = order.iter().map(|path| get(path)).collect();
    client.send(batch);
    for path in order {
        let expected = match path.strip_prefix("/n") {
            Some(name) => {
                let size: usize = name.trim_end_matches(".bin").parse().unwrap();
                &bodies[sizes().iter().position(|&s| s == size).unwrap()][..]
            }
            None => content(&path[1..]),
        };
        assert_file_body(&client.read_response(false), expected);
    }
}

#[test]
fn a_file_rewritten_during_a_slow_download_arrives_whole_as_announced() {
    let (fixture, server, bodies) = serve_sizes();
    let size = MAX_CACHED_FILE_BYTES as usize;
    let name = format!("n{size}.bin");
    let old = &bodies[3];
    assert_file_body(&server.connect().get(&format!("/{name}")), old);

    // A small receive window, taken a little at a time: the server's send parks
    // partway through the body.
    let mut slow = Client::connect_with_buffers(server.addr(), 4096, Some(1024));
    slow.set_slow_reads(1024, Duration::from_millis(2));
    slow.send(get(&format!("/{name}")));
    let head = slow.read_head();
    assert_eq!(head.status, 200);
    let mut received = slow.read_body_bytes(2048);
    let new = pseudo_random(size, 7);
    fixture.write(&name, &new);
    received.extend(slow.read_body_bytes(size - 2048));
    assert!(received == *old, "the body changed mid-response");

    // The change dropped the entry: the next request gets the new version.
    assert_file_body(&server.connect().get(&format!("/{name}")), &new);
}

#[test]
fn the_trace_names_the_sendmsg_of_a_body_by_reference() {
    let fixture = Fixture::new();
    let size = MIN_CACHED_SEND_BYTES;
    let body = pseudo_random(size, 3);
    fixture.write("ref.bin", &body);
    let mut server = TestServer::start(fixture.root(), &["--threads", "1", "--trace=events"]);
    let mut client = server.connect();
    // The first request fills the cache, the second is answered from it.
    for _ in 0..2 {
        assert_file_body(&client.get("/ref.bin"), &body);
    }
    assert_hello(&client.get("/hello.txt"));
    drop(client);
    assert!(server.stop().success());
    let stderr = server.stderr();
    let calls = |name: &str| {
        stderr
            .lines()
            .filter(|l| l.contains(&format!(" {name} ")))
            .count()
    };
    // Both answers for ref.bin leave by reference, in one sendmsg each (on a fresh
    // loopback connection the kernel takes 8 KiB at once); hello.txt by send.
    assert_eq!(calls("sendmsg"), 2, "{stderr}");
    assert!(calls("send") >= 1, "{stderr}");
}
