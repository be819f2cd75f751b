//! Socket activation: the server takes its listening socket from systemd instead of
//! binding one (sd_listen_fds(3): `LISTEN_PID`, `LISTEN_FDS`, descriptors from 3).
//!
//! `systemd-socket-activate` (Debian's `systemd` package) plays systemd's part: it binds
//! the port, waits for the first connection, then `exec`s the server with the socket as
//! descriptor 3; that first connection waits in the socket's backlog meanwhile. The other cases hand
//! the server a descriptor 3 from a shell (`3</dev/null`), with `LISTEN_PID` set to the
//! shell's own pid, which `exec` passes on to the server, or to another process's.

mod support;

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use support::tools::{require, run, run_ok, tail};
use support::*;

/// How long one load-tool run or refused start may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A port free right now on 127.0.0.1, for `systemd-socket-activate -l` (which cannot
/// bind port 0 and report the port it got).
fn free_port() -> u16 {
    let probe = TcpListener::bind("127.0.0.1:0").expect("bind a probe");
    probe.local_addr().expect("probe address").port()
}

/// The `accepted` counter of each worker in the `--stats-path` JSON.
fn accepted_per_worker(json: &str) -> Vec<u64> {
    let workers = json
        .split_once("\"workers\":[")
        .and_then(|(_, rest)| rest.split_once("],\"total\""))
        .unwrap_or_else(|| panic!("no workers array in {json}"))
        .0;
    workers
        .split("\"accepted\":")
        .skip(1)
        .map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().expect("accepted is a number")
        })
        .collect()
}

/// `sh -c 'LISTEN_PID=<pid> LISTEN_FDS=1 exec "$0" "$@" 3</dev/null' mioserve ARGS...`:
/// the server with /dev/null as its descriptor 3. `$$` names the shell, which `exec`
/// turns into the server.
fn with_dev_null_as_fd_3(listen_pid: &str, args: &[&str]) -> Vec<OsString> {
    let script = format!("LISTEN_PID={listen_pid} LISTEN_FDS=1 exec \"$0\" \"$@\" 3</dev/null");
    let mut all: Vec<OsString> = vec!["-c".into(), script.into(), BIN.into()];
    all.extend(args.iter().map(OsString::from));
    all
}

#[test]
fn serves_on_the_socket_systemd_passes_with_both_workers_accepting_from_it() {
    let activate = require("systemd-socket-activate", "systemd");
    let ab = require("ab", "apache2-utils");
    let fixture = Fixture::new();
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let root = fixture.root().to_str().expect("UTF-8 fixture path");
    // No --port: without the inherited socket the server would bind the default port and
    // the start line would show it.
    let args: Vec<OsString> = [
        "-l",
        &listen.to_string(),
        BIN,
        root,
        "--threads",
        "2",
        "--no-log",
        "--stats-path",
        "/_stats",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    // The activator starts the server only when a first client connects; that client
    // waits in the backlog and must then be served by the server.
    let first_client = std::thread::spawn(move || {
        let listening = wait_until(START_TIMEOUT, || TcpStream::connect(listen).is_ok());
        assert!(
            listening,
            "systemd-socket-activate never listened on {listen}"
        );
        Client::connect(listen).get("/hello.txt")
    });
    let workdir = tempfile::tempdir().expect("server working directory");
    let server = TestServer::spawn_program(workdir, activate.as_os_str(), args);
    assert_eq!(server.addr(), listen, "{}", server.start_line);
    assert_hello(&first_client.join().expect("first client"));

    // Both workers share the one socket (EPOLLEXCLUSIVE wakes one waiting worker per
    // connection); under concurrent load each of them must get some. Rounds repeat in
    // case one worker happened to take a whole round.
    let url = format!("http://{listen}/hello.txt");
    let mut accepted = Vec::new();
    for _round in 0..5 {
        let out = run_ok(
            Command::new(&ab)
                .args(["-q", "-n", "2000", "-c", "16"])
                .arg(&url),
            RUN_TIMEOUT,
        );
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(report.contains("Failed requests:        0"), "{report}");
        // Workers publish their counters once a second.
        std::thread::sleep(Duration::from_millis(1100));
        accepted = accepted_per_worker(&server.connect().get("/_stats").body_text());
        assert_eq!(accepted.len(), 2, "{accepted:?}");
        if accepted.iter().all(|&n| n > 0) {
            return;
        }
    }
    panic!("a worker never accepted from the shared socket: {accepted:?}");
}

#[test]
fn a_descriptor_that_is_not_a_socket_is_refused_in_one_line() {
    let fixture = Fixture::new();
    let root = fixture.root().to_str().expect("UTF-8 fixture path");
    let out = run(
        Command::new("sh").args(with_dev_null_as_fd_3("$$", &[root, "--no-log"])),
        RUN_TIMEOUT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started anyway: {}", tail(&stderr));
    assert_eq!(
        stderr,
        "mioserve: cannot use descriptor 3 passed by systemd: not a socket\n"
    );
}

#[test]
fn listen_pid_naming_another_process_is_ignored() {
    let fixture = Fixture::new();
    let root = fixture.root().to_str().expect("UTF-8 fixture path");
    // The variables are for pid 1, not for us: bind as usual, leave descriptor 3 alone.
    let args = with_dev_null_as_fd_3("1", &[root, "--no-log", "--port", "0"]);
    let workdir = tempfile::tempdir().expect("server working directory");
    let server = TestServer::spawn_program(workdir, "sh".as_ref(), args);
    assert_hello(&server.connect().get("/hello.txt"));
}

/// `python3 -c SCRIPT mioserve ARGS...`: the server with a listening socket on 127.0.0.1
/// (a free port) as its descriptor 3 and `LISTEN_FDS=listen_fds`, `LISTEN_PID` its own
/// (Python `exec`s it); unlike `systemd-socket-activate`, it starts without waiting for a
/// first client.
fn with_listener_as_fd_3(listen_fds: usize, args: &[&str]) -> Vec<OsString> {
    let script = format!(
        "import os, socket, sys\n\
         s = socket.create_server(('127.0.0.1', 0))\n\
         os.dup2(s.fileno(), 3)\n\
         os.set_inheritable(3, True)\n\
         os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='{listen_fds}')\n\
         os.execv(sys.argv[1], sys.argv[1:])"
    );
    let mut all: Vec<OsString> = vec!["-c".into(), script.into(), BIN.into()];
    all.extend(args.iter().map(OsString::from));
    all
}

#[test]
fn a_count_larger_than_the_descriptors_passed_takes_none_of_ours() {
    let fixture = Fixture::new();
    let root = fixture.root().to_str().expect("UTF-8 fixture path");
    // One listening socket as descriptor 3, but LISTEN_FDS=2. Descriptor 4 must be found
    // closed: had the server opened anything first (signal handling's socket pair), it
    // would take that for the second socket and close it under its owner (which std
    // reports as "IO Safety violation" and aborts).
    let out = run(
        Command::new("python3").args(with_listener_as_fd_3(2, &[root, "--no-log"])),
        RUN_TIMEOUT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started anyway: {}", tail(&stderr));
    assert_eq!(
        stderr,
        "mioserve: cannot use descriptor 4 passed by systemd: Bad file descriptor (os error 9)\n"
    );
}

#[test]
fn a_worker_at_its_cap_leaves_new_connections_on_the_shared_socket_to_the_others() {
    // Two workers share the one socket, each may hold one connection. The kernel wakes
    // one waiting worker per new connection (EPOLLEXCLUSIVE), the first registered one
    // that waits: the worker holding the first client must not take the wake-up for the
    // second, or the second would wait for the first to leave.
    let fixture = Fixture::new();
    let root = fixture.root().to_str().expect("UTF-8 fixture path");
    let args = with_listener_as_fd_3(
        1,
        &[root, "--no-log", "--threads", "2", "--max-connections", "2"],
    );
    let workdir = tempfile::tempdir().expect("server working directory");
    let server = TestServer::spawn_program(workdir, "python3".as_ref(), args);
    for _round in 0..5 {
        let mut first = server.connect();
        assert_hello(&first.get("/hello.txt"));
        let mut second = server.connect();
        second.send(get("/hello.txt"));
        let answered = wait_until(Duration::from_secs(2), || {
            second.stream().set_nonblocking(true).unwrap();
            let mut probe = [0u8; 1];
            let ready = second.stream().peek(&mut probe).is_ok_and(|n| n > 0);
            second.stream().set_nonblocking(false).unwrap();
            ready
        });
        assert!(
            answered,
            "the second client waited while a worker had a free slot"
        );
        assert_hello(&second.read_response(false));
        // Both leave; the workers see the closes before the next round connects.
        drop((first, second));
        std::thread::sleep(Duration::from_millis(100));
    }
}
