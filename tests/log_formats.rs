//! `--log-format combined` and `json`, read by the tools people read them with: GoAccess
//! parses a combined log of a test run and counts exactly the requests made; Python's
//! `json` module and `jq` parse every JSON line, hostile header values included, into the
//! values that were sent. The common format is tests/log.rs's.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use support::tools::{require, run_ok};
use support::*;

/// How long GoAccess, Python or jq may take over a log of a few lines.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// A `User-Agent` with every kind of byte a request header may carry that a log format
/// must escape: quotes, a backslash, a tab, UTF-8 text, a C1 control (U+009B, a terminal's
/// CSI) and bytes that are not UTF-8. (httparse refuses other control bytes in a field
/// value; they can reach the log only in the request line of a refused head.)
const HOSTILE_USER_AGENT: &[u8] = b"evil\" \"x\\y\tz caf\xc3\xa9 \xc2\x9b \xff\xfe";

/// `GET /hello.txt` with [`HOSTILE_USER_AGENT`] and a `Referer` of `"-"` (quotes
/// included: a naive parser would take the field for an absent one).
fn hostile_headers_request() -> Vec<u8> {
    [
        &b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nReferer: \"-\"\r\nUser-Agent: "[..],
        HOSTILE_USER_AGENT,
        b"\r\n\r\n",
    ]
    .concat()
}

/// A request line with a terminal escape sequence, answered 400 and logged as sent.
const HOSTILE_REQUEST: &[u8] = b"GET /\x1b[31mred HTTP/1.1\r\nHost: localhost\r\n\r\n";

const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 \
                      (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const REFERER: &str = "http://localhost/index.html";

/// One request of a test run, the status it gets, and the fields its log line must
/// hold (as the format writes them for `combined`, as decoded for `json`).
struct Exchange {
    request: Vec<u8>,
    status: u16,
    request_line: String,
    referer: Option<String>,
    user_agent: Option<String>,
}

impl Exchange {
    /// `GET target` with these `Referer` and `User-Agent` values (logged the same) and
    /// other header lines.
    fn get(
        target: &str,
        referer: Option<&str>,
        user_agent: Option<&str>,
        other_headers: &[String],
        status: u16,
    ) -> Exchange {
        let request_line = format!("GET {target} HTTP/1.1");
        let mut request = format!("{request_line}\r\nHost: localhost\r\n");
        for (name, value) in [("Referer", referer), ("User-Agent", user_agent)] {
            if let Some(value) = value {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        for header in other_headers {
            request.push_str(&format!("{header}\r\n"));
        }
        request.push_str("\r\n");
        Exchange {
            request: request.into_bytes(),
            status,
            request_line,
            referer: referer.map(str::to_owned),
            user_agent: user_agent.map(str::to_owned),
        }
    }

    /// A request whose header values or request line need escaping, with the fields as
    /// the log is to show them.
    fn hostile(request: &[u8], status: u16, logged: [Option<&str>; 3]) -> Exchange {
        let [request_line, referer, user_agent] = logged.map(|field| field.map(str::to_owned));
        Exchange {
            request: request.to_vec(),
            status,
            request_line: request_line.expect("a request line"),
            referer,
            user_agent,
        }
    }
}

/// Requests that every log analyser sees: pages and assets from a browser, a command-line
/// client, the statuses a static server answers; no hostile bytes.
fn ordinary_exchanges() -> Vec<Exchange> {
    let since = format!("If-Modified-Since: {FIXTURE_LAST_MODIFIED}");
    vec![
        Exchange::get("/index.html", None, Some(CHROME), &[], 200),
        Exchange::get("/style.css", Some(REFERER), Some(CHROME), &[], 200),
        Exchange::get("/hello.txt?q=1", None, Some("curl/8.5.0"), &[], 200),
        Exchange::get("/missing.png", Some(REFERER), Some(CHROME), &[], 404),
        Exchange::get("/sub", None, None, &[], 301),
        Exchange::get("/style.css", None, Some(CHROME), &[since], 304),
        Exchange::get("/hello.txt", None, None, &["Range: bytes=0-3".into()], 206),
        Exchange::hostile(
            b"HEAD /hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
            200,
            [Some("HEAD /hello.txt HTTP/1.1"), None, None],
        ),
        Exchange::hostile(
            b"DELETE /hello.txt HTTP/1.1\r\nHost: localhost\r\nReferer: \r\n\r\n",
            405,
            [Some("DELETE /hello.txt HTTP/1.1"), Some(""), None],
        ),
    ]
}

/// `exchanges`, then two requests with bytes the combined format escapes: quotes,
/// backslash, tab and non-ASCII bytes in `Referer` and `User-Agent`, and an escape
/// sequence in a request line (answered 400, which closes the connection: last).
fn with_hostile_bytes(mut exchanges: Vec<Exchange>) -> Vec<Exchange> {
    exchanges.push(Exchange::hostile(
        &hostile_headers_request(),
        200,
        [
            Some("GET /hello.txt HTTP/1.1"),
            Some(r"\x22-\x22"),
            Some(r"evil\x22 \x22x\x5Cy\x09z caf\xC3\xA9 \xC2\x9B \xFF\xFE"),
        ],
    ));
    exchanges.push(Exchange::hostile(
        HOSTILE_REQUEST,
        400,
        [Some(r"GET /\x1B[31mred HTTP/1.1"), None, None],
    ));
    exchanges
}

/// A server logging in `format` to a file, with one worker so that the lines are in the
/// order of the requests.
fn start_logging_in(format: &str) -> (Fixture, TestServer) {
    let fixture = Fixture::new();
    let server = TestServer::start(fixture.root(), &["--log-format", format, "--threads", "1"]);
    (fixture, server)
}

/// Sends every request on one connection, checks each status, stops the server and
/// returns its log's lines.
fn run_and_stop(server: &mut TestServer, exchanges: &[Exchange]) -> Vec<String> {
    let mut client = server.connect();
    for exchange in exchanges {
        client.send(&exchange.request);
        let response = client.read_response(exchange.request.starts_with(b"HEAD "));
        assert_eq!(
            response.status,
            exchange.status,
            "{:?}",
            String::from_utf8_lossy(&exchange.request)
        );
    }
    assert!(server.stop().success());
    let lines = server.log_lines();
    assert_eq!(lines.len(), exchanges.len(), "{lines:#?}");
    lines
}

#[test]
fn combined_lines_quote_referer_and_user_agent_escaped() {
    let (_fixture, mut server) = start_logging_in("combined");
    let exchanges = with_hostile_bytes(ordinary_exchanges());
    let lines = run_and_stop(&mut server, &exchanges);
    for (line, exchange) in lines.iter().zip(&exchanges) {
        let (common, referer, user_agent) = split_combined(line);
        assert_eq!(common.request_line, exchange.request_line, "{line:?}");
        assert_eq!(common.status, exchange.status, "{line:?}");
        assert_eq!(
            referer,
            exchange.referer.as_deref().unwrap_or("-"),
            "{line:?}"
        );
        assert_eq!(
            user_agent,
            exchange.user_agent.as_deref().unwrap_or("-"),
            "{line:?}"
        );
    }
}

#[test]
fn goaccess_counts_exactly_the_requests_of_a_combined_log() {
    let goaccess = require("goaccess", "goaccess");
    let (_fixture, mut server) = start_logging_in("combined");
    let exchanges = with_hostile_bytes(ordinary_exchanges());
    let lines = run_and_stop(&mut server, &exchanges);

    let log = server.log_path.clone().expect("a log file");
    let report = server.workdir().join("report.json");
    run_ok(
        Command::new(goaccess)
            .arg(&log)
            .args(["--no-global-config", "--log-format=COMBINED", "-o"])
            .arg(&report),
        TOOL_TIMEOUT,
    );
    // GoAccess's JSON report, boiled down by Python to `name count` lines: the totals,
    // the hits per status, and whether the Referer and User-Agent fields were read as
    // such (GoAccess names the browser from the User-Agent).
    let summary = run_ok(
        Command::new(require("python3", "python3")).args([
            "-c",
            "import json, sys\n\
             report = json.load(open(sys.argv[1]))\n\
             for key in ('total_requests', 'valid_requests', 'failed_requests', 'bandwidth'):\n\
             \x20   print(key, report['general'][key])\n\
             for group in report['status_codes']['data']:\n\
             \x20   for status in group['items']:\n\
             \x20       print(status['data'][:3], status['hits']['count'])\n\
             def hits(panel, name):\n\
             \x20   return sum(i['hits']['count'] for i in report[panel]['data'] if i['data'] == name)\n\
             print('Chrome', hits('browsers', 'Chrome'))\n\
             print('referred', hits('referrers', sys.argv[2]))\n",
            report.to_str().unwrap(),
            REFERER,
        ]),
        TOOL_TIMEOUT,
    );
    let summary: BTreeMap<String, usize> = String::from_utf8(summary.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (name, count) = line.split_once(' ').unwrap();
            (name.to_owned(), count.parse().unwrap())
        })
        .collect();

    let mut expected = BTreeMap::new();
    for exchange in &exchanges {
        *expected.entry(exchange.status.to_string()).or_insert(0) += 1;
    }
    let count =
        |matches: &dyn Fn(&Exchange) -> bool| exchanges.iter().filter(|e| matches(e)).count();
    expected.insert("total_requests".to_owned(), exchanges.len());
    expected.insert("valid_requests".to_owned(), exchanges.len());
    expected.insert("failed_requests".to_owned(), 0);
    let body_bytes: u64 = lines.iter().map(|line| split_combined(line).0.bytes).sum();
    expected.insert("bandwidth".to_owned(), body_bytes as usize);
    expected.insert(
        "Chrome".to_owned(),
        count(&|e| e.user_agent.as_deref() == Some(CHROME)),
    );
    expected.insert(
        "referred".to_owned(),
        count(&|e| e.referer.as_deref() == Some(REFERER)),
    );
    assert_eq!(summary, expected);
}

/// A combined line's common part, parsed, and its Referer and User-Agent fields as
/// logged (between the quotes). No value holds a quote: they are escaped.
fn split_combined(line: &str) -> (AccessLine, &str, &str) {
    let (rest, user_agent) = split_last_quoted(line);
    let (common, referer) = split_last_quoted(rest);
    (parse_access_line(common), referer, user_agent)
}

/// `text` without its last ` "…"` field, and that field's value.
fn split_last_quoted(text: &str) -> (&str, &str) {
    text.strip_suffix('"')
        .and_then(|text| text.rsplit_once(" \""))
        .unwrap_or_else(|| panic!("no quoted field at the end of {text:?}"))
}

/// Prints every field of every JSON line, decoded, each followed by a NUL byte: the
/// object's keys in order (comma-separated), `time` as Unix seconds, then `client`,
/// `request`, `status`, `bytes`, `referer` and `user_agent` (`(null)` for null).
const PYTHON_FIELDS: &str = "\
import datetime, json, sys
for line in open(sys.argv[1], encoding='utf-8'):
    entry = json.loads(line)
    time = datetime.datetime.strptime(entry['time'], '%Y-%m-%dT%H:%M:%S%z')
    fields = [','.join(entry), str(int(time.timestamp()))]
    for key in ('client', 'request', 'status', 'bytes', 'referer', 'user_agent'):
        fields.append('(null)' if entry[key] is None else str(entry[key]))
    for field in fields:
        sys.stdout.buffer.write(field.encode() + b'\\0')
";

/// The same as [`PYTHON_FIELDS`], in jq.
const JQ_FIELDS: &str = "((keys_unsorted | join(\",\")), (.time | fromdateiso8601 | tostring), \
     (.client, .request, .status, .bytes, .referer, .user_agent \
      | if . == null then \"(null)\" else tostring end)) | ., \"\\u0000\"";

#[test]
fn json_lines_parse_with_python_and_jq_into_the_values_sent() {
    let (_fixture, mut server) = start_logging_in("json");
    let mut exchanges = ordinary_exchanges();
    exchanges.push(Exchange::hostile(
        &hostile_headers_request(),
        200,
        [
            Some("GET /hello.txt HTTP/1.1"),
            Some("\"-\""),
            // Each sequence that is not UTF-8 is replaced by U+FFFD.
            Some("evil\" \"x\\y\tz café \u{9b} \u{fffd}\u{fffd}"),
        ],
    ));
    exchanges.push(Exchange::hostile(
        HOSTILE_REQUEST,
        400,
        [Some("GET /\u{1b}[31mred HTTP/1.1"), None, None],
    ));
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let lines = run_and_stop(&mut server, &exchanges);
    for line in &lines {
        assert!(
            line.bytes().all(|b| b >= b' ' && b != 0x7f),
            "a raw control byte in {line:?}"
        );
    }
    let log = server.log_path.clone().expect("a log file");
    let by_python = run_ok(
        Command::new(require("python3", "python3"))
            .args(["-c", PYTHON_FIELDS])
            .arg(&log),
        TOOL_TIMEOUT,
    );
    let by_jq = run_ok(
        Command::new(require("jq", "jq"))
            .args(["-j", JQ_FIELDS])
            .arg(&log),
        TOOL_TIMEOUT,
    );
    for (tool, output) in [("python3", by_python.stdout), ("jq", by_jq.stdout)] {
        let text = String::from_utf8(output).unwrap();
        let fields: Vec<&str> = text.split_terminator('\0').collect();
        let records: Vec<&[&str]> = fields.chunks(8).collect();
        assert_eq!(records.len(), exchanges.len(), "{tool}: {fields:?}");
        for (record, exchange) in records.iter().zip(&exchanges) {
            let [
                keys,
                time,
                client,
                request,
                status,
                bytes,
                referer,
                user_agent,
            ] = record
            else {
                panic!("{tool}: {record:?}");
            };
            assert_eq!(
                *keys, "time,client,request,status,bytes,referer,user_agent",
                "{tool}"
            );
            let time: u64 = time.parse().unwrap();
            assert!(time.abs_diff(started) <= 60, "{tool}: time {time}");
            assert_eq!(*client, "127.0.0.1", "{tool}");
            assert_eq!(*request, exchange.request_line, "{tool}");
            assert_eq!(*status, exchange.status.to_string(), "{tool}");
            assert!(bytes.parse::<u64>().is_ok(), "{tool}: bytes {bytes:?}");
            assert_eq!(
                (*referer, *user_agent),
                (
                    exchange.referer.as_deref().unwrap_or("(null)"),
                    exchange.user_agent.as_deref().unwrap_or("(null)")
                ),
                "{tool}"
            );
        }
    }
}
