//! IPv6: `--bind ::1` and `--bind ::` serve over IPv6 and log IPv6 clients as such, and
//! `::` does not take IPv4 connections (the server sets `IPV6_V6ONLY` explicitly instead
//! of inheriting the system's `net.ipv6.bindv6only`).
//!
//! Every test skips, saying so on stderr, on a machine without an IPv6 loopback (IPv6
//! disabled in the kernel or in the container).

mod support;

use std::io::ErrorKind;
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use support::tools::{require, run_ok, skip};
use support::*;

/// Whether `::1` can be bound here. `None` when it can; the reason otherwise.
fn no_ipv6_loopback() -> Option<String> {
    match TcpListener::bind((Ipv6Addr::LOCALHOST, 0)) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "this machine has no IPv6 loopback (bind [::1]:0: {e})"
        )),
    }
}

/// Asserts that nothing accepts a connection to 127.0.0.1 on `port` for the server, whose
/// access log must then show no IPv4 client. If some other program happens to listen on
/// 127.0.0.1 at that port, a request is sent to it and must not reach `server`.
fn assert_ipv4_not_served(server: &TestServer, port: u16) {
    let v4 = SocketAddr::from(([127, 0, 0, 1], port));
    match TcpStream::connect_timeout(&v4, IO_TIMEOUT) {
        Err(e) => assert_eq!(
            e.kind(),
            ErrorKind::ConnectionRefused,
            "connect to {v4}: expected a refusal, got {e}"
        ),
        Ok(stream) => {
            drop(stream);
            let mut c = Client::connect(v4);
            c.send(get("/ipv4-probe"));
            // Whatever answers (if anything), it must not be this server.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // Give the server time to flush any line it might (wrongly) have written.
    std::thread::sleep(Duration::from_millis(1500));
    for line in server.log_lines() {
        let l = parse_access_line(&line);
        assert!(
            !l.client.contains('.') && l.request_line != "GET /ipv4-probe HTTP/1.1",
            "the IPv6 server answered an IPv4 client: {line}"
        );
    }
}

/// The log must hold exactly `expected` requests (in any order: connections may be served
/// by different workers), each from `::1`, written as `::1 - - [`.
fn assert_logged_from_ipv6_loopback(server: &TestServer, expected: &[(&str, u16)]) {
    let lines = server.wait_for_log(|lines| lines.len() >= expected.len());
    let got: Vec<_> = lines
        .iter()
        .map(|l| (l.request_line.as_str(), l.status))
        .collect();
    assert_eq!(sorted(got), sorted(expected.to_vec()), "{lines:?}");
    for line in server.log_lines() {
        assert!(
            line.starts_with("::1 - - ["),
            "the client address is not logged as `::1`: {line:?}"
        );
    }
}

#[test]
fn bind_ipv6_loopback_serves_over_ipv6_only() {
    if let Some(reason) = no_ipv6_loopback() {
        return skip("bind_ipv6_loopback_serves_over_ipv6_only", &reason);
    }
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--bind", "::1"]);
    let addr = server.addr();
    assert_eq!(addr.ip(), Ipv6Addr::LOCALHOST, "{}", server.start_line);
    assert!(
        server
            .start_line
            .contains(&format!(" on http://[::1]:{} (", addr.port())),
        "the start line should show a bracketed IPv6 address: {}",
        server.start_line
    );

    // Keep-alive and pipelining work as over IPv4.
    let mut c = server.connect();
    c.send(format!("{}{}", get("/hello.txt"), get("/index.html")));
    let r = c.read_response(false);
    assert_hello(&r);
    assert_keeps_alive(&r);
    assert_file(
        &c.read_response(false),
        "index.html",
        "text/html; charset=utf-8",
    );
    let r = c.get("/no-such-file");
    assert_eq!(r.status_line, status_line(404));
    assert_eq!(r.body, content("404.html"), "the root's own 404 page");

    // A common client over IPv6 (-g: the brackets are not a glob).
    let out = run_ok(
        Command::new(require("curl", "curl"))
            .args(["-sS", "-g"])
            .arg(format!("http://[::1]:{}/hello.txt", addr.port())),
        Duration::from_secs(30),
    );
    assert_eq!(out.stdout, content("hello.txt"));

    assert_logged_from_ipv6_loopback(
        &server,
        &[
            ("GET /hello.txt HTTP/1.1", 200),
            ("GET /index.html HTTP/1.1", 200),
            ("GET /no-such-file HTTP/1.1", 404),
            ("GET /hello.txt HTTP/1.1", 200),
        ],
    );
    assert_ipv4_not_served(&server, addr.port());
}

#[test]
fn bind_ipv6_any_serves_ipv6_and_refuses_ipv4() {
    if let Some(reason) = no_ipv6_loopback() {
        return skip("bind_ipv6_any_serves_ipv6_and_refuses_ipv4", &reason);
    }
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--bind", "::"]);
    let port = server.addr().port();
    assert_eq!(
        server.addr().ip(),
        Ipv6Addr::UNSPECIFIED,
        "{}",
        server.start_line
    );
    assert!(
        server
            .start_line
            .contains(&format!(" on http://[::]:{port} (")),
        "{}",
        server.start_line
    );

    let mut c = Client::connect(SocketAddr::from((Ipv6Addr::LOCALHOST, port)));
    assert_hello(&c.get("/hello.txt"));
    let r = c.head("/index.html");
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(
        r.header("Content-Length"),
        Some(content("index.html").len().to_string().as_str())
    );

    // `::` with IPV6_V6ONLY: 127.0.0.1 on the same port is not this server. (Without the
    // option the kernel would accept it as the mapped address ::ffff:127.0.0.1.)
    assert_ipv4_not_served(&server, port);
    assert_logged_from_ipv6_loopback(
        &server,
        &[
            ("GET /hello.txt HTTP/1.1", 200),
            ("HEAD /index.html HTTP/1.1", 200),
        ],
    );
}

#[test]
fn ipv4_and_ipv6_servers_can_share_a_port() {
    if let Some(reason) = no_ipv6_loopback() {
        return skip("ipv4_and_ipv6_servers_can_share_a_port", &reason);
    }
    // What the README suggests for dual-stack serving: a second instance on 0.0.0.0. With
    // IPV6_V6ONLY the two binds do not collide. The IPv4 one picks the port: IPv4 ports
    // are the busy ones while other tests run, so a free IPv4 port is the scarce half.
    let fixture = Fixture::new();
    let v4 = TestServer::start(fixture.root(), &["--bind", "0.0.0.0"]);
    let port = v4.addr().port().to_string();
    let v6 = TestServer::start(fixture.root(), &["--bind", "::", "--port", &port]);
    assert_eq!(v4.addr().port(), v6.addr().port());

    let port = v6.addr().port();
    assert_hello(&Client::connect(SocketAddr::from((Ipv6Addr::LOCALHOST, port))).get("/hello.txt"));
    assert_hello(&Client::connect(SocketAddr::from(([127, 0, 0, 1], port))).get("/hello.txt"));

    let v6_lines = v6.wait_for_log(|l| !l.is_empty());
    let v4_lines = v4.wait_for_log(|l| !l.is_empty());
    assert_eq!(v6_lines.len(), 1, "{v6_lines:?}");
    assert_eq!(v6_lines[0].client, "::1");
    assert_eq!(v4_lines.len(), 1, "{v4_lines:?}");
    assert_eq!(v4_lines[0].client, "127.0.0.1");
}
