//! The process around the server: the start line (on stderr, naming where the access log
//! goes), defaults, worker count, IPv6, startup
//! errors, `--help`/`--version`, and graceful shutdown on SIGTERM/SIGINT (stop accepting,
//! finish in-flight responses, exit 0).

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

#[test]
fn start_line_names_root_address_workers_and_log() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--threads", "2"]);
    assert_eq!(
        server.start_line,
        format!(
            "mioserve: serving {} on http://127.0.0.1:{} (2 workers); access log: {}",
            fixture.root().display(),
            server.addr().port(),
            server.log_path.as_ref().unwrap().display()
        )
    );
    for (flags, log) in [
        (&["--log", "-"][..], "access log: stdout"),
        (&["--no-log"][..], "no access log"),
    ] {
        let server = TestServer::start(fixture.root(), &[&["--threads", "1"], flags].concat());
        assert_eq!(
            server.start_line,
            format!(
                "mioserve: serving {} on http://127.0.0.1:{} (1 worker); {log}",
                fixture.root().display(),
                server.addr().port()
            )
        );
    }
}

#[test]
fn one_and_two_workers_serve_concurrent_clients() {
    for threads in ["1", "2"] {
        let fixture = Fixture::new();
        let server = TestServer::start(fixture.root(), &["--threads", threads]);
        let workers = if threads == "1" {
            " (1 worker); "
        } else {
            " (2 workers); "
        };
        assert!(
            server.start_line.contains(workers),
            "{:?}",
            server.start_line
        );
        let addr = server.addr();
        let clients: Vec<_> = (0..8)
            .map(|_| {
                thread::spawn(move || {
                    let mut c = Client::connect(addr);
                    for _ in 0..20 {
                        assert_hello(&c.get("/hello.txt"));
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().expect("client thread failed");
        }
    }
}

#[test]
fn default_root_is_htdocs_in_the_working_directory() {
    let workdir = tempfile::tempdir().unwrap();
    fs::create_dir(workdir.path().join("htdocs")).unwrap();
    fs::write(
        workdir.path().join("htdocs/hello.txt"),
        content("hello.txt"),
    )
    .unwrap();
    let server = TestServer::spawn(
        workdir,
        vec!["--port".into(), "0".into(), "--no-log".into()],
    );
    assert!(
        server
            .start_line
            .starts_with("mioserve: serving htdocs on http://127.0.0.1:"),
        "{:?}",
        server.start_line
    );
    let r = server.connect().get("/hello.txt");
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.body, content("hello.txt"));
}

#[test]
fn ipv6_loopback_is_shown_in_brackets() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    }
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--bind", "::1"]);
    let prefix = "on http://[::1]:";
    assert!(
        server.start_line.contains(prefix),
        "{:?}",
        server.start_line
    );
    assert!(server.addr().is_ipv6());
    assert_hello(&server.connect().get("/hello.txt"));
}

#[test]
fn trace_flag_is_accepted() {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--trace"]);
    assert_hello(&server.connect().get("/hello.txt"));
}

/// A startup failure: nonzero exit, nothing on stdout, one `mioserve: ` line on stderr.
fn assert_startup_error(out: &Exited) {
    assert!(!out.status.success(), "exit status {:?}", out.status);
    assert_eq!(out.stdout, "", "stdout of a failed start");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stderr should be one line: {:?}",
        out.stderr
    );
    assert!(lines[0].starts_with("mioserve: "), "{:?}", out.stderr);
}

#[test]
fn missing_root_is_a_one_line_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-root");
    let out = run_to_exit(&[missing.to_str().unwrap(), "--port", "0", "--no-log"]);
    assert_startup_error(&out);
}

#[test]
fn a_missing_root_says_what_to_do_instead() {
    // `mioserve 8000`, as a `python3 -m http.server 8000` user types it.
    let out = run_to_exit(&["8000", "--no-log"]);
    assert_startup_error(&out);
    assert!(
        out.stderr.contains("run `mioserve . -p 8000`"),
        "{:?}",
        out.stderr
    );
    // No ROOT, in a directory without htdocs/.
    let out = run_to_exit(&["--port", "0", "--no-log"]);
    assert_startup_error(&out);
    assert!(
        out.stderr.contains("no htdocs/ here") && out.stderr.contains("`mioserve .`"),
        "{:?}",
        out.stderr
    );
}

#[test]
fn short_flags_and_a_host_name_for_bind() {
    let fixture = Fixture::new();
    let workdir = tempfile::tempdir().unwrap();
    let root = fixture.root().to_str().unwrap();
    let args = [root, "-p", "0", "-b", "localhost", "-t", "1", "--no-log"];
    let server = TestServer::spawn(workdir, args.iter().map(Into::into).collect());
    assert!(server.addr().ip().is_loopback(), "{}", server.start_line);
    assert!(
        server.start_line.contains(" (1 worker); "),
        "{}",
        server.start_line
    );
    assert_hello(&server.connect().get("/hello.txt"));
}

#[test]
fn trace_without_a_level_leaves_the_root_alone() {
    // `--trace DIR` used to take DIR as the trace level and fail.
    let fixture = Fixture::new();
    let workdir = tempfile::tempdir().unwrap();
    let root = fixture.root().to_str().unwrap();
    let args = ["--trace", root, "--port", "0", "--no-log"];
    let server = TestServer::spawn(workdir, args.iter().map(Into::into).collect());
    assert!(server.start_line.contains(root), "{}", server.start_line);
    assert_hello(&server.connect().get("/hello.txt"));
}

#[test]
fn port_in_use_is_a_one_line_startup_error() {
    let fixture = Fixture::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run_to_exit(&[
        fixture.root().to_str().unwrap(),
        "--port",
        &port,
        "--no-log",
    ]);
    assert_startup_error(&out);
}

#[test]
fn bad_flags_fail() {
    let fixture = Fixture::new();
    let root = fixture.root().to_str().unwrap();
    for args in [
        vec![root, "--no-such-flag"],
        vec![root, "--port", "not-a-number"],
        vec![root, "--port", "70000"],
        vec![root, "--keepalive-timeout", "soon"],
    ] {
        let out = run_to_exit(&args);
        assert!(!out.status.success(), "{args:?} exited {:?}", out.status);
        assert!(!out.stderr.trim().is_empty(), "{args:?}: no error message");
        assert!(
            !out.stderr.contains("mioserve: serving"),
            "{args:?} started: {:?}",
            out.stderr
        );
    }
}

#[test]
fn help_and_version_exit_zero() {
    let help = run_to_exit(&["--help"]);
    assert!(help.status.success(), "{:?}", help.status);
    for flag in [
        "--port",
        "--bind",
        "--threads",
        "--log",
        "--no-log",
        "--keepalive-timeout",
    ] {
        assert!(help.stdout.contains(flag), "--help does not mention {flag}");
    }
    let version = run_to_exit(&["--version"]);
    assert!(version.status.success(), "{:?}", version.status);
    assert_eq!(
        version.stdout.trim(),
        format!("mioserve {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn sigterm_and_sigint_exit_zero() {
    for signal in ["TERM", "INT"] {
        let fixture = Fixture::new();
        let mut server = TestServer::start(fixture.root(), &[]);
        assert_hello(&server.connect().get("/hello.txt"));
        let addr = server.addr();
        server.signal(signal);
        let status = server.wait_exit(EXIT_TIMEOUT);
        assert!(status.success(), "SIG{signal}: {status:?}");
        assert!(
            TcpStream::connect(addr).is_err(),
            "still accepting after SIG{signal}"
        );
    }
}

#[test]
fn sigterm_finishes_the_response_in_flight() {
    let fixture = Fixture::new();
    let big = fixture.big();
    let mut server = TestServer::start(fixture.root(), &[]);
    let addr = server.addr();
    let mut c = server.connect();
    c.send(get("/big.bin"));
    // Receive only the start of the body, so the response is mid-flight at SIGTERM.
    let mut first = vec![0u8; 256 * 1024];
    c.stream().read_exact(&mut first).unwrap();
    server.signal("TERM");
    thread::sleep(Duration::from_millis(300));

    // Stopped accepting: a new connection is refused, or at least never answered.
    if let Ok(mut late) = TcpStream::connect(addr) {
        late.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        // The write may fail if the server has already reset the connection; fine.
        let _ = late.write_all(get("/hello.txt").as_bytes());
        let mut buf = [0u8; 64];
        // A timeout (never accepted) or a reset is as good as EOF here.
        if let Ok(n) = late.read(&mut buf) {
            assert_eq!(
                n,
                0,
                "answered a connection made after SIGTERM: {:?}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
    }

    // The in-flight response still arrives whole.
    let mut rest = Vec::new();
    c.stream().read_to_end(&mut rest).unwrap();
    let mut all = first;
    all.extend_from_slice(&rest);
    let head_len = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let head = String::from_utf8_lossy(&all[..head_len]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
    assert_eq!(all.len() - head_len, big.len(), "body length after SIGTERM");
    assert!(all[head_len..] == big[..], "body differs after SIGTERM");

    let status = server.wait_exit(EXIT_TIMEOUT);
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigterm_does_not_wait_for_idle_connections() {
    // Idle keep-alive connections have nothing in flight; shutdown closes them rather than
    // waiting out the 10 s keep-alive timeout.
    let fixture = Fixture::new();
    let mut server = TestServer::start(fixture.root(), &[]);
    let mut idle = server.connect();
    assert_hello(&idle.get("/hello.txt"));
    let _silent = server.connect();
    thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    idle.expect_closed();
}

#[test]
fn sigterm_flushes_the_log() {
    let fixture = Fixture::new();
    let mut server = TestServer::start(fixture.root(), &[]);
    let mut c = server.connect();
    for _ in 0..10 {
        assert_hello(&c.get("/hello.txt"));
    }
    // Stop at once, before any periodic flush could have run.
    assert!(server.stop().success());
    assert_eq!(server.log_lines().len(), 10);
}

#[test]
fn a_failed_epoll_wait_is_reported_at_once_and_exits_nonzero() {
    // strace makes the first `epoll_wait` fail with EBADF, as a broken event
    // loop would: the worker must say so at once and the process must stop
    // with status 1, not serve on with a dead worker until someone stops it.
    let strace = support::tools::require("strace", "strace");
    let fixture = Fixture::new();
    let started = Instant::now();
    let out = support::tools::run(
        std::process::Command::new(strace)
            .args(["-f", "-o", "/dev/null", "-e"])
            .arg("inject=epoll_wait:error=EBADF:when=1")
            .arg(BIN)
            .arg(fixture.root())
            .args(["--port", "0", "--threads", "2", "--no-log"]),
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("epoll_wait failed"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10), "{stderr}");
}
