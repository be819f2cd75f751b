//! Restarts: a new mioserve takes over the port of a running one (`--reuse-port` joins
//! its `SO_REUSEPORT` group), and a restart under load loses no request.
//!
//! The load test runs in a network namespace of its own, where it may set
//! `net.ipv4.tcp_migrate_req = 1` (a per-namespace setting): when the old server closes
//! its listening sockets, the kernel moves the connections still queued on them to the
//! new server's sockets instead of resetting them. It needs root and `ip` (iproute2) and
//! skips, saying why, without them. `MIOSERVE_RESTARTS` sets the number of restarts.

mod support;

use std::process::{Child, Command};
use std::time::Duration;

use support::netns::{Netns, VethLink};
use support::tools::{GroupGuard, collect, require, run_ok, skip, spawn_in_group, tail};
use support::*;

/// Restarts in the load test, unless `MIOSERVE_RESTARTS` says otherwise.
const DEFAULT_RESTARTS: u32 = 20;

/// Pause between restarts, so each server serves some of the load.
const RESTART_INTERVAL: Duration = Duration::from_millis(200);

/// How long wrk may take to print its report once asked to stop.
const WRK_REPORT_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn a_port_in_use_is_refused_unless_joined_on_purpose_and_the_new_server_takes_over() {
    let fixture = Fixture::new();
    let root = fixture.root().to_str().expect("UTF-8 fixture path");
    let mut old = TestServer::start(fixture.root(), &["--no-log"]);
    let port = old.addr().port().to_string();

    let refused = run_to_exit(&[root, "--no-log", "--port", &port]);
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("Address already in use")
            && refused.stderr.contains("--reuse-port"),
        "{}",
        refused.stderr
    );

    let new = TestServer::start(
        fixture.root(),
        &["--no-log", "--port", &port, "--reuse-port"],
    );
    assert_eq!(new.addr(), old.addr());
    assert!(old.stop().success(), "{}", old.stderr());
    // Only the new server is left in the group: every connection reaches it.
    for _ in 0..20 {
        assert_hello(&new.connect().get("/hello.txt"));
    }
}

/// One wrk run inside the namespace, stopped with SIGINT (wrk then prints its report).
struct Load {
    what: &'static str,
    wrk: Child,
    _group: GroupGuard,
    stdout: tools::Collected,
}

impl Load {
    fn start(ns: &Netns, what: &'static str, url: &str, extra: &[&str]) -> Load {
        let wrk = require("wrk", "wrk");
        let mut command = ns.command(wrk);
        command
            .args(["-t", "1", "-c", "4", "-d", "600s", "--timeout", "10s"])
            .args(extra)
            .arg(url);
        let mut wrk = spawn_in_group(&mut command);
        let group = GroupGuard::new(&wrk);
        let stdout = collect(wrk.stdout.take().expect("piped stdout"));
        Load {
            what,
            wrk,
            _group: group,
            stdout,
        }
    }

    /// Stops wrk and returns its report.
    fn finish(mut self) -> String {
        let pid = self.wrk.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let exited = wait_until(WRK_REPORT_TIMEOUT, || {
            self.wrk.try_wait().expect("try_wait").is_some()
        });
        assert!(exited, "{}: wrk did not stop", self.what);
        String::from_utf8_lossy(&self.stdout.finish()).into_owned()
    }
}

#[test]
fn restarts_under_keep_alive_and_connection_per_request_load_lose_nothing() {
    let test = "restarts_under_keep_alive_and_connection_per_request_load_lose_nothing";
    let restarts: u32 = std::env::var("MIOSERVE_RESTARTS")
        .ok()
        .map_or(DEFAULT_RESTARTS, |n| {
            n.parse().expect("MIOSERVE_RESTARTS is a number")
        });
    // Declared before the servers: dropped last, after they are killed.
    let link = match VethLink::create() {
        Ok(link) => link,
        Err(reason) => return skip(test, &reason),
    };
    let ns = &link.server;
    run_ok(
        ns.command("sysctl")
            .args(["-w", "net.ipv4.tcp_migrate_req=1"]),
        Duration::from_secs(10),
    );
    let fixture = Fixture::new();
    let args = ["--no-log", "--threads", "2"];
    let mut server = TestServer::start_in_netns(ns, fixture.root(), &args);
    let port = server.addr().port().to_string();
    let url = format!("http://{}/hello.txt", server.addr());
    let loads = [
        Load::start(ns, "keep-alive", &url, &[]),
        Load::start(
            ns,
            "connection per request",
            &url,
            &["-H", "Connection: close"],
        ),
    ];

    for _ in 0..restarts {
        std::thread::sleep(RESTART_INTERVAL);
        // The successor joins the group and is listening once it prints its start line;
        // only then does the predecessor leave.
        let join = [&args[..], &["--port", &port, "--reuse-port"]].concat();
        let successor = TestServer::start_in_netns(ns, fixture.root(), &join);
        assert!(server.stop().success(), "{}", server.stderr());
        server = successor;
    }
    std::thread::sleep(RESTART_INTERVAL);

    // Both reports first, so that a failure shows both.
    let reports: Vec<(&str, String)> = loads.into_iter().map(|l| (l.what, l.finish())).collect();
    for (what, report) in &reports {
        assert!(report.contains(" requests in "), "{what}: {report}");
    }
    for (what, report) in &reports {
        // wrk prints these lines only when something went wrong.
        assert!(
            !report.contains("Socket errors") && !report.contains("Non-2xx"),
            "{what} load, {restarts} restarts:\n{}\nall reports: {reports:#?}",
            tail(report)
        );
    }
    // The figures docs/deploy.md quotes (`cargo test --test restart -- --nocapture`).
    for (what, report) in &reports {
        let total = report.lines().find(|line| line.contains(" requests in "));
        eprintln!(
            "{what} load, {restarts} restarts: {}",
            total.unwrap_or("?").trim()
        );
    }
}
