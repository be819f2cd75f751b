//! A worker's clock: the current instant, and the human-readable forms of the
//! current time that every response and log line needs (an HTTP date, and the
//! access log's time in its Common Log Format and RFC 3339 forms), formatted
//! at most once per second instead of once per request.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`.
const HTTP_DATE_LEN: usize = 29;

/// Length of a Common Log Format time, `[06/Nov/1994:08:49:37 +0000]`.
const LOG_TIME_LEN: usize = 28;

/// Length of an RFC 3339 UTC time to the second, `1994-11-06T08:49:37Z`.
const RFC3339_TIME_LEN: usize = 20;

/// The current second as the access log writes it, in the form each
/// `--log-format` needs.
#[derive(Clone, Copy, Debug)]
pub struct LogTime<'a> {
    /// `[06/Nov/1994:08:49:37 +0000]`, brackets included (`common`,
    /// `combined`).
    pub common: &'a [u8],
    /// `1994-11-06T08:49:37Z` (`json`).
    pub rfc3339: &'a [u8],
}

/// The time as one event-loop iteration sees it. Updated once per wake-up:
/// everything handled in the same iteration shares one `now`, which also
/// makes deadlines computed in that iteration consistent with each other.
#[derive(Debug)]
pub struct Clock {
    now: Instant,
    unix_second: u64,
    http_date: [u8; HTTP_DATE_LEN],
    log_time: [u8; LOG_TIME_LEN],
    rfc3339_time: [u8; RFC3339_TIME_LEN],
}

impl Clock {
    /// A clock set to the current time.
    pub fn new() -> Clock {
        let mut clock = Clock {
            now: Instant::now(),
            unix_second: u64::MAX,
            http_date: [b' '; HTTP_DATE_LEN],
            log_time: [b' '; LOG_TIME_LEN],
            rfc3339_time: [b' '; RFC3339_TIME_LEN],
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
        // The month as a number, which neither form above has.
        let unix_second = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (year, month, day) = civil_from_days(unix_second / SECONDS_PER_DAY);
        let second_of_day = unix_second % SECONDS_PER_DAY;
        let _ = write!(
            &mut self.rfc3339_time[..],
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60
        );
    }

    /// The instant of this loop iteration.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The current time as an HTTP `Date` value.
    pub fn http_date(&self) -> &[u8] {
        &self.http_date
    }

    /// The current time as the access log writes it (UTC).
    pub fn log_time(&self) -> LogTime<'_> {
        LogTime {
            common: &self.log_time,
            rfc3339: &self.rfc3339_time,
        }
    }
}

const SECONDS_PER_DAY: u64 = 86_400;

/// The proleptic Gregorian `(year, month, day)` of a count of days since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`, for days after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Eras of 400 years (146,097 days) starting on March 1st, year 0: the
    // leap day is then the last day of a year.
    let days = days + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
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
    fn formats_every_form_of_the_same_second() {
        let mut clock = Clock::new();
        clock.format(UNIX_EPOCH + Duration::from_secs(784_111_777));
        assert_eq!(clock.http_date(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(clock.log_time().common, b"[06/Nov/1994:08:49:37 +0000]");
        assert_eq!(clock.log_time().rfc3339, b"1994-11-06T08:49:37Z");
    }

    #[test]
    fn civil_dates_agree_with_http_dates() {
        // Leap days, year ends and century years, checked against httpdate.
        for days in [0, 59, 789, 10_956, 11_016, 11_017, 11_322, 19_417, 47_541] {
            let wall = UNIX_EPOCH + Duration::from_secs(days * SECONDS_PER_DAY);
            let (year, month, day) = civil_from_days(days);
            const MONTHS: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let expected = httpdate::fmt_http_date(wall);
            assert_eq!(
                &expected[5..16],
                format!("{day:02} {} {year}", MONTHS[month as usize - 1]),
                "day {days}"
            );
        }
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
