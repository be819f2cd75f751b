//! The access log: one Common Log Format line per answered request.
//!
//! ```text
//! 127.0.0.1 - - [18/Apr/2023:08:32:14 +0000] "GET /index.html HTTP/1.1" 200 1234
//! client      time (UTC)                      request line            status body bytes
//! ```
//!
//! Logging must never slow serving down nor lose a line. So each worker
//! formats its lines into its own buffer, with no lock and no allocation (the
//! buffer is reserved at start and reused), and writes the whole buffer with a
//! single `write` to a file opened with `O_APPEND`: [`LOG_FLUSH_INTERVAL`]
//! after the first line it holds, as soon as it holds
//! [`LOG_BUFFER_FLUSH_BYTES`], and on shutdown. `O_APPEND` makes the kernel
//! position each write at the end of the file atomically, and every write
//! holds only whole lines, so lines from different workers never interleave.
//! Such a write lands in the page cache; no request waits for the disk.
//!
//! A write error (disk full, file removed) is reported once on stderr, for the
//! whole process (the workers share one flag, touched only on that error
//! path); the lines of that batch are dropped and serving goes on.

use std::fs::File;
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::ascii::{push_decimal, push_ip};
use crate::config::{LOG_BUFFER_FLUSH_BYTES, LOG_FLUSH_INTERVAL};
use crate::http::Status;

/// One line's worth of facts.
#[derive(Clone, Copy, Debug)]
pub struct LogEntry<'a> {
    /// The client's address.
    pub client: IpAddr,
    /// The worker's cached `[dd/Mon/yyyy:hh:mm:ss +0000]`.
    pub time: &'a [u8],
    /// The request line as received.
    pub request_line: &'a [u8],
    /// The status answered.
    pub status: Status,
    /// Body bytes actually sent (less than announced if the client left).
    pub body_bytes: u64,
}

/// A worker's access-log buffer and its file.
#[derive(Debug)]
pub struct AccessLog {
    /// Where lines go; `None` with `--no-log`.
    sink: Option<File>,
    /// Formatted lines not yet written.
    lines: Vec<u8>,
    /// When the buffer must be written at the latest.
    flush_due: Option<Instant>,
    /// Whether a write error was already reported, by any worker.
    error_reported: Arc<AtomicBool>,
}

impl AccessLog {
    /// A log writing to `sink` (a descriptor of this worker's own, opened with
    /// `O_APPEND`), or discarding everything with `None`. `error_reported` is
    /// shared by all workers so that a failing log is reported once.
    pub fn new(sink: Option<File>, error_reported: Arc<AtomicBool>) -> AccessLog {
        AccessLog {
            lines: Vec::with_capacity(if sink.is_some() {
                LOG_BUFFER_FLUSH_BYTES
            } else {
                0
            }),
            sink,
            flush_due: None,
            error_reported,
        }
    }

    /// Formats one line into the buffer.
    pub fn record(&mut self, entry: &LogEntry<'_>, now: Instant) {
        if self.sink.is_none() {
            return;
        }
        let lines = &mut self.lines;
        push_ip(lines, entry.client);
        lines.extend_from_slice(b" - - ");
        lines.extend_from_slice(entry.time);
        lines.extend_from_slice(b" \"");
        escape_into(lines, entry.request_line);
        lines.extend_from_slice(b"\" ");
        push_decimal(lines, u64::from(entry.status.code()));
        lines.push(b' ');
        push_decimal(lines, entry.body_bytes);
        lines.push(b'\n');
        self.flush_due.get_or_insert(now + LOG_FLUSH_INTERVAL);
        if self.lines.len() >= LOG_BUFFER_FLUSH_BYTES {
            self.flush();
        }
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

    /// Writes every buffered line.
    pub fn flush(&mut self) {
        self.flush_due = None;
        if self.lines.is_empty() {
            return;
        }
        if let Some(sink) = &mut self.sink
            && let Err(error) = sink.write_all(&self.lines)
            && !self.error_reported.swap(true, Ordering::Relaxed)
        {
            eprintln!("mioserve: cannot write the access log ({error}); lines are being dropped");
        }
        self.lines.clear();
    }
}

/// Appends `raw` with every byte that could break the line's format (quotes,
/// backslashes, control and non-ASCII bytes) written as `\xHH`, as nginx
/// does: a client cannot forge log lines.
fn escape_into(out: &mut Vec<u8>, raw: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in raw {
        if byte.is_ascii_graphic() && byte != b'"' && byte != b'\\' || byte == b' ' {
            out.push(byte);
        } else {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 15)],
            ]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek};

    #[test]
    fn formats_common_log_format_and_escapes() {
        let file = tempfile::tempfile().unwrap();
        let mut log = AccessLog::new(Some(file.try_clone().unwrap()), Arc::default());
        let now = Instant::now();
        let entry = LogEntry {
            client: "127.0.0.1".parse().unwrap(),
            time: b"[18/Apr/2023:08:32:14 +0000]",
            request_line: b"GET /index.html HTTP/1.1",
            status: Status::Ok,
            body_bytes: 1234,
        };
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
        let mut written = String::new();
        let mut reader = file;
        reader.rewind().unwrap();
        reader.read_to_string(&mut written).unwrap();
        assert_eq!(written, "");
        log.flush_if_due(now + LOG_FLUSH_INTERVAL);
        reader.rewind().unwrap();
        reader.read_to_string(&mut written).unwrap();
        assert_eq!(
            written,
            "127.0.0.1 - - [18/Apr/2023:08:32:14 +0000] \"GET /index.html HTTP/1.1\" 200 1234\n\
             ::1 - - [18/Apr/2023:08:32:14 +0000] \"GET /\\x22a\\x22\\x1B\\x0A HTTP/1.1\" 400 0\n"
        );
        assert_eq!(log.flush_due(), None);
    }
}
