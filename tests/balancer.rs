//! The proof with real parts (issue 13): three mioserve backends behind HAProxy, each
//! machine a network namespace of its own, on one bridge ([`Lan`]):
//!
//! ```text
//!   client 10.214.0.1 ── wrk ──► haproxy 10.214.0.2:80 ── PROXY v2 + HTTP ──► b1 10.214.0.3:8080
//!                                  round robin, GET /healthz                  b2 10.214.0.4:8080
//!                                  every 150 ms                               b3 10.214.0.5:8080
//! ```
//!
//! Under a constant keep-alive load through HAProxy:
//! - a rolling restart of every backend (SIGTERM with `--drain-delay`, wait for the exit,
//!   start the replacement) fails no request, and HAProxy's own stats show each backend
//!   leave and come back;
//! - a backend killed with SIGKILL is taken out by the health check within a bound set by
//!   the check interval, the failed requests are counted and bounded, the others serve on;
//! - every backend's access log names the client's address, not HAProxy's (the PROXY
//!   protocol header HAProxy sends).
//!
//! The HAProxy configuration is the one docs/deploy.md explains line by line. Needs root,
//! `ip` and `haproxy`; skips, saying why, without root. Everything started is killed and
//! every namespace deleted when a test ends, also when it fails.

mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::load::Load;
use support::netns::{Host, Lan};
use support::tools::{GroupGuard, require, run, skip, tail};
use support::*;

/// The port every backend listens on (each in its own namespace, so they cannot clash).
const BACKEND_PORT: u16 = 8080;

/// The port HAProxy listens on for clients.
const FRONTEND_PORT: u16 = 80;

/// HAProxy's health-check interval (`inter`).
const CHECK_INTERVAL: Duration = Duration::from_millis(150);

/// Failed checks in a row that take a backend out (`fall`), and passed checks that put it
/// back (`rise`).
const FALL: u32 = 2;
const RISE: u32 = 2;

/// `--drain-delay`: long enough for HAProxy to see the 503 `FALL` times with room to
/// spare (2 × 150 ms against 1 s), so the backend is out of rotation before it stops
/// accepting.
const DRAIN_DELAY_SECS: u64 = 1;

/// wrk's connections to HAProxy.
const LOAD_CONNECTIONS: u64 = 8;

/// The backends' names in HAProxy's configuration and stats.
const BACKENDS: [&str; 3] = ["b1", "b2", "b3"];

/// How long HAProxy may take to mark every backend up at the start, or a replacement.
const UP_TIMEOUT: Duration = Duration::from_secs(10);

/// The namespaces of a test, in the order of [`Lan::hosts`].
const ROLES: [&str; 5] = ["client", "haproxy", "b1", "b2", "b3"];

/// HAProxy, the three backends and the client's namespace, on one bridge.
struct Cluster {
    /// One running mioserve per backend (the latest, after restarts).
    backends: Vec<TestServer>,
    /// Access-log lines of backends that have exited, by backend.
    retired_logs: Vec<Vec<String>>,
    haproxy: HaProxy,
    fixture: Fixture,
    /// Declared last: dropped after every process in it is killed.
    lan: Lan,
}

impl Cluster {
    /// Builds the network, starts the backends and HAProxy, and waits until HAProxy sees
    /// every backend up. `None` (after saying why) when the test must skip.
    fn start(test: &str) -> Option<Cluster> {
        require("haproxy", "haproxy");
        let lan = match Lan::create(&ROLES) {
            Ok(lan) => lan,
            Err(reason) => {
                skip(test, &reason);
                return None;
            }
        };
        let fixture = Fixture::new();
        let backend_ips: Vec<Ipv4Addr> = lan.hosts[2..].iter().map(|host| host.ip).collect();
        let haproxy = HaProxy::start(&lan.hosts[1], &backend_ips);
        let mut cluster = Cluster {
            backends: Vec::new(),
            retired_logs: vec![Vec::new(); BACKENDS.len()],
            haproxy,
            fixture,
            lan,
        };
        for index in 0..BACKENDS.len() {
            let server = cluster.start_backend(index);
            cluster.backends.push(server);
        }
        for name in BACKENDS {
            cluster.wait_for_status(name, "UP", UP_TIMEOUT);
        }
        Some(cluster)
    }

    fn client(&self) -> &Host {
        &self.lan.hosts[0]
    }

    fn haproxy_ip(&self) -> Ipv4Addr {
        self.lan.hosts[1].ip
    }

    fn url(&self) -> String {
        format!("http://{}:{FRONTEND_PORT}/hello.txt", self.haproxy_ip())
    }

    /// Starts wrk's [`LOAD_CONNECTIONS`] keep-alive connections to HAProxy, from the client's
    /// namespace.
    fn start_load(&self) -> Load {
        let connections = LOAD_CONNECTIONS.to_string();
        Load::start(
            &self.client().ns,
            "keep-alive through HAProxy",
            &self.url(),
            &["-c", &connections],
        )
    }

    /// Starts backend `index` in its namespace, trusting PROXY headers from HAProxy only.
    fn start_backend(&self, index: usize) -> TestServer {
        let host = &self.lan.hosts[2 + index];
        let bind = host.ip.to_string();
        let port = BACKEND_PORT.to_string();
        let drain_delay = DRAIN_DELAY_SECS.to_string();
        let trusted = format!("{}/32", self.haproxy_ip());
        let args = [
            "--bind",
            &bind,
            "--port",
            &port,
            "--threads",
            "1",
            "--health-path",
            "/healthz",
            "--drain-delay",
            &drain_delay,
            "--proxy-protocol",
            "--trusted-proxy",
            &trusted,
        ];
        TestServer::start_in_netns(&host.ns, self.fixture.root(), &args)
    }

    /// Waits until HAProxy reports `status` for backend `name`; returns how long it took.
    fn wait_for_status(&self, name: &str, status: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        let mut last = String::new();
        let seen = wait_until(limit, || {
            last = self.haproxy.status(name);
            last == status
        });
        assert!(
            seen,
            "HAProxy did not report {name} {status} within {limit:?} (last: {last:?}); \
             haproxy stderr: {}",
            self.haproxy.stderr()
        );
        start.elapsed()
    }

    /// Every access-log line of backend `index` so far: its exited predecessors' and, once
    /// flushed, the running server's.
    fn log_lines(&self, index: usize) -> Vec<String> {
        let mut lines = self.retired_logs[index].clone();
        lines.extend(self.backends[index].log_lines());
        lines
    }

    /// Asserts that every backend answered requests and logged the client's address, the
    /// one HAProxy's PROXY header names, on every line.
    fn assert_logs_name_the_client(&self) {
        let client = format!("{} ", self.client().ip);
        for (index, name) in BACKENDS.iter().enumerate() {
            let lines = self.log_lines(index);
            assert!(!lines.is_empty(), "{name} logged nothing");
            let other = lines.iter().find(|line| !line.starts_with(&client));
            assert!(
                other.is_none(),
                "{name}: a line without the client's address {client:?}: {other:?}"
            );
        }
    }
}

/// HAProxy in its namespace, with the configuration written by [`haproxy_config`].
struct HaProxy {
    /// The configuration and the stats socket.
    dir: tempfile::TempDir,
    child: Child,
    _group: GroupGuard,
}

impl HaProxy {
    fn start(host: &Host, backends: &[Ipv4Addr]) -> HaProxy {
        let dir = tempfile::tempdir().expect("HAProxy directory");
        let config = dir.path().join("haproxy.cfg");
        let socket = dir.path().join("stats.sock");
        std::fs::write(&config, haproxy_config(host.ip, backends, &socket)).unwrap();
        let haproxy = require("haproxy", "haproxy");
        let checked = run(
            Command::new(&haproxy).arg("-c").arg("-f").arg(&config),
            Duration::from_secs(10),
        );
        assert!(
            checked.status.success(),
            "haproxy -c: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
        // -db: stay in the foreground, in the group the guard kills. Its messages go to a
        // file that failure messages quote.
        let stderr = File::create(dir.path().join("stderr")).unwrap();
        let child = host
            .ns
            .command(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .expect("spawn haproxy");
        let group = GroupGuard::new(&child);
        let haproxy = HaProxy {
            dir,
            child,
            _group: group,
        };
        let listening = wait_until(Duration::from_secs(10), || haproxy.socket().exists());
        assert!(listening, "HAProxy did not start: {}", haproxy.stderr());
        haproxy
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("stats.sock")
    }

    /// Backend `name`'s status in HAProxy's `show stat` (`UP`, `DOWN`, `UP 1/2` while
    /// going down, `DOWN 1/2` while coming back, ...); empty if HAProxy did not answer.
    fn status(&self, name: &str) -> String {
        self.stat_field(name, "status").unwrap_or_default()
    }

    /// One field of backend `name`'s row in `show stat` (CSV with a `# ` header line).
    fn stat_field(&self, name: &str, field: &str) -> Option<String> {
        let mut socket = UnixStream::connect(self.socket()).ok()?;
        socket.write_all(b"show stat\n").ok()?;
        let mut csv = String::new();
        socket.read_to_string(&mut csv).ok()?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        let column = header.iter().position(|h| *h == field)?;
        lines
            .map(|line| line.split(',').collect::<Vec<_>>())
            .find(|row| row.first() == Some(&"static") && row.get(1) == Some(&name))
            .and_then(|row| row.get(column).map(|value| value.to_string()))
    }

    /// What HAProxy has printed so far (warnings, alerts).
    fn stderr(&self) -> String {
        let printed = std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default();
        tail(&printed).to_owned()
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HAProxy configuration of the test, as docs/deploy.md shows and explains it.
fn haproxy_config(listen: Ipv4Addr, backends: &[Ipv4Addr], socket: &Path) -> String {
    let inter = CHECK_INTERVAL.as_millis();
    let servers: String = BACKENDS
        .iter()
        .zip(backends)
        .map(|(name, ip)| format!("    server {name} {ip}:{BACKEND_PORT}\n"))
        .collect();
    format!(
        "global
    stats socket {socket} mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend web
    bind {listen}:{FRONTEND_PORT}
    default_backend static

backend static
    balance roundrobin
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host backend
    http-check expect status 200
    default-server check inter {inter}ms fall {FALL} rise {RISE} send-proxy-v2
{servers}",
        socket = socket.display(),
    )
}

#[test]
fn a_rolling_restart_behind_haproxy_fails_no_request() {
    let test = "a_rolling_restart_behind_haproxy_fails_no_request";
    let Some(mut cluster) = Cluster::start(test) else {
        return;
    };
    let load = cluster.start_load();
    std::thread::sleep(Duration::from_millis(500));
    let mut timings = Vec::new();
    for (index, name) in BACKENDS.iter().enumerate() {
        let signalled = Instant::now();
        cluster.backends[index].signal("TERM");
        // HAProxy takes it out while it still accepts: within the drain delay.
        let out = cluster.wait_for_status(name, "DOWN", Duration::from_secs(DRAIN_DELAY_SECS));
        let status = cluster.backends[index].wait_exit(EXIT_TIMEOUT);
        assert!(status.success(), "{name}: {status:?}");
        let exited = signalled.elapsed();
        let retired = cluster.backends[index].log_lines();
        cluster.retired_logs[index].extend(retired);
        let replacement = cluster.start_backend(index);
        cluster.backends[index] = replacement;
        let back = cluster.wait_for_status(name, "UP", UP_TIMEOUT);
        timings.push((name, out, exited, back));
    }
    std::thread::sleep(Duration::from_millis(500));
    let report = load.finish();
    for (name, out, exited, back) in &timings {
        eprintln!(
            "{name}: out of rotation {out:?} after SIGTERM, exited after {exited:?}, \
             back up {back:?} after its replacement started"
        );
    }
    eprintln!(
        "rolling restart of {} backends: {}, {} failed",
        BACKENDS.len(),
        report.summary(),
        report.failures()
    );
    assert_eq!(report.failures(), 0, "{}", tail(&report.text));
    for (name, ..) in &timings {
        assert_eq!(cluster.haproxy.status(name), "UP");
    }
    cluster.backends.iter_mut().for_each(|server| {
        assert!(server.stop().success());
    });
    cluster.assert_logs_name_the_client();
}

#[test]
fn a_killed_backend_is_taken_out_by_the_health_check_and_the_others_serve_on() {
    let test = "a_killed_backend_is_taken_out_by_the_health_check_and_the_others_serve_on";
    let Some(mut cluster) = Cluster::start(test) else {
        return;
    };
    let load = cluster.start_load();
    // Long enough for the backend to write its first log lines (once a second).
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Instant::now();
    cluster.backends[0].signal("KILL");
    // A dead backend refuses the check's connection at once: `FALL` checks, each up to
    // one interval away, take it out. Allow twice that for a busy machine.
    let bound = CHECK_INTERVAL * (FALL + 1) * 2;
    let out = cluster.wait_for_status(BACKENDS[0], "DOWN", Duration::from_secs(5));
    assert!(out <= bound, "taken out after {out:?}, more than {bound:?}");
    let _ = cluster.backends[0].wait_exit(EXIT_TIMEOUT);
    std::thread::sleep(Duration::from_secs(1));
    let report = load.finish();
    let since_kill = killed.elapsed();
    // Requests HAProxy sent to the dead backend before it was out are retried on another
    // one (`retry-on conn-failure empty-response`, `option redispatch`). Only a response
    // already under way when the process died cannot be: at most one per connection.
    eprintln!(
        "SIGKILL of one of {} backends: out of rotation after {out:?}; {}, {} failed \
         (bound {LOAD_CONNECTIONS}), over {since_kill:?} since the kill",
        BACKENDS.len(),
        report.summary(),
        report.failures()
    );
    assert!(
        report.failures() <= LOAD_CONNECTIONS,
        "{} failed: {}",
        report.failures(),
        tail(&report.text)
    );
    // The others serve on, every one of them.
    let curl = require("curl", "curl");
    for _ in 0..6 {
        let out = run(
            cluster
                .client()
                .ns
                .command(&curl)
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(cluster.url()),
            Duration::from_secs(10),
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    }
    let retired = cluster.backends[0].log_lines();
    cluster.retired_logs[0].extend(retired);
    for server in &mut cluster.backends[1..] {
        assert!(server.stop().success());
    }
    cluster.assert_logs_name_the_client();
}
