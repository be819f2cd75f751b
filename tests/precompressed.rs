//! `--precompressed`: a file's sidecars (`style.css.br`, `.zst`, `.gz`) served by
//! `Accept-Encoding`, checked over raw HTTP (which variant, which headers, validators and
//! ranges on the encoded bytes), with clients that decode (`curl --compressed`, Python),
//! and side by side with nginx's `gzip_static on` + `gzip_vary on` on the same tree.
//!
//! The compressed files are the demo site's (`htdocs/style.css.*`, made with `gzip -9`,
//! `brotli -q 11` and `zstd -19`), so the decoding clients see real streams.

mod support;

use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use support::tools::{GroupGuard, require, run_ok, spawn_in_group};
use support::*;
use tempfile::TempDir;

/// The demo site shipped with the repository.
const HTDOCS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/htdocs");

/// Size of `big.txt`: past the memory cache's 64 KiB, so it goes out with `sendfile`.
const BIG_LEN: usize = 300 * 1024;

/// A root with `style.css` and its three sidecars from `htdocs/`, `plain.txt` without
/// any, and `big.txt` with a `.gz` made here by `gzip -9`. Every sidecar is as new as its
/// original (as `gzip -k` leaves it).
fn root() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["style.css", "style.css.br", "style.css.zst", "style.css.gz"] {
        fs::copy(Path::new(HTDOCS).join(name), dir.path().join(name)).unwrap();
    }
    fs::write(dir.path().join("plain.txt"), b"no sidecars here\n").unwrap();
    let big: Vec<u8> = (0..BIG_LEN).map(|i| b"mioserve "[i % 9]).collect();
    fs::write(dir.path().join("big.txt"), &big).unwrap();
    run_ok(
        Command::new(require("gzip", "gzip"))
            .args(["-k", "-9"])
            .arg(dir.path().join("big.txt")),
        Duration::from_secs(30),
    );
    dir
}

/// `GET path` with `Accept-Encoding: accepted` (none when `None`) and `extra` header lines.
fn request(path: &str, accepted: Option<&str>, extra: &str) -> String {
    let field = accepted.map_or(String::new(), |value| {
        format!("Accept-Encoding: {value}\r\n")
    });
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n{field}{extra}\r\n")
}

fn file(root: &TempDir, name: &str) -> Vec<u8> {
    fs::read(root.path().join(name)).unwrap()
}

#[test]
fn accept_encoding_picks_the_variant_and_every_response_of_the_path_varies() {
    let root = root();
    let server = TestServer::start(root.path(), &["--precompressed"]);
    let mut client = server.connect();
    let cases: &[(Option<&str>, Option<&str>, &str)] = &[
        // What Chromium sends: all equal, so the server's order (br > zstd > gzip).
        (Some("gzip, deflate, br, zstd"), Some("br"), "style.css.br"),
        (Some("gzip, deflate, zstd"), Some("zstd"), "style.css.zst"),
        (Some("gzip"), Some("gzip"), "style.css.gz"),
        (Some("br;q=0.5, gzip"), Some("gzip"), "style.css.gz"),
        (Some("*"), Some("br"), "style.css.br"),
        // Refused with q=0, or not asked for: the file as it is, still with Vary.
        (Some("br;q=0, gzip;q=0, zstd;q=0"), None, "style.css"),
        (Some("*;q=0"), None, "style.css"),
        (Some("identity"), None, "style.css"),
        (Some(""), None, "style.css"),
        (None, None, "style.css"),
        // Nothing acceptable, not even identity: the file as it is (200, not 406).
        (Some("identity;q=0, br;q=0"), None, "style.css"),
    ];
    let mut etags = Vec::new();
    for &(accepted, coding, sent) in cases {
        let r = client.roundtrip(&request("/style.css", accepted, ""));
        let context = format!("Accept-Encoding: {accepted:?}: {r:?}");
        assert_eq!(r.status, 200, "{context}");
        assert_eq!(r.header("Content-Encoding"), coding, "{context}");
        assert_eq!(r.header("Vary"), Some("Accept-Encoding"), "{context}");
        assert_eq!(
            r.header("Content-Type"),
            Some("text/css; charset=utf-8"),
            "{context}"
        );
        assert_eq!(r.body, file(&root, sent), "{context}");
        assert_eq!(r.content_length(), r.body.len(), "{context}");
        etags.push((coding, r.expect_header("ETag").to_owned()));
    }
    // One strong tag per variant, the same for the same variant.
    etags.sort();
    etags.dedup();
    assert_eq!(etags.len(), 4, "{etags:?}");

    // A path without sidecars does not vary; a sidecar asked for by name is a plain file.
    let r = client.roundtrip(&request("/plain.txt", Some("gzip, br"), ""));
    assert_eq!(
        (r.header("Vary"), r.header("Content-Encoding")),
        (None, None),
        "{r:?}"
    );
    let r = client.roundtrip(&request("/style.css.gz", Some("gzip, br"), ""));
    assert_eq!(r.header("Content-Encoding"), None, "{r:?}");
    assert_eq!(r.header("Content-Type"), Some("application/gzip"), "{r:?}");
    assert_eq!(r.body, file(&root, "style.css.gz"));

    // HEAD says what GET would.
    let r =
        client.roundtrip("HEAD /style.css HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n");
    assert_eq!(r.header("Content-Encoding"), Some("gzip"), "{r:?}");
    assert_eq!(r.content_length(), file(&root, "style.css.gz").len());
}

#[test]
fn validators_and_ranges_belong_to_the_selected_variant() {
    let root = root();
    let server = TestServer::start(root.path(), &["--precompressed"]);
    let mut client = server.connect();
    let brotli = client.roundtrip(&request("/style.css", Some("br"), ""));
    let br_tag = brotli.expect_header("ETag").to_owned();
    let identity = client.roundtrip(&request("/style.css", None, ""));
    let identity_tag = identity.expect_header("ETag").to_owned();
    assert_ne!(br_tag, identity_tag);

    // 304 only for the tag of the variant that would be sent, and with Vary.
    let r = client.roundtrip(&request(
        "/style.css",
        Some("br"),
        &format!("If-None-Match: {br_tag}\r\n"),
    ));
    assert_eq!(r.status, 304, "{r:?}");
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"), "{r:?}");
    assert_eq!(r.header("ETag"), Some(br_tag.as_str()));
    let r = client.roundtrip(&request(
        "/style.css",
        Some("gzip"),
        &format!("If-None-Match: {br_tag}\r\n"),
    ));
    assert_eq!(
        (r.status, r.header("Content-Encoding")),
        (200, Some("gzip")),
        "{r:?}"
    );

    // Ranges count encoded bytes; If-Range compares with the variant's tag.
    let encoded = file(&root, "style.css.br");
    let ranged = |tag: &str| format!("Range: bytes=10-19\r\nIf-Range: {tag}\r\n");
    let mut client = server.connect();
    let r = client.roundtrip(&request("/style.css", Some("br"), &ranged(&br_tag)));
    assert_eq!(r.status, 206, "{r:?}");
    assert_eq!(r.header("Content-Encoding"), Some("br"));
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes 10-19/{}", encoded.len()).as_str())
    );
    assert_eq!(r.body, encoded[10..20]);
    let r = client.roundtrip(&request("/style.css", Some("br"), &ranged(&identity_tag)));
    assert_eq!((r.status, r.body.len()), (200, encoded.len()), "{r:?}");

    // The same from disk (sendfile) for a file too large for the memory cache.
    let big_gz = file(&root, "big.txt.gz");
    let r = client.roundtrip(&request("/big.txt", Some("gzip"), ""));
    assert_eq!(
        (r.status, r.header("Content-Encoding")),
        (200, Some("gzip"))
    );
    assert_eq!(r.body, big_gz);
    let r = client.roundtrip(&request("/big.txt", Some("gzip"), "Range: bytes=-100\r\n"));
    assert_eq!(r.status, 206, "{r:?}");
    assert_eq!(r.body, big_gz[big_gz.len() - 100..]);
    let r = client.roundtrip(&request("/big.txt", Some("br"), ""));
    assert_eq!(
        (r.header("Content-Encoding"), r.header("Vary")),
        (None, Some("Accept-Encoding"))
    );
    assert_eq!(r.body.len(), BIG_LEN);
}

#[test]
fn sidecars_older_than_their_original_or_without_the_flag_are_not_served() {
    let root = root();
    let gz = fs::File::options()
        .write(true)
        .open(root.path().join("style.css.gz"))
        .unwrap();
    gz.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    fs::write(root.path().join("style.css"), b"body { color: red }\n").unwrap();
    fs::write(
        root.path().join("style.css.br"),
        file(&root, "style.css.br"),
    )
    .unwrap();
    let server = TestServer::start(root.path(), &["--precompressed"]);
    let r = server
        .connect()
        .roundtrip(&request("/style.css", Some("gzip"), ""));
    assert_eq!(
        r.header("Content-Encoding"),
        None,
        "the stale .gz is ignored: {r:?}"
    );
    assert_eq!(r.body, b"body { color: red }\n");
    let r = server
        .connect()
        .roundtrip(&request("/style.css", Some("gzip, br"), ""));
    assert_eq!(
        r.header("Content-Encoding"),
        Some("br"),
        "the remade .br is not: {r:?}"
    );

    let server = TestServer::start(root.path(), &[]);
    let r = server
        .connect()
        .roundtrip(&request("/style.css", Some("gzip, br"), ""));
    assert_eq!(
        (r.header("Content-Encoding"), r.header("Vary")),
        (None, None),
        "{r:?}"
    );
}

#[test]
fn curl_and_python_decode_what_they_asked_for() {
    let root = root();
    let server = TestServer::start(root.path(), &["--precompressed"]);
    let original = file(&root, "style.css");
    let url = format!("http://{}/style.css", server.addr());
    let curl = require("curl", "curl");
    // `--compressed` asks for every coding this curl can decode (br and zstd on Debian).
    let out = run_ok(
        Command::new(&curl).args(["-sS", "--compressed", "-D", "/dev/stderr", &url]),
        Duration::from_secs(30),
    );
    let head = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(head.contains("content-encoding: br"), "{head}");
    assert_eq!(out.stdout, original);
    for coding in ["gzip", "zstd"] {
        let out = run_ok(
            Command::new(&curl)
                .args(["-sS", "--compressed", "-H"])
                .arg(format!("Accept-Encoding: {coding}"))
                .arg(&url),
            Duration::from_secs(30),
        );
        assert_eq!(out.stdout, original, "curl, {coding}");
    }
    let python = r#"
import gzip, sys, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Accept-Encoding": "gzip"})
with urllib.request.urlopen(request) as response:
    assert response.headers["Content-Encoding"] == "gzip", response.headers
    assert response.headers["Vary"] == "Accept-Encoding", response.headers
    sys.stdout.buffer.write(gzip.decompress(response.read()))
"#;
    let out = run_ok(
        Command::new(require("python3", "python3")).args(["-c", python, &url]),
        Duration::from_secs(30),
    );
    assert_eq!(out.stdout, original, "python3");
}

/// nginx serving `root` on `port` with `gzip_static on` and `gzip_vary on`, as its docs
/// suggest for precompressed files; everything it writes stays in `tmp`.
fn nginx_config(root: &Path, tmp: &Path, port: u16) -> String {
    let user = if support::netns::is_root() {
        "user root;\n"
    } else {
        ""
    };
    let (root, tmp) = (root.display(), tmp.display());
    format!(
        "{user}worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log warn;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  types {{ text/css css; }}\n  default_type application/octet-stream;\n\
         access_log off;\n  client_body_temp_path {tmp}/body;\n  proxy_temp_path {tmp}/proxy;\n\
         fastcgi_temp_path {tmp}/fastcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n\
         gzip_static on;\n  gzip_vary on;\n\
         server {{ listen 127.0.0.1:{port}; root {root}; }}\n}}\n"
    )
}

/// Decodes a gzip body with `gzip -dc` (any other coding is returned as it is).
fn decoded(r: &Response) -> Vec<u8> {
    if r.header("Content-Encoding") != Some("gzip") {
        return r.body.clone();
    }
    let mut child = Command::new(require("gzip", "gzip"))
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&r.body).unwrap();
    child.wait_with_output().unwrap().stdout
}

#[test]
fn answers_match_nginx_gzip_static_on_the_same_tree() {
    // nginx's static module knows gzip only, so the tree has only the .gz sidecar.
    let root = root();
    for name in ["style.css.br", "style.css.zst"] {
        fs::remove_file(root.path().join(name)).unwrap();
    }
    let nginx_dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = nginx_dir.path().join("nginx.conf");
    fs::write(&config, nginx_config(root.path(), nginx_dir.path(), port)).unwrap();
    let mut nginx = Command::new(require("nginx", "nginx"));
    nginx
        .arg("-p")
        .arg(nginx_dir.path())
        .arg("-e")
        .arg(nginx_dir.path().join("error.log"));
    nginx.arg("-c").arg(&config).args(["-g", "daemon off;"]);
    let mut child = spawn_in_group(&mut nginx);
    let nginx_group = GroupGuard::new(&child);
    let nginx_addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(
            nginx_addr
        )
        .is_ok()),
        "nginx did not start: {}",
        fs::read_to_string(nginx_dir.path().join("error.log")).unwrap_or_default()
    );
    let server = TestServer::start(root.path(), &["--precompressed"]);
    let mut ours = server.connect();
    let mut theirs = Client::connect(nginx_addr);
    // Where the two differ, the row says which is ours and why.
    let rows: &[(Option<&str>, Option<Option<&str>>)] = &[
        (None, None),
        (Some("gzip"), None),
        (Some("gzip, deflate, br, zstd"), None),
        (Some("br"), None),
        (Some("gzip;q=0"), None),
        (Some("gzip;q=0.5"), None),
        (Some("identity"), None),
        (Some(""), None),
        (Some("identity;q=0"), None),
        // `x-gzip` is gzip (RFC 9110 §8.4.1.3); nginx does not know the old name.
        (Some("x-gzip"), Some(Some("gzip"))),
        // `*` accepts gzip (RFC 9110 §12.5.3); nginx looks for the word "gzip" only.
        (Some("*"), Some(Some("gzip"))),
    ];
    for &(accepted, ours_differs) in rows {
        for path in ["/style.css", "/big.txt", "/plain.txt"] {
            let ask = request(path, accepted, "");
            let (a, b) = (ours.roundtrip(&ask), theirs.roundtrip(&ask));
            let context =
                format!("{path}, Accept-Encoding: {accepted:?}\nours: {a:?}\nnginx: {b:?}");
            let expected_coding = match ours_differs {
                Some(coding) if path != "/plain.txt" => coding,
                _ => b.header("Content-Encoding"),
            };
            assert_eq!(a.status, b.status, "{context}");
            assert_eq!(a.header("Content-Encoding"), expected_coding, "{context}");
            assert_eq!(a.header("Vary"), b.header("Vary"), "{context}");
            assert_eq!(decoded(&a), decoded(&b), "{context}");
        }
    }
    drop(nginx_group);
    let _ = child.wait();
}
