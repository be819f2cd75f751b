//! Clients on another host: two network namespaces joined by a veth pair stand in for two
//! machines on a private /30 (see `support/netns.rs`). mioserve runs in one, bound to
//! `0.0.0.0`; `curl` runs in the other through `ip netns exec`. This is the only place the
//! server is reached over a real (virtual) network interface instead of loopback, with a
//! client address that is not 127.0.0.1.
//!
//! Linux and root only: every test skips, saying why on stderr, when network namespaces
//! cannot be created here. With root, `ip` (`iproute2`), `curl` and `sha256sum`
//! (`coreutils`) are required. The namespaces, and with them the link, are removed when
//! each test ends, also when it fails.

mod support;

use std::fs;
use std::process::{Command, Output};
use std::time::Duration;

use support::netns::{Netns, VethLink};
use support::tools::{
    assert_curl_reused_one_connection, require, run, run_ok, sha256_file, skip, tail,
};
use support::*;

/// How long one curl run may take (the 20 MiB download included).
const CURL_TIMEOUT: Duration = Duration::from_secs(60);

/// The link, or `None` after printing why this test skips.
fn link_or_skip(test: &str) -> Option<VethLink> {
    match VethLink::create() {
        Ok(link) => Some(link),
        Err(reason) => {
            skip(test, &reason);
            None
        }
    }
}

/// `curl -sS ARGS...` run inside `ns`.
fn curl_in(ns: &Netns, args: &[&str]) -> Output {
    let curl = require("curl", "curl");
    run(ns.command(curl).arg("-sS").args(args), CURL_TIMEOUT)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that `out` is a successful curl run and returns its stdout.
fn ok(out: Output, what: &str) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{what}: curl failed ({}): {}",
        out.status,
        tail(&text(&out.stderr))
    );
    out.stdout
}

#[test]
fn pages_cross_the_link_over_one_kept_alive_connection_and_the_log_names_the_client() {
    let Some(link) = link_or_skip("other_hosts::pages_cross_the_link") else {
        return;
    };
    let fixture = Fixture::new();
    // Declared after the link, so it is killed before the namespaces are deleted.
    let server = TestServer::start_in_netns(&link.server, fixture.root(), &["--bind", "0.0.0.0"]);
    assert_eq!(
        server.addr().ip().to_string(),
        "0.0.0.0",
        "{}",
        server.start_line
    );
    let base = format!("http://{}:{}", link.server_ip, server.addr().port());

    let body = ok(
        curl_in(&link.client, &[&format!("{base}/index.html")]),
        "GET /index.html",
    );
    assert_eq!(body, content("index.html"));
    let head = ok(
        curl_in(&link.client, &["-I", &format!("{base}/hello.txt")]),
        "HEAD /hello.txt",
    );
    let r = support::tools::parse_raw_response(&head);
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.header("Last-Modified"), Some(FIXTURE_LAST_MODIFIED));

    // Two requests in one curl run: one connection, reused.
    let out = curl_in(
        &link.client,
        &[
            "-v",
            &format!("{base}/hello.txt"),
            &format!("{base}/sub/page.html"),
        ],
    );
    let log = text(&out.stderr);
    let bodies = ok(out, "two requests on one connection");
    assert_eq!(
        bodies,
        [content("hello.txt"), content("sub/page.html")].concat()
    );
    assert_curl_reused_one_connection(&log);

    // Every request is logged with the other namespace's address. (Each worker flushes its
    // own lines, so lines of different connections may appear in either order.)
    let lines = server.wait_for_log(|lines| lines.len() >= 4);
    let mut got: Vec<_> = lines
        .iter()
        .map(|l| (l.client.as_str(), l.request_line.as_str(), l.status))
        .collect();
    got.sort_unstable();
    let client = link.client_ip.to_string();
    let mut expected = [
        (client.as_str(), "GET /index.html HTTP/1.1", 200),
        (client.as_str(), "HEAD /hello.txt HTTP/1.1", 200),
        (client.as_str(), "GET /hello.txt HTTP/1.1", 200),
        (client.as_str(), "GET /sub/page.html HTTP/1.1", 200),
    ];
    expected.sort_unstable();
    assert_eq!(got, expected);
}

#[test]
fn a_server_bound_to_loopback_is_not_reachable_from_the_other_host() {
    let Some(link) = link_or_skip("other_hosts::a_server_bound_to_loopback") else {
        return;
    };
    let fixture = Fixture::new();
    let public = TestServer::start_in_netns(&link.server, fixture.root(), &["--bind", "0.0.0.0"]);
    let local = TestServer::start_in_netns(&link.server, fixture.root(), &["--bind", "127.0.0.1"]);
    let public_port = public.addr().port();
    let local_port = local.addr().port();
    let hello = |host: &str, port: u16| format!("http://{host}:{port}/hello.txt");
    let server_ip = link.server_ip.to_string();

    // The loopback-bound server is up and serving inside its own namespace...
    let body = ok(
        curl_in(&link.server, &[&hello("127.0.0.1", local_port)]),
        "loopback server from its own namespace",
    );
    assert_eq!(body, content("hello.txt"));
    // ...the 0.0.0.0 one answers across the link...
    let body = ok(
        curl_in(&link.client, &[&hello(&server_ip, public_port)]),
        "0.0.0.0 server from the other namespace",
    );
    assert_eq!(body, content("hello.txt"));
    // ...and the loopback one does not: curl's exit code 7 is "failed to connect" (the
    // server's kernel answers the SYN with a reset, as nothing listens on that address).
    let refused = curl_in(&link.client, &[&hello(&server_ip, local_port)]);
    assert_eq!(
        refused.status.code(),
        Some(7),
        "the 127.0.0.1 server was reachable (or failed oddly) from the other namespace: {}",
        text(&refused.stderr)
    );
    assert!(refused.stdout.is_empty());

    let local_lines = local.wait_for_log(|lines| !lines.is_empty());
    assert_eq!(local_lines.len(), 1, "{local_lines:?}");
    assert_eq!(local_lines[0].client, "127.0.0.1");
    let public_lines = public.wait_for_log(|lines| !lines.is_empty());
    assert_eq!(public_lines.len(), 1, "{public_lines:?}");
    assert_eq!(public_lines[0].client, link.client_ip.to_string());
}

#[test]
fn a_20_mib_download_crosses_the_link_byte_exact() {
    let Some(link) = link_or_skip("other_hosts::a_20_mib_download") else {
        return;
    };
    let fixture = Fixture::new();
    let big = fixture.big();
    let server = TestServer::start_in_netns(&link.server, fixture.root(), &["--bind", "0.0.0.0"]);
    let url = format!("http://{}:{}/big.bin", link.server_ip, server.addr().port());
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("big.bin");
    let target_arg = target.to_str().expect("UTF-8 temp path");

    let out = curl_in(
        &link.client,
        &[
            "-o",
            target_arg,
            "-w",
            "%{http_code} %{size_download}",
            &url,
        ],
    );
    let summary = text(&ok(out, "GET /big.bin"));
    assert_eq!(summary, format!("200 {BIG_LEN}"));
    assert_eq!(
        sha256_file(&target),
        sha256_file(&fixture.path("big.bin")),
        "sha256 of the download differs from the file's"
    );
    assert!(
        fs::read(&target).unwrap() == big,
        "the download differs from big.bin"
    );

    let lines = server.wait_for_log(|lines| !lines.is_empty());
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    assert_eq!(
        (
            l.client.as_str(),
            l.request_line.as_str(),
            l.status,
            l.bytes
        ),
        (
            link.client_ip.to_string().as_str(),
            "GET /big.bin HTTP/1.1",
            200,
            BIG_LEN as u64
        )
    );
}

#[test]
fn namespaces_are_removed_when_a_test_fails() {
    let Some(link) = link_or_skip("other_hosts::namespaces_are_removed_when_a_test_fails") else {
        return;
    };
    let names = [link.server.name.clone(), link.client.name.clone()];
    let fixture = Fixture::new();
    let failing = std::thread::spawn(move || {
        // The whole link moves in (a closure naming only `link.server` would capture just
        // that field and leave the client namespace to the outer function).
        let link = link;
        let _server =
            TestServer::start_in_netns(&link.server, fixture.root(), &["--bind", "0.0.0.0"]);
        panic!("a deliberate failure while the server runs inside the namespace");
    });
    assert!(
        failing.join().is_err(),
        "the deliberate panic did not happen"
    );

    let out = run_ok(
        Command::new(require("ip", "iproute2")).args(["netns", "list"]),
        Duration::from_secs(30),
    );
    let listed = text(&out.stdout);
    for name in names {
        assert!(
            !listed
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&name)),
            "namespace {name} survived a failing test: {listed}"
        );
    }
}
