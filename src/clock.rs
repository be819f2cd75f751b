//! A worker's clock: the current instant, and the two human-readable forms of
//! the current time that every response and log line needs, formatted at most
//! once per second instead of once per request.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`.
const HTTP_DATE_LEN: usize = 29;

/// Length of a Common Log Format time, `[06/Nov/1994:08:49:37 +0000]`.
const LOG_TIME_LEN: usize = 28;

/// The time as one event-loop iteration sees it. Updated once per wake-up:
/// everything handled in the same iteration shares one `now`, which also
/// makes deadlines computed in that iteration consistent with each other.
#[derive(Debug)]
pub struct Clock {
    now: Instant,
    unix_second: u64,
    http_date: [u8; HTTP_DATE_LEN],
    log_time: [u8; LOG_TIME_LEN],
}

impl Clock {
    /// A clock set to the current time.
    pub fn new() -> Clock {
        let mut clock = Clock {
            now: Instant::now(),
            unix_second: u64::MAX,
            http_date: [b' '; HTTP_DATE_LEN],
            log_time: [b' '; LOG_TIME_LEN],
        };
        clock.update();
        clock
    }

    /// Reads the system clocks; reformats the dates when the second changed.
    pub fn update(&mut self) {
        self.now = Instant::now();
        let wall = SystemTime::now();
        let second = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.unix_second {
            self.unix_second = second;
            self.format(wall);
        }
    }

    fn format(&mut self, wall: SystemTime) {
        use std::io::Write as _;
        let mut date = &mut self.http_date[..];
        // An IMF-fixdate always has exactly HTTP_DATE_LEN bytes.
        let _ = write!(date, "{}", httpdate::HttpDate::from(wall));
        // Rearrange "Sun, 06 Nov 1994 08:49:37 GMT" into
        // "[06/Nov/1994:08:49:37 +0000]": same fields, log order.
        let d = &self.http_date;
        let mut log = &mut self.log_time[..];
        let _ = log.write_all(b"[");
        let _ = log.write_all(&d[5..7]);
        let _ = log.write_all(b"/");
        let _ = log.write_all(&d[8..11]);
        let _ = log.write_all(b"/");
        let _ = log.write_all(&d[12..16]);
        let _ = log.write_all(b":");
        let _ = log.write_all(&d[17..25]);
        let _ = log.write_all(b" +0000]");
    }

    /// The instant of this loop iteration.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The current time as an HTTP `Date` value.
    pub fn http_date(&self) -> &[u8] {
        &self.http_date
    }

    /// The current time as a Common Log Format field (UTC).
    pub fn log_time(&self) -> &[u8] {
        &self.log_time
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_both_forms_of_the_same_second() {
        let mut clock = Clock::new();
        clock.format(UNIX_EPOCH + Duration::from_secs(784_111_777));
        assert_eq!(clock.http_date(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(clock.log_time(), b"[06/Nov/1994:08:49:37 +0000]");
    }

    #[test]
    fn current_date_parses() {
        let clock = Clock::new();
        let date = std::str::from_utf8(clock.http_date()).unwrap();
        let parsed = httpdate::parse_http_date(date).unwrap();
        let skew = SystemTime::now().duration_since(parsed).unwrap();
        assert!(skew < Duration::from_secs(2));
    }
}
