//! Big downloads take turns: a connection sending a file stops after its
//! share of bytes per turn of the event loop (`FILE_BYTES_PER_TURN`), even
//! though its socket would take more, and the worker gives it its next turn
//! itself, since no readiness event comes for a socket that stays writable.
//! These tests check that the turns really happen (the trace says so) and
//! that they lose nothing: every download, fast or slow, gets every byte,
//! and small requests on other connections are answered meanwhile.

mod support;

use std::thread;
use std::time::Duration;

use support::*;

/// Larger than several turns' worth of bytes.
const BIG_FILE_BYTES: usize = 24 << 20;

/// A file whose every byte depends on its position, so that a byte lost,
/// repeated or reordered anywhere shows.
fn patterned(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn download(client: &mut Client, expected: &[u8]) {
    let response = client.get("/big.bin");
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body.len(), expected.len());
    assert!(response.body == expected, "the body differs from the file");
}

#[test]
fn a_download_to_a_fast_reader_yields_its_turn_and_loses_no_byte() {
    let fixture = Fixture::new();
    let contents = patterned(BIG_FILE_BYTES);
    fixture.write("big.bin", &contents);
    let server = TestServer::start(fixture.root(), &["--threads", "1", "--trace"]);
    let mut client = server.connect();
    download(&mut client, &contents);
    // On loopback the kernel takes megabytes per `sendfile` from a reader
    // that keeps up; without the per-turn limit one call sends them all.
    assert!(
        wait_until(Duration::from_secs(5), || server
            .stderr()
            .contains("yields its turn")),
        "no turn was yielded:\n{}",
        server.stderr()
    );
    // The connection is still usable afterwards.
    assert_eq!(client.get("/index.html").status, 200);
}

#[test]
fn many_parallel_downloads_fast_and_slow_each_get_every_byte() {
    let fixture = Fixture::new();
    let contents = patterned(BIG_FILE_BYTES);
    fixture.write("big.bin", &contents);
    // One worker: every download shares one event loop.
    let server = TestServer::start(fixture.root(), &["--threads", "1"]);
    let addr = server.addr();
    let downloads: Vec<_> = (0..12)
        .map(|n| {
            let contents = contents.clone();
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                if n % 3 == 0 {
                    client.set_slow_reads(256 * 1024, Duration::from_millis(2));
                }
                download(&mut client, &contents);
            })
        })
        .collect();
    // While the downloads run, a small file on another connection is
    // answered promptly each time: no download holds the worker.
    let mut small = Client::connect(addr);
    for _ in 0..20 {
        assert_eq!(small.get("/index.html").status, 200);
        thread::sleep(Duration::from_millis(5));
    }
    for download in downloads {
        download.join().expect("a download failed");
    }
}
