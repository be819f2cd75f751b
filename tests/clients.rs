//! Common HTTP clients against the real server: each must get exactly the right answers.
//!
//! The other test files use a client written for the tests; this one checks that the
//! clients people and tools actually use agree with the server: `curl` (HTTP/1.1 and 1.0,
//! `HEAD`, ranges, `If-Modified-Since`, connection reuse), `wget` (including resuming a
//! download with a range), Python's `http.client` and `urllib`, and the load tools `ab -k`
//! (HTTP/1.0 keep-alive), `h2load --h1` (HTTP/1.1 with pipelining) and `wrk`, which must
//! finish without a single error or non-2xx answer.
//!
//! Every tool is required: a missing one fails its test, naming the Debian package
//! (`curl`, `wget`, `python3`, `apache2-utils`, `nghttp2-client`, `wrk`).

mod support;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use support::tools::{
    assert_curl_reused_one_connection, parse_raw_response, require, run, run_ok, tail,
};
use support::*;

/// How long one client run may take. The load tools run for a few seconds; everything else
/// takes milliseconds.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

fn url(server: &TestServer, path: &str) -> String {
    format!("http://{}{path}", server.addr())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `curl -sS ARGS...`, which must exit 0.
fn curl(args: &[&str]) -> Output {
    run_ok(
        Command::new(require("curl", "curl")).arg("-sS").args(args),
        CLIENT_TIMEOUT,
    )
}

/// `curl -sS -i ARGS... URL`: the one response curl printed, parsed.
fn curl_response(args: &[&str], url: &str) -> Response {
    let mut all = vec!["-i"];
    all.extend_from_slice(args);
    all.push(url);
    parse_raw_response(&curl(&all).stdout)
}

#[test]
fn curl_gets_files_over_http_1_1() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);

    let r = curl_response(&["--http1.1"], &url(&server, "/hello.txt"));
    assert_hello(&r);
    assert_keeps_alive(&r);

    // Binary bodies arrive byte for byte.
    let out = curl(&[
        "--http1.1",
        "-w",
        "%{http_version} %{http_code} %{content_type}",
        "-o",
        "-",
        &url(&server, "/logo.png"),
    ]);
    let logo = content("logo.png");
    assert!(
        out.stdout.starts_with(logo),
        "curl got {:?}",
        text(&out.stdout)
    );
    assert_eq!(text(&out.stdout[logo.len()..]), "1.1 200 image/png");

    // A missing file: the site's own 404 page; `--fail` turns it into curl's exit code 22.
    let r = curl_response(&[], &url(&server, "/no-such-file"));
    assert_eq!(r.status_line, "HTTP/1.1 404 Not Found");
    assert_eq!(r.body, content("404.html"));
    let failed = run(
        Command::new("curl")
            .args(["-sS", "--fail", "-o", "/dev/null"])
            .arg(url(&server, "/no-such-file")),
        CLIENT_TIMEOUT,
    );
    assert_eq!(failed.status.code(), Some(22), "curl --fail on a 404");

    // A directory without its slash: a redirect curl can follow (`-L`).
    let r = curl_response(&[], &url(&server, "/sub"));
    assert_eq!(r.status_line, "HTTP/1.1 301 Moved Permanently");
    assert_eq!(r.header("Location"), Some("/sub/"));
    let out = curl(&["-L", &url(&server, "/sub")]);
    assert_eq!(out.stdout, content("sub/index.html"));
}

#[test]
fn curl_head_range_and_if_modified_since() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);

    // -I: HEAD, the GET's head without a body.
    let out = curl(&["-I", &url(&server, "/index.html")]);
    let r = parse_raw_response(&out.stdout);
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_common_headers(&r);
    let index_len = content("index.html").len().to_string();
    assert_eq!(r.header("Content-Length"), Some(index_len.as_str()));
    assert_eq!(r.header("Last-Modified"), Some(FIXTURE_LAST_MODIFIED));
    assert!(r.body.is_empty(), "HEAD response with a body: {r:?}");

    // --range: one range, 206 with its Content-Range; an open-ended one too.
    for (range, body, content_range) in [
        ("0-4", &b"Hello"[..], "bytes 0-4/14"),
        ("7-", &b"world!\n"[..], "bytes 7-13/14"),
    ] {
        let r = curl_response(&["--range", range], &url(&server, "/hello.txt"));
        assert_eq!(r.status_line, "HTTP/1.1 206 Partial Content", "{range}");
        assert_eq!(r.header("Content-Range"), Some(content_range), "{r:?}");
        assert_eq!(r.body, body, "{range}");
    }

    // -z DATE sends If-Modified-Since: not modified since its own Last-Modified, modified
    // since the day before.
    let r = curl_response(&["-z", FIXTURE_LAST_MODIFIED], &url(&server, "/hello.txt"));
    assert_eq!(r.status_line, "HTTP/1.1 304 Not Modified", "{r:?}");
    assert!(r.body.is_empty(), "{r:?}");
    let r = curl_response(
        &["-z", "Mon, 17 Apr 2023 08:32:14 GMT"],
        &url(&server, "/hello.txt"),
    );
    assert_hello(&r);

    let lines = server.wait_for_log(|lines| lines.len() >= 5);
    let got: Vec<_> = lines
        .iter()
        .map(|l| (l.request_line.as_str(), l.status))
        .collect();
    assert_eq!(
        sorted(got),
        sorted(vec![
            ("HEAD /index.html HTTP/1.1", 200),
            ("GET /hello.txt HTTP/1.1", 206),
            ("GET /hello.txt HTTP/1.1", 206),
            ("GET /hello.txt HTTP/1.1", 304),
            ("GET /hello.txt HTTP/1.1", 200),
        ])
    );
}

#[test]
fn curl_over_http_1_0_and_with_connection_reuse() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);

    // HTTP/1.0 without keep-alive: answered (as HTTP/1.1, RFC 9110 §6.2), then closed.
    let r = curl_response(&["--http1.0"], &url(&server, "/hello.txt"));
    assert_hello(&r);
    assert_closes(&r);

    // Two URLs in one curl run share one connection.
    let out = curl(&[
        "-v",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        &url(&server, "/hello.txt"),
        &url(&server, "/index.html"),
    ]);
    let log = text(&out.stderr);
    assert_curl_reused_one_connection(&log);

    let lines = server.wait_for_log(|lines| lines.len() >= 3);
    let got: Vec<_> = lines
        .iter()
        .map(|l| (l.request_line.as_str(), l.status, l.bytes))
        .collect();
    assert_eq!(
        sorted(got),
        sorted(vec![
            ("GET /hello.txt HTTP/1.0", 200, 14),
            ("GET /hello.txt HTTP/1.1", 200, 14),
            (
                "GET /index.html HTTP/1.1",
                200,
                content("index.html").len() as u64
            ),
        ])
    );
}

#[test]
fn wget_downloads_and_resumes_with_a_range() {
    let wget = require("wget", "wget");
    let fixture = Fixture::new();
    let big = pseudo_random(3 * 1024 * 1024 + 17, 0x3C6E_F372_FE94_F82B);
    fixture.write("big.bin", &big);
    let server = TestServer::start(fixture.root(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let target = |name: &str| -> PathBuf { dir.path().join(name) };

    // -S prints the response head on stderr.
    let out = run_ok(
        Command::new(&wget)
            .args(["-S", "-O"])
            .arg(target("hello.txt"))
            .arg(url(&server, "/hello.txt")),
        CLIENT_TIMEOUT,
    );
    assert_eq!(fs::read(target("hello.txt")).unwrap(), content("hello.txt"));
    let head = text(&out.stderr);
    assert!(head.contains("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains(&format!("Last-Modified: {FIXTURE_LAST_MODIFIED}")),
        "{head}"
    );

    // A 404 is wget's "server error response", exit code 8.
    let missing = run(
        Command::new(&wget)
            .args(["-q", "-O"])
            .arg(target("missing"))
            .arg(url(&server, "/no-such-file")),
        CLIENT_TIMEOUT,
    );
    assert_eq!(missing.status.code(), Some(8), "wget on a 404");

    // -c resumes a partial download with `Range: bytes=N-`.
    let partial = 1_000_003;
    fs::write(target("big.bin"), &big[..partial]).unwrap();
    let out = run_ok(
        Command::new(&wget)
            .args(["-c", "-O"])
            .arg(target("big.bin"))
            .arg(url(&server, "/big.bin")),
        CLIENT_TIMEOUT,
    );
    assert!(
        text(&out.stderr).contains("206 Partial Content"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        fs::read(target("big.bin")).unwrap() == big,
        "the resumed download differs from big.bin"
    );

    let lines = server.wait_for_log(|lines| lines.len() >= 3);
    let got: Vec<_> = lines
        .iter()
        .map(|l| (l.request_line.as_str(), l.status, l.bytes))
        .collect();
    assert_eq!(
        sorted(got),
        sorted(vec![
            ("GET /hello.txt HTTP/1.1", 200, 14),
            (
                "GET /no-such-file HTTP/1.1",
                404,
                content("404.html").len() as u64
            ),
            ("GET /big.bin HTTP/1.1", 206, (big.len() - partial) as u64),
        ])
    );
}

/// Runs a Python 3 script with the server's port as `sys.argv[1]`; returns its stdout.
fn python(script: &str, server: &TestServer) -> String {
    let out = run_ok(
        Command::new(require("python3", "python3"))
            .args(["-c", script])
            .arg(server.addr().port().to_string()),
        CLIENT_TIMEOUT,
    );
    text(&out.stdout)
}

#[test]
fn python_http_client_keeps_one_connection_for_several_requests() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let out = python(
        r#"
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
ports = set()
for method, path in [("GET", "/hello.txt"), ("HEAD", "/index.html"),
                     ("GET", "/logo.png"), ("GET", "/sub"), ("GET", "/missing")]:
    c.request(method, path)
    r = c.getresponse()
    body = r.read()
    ports.add(c.sock.getsockname()[1])
    print(method, path, r.status, r.version, r.getheader("Content-Length"),
          r.getheader("Location"), body.hex())
print("connections", len(ports))
"#,
        &server,
    );
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let len = |name: &str| content(name).len();
    let expected = [
        format!(
            "GET /hello.txt 200 11 14 None {}",
            hex(content("hello.txt"))
        ),
        format!("HEAD /index.html 200 11 {} None ", len("index.html")),
        format!(
            "GET /logo.png 200 11 {} None {}",
            len("logo.png"),
            hex(content("logo.png"))
        ),
        // The redirect's own small body is not checked, only its status and target.
        "GET /sub 301 11".to_owned(),
        format!(
            "GET /missing 404 11 {} None {}",
            len("404.html"),
            hex(content("404.html"))
        ),
        "connections 1".to_owned(),
    ];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), expected.len(), "python printed {out}");
    for (line, want) in lines.iter().zip(&expected) {
        assert!(
            line.starts_with(want.as_str()),
            "got {line:?}, want {want:?}"
        );
    }
    assert!(
        lines[3].contains(" /sub/ "),
        "no Location /sub/: {}",
        lines[3]
    );
}

#[test]
fn python_urllib_follows_redirects_and_reports_errors() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let out = python(
        r#"
import sys, urllib.request, urllib.error
base = "http://127.0.0.1:%s" % sys.argv[1]
with urllib.request.urlopen(base + "/hello.txt", timeout=10) as r:
    print("hello", r.status, r.headers["Content-Type"], r.read().hex())
with urllib.request.urlopen(base + "/sub", timeout=10) as r:
    print("sub", r.status, r.url[len(base):], r.read().hex())
req = urllib.request.Request(base + "/hello.txt", headers={"Range": "bytes=7-11"})
with urllib.request.urlopen(req, timeout=10) as r:
    print("range", r.status, r.headers["Content-Range"], r.read().hex())
try:
    urllib.request.urlopen(base + "/missing", timeout=10)
    print("missing no error")
except urllib.error.HTTPError as e:
    print("missing", e.code, e.read().hex())
"#,
        &server,
    );
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let expected = [
        format!(
            "hello 200 text/plain; charset=utf-8 {}",
            hex(content("hello.txt"))
        ),
        format!("sub 200 /sub/ {}", hex(content("sub/index.html"))),
        format!("range 206 bytes 7-11/14 {}", hex(b"world")),
        format!("missing 404 {}", hex(content("404.html"))),
    ];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, expected, "python printed {out}");
}

/// The value after `label` on the line that starts with it (`ab`'s `Label:   value`).
fn field<'a>(output: &'a str, label: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{output}"))
        .trim()
}

#[test]
fn ab_with_keep_alive_gets_every_answer_on_reused_connections() {
    const REQUESTS: usize = 2000;
    let ab = require("ab", "apache2-utils");
    let fixture = Fixture::new();
    let mut server = TestServer::start(fixture.root(), &[]);
    // ab speaks HTTP/1.0 with `Connection: Keep-Alive` under -k.
    let out = run_ok(
        Command::new(ab)
            .args(["-k", "-n", &REQUESTS.to_string(), "-c", "8"])
            .arg(url(&server, "/hello.txt")),
        CLIENT_TIMEOUT,
    );
    let report = text(&out.stdout);
    assert_eq!(field(&report, "Server Software:"), "mioserve");
    assert_eq!(field(&report, "Document Length:"), "14 bytes");
    assert_eq!(
        field(&report, "Complete requests:"),
        REQUESTS.to_string(),
        "{report}"
    );
    assert_eq!(field(&report, "Failed requests:"), "0", "{report}");
    assert_eq!(
        field(&report, "Keep-Alive requests:"),
        REQUESTS.to_string(),
        "every request should have been on a kept-alive connection:\n{report}"
    );
    assert!(!report.contains("Non-2xx"), "{report}");

    // One log line per request, each a complete 200.
    assert!(server.stop().success());
    let lines = server.log_lines();
    assert_eq!(lines.len(), REQUESTS, "{:?}", lines.last());
    for line in &lines {
        let l = parse_access_line(line);
        assert_eq!(
            (l.request_line.as_str(), l.status, l.bytes),
            ("GET /hello.txt HTTP/1.0", 200, 14),
            "{line}"
        );
    }
}

#[test]
fn h2load_over_http_1_1_with_pipelining_gets_every_answer() {
    const REQUESTS: usize = 2000;
    let h2load = require("h2load", "nghttp2-client");
    let fixture = Fixture::new();
    let mut server = TestServer::start(fixture.root(), &[]);
    // --h1: HTTP/1.1 only; -m 4: up to four requests pipelined on each connection.
    let out = run_ok(
        Command::new(h2load)
            .args(["--h1", "-n", &REQUESTS.to_string(), "-c", "8", "-m", "4"])
            .arg(url(&server, "/hello.txt"))
            .arg(url(&server, "/style.css")),
        CLIENT_TIMEOUT,
    );
    let report = text(&out.stdout);
    let n = REQUESTS;
    assert!(
        report.contains(&format!(
            "requests: {n} total, {n} started, {n} done, {n} succeeded, 0 failed, 0 errored, 0 timeout"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!("status codes: {n} 2xx, 0 3xx, 0 4xx, 0 5xx")),
        "{report}"
    );

    assert!(server.stop().success());
    let lines = server.log_lines();
    assert_eq!(lines.len(), REQUESTS, "{:?}", lines.last());
    for line in &lines {
        let l = parse_access_line(line);
        let expected_bytes = match l.request_line.as_str() {
            "GET /hello.txt HTTP/1.1" => content("hello.txt").len(),
            "GET /style.css HTTP/1.1" => content("style.css").len(),
            other => panic!("unexpected request {other:?}"),
        };
        assert_eq!((l.status, l.bytes), (200, expected_bytes as u64), "{line}");
    }
}

#[test]
fn wrk_for_a_few_seconds_sees_no_errors_and_no_non_2xx() {
    let wrk = require("wrk", "wrk");
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--no-log"]);
    for path in ["/hello.txt", "/index.html"] {
        let out = run_ok(
            Command::new(&wrk)
                .args(["-t", "2", "-c", "16", "-d", "2s"])
                .arg(url(&server, path)),
            CLIENT_TIMEOUT,
        );
        let report = text(&out.stdout);
        // wrk prints these lines only when something went wrong.
        assert!(!report.contains("Non-2xx"), "{path}: {report}");
        assert!(!report.contains("Socket errors"), "{path}: {report}");
        let requests: u64 = report
            .lines()
            .find_map(|l| l.trim().split_once(" requests in "))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or_else(|| panic!("no request count in wrk's report:\n{report}"));
        // Thousands per second even on a loaded 2-core machine; this only rules out a
        // server that stalled.
        assert!(
            requests > 500,
            "{path}: only {requests} requests:\n{report}"
        );
        assert!(
            out.stderr.is_empty(),
            "{path}: wrk complained: {}",
            tail(&text(&out.stderr))
        );
    }
    // Still answering afterwards.
    assert_hello(&server.connect().get("/hello.txt"));
}
