//! mioserve: a static-file HTTP/1.1 server on a hand-rolled, per-core epoll
//! reactor.
//!
//! ## A request's life, and where to read about each step
//! 1. [`server`] starts one worker thread per core, each with its own
//!    listening socket in a `SO_REUSEPORT` group ([`listeners`]: bound
//!    fresh, joined from a predecessor, or inherited from systemd); the
//!    kernel hands each new connection to one of them.
//! 2. [`worker`] runs the event loop: `epoll_wait`, accept, dispatch readiness
//!    events to connections by token, expire deadlines ([`timer`]).
//!    Behind a load balancer, [`proxy`] reads the PROXY protocol header that
//!    names the client, once per connection, before the first request.
//! 3. [`connection`] is the state machine each connection walks through:
//!    idle → reading the request → writing the response → sending the file →
//!    idle again (or closed, perhaps after lingering to let the client read
//!    the last response).
//! 4. [`http`] parses the request head and formats the response head.
//! 5. [`respond`] decides the answer; [`files`] maps the URL to a file under
//!    the document root, never outside it; [`listing`] lists a directory
//!    without an index file (`--list-dirs`).
//! 6. [`log`] buffers the access-log line; the worker writes its buffer at
//!    once to a terminal or pipe, once a second to a file, and follows the
//!    file when `SIGHUP` reopens it.
//!
//! Stopping: [`drain`] (SIGTERM → draining, still accepting → stopping,
//! responses in flight finish → stopped).
//!
//! Seeing it work: [`trace`] (`--trace`, the loop's steps, live) and
//! [`stats`] (per-worker counters, on `SIGUSR1` and `--stats-path`).
//!
//! Supporting pieces: [`config`] (every limit and timeout, documented),
//! [`ascii`] (numbers into buffers without `core::fmt`), [`json`] (the one
//! JSON string escaper: access log, trace and listings),
//! [`buffer`] (pooled buffers: idle connections hold none), [`cache`] (small
//! files in memory, invalidated by inotify), [`clock`] (the
//! time, formatted once a second), [`sys`] (the only `unsafe`: `sendfile`,
//! `openat2`, `send(MSG_MORE)`, `setrlimit`, inotify, `EPOLLEXCLUSIVE`,
//! inherited descriptors).
//!
//! The code is Linux-only: it relies on epoll's semantics, `sendfile(2)` and
//! `openat2(2)`.

#![deny(unsafe_code)]

pub mod ascii;
pub mod buffer;
pub mod cache;
pub mod clock;
pub mod config;
pub mod connection;
pub mod drain;
pub mod files;
pub mod http;
pub mod json;
pub mod listeners;
pub mod listing;
pub mod log;
pub mod proxy;
pub mod respond;
pub mod server;
pub mod stats;
// The one exception to `deny(unsafe_code)`: the system calls, each with a
// `// SAFETY:` comment.
#[allow(unsafe_code)]
pub mod sys;
pub mod timer;
pub mod trace;
pub mod worker;

pub use config::{Config, LogTarget};
pub use server::{Server, StartError, Stopped, run};
