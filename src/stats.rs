//! Live counters: what each worker has done, printed as a table on `SIGUSR1`
//! and at shutdown, and served as JSON on an opt-in path (`--stats-path`).
//!
//! Each worker counts in its own [`WorkerStats`], a plain struct it alone
//! writes: no atomics, no locks, no cache line shared with another core on the
//! request path. Once a second if they changed (and whenever asked) a worker
//! copies its counters, with its open connections counted by state, into its
//! own slot of the [`StatsBoard`], under a lock nobody else holds for longer
//! than that copy; readers (the `SIGUSR1` handler, a stats request) read the
//! board. The counters are thus at most a second old; the open connections
//! by state of an otherwise quiet worker may be older (see the worker's
//! `stats_due`).

use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};

use crate::connection::STATE_NAMES;
use crate::http::Status;

/// One worker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Open connections, by state (in [`STATE_NAMES`] order), when
    /// published.
    pub open: [u64; STATE_NAMES.len()],
    /// Requests answered (one per access-log line).
    pub requests: u64,
    /// Requests for the health path (`--health-path`), which are not logged
    /// nor counted in `requests`.
    pub health_checks: u64,
    /// Bytes written to clients: heads and bodies.
    pub bytes_sent: u64,
    /// Responses by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub responses: [u64; 5],
    /// Connections closed by a timeout (header, send, keep-alive, linger).
    pub timeouts: u64,
    /// Times accepting paused because descriptors ran out.
    pub accept_pauses: u64,
    /// Requests answered `503 Service Unavailable`: their file could not be
    /// opened because descriptors (or kernel memory) ran out.
    pub unavailable: u64,
    /// `--proxy-protocol`: connections closed before their PROXY protocol
    /// header was complete (invalid, missing, cut short, or too slow).
    pub proxy_header_refusals: u64,
    /// `--trusted-proxy`: connections closed at accept because their peer is
    /// in no trusted block (also counted in `accepted`).
    pub untrusted_peers: u64,
    /// Access-log lines dropped because the reader of a terminal, pipe or
    /// socket log left [`crate::config::LOG_BACKLOG_BYTES`] untaken.
    pub log_lines_dropped: u64,
}

impl WorkerStats {
    /// Counts one answered request.
    pub fn count_response(&mut self, status: Status) {
        self.requests += 1;
        let class = usize::from(status.code() / 100).clamp(1, 5) - 1;
        self.responses[class] += 1;
        if status == Status::ServiceUnavailable {
            self.unavailable += 1;
        }
    }

    fn add(&mut self, other: &WorkerStats) {
        // Taken apart field by field, so that a new counter cannot be
        // forgotten here: the pattern would no longer compile.
        let WorkerStats {
            accepted,
            open,
            requests,
            health_checks,
            bytes_sent,
            responses,
            timeouts,
            accept_pauses,
            unavailable,
            proxy_header_refusals,
            untrusted_peers,
            log_lines_dropped,
        } = *other;
        self.accepted += accepted;
        self.requests += requests;
        self.health_checks += health_checks;
        self.bytes_sent += bytes_sent;
        self.timeouts += timeouts;
        self.accept_pauses += accept_pauses;
        self.unavailable += unavailable;
        self.proxy_header_refusals += proxy_header_refusals;
        self.untrusted_peers += untrusted_peers;
        self.log_lines_dropped += log_lines_dropped;
        for (sum, n) in self.open.iter_mut().zip(open) {
            *sum += n;
        }
        for (sum, n) in self.responses.iter_mut().zip(responses) {
            *sum += n;
        }
    }
}

/// Every worker's last published counters.
#[derive(Debug)]
pub struct StatsBoard {
    slots: Vec<Mutex<WorkerStats>>,
}

impl StatsBoard {
    /// A board for `workers` workers, all zero.
    pub fn new(workers: usize) -> StatsBoard {
        StatsBoard {
            slots: (0..workers).map(|_| Mutex::default()).collect(),
        }
    }

    /// Worker `worker` publishes its counters.
    pub fn publish(&self, worker: usize, stats: &WorkerStats) {
        if let Some(slot) = self.slots.get(worker) {
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = *stats;
        }
    }

    /// A copy of every slot.
    pub fn snapshot(&self) -> Vec<WorkerStats> {
        self.slots
            .iter()
            .map(|slot| *slot.lock().unwrap_or_else(PoisonError::into_inner))
            .collect()
    }

    /// The counters as a text table, one row per worker and a total.
    pub fn table(&self) -> String {
        let rows = self.snapshot();
        let mut total = WorkerStats::default();
        let mut table = String::from(
            "worker  accepted  open (idle/reading/writing/sending/lingering/proxy)  requests    bytes sent     \
             1xx     2xx     3xx     4xx     5xx  timeouts  accept pauses  unavailable  health checks  \
             proxy refusals  untrusted peers  log drops\n",
        );
        let row = |table: &mut String, name: &str, s: &WorkerStats| {
            let by_state: Vec<String> = s.open.iter().map(u64::to_string).collect();
            let open = format!("{} ({})", s.open.iter().sum::<u64>(), by_state.join("/"));
            let _ = write!(
                table,
                "{name:>6} {:>9}  {open:<51} {:>9} {:>13} ",
                s.accepted, s.requests, s.bytes_sent
            );
            for n in s.responses {
                let _ = write!(table, "{n:>7} ");
            }
            let _ = writeln!(
                table,
                "{:>9} {:>14} {:>12} {:>14} {:>15} {:>16} {:>10}",
                s.timeouts,
                s.accept_pauses,
                s.unavailable,
                s.health_checks,
                s.proxy_header_refusals,
                s.untrusted_peers,
                s.log_lines_dropped
            );
        };
        for (worker, stats) in rows.iter().enumerate() {
            row(&mut table, &worker.to_string(), stats);
            total.add(stats);
        }
        row(&mut table, "total", &total);
        table
    }

    /// The counters as JSON: `{"workers": [...], "total": {...}}`.
    pub fn json(&self, out: &mut Vec<u8>) {
        let rows = self.snapshot();
        let mut total = WorkerStats::default();
        let mut json = String::from("{\"workers\":[");
        for (i, stats) in rows.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json_object(&mut json, stats);
            total.add(stats);
        }
        json.push_str("],\"total\":");
        json_object(&mut json, &total);
        json.push_str("}\n");
        out.extend_from_slice(json.as_bytes());
    }
}

fn json_object(json: &mut String, s: &WorkerStats) {
    let _ = write!(json, "{{\"accepted\":{},\"open\":{{", s.accepted);
    for (i, (name, n)) in STATE_NAMES.iter().zip(s.open).enumerate() {
        let comma = if i > 0 { "," } else { "" };
        let _ = write!(json, "{comma}\"{name}\":{n}");
    }
    let _ = write!(
        json,
        "}},\"requests\":{},\"health_checks\":{},\"bytes_sent\":{},\"responses\":{{\"1xx\":{},\"2xx\":{},\"3xx\":{},\"4xx\":{},\"5xx\":{}}},\
         \"timeouts\":{},\"accept_pauses\":{},\"unavailable\":{},\"proxy_header_refusals\":{},\"untrusted_peers\":{},\"log_lines_dropped\":{}}}",
        s.requests,
        s.health_checks,
        s.bytes_sent,
        s.responses[0],
        s.responses[1],
        s.responses[2],
        s.responses[3],
        s.responses[4],
        s.timeouts,
        s.accept_pauses,
        s.unavailable,
        s.proxy_header_refusals,
        s.untrusted_peers,
        s.log_lines_dropped
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_counted_by_class_and_summed() {
        let board = StatsBoard::new(2);
        let mut a = WorkerStats::default();
        a.count_response(Status::Ok);
        a.count_response(Status::NotFound);
        a.bytes_sent = 100;
        let mut b = WorkerStats::default();
        b.count_response(Status::NotModified);
        b.count_response(Status::ServiceUnavailable);
        b.open[0] = 3;
        board.publish(0, &a);
        board.publish(1, &b);
        let mut json = Vec::new();
        board.json(&mut json);
        let json = String::from_utf8(json).unwrap();
        assert!(json.ends_with(
            "\"total\":{\"accepted\":0,\"open\":{\"Idle\":3,\"ReadingRequest\":0,\"WritingResponse\":0,\
             \"SendingFile\":0,\"Lingering\":0,\"ReadingProxyHeader\":0},\"requests\":4,\"health_checks\":0,\
             \"bytes_sent\":100,\"responses\":{\"1xx\":0,\"2xx\":1,\"3xx\":1,\"4xx\":1,\"5xx\":1},\"timeouts\":0,\
             \"accept_pauses\":0,\"unavailable\":1,\"proxy_header_refusals\":0,\"untrusted_peers\":0,\"log_lines_dropped\":0}}\n"
        ), "{json}");
        let table = board.table();
        assert_eq!(table.lines().count(), 4, "{table}");
        assert!(
            table
                .lines()
                .last()
                .unwrap()
                .trim_start()
                .starts_with("total")
        );
    }
}
