//! Directory listings (`--list-dirs`): what is listed and what is not, names that try to
//! break out of their HTML or URL, the JSON form, revalidation, and how long a huge
//! directory holds up the other connections of its worker.

mod support;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// File names that are markup, URL delimiters or not UTF-8 at all.
const TRICKY_NAMES: [&[u8]; 6] = [
    b"<script>alert(1)<\\script>.txt",
    b"\"><img src=x onerror=alert(2)>",
    b"a&lt;b & c#d?e%f.txt",
    b"javascript:alert(3)",
    b"not utf-8 \xff\xfe.bin",
    b"space and 'quote'.txt",
];

/// A root whose `files/` has no index: visible files and a directory, plus everything a
/// listing must leave out.
fn listing_fixture() -> Fixture {
    let fixture = Fixture::new();
    std::fs::create_dir_all(fixture.path("files/zdir")).unwrap();
    std::fs::create_dir_all(fixture.path("files/.git")).unwrap();
    fixture.write("files/b.txt", b"bbb");
    fixture.write("files/B.txt", b"BIG B");
    fixture.write("files/a.txt", b"a");
    fixture.write("files/zdir/inner.txt", b"inner");
    fixture.write("files/.env", b"SECRET=1");
    fixture.write("files/.git/config", b"[core]");
    let files = fixture.path("files");
    for name in TRICKY_NAMES {
        std::fs::write(files.join(OsStr::from_bytes(name)), b"tricky").unwrap();
    }
    symlink(fixture.outside(), files.join("leaves-root")).unwrap();
    symlink("/etc/passwd", files.join("passwd")).unwrap();
    symlink(".env", files.join("env-link")).unwrap();
    symlink("a.txt", files.join("alias.txt")).unwrap();
    symlink("zdir", files.join("zlink")).unwrap();
    let fifo = files.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    fixture
}

/// The `href` values of a page, in order.
fn links(page: &str) -> Vec<String> {
    page.split("href=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].replace("&amp;", "&"))
        .collect()
}

#[test]
fn without_the_flag_a_directory_without_index_is_forbidden() {
    let fixture = listing_fixture();
    let server = TestServer::start(fixture.root(), &[]);
    assert_error(&server.connect().get("/files/"), 403);
}

#[test]
fn lists_servable_entries_directories_first_in_byte_order() {
    let fixture = listing_fixture();
    let server = TestServer::start(fixture.root(), &["--list-dirs"]);
    let mut client = server.connect();
    let r = client.get("/files/");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.expect_header("Content-Type"), "text/html; charset=utf-8");
    assert_eq!(r.expect_header("X-Content-Type-Options"), "nosniff");
    assert!(
        r.expect_header("Content-Security-Policy")
            .starts_with("default-src 'none'")
    );
    assert_eq!(r.expect_header("Vary"), "Accept");
    let page = r.body_text();
    let hrefs = links(&page);
    let mut expected: Vec<String> = vec!["/".into(), "/files/zdir/".into(), "/files/zlink/".into()];
    let mut file_names: Vec<&[u8]> = TRICKY_NAMES.to_vec();
    file_names.extend([&b"B.txt"[..], b"a.txt", b"alias.txt", b"b.txt"]);
    file_names.sort();
    for name in file_names {
        let mut encoded = Vec::new();
        encoded.extend_from_slice(b"/files/");
        for &byte in name {
            if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte) {
                encoded.push(byte);
            } else {
                encoded.extend_from_slice(format!("%{byte:02X}").as_bytes());
            }
        }
        expected.push(String::from_utf8(encoded).unwrap());
    }
    assert_eq!(hrefs, expected, "{page}");
    for hidden in [".env", ".git", "env-link", "passwd", "leaves-root", "fifo"] {
        assert!(!page.contains(hidden), "{hidden} is listed:\n{page}");
    }
    // Every link leads to what it names.
    for href in &hrefs {
        let r = client.get(href);
        assert_eq!(r.status, 200, "{href}: {r:?}");
    }
    assert_eq!(client.get("/files/javascript:alert(3)").body, b"tricky");
}

/// A file or directory the server may not read is left out, as a request for it would be
/// refused (`403`); one it may read is listed even with a mode that is not `644`.
#[test]
fn unreadable_entries_are_not_listed() {
    use std::os::unix::fs::PermissionsExt;
    let fixture = listing_fixture();
    if ignores_file_permissions(fixture.root()) {
        eprintln!("skipped: this user can read files without read permission (root?)");
        return;
    }
    let set_mode = |name: &str, mode: u32| {
        std::fs::set_permissions(fixture.path(name), std::fs::Permissions::from_mode(mode))
            .unwrap();
    };
    set_mode("files/a.txt", 0o000);
    set_mode("files/b.txt", 0o600);
    set_mode("files/zdir", 0o000);
    let server = TestServer::start(fixture.root(), &["--list-dirs"]);
    let mut client = server.connect();
    let hrefs = links(&client.get("/files/").body_text());
    set_mode("files/zdir", 0o755);
    for refused in ["/files/a.txt", "/files/alias.txt", "/files/zdir/"] {
        assert!(
            !hrefs.iter().any(|href| href == refused),
            "{refused} is listed: {hrefs:?}"
        );
    }
    assert!(hrefs.iter().any(|href| href == "/files/b.txt"), "{hrefs:?}");
    assert_eq!(client.get("/files/a.txt").status, 403);
}

#[test]
fn names_are_text_never_markup() {
    let fixture = listing_fixture();
    let server = TestServer::start(fixture.root(), &["--list-dirs"]);
    let page = server.connect().get("/files/").body_text();
    for markup in [
        "<script",
        "<img",
        "onerror=alert(2)>",
        "\"javascript:",
        "&lt;b",
    ] {
        assert!(!page.contains(markup), "{markup:?} in\n{page}");
    }
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;\\script&gt;.txt"),
        "{page}"
    );
    assert!(page.contains("a&amp;lt;b &amp; c#d?e%f.txt"), "{page}");
    assert!(page.contains("not utf-8 \u{fffd}\u{fffd}.bin"), "{page}");
}

#[test]
fn json_by_accept_with_every_field() {
    let fixture = listing_fixture();
    let server = TestServer::start(fixture.root(), &["--list-dirs"]);
    let r = server.connect().roundtrip(
        "GET /files/ HTTP/1.1\r\nHost: a\r\nAccept: application/json, */*;q=0.8\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.expect_header("Content-Type"), "application/json");
    assert_eq!(r.expect_header("Vary"), "Accept");
    // Parsed by a real JSON parser: the escaping holds.
    let mut python = Command::new("python3")
        .args([
            "-c",
            "import json, sys\n\
             d = json.load(sys.stdin)\n\
             print(d['path'], d['truncated'])\n\
             for e in d['entries']: print(e['type'], e['size'], e['mtime'] > 0, e['url'], e['name'])",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    python.stdin.take().unwrap().write_all(&r.body).unwrap();
    let output = python.wait_with_output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "/files/ False");
    assert_eq!(lines[1], "directory 4096 True /files/zdir/ zdir");
    assert!(lines.contains(&"file 3 True /files/b.txt b.txt"), "{text}");
    assert!(
        lines.contains(
            &"file 6 True /files/not%20utf-8%20%FF%FE.bin not utf-8 \u{fffd}\u{fffd}.bin"
        ),
        "{text}"
    );
    assert!(lines.contains(&"file 6 True /files/%22%3E%3Cimg%20src=x%20onerror=alert(2)%3E \"><img src=x onerror=alert(2)>"), "{text}");
    assert!(!text.contains(".env"));
    // A browser's Accept gets the page.
    let r = server.connect().roundtrip(
        "GET /files/ HTTP/1.1\r\nHost: a\r\nAccept: text/html,application/xhtml+xml,*/*;q=0.8\r\n\r\n",
    );
    assert_eq!(r.expect_header("Content-Type"), "text/html; charset=utf-8");
}

#[test]
fn revalidation_gets_304_until_something_shown_changes() {
    let fixture = listing_fixture();
    let server = TestServer::start(fixture.root(), &["--list-dirs"]);
    let mut client = server.connect();
    let etag = client.get("/files/").expect_header("ETag").to_owned();
    let conditional = format!("GET /files/ HTTP/1.1\r\nHost: a\r\nIf-None-Match: {etag}\r\n\r\n");
    let r = client.roundtrip(&conditional);
    assert_eq!(r.status, 304, "{r:?}");
    assert_eq!(r.expect_header("ETag"), etag);
    // A file's size changes, the directory's own mtime does not: still a new tag.
    fixture.write("files/b.txt", b"longer now");
    let r = client.roundtrip(&conditional);
    assert_eq!(r.status, 200);
    assert_ne!(r.expect_header("ETag"), etag);
    // JSON is another representation with another tag.
    let r = client.roundtrip("GET /files/ HTTP/1.1\r\nHost: a\r\nAccept: application/json\r\n\r\n");
    assert_ne!(r.expect_header("ETag"), etag);
    let head = client.head("/files/");
    assert_eq!(head.status, 200);
    assert!(head.content_length() > 0);
}

#[test]
fn the_access_log_is_not_listed() {
    let fixture = listing_fixture();
    let log = fixture.path("files/access.log");
    let server = TestServer::start(
        fixture.root(),
        &["--list-dirs", "--log", log.to_str().unwrap()],
    );
    let page = server.connect().get("/files/").body_text();
    assert!(
        page.contains("b.txt") && !page.contains("access.log"),
        "{page}"
    );
}

#[test]
fn index_files_still_win_and_the_root_has_no_parent_link() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--list-dirs"]);
    let mut client = server.connect();
    assert_file_body(&client.get("/sub/"), content("sub/index.html"));
    std::fs::remove_file(fixture.path("index.html")).unwrap();
    let page = client.get("/").body_text();
    assert!(page.contains("<title>Index of /</title>"), "{page}");
    assert!(!links(&page).contains(&"/".to_owned()), "{page}");
}

/// 100,000 entries: the listing stops at `MAX_LISTED_ENTRIES` and says so, and a client on
/// the same worker (one thread) waits at most a bounded time for its small file meanwhile.
/// The bound is loose for a debug build on a shared machine; a release build answers one
/// capped listing in about 25 ms.
#[test]
fn a_huge_directory_is_capped_and_stalls_the_worker_only_briefly() {
    const ENTRIES: usize = 100_000;
    let fixture = Fixture::new();
    let big = fixture.path("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..ENTRIES {
        std::fs::File::create(big.join(format!("file-{i:06}"))).unwrap();
    }
    let server = TestServer::start(fixture.root(), &["--list-dirs", "--threads", "1"]);
    let listed = Instant::now();
    let r = server.connect().get("/big/");
    let one_listing = listed.elapsed();
    let page = r.body_text();
    assert!(
        page.contains("This directory holds more than 10000 entries"),
        "no note"
    );
    let rows = page.matches("<tr><td><a href=\"/big/file-").count();
    assert_eq!(rows, 10_000);

    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(2));
    let lister = {
        let (addr, done, start) = (server.addr(), Arc::clone(&done), Arc::clone(&start));
        thread::spawn(move || {
            let mut client = Client::connect(addr);
            start.wait();
            let mut listings = 0;
            while !done.load(Ordering::Relaxed) {
                assert_eq!(client.get("/big/").status, 200);
                listings += 1;
            }
            listings
        })
    };
    let mut client = server.connect();
    start.wait();
    let mut worst = Duration::ZERO;
    let measuring = Instant::now();
    while measuring.elapsed() < Duration::from_secs(3) {
        let sent = Instant::now();
        assert_eq!(client.get("/hello.txt").status, 200);
        worst = worst.max(sent.elapsed());
    }
    done.store(true, Ordering::Relaxed);
    let listings = lister.join().unwrap();
    eprintln!(
        "one listing of {ENTRIES} entries (capped): {one_listing:?}; {listings} listings in 3 s; \
         worst wait for a small file meanwhile: {worst:?}"
    );
    assert!(worst < Duration::from_secs(1), "worst wait {worst:?}");
}
