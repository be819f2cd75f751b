//! The per-worker cache of small files never serves a stale copy to a request
//! sent after the file changed: inotify drops the entry before the request is
//! answered. Each test changes a file on disk and asks for it again at once,
//! many times, with one and with two workers.

mod support;

use support::*;

const ROUNDS: usize = 60;

fn with_each_worker_count(test: impl Fn(&Fixture, &TestServer)) {
    for threads in ["1", "2"] {
        let fixture = Fixture::new();
        let server = TestServer::start(fixture.root(), &["--threads", threads]);
        test(&fixture, &server);
    }
}

#[test]
fn rewritten_files_are_served_fresh_at_once() {
    with_each_worker_count(|fixture, server| {
        let mut client = server.connect();
        for round in 0..ROUNDS {
            // Same length and (fixture.write pins it) the same mtime every
            // time: only the change notification can tell the versions apart.
            let body = format!("version {round:04}");
            fixture.write("page.html", body.as_bytes());
            let response = client.get("/page.html");
            assert_eq!(response.status, 200);
            assert_eq!(response.body_text(), body, "round {round}");
        }
    });
}

#[test]
fn files_renamed_over_are_served_fresh_at_once() {
    with_each_worker_count(|fixture, server| {
        let mut client = server.connect();
        for round in 0..ROUNDS {
            let body = format!("renamed {round:04}");
            fixture.write("incoming.tmp", body.as_bytes());
            std::fs::rename(fixture.path("incoming.tmp"), fixture.path("page.html")).unwrap();
            assert_eq!(client.get("/page.html").body_text(), body, "round {round}");
        }
    });
}

#[test]
fn directory_indexes_are_served_fresh_and_deletions_seen() {
    with_each_worker_count(|fixture, server| {
        let mut client = server.connect();
        for round in 0..ROUNDS {
            let body = format!("index {round:04}");
            fixture.write("sub/index.html", body.as_bytes());
            assert_eq!(client.get("/sub/").body_text(), body, "round {round}");
        }
        fixture.remove("sub/index.html");
        assert_eq!(client.get("/sub/").status, 403);
    });
}
