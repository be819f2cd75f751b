//! Confinement to the document root: traversal in every spelling, NUL bytes, symlinks that
//! leave the root, and files the server cannot read.
//!
//! The fixture puts `outside/secret.txt` next to the root, so a traversal that works is
//! caught deterministically; `/etc/passwd` is tried too (its `root:` line is the marker).

mod support;

use std::os::unix::fs::{PermissionsExt, symlink};

use support::*;

/// Fails if `r` leaks anything from outside the root; it must be a 400, 403 or 404.
fn assert_refused(r: &Response, raw: &str) {
    let body = r.body_text();
    assert!(
        !body.contains("root:") && !r.body.windows(SECRET.len()).any(|w| w == SECRET),
        "{raw:?} leaked a file from outside the root: {r:?}"
    );
    assert!(
        matches!(r.status, 400 | 403 | 404),
        "{raw:?} got {:?}, expected 400, 403 or 404",
        r.status_line
    );
    assert_common_headers(r);
}

/// Sends each target on a fresh connection (a 400 closes it) and checks it is refused.
fn assert_all_refused(server: &TestServer, targets: &[&str]) {
    for target in targets {
        let raw = get(target);
        let r = server.connect().roundtrip(&raw);
        assert_refused(&r, &raw);
    }
}

#[test]
fn traversal_to_etc_passwd_is_refused() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    assert_all_refused(
        &server,
        &[
            "/../",
            "/../../../../../../../../etc/passwd",
            "/%2e%2e/",
            "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
            "/%2E%2E/%2E%2E/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
            "/..%2f..%2f..%2f..%2f..%2f..%2fetc/passwd",
            "/..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
            "/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
            "/a/../../../../../../../etc/passwd",
            "/sub/../../../../../../../etc/passwd",
            "/.%2e/.%2e/.%2e/.%2e/.%2e/.%2e/etc/passwd",
            "/..\\..\\..\\..\\..\\..\\etc\\passwd",
            // Overlong UTF-8 for '.' and '/' must not decode to them.
            "/%c0%ae%c0%ae/%c0%ae%c0%ae/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
            "/..%c0%af..%c0%af..%c0%af..%c0%afetc/passwd",
            // An absolute path after the leading slash must not replace the root.
            "//etc/passwd",
            "/%2fetc/passwd",
            "/%2Fetc%2Fpasswd",
            // Not origin-form at all.
            "../../../../etc/passwd",
            "etc/passwd",
        ],
    );
}

#[test]
fn traversal_to_a_sibling_of_the_root_is_refused() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    assert_all_refused(
        &server,
        &[
            "/../outside/secret.txt",
            "/%2e%2e/outside/secret.txt",
            "/..%2foutside%2fsecret.txt",
            "/%2e%2e%2foutside%2fsecret.txt",
            "/sub/../../outside/secret.txt",
            "/sub/%2e%2e/%2e%2e/outside/secret.txt",
            "/emptydir/../../outside/secret.txt",
            "/./../outside/secret.txt",
        ],
    );
}

#[test]
fn nul_bytes_in_the_path_are_refused() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    assert_all_refused(
        &server,
        &[
            "/hello.txt%00",
            "/hello.txt%00.html",
            "/%00",
            "/sub/%00/../hello.txt",
            "/..%00/..%00/etc/passwd",
        ],
    );
}

#[test]
fn symlinks_leaving_the_root_are_refused() {
    let fixture = Fixture::new();
    symlink("/etc/passwd", fixture.path("passwd")).unwrap();
    symlink("/etc", fixture.path("etc")).unwrap();
    symlink(fixture.outside(), fixture.path("outlink")).unwrap();
    symlink("../outside/secret.txt", fixture.path("relsecret.txt")).unwrap();
    symlink("../../outside", fixture.path("sub/up")).unwrap();
    let server = TestServer::start(fixture.root(), &[]);
    assert_all_refused(
        &server,
        &[
            "/passwd",
            "/etc/passwd",
            "/outlink/secret.txt",
            "/outlink/",
            "/outlink",
            "/relsecret.txt",
            "/sub/up/secret.txt",
        ],
    );
}

#[test]
fn symlinks_within_the_root_are_served() {
    let fixture = Fixture::new();
    symlink("hello.txt", fixture.path("link.txt")).unwrap();
    symlink("../style.css", fixture.path("sub/style-link.css")).unwrap();
    symlink("sub", fixture.path("subdir-link")).unwrap();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    assert_file_body(&c.get("/link.txt"), content("hello.txt"));
    assert_file(
        &c.get("/sub/style-link.css"),
        "style.css",
        "text/css; charset=utf-8",
    );
    assert_file(
        &c.get("/subdir-link/page.html"),
        "sub/page.html",
        "text/html; charset=utf-8",
    );
}

#[test]
fn dot_segments_inside_the_root_never_escape() {
    // Whether `/sub/../hello.txt` is normalised and served or refused is the server's
    // choice; it must not be anything else.
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &[]);
    for target in ["/sub/../hello.txt", "/./hello.txt", "/sub/./../hello.txt"] {
        let r = server.connect().get(target);
        if r.status == 200 {
            assert_hello(&r);
        } else {
            assert_refused(&r, target);
        }
    }
}

#[test]
fn unreadable_file_is_forbidden() {
    let fixture = Fixture::new();
    if ignores_file_permissions(fixture.root()) {
        eprintln!("skipped: this user can read files without read permission (root?)");
        return;
    }
    let path = fixture.path("hello.txt");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let r = c.get("/hello.txt");
    assert_error(&r, 403);
    assert_keeps_alive(&r);
    assert_body_of_index(&c.get("/"));
}

#[test]
fn unreadable_directory_is_forbidden() {
    let fixture = Fixture::new();
    if ignores_file_permissions(fixture.root()) {
        eprintln!("skipped: this user can read files without read permission (root?)");
        return;
    }
    let sub = fixture.path("sub");
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o000)).unwrap();
    let server = TestServer::start(fixture.root(), &[]);
    let r = server.connect().get("/sub/page.html");
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_error(&r, 403);
}

fn assert_body_of_index(r: &Response) {
    assert_file(r, "index.html", "text/html; charset=utf-8");
}

#[test]
fn symlinks_to_dot_files_are_dot_files() {
    let fixture = Fixture::new();
    fixture.write(".env", b"SECRET=1\n");
    std::fs::create_dir(fixture.path(".git")).unwrap();
    fixture.write(".git/config", b"[core]\n");
    symlink(".env", fixture.path("env_link")).unwrap();
    symlink(".git", fixture.path("git_link")).unwrap();
    symlink("../.env", fixture.path("sub/env_up")).unwrap();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    for target in ["/env_link", "/git_link/config", "/sub/env_up"] {
        let r = c.get(target);
        assert_eq!(r.status, 404, "{target}: {r:?}");
        assert!(!r.body_text().contains("SECRET"), "{target} leaked .env");
        assert_keeps_alive(&r);
    }
}

#[test]
fn a_file_has_no_directory_style_url() {
    let fixture = Fixture::new();
    symlink("hello.txt", fixture.path("link.txt")).unwrap();
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    for target in [
        "/hello.txt/",
        "/hello.txt/.",
        "/hello.txt%2F",
        "/sub/page.html/",
        "/link.txt/",
    ] {
        let r = c.get(target);
        assert_eq!(r.status, 404, "{target}: {r:?}");
    }
    assert_hello(&c.get("/hello.txt"));
}

#[test]
fn a_device_node_is_forbidden_not_an_error() {
    // A character device whose driver does not exist: open(2) fails with ENXIO.
    let fixture = Fixture::new();
    let created = std::process::Command::new("mknod")
        .arg(fixture.path("tape"))
        .args(["c", "240", "0"])
        .status()
        .is_ok_and(|status| status.success());
    if !created {
        eprintln!("skipped: mknod needs root (CI runs as root)");
        return;
    }
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    let r = c.get("/tape");
    assert_error(&r, 403);
    assert_keeps_alive(&r);
    assert_hello(&c.get("/hello.txt"));
}

#[test]
fn a_redirect_never_names_another_host() {
    // CVE-2021-28861 in python's http.server: `//evil.example` answered with
    // `Location: //evil.example/`, which a browser reads as another host.
    let fixture = Fixture::new();
    for dir in ["evil.example", "\\evil.example", "a b"] {
        std::fs::create_dir(fixture.path(dir)).unwrap();
    }
    let server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    for (target, location) in [
        ("//evil.example", "/evil.example/"),
        ("///evil.example?x=1", "/evil.example/?x=1"),
        ("/%2Fevil.example", "/evil.example/"),
        ("/%5Cevil.example", "/%5Cevil.example/"),
        ("/\\evil.example", "/%5Cevil.example/"),
        ("//a%20b", "/a%20b/"),
        ("//sub", "/sub/"),
    ] {
        let r = c.get(target);
        assert_eq!(r.status, 301, "{target}: {r:?}");
        assert_eq!(r.header("Location"), Some(location), "{target}");
        assert_keeps_alive(&r);
    }
}

#[test]
fn follow_symlinks_is_an_explicit_opt_in_that_still_hides_dot_files() {
    // Debian's HTML documentation links to /usr/share/javascript; such a tree
    // needs --follow-symlinks. Outside directories not named with a dot:
    // `tempdir()` names are `.tmpXXXX`, themselves dot directories.
    let outside = tempfile::Builder::new().prefix("shared").tempdir().unwrap();
    std::fs::write(outside.path().join("jquery.js"), "jQuery()").unwrap();
    std::fs::write(outside.path().join(".htpasswd"), "admin:x").unwrap();
    let fixture = Fixture::new();
    symlink(outside.path(), fixture.path("javascript")).unwrap();
    symlink(outside.path().join(".htpasswd"), fixture.path("pw")).unwrap();
    symlink("/dev/zero", fixture.path("zero")).unwrap();

    let confined = TestServer::start(fixture.root(), &[]);
    assert_eq!(confined.connect().get("/javascript/jquery.js").status, 403);

    let following = TestServer::start(fixture.root(), &["--follow-symlinks"]);
    let mut c = following.connect();
    let r = c.get("/javascript/jquery.js");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"jQuery()");
    assert_eq!(c.get("/pw").status, 404);
    assert_eq!(c.get("/javascript/.htpasswd").status, 404);
    assert_eq!(c.get("/zero").status, 403);
    assert_hello(&c.get("/hello.txt"));
}
