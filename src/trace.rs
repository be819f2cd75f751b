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
use std::io::Write as _;
use std::time::Instant;

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

/// A worker's trace printer.
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

    /// Prints one line about connection `serial` at slab key `token`, if
    /// `level` is shown. One `write` per line, so lines of different workers
    /// never mix.
    ///
    /// Inlined, so that with tracing off a trace point costs one comparison
    /// at the call site; the printing is out of line.
    #[inline]
    pub fn line(&self, level: TraceLevel, serial: u64, token: usize, what: fmt::Arguments<'_>) {
        if self.shows(level) {
            self.print_line(serial, token, what);
        }
    }

    #[cold]
    fn print_line(&self, serial: u64, token: usize, what: fmt::Arguments<'_>) {
        let seconds = self.started.elapsed().as_secs_f64();
        let line = format!(
            "{seconds:11.6} w{} #{serial} t{token}  {what}\n",
            self.worker
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    /// Prints one line about the worker itself (accepts, timers).
    pub fn worker_line(&self, level: TraceLevel, what: fmt::Arguments<'_>) {
        if self.shows(level) {
            let seconds = self.started.elapsed().as_secs_f64();
            let line = format!("{seconds:11.6} w{}  {what}\n", self.worker);
            let _ = std::io::stderr().write_all(line.as_bytes());
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
