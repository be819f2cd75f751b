//! `--proxy-protocol` and `--trusted-proxy` over real sockets: the PROXY protocol header
//! (v1 and v2, as HAProxy's `doc/proxy-protocol.txt` specifies) names the client in the
//! access log and in `--trace`; a missing, malformed or slow header closes the connection
//! with no byte answered, and is counted; an untrusted peer is closed before anything is
//! read. The last test puts the real HAProxy in front.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use support::tools::{GroupGuard, collect, find_on_path, skip, spawn_in_group};
use support::*;

/// Where the counters are served in these tests.
const STATS_PATH: &str = "/_stats";

/// The PROXY header every test uses when the client's address does not matter.
const PROXY_V1_TCP4: &str = "PROXY TCP4 203.0.113.7 127.0.0.1 5000 8888\r\n";

/// A one-worker server with `--proxy-protocol` (one worker, so that its counters are
/// the total) and `extra` flags.
fn start_behind_balancer(fixture: &Fixture, extra: &[&str]) -> TestServer {
    let mut args = vec![
        "--threads",
        "1",
        "--proxy-protocol",
        "--stats-path",
        STATS_PATH,
    ];
    args.extend_from_slice(extra);
    TestServer::start(fixture.root(), &args)
}

/// A client that has sent `header` (and nothing else yet).
fn connect_with_header(server: &TestServer, header: &[u8]) -> Client {
    let mut client = server.connect();
    client.send(header);
    client
}

/// A v2 header: `command` 0x0 (`LOCAL`) or 0x1 (`PROXY`), TCP over IPv4 or IPv6 from
/// `source`, followed by `tlv_len` bytes of `PP2_TYPE_NOOP` TLVs.
fn proxy_v2(command: u8, source: SocketAddr, tlv_len: usize) -> Vec<u8> {
    let (family, addresses) = match source.ip() {
        IpAddr::V4(ip) => (0x11, [&ip.octets()[..], &[127, 0, 0, 1]].concat()),
        IpAddr::V6(ip) => (0x21, [&ip.octets()[..], &[0; 15], &[1]].concat()),
    };
    let mut tlvs = Vec::new();
    while tlvs.len() < tlv_len {
        let value_len = (tlv_len - tlvs.len() - 3).min(1000);
        tlvs.push(0x04);
        tlvs.extend_from_slice(&(value_len as u16).to_be_bytes());
        tlvs.resize(tlvs.len() + value_len, 0xAB);
    }
    let len = addresses.len() + 4 + tlvs.len();
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x20 | command, family]);
    header.extend_from_slice(&(len as u16).to_be_bytes());
    header.extend_from_slice(&addresses);
    header.extend_from_slice(&source.port().to_be_bytes());
    header.extend_from_slice(&8888u16.to_be_bytes());
    header.extend_from_slice(&tlvs);
    header
}

/// The server's total of counter `name`, read from the JSON counters over a connection
/// that sends a `LOCAL` header (as a balancer's own check would), once it equals
/// `expected` (workers publish once a second) or after the log flush timeout.
fn counter_reaches(server: &TestServer, name: &str, expected: u64) -> u64 {
    let read = || {
        let local = proxy_v2(0x0, "127.0.0.1:1".parse().unwrap(), 0);
        let mut client = connect_with_header(server, &local);
        let json = client.get(STATS_PATH).body_text();
        let total = &json[json.find("\"total\"").expect("a total")..];
        let field = format!("\"{name}\":");
        let value = &total[total.find(&field).expect("the counter") + field.len()..];
        let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u64>().unwrap()
    };
    let mut value = read();
    wait_until(LOG_FLUSH_TIMEOUT, || {
        value = read();
        value == expected
    });
    value
}

/// The access log's client addresses for `GET <path>` lines, once there are `count`.
fn logged_clients(server: &TestServer, path: &str, count: usize) -> Vec<String> {
    let request_line = format!("GET {path} HTTP/1.1");
    let lines = server.wait_for_log(|lines| {
        lines
            .iter()
            .filter(|l| l.request_line == request_line)
            .count()
            >= count
    });
    lines
        .into_iter()
        .filter(|l| l.request_line == request_line)
        .map(|l| l.client)
        .collect()
}

#[test]
fn v1_tcp4_tcp6_and_unknown_headers_name_the_client_in_the_access_log() {
    let fixture = Fixture::new();
    let server = start_behind_balancer(&fixture, &[]);
    let headers = [
        PROXY_V1_TCP4,
        "PROXY TCP6 2001:db8::7 ::1 5000 8888\r\n",
        // UNKNOWN: the real peer is the client; anything after it is ignored.
        "PROXY UNKNOWN whatever follows\r\n",
    ];
    for header in headers {
        // Header and request in one write: the common case behind HAProxy.
        let mut client = server.connect();
        client.send(format!("{header}{}", get("/hello.txt")));
        assert_hello(&client.read_response(false));
    }
    assert_eq!(
        sorted(logged_clients(&server, "/hello.txt", 3)),
        ["127.0.0.1", "2001:db8::7", "203.0.113.7"]
    );
}

#[test]
fn v2_proxy_and_local_over_ipv4_and_ipv6_with_tlvs_longer_than_a_buffer() {
    let fixture = Fixture::new();
    let server = start_behind_balancer(&fixture, &[]);
    let headers = [
        proxy_v2(0x1, "198.51.100.9:6000".parse().unwrap(), 0),
        // 9,000 bytes of TLVs: more than the 8 KiB input buffer holds.
        proxy_v2(0x1, "[2001:db8::9]:6000".parse().unwrap(), 9_000),
        proxy_v2(0x1, "198.51.100.10:6000".parse().unwrap(), 300),
        // LOCAL: the balancer's own connection; its addresses are ignored.
        proxy_v2(0x0, "192.0.2.99:6000".parse().unwrap(), 20),
    ];
    for header in &headers {
        let mut client = connect_with_header(&server, header);
        assert_hello(&client.get("/hello.txt"));
    }
    assert_eq!(
        sorted(logged_clients(&server, "/hello.txt", 4)),
        ["127.0.0.1", "198.51.100.10", "198.51.100.9", "2001:db8::9"]
    );
}

#[test]
fn a_header_sent_one_byte_at_a_time_is_assembled_across_reads() {
    let fixture = Fixture::new();
    let server = start_behind_balancer(&fixture, &["--trace=events"]);
    for header in [
        PROXY_V1_TCP4.as_bytes().to_vec(),
        proxy_v2(0x1, "198.51.100.9:6000".parse().unwrap(), 40),
    ] {
        let mut client = server.connect();
        for byte in &header {
            client.send([*byte]);
            sleep(Duration::from_millis(2));
        }
        assert_hello(&client.get("/hello.txt"));
    }
    assert_eq!(
        sorted(logged_clients(&server, "/hello.txt", 2)),
        ["198.51.100.9", "203.0.113.7"]
    );
    // The bytes did arrive in separate reads (the trace shows each system call).
    let stderr = server.stderr();
    assert!(stderr.matches(" read 1 of ").count() >= 20, "{stderr}");
}

#[test]
fn pipelined_requests_behind_the_header_then_keep_alive_without_a_second_header() {
    let fixture = Fixture::new();
    let server = start_behind_balancer(&fixture, &[]);
    let mut client = server.connect();
    let batch = [get("/hello.txt"), get("/hello.txt"), get("/hello.txt")].concat();
    client.send(format!("{PROXY_V1_TCP4}{batch}"));
    for _ in 0..3 {
        assert_keeps_alive(&client.read_response(false));
    }
    // The header is once per connection: later requests come without one.
    sleep(Duration::from_millis(100));
    assert_hello(&client.get("/hello.txt"));
    assert_eq!(logged_clients(&server, "/hello.txt", 4), ["203.0.113.7"; 4]);
}

#[test]
fn missing_and_malformed_headers_are_closed_with_no_byte_answered_and_counted() {
    let fixture = Fixture::new();
    let server = start_behind_balancer(&fixture, &[]);
    let mut bad_version = proxy_v2(0x1, "198.51.100.9:6000".parse().unwrap(), 0);
    bad_version[12] = 0x31;
    let refused: [&[u8]; 5] = [
        // A client that bypassed the balancer: HTTP straight away.
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PROXY TCP4 203.0.113.7 127.0.0.1 5000\r\nGET / HTTP/1.1\r\n\r\n",
        b"PROXY TCP4 203.0.113.7 127.0.0.1 5000 8888\n",
        &bad_version,
        // A header cut short by the client's EOF.
        b"PROXY TCP4 203.0.11",
    ];
    for bytes in refused {
        let mut client = connect_with_header(&server, bytes);
        client.stream().shutdown(std::net::Shutdown::Write).unwrap();
        let answer = client.read_until_closed();
        assert!(answer.is_empty(), "{bytes:?} got {answer:?}");
    }
    assert_eq!(counter_reaches(&server, "proxy_header_refusals", 5), 5);
    assert_eq!(counter_reaches(&server, "requests", 0), 0);
}

#[test]
fn a_slow_header_is_closed_at_the_header_timeout_with_no_answer() {
    let fixture = Fixture::new();
    let server = start_behind_balancer(&fixture, &["--header-timeout", "1"]);
    let started = Instant::now();
    let mut partial = connect_with_header(&server, b"PROXY TCP4 203.0.11");
    let mut silent = server.connect();
    for client in [&mut partial, &mut silent] {
        let answer = client.read_until_closed();
        assert!(answer.is_empty(), "{answer:?}");
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert_eq!(counter_reaches(&server, "proxy_header_refusals", 2), 2);
    assert_eq!(counter_reaches(&server, "timeouts", 2), 2);
}

/// A connection to `server` from the loopback address `source` (any 127.0.0.0/8 address
/// is local on Linux).
fn connect_from(source: [u8; 4], server: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .expect("create socket");
    let local = SocketAddr::from((source, 0));
    socket.bind(&local.into()).expect("bind the client socket");
    socket
        .connect(&server.into())
        .unwrap_or_else(|e| panic!("connect to {server}: {e}"));
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Sends `bytes`, then reads until the server closes (or resets) the connection.
fn send_and_read_to_close(stream: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
    // The server may already have closed an untrusted peer: the write can fail.
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return answer,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return answer,
            Err(e) => panic!("expected the server to close, got {e} after {answer:?}"),
        }
    }
}

#[test]
fn untrusted_peers_are_closed_before_anything_is_read() {
    let fixture = Fixture::new();
    let server = start_behind_balancer(&fixture, &["--trusted-proxy", "127.0.0.1/32"]);
    let request =
        format!("{PROXY_V1_TCP4}GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut untrusted = connect_from([127, 0, 0, 9], server.addr());
    assert_eq!(
        send_and_read_to_close(&mut untrusted, request.as_bytes()),
        b""
    );
    let mut trusted = connect_from([127, 0, 0, 1], server.addr());
    let answer = send_and_read_to_close(&mut trusted, request.as_bytes());
    assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"), "{answer:?}");
    assert_eq!(counter_reaches(&server, "untrusted_peers", 1), 1);
    assert_eq!(counter_reaches(&server, "proxy_header_refusals", 0), 0);
}

#[test]
fn trusted_proxy_without_proxy_protocol_is_a_plain_allow_list() {
    let fixture = Fixture::new();
    let server = TestServer::start(
        fixture.root(),
        &[
            "--trusted-proxy",
            "10.0.0.0/8",
            "--trusted-proxy",
            "127.0.0.5",
        ],
    );
    let request = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut refused = connect_from([127, 0, 0, 1], server.addr());
    assert_eq!(send_and_read_to_close(&mut refused, request), b"");
    let mut allowed = connect_from([127, 0, 0, 5], server.addr());
    let answer = send_and_read_to_close(&mut allowed, request);
    assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"), "{answer:?}");
    assert_eq!(logged_clients(&server, "/hello.txt", 1), ["127.0.0.5"]);
}

#[test]
fn trace_shows_the_state_and_the_address_from_the_header() {
    let fixture = Fixture::new();
    let mut server = start_behind_balancer(&fixture, &["--trace"]);
    let mut client = server.connect();
    client.send(format!("{PROXY_V1_TCP4}{}", get("/hello.txt")));
    assert_hello(&client.read_response(false));
    let mut refused = connect_with_header(&server, b"HELLO\r\n");
    assert!(refused.read_until_closed().is_empty());
    drop((client, refused));
    assert!(server.stop().success());
    let stderr = server.stderr();
    for expected in [
        " PROXY header: client 203.0.113.7",
        " ReadingProxyHeader -> ReadingRequest",
        " PROXY header refused: no PROXY protocol signature",
        " ReadingProxyHeader -> closed",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
    }
}

/// How long HAProxy may take to start listening.
const HAPROXY_START_TIMEOUT: Duration = Duration::from_secs(10);

/// A free port on 127.0.0.1 (bound and released: HAProxy cannot report one it picks).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn haproxy_send_proxy_and_send_proxy_v2_name_the_real_client() {
    let Some(haproxy) = find_on_path("haproxy").or_else(|| {
        let sbin = std::path::PathBuf::from("/usr/sbin/haproxy");
        sbin.exists().then_some(sbin)
    }) else {
        return skip(
            "haproxy_send_proxy_and_send_proxy_v2_name_the_real_client",
            "haproxy is not installed (Debian package `haproxy`)",
        );
    };
    let fixture = Fixture::new();
    let server = start_behind_balancer(&fixture, &["--trusted-proxy", "127.0.0.1"]);
    let (v1_port, v2_port) = (free_port(), free_port());
    let backend = server.addr();
    let config = format!(
        "global\n  maxconn 64\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 10s\n  timeout server 10s\n\
         listen proxy_v1\n  bind 127.0.0.1:{v1_port}\n  server mioserve {backend} send-proxy\n\
         listen proxy_v2\n  bind 127.0.0.1:{v2_port}\n  server mioserve {backend} send-proxy-v2\n"
    );
    let config_path = fixture.outside().join("haproxy.cfg");
    fs::write(&config_path, config).unwrap();
    // -db: stay in the foreground; the guard kills HAProxy whatever happens.
    let mut child = spawn_in_group(Command::new(haproxy).arg("-db").arg("-f").arg(&config_path));
    let haproxy = GroupGuard::new(&child);
    let output = collect(child.stderr.take().expect("piped stderr"));
    let listening = [v1_port, v2_port].into_iter().all(|port| {
        wait_until(HAPROXY_START_TIMEOUT, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
    });
    if !listening {
        drop(haproxy);
        let _ = child.wait();
        let output = String::from_utf8_lossy(&output.finish()).into_owned();
        panic!("HAProxy does not listen on {v1_port} and {v2_port}: {output}");
    }
    let request = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for (port, client) in [(v1_port, [127, 0, 0, 7]), (v2_port, [127, 0, 0, 8])] {
        let mut stream = connect_from(client, SocketAddr::from(([127, 0, 0, 1], port)));
        let answer = send_and_read_to_close(&mut stream, request);
        assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"), "{answer:?}");
    }
    assert_eq!(
        sorted(logged_clients(&server, "/hello.txt", 2)),
        ["127.0.0.7", "127.0.0.8"]
    );
    drop(haproxy);
    let _ = child.wait();
}
