//! Micro-benchmarks of the request path's CPU work, without sockets:
//! parsing a request head, decoding its path, building a response head with
//! the server's own [`FileFacts::write_fields`] and `header_number`, and the
//! whole decision for one request ([`respond::answer`] on a cached file).
//! Regressions show up here without a load test.
//!
//! `cargo bench --bench micro` prints nanoseconds per operation (the median
//! of several timed batches, so a noisy neighbour moves it little).
//! `harness = false`: a plain `main`, no benchmark framework.

use std::hint::black_box;
use std::time::{Duration, Instant, UNIX_EPOCH};

use mioserve::cache::{FileCache, FileFacts};
use mioserve::files::decode_path;
use mioserve::http::encoding::Variant;
use mioserve::http::request::{Parsed, parse};
use mioserve::http::response::HeadWriter;
use mioserve::http::validators::EntityTag;
use mioserve::http::{Request, Status};
use mioserve::respond::{self, Env, Site};

/// Named inputs: what browsers and load generators actually send.
const REQUESTS: [(&str, &[u8]); 3] = [
    (
        "wrk (minimal)",
        b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8888\r\n\r\n",
    ),
    (
        "curl",
        b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8888\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
    ),
    (
        "chromium (revalidation)",
        b"GET /style.css HTTP/1.1\r\nHost: 127.0.0.1:8888\r\nConnection: keep-alive\r\n\
sec-ch-ua: \"Chromium\";v=\"156\"\r\nsec-ch-ua-mobile: ?0\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) \
AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36\r\nsec-ch-ua-platform: \"Linux\"\r\n\
Accept: text/css,*/*;q=0.1\r\nSec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: no-cors\r\n\
Sec-Fetch-Dest: style\r\nReferer: http://127.0.0.1:8888/\r\nAccept-Encoding: gzip, deflate, br\r\n\
Accept-Language: en-US,en;q=0.9\r\nIf-None-Match: \"18ea3f74dc27ab87-3cc\"\r\n\
If-Modified-Since: Sun, 22 Nov 2026 03:12:52 GMT\r\n\r\n",
    ),
];

const TARGETS: [(&str, &[u8]); 3] = [
    ("plain", b"/index.html"),
    ("nested with query", b"/docs/guide/intro.html?utm_source=x"),
    ("percent-encoded", b"/caf%C3%A9/hello%20world.txt"),
];

/// Runs `op` in batches and returns the median time per call.
fn time_per_call(mut op: impl FnMut()) -> Duration {
    const BATCHES: usize = 15;
    const CALLS_PER_BATCH: u32 = 20_000;
    let mut batches: Vec<Duration> = (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CALLS_PER_BATCH {
                op();
            }
            start.elapsed() / CALLS_PER_BATCH
        })
        .collect();
    batches.sort();
    batches[BATCHES / 2]
}

fn report(group: &str, name: &str, per_call: Duration) {
    println!(
        "{group:<14} {name:<26} {:>8.1} ns",
        per_call.as_secs_f64() * 1e9
    );
}

fn main() {
    for (name, raw) in REQUESTS {
        report(
            "parse",
            name,
            time_per_call(|| {
                black_box(parse(black_box(raw)).ok());
            }),
        );
    }
    let mut decoded = Vec::with_capacity(256);
    for (name, target) in TARGETS {
        report(
            "decode_path",
            name,
            time_per_call(|| {
                black_box(decode_path(black_box(target), &mut decoded).ok());
            }),
        );
    }
    let mut out = Vec::with_capacity(1024);
    let modified = UNIX_EPOCH + Duration::from_secs(1_681_806_734);
    let facts = FileFacts {
        len: 1234,
        modified,
        etag: EntityTag::of(modified, 1234),
        mime: "text/html",
        variant: Variant::Sole,
    };
    report(
        "response head",
        "200 with file fields",
        time_per_call(|| {
            out.clear();
            let mut head = HeadWriter::start(&mut out, Status::Ok, DATE);
            facts.write_fields(&mut head);
            head.header_number("Content-Length", facts.len);
            head.connection(Some(KEEP_ALIVE));
            head.finish();
            black_box(&out);
        }),
    );
    // What the file cache stores with each entry.
    let mut fields = Vec::new();
    facts.write_fields(&mut HeadWriter::fields_only(&mut fields));
    report(
        "response head",
        "200, cached fields",
        time_per_call(|| {
            out.clear();
            let mut head = HeadWriter::start(&mut out, Status::Ok, DATE);
            head.fields(&fields);
            head.header_number("Content-Length", facts.len);
            head.connection(Some(KEEP_ALIVE));
            head.finish();
            black_box(&out);
        }),
    );
    answer_from_the_cache();
}

/// The `Date` every timed head carries.
const DATE: &[u8] = b"Sun, 22 Nov 2026 03:12:52 GMT";

/// The keep-alive timeout every timed head announces.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// [`respond::answer`] for a 1 KiB file in the worker's cache: a plain `GET`
/// (`200`, the body copied after the head) and a revalidation (`304`).
fn answer_from_the_cache() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let index = dir.path().join("index.html");
    std::fs::write(&index, [b'x'; 1024]).expect("index.html written");
    let metadata = std::fs::metadata(&index).expect("index.html exists");
    let modified = metadata.modified().expect("a modification time");
    let etag = EntityTag::of(modified, metadata.len());
    let site = Site::open(dir.path()).expect("the site opens");
    let mut cache = FileCache::default();
    let mut scratch = Vec::with_capacity(256);
    let mut out = Vec::with_capacity(4096);
    let env = Env {
        date: DATE,
        keep_alive: KEEP_ALIVE,
        draining: false,
        now: Instant::now(),
    };
    let mut answer = |request: &Request, raw: &[u8]| {
        out.clear();
        respond::answer(&site, &mut cache, request, raw, env, &mut scratch, &mut out)
    };
    let get = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    assert_eq!(answer(&complete(get), get).status, Status::Ok);
    let revalidation = format!(
        "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-None-Match: {}\r\n\r\n",
        String::from_utf8_lossy(etag.as_bytes())
    );
    let revalidation = revalidation.as_bytes();
    assert_eq!(
        answer(&complete(revalidation), revalidation).status,
        Status::NotModified
    );
    let cases: [(&str, &[u8]); 2] = [("200 from the cache", get), ("304", revalidation)];
    for (name, raw) in cases {
        let request = complete(raw);
        report(
            "answer",
            name,
            time_per_call(|| {
                black_box(answer(black_box(&request), raw));
            }),
        );
    }
}

/// The request in `raw`, which must be a complete head.
fn complete(raw: &[u8]) -> Request {
    match parse(raw) {
        Ok(Parsed::Complete(request)) => request,
        other => panic!("not a complete request: {other:?}"),
    }
}
