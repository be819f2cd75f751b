//! Files the cache does not hold are served from disk: bodies of at most
//! `MAX_READ_BODY_BYTES` are read into the output buffer after the head and leave with it
//! in one `send`; longer ones go by `sendfile`. Either way the client gets the exact
//! bytes, whole or in ranges, alone or pipelined.
//!
//! Small files are cached on their first request while the cache has room, so each test
//! first fills the cache to its byte budget with files of the largest cached size, each
//! asked for once. A file asked for once is then refused a place (TinyLFU admits only a
//! file seen at least twice), so every file below is asked for exactly once, and `--trace`
//! shows which of them went by `sendfile`.

mod support;

use mioserve::cache::{MAX_CACHED_BYTES, MAX_CACHED_FILE_BYTES};
use mioserve::respond::MAX_READ_BODY_BYTES;
use support::*;

/// The sizes around the line between a read and `sendfile`, and a small file.
const SMALL: usize = 4096;
const AT_THE_LINE: usize = MAX_READ_BODY_BYTES as usize;
const OVER_THE_LINE: usize = MAX_READ_BODY_BYTES as usize + 1;

/// A server with one worker (one cache) and syscall tracing, its cache full, and
/// `disk/n{size}.bin` for each size in `sizes` (seeded with its size), never asked for.
fn full_cache_and(sizes: &[usize]) -> (Fixture, TestServer, Client) {
    let fixture = Fixture::new();
    let filler = pseudo_random(MAX_CACHED_FILE_BYTES as usize, 1);
    let fillers = MAX_CACHED_BYTES / filler.len();
    for dir in ["fill", "disk"] {
        std::fs::create_dir(fixture.path(dir)).unwrap();
    }
    for i in 0..fillers {
        fixture.write(&format!("fill/{i}.bin"), &filler);
    }
    for &size in sizes {
        fixture.write(
            &format!("disk/n{size}.bin"),
            &pseudo_random(size, size as u64),
        );
    }
    let server = TestServer::start(fixture.root(), &["--threads", "1", "--trace=events"]);
    let mut client = server.connect();
    for i in 0..fillers {
        assert_eq!(client.get(&format!("/fill/{i}.bin")).status, 200);
    }
    (fixture, server, client)
}

/// How many `sendfile` calls the trace shows (each of these bodies fits in one call).
fn sendfile_calls(server: &mut TestServer) -> usize {
    assert!(server.stop().success());
    let stderr = server.stderr();
    stderr.lines().filter(|l| l.contains(" sendfile ")).count()
}

#[test]
fn small_bodies_from_disk_leave_with_the_head_and_larger_ones_by_sendfile() {
    let sizes = [SMALL, AT_THE_LINE, OVER_THE_LINE];
    let (_fixture, mut server, mut client) = full_cache_and(&sizes);
    for size in sizes {
        let r = client.get(&format!("/disk/n{size}.bin"));
        assert_file_body(&r, &pseudo_random(size, size as u64));
        assert_eq!(r.header("Content-Length"), Some(size.to_string().as_str()));
    }
    drop(client);
    // Only the file over the line: had the cache taken any of them, none would.
    assert_eq!(sendfile_calls(&mut server), 1);
}

#[test]
fn ranges_of_small_bodies_from_disk_are_exact() {
    let sizes = [SMALL, AT_THE_LINE];
    let (_fixture, mut server, mut client) = full_cache_and(&sizes);
    for (size, (first, last)) in sizes.into_iter().zip([(0, 0), (1000, AT_THE_LINE - 1)]) {
        let r = client.roundtrip(&format!(
            "GET /disk/n{size}.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes={first}-{last}\r\n\r\n"
        ));
        assert_eq!(r.status, 206, "{r:?}");
        let content_range = format!("bytes {first}-{last}/{size}");
        assert_eq!(r.header("Content-Range"), Some(content_range.as_str()));
        assert!(r.body == pseudo_random(size, size as u64)[first..=last]);
    }
    drop(client);
    assert_eq!(sendfile_calls(&mut server), 0);
}

#[test]
fn pipelined_disk_bodies_read_and_sent_by_sendfile_arrive_in_order() {
    let sizes = [SMALL, OVER_THE_LINE, AT_THE_LINE];
    let (_fixture, mut server, mut client) = full_cache_and(&sizes);
    let order = [
        "/hello.txt".to_string(),
        format!("/disk/n{SMALL}.bin"),
        format!("/disk/n{OVER_THE_LINE}.bin"),
        format!("/disk/n{AT_THE_LINE}.bin"),
        "/hello.txt".to_string(),
    ];
    let batch: String = order.iter().map(|path| get(path)).collect();
    client.send(batch);
    for path in &order {
        let expected = match path.strip_prefix("/disk/n") {
            Some(name) => {
                let size: usize = name.trim_end_matches(".bin").parse().unwrap();
                pseudo_random(size, size as u64)
            }
            None => content(&path[1..]).to_vec(),
        };
        assert_file_body(&client.read_response(false), &expected);
    }
    drop(client);
    assert_eq!(sendfile_calls(&mut server), 1);
}

#[test]
fn head_requests_for_disk_files_send_no_body() {
    let (_fixture, mut server, mut client) = full_cache_and(&[SMALL]);
    let r = client.head(&format!("/disk/n{SMALL}.bin"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some(SMALL.to_string().as_str()));
    assert!(r.body.is_empty());
    // The connection is in step: the next answer is the next request's.
    assert_hello(&client.get("/hello.txt"));
    drop(client);
    assert_eq!(sendfile_calls(&mut server), 0);
}
