//! `--header`, `--cors` and `--fallback`: fields added to file answers, CORS answers and
//! preflights, and the single-page-app fallback with its rule for assets.

mod support;

use support::*;

/// Sends an `OPTIONS` and reads its `204`, which has no body and no `Content-Length`.
fn options(client: &mut Client, raw: &str) -> Response {
    client.send(raw);
    client.read_head()
}

fn request(path: &str, fields: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: a\r\n{fields}\r\n")
}

#[test]
fn added_headers_go_on_2xx_and_304_file_answers_only() {
    let fixture = Fixture::new();
    let server = TestServer::start(
        fixture.root(),
        &[
            "--header",
            "Cache-Control: max-age=3600",
            "--header=X-Frame-Options:DENY",
        ],
    );
    let mut client = server.connect();
    let r = client.get("/hello.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.expect_header("Cache-Control"), "max-age=3600");
    assert_eq!(r.expect_header("X-Frame-Options"), "DENY");
    let etag = r.expect_header("ETag").to_owned();
    let r = client.roundtrip(&request(
        "/hello.txt",
        &format!("If-None-Match: {etag}\r\n"),
    ));
    assert_eq!(r.status, 304);
    assert_eq!(r.expect_header("Cache-Control"), "max-age=3600");
    let r = client.roundtrip(&request("/hello.txt", "Range: bytes=0-1\r\n"));
    assert_eq!(r.status, 206);
    assert_eq!(r.expect_header("Cache-Control"), "max-age=3600");
    let r = client.get("/missing");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("Cache-Control"), None);
}

#[test]
fn bad_added_headers_stop_the_start() {
    let fixture = Fixture::new();
    let root = fixture.root().to_str().unwrap();
    for bad in [
        "X-Split: a\r\nSet-Cookie: b",
        "Bad Name: x",
        "Content-Length: 1",
        "no colon",
    ] {
        let exited = run_to_exit(&[root, "-p", "0", "--header", bad]);
        assert!(!exited.status.success(), "{bad:?} was accepted");
        assert!(
            exited.stderr.contains("--header"),
            "{bad:?}: {}",
            exited.stderr
        );
    }
}

#[test]
fn cors_any_origin_and_preflights() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--cors"]);
    let mut client = server.connect();
    let r = client.roundtrip(&request("/data.json", "Origin: https://app.example\r\n"));
    assert_eq!(r.expect_header("Access-Control-Allow-Origin"), "*");
    assert_eq!(r.header("Vary"), None);
    let preflight = "OPTIONS /data.json HTTP/1.1\r\nHost: a\r\nOrigin: https://app.example\r\n\
                     Access-Control-Request-Method: GET\r\n\
                     Access-Control-Request-Headers: range\r\n\r\n";
    let r = options(&mut client, preflight);
    assert_eq!(r.status, 204);
    assert_eq!(r.expect_header("Access-Control-Allow-Origin"), "*");
    assert_eq!(
        r.expect_header("Access-Control-Allow-Methods"),
        "GET, HEAD, OPTIONS"
    );
    assert_eq!(
        r.expect_header("Access-Control-Allow-Headers"),
        "Range, If-None-Match, If-Modified-Since, If-Range"
    );
    assert_eq!(r.expect_header("Access-Control-Max-Age"), "7200");
    assert_eq!(r.expect_header("Allow"), "GET, HEAD, OPTIONS");
    // A plain OPTIONS (a balancer's check) stays what it was.
    let r = options(&mut client, "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Access-Control-Allow-Methods"), None);
}

#[test]
fn cors_for_listed_origins_echoes_them_and_varies() {
    let fixture = Fixture::new();
    let server = TestServer::start(
        fixture.root(),
        &["--cors=https://app.example", "--cors=http://localhost:3000"],
    );
    let mut client = server.connect();
    let r = client.roundtrip(&request("/hello.txt", "Origin: http://localhost:3000\r\n"));
    assert_eq!(
        r.expect_header("Access-Control-Allow-Origin"),
        "http://localhost:3000"
    );
    assert_eq!(r.expect_header("Vary"), "Origin");
    let r = client.roundtrip(&request("/hello.txt", "Origin: https://evil.example\r\n"));
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
    assert_eq!(r.expect_header("Vary"), "Origin");
    let r = options(
        &mut client,
        "OPTIONS /hello.txt HTTP/1.1\r\nHost: a\r\nOrigin: https://evil.example\r\n\
         Access-Control-Request-Method: GET\r\n\r\n",
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
}

#[test]
fn without_cors_no_cors_headers() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    let r = server
        .connect()
        .roundtrip(&request("/hello.txt", "Origin: https://app.example\r\n"));
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
}

#[test]
fn fallback_serves_routes_that_accept_html_and_not_assets() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--fallback", "/index.html"]);
    let mut client = server.connect();
    let browser = "Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\n";
    for route in ["/users/42", "/settings/", "/deep/a/b?tab=1"] {
        let r = client.roundtrip(&request(route, browser));
        assert_file_body(&r, content("index.html"));
        assert_eq!(r.expect_header("Vary"), "Accept", "{route}");
    }
    // curl's `*/*` takes HTML too; HEAD gets the same head.
    assert_eq!(client.get("/users/42").status, 200);
    assert_eq!(client.head("/users/42").status, 200);
    // Missing assets and API calls stay 404.
    for asset in ["/app.v2.js", "/img/logo.png", "/missing.html"] {
        assert_eq!(
            client.roundtrip(&request(asset, browser)).status,
            404,
            "{asset}"
        );
    }
    let r = client.roundtrip(&request("/api/users", "Accept: application/json\r\n"));
    assert_eq!(r.status, 404);
    assert_eq!(r.expect_header("Vary"), "Accept");
    // Existing files are themselves.
    assert_file_body(&client.get("/hello.txt"), content("hello.txt"));
}

#[test]
fn a_fallback_that_is_not_a_file_stops_the_start() {
    let fixture = Fixture::new();
    let root = fixture.root().to_str().unwrap();
    for bad in ["/no-such.html", "/sub/", "index.html"] {
        let exited = run_to_exit(&[root, "-p", "0", "--fallback", bad]);
        assert!(!exited.status.success(), "{bad} was accepted");
        assert!(
            exited.stderr.contains("--fallback"),
            "{bad}: {}",
            exited.stderr
        );
    }
}
