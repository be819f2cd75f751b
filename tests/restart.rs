//! Restarts: a new mioserve takes over the port of a running one (`--reuse-port` joins
//! its `SO_REUSEPORT` group), and a restart under load loses no request.
//!
//! The load test runs in a network namespace of its own, where it may set
//! `net.ipv4.tcp_migrate_req = 1` (a per-namespace setting): when the old server closes
//! its listening sockets, the kernel moves the connections still queued on them to the
//! new server's sockets instead of resetting them. It needs root and `ip` (iproute2) and
//! skips, saying why, without them. `MIOSERVE_RESTARTS` sets the number of restarts.
//!
//! One reset is the kernel's and no server can avoid it (docs/deploy.md, "Restarts"): a
//! handshake that completes on an old listener while that listener closes. The kernel
//! checks that the listener is listening when the client's final ACK arrives, builds the
//! connection, and checks again as it queues it (`inet_csk_reqsk_queue_add`); a close
//! that falls between the two checks (a few microseconds) makes it reset the connection
//! (`inet_child_forget`), without trying the migration and without counting a migration
//! failure. The client sees its connection reset before it wrote its request:
//! wrk counts a `write` error. `tcp_send_reset` traced with its stack shows it, on the
//! other core, microseconds after the old worker's `LISTEN -> CLOSE`. So the test allows
//! those, at most one per listener closed, and nothing else: no connection refused, no
//! request without its response, no migration that failed.
//!
//! A second kernel race at the same moment is the server's to avoid, and a read error
//! here would show it back: a plain `close` of a listener gives a connection whose
//! handshake completes during the close the listener's shutdown mark, so that it sends
//! its FIN at birth and resets the request that follows. The server shuts the listeners
//! it bound down before closing them (`listeners::close`; docs/deploy.md, "Restarts").

mod support;

use std::time::Duration;

use support::load::Load;
use support::netns::{Netns, VethLink};
use support::tools::{require, run_ok, skip, tail};
use support::*;

/// Restarts in the load test, unless `MIOSERVE_RESTARTS` says otherwise.
const DEFAULT_RESTARTS: u32 = 20;

/// Pause between restarts, so each server serves some of the load.
const RESTART_INTERVAL: Duration = Duration::from_millis(200);

/// Workers, and so listening sockets, of each server in the load test.
const WORKERS: u32 = 2;

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
    let workers = WORKERS.to_string();
    let args = ["--no-log", "--threads", &workers];
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
    let reports: Vec<_> = loads.into_iter().map(|l| (l.what, l.finish())).collect();
    for (what, report) in &reports {
        assert_eq!(
            report.failures() - report.socket_errors("write"),
            0,
            "{what} load, {restarts} restarts:\n{}\nall reports: {reports:#?}",
            tail(&report.text)
        );
    }
    // Resets before a request was written: the kernel's race (see the module docs).
    let reset_unsent: u64 = reports.iter().map(|(_, r)| r.socket_errors("write")).sum();
    let listener_closes = u64::from(restarts * WORKERS);
    assert!(
        reset_unsent <= listener_closes,
        "{reset_unsent} connections reset before their request, more than the \
         {listener_closes} listener closes can explain: {reports:#?}"
    );
    assert_eq!(migration_failures(ns), 0, "queued connections were reset");
    // The figures docs/deploy.md quotes (`cargo test --test restart -- --nocapture`).
    for (what, report) in &reports {
        eprintln!(
            "{what} load, {restarts} restarts: {}, 0 failed, {} reset before the request",
            report.summary(),
            report.socket_errors("write")
        );
    }
}

/// The namespace's count of connections the kernel could not move off a closed listener
/// (`TcpExtTCPMigrateReqFailure`): each of them was reset.
fn migration_failures(ns: &Netns) -> u64 {
    let counter = "TcpExtTCPMigrateReqFailure";
    let nstat = require("nstat", "iproute2");
    // Absolute values (the namespace is the test's own), without touching nstat's history.
    let out = run_ok(
        ns.command(nstat).args(["-a", "-z", "-s", counter]),
        Duration::from_secs(10),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == counter).then(|| words.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("nstat printed no {counter}: {text}"))
}
