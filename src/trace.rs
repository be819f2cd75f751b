//! `--trace`: the event loop, live, one line per step, for people learning
//! how it works.
//!
//! ```text
//!    0.509622 w0  accept #7 from 127.0.0.1:52912
//!    0.509680 w0 #7 t3  event readable
//!    0.509692 w0 #7 t3  Idle -> ReadingRequest
//!    0.509700 w0 #7 t3  read 78 of 8192 bytes (short: drained)
//!    0.509929 w0 #7 t3  request GET / HTTP/1.1 -> 200
//!    0.509935 w0 #7 t3  head  Host: 127.0.0.1:8888
//!    0.509938 w0 #7 t3  ReadingRequest -> WritingResponse
//!    0.509958 w0 #7 t3  send 1244 of 1244 bytes
//!    0.509961 w0 #7 t3  WritingResponse -> Idle
//! ```
//! Columns: seconds since the server started (monotonic clock), worker, the
//! connection's serial number (unique within its worker), its token (slab
//! key, reused after close), and what happened.
//!
//! Levels add up: `requests` prints each request line and its status;
//! `states` adds every state transition; `events` adds every readiness
//! event and every system call with its result. When tracing is off, each
//! trace point costs one comparison of two small integers.

use std::fmt;
use std::io::{self, Write as _};
use std::time::Instant;

use mio::event::Event;

use crate::http::Status;

/// How much `--trace` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum TraceLevel {
    /// Nothing.
    #[default]
    Off,
    /// Each request line and the status it got.
    Requests,
    /// Also each state transition.
    States,
    /// Also each readiness event and system call.
    Events,
}

/// Which connection a line is about: its serial number (unique within its
/// worker) and its token (the slab key, reused after a close).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionId {
    /// The connection's serial number.
    pub serial: u64,
    /// The connection's token.
    pub token: usize,
}

/// The system calls a connection makes on its socket, as `--trace events`
/// names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    /// `read(2)` of the request (or of bytes discarded while lingering).
    Read,
    /// `send(2)` of the response head and any in-memory body.
    Send,
    /// `sendfile(2)` of a file body.
    Sendfile,
}

impl Syscall {
    /// The call's name, as strace would print it.
    pub fn name(self) -> &'static str {
        match self {
            Syscall::Read => "read",
            Syscall::Send => "send",
            Syscall::Sendfile => "sendfile",
        }
    }
}

/// A worker's trace printer.
///
/// Each kind of line has its own method, so that a trace point in the state
/// machine is one short call. Each method is inlined and checks the level
/// first: with tracing off, a trace point costs one comparison at the call
/// site; the formatting is out of line, in `#[cold]` functions.
#[derive(Clone, Copy, Debug)]
pub struct Tracer {
    level: TraceLevel,
    started: Instant,
    worker: usize,
}

impl Tracer {
    /// A tracer for worker `worker`, counting time from `started`.
    pub fn new(level: TraceLevel, started: Instant, worker: usize) -> Tracer {
        Tracer {
            level,
            started,
            worker,
        }
    }

    /// Whether lines of `level` are printed.
    #[inline]
    pub fn shows(&self, level: TraceLevel) -> bool {
        self.level >= level && level != TraceLevel::Off
    }

    /// Prints one line about connection `id`, if `level` is shown.
    #[inline]
    pub fn line(&self, level: TraceLevel, id: ConnectionId, what: fmt::Arguments<'_>) {
        if self.shows(level) {
            self.print_line(id, what);
        }
    }

    /// `Idle -> ReadingRequest` (`states`): a connection entered a state,
    /// or `to` is `closed`.
    #[inline]
    pub fn transition(&self, id: ConnectionId, from: &str, to: &str) {
        if self.shows(TraceLevel::States) {
            self.print_line(id, format_args!("{from} -> {to}"));
        }
    }

    /// `event readable writable read-closed error` (`events`): what a
    /// readiness event reported.
    #[inline]
    pub fn event(&self, id: ConnectionId, event: &Event) {
        if self.shows(TraceLevel::Events) {
            self.print_event(id, event);
        }
    }

    /// `read 78 of 8192 bytes (short: drained)` (`events`): a system call
    /// and its result. `drained` says that the connection took a short
    /// count to mean the socket buffer is drained (epoll(7)).
    #[inline]
    pub fn syscall(
        &self,
        id: ConnectionId,
        call: Syscall,
        result: &io::Result<usize>,
        asked: usize,
        drained: bool,
    ) {
        if self.shows(TraceLevel::Events) {
            self.print_syscall(id, call, result, asked, drained);
        }
    }

    /// `request GET / HTTP/1.1 -> 200` (`requests`), then the head's fields
    /// after the request line (`states`). `head` is the whole request head.
    #[inline]
    pub fn request(&self, id: ConnectionId, request_line: &[u8], head: &[u8], status: Status) {
        if self.shows(TraceLevel::Requests) {
            self.print_request(id, request_line, head, status);
        }
    }

    #[cold]
    fn print_event(&self, id: ConnectionId, event: &Event) {
        let flag = |set: bool, name: &'static str| if set { name } else { "" };
        self.print_line(
            id,
            format_args!(
                "event{}{}{}{}",
                flag(event.is_readable(), " readable"),
                flag(event.is_writable(), " writable"),
                flag(event.is_read_closed(), " read-closed"),
                flag(event.is_error(), " error"),
            ),
        );
    }

    #[cold]
    fn print_syscall(
        &self,
        id: ConnectionId,
        call: Syscall,
        result: &io::Result<usize>,
        asked: usize,
        drained: bool,
    ) {
        let name = call.name();
        match result {
            Ok(0) if call == Syscall::Read => self.print_line(id, format_args!("{name} EOF")),
            Ok(done) if drained => self.print_line(
                id,
                format_args!("{name} {done} of {asked} bytes (short: drained)"),
            ),
            Ok(done) => self.print_line(id, format_args!("{name} {done} of {asked} bytes")),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                self.print_line(id, format_args!("{name} WouldBlock"))
            }
            Err(error) => self.print_line(id, format_args!("{name} error: {error}")),
        }
    }

    #[cold]
    fn print_request(&self, id: ConnectionId, request_line: &[u8], head: &[u8], status: Status) {
        let line = String::from_utf8_lossy(request_line);
        self.print_line(id, format_args!("request {line} -> {}", status.code()));
        if self.shows(TraceLevel::States) {
            let head = String::from_utf8_lossy(head);
            let fields = head
                .trim_end()
                .lines()
                .skip(1)
                .collect::<Vec<_>>()
                .join("\n      ");
            if !fields.is_empty() {
                self.print_line(id, format_args!("head  {fields}"));
            }
        }
    }

    /// One `write` per line, so lines of different workers never mix.
    #[cold]
    fn print_line(&self, id: ConnectionId, what: fmt::Arguments<'_>) {
        let seconds = self.started.elapsed().as_secs_f64();
        let line = format!(
            "{seconds:11.6} w{} #{} t{}  {what}\n",
            self.worker, id.serial, id.token
        );
        let _ = io::stderr().write_all(line.as_bytes());
    }

    /// Prints one line about the worker itself (accepts, timers).
    pub fn worker_line(&self, level: TraceLevel, what: fmt::Arguments<'_>) {
        if self.shows(level) {
            let seconds = self.started.elapsed().as_secs_f64();
            let line = format!("{seconds:11.6} w{}  {what}\n", self.worker);
            let _ = io::stderr().write_all(line.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_add_up() {
        let tracer = Tracer::new(TraceLevel::States, Instant::now(), 0);
        assert!(tracer.shows(TraceLevel::Requests));
        assert!(tracer.shows(TraceLevel::States));
        assert!(!tracer.shows(TraceLevel::Events));
        assert!(!tracer.shows(TraceLevel::Off));
        let off = Tracer::new(TraceLevel::Off, Instant::now(), 0);
        assert!(!off.shows(TraceLevel::Requests));
    }
}
