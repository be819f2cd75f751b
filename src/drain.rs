//! Stopping without dropping requests: the phases of a graceful shutdown.
//!
//! A load balancer (HAProxy, a Kubernetes Service) keeps sending new
//! connections to a backend until its health check fails, which takes a few
//! check intervals. A server that stopped accepting the moment it was asked
//! to stop would refuse those connections. So a stop goes through phases,
//! each worker walking them on its own clock:
//!
//! ```text
//!   Serving ── SIGTERM/SIGINT ──► Draining { until }        health 503, every
//!                                   │  still accepting       response says
//!                                   │  (--drain-delay)       Connection: close
//!                                   ▼
//!                                 Stopping { deadline,      listener closed; idle
//!                                   │  idle_until }         connections may send one
//!                                   │  responses in flight   last request until
//!                                   │  (--shutdown-timeout)  idle_until, then are
//!                                   ▼                        half-closed
//!                                 Stopped  ◄── a second SIGTERM/SIGINT, from any phase
//! ```
//!
//! ## Ending an idle keep-alive connection
//! A keep-alive client may send its next request at any moment, and the only
//! race-free way to tell it to stop is in a response: `Connection: close`
//! (RFC 9112 §9.6). A FIN sent to an idle connection can cross a request
//! already on the wire; the client then reads an end of stream where it
//! expected a response, and must guess whether the request was processed (a
//! load generator such as wrk counts a read error). Clients that keep a
//! connection busy (a balancer's connection pool, a load generator, a browser
//! loading a page) send their next request within a round trip. So once
//! accepting stops, an idle connection is given [`STOP_IDLE_GRACE`]: a request
//! that arrives meanwhile is answered, with `Connection: close`, and the
//! client reconnects to another server. Only a connection still idle when the
//! grace ends is half-closed (our FIN, after which clients retry elsewhere)
//! and lingers until the client closes too. A request that crosses that FIN
//! is the one race left, and needs a client idle for the whole grace that
//! sends at its very end.
//!
//! A response still in flight when draining begins may have promised
//! keep-alive already (its head went out before). Its client may then send
//! another request, so when the response ends the connection turns idle
//! rather than closing (a close would meet that request with a reset), and
//! is ended the same way: by the `Connection: close` of its next response,
//! or when its grace ends. One that turns idle after accepting stopped gets
//! its grace from that moment ([`Phase::idle_grace_end`]), cut short only by
//! the shutdown deadline.
//!
//! The main thread only *asks* ([`ShutdownRequest::drain`],
//! [`ShutdownRequest::stop_now`]) and wakes the workers; each worker asks
//! [`Phase::next`] where it stands after every loop iteration and acts on each
//! change (see the worker's `advance_phase`). `Stopped` ends the worker's loop:
//! whatever is still open is closed and the access log flushed.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// Once accepting has stopped, how long an idle keep-alive connection may
/// still send one last request (answered with `Connection: close`) before it
/// is half-closed. A second is hundreds of round trips on any network a
/// balancer sits on, and short enough that a stop waiting on truly idle
/// clients is not noticeably slower. It never takes more than half of
/// `--shutdown-timeout`, so that the lingering close that follows has time too
/// (see [`Phase::Stopping`]).
pub const STOP_IDLE_GRACE: Duration = Duration::from_secs(1);

/// What the main thread has asked the workers, shared by all of them. Only
/// ever moves forward: serving, then draining, then stopping now.
#[derive(Debug)]
pub struct ShutdownRequest {
    /// One of the `ASKED_*` values.
    asked: AtomicU8,
    /// How long to keep accepting once draining (`--drain-delay`).
    pub drain_delay: Duration,
    /// How long responses in flight may take once accepting has stopped
    /// (`--shutdown-timeout`).
    pub shutdown_timeout: Duration,
}

/// What the workers have been asked, as [`ShutdownRequest::asked`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Asked {
    /// Nothing: keep serving.
    Nothing,
    /// Drain, then stop (the first SIGTERM or SIGINT).
    Drain,
    /// Stop at once (the second).
    StopNow,
}

impl ShutdownRequest {
    /// Nothing asked yet; the two durations apply once a drain is.
    pub fn new(drain_delay: Duration, shutdown_timeout: Duration) -> ShutdownRequest {
        ShutdownRequest {
            asked: AtomicU8::new(Asked::Nothing as u8),
            drain_delay,
            shutdown_timeout,
        }
    }

    /// Asks for a graceful drain (unless stopping now was asked already).
    pub fn drain(&self) {
        self.asked.fetch_max(Asked::Drain as u8, Ordering::Relaxed);
    }

    /// Asks to stop at once.
    pub fn stop_now(&self) {
        self.asked
            .fetch_max(Asked::StopNow as u8, Ordering::Relaxed);
    }

    /// What has been asked so far. One relaxed load: workers read it once
    /// per loop iteration, and the waker that follows every request makes
    /// sure they do.
    pub fn asked(&self) -> Asked {
        match self.asked.load(Ordering::Relaxed) {
            0 => Asked::Nothing,
            1 => Asked::Drain,
            _ => Asked::StopNow,
        }
    }
}

/// Where one worker is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Accepting and serving, keep-alive allowed.
    Serving,
    /// Still accepting and serving until `until`, but the health check says
    /// `503` and every response closes its connection, so the balancer can
    /// take this backend out of rotation without a refused connection.
    Draining {
        /// When accepting stops.
        until: Instant,
    },
    /// Not accepting; responses in flight finish until `deadline`, idle
    /// connections may send one last request until `idle_until`, then close.
    Stopping {
        /// When whatever is still open is closed anyway.
        deadline: Instant,
        /// When a connection still idle is half-closed: [`STOP_IDLE_GRACE`]
        /// after accepting stopped, or half the shutdown timeout if that is
        /// shorter.
        idle_until: Instant,
    },
    /// The loop ends: close what is open, flush the log, return.
    Stopped,
}

/// The phase's name, as `--trace=states` prints it (`Serving -> Draining`).
impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Serving => "Serving",
            Phase::Draining { .. } => "Draining",
            Phase::Stopping { .. } => "Stopping",
            Phase::Stopped => "Stopped",
        })
    }
}

impl Phase {
    /// The phase after this one, one step at a time (a worker acts on every
    /// step), given what was asked, the time and whether connections are
    /// still open.
    pub fn next(self, request: &ShutdownRequest, now: Instant, has_connections: bool) -> Phase {
        let asked = request.asked();
        match self {
            Phase::Stopped => Phase::Stopped,
            _ if asked == Asked::StopNow => Phase::Stopped,
            Phase::Serving if asked == Asked::Drain => Phase::Draining {
                until: now + request.drain_delay,
            },
            Phase::Draining { until } if now >= until => Phase::Stopping {
                deadline: now + request.shutdown_timeout,
                idle_until: now + STOP_IDLE_GRACE.min(request.shutdown_timeout / 2),
            },
            Phase::Stopping { deadline, .. } if !has_connections || now >= deadline => {
                Phase::Stopped
            }
            phase => phase,
        }
    }

    /// Whether the server is draining: answers close their connections and
    /// the health check fails.
    pub fn is_draining(self) -> bool {
        self != Phase::Serving
    }

    /// Once accepting has stopped, until when a connection that turns idle at
    /// `now` may send one last request: a response that promised keep-alive
    /// finished after the stop, and its client gets the same
    /// [`STOP_IDLE_GRACE`] as those idle at the stop, from now, but never
    /// past the shutdown deadline. `None` before the stop.
    pub fn idle_grace_end(self, now: Instant) -> Option<Instant> {
        match self {
            Phase::Stopping { deadline, .. } => Some((now + STOP_IDLE_GRACE).min(deadline)),
            Phase::Serving | Phase::Draining { .. } | Phase::Stopped => None,
        }
    }

    /// When this phase ends by itself, for the loop's sleep.
    pub fn ends_at(self) -> Option<Instant> {
        match self {
            Phase::Draining { until } => Some(until),
            Phase::Stopping { deadline, .. } => Some(deadline),
            Phase::Serving | Phase::Stopped => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_drain_goes_through_every_phase_on_time() {
        let request = ShutdownRequest::new(10 * SECOND, 5 * SECOND);
        let start = Instant::now();
        let step = |phase: Phase, at: Duration, open: bool| phase.next(&request, start + at, open);
        let phase = step(Phase::Serving, Duration::ZERO, true);
        assert_eq!(phase, Phase::Serving, "nothing asked yet");
        request.drain();
        let phase = step(phase, Duration::ZERO, true);
        assert_eq!(
            phase,
            Phase::Draining {
                until: start + 10 * SECOND
            }
        );
        assert!(phase.is_draining());
        assert_eq!(step(phase, 9 * SECOND, false), phase, "still accepting");
        let phase = step(phase, 10 * SECOND, true);
        assert_eq!(
            phase,
            Phase::Stopping {
                deadline: start + 15 * SECOND,
                idle_until: start + 10 * SECOND + STOP_IDLE_GRACE,
            }
        );
        assert_eq!(step(phase, 14 * SECOND, true), phase, "in flight");
        assert_eq!(step(phase, 14 * SECOND, false), Phase::Stopped, "all done");
        assert_eq!(step(phase, 15 * SECOND, true), Phase::Stopped, "deadline");
    }

    #[test]
    fn without_a_delay_stopping_follows_at_once() {
        let request = ShutdownRequest::new(Duration::ZERO, 5 * SECOND);
        request.drain();
        let now = Instant::now();
        let draining = Phase::Serving.next(&request, now, true);
        let stopping = draining.next(&request, now, true);
        assert_eq!(
            stopping,
            Phase::Stopping {
                deadline: now + 5 * SECOND,
                idle_until: now + STOP_IDLE_GRACE,
            }
        );
    }

    #[test]
    fn the_idle_grace_takes_at_most_half_the_shutdown_timeout() {
        let timeout = Duration::from_millis(600);
        let request = ShutdownRequest::new(Duration::ZERO, timeout);
        request.drain();
        let now = Instant::now();
        let draining = Phase::Serving.next(&request, now, true);
        let Phase::Stopping { idle_until, .. } = draining.next(&request, now, true) else {
            panic!("not stopping");
        };
        assert_eq!(idle_until, now + timeout / 2);
    }

    #[test]
    fn stop_now_wins_from_any_phase_and_is_never_undone() {
        let request = ShutdownRequest::new(10 * SECOND, 5 * SECOND);
        request.stop_now();
        request.drain();
        assert_eq!(request.asked(), Asked::StopNow);
        let now = Instant::now();
        for phase in [
            Phase::Serving,
            Phase::Draining { until: now },
            Phase::Stopping {
                deadline: now,
                idle_until: now,
            },
        ] {
            assert_eq!(phase.next(&request, now, true), Phase::Stopped);
        }
    }
}
