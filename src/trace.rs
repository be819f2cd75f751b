//! `--trace`: the event loop, live, one line per step, for people learning
//! how it works.
//!
//! ```text
//!    0.509611 w0  woke with 1 event
//!    0.509622 w0  accept #7 from 127.0.0.1:52912
//!    0.509668 w0  woke with 1 event
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
//! `states` adds every state transition and timeout; `events` adds every
//! `epoll_wait` wake-up (with the number of events it returned), accept,
//! readiness event and system call with its result. When tracing is off,
//! each trace point costs one comparison of two small integers.
//!
//! ## For programs: `--trace-format json`
//! The same steps, one JSON object per line, for tools such as
//! `docs/timeline/timeline.py`, which draws a trace as a picture:
//!
//! ```text
//! {"time":0.509680,"worker":0,"conn":7,"token":3,"kind":"event","readiness":["readable"]}
//! {"time":0.509692,"worker":0,"conn":7,"token":3,"kind":"transition","from":"Idle","to":"ReadingRequest"}
//! {"time":0.509700,"worker":0,"conn":7,"token":3,"kind":"syscall","call":"read","asked":8192,"bytes":78,"drained":true}
//! ```
//! Every object has `time`, `worker` and `kind`; those about a connection
//! also `conn` (its serial) and `token`. The kinds and their fields:
//! `wake` (`events`), `accept` (`conn`, `peer`), `event` (`readiness`: a list
//! of `readable`, `writable`, `read-closed`, `error`), `transition` (`from`,
//! `to`; `to` is `closed` when the connection ends), `timeout` (`state`: the
//! state whose deadline passed), `syscall` (`call`, `asked`, then `bytes` and
//! `drained`, or `error`: `WouldBlock` or the error's text), `request`
//! (`line`, `status`), `head` (`fields`) and `note` (`text`, for the rarer
//! lines: PROXY headers, shutdown phases, refused peers).
//!
//! Each step is described once, as a `Step`, and written in the chosen
//! format by one function per format, so the two can never say different
//! things.

use std::fmt;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::time::Instant;

use mio::Events;
use mio::event::Event;

use crate::http::Status;
use crate::json;

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

/// How `--trace` writes its lines (`--trace-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceFormat {
    /// Aligned columns, for people.
    #[default]
    Text,
    /// One JSON object per line, for programs (see the module docs).
    Json,
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
    /// `send(2)` of the output buffer: the response head and any body
    /// copied after it.
    Send,
    /// `sendmsg(2)` of the output buffer and a cached body by reference
    /// beside it, two pieces in one call (`sys::send_pair`).
    SendMsg,
    /// `sendfile(2)` of a file body.
    Sendfile,
}

impl Syscall {
    /// The call's name, as its manual page names it.
    pub fn name(self) -> &'static str {
        match self {
            Syscall::Read => "read",
            Syscall::Send => "send",
            Syscall::SendMsg => "sendmsg",
            Syscall::Sendfile => "sendfile",
        }
    }
}

/// What one trace line says, before it is written as text or as JSON.
enum Step<'a> {
    /// `epoll_wait` returned `events` events (zero: a deadline woke it).
    Wake { events: usize },
    /// The listener handed over connection `serial`.
    Accept { serial: u64, peer: SocketAddr },
    /// A readiness event for the connection.
    Event(&'a Event),
    /// The connection left state `from` for `to` (`closed` at the end).
    Transition { from: &'a str, to: &'a str },
    /// The deadline of state `state` passed.
    Timeout { state: &'a str },
    /// A system call on the connection's socket and its result; `drained`
    /// says that a short count was taken to mean "drained" (epoll(7)).
    Syscall {
        call: Syscall,
        result: &'a io::Result<usize>,
        asked: usize,
        drained: bool,
    },
    /// A request line and the status it got.
    Request { line: &'a str, status: Status },
    /// The header fields after the request line, one per line.
    Head(&'a str),
    /// Anything else, as a sentence.
    Note(fmt::Arguments<'a>),
}

impl Step<'_> {
    /// The names of the readiness flags an event carries.
    fn readiness(event: &Event) -> impl Iterator<Item = &'static str> {
        [
            (event.is_readable(), "readable"),
            (event.is_writable(), "writable"),
            (event.is_read_closed(), "read-closed"),
            (event.is_error(), "error"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
    }

    /// Appends the step's JSON members, `"kind"` first, each after a comma.
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let mut kind_and_text = |kind: &str, key: &str, text: &str| {
            write!(out, r#","kind":"{kind}","{key}":"#)?;
            json::push_string(out, text.as_bytes());
            Ok(())
        };
        match self {
            Step::Wake { events } => write!(out, r#","kind":"wake","events":{events}"#),
            Step::Accept { serial, peer } => {
                write!(out, r#","kind":"accept","conn":{serial},"peer":"{peer}""#)
            }
            Step::Event(event) => {
                let flags: Vec<String> = Step::readiness(event)
                    .map(|name| format!(r#""{name}""#))
                    .collect();
                write!(out, r#","kind":"event","readiness":[{}]"#, flags.join(","))
            }
            Step::Transition { from, to } => {
                write!(out, r#","kind":"transition","from":"{from}","to":"{to}""#)
            }
            Step::Timeout { state } => write!(out, r#","kind":"timeout","state":"{state}""#),
            Step::Syscall {
                call,
                result,
                asked,
                drained,
            } => {
                let name = call.name();
                write!(out, r#","kind":"syscall","call":"{name}","asked":{asked}"#)?;
                match result {
                    Ok(done) => write!(out, r#","bytes":{done},"drained":{drained}"#),
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        write!(out, r#","error":"WouldBlock""#)
                    }
                    Err(error) => {
                        write!(out, r#","error":"#)?;
                        json::push_string(out, error.to_string().as_bytes());
                        Ok(())
                    }
                }
            }
            Step::Request { line, status } => {
                kind_and_text("request", "line", line)?;
                write!(out, r#","status":{}"#, status.code())
            }
            Step::Head(fields) => {
                write!(out, r#","kind":"head","fields":["#)?;
                for (i, field) in fields.lines().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json::push_string(out, field.as_bytes());
                }
                out.push(b']');
                Ok(())
            }
            Step::Note(what) => kind_and_text("note", "text", &what.to_string()),
        }
    }
}

/// The text format: what follows the columns.
impl fmt::Display for Step<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Wake { events: 1 } => write!(f, "woke with 1 event"),
            Step::Wake { events } => write!(f, "woke with {events} events"),
            Step::Accept { serial, peer } => write!(f, "accept #{serial} from {peer}"),
            Step::Event(event) => {
                write!(f, "event")?;
                Step::readiness(event).try_for_each(|name| write!(f, " {name}"))
            }
            Step::Transition { from, to } => write!(f, "{from} -> {to}"),
            Step::Timeout { state } => write!(f, "{state} timed out"),
            Step::Syscall {
                call,
                result,
                asked,
                drained,
            } => {
                let name = call.name();
                match result {
                    Ok(0) if *call == Syscall::Read => write!(f, "{name} EOF"),
                    Ok(done) if *drained => {
                        write!(f, "{name} {done} of {asked} bytes (short: drained)")
                    }
                    Ok(done) => write!(f, "{name} {done} of {asked} bytes"),
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        write!(f, "{name} WouldBlock")
                    }
                    Err(error) => write!(f, "{name} error: {error}"),
                }
            }
            Step::Request { line, status } => write!(f, "request {line} -> {}", status.code()),
            Step::Head(fields) => write!(f, "head  {}", fields.replace('\n', "\n      ")),
            Step::Note(what) => write!(f, "{what}"),
        }
    }
}

/// A worker's trace printer.
///
/// Each kind of line has its own method, so that a trace point in the state
/// machine or the loop is one short call. Each method is inlined and checks
/// the level first: with tracing off, a trace point costs one comparison at
/// the call site; the formatting is out of line, in `#[cold]` functions.
#[derive(Clone, Copy, Debug)]
pub struct Tracer {
    level: TraceLevel,
    format: TraceFormat,
    started: Instant,
    worker: usize,
}

impl Tracer {
    /// A tracer for worker `worker`, counting time from `started`, writing
    /// text (see [`Tracer::in_format`]).
    pub fn new(level: TraceLevel, started: Instant, worker: usize) -> Tracer {
        Tracer {
            level,
            format: TraceFormat::Text,
            started,
            worker,
        }
    }

    /// The same tracer, writing its lines in `format`.
    pub fn in_format(self, format: TraceFormat) -> Tracer {
        Tracer { format, ..self }
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
            self.print(Some(id), Step::Note(what));
        }
    }

    /// `woke with 3 events` (`events`): `epoll_wait` returned. Counting
    /// the events happens only when the line is printed.
    #[inline]
    pub fn wake(&self, events: &Events) {
        if self.shows(TraceLevel::Events) {
            self.print_wake(events);
        }
    }

    /// `accept #7 from 127.0.0.1:52912` (`events`): a new connection.
    #[inline]
    pub fn accept(&self, serial: u64, peer: SocketAddr) {
        if self.shows(TraceLevel::Events) {
            self.print(None, Step::Accept { serial, peer });
        }
    }

    /// `Idle -> ReadingRequest` (`states`): a connection entered a state,
    /// or `to` is `closed`.
    #[inline]
    pub fn transition(&self, id: ConnectionId, from: &str, to: &str) {
        if self.shows(TraceLevel::States) {
            self.print(Some(id), Step::Transition { from, to });
        }
    }

    /// `ReadingRequest timed out` (`states`): the deadline of the
    /// connection's state `state` passed.
    #[inline]
    pub fn timeout(&self, id: ConnectionId, state: &str) {
        if self.shows(TraceLevel::States) {
            self.print(Some(id), Step::Timeout { state });
        }
    }

    /// `event readable writable read-closed error` (`events`): what a
    /// readiness event reported.
    #[inline]
    pub fn event(&self, id: ConnectionId, event: &Event) {
        if self.shows(TraceLevel::Events) {
            self.print(Some(id), Step::Event(event));
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
            let step = Step::Syscall {
                call,
                result,
                asked,
                drained,
            };
            self.print(Some(id), step);
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

    /// Prints one line about the worker itself (timers, shutdown).
    #[inline]
    pub fn worker_line(&self, level: TraceLevel, what: fmt::Arguments<'_>) {
        if self.shows(level) {
            self.print(None, Step::Note(what));
        }
    }

    #[cold]
    fn print_wake(&self, events: &Events) {
        let events = events.iter().count();
        self.print(None, Step::Wake { events });
    }

    #[cold]
    fn print_request(&self, id: ConnectionId, request_line: &[u8], head: &[u8], status: Status) {
        let line = String::from_utf8_lossy(request_line);
        self.print(
            Some(id),
            Step::Request {
                line: &line,
                status,
            },
        );
        if self.shows(TraceLevel::States) {
            let head = String::from_utf8_lossy(head);
            let fields = head.trim_end().lines().skip(1).collect::<Vec<_>>();
            if !fields.is_empty() {
                self.print(Some(id), Step::Head(&fields.join("\n")));
            }
        }
    }

    /// Writes one line, about connection `id` or (`None`) the worker. One
    /// `write` per line, so lines of different workers never mix.
    #[cold]
    fn print(&self, id: Option<ConnectionId>, step: Step<'_>) {
        let seconds = self.started.elapsed().as_secs_f64();
        let worker = self.worker;
        let mut line = Vec::new();
        let written = match self.format {
            TraceFormat::Text => match id {
                Some(ConnectionId { serial, token }) => {
                    writeln!(line, "{seconds:11.6} w{worker} #{serial} t{token}  {step}")
                }
                None => writeln!(line, "{seconds:11.6} w{worker}  {step}"),
            },
            TraceFormat::Json => write!(line, r#"{{"time":{seconds:.6},"worker":{worker}"#)
                .and_then(|()| match id {
                    Some(ConnectionId { serial, token }) => {
                        write!(line, r#","conn":{serial},"token":{token}"#)
                    }
                    None => Ok(()),
                })
                .and_then(|()| step.write_json(&mut line))
                .and_then(|()| writeln!(line, "}}")),
        };
        // Writing into a `Vec` cannot fail; a trace line that cannot reach
        // stderr is dropped (the server goes on serving).
        if written.is_ok() {
            let _ = io::stderr().write_all(&line);
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

    /// The JSON members a step writes, and the text line it reads as.
    fn both_formats(step: Step<'_>) -> (String, String) {
        let mut json = Vec::new();
        step.write_json(&mut json).unwrap();
        (String::from_utf8(json).unwrap(), step.to_string())
    }

    #[test]
    fn json_says_what_the_text_says_field_by_field() {
        let transition = Step::Transition {
            from: "Idle",
            to: "ReadingRequest",
        };
        assert_eq!(
            both_formats(transition),
            (
                r#","kind":"transition","from":"Idle","to":"ReadingRequest""#.to_owned(),
                "Idle -> ReadingRequest".to_owned()
            )
        );
        let read = Ok(78);
        let drained = Step::Syscall {
            call: Syscall::Read,
            result: &read,
            asked: 8192,
            drained: true,
        };
        assert_eq!(
            both_formats(drained),
            (
                r#","kind":"syscall","call":"read","asked":8192,"bytes":78,"drained":true"#
                    .to_owned(),
                "read 78 of 8192 bytes (short: drained)".to_owned()
            )
        );
        let blocked = Err(io::ErrorKind::WouldBlock.into());
        let send = Step::Syscall {
            call: Syscall::Send,
            result: &blocked,
            asked: 1244,
            drained: false,
        };
        assert_eq!(
            both_formats(send),
            (
                r#","kind":"syscall","call":"send","asked":1244,"error":"WouldBlock""#.to_owned(),
                "send WouldBlock".to_owned()
            )
        );
        assert_eq!(
            both_formats(Step::Wake { events: 1 }),
            (
                r#","kind":"wake","events":1"#.to_owned(),
                "woke with 1 event".to_owned()
            )
        );
    }

    #[test]
    fn json_strings_from_the_client_are_escaped() {
        let request = Step::Request {
            line: "GET /\"quoted\"\\ HTTP/1.1",
            status: Status::NotFound,
        };
        let (json, _) = both_formats(request);
        assert_eq!(
            json,
            r#","kind":"request","line":"GET /\"quoted\"\\ HTTP/1.1","status":404"#
        );
        let (json, text) = both_formats(Step::Head("Host: a\nX-Tab: \t"));
        assert_eq!(json, r#","kind":"head","fields":["Host: a","X-Tab: \t"]"#);
        assert_eq!(text, "head  Host: a\n      X-Tab: \t");
    }
}
