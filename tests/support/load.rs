//! Constant load from `wrk` while a test restarts or kills servers, and what wrk reports
//! about it afterwards.
//!
//! wrk runs until it is stopped (`-d 600s`), so the load lasts exactly as long as the
//! test's scenario; SIGINT makes it print its report. It counts every failure a client
//! can see: connections refused, requests that could not be written because the
//! connection was reset first, reads that met an end of stream or a reset instead of a
//! response (`Socket errors: connect N, read N, write N, timeout N`), and answers other
//! than 2xx or 3xx (`Non-2xx or 3xx responses: N`). It prints those lines only when the
//! count is not zero.

use std::process::{Child, Command};
use std::time::Duration;

use super::netns::Netns;
use super::server::wait_until;
use super::tools::{self, GroupGuard, collect, require, spawn_in_group};

/// How long wrk may take to print its report once asked to stop.
const WRK_REPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long wrk may take to start (print its `Running ...` line).
const WRK_START_TIMEOUT: Duration = Duration::from_secs(10);

/// One wrk run inside a namespace, killed with its group if the test ends first.
pub struct Load {
    /// What this load is, for messages ("keep-alive", ...).
    pub what: &'static str,
    wrk: Child,
    _group: GroupGuard,
    stdout: tools::Collected,
}

impl Load {
    /// Starts wrk in `ns` against `url` with one thread and 4 connections, `extra`
    /// arguments after those (a later `-c` wins), and waits until it runs. wrk's stdout
    /// is made line-buffered (`stdbuf -oL`) so that its `Running ...` line shows when it
    /// has set up its SIGINT handler: a SIGINT before that would kill it with no report.
    pub fn start(ns: &Netns, what: &'static str, url: &str, extra: &[&str]) -> Load {
        let wrk = require("wrk", "wrk");
        let mut command = ns.command("stdbuf");
        command
            .arg("-oL")
            .arg(wrk)
            .args(["-t", "1", "-c", "4", "-d", "600s", "--timeout", "10s"])
            .args(extra)
            .arg(url);
        let mut wrk = spawn_in_group(&mut command);
        let group = GroupGuard::new(&wrk);
        let stdout = collect(wrk.stdout.take().expect("piped stdout"));
        let stderr = collect(wrk.stderr.take().expect("piped stderr"));
        let running = wait_until(WRK_START_TIMEOUT, || stdout.has_read("Running "));
        if !running {
            let _ = wrk.kill();
            let _ = wrk.wait();
            panic!(
                "{what}: wrk did not start within {WRK_START_TIMEOUT:?}: {:?} {:?}",
                String::from_utf8_lossy(&stdout.finish()),
                String::from_utf8_lossy(&stderr.finish())
            );
        }
        Load {
            what,
            wrk,
            _group: group,
            stdout,
        }
    }

    /// Stops wrk and returns its report.
    pub fn finish(mut self) -> WrkReport {
        let pid = self.wrk.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let exited = wait_until(WRK_REPORT_TIMEOUT, || {
            self.wrk.try_wait().expect("try_wait").is_some()
        });
        assert!(exited, "{}: wrk did not stop", self.what);
        let text = String::from_utf8_lossy(&self.stdout.finish()).into_owned();
        assert!(text.contains(" requests in "), "{}: {text}", self.what);
        WrkReport { text }
    }
}

/// What wrk printed when it stopped.
#[derive(Debug)]
pub struct WrkReport {
    pub text: String,
}

impl WrkReport {
    /// The summary line, e.g. `166351 requests in 6.21s, 41.7MB read`.
    pub fn summary(&self) -> &str {
        self.line_with(" requests in ").unwrap_or("?").trim()
    }

    /// Responses received (wrk counts every complete response, whatever its status).
    pub fn requests(&self) -> u64 {
        first_number(self.summary())
    }

    /// Every request that failed: socket errors of each kind, and answers that were not
    /// 2xx or 3xx.
    pub fn failures(&self) -> u64 {
        let socket_errors: u64 = ["connect", "read", "write", "timeout"]
            .into_iter()
            .map(|kind| self.socket_errors(kind))
            .sum();
        let non_2xx = self.line_with("Non-2xx or 3xx").map_or(0, last_number);
        socket_errors + non_2xx
    }

    /// wrk's count of one kind of socket error: `connect`, `read`, `write` (the connection
    /// was reset before the request was written) or `timeout`.
    pub fn socket_errors(&self, kind: &str) -> u64 {
        let Some((_, counts)) = self
            .line_with("Socket errors:")
            .and_then(|line| line.split_once(':'))
        else {
            return 0;
        };
        counts
            .split(',')
            .filter_map(|count| count.trim().split_once(' '))
            .find(|(name, _)| *name == kind)
            .map_or(0, |(_, n)| n.parse().unwrap_or(0))
    }

    fn line_with(&self, needle: &str) -> Option<&str> {
        self.text.lines().find(|line| line.contains(needle))
    }
}

fn first_number(text: &str) -> u64 {
    let digits: String = text
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(0)
}

fn last_number(text: &str) -> u64 {
    text.split_whitespace()
        .last()
        .and_then(|word| word.parse().ok())
        .unwrap_or(0)
}
