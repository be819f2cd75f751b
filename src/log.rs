//! The access log: one line per answered request, in the format
//! `--log-format` names, where it goes, and how it follows a rotation.
//!
//! ## Formats
//! `common` (the default) is the Common Log Format:
//!
//! ```text
//! 127.0.0.1 - - [18/Apr/2023:08:32:14 +0000] "GET /index.html HTTP/1.1" 200 1234
//! client      time (UTC)                      request line            status body bytes
//! ```
//!
//! `combined` is the Combined Log Format, Apache's and nginx's default, which
//! every log analyser reads (GoAccess's `COMBINED`, AWStats, …): the same,
//! then the `Referer` and `User-Agent` values in quotes, or `"-"` for a
//! header the request did not have:
//!
//! ```text
//! 127.0.0.1 - - [18/Apr/2023:08:32:14 +0000] "GET / HTTP/1.1" 200 1234 "http://a/" "curl/8.5.0"
//! ```
//!
//! The two values are looked up only when such a line is written
//! ([`logged_headers`], on the request head, which is still in the
//! connection's input buffer), so `common` costs what it did before the other
//! formats existed.
//!
//! In both, every quoted byte that could break the line is written as `\xHH`,
//! as nginx does: `"`, `\`, control bytes and bytes outside ASCII. A client
//! can put anything in its request line and headers; it cannot forge a line
//! or a field.
//!
//! `json` writes one object per line with the combined format's facts, for
//! `jq` and log pipelines:
//!
//! ```text
//! {"time":"2023-04-18T08:32:14Z","client":"127.0.0.1","request":"GET / HTTP/1.1",
//!  "status":200,"bytes":1234,"referer":null,"user_agent":"curl/8.5.0"}
//! ```
//!
//! (one line in the log). `time` is RFC 3339 in UTC; `request` is the request
//! line as sent; `referer` and `user_agent` are `null` when absent. Strings
//! are escaped ([`crate::json`]) as RFC 8259 requires (`\"`, `\\`, control characters as `\n`,
//! `\r`, `\t` or `\u00XX`, and the C1 controls and DEL too, so that the line
//! is safe on a terminal). Bytes that are not UTF-8 cannot be written in JSON
//! at all; each invalid sequence becomes U+FFFD, written `\ufffd` (the
//! replacement `String::from_utf8_lossy` makes). Use `combined` to keep such
//! bytes exactly.
//!
//! ## Where lines go
//! To standard output by default (`--log -`, like `python3 -m http.server`'s
//! request lines on the terminal), appended to a file with `--log PATH`, or
//! nowhere with `--no-log`. Standard output carries nothing else: the start
//! line, counters and errors all go to stderr.
//!
//! ## Buffering
//! Logging must never slow serving down, and should not lose a line. So each worker
//! formats its lines into its own buffer, with no lock and no allocation (the
//! buffer is reserved at start and reused), and writes the whole buffer with a
//! single `write`: as soon as it holds [`LOG_BUFFER_FLUSH_BYTES`], on
//! shutdown, and otherwise when its first line has waited the log's flush
//! delay. For a regular file that delay is [`LOG_FLUSH_INTERVAL`]: one write
//! a second per busy worker, landing in the page cache. For a terminal, pipe
//! or socket (decided once, by `fstat`, when the log is opened) it is zero:
//! the worker writes at the end of every loop iteration that recorded a line,
//! since someone is watching and expects a line per request at once.
//!
//! ## A reader that stops reading
//! A terminal under Ctrl-S, a pipe into a stalled program or a dead log
//! collector stops taking lines, and a blocking write would freeze the worker
//! and every connection it holds. So when serving and losing lines conflict,
//! serving wins: a terminal, pipe or socket is never written with a call
//! that can block. A terminal or pipe is opened again through
//! `/proc/self/fd/1` with `O_NONBLOCK`, a new open file description of the
//! same terminal or pipe, so that the shell's own description stays as it
//! was; a socket (journald's standard output) is written with `send` and
//! `MSG_DONTWAIT`. Lines the reader does not take stay buffered and are
//! tried again [`LOG_STALLED_RETRY`] later; while the backlog holds
//! [`LOG_BACKLOG_BYTES`] (per worker), new lines are dropped, counted
//! (`log_lines_dropped` in the counters) and reported once on stderr. Writes
//! to a pipe go out in pieces of whole lines of at most `PIPE_BUF` bytes,
//! which the kernel writes whole or not at all, so lines of different
//! workers never interleave (a single line longer than that may). Lines still
//! buffered when the server exits are lost. A regular file is written with a
//! plain blocking `write`, as the page cache takes it at once.
//!
//! A file is opened with `O_APPEND`, which makes the kernel position each
//! write at the end of the file atomically; every write holds only whole
//! lines, so lines from different workers never interleave, and after a
//! `copytruncate` rotation the next write starts at offset zero instead of
//! leaving a hole of zeros where the old content was.
//!
//! ## Reopening (SIGHUP)
//! logrotate's `create` method renames the file and signals the server to
//! open the path again. The main thread does the opening ([`SharedLog::reopen`])
//! and publishes the new file in a slot shared with the workers, then wakes
//! them. A worker looks at the slot only when woken, never per request
//! ([`AccessLog::switch_to_current`]): it writes what it buffered to the old
//! file, then switches. The old file is closed when the last worker has let
//! go of it. No line is lost or written twice: every line goes to exactly one
//! of the two files. If the path cannot be opened, the old file is kept.
//! Standard output is never reopened.
//!
//! A write error (disk full, file removed) is reported once on stderr, for the
//! whole process (the workers share one flag, touched only on that error
//! path); the lines of that batch are dropped and serving goes on.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::ascii::{push_decimal, push_hex_byte, push_ip};
use crate::clock::LogTime;
use crate::config::{
    LOG_BACKLOG_BYTES, LOG_BUFFER_FLUSH_BYTES, LOG_FLUSH_INTERVAL, LOG_STALLED_RETRY, LogFormat,
    LogTarget,
};
use crate::files::Inode;
use crate::http::Status;
use crate::http::request::{LoggedHeaders, logged_headers};
use crate::json;
use crate::sys;

/// One open access-log destination, and what a worker needs to know about it.
#[derive(Debug)]
pub struct LogFile {
    /// The open file (or a duplicate of standard output). Every worker writes
    /// to it through a shared reference: `write` needs no exclusive access.
    file: File,
    /// Which file it is, so that the document root never serves it.
    inode: Inode,
    /// How long a worker holds a line before writing it.
    flush_delay: Duration,
    /// How lines are written to it.
    kind: SinkKind,
}

/// How lines are written to a log, decided once when it is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SinkKind {
    /// A regular file: a blocking `write` of the whole buffer.
    File,
    /// A terminal or pipe, opened nonblocking: whatever it takes now.
    NonBlocking,
    /// A socket: `send` with `MSG_DONTWAIT`, whatever it takes now.
    Socket,
}

impl LogFile {
    /// Opens `path` for appending, creating it (mode 0666 less the umask) if
    /// it does not exist.
    pub fn open(path: &Path) -> io::Result<LogFile> {
        LogFile::new(OpenOptions::new().append(true).create(true).open(path)?)
    }

    /// Standard output, duplicated so that dropping the log never closes
    /// descriptor 1; a terminal or pipe is opened again, nonblocking (see
    /// the module docs).
    pub fn stdout() -> io::Result<LogFile> {
        let stdout = File::from(io::stdout().as_fd().try_clone_to_owned()?);
        let file_type = stdout.metadata()?.file_type();
        if file_type.is_fifo() || file_type.is_char_device() {
            let reopened = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(format!("/proc/self/fd/{}", stdout.as_raw_fd()))?;
            return LogFile::new(reopened);
        }
        LogFile::new(stdout)
    }

    /// Learns what `file` is: a regular file gets batched blocking writes,
    /// anything else (a terminal, a pipe, a socket) prompt nonblocking ones.
    fn new(file: File) -> io::Result<LogFile> {
        let metadata = file.metadata()?;
        let (flush_delay, kind) = if metadata.is_file() {
            (LOG_FLUSH_INTERVAL, SinkKind::File)
        } else if metadata.file_type().is_socket() {
            (Duration::ZERO, SinkKind::Socket)
        } else {
            (Duration::ZERO, SinkKind::NonBlocking)
        };
        Ok(LogFile {
            inode: Inode::of(&metadata),
            flush_delay,
            kind,
            file,
        })
    }

    /// Writes as much of `lines` (whole lines) as the log takes now and
    /// returns how many bytes that was: all of them for a regular file.
    fn write_lines(&self, lines: &[u8]) -> io::Result<usize> {
        if self.kind == SinkKind::File {
            return (&self.file).write_all(lines).map(|()| lines.len());
        }
        let mut written = 0;
        while written < lines.len() {
            let piece = atomic_piece(&lines[written..]);
            let result = match self.kind {
                SinkKind::Socket => sys::send_nonblocking(&self.file, piece),
                _ => (&self.file).write(piece),
            };
            match result {
                Ok(n) => written += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            }
        }
        Ok(written)
    }
}

/// The longest start of `lines` that a pipe writes whole or not at all: the
/// whole lines within `PIPE_BUF` bytes, or the first line if it alone is
/// longer.
fn atomic_piece(lines: &[u8]) -> &[u8] {
    let window = &lines[..lines.len().min(libc::PIPE_BUF)];
    let end = match window.iter().rposition(|&byte| byte == b'\n') {
        Some(newline) => newline + 1,
        None => lines
            .iter()
            .position(|&byte| byte == b'\n')
            .map_or(lines.len(), |newline| newline + 1),
    };
    &lines[..end]
}

/// The access log's current file, shared by the main thread, which replaces
/// it on a reopen, and the workers, which pick it up when woken.
#[derive(Debug)]
pub struct SharedLog {
    /// The path opened again on a reopen; `None` for standard output.
    path: Option<PathBuf>,
    /// How lines are written; fixed for the life of the server.
    format: LogFormat,
    /// The file workers are to write to. A lock is fine here: it is taken
    /// on a reopen and when a worker is woken, never per request.
    current: Mutex<Arc<LogFile>>,
}

impl SharedLog {
    /// Opens the log `target` names, for lines in `format`; `None` for
    /// `--no-log`.
    pub fn open(target: &LogTarget, format: LogFormat) -> io::Result<Option<SharedLog>> {
        let (path, file) = match target {
            LogTarget::Off => return Ok(None),
            LogTarget::Stdout => (None, LogFile::stdout()?),
            LogTarget::File(path) => (Some(path.clone()), LogFile::open(path)?),
        };
        Ok(Some(SharedLog {
            path,
            format,
            current: Mutex::new(Arc::new(file)),
        }))
    }

    /// Opens the log's path again and makes the new file current; the
    /// workers switch to it when next woken. On an error the old file stays
    /// current. `None` for standard output, which has no path to reopen.
    pub fn reopen(&self) -> Option<io::Result<()>> {
        let path = self.path.as_deref()?;
        Some(LogFile::open(path).map(|file| *self.lock() = Arc::new(file)))
    }

    /// The current file.
    fn current(&self) -> Arc<LogFile> {
        Arc::clone(&self.lock())
    }

    /// The slot. A panic elsewhere cannot leave it half-written (it holds
    /// one pointer), so a poisoned lock is used as is.
    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<LogFile>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One line's worth of facts.
#[derive(Clone, Copy, Debug)]
pub struct LogEntry<'a> {
    /// The client's address.
    pub client: IpAddr,
    /// The worker's cached forms of the current second.
    pub time: LogTime<'a>,
    /// The request line as received.
    pub request_line: &'a [u8],
    /// The request head as received, where the formats that quote header
    /// values find them ([`logged_headers`]). For a refused head, whatever
    /// bytes it was refused for.
    pub head: &'a [u8],
    /// The status answered.
    pub status: Status,
    /// Body bytes actually sent (less than announced if the client left).
    pub body_bytes: u64,
}

/// A worker's access-log buffer and the file it writes to.
#[derive(Debug)]
pub struct AccessLog {
    /// Where the main thread publishes the current file; `None` with
    /// `--no-log`.
    shared: Option<Arc<SharedLog>>,
    /// The file this worker writes to: the shared one as of its last
    /// [`AccessLog::switch_to_current`]. `None` until then, and with
    /// `--no-log`: lines are not even formatted.
    sink: Option<Arc<LogFile>>,
    /// The sink's flush delay, copied here so recording a line reads only
    /// this worker's own memory.
    flush_delay: Duration,
    /// The shared log's format, copied here for the same reason.
    format: LogFormat,
    /// Formatted lines not yet written.
    lines: Vec<u8>,
    /// When the buffer must be written at the latest.
    flush_due: Option<Instant>,
    /// Whether a write error or a dropped line was already reported, by any
    /// worker.
    error_reported: Arc<AtomicBool>,
    /// Lines dropped because the backlog was full.
    dropped_lines: u64,
}

impl AccessLog {
    /// A worker's log writing to `shared`'s current file once
    /// [`AccessLog::switch_to_current`] is called, or discarding everything
    /// with `None`. `error_reported` is shared by all workers so that a
    /// failing log is reported once.
    pub fn new(shared: Option<Arc<SharedLog>>, error_reported: Arc<AtomicBool>) -> AccessLog {
        AccessLog {
            lines: Vec::with_capacity(if shared.is_some() {
                LOG_BUFFER_FLUSH_BYTES
            } else {
                0
            }),
            format: shared
                .as_ref()
                .map_or_else(LogFormat::default, |shared| shared.format),
            shared,
            sink: None,
            flush_delay: LOG_FLUSH_INTERVAL,
            flush_due: None,
            error_reported,
            dropped_lines: 0,
        }
    }

    /// Starts writing to the shared log's current file if this worker does
    /// not already, writing what it buffered to the old file first. Returns
    /// the new file's inode, for the worker to hide from the document root.
    /// Called at start and whenever the worker is woken (a reopen wakes it);
    /// it takes the shared slot's lock, so never per request.
    pub fn switch_to_current(&mut self) -> Option<Inode> {
        let current = self.shared.as_ref()?.current();
        if self
            .sink
            .as_ref()
            .is_some_and(|sink| Arc::ptr_eq(sink, &current))
        {
            return None;
        }
        self.flush();
        self.flush_delay = current.flush_delay;
        let inode = current.inode;
        self.sink = Some(current);
        Some(inode)
    }

    /// Formats one line into the buffer.
    pub fn record(&mut self, entry: &LogEntry<'_>, now: Instant) {
        if self.sink.is_none() {
            return;
        }
        let start = self.lines.len();
        match self.format {
            LogFormat::Common => entry.write_common(&mut self.lines),
            LogFormat::Combined => entry.write_combined(&mut self.lines),
            LogFormat::Json => entry.write_json(&mut self.lines),
        }
        self.lines.push(b'\n');
        if self.lines.len() > LOG_BACKLOG_BYTES {
            self.drop_line(start);
            return;
        }
        self.flush_due.get_or_insert(now + self.flush_delay);
        if self.lines.len() >= LOG_BUFFER_FLUSH_BYTES {
            self.flush();
        }
    }

    /// Drops the line just formatted from `start` on: the reader has left
    /// the whole backlog untaken.
    #[cold]
    fn drop_line(&mut self, start: usize) {
        self.lines.truncate(start);
        self.dropped_lines += 1;
        if !self.error_reported.swap(true, Ordering::Relaxed) {
            eprintln!(
                "mioserve: the access log's reader is not reading; lines are being dropped (log_lines_dropped)"
            );
        }
    }

    /// Lines dropped so far because the reader left the backlog full.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped_lines
    }

    /// When the buffered lines must be written, if there are any.
    pub fn flush_due(&self) -> Option<Instant> {
        self.flush_due
    }

    /// Writes the buffer if it is due.
    pub fn flush_if_due(&mut self, now: Instant) {
        if self.flush_due.is_some_and(|due| due <= now) {
            self.flush();
        }
    }

    /// Writes the buffered lines, all of them unless a terminal, pipe or
    /// socket takes only some: the rest is tried again [`LOG_STALLED_RETRY`]
    /// later.
    pub fn flush(&mut self) {
        self.flush_due = None;
        if self.lines.is_empty() {
            return;
        }
        let Some(sink) = &self.sink else {
            self.lines.clear();
            return;
        };
        match sink.write_lines(&self.lines) {
            Ok(written) if written == self.lines.len() => self.lines.clear(),
            Ok(written) => {
                self.lines.drain(..written);
                self.flush_due = Some(Instant::now() + LOG_STALLED_RETRY);
            }
            Err(error) => {
                if !self.error_reported.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "mioserve: cannot write the access log ({error}); lines are being dropped"
                    );
                }
                self.lines.clear();
            }
        }
    }
}

impl LogEntry<'_> {
    /// `client - - [time] "request line" status bytes`.
    fn write_common(&self, out: &mut Vec<u8>) {
        push_ip(out, self.client);
        out.extend_from_slice(b" - - ");
        out.extend_from_slice(self.time.common);
        out.extend_from_slice(b" \"");
        escape_into(out, self.request_line);
        out.extend_from_slice(b"\" ");
        push_decimal(out, u64::from(self.status.code()));
        out.push(b' ');
        push_decimal(out, self.body_bytes);
    }

    /// The common line, then `"referer" "user agent"`.
    fn write_combined(&self, out: &mut Vec<u8>) {
        self.write_common(out);
        let LoggedHeaders {
            referer,
            user_agent,
        } = logged_headers(self.head);
        for value in [referer, user_agent] {
            out.extend_from_slice(b" \"");
            match value {
                Some(value) => escape_into(out, value),
                None => out.push(b'-'),
            }
            out.push(b'"');
        }
    }

    /// `{"time":…,"client":…,"request":…,"status":…,"bytes":…,"referer":…,"user_agent":…}`.
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"time\":\"");
        out.extend_from_slice(self.time.rfc3339);
        out.extend_from_slice(b"\",\"client\":\"");
        push_ip(out, self.client);
        out.extend_from_slice(b"\",\"request\":");
        json::push_string(out, self.request_line);
        out.extend_from_slice(b",\"status\":");
        push_decimal(out, u64::from(self.status.code()));
        out.extend_from_slice(b",\"bytes\":");
        push_decimal(out, self.body_bytes);
        let LoggedHeaders {
            referer,
            user_agent,
        } = logged_headers(self.head);
        for (name, value) in [
            (&b",\"referer\":"[..], referer),
            (b",\"user_agent\":", user_agent),
        ] {
            out.extend_from_slice(name);
            match value {
                Some(value) => json::push_string(out, value),
                None => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
    }
}

/// Appends `raw` with every byte that could break the line's format (quotes,
/// backslashes, control and non-ASCII bytes) written as `\xHH`, as nginx
/// does: a client cannot forge log lines. Runs of plain bytes are copied
/// whole: a request line rarely has any byte to escape.
fn escape_into(out: &mut Vec<u8>, raw: &[u8]) {
    let is_plain = |byte: u8| (b' '..=b'~').contains(&byte) && byte != b'"' && byte != b'\\';
    let mut rest = raw;
    while let Some(at) = rest.iter().position(|&byte| !is_plain(byte)) {
        out.extend_from_slice(&rest[..at]);
        let byte = rest[at];
        out.extend_from_slice(br"\x");
        push_hex_byte(out, byte);
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log appending to `access.log` in a new temporary directory, with
    /// the directory (removed when dropped) and the path.
    fn file_log() -> (tempfile::TempDir, PathBuf, Arc<SharedLog>, AccessLog) {
        file_log_in(LogFormat::Common)
    }

    fn file_log_in(format: LogFormat) -> (tempfile::TempDir, PathBuf, Arc<SharedLog>, AccessLog) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let shared = SharedLog::open(&LogTarget::File(path.clone()), format)
            .unwrap()
            .map(Arc::new)
            .unwrap();
        let mut log = AccessLog::new(Some(Arc::clone(&shared)), Arc::default());
        assert!(log.switch_to_current().is_some(), "the first switch");
        assert_eq!(log.switch_to_current(), None, "already current");
        (dir, path, shared, log)
    }

    fn entry(request_line: &[u8]) -> LogEntry<'_> {
        LogEntry {
            client: "127.0.0.1".parse().unwrap(),
            time: LogTime {
                common: b"[18/Apr/2023:08:32:14 +0000]",
                rfc3339: b"2023-04-18T08:32:14Z",
            },
            request_line,
            head: request_line,
            status: Status::Ok,
            body_bytes: 1234,
        }
    }

    #[test]
    fn formats_common_log_format_and_escapes() {
        let (_dir, path, _shared, mut log) = file_log();
        let now = Instant::now();
        let entry = entry(b"GET /index.html HTTP/1.1");
        log.record(&entry, now);
        log.record(
            &LogEntry {
                client: "::1".parse().unwrap(),
                request_line: b"GET /\"a\"\x1b\n HTTP/1.1",
                status: Status::BadRequest,
                body_bytes: 0,
                ..entry
            },
            now,
        );
        assert_eq!(log.flush_due(), Some(now + LOG_FLUSH_INTERVAL));
        log.flush_if_due(now);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        log.flush_if_due(now + LOG_FLUSH_INTERVAL);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "127.0.0.1 - - [18/Apr/2023:08:32:14 +0000] \"GET /index.html HTTP/1.1\" 200 1234\n\
             ::1 - - [18/Apr/2023:08:32:14 +0000] \"GET /\\x22a\\x22\\x1B\\x0A HTTP/1.1\" 400 0\n"
        );
        assert_eq!(log.flush_due(), None);
    }

    /// The lines `format` gives `entries`.
    fn lines_in(format: LogFormat, entries: &[LogEntry<'_>]) -> String {
        let (_dir, path, _shared, mut log) = file_log_in(format);
        for entry in entries {
            log.record(entry, Instant::now());
        }
        log.flush();
        std::fs::read_to_string(&path).unwrap()
    }

    /// A request from a browser; one with every kind of byte a header value
    /// may hold that needs escaping (quotes, a backslash, a tab, UTF-8, a C1
    /// control, bytes that are not UTF-8) and an empty `Referer`; and a
    /// refused head whose request line holds control bytes.
    fn browser_and_hostile() -> [LogEntry<'static>; 3] {
        let browser = LogEntry {
            head: b"GET /a.css HTTP/1.1\r\nHost: a\r\nReferer: http://localhost:8000/\r\n\
                    User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0\r\n\r\n",
            ..entry(b"GET /a.css HTTP/1.1")
        };
        let hostile_headers = LogEntry {
            client: "::1".parse().unwrap(),
            head: b"GET /x HTTP/1.1\r\nReferer:\r\n\
                    User-Agent: a\"b\\c\td caf\xc3\xa9 \xc2\x9b \xff\xfe\xe2\x82\r\n\r\n",
            status: Status::NotFound,
            body_bytes: 0,
            ..entry(b"GET /x HTTP/1.1")
        };
        let hostile_line = LogEntry {
            status: Status::BadRequest,
            body_bytes: 0,
            ..entry(b"GET /\"\\\x1b[31m\x7f HTTP/1.1")
        };
        [browser, hostile_headers, hostile_line]
    }

    #[test]
    fn combined_adds_referer_and_user_agent_escaped_as_nginx_does() {
        assert_eq!(
            lines_in(LogFormat::Combined, &browser_and_hostile()),
            "127.0.0.1 - - [18/Apr/2023:08:32:14 +0000] \"GET /a.css HTTP/1.1\" 200 1234 \
             \"http://localhost:8000/\" \"Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0\"\n\
             ::1 - - [18/Apr/2023:08:32:14 +0000] \"GET /x HTTP/1.1\" 404 0 \
             \"\" \"a\\x22b\\x5Cc\\x09d caf\\xC3\\xA9 \\xC2\\x9B \\xFF\\xFE\\xE2\\x82\"\n\
             127.0.0.1 - - [18/Apr/2023:08:32:14 +0000] \"GET /\\x22\\x5C\\x1B[31m\\x7F HTTP/1.1\" \
             400 0 \"-\" \"-\"\n"
        );
    }

    #[test]
    fn json_is_one_object_per_line_with_escaped_strings() {
        assert_eq!(
            lines_in(LogFormat::Json, &browser_and_hostile()),
            "{\"time\":\"2023-04-18T08:32:14Z\",\"client\":\"127.0.0.1\",\
             \"request\":\"GET /a.css HTTP/1.1\",\"status\":200,\"bytes\":1234,\
             \"referer\":\"http://localhost:8000/\",\
             \"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0\"}\n\
             {\"time\":\"2023-04-18T08:32:14Z\",\"client\":\"::1\",\
             \"request\":\"GET /x HTTP/1.1\",\"status\":404,\"bytes\":0,\
             \"referer\":\"\",\
             \"user_agent\":\"a\\\"b\\\\c\\td café \\u009B \\ufffd\\ufffd\\ufffd\"}\n\
             {\"time\":\"2023-04-18T08:32:14Z\",\"client\":\"127.0.0.1\",\
             \"request\":\"GET /\\\"\\\\\\u001B[31m\\u007F HTTP/1.1\",\"status\":400,\"bytes\":0,\
             \"referer\":null,\"user_agent\":null}\n"
        );
    }

    #[test]
    fn a_reopen_sends_buffered_lines_to_the_old_file_and_later_ones_to_the_new() {
        let (dir, path, shared, mut log) = file_log();
        let now = Instant::now();
        log.record(&entry(b"GET /before HTTP/1.1"), now);
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        assert!(matches!(shared.reopen(), Some(Ok(()))));
        let new_inode = log.switch_to_current().expect("a new file");
        assert_eq!(
            new_inode,
            Inode::of(&std::fs::metadata(&path).unwrap()),
            "the file now at the path"
        );
        log.record(&entry(b"GET /after HTTP/1.1"), now);
        log.flush();
        let read = |path: &Path| std::fs::read_to_string(path).unwrap();
        assert!(read(&rotated).contains("/before") && !read(&rotated).contains("/after"));
        assert!(read(&path).contains("/after") && !read(&path).contains("/before"));
    }

    #[test]
    fn a_failed_reopen_keeps_the_old_file() {
        let (dir, path, shared, mut log) = file_log();
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(matches!(shared.reopen(), Some(Err(_))));
        assert_eq!(log.switch_to_current(), None);
        drop(dir);
    }
}
