//! Deciding the answer to one request: the static-file handler.
//!
//! Given a parsed request (or the reason it could not be parsed), this module
//! picks the status, writes the response head into the connection's output
//! buffer, and says what follows the head: nothing, a body already appended
//! after the head (a status page, one of the server's own answers, or a small
//! file from the worker's [`FileCache`]), a larger cached file's bytes to
//! send by reference, or a file to send with `sendfile` ([`BodySend`]).
//! It never touches the socket: the connection's state machine does the I/O.
//! Where a file's bytes come from is the cache's business
//! ([`FileCache::serve`], which also picks a precompressed sidecar by
//! `Accept-Encoding` under `--precompressed`); this module makes the HTTP
//! decisions around them: validators and ranges apply to whichever
//! representation was picked, the encoded bytes of a sidecar included.
//!
//! Besides files, the server answers a few requests about itself, ahead of
//! the document root: `OPTIONS` for any target (`answer_options`), and the
//! opt-in paths of [`SiteConfig`], the health check and the live counters,
//! which are written by one function (`answer_own`) and kept out of the
//! access log ([`Record`]).

use std::fs::File;
use std::io;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::{FileBody, FileCache, Served};
use crate::config::{CorsOrigins, SiteConfig, UNAVAILABLE_RETRY_AFTER};
use crate::files::{self, DocumentRoot, Lookup, PathForm};
use crate::http::encoding::AcceptEncoding;
use crate::http::range::{ByteRange, byte_range};
use crate::http::response::HeadWriter;
use crate::http::validators::{self, EntityTag};
use crate::http::{Method, Request, Span, Status, accept};
use crate::listing::{self, Format, Listing};
use crate::stats::StatsBoard;

/// The methods we allow, for the `Allow` header of the `204` that answers
/// `OPTIONS` and of `405` (RFC 9110 §9.3.7, §15.5.6).
pub const ALLOWED_METHODS: &[u8] = b"GET, HEAD, OPTIONS";

/// The request headers a CORS preflight is told it may send
/// (`Access-Control-Allow-Headers`): a fixed list, the ones the server reads
/// besides the CORS-safelisted ones. Echoing whatever a preflight asks for
/// would promise to honour headers that a static server ignores.
pub const CORS_ALLOWED_HEADERS: &[u8] = b"Range, If-None-Match, If-Modified-Since, If-Range";

/// How long a browser may reuse a preflight's answer
/// (`Access-Control-Max-Age`), in seconds: Chromium's ceiling.
const CORS_MAX_AGE_SECS: u64 = 7200;

/// The health check's body while serving: tiny, and the same every time.
const HEALTHY_BODY: &[u8] = b"ok\n";

/// The health check's body once draining (with `503`).
const DRAINING_BODY: &[u8] = b"draining\n";

/// Error pages a site may provide, by file name in the document root.
const CUSTOM_PAGES: [(Status, &str); 2] = [
    (Status::NotFound, "404.html"),
    (Status::BadRequest, "400.html"),
];

/// What is being served: the document root, the bodies of status pages, and
/// the [`SiteConfig`] the command line chose, with what is worked out from it
/// once. Built once at start and shared, read-only, by every worker.
#[derive(Debug)]
pub struct Site {
    /// Where files come from.
    pub root: DocumentRoot,
    /// One small HTML page per status, indexed by [`Status::index`].
    pages: Vec<Box<[u8]>>,
    /// What to serve besides files, and how: read as chosen.
    config: SiteConfig,
    /// `config.headers`, formatted once as `\r\nName: value` lines for
    /// [`HeadWriter::fields`]; empty without `--header`.
    header_fields: Box<[u8]>,
    /// `config.fallback`, decoded and checked at start.
    fallback_path: Option<Vec<u8>>,
    /// Every worker's published counters, served at `config.stats_path`.
    stats_board: Arc<StatsBoard>,
}

/// One of the server's own answers, found by [`Site::own_answer`].
#[derive(Clone, Copy, Debug)]
enum OwnAnswer<'a> {
    /// The health check.
    Health,
    /// The live counters.
    Stats(&'a StatsBoard),
}

impl Site {
    /// Opens the document root and prepares the status pages: the site's own
    /// `404.html` and `400.html` when it has them (read once, here), a
    /// generated page otherwise.
    ///
    /// Every [`SiteConfig`] option is off, so no counters are served: the
    /// board is one nobody publishes to.
    pub fn open(root_path: &Path) -> io::Result<Site> {
        let unpublished = Arc::new(StatsBoard::new(1));
        Site::open_with(root_path, SiteConfig::default(), unpublished)
    }

    /// Like [`Site::open`], with the [`SiteConfig`] the command line chose and
    /// the board the workers publish their counters to.
    pub fn open_with(
        root_path: &Path,
        config: SiteConfig,
        stats_board: Arc<StatsBoard>,
    ) -> io::Result<Site> {
        let root = DocumentRoot::open(root_path)?.with_symlinks(config.symlinks);
        let fallback_path = config
            .fallback
            .as_deref()
            .map(|target| decode_fallback(&root, target))
            .transpose()?;
        let mut header_fields = Vec::new();
        let mut head = HeadWriter::fields_only(&mut header_fields);
        for field in &config.headers {
            head.header(&field.name, field.value.as_bytes());
        }
        let pages = Status::ALL
            .iter()
            .map(|&status| {
                let custom = CUSTOM_PAGES
                    .iter()
                    .find(|(page_status, _)| *page_status == status)
                    .and_then(|(_, name)| std::fs::read(root_path.join(name)).ok());
                custom
                    .unwrap_or_else(|| generated_page(status))
                    .into_boxed_slice()
            })
            .collect();
        Ok(Site {
            root,
            pages,
            config,
            header_fields: header_fields.into_boxed_slice(),
            fallback_path,
            stats_board,
        })
    }

    /// Appends the fields every `2xx` or `304` answer with content (a file or
    /// a listing) carries: the `--header` fields and the CORS ones.
    fn write_content_fields(&self, request: &Request, input: &[u8], head: &mut HeadWriter<'_>) {
        head.fields(&self.header_fields);
        if let Some(cors) = &self.config.cors {
            write_allow_origin(cors, request.origin.map(|origin| origin.of(input)), head);
        }
    }

    /// Whether a missing path gets the `--fallback` page instead of `404`,
    /// and whether that depends on `Accept`. The page stands in for the
    /// routes of a single-page app, which have no extension
    /// (`/users/42`, `/settings/`); a missing asset (`/app.js`, `/logo.png`,
    /// or any last segment with a dot) stays `404`, as do requests that
    /// take no HTML (`fetch()` with `Accept: application/json`).
    fn fallback_for(&self, request: &Request, input: &[u8]) -> Fallback<'_> {
        let Some(page) = &self.fallback_path else {
            return Fallback::None;
        };
        let (path, _query) = files::split_target(request.target.of(input));
        let last_segment = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        if last_segment.contains(&b'.') {
            Fallback::None
        } else if accept::accepts_html(request.accept.map(|accept| accept.of(input))) {
            Fallback::Page(page)
        } else {
            Fallback::NotAcceptable
        }
    }

    fn page(&self, status: Status) -> &[u8] {
        &self.pages[status.index()]
    }

    /// The server's own answer for a request path, if it has one: each of
    /// these paths is opt-in (`--health-path`, `--stats-path`) and matched
    /// exactly, against the path before any query string.
    fn own_answer(&self, path: &[u8]) -> Option<OwnAnswer<'_>> {
        let is_path =
            |own_path: &Option<String>| own_path.as_deref().map(str::as_bytes) == Some(path);
        if is_path(&self.config.health_path) {
            Some(OwnAnswer::Health)
        } else if is_path(&self.config.stats_path) {
            Some(OwnAnswer::Stats(&self.stats_board))
        } else {
            None
        }
    }
}

/// What a missing path gets, with `--fallback`.
#[derive(Clone, Copy, Debug)]
enum Fallback<'a> {
    /// `404`, whatever the request accepts.
    None,
    /// `404`, because the request takes no HTML (so it varies by `Accept`).
    NotAcceptable,
    /// The page at this decoded path.
    Page(&'a [u8]),
}

/// Checks a `--fallback` target at start: it must decode to a regular file
/// in the root (so a typo fails now, not on every missed route).
fn decode_fallback(root: &DocumentRoot, target: &str) -> io::Result<Vec<u8>> {
    let invalid = |reason: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--fallback {target}: {reason}"),
        )
    };
    let mut path = Vec::new();
    match files::decode_path(target.as_bytes(), &mut path) {
        Ok(PathForm::File) => {}
        _ => return Err(invalid("not a file path like /index.html")),
    }
    let decoded = path.clone();
    match root.lookup_decoded(&mut path, PathForm::File) {
        Lookup::File(_) => Ok(decoded),
        _ => Err(invalid("no such file in the root")),
    }
}

/// `Access-Control-Allow-Origin` for a request from `origin`: `*` for any
/// origin, or the origin itself when it is one of those allowed (and then
/// `Vary: Origin`, since the answer depends on the request's origin).
fn write_allow_origin(cors: &CorsOrigins, origin: Option<&[u8]>, head: &mut HeadWriter<'_>) {
    match cors {
        CorsOrigins::Any => head.header("Access-Control-Allow-Origin", b"*"),
        CorsOrigins::Only(allowed) => {
            if let Some(origin) =
                origin.filter(|origin| allowed.iter().any(|allowed| allowed.as_bytes() == *origin))
            {
                head.header("Access-Control-Allow-Origin", origin);
            }
            head.header("Vary", b"Origin");
        }
    }
}

fn generated_page(status: Status) -> Vec<u8> {
    let title = format!("{} {}", status.code(), status.reason());
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1><hr><p>mioserve</p></body></html>\n"
    )
    .into_bytes()
}

/// A file body still to be sent with `sendfile`, and how far we got.
#[derive(Debug)]
pub struct FileSend {
    /// The open file.
    pub file: File,
    /// Offset of the next byte to send.
    pub offset: u64,
    /// Bytes still to send.
    pub remaining: u64,
}

/// A cached body (or a range of it) still to be sent straight from the
/// cache entry's bytes, and how far we got. The bytes are shared with the
/// entry, so an entry evicted or invalidated while its body is on the way
/// out stays whole for this response: the client gets the version its head
/// announced.
///
/// The offsets are `u32`: a cached body is at most
/// [`crate::cache::MAX_CACHED_FILE_BYTES`]. That keeps [`BodySend`] at 32
/// bytes and a connection's state within 128, which the compiler moves with
/// a few inline instructions on every transition instead of a call to
/// `memcpy` (a test in `connection` holds it there).
#[derive(Debug)]
pub struct CachedSend {
    /// The entry's whole body.
    bytes: Arc<[u8]>,
    /// Index of the next byte to send.
    offset: u32,
    /// Index one past the last byte to send.
    end: u32,
}

impl CachedSend {
    /// `bytes[offset..end]` of a cache entry's body, still to send.
    pub fn new(bytes: Arc<[u8]>, offset: usize, end: usize) -> CachedSend {
        debug_assert!(offset <= end && end <= bytes.len() && end <= u32::MAX as usize);
        CachedSend {
            bytes,
            offset: offset as u32,
            end: end as u32,
        }
    }

    /// The bytes still to send.
    pub fn unsent(&self) -> &[u8] {
        &self.bytes[self.offset as usize..self.end as usize]
    }

    /// Records that the kernel took the next `count` bytes.
    pub fn advance(&mut self, count: usize) {
        debug_assert!(count <= self.unsent().len());
        self.offset += count as u32;
    }
}

/// A body that does not go through the output buffer: it follows the head
/// from where it already lies.
#[derive(Debug)]
pub enum BodySend {
    /// A file's bytes, with `sendfile` once the output buffer is out.
    File(FileSend),
    /// A cache entry's bytes, by reference, in the same `sendmsg` as the
    /// head (see [`MIN_CACHED_SEND_BYTES`]).
    Cached(CachedSend),
}

/// Cached bodies of at least this many bytes leave by reference
/// ([`BodySend::Cached`]) instead of being copied after the head into the
/// connection's output buffer.
///
/// The copy costs a `memcpy` into a per-connection buffer, and the kernel
/// then copies that same, now cold, buffer into the socket; by reference the
/// kernel copies from the cache entry, which every connection shares and
/// which stays hot. But a two-piece `sendmsg` costs a little more than a
/// `send`: for small bodies the copy is cheaper. The figures (CPU per
/// request, copied against by reference, 1 to 64 KiB) are in
/// [`crate::connection`], "How a body leaves", and why a pipelined batch
/// copies all but its last body whatever their size.
pub const MIN_CACHED_SEND_BYTES: usize = 8 * 1024;

/// The decision for one request. The head (and any in-memory body) is in the
/// output buffer passed to [`answer`].
#[derive(Debug)]
pub struct Answer {
    /// The status sent.
    pub status: Status,
    /// Whether the connection stays open for another request.
    pub keep_alive: bool,
    /// Bytes of the output buffer that are the head; the rest is body.
    pub head_len: usize,
    /// A body to send after the output buffer, from where it lies.
    pub body: Option<BodySend>,
    /// How the exchange is accounted for once the response is out.
    pub record: Record,
}

/// How an exchange is accounted for once its response is out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// An access-log line, and counted by status class: every request for a
    /// file, and every error.
    Logged,
    /// A health check: counted apart, not logged. Balancers poll it every
    /// second or faster, which would bury the requests that matter.
    HealthCheck,
    /// The counters page: neither logged nor counted, so that reading the
    /// counters does not change them.
    Unrecorded,
}

/// Per-request facts that do not come from the request.
#[derive(Clone, Copy, Debug)]
pub struct Env<'a> {
    /// The current `Date` value, cached by the worker once a second.
    pub date: &'a [u8],
    /// The keep-alive timeout announced (`Keep-Alive: timeout=N`) by a
    /// response that keeps its connection open.
    pub keep_alive: Duration,
    /// Whether the server is draining (see [`crate::drain`]): every response
    /// closes its connection and the health check fails.
    pub draining: bool,
    /// This event-loop iteration's time, for the file cache.
    pub now: Instant,
}

impl Env<'_> {
    /// What [`HeadWriter::connection`] announces for a response that
    /// `keeps_open` its connection: the keep-alive timeout, or `None`
    /// (`Connection: close`) when it does not or the server is draining.
    fn announced_keep_alive(&self, keeps_open: bool) -> Option<Duration> {
        (keeps_open && !self.draining).then_some(self.keep_alive)
    }
}

/// Answers a parsed request. `input` is the buffer the request's spans point
/// into; `scratch` is a reusable buffer for path decoding.
pub fn answer(
    site: &Site,
    cache: &mut FileCache,
    request: &Request,
    input: &[u8],
    env: Env<'_>,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Answer {
    // A request with a body we will not read must be the last one on its
    // connection: otherwise we would parse the body as the next request.
    // Once draining, every request is the last one.
    let keep_alive = request.keep_alive && !request.has_body && !env.draining;
    let is_head = request.method == Method::Head;
    let status_page = |status: Status, extra_header, out: &mut Vec<u8>| {
        let page = StatusPage {
            status,
            keep_alive,
            is_head,
            extra_header,
        };
        page.write(site, env, out)
    };
    match request.method {
        Method::Get | Method::Head => {}
        Method::Options => return answer_options(site, request, input, keep_alive, env, out),
        Method::NotAllowed => return status_page(Status::MethodNotAllowed, None, out),
        Method::Unknown => return status_page(Status::NotImplemented, None, out),
    }
    let target = request.target.of(input);
    if let Some(own) = site.own_answer(files::split_target(target).0) {
        return answer_own(own, keep_alive, is_head, env, out);
    }
    let form = match files::decode_path(target, scratch) {
        Ok(form) => form,
        Err(status) => return status_page(status, None, out),
    };
    let accepted = site
        .config
        .precompressed
        .then(|| AcceptEncoding::new(request.accept_encoding.map(|span| span.of(input))));
    let status = match cache.serve(&site.root, scratch, form, accepted, env.now) {
        Served::File(body) => {
            return answer_file(site, request, input, keep_alive, env, body, None, out);
        }
        Served::AddSlash => {
            // The directory's URL with its slash, built from the decoded path
            // rather than copied from the request: `//evil.example` must not
            // become `Location: //evil.example/`, which names another host.
            let mut location = Vec::with_capacity(scratch.len() + 2);
            files::encode_path(scratch, &mut location);
            location.push(b'/');
            if let (_, Some(query)) = files::split_target(target) {
                location.push(b'?');
                location.extend_from_slice(query);
            }
            return status_page(Status::MovedPermanently, Some(("Location", &location)), out);
        }
        Served::NoIndex(directory) if site.config.list_dirs => {
            let hidden = cache.hidden();
            let found = Listing::read(&site.root, &directory, scratch, hidden);
            return match found {
                Ok(listing) => answer_listing(
                    site, request, input, &listing, scratch, keep_alive, env, out,
                ),
                Err(error) => status_page(files::status_for_error(&error), None, out),
            };
        }
        Served::NoIndex(_) => Status::Forbidden,
        Served::Refused(status) => status,
    };
    if status != Status::NotFound {
        return status_page(status, None, out);
    }
    match site.fallback_for(request, input) {
        Fallback::None => status_page(status, None, out),
        Fallback::NotAcceptable => status_page(status, Some(("Vary", b"Accept")), out),
        Fallback::Page(page) => {
            scratch.clear();
            scratch.extend_from_slice(page);
            match cache.serve(&site.root, scratch, PathForm::File, accepted, env.now) {
                Served::File(body) => {
                    let vary = Some(&b"Accept"[..]);
                    answer_file(site, request, input, keep_alive, env, body, vary, out)
                }
                // The page was checked at start; it is gone now.
                _ => status_page(status, None, out),
            }
        }
    }
}

/// A response whose body is one of the site's status pages.
#[derive(Clone, Copy, Debug)]
pub struct StatusPage<'a> {
    /// The status to send.
    pub status: Status,
    /// Whether the request allows keeping the connection open; statuses that
    /// leave the framing in doubt close it regardless.
    pub keep_alive: bool,
    /// `HEAD`: the same head, no body.
    pub is_head: bool,
    /// One more header: where a `301` points, the `Content-Range` of a `416`.
    pub extra_header: Option<(&'static str, &'a [u8])>,
}

impl StatusPage<'_> {
    /// The answer to a head that could not be parsed: the connection closes,
    /// since we cannot tell where the next request would begin.
    pub fn for_invalid_head(status: Status) -> StatusPage<'static> {
        StatusPage {
            status,
            keep_alive: false,
            is_head: false,
            extra_header: None,
        }
    }

    /// Writes the head and the page into `out`.
    pub fn write(self, site: &Site, env: Env<'_>, out: &mut Vec<u8>) -> Answer {
        let keep_alive = self.keep_alive && !self.status.closes_connection();
        let page = site.page(self.status);
        let mut head = HeadWriter::start(out, self.status, env.date);
        if let Some((name, value)) = self.extra_header {
            head.header(name, value);
        }
        if self.status == Status::MethodNotAllowed {
            head.header("Allow", ALLOWED_METHODS);
        }
        if self.status == Status::ServiceUnavailable {
            head.header_number("Retry-After", UNAVAILABLE_RETRY_AFTER.as_secs());
        }
        head.content_type("text/html");
        head.header_number("Content-Length", page.len() as u64);
        head.connection(env.announced_keep_alive(keep_alive));
        head.finish();
        let head_len = out.len();
        if !self.is_head {
            out.extend_from_slice(page);
        }
        Answer {
            status: self.status,
            keep_alive,
            head_len,
            body: None,
            record: Record::Logged,
        }
    }
}

/// Answers with a file: `200` and its body, `304` when the client's copy is
/// current, `206` with one byte range, or `416` when the range lies beyond the
/// end. `input` is the buffer `request`'s spans point into; `vary` names the
/// request header the choice of this file depended on, if any.
#[allow(clippy::too_many_arguments)]
fn answer_file(
    site: &Site,
    request: &Request,
    input: &[u8],
    keep_alive: bool,
    env: Env<'_>,
    body: FileBody<'_>,
    vary: Option<&[u8]>,
    out: &mut Vec<u8>,
) -> Answer {
    let facts = body.facts();
    let header = |span: Option<Span>| span.map(|span| span.of(input));
    let not_modified = match header(request.if_none_match) {
        Some(tags) => validators::none_match_fails(tags, &facts.etag),
        None => header(request.if_modified_since)
            .is_some_and(|since| validators::is_unmodified_since(facts.modified, since)),
    };
    // Ranges apply to GET only, and only if If-Range (when present) holds.
    let range = match header(request.range) {
        Some(range) if request.method == Method::Get && !not_modified => {
            let if_range = header(request.if_range);
            if if_range
                .is_none_or(|value| validators::if_range_holds(value, &facts.etag, facts.modified))
            {
                byte_range(range, facts.len)
            } else {
                ByteRange::Whole
            }
        }
        _ => ByteRange::Whole,
    };
    let (status, first, len) = match range {
        _ if not_modified => (Status::NotModified, 0, facts.len),
        ByteRange::Whole => (Status::Ok, 0, facts.len),
        ByteRange::Part { first, last } => (Status::PartialContent, first, last - first + 1),
        ByteRange::Unsatisfiable => {
            let mut value = [0u8; 32];
            let value = format_into(&mut value, format_args!("bytes */{}", facts.len));
            let page = StatusPage {
                status: Status::RangeNotSatisfiable,
                keep_alive,
                is_head: false,
                extra_header: Some(("Content-Range", value)),
            };
            return page.write(site, env, out);
        }
    };
    let mut head = HeadWriter::start(out, status, env.date);
    // The client of a 304 holds the representation already: the head names
    // which one (`ETag`, `Vary`) and states no length. A length is allowed,
    // but load generators such as wrk read it as a body to wait for.
    body.write_fields(status, &mut head);
    if let Some(vary) = vary {
        head.header("Vary", vary);
    }
    site.write_content_fields(request, input, &mut head);
    // For HEAD this is the length a GET would have received (RFC 9110
    // §8.6).
    if status != Status::NotModified {
        head.header_number("Content-Length", len);
    }
    if status == Status::PartialContent {
        head.header_display(
            "Content-Range",
            format_args!("bytes {first}-{}/{}", first + len - 1, facts.len),
        );
    }
    head.connection(env.announced_keep_alive(keep_alive));
    head.finish();
    let head_len = out.len();
    let sends_body = matches!(status, Status::Ok | Status::PartialContent)
        && request.method == Method::Get
        && len > 0;
    let body = match body {
        _ if !sends_body => None,
        FileBody::Cached(cached) => {
            // The range lies within the body (it was clamped to the file's
            // length, which is the cached body's length), and a cached body
            // is small: the bounds fit a `usize`.
            let (offset, end) = (first as usize, (first + len) as usize);
            if end - offset >= MIN_CACHED_SEND_BYTES {
                Some(BodySend::Cached(CachedSend::new(
                    Arc::clone(&cached.body),
                    offset,
                    end,
                )))
            } else {
                out.extend_from_slice(&cached.body[offset..end]);
                None
            }
        }
        FileBody::Disk { file, .. } => Some(BodySend::File(FileSend {
            file,
            offset: first,
            remaining: len,
        })),
    };
    Answer {
        status,
        keep_alive,
        head_len,
        body,
        record: Record::Logged,
    }
}

/// `OPTIONS`, for a path or `*`: `204` with the methods we allow (RFC 9110
/// §9.3.7). The file is not looked up: the methods are the same for every
/// path, and a balancer's default health check (HAProxy's bare
/// `option httpchk` sends `OPTIONS / HTTP/1.0`) needs a cheap answer.
///
/// With `--cors`, the same answer serves CORS preflights (an `OPTIONS` with
/// `Origin` and `Access-Control-Request-Method`, Fetch standard §3.2.3):
/// the allowed origin, methods and request headers
/// ([`CORS_ALLOWED_HEADERS`]), and how long the browser may remember them.
/// A preflight from an origin not allowed gets no `Access-Control-Allow-Origin`,
/// which the browser takes as a refusal.
fn answer_options(
    site: &Site,
    request: &Request,
    input: &[u8],
    keep_alive: bool,
    env: Env<'_>,
    out: &mut Vec<u8>,
) -> Answer {
    let mut head = HeadWriter::start(out, Status::NoContent, env.date);
    head.header("Allow", ALLOWED_METHODS);
    let origin = request.origin.map(|origin| origin.of(input));
    if let Some(cors) = &site.config.cors
        && request.is_cors_preflight
        && origin.is_some()
    {
        write_allow_origin(cors, origin, &mut head);
        head.header("Access-Control-Allow-Methods", ALLOWED_METHODS);
        head.header("Access-Control-Allow-Headers", CORS_ALLOWED_HEADERS);
        head.header_number("Access-Control-Max-Age", CORS_MAX_AGE_SECS);
    }
    // No `Content-Length`: a 204 must not send one (RFC 9110 §8.6).
    head.connection(env.announced_keep_alive(keep_alive));
    head.finish();
    Answer {
        status: Status::NoContent,
        keep_alive,
        head_len: out.len(),
        body: None,
        record: Record::Logged,
    }
}

/// Answers with a directory listing (`--list-dirs`): `200`, or `304` when
/// `If-None-Match` holds the tag of the same bytes. The format follows
/// `Accept` ([`Format::negotiate`]); `path` is the decoded directory path.
#[allow(clippy::too_many_arguments)]
fn answer_listing(
    site: &Site,
    request: &Request,
    input: &[u8],
    listing: &Listing,
    path: &[u8],
    keep_alive: bool,
    env: Env<'_>,
    out: &mut Vec<u8>,
) -> Answer {
    let format = Format::negotiate(request.accept.map(|accept| accept.of(input)));
    let mut body = Vec::new();
    listing.render(path, format, &mut body);
    let etag = EntityTag::of_digest(listing::digest(&body), body.len() as u64);
    let not_modified = request
        .if_none_match
        .is_some_and(|tags| validators::none_match_fails(tags.of(input), &etag));
    let status = if not_modified {
        Status::NotModified
    } else {
        Status::Ok
    };
    let mut head = HeadWriter::start(out, status, env.date);
    head.header("ETag", etag.as_bytes());
    head.header("Vary", b"Accept");
    site.write_content_fields(request, input, &mut head);
    if status == Status::Ok {
        head.content_type(format.media_type());
        head.header("X-Content-Type-Options", b"nosniff");
        head.header("Content-Security-Policy", listing::CONTENT_SECURITY_POLICY);
        head.header_number("Content-Length", body.len() as u64);
    }
    head.connection(env.announced_keep_alive(keep_alive));
    head.finish();
    let head_len = out.len();
    if status == Status::Ok && request.method == Method::Get {
        out.extend_from_slice(&body);
    }
    Answer {
        status,
        keep_alive,
        head_len,
        body: None,
        record: Record::Logged,
    }
}

/// One of the server's own answers: the health check (a fixed body, nothing
/// formatted but the head, as cheap as a cached file) or the counters as
/// JSON. Never cached by clients, never logged.
fn answer_own(
    own: OwnAnswer<'_>,
    keep_alive: bool,
    is_head: bool,
    env: Env<'_>,
    out: &mut Vec<u8>,
) -> Answer {
    // Stays empty (and unallocated) but for the counters.
    let mut json = Vec::new();
    let (status, content_type, body, record): (_, &[u8], &[u8], _) = match own {
        OwnAnswer::Health if env.draining => (
            Status::ServiceUnavailable,
            b"text/plain",
            DRAINING_BODY,
            Record::HealthCheck,
        ),
        OwnAnswer::Health => (Status::Ok, b"text/plain", HEALTHY_BODY, Record::HealthCheck),
        OwnAnswer::Stats(board) => {
            board.json(&mut json);
            (Status::Ok, b"application/json", &json, Record::Unrecorded)
        }
    };
    let mut head = HeadWriter::start(out, status, env.date);
    head.header("Content-Type", content_type);
    head.header("Cache-Control", b"no-store");
    head.header_number("Content-Length", body.len() as u64);
    head.connection(env.announced_keep_alive(keep_alive));
    head.finish();
    let head_len = out.len();
    if !is_head {
        out.extend_from_slice(body);
    }
    Answer {
        status,
        keep_alive,
        head_len,
        body: None,
        record,
    }
}

/// Formats into a small stack buffer (too small a buffer truncates).
fn format_into<'a>(buffer: &'a mut [u8], args: std::fmt::Arguments<'_>) -> &'a [u8] {
    let capacity = buffer.len();
    let mut unused = &mut buffer[..];
    let _ = unused.write_fmt(args);
    let written = capacity - unused.len();
    &buffer[..written]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pages_name_their_status() {
        let page = String::from_utf8(generated_page(Status::NotFound)).unwrap();
        assert!(page.contains("<title>404 Not Found</title>"));
    }
}
