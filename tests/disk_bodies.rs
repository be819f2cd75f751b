//! Files the cache refuses are served from disk with `sendfile`, small ones too, and the
//! client gets the exact bytes, whole or in ranges, alone or pipelined between answers
//! from memory.
//!
//! Small files are cached on their first request while the cache has room, so each test
//! first fills the cache to its byte budget with files of the largest cached size, each
//! asked for once. A file asked for once is then refused a place (TinyLFU admits only a
//! file seen at least twice), so every file below is asked for exactly once, and `--trace`
//! counts the `sendfile` calls that sent them.

mod support;

use mioserve::cache::{MAX_CACHED_BYTES, MAX_CACHED_FILE_BYTES};
use support::*;

/// Sizes from a few bytes to the largest file the cache would take.
const SIZES: [usize; 3] = [5, 4096, MAX_CACHED_FILE_BYTES as usize];

/// A server with one worker (one cache) and syscall tracing, its cache full, and
/// `disk/n{size}.bin` for each of [`SIZES`] (seeded with its size), never asked for.
fn full_cache() -> (Fixture, TestServer, Client) {
    let fixture = Fixture::new();
    let filler = pseudo_random(MAX_CACHED_FILE_BYTES as usize, 1);
    let fillers = MAX_CACHED_BYTES / filler.len();
    for dir in ["fill", "disk"] {
        std::fs::create_dir(fixture.path(dir)).unwrap();
    }
    for i in 0..fillers {
        fixture.write(&format!("fill/{i}.bin"), &filler);
    }
    for size in SIZES {
        fixture.write(&format!("disk/n{size}.bin"), &body_of(size));
    }
    let server = TestServer::start(fixture.root(), &["--threads", "1", "--trace=events"]);
    let mut client = server.connect();
    for i in 0..fillers {
        assert_eq!(client.get(&format!("/fill/{i}.bin")).status, 200);
    }
    (fixture, server, client)
}

/// The bytes of `disk/n{size}.bin`.
fn body_of(size: usize) -> Vec<u8> {
    pseudo_random(size, size as u64)
}

/// How many `sendfile` calls sent some bytes, once the server has stopped.
fn sendfile_calls(mut server: TestServer) -> usize {
    assert!(server.stop().success());
    let stderr = server.stderr();
    stderr
        .lines()
        .filter(|l| l.contains(" sendfile ") && !l.contains("WouldBlock"))
        .count()
}

#[test]
fn files_the_full_cache_refuses_go_by_sendfile_byte_exact() {
    let (_fixture, server, mut client) = full_cache();
    for size in SIZES {
        let r = client.get(&format!("/disk/n{size}.bin"));
        assert_file_body(&r, &body_of(size));
        assert_eq!(r.header("Content-Length"), Some(size.to_string().as_str()));
    }
    drop(client);
    // Had the cache taken any of them, it would have left by `send`.
    assert!(sendfile_calls(server) >= SIZES.len());
}

#[test]
fn ranges_of_files_from_disk_are_exact() {
    let (_fixture, server, mut client) = full_cache();
    let ranges = [
        (0, 0),
        (1000, 4095),
        (5, MAX_CACHED_FILE_BYTES as usize - 2),
    ];
    for (size, (first, last)) in SIZES.into_iter().zip(ranges) {
        let r = client.roundtrip(&format!(
            "GET /disk/n{size}.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes={first}-{last}\r\n\r\n"
        ));
        assert_eq!(r.status, 206, "{r:?}");
        let content_range = format!("bytes {first}-{last}/{size}");
        assert_eq!(r.header("Content-Range"), Some(content_range.as_str()));
        assert!(
            r.body == body_of(size)[first..=last],
            "bytes {first}-{last}"
        );
    }
    drop(client);
    assert!(sendfile_calls(server) >= SIZES.len());
}

#[test]
fn pipelined_answers_from_disk_and_from_memory_arrive_in_order() {
    let (_fixture, server, mut client) = full_cache();
    let order = [
        "/hello.txt".to_string(),
        format!("/disk/n{}.bin", SIZES[1]),
        "/fill/0.bin".to_string(),
        format!("/disk/n{}.bin", SIZES[0]),
        format!("/disk/n{}.bin", SIZES[2]),
        "/hello.txt".to_string(),
    ];
    let batch: String = order.iter().map(|path| get(path)).collect();
    client.send(batch);
    for path in &order {
        let expected = match path.strip_prefix("/disk/n") {
            Some(name) => body_of(name.trim_end_matches(".bin").parse().unwrap()),
            None if path.starts_with("/fill/") => pseudo_random(MAX_CACHED_FILE_BYTES as usize, 1),
            None => content(&path[1..]).to_vec(),
        };
        assert_file_body(&client.read_response(false), &expected);
    }
    drop(client);
    assert!(sendfile_calls(server) >= SIZES.len());
}

#[test]
fn head_requests_for_files_from_disk_send_no_body() {
    let (_fixture, server, mut client) = full_cache();
    let size = SIZES[1];
    let r = client.head(&format!("/disk/n{size}.bin"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some(size.to_string().as_str()));
    assert!(r.body.is_empty());
    // The connection is in step: the next answer is the next request's (from memory).
    let filler = pseudo_random(MAX_CACHED_FILE_BYTES as usize, 1);
    assert_file_body(&client.get("/fill/0.bin"), &filler);
    drop(client);
    assert_eq!(sendfile_calls(server), 0);
}
