//! Clients and files that misbehave, and resources that run out: the header and send
//! timeouts, a thousand stalled connections beside a healthy client, the connection limit,
//! running out of file descriptors (`EMFILE`) without spinning, clients that reset
//! mid-body, and files renamed over or truncated while they are being sent.
//!
//! Timing bounds are loose (the machine is small and shared): each one separates "works"
//! from "hangs", "spins" or "waits for some unrelated, much longer timeout".

mod support;

use std::fs;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// A request head cut off before its blank line.
const PARTIAL_HEAD: &str = "GET /hello.txt HTTP/1.1\r\nHost: x\r\n";

#[test]
fn partial_head_gets_408_after_the_header_timeout() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--header-timeout", "1"]);
    let mut c = server.connect();
    let start = Instant::now();
    c.send(PARTIAL_HEAD);
    let r = c.read_response(false);
    let waited = start.elapsed();
    assert_error(&r, 408);
    assert_closes(&r);
    c.expect_closed();
    assert!(
        waited >= Duration::from_millis(800) && waited <= Duration::from_secs(4),
        "408 after {waited:?} with --header-timeout 1"
    );
}

#[test]
fn client_that_never_reads_is_dropped_after_the_send_timeout() {
    let fixture = Fixture::new();
    fixture.big();
    let mut server = TestServer::start(fixture.root(), &["--send-timeout", "1"]);
    let mut c = server.connect();
    c.send(get("/big.bin"));
    // 20 MiB is far more than the socket buffers hold: the server stalls. Had it not given
    // up by the time we read, our reading would let it finish the body, and the
    // keep-alive connection would then stay open.
    thread::sleep(Duration::from_secs(3));
    let start = Instant::now();
    let received = c.read_until_closed();
    assert!(
        received.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{:?}",
        String::from_utf8_lossy(&received[..received.len().min(200)])
    );
    assert!(
        received.len() < BIG_LEN,
        "the whole body arrived although the client stalled past --send-timeout 1"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "draining what was in flight took {:?}",
        start.elapsed()
    );
    assert_hello(&server.connect().get("/hello.txt"));
    assert!(server.stop().success());
    let lines = server.log_lines();
    let big: Vec<AccessLine> = lines
        .iter()
        .map(|line| parse_access_line(line))
        .filter(|line| line.request_line == "GET /big.bin HTTP/1.1")
        .collect();
    assert_eq!(big.len(), 1, "{lines:?}");
    assert_eq!(big[0].status, 200, "{lines:?}");
    assert!(big[0].bytes < BIG_LEN as u64, "{lines:?}");
}

#[test]
fn a_thousand_stalled_connections_do_not_slow_other_clients() {
    let open_files = mioserve::sys::raise_open_files_limit().expect("raise the open-files limit");
    assert!(
        open_files >= 1200,
        "this test holds about 1100 sockets; the open-files limit is {open_files}"
    );
    let fixture = Fixture::new();
    let big = fixture.big();
    // Timeouts far beyond the test, so nothing is dropped while it runs.
    let server = TestServer::start(
        fixture.root(),
        &["--header-timeout", "60", "--send-timeout", "60"],
    );
    let addr = server.addr();
    // 500 clients that never finish their request head...
    let mut partial: Vec<Client> = (0..500)
        .map(|_| {
            let mut c = Client::connect(addr);
            c.send(PARTIAL_HEAD);
            c
        })
        .collect();
    // ...and 500 that asked for 20 MiB and do not read it. Small receive buffers and
    // segments keep the kernel memory they pin small (megabytes in all, not gigabytes).
    let mut stalled: Vec<Client> = (0..500)
        .map(|_| {
            let mut c = Client::connect_with_buffers(addr, 4096, Some(1024));
            c.send(get("/big.bin"));
            c
        })
        .collect();
    // Every download has started (and then stalled): its head has arrived.
    for c in &mut stalled {
        let r = c.read_head();
        assert_eq!(r.status_line, status_line(200), "{r:?}");
    }

    let start = Instant::now();
    let mut c = Client::connect(addr);
    for i in 0..200 {
        let r = c.get(&format!("/hello.txt?i={i}"));
        assert_hello(&r);
        assert_keeps_alive(&r);
    }
    let keep_alive_time = start.elapsed();
    for _ in 0..50 {
        assert_hello(&Client::connect(addr).get("/hello.txt"));
    }
    let total_time = start.elapsed();
    assert!(
        total_time < Duration::from_secs(5),
        "200 keep-alive requests took {keep_alive_time:?}, then 50 new connections \
         {:?}, beside 1000 stalled connections",
        total_time - keep_alive_time
    );

    // The stalled connections were held, not dropped: some heads complete now...
    for c in partial.iter_mut().step_by(100) {
        c.send("\r\n");
        assert_hello(&c.read_response(false));
    }
    // ...and a stalled download resumes where it stopped, byte-exact.
    let c = &mut stalled[250];
    let rest = c.read_body_bytes(BIG_LEN);
    assert!(rest == big, "the resumed download is not byte-exact");
}

#[test]
fn connections_beyond_the_limit_wait_until_one_closes() {
    let fixture = Fixture::new();
    let server = TestServer::start(
        fixture.root(),
        &["--max-connections", "10", "--threads", "1"],
    );
    // Ten connections, each answered once (so each is surely accepted), then idle.
    let mut held: Vec<Client> = (0..10)
        .map(|_| {
            let mut c = server.connect();
            assert_hello(&c.get("/hello.txt"));
            c
        })
        .collect();
    // The eleventh completes the TCP handshake (the kernel's queue does that) but is not
    // served while ten are open...
    let mut waiting = server.connect();
    waiting.send(get("/hello.txt"));
    waiting.expect_open(Duration::from_millis(700));
    // ...while the ten still are.
    assert_hello(&held[3].get("/hello.txt"));
    // One closes: the eleventh is accepted and answered, not reset.
    drop(held.pop());
    let start = Instant::now();
    assert_hello(&waiting.read_response(false));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "served {:?} after a slot was freed",
        start.elapsed()
    );
    // The freed slot is taken again: a twelfth waits in turn.
    let mut twelfth = server.connect();
    twelfth.send(get("/hello.txt"));
    twelfth.expect_open(Duration::from_millis(500));
    drop(waiting);
    assert_hello(&twelfth.read_response(false));
}

/// The process's CPU time so far (user + system), in clock ticks, from `/proc/PID/stat`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // The command name (field 2) is in parentheses and may contain spaces: count fields
    // from after its closing parenthesis. Field 3 (state) comes first, so utime (field
    // 14) and stime (field 15) are at 11 and 12.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("a `)` in stat") + 2..]
        .split(' ')
        .collect();
    let field = |i: usize| -> u64 {
        fields[i]
            .parse()
            .unwrap_or_else(|_| panic!("bad field in {stat:?}"))
    };
    field(11) + field(12)
}

/// Clock ticks per second (`getconf CLK_TCK`); 100 on every Linux in practice.
fn ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

#[test]
fn running_out_of_descriptors_pauses_accepting_without_spinning() {
    let fixture = Fixture::new();
    // 40 descriptors: a dozen go to the process itself, the rest fill up fast.
    let server = TestServer::start_with_open_files_limit(
        fixture.root(),
        40,
        &["--threads", "1", "--max-connections", "1000"],
    );
    let addr = server.addr();
    // All 80 complete their handshakes (the kernel's accept queue is much longer); the
    // server can accept only some of them.
    let mut clients: Vec<Client> = (0..80)
        .map(|_| {
            let mut c = Client::connect(addr);
            c.send(get("/hello.txt"));
            c
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(5), || server
            .stderr()
            .contains("accept failed")),
        "no `accept failed` report with 80 connections and 40 descriptors; stderr: {:?}",
        server.stderr()
    );
    // The first connection was accepted: it is answered (503 if the file could not be
    // opened for want of a descriptor).
    let r = clients[0].read_response(false);
    assert!(matches!(r.status, 200 | 503), "{r:?}");

    // Out of descriptors with connections still queued, the listener stays readable. A
    // server that retried at once would burn a core; one that backs off sleeps.
    let before = cpu_ticks(server.pid());
    let window = Duration::from_secs(2);
    thread::sleep(window);
    let used = cpu_ticks(server.pid()) - before;
    let limit = ticks_per_second() / 2;
    assert!(
        used < limit,
        "the server used {used} clock ticks of CPU in {window:?} while out of descriptors \
         (limit {limit})"
    );
    let stderr = server.stderr();
    assert_eq!(
        stderr
            .lines()
            .filter(|line| line.contains("accept failed"))
            .count(),
        1,
        "expected exactly one `accept failed` report: {stderr:?}"
    );

    // Closing the connections frees descriptors: accepting resumes promptly.
    drop(clients);
    let start = Instant::now();
    let mut c = Client::connect(addr);
    assert_hello(&c.get("/hello.txt"));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "a new client was served only {:?} after the others closed",
        start.elapsed()
    );
}

#[test]
fn clients_that_reset_mid_body_are_logged_and_do_no_harm() {
    let fixture = Fixture::new();
    fixture.big();
    let mut server = TestServer::start(fixture.root(), &[]);
    const RESETS: usize = 200;
    const READ_BEFORE_RESET: usize = 4096;
    for _ in 0..RESETS {
        let mut c = server.connect();
        c.send(get("/big.bin"));
        let r = c.read_head();
        assert_eq!(r.status_line, status_line(200), "{r:?}");
        c.read_body_bytes(READ_BEFORE_RESET);
        c.reset();
    }
    assert_hello(&server.connect().get("/hello.txt"));
    assert!(server.stop().success());
    let lines = server.log_lines();
    let big: Vec<AccessLine> = lines
        .iter()
        .map(|line| parse_access_line(line))
        .filter(|line| line.request_line == "GET /big.bin HTTP/1.1")
        .collect();
    assert_eq!(big.len(), RESETS, "log lines for big.bin");
    for line in &big {
        assert_eq!(line.status, 200, "{line:?}");
        // At least what the client read was sent; never the whole body.
        assert!(
            line.bytes >= READ_BEFORE_RESET as u64 && line.bytes < BIG_LEN as u64,
            "{line:?}"
        );
    }
}

/// Receive buffer of a download that the test pauses: small and fixed (no autotuning), so
/// the bytes in flight during the pause are bounded.
const DOWNLOAD_RECEIVE_BUFFER: usize = 256 * 1024;

/// Starts a download of `big.bin` and reads its head and the first MiB, after which the
/// server is stalled partway through the body on the full socket buffers.
fn start_download(server: &TestServer) -> (Client, Vec<u8>) {
    let mut c = Client::connect_with_buffers(server.addr(), DOWNLOAD_RECEIVE_BUFFER, None);
    c.send(get("/big.bin"));
    let r = c.read_head();
    assert_eq!(r.status_line, status_line(200), "{r:?}");
    assert_eq!(r.content_length(), BIG_LEN, "{r:?}");
    let first = c.read_body_bytes(1 << 20);
    // What the tests do next only means something if most of the body is still in the
    // file: the server's send buffer (at most tcp_wmem's maximum) and our receive buffer
    // (the kernel doubles the size asked for) cannot hold the rest.
    let wmem = fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").expect("read tcp_wmem");
    let send_buffer_max: usize = wmem
        .split_whitespace()
        .nth(2)
        .and_then(|max| max.parse().ok())
        .unwrap_or_else(|| panic!("bad tcp_wmem {wmem:?}"));
    assert!(
        first.len() + send_buffer_max + 2 * DOWNLOAD_RECEIVE_BUFFER < BIG_LEN,
        "socket buffers up to {send_buffer_max} bytes could hold the whole of big.bin"
    );
    (c, first)
}

#[test]
fn file_renamed_over_during_a_send_is_sent_as_it_was_opened() {
    let fixture = Fixture::new();
    let original = fixture.big();
    let replacement = pseudo_random(BIG_LEN, 0xD1FF);
    fixture.write("big.new", &replacement);
    let server = TestServer::start(fixture.root(), &[]);
    let (mut c, mut received) = start_download(&server);
    fs::rename(fixture.path("big.new"), fixture.path("big.bin")).unwrap();
    // The rename really happened: a new request gets the new file.
    assert_file_body(&server.connect().get("/big.bin"), &replacement);
    // The first client, reading slowly, still gets the file it started on.
    c.set_slow_reads(256 * 1024, Duration::from_millis(1));
    received.extend(c.read_body_bytes(BIG_LEN - received.len()));
    assert!(
        received == original,
        "the download mixes in bytes of the file renamed over it"
    );
    assert_hello(&c.get("/hello.txt"));
}

#[test]
fn file_truncated_during_a_send_ends_the_connection() {
    let fixture = Fixture::new();
    let original = fixture.big();
    let server = TestServer::start(fixture.root(), &[]);
    let (mut c, first) = start_download(&server);
    assert!(first == original[..first.len()]);
    fs::File::create(fixture.path("big.bin")).unwrap();
    // The announced length can no longer be met: the server must close, not leave the
    // client waiting for bytes that will never come (`read_until_closed` fails after
    // IO_TIMEOUT of silence).
    let start = Instant::now();
    let rest = c.read_until_closed();
    assert!(
        first.len() + rest.len() < BIG_LEN,
        "the whole body arrived from a truncated file"
    );
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "the connection closed {:?} after the truncation",
        start.elapsed()
    );
    assert_hello(&server.connect().get("/hello.txt"));
}
