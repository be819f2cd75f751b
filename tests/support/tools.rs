//! External programs the tests drive: a browser, command-line HTTP clients, load tools and
//! `ip`.
//!
//! Two rules hold for every one of them:
//!
//! - **A missing tool is a failure, not a skip.** [`require`] panics naming the Debian
//!   package to install (CI's `.ci/run` installs them all), so a machine without `wrk` can
//!   never pass the client tests by silently running nothing.
//! - **No child outlives its test.** [`run`] starts the program in a process group of its
//!   own and a [`GroupGuard`] kills the whole group (a browser's renderer and zygote
//!   processes included) when the test is done, times out or panics.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::client::{Response, find};
use super::server::wait_timeout;

/// The full path of `program` found on `PATH`; panics, naming `apt_package`, if there is
/// none.
pub fn require(program: &str, apt_package: &str) -> PathBuf {
    find_on_path(program).unwrap_or_else(|| {
        panic!(
            "`{program}` is not installed (not found on PATH): install the Debian package \
             `{apt_package}` (`apt-get install -y {apt_package}`); CI's .ci/run installs it"
        )
    })
}

/// The first executable file called `program` in a `PATH` directory.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs `command` to completion with its output captured, at most `limit`. On time-out the
/// whole process group is killed and the test fails with what the program printed so far.
/// A nonzero exit is *not* a failure here: callers check `status` themselves, since some
/// answers (curl's "connection refused", wget's 404) are exit codes.
pub fn run(command: &mut Command, limit: Duration) -> Output {
    let what = format!("{command:?}");
    let mut child = spawn_in_group(command.stdin(Stdio::null()));
    let group = GroupGuard::new(&child);
    let stdout = collect(child.stdout.take().expect("piped stdout"));
    let stderr = collect(child.stderr.take().expect("piped stderr"));
    let status = wait_timeout(&mut child, limit);
    // The program is done (or about to be killed); anything it left behind in its group,
    // such as a browser's helper processes, goes with it, which also closes the pipes.
    drop(group);
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        let out = stdout.finish();
        let err = stderr.finish();
        panic!(
            "{what} did not finish within {limit:?}; stdout: {:?}; stderr: {:?}",
            tail(&String::from_utf8_lossy(&out)),
            tail(&String::from_utf8_lossy(&err))
        )
    };
    Output {
        status,
        stdout: stdout.finish(),
        stderr: stderr.finish(),
    }
}

/// [`run`], then panics unless the program exited 0.
pub fn run_ok(command: &mut Command, limit: Duration) -> Output {
    let what = format!("{command:?}");
    let out = run(command, limit);
    assert!(
        out.status.success(),
        "{what} failed ({}); stdout: {:?}; stderr: {:?}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stdout)),
        tail(&String::from_utf8_lossy(&out.stderr))
    );
    out
}

/// Spawns `command` with piped stdout and stderr as the leader of a new process group.
pub fn spawn_in_group(command: &mut Command) -> Child {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"))
}

/// Kills a child's whole process group when dropped. The group id is the child's pid
/// (see [`spawn_in_group`]); `kill(1)` does the signalling, so the tests need no `unsafe`.
/// A group that is already gone makes `kill` fail, which is ignored. While any member
/// lives the kernel never hands its id to a new process, so the signal can only reach
/// the group this test started.
pub struct GroupGuard {
    pgid: u32,
}

impl GroupGuard {
    pub fn new(leader: &Child) -> GroupGuard {
        GroupGuard { pgid: leader.id() }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pgid)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A pipe read to EOF by a background thread.
pub struct Collected {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<()>,
}

/// Reads `pipe` to its end in a background thread.
pub fn collect(mut pipe: impl Read + Send + 'static) -> Collected {
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&bytes);
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    });
    Collected { bytes, reader }
}

impl Collected {
    /// Whether what has been read so far contains `needle`.
    pub fn has_read(&self, needle: &str) -> bool {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).contains(needle)
    }

    /// Everything read, once the pipe has reached EOF. The writer must be gone by now (its
    /// group killed), so this cannot block for long; a reader still stuck after a second
    /// (a grandchild that escaped the group keeps the pipe open) is abandoned and what it
    /// read so far returned.
    pub fn finish(self) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(1);
        while !self.reader.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        std::mem::take(&mut *self.bytes.lock().unwrap())
    }
}

/// The last 2,000 characters of `text`, for failure messages.
pub fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(2000);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// `sha256sum FILE`'s digest (coreutils).
pub fn sha256_file(path: &std::path::Path) -> String {
    require("sha256sum", "coreutils");
    let out = run_ok(Command::new("sha256sum").arg(path), Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout);
    let digest = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(digest.len(), 64, "sha256sum printed {text:?}");
    digest
}

/// Parses one raw HTTP/1.1 response as another client printed it (`curl -i`: head, blank
/// line, body as received) into a [`Response`], with the same strictness as
/// [`Client`]: exact status-line shape, well-formed header lines.
pub fn parse_raw_response(raw: &[u8]) -> Response {
    let head_end = find(raw, b"\r\n\r\n").unwrap_or_else(|| {
        panic!(
            "no end of head in the response {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(600)])
        )
    });
    let head = std::str::from_utf8(&raw[..head_end]).expect("response head is not UTF-8");
    Response {
        body: raw[head_end + 4..].to_vec(),
        ..Response::from_head(head)
    }
}

/// Reports that the calling test skips itself, and why. Written straight to the process's
/// stderr rather than with `eprintln!`, which the test harness captures and shows only for
/// failing tests: a skip must be visible in a plain `cargo test` run.
pub fn skip(test: &str, reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// Checks `curl -v` output: one connection, reused for every URL.
pub fn assert_curl_reused_one_connection(verbose_log: &str) {
    assert_eq!(
        verbose_log.matches("* Connected to").count(),
        1,
        "curl connected more than once: {verbose_log}"
    );
    assert!(
        verbose_log.contains("Re-using existing connection"),
        "curl did not reuse its connection: {verbose_log}"
    );
}
