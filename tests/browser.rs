//! A real browser against the real server: Debian's headless Chromium loads the demo site
//! (`htdocs/`) from mioserve on 127.0.0.1.
//!
//! Each test copies `htdocs/` into a temporary root (the repository's copy is never
//! touched) and adds test-only files under `/_probe/`: `probe.js` and a probe page whose
//! script looks at the site the way a person would (in an `<iframe>`: computed styles, a
//! decoded image, clicked links, a reload) or as a web application would (`fetch` with a
//! `Range` header), and writes what it found into the DOM for `chromium --dump-dom` to
//! carry back (see `support/browser.rs`). What the browser says is then checked against
//! the files on disk and against the server's access log.
//!
//! Needs the Debian package `chromium`; without it every test fails, saying so.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use support::browser::{Chromium, PROBE_JS, png_size, probe_hash, probe_page, test_output_dir};
use support::*;
use tempfile::TempDir;

/// The demo site shipped with the repository.
const HTDOCS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/htdocs");

/// Colours `htdocs/style.css` declares, as the browser reports computed colours. The tests
/// check that the stylesheet still declares them, so a change of the demo site's palette
/// fails with a message pointing here instead of a puzzling colour mismatch.
const CSS_BACKGROUND: (&str, &str) = ("--bg: #f3f1ea", "rgb(243, 241, 234)");
const CSS_CARD: (&str, &str) = ("--card: #ffffff", "rgb(255, 255, 255)");
const CSS_ACCENT: (&str, &str) = ("--accent: #146e78", "rgb(20, 110, 120)");

/// A copy of `htdocs/` plus `/_probe/probe.js`.
struct Site {
    /// Holds the root; removed on drop.
    _dir: TempDir,
    root: PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().expect("create site directory");
        let root = dir.path().join("htdocs");
        copy_tree(Path::new(HTDOCS), &root);
        let site = Site { _dir: dir, root };
        site.add("_probe/probe.js", PROBE_JS.as_bytes());
        site
    }

    /// Writes the test-only file `rel` into the root.
    fn add(&self, rel: &str, body: &[u8]) {
        let path = self.root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, body).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// A file of the demo site, as shipped.
    fn original(&self, rel: &str) -> Vec<u8> {
        let path = Path::new(HTDOCS).join(rel);
        fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }
}

/// Copies the directory `from` to `to` recursively (regular files and directories).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

fn url(server: &TestServer, path: &str) -> String {
    format!("http://{}{path}", server.addr())
}

/// The text of an HTML file's `<title>`.
fn title_of(html: &[u8]) -> String {
    let html = String::from_utf8_lossy(html);
    let start = html.find("<title>").expect("page has a <title>") + "<title>".len();
    let end = html[start..].find("</title>").expect("</title>") + start;
    html[start..end].to_owned()
}

/// Checks that the demo stylesheet still declares `declaration`.
fn assert_css_declares(css: &[u8], (declaration, _): (&str, &str)) {
    assert!(
        String::from_utf8_lossy(css).contains(declaration),
        "htdocs/style.css no longer declares `{declaration}`: update the expected colours \
         at the top of tests/browser.rs"
    );
}

/// Loads `/` into the probe's frame; the start of most probes.
const LOAD_INDEX: &str = r#"
const frame = document.getElementById("frame");
let loaded = frameLoad(frame);
frame.src = "/";
await loaded;
"#;

#[test]
fn index_page_loads_with_its_stylesheet_applied_and_its_image_decoded() {
    let site = Site::new();
    let css = site.original("style.css");
    for colour in [CSS_BACKGROUND, CSS_ACCENT] {
        assert_css_declares(&css, colour);
    }
    site.add(
        "_probe/index.html",
        probe_page(&format!(
            r#"{LOAD_INDEX}
const doc = frame.contentDocument;
const style = (selector, property) => getComputedStyle(doc.querySelector(selector))[property];
report("title", doc.title);
report("stylesheets", doc.styleSheets.length);
report("rules", doc.styleSheets[0].cssRules.length);
report("body.background", style("body", "backgroundColor"));
report("h1.color", style("h1", "color"));
report("main.borderTop", style("main", "borderTopColor"));
report("header.display", style("header", "display"));
// The frame's load event waited for the image; drawing it below decodes it.
const img = doc.querySelector("header img");
report("img.complete", img.complete);
report("img.naturalWidth", img.naturalWidth);
report("img.naturalHeight", img.naturalHeight);
report("img.renderedWidth", img.getBoundingClientRect().width);
// Decoded pixels, not just a size from the header: draw the logo and count the pixels
// that are not fully transparent.
const canvas = document.createElement("canvas");
canvas.width = img.naturalWidth;
canvas.height = img.naturalHeight;
const g = canvas.getContext("2d");
g.drawImage(img, 0, 0);
const px = g.getImageData(0, 0, canvas.width, canvas.height).data;
let opaque = 0;
for (let i = 3; i < px.length; i += 4) if (px[i] > 0) opaque++;
report("img.opaquePixels", opaque);
"#
        ))
        .as_bytes(),
    );
    let server = TestServer::start(&site.root, &[]);
    let found = Chromium::new().probe(&url(&server, "/_probe/index.html"));

    assert_eq!(found.text("title"), title_of(&site.original("index.html")));
    assert_eq!(found.number("stylesheets"), 1.0, "{found:?}");
    assert!(
        found.number("rules") > 5.0,
        "style.css has no rules: {found:?}"
    );
    assert_eq!(found.text("body.background"), CSS_BACKGROUND.1);
    assert_eq!(found.text("h1.color"), CSS_ACCENT.1);
    assert_eq!(found.text("main.borderTop"), CSS_ACCENT.1);
    assert_eq!(found.text("header.display"), "flex");
    // index.html says width="128"; only style.css (`header img { width: 64px }`) makes it 64.
    assert_eq!(found.number("img.renderedWidth"), 64.0, "{found:?}");

    let (w, h) = png_size(&site.original("logo.png"));
    assert_eq!(found.expect("img.complete"), "true");
    assert!(w > 0 && h > 0);
    assert_eq!(found.number("img.naturalWidth"), f64::from(w), "{found:?}");
    assert_eq!(found.number("img.naturalHeight"), f64::from(h), "{found:?}");
    assert!(
        found.number("img.opaquePixels") > f64::from(w * h) / 2.0,
        "the decoded logo is mostly transparent: {found:?}"
    );

    // The browser got each file in full from the server.
    let lines = server.wait_for_log(|lines| {
        has_log_line(lines, "GET /style.css HTTP/1.1", 200)
            && has_log_line(lines, "GET /logo.png HTTP/1.1", 200)
    });
    for (file, len) in [
        ("style.css", css.len()),
        ("logo.png", site.original("logo.png").len()),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.request_line == format!("GET /{file} HTTP/1.1")
                    && l.status == 200
                    && l.bytes == len as u64),
            "no `GET /{file}` 200 {len} in the log: {lines:?}"
        );
    }
}

#[test]
fn links_navigate_to_the_hello_page_and_a_missing_page_shows_the_404_page() {
    let site = Site::new();
    site.add(
        "_probe/links.html",
        probe_page(&format!(
            r#"{LOAD_INDEX}
const click = async (href) => {{
  const link = frame.contentDocument.querySelector(`a[href="${{href}}"]`);
  if (!link) throw new Error("no link to " + href);
  loaded = frameLoad(frame);
  link.click();
  await loaded;
}};
const doc = () => frame.contentDocument;

await click("hello.html");
report("hello.path", frame.contentWindow.location.pathname);
report("hello.title", doc().title);
report("hello.h1", doc().querySelector("h1").textContent);
report("hello.h1.color", getComputedStyle(doc().querySelector("h1")).color);

await click("index.html");
report("back.path", frame.contentWindow.location.pathname);
report("back.title", doc().title);

await click("no-such-page.html");
report("missing.path", frame.contentWindow.location.pathname);
report("missing.title", doc().title);
report("missing.h1", doc().querySelector("h1").textContent);
report("missing.text", doc().body.innerText.replace(/\s+/g, " ").trim());

const r = await fetch("/no-such-page.html");
report("missing.status", r.status);
report("missing.type", r.headers.get("Content-Type"));
report("missing.length", (await r.arrayBuffer()).byteLength);
"#
        ))
        .as_bytes(),
    );
    let server = TestServer::start(&site.root, &[]);
    let found = Chromium::new().probe(&url(&server, "/_probe/links.html"));

    let hello = site.original("hello.html");
    assert_eq!(found.text("hello.path"), "/hello.html");
    assert_eq!(found.text("hello.title"), title_of(&hello));
    assert_eq!(found.text("hello.h1"), "Hello, world!");
    assert_eq!(
        found.text("hello.h1.color"),
        CSS_ACCENT.1,
        "hello.html unstyled"
    );
    assert_eq!(found.text("back.path"), "/index.html");
    assert_eq!(
        found.text("back.title"),
        title_of(&site.original("index.html"))
    );

    // The browser shows the site's own 404 page, not one of its own error pages.
    let page_404 = site.original("404.html");
    assert_eq!(found.text("missing.path"), "/no-such-page.html");
    assert_eq!(found.text("missing.title"), title_of(&page_404));
    assert_eq!(found.text("missing.h1"), "404");
    assert!(
        found
            .text("missing.text")
            .contains("Sorry, there is nothing at this address."),
        "{found:?}"
    );
    assert_eq!(found.number("missing.status"), 404.0, "{found:?}");
    assert_eq!(found.text("missing.type"), "text/html; charset=utf-8");
    assert_eq!(found.number("missing.length"), page_404.len() as f64);

    let lines = server.wait_for_log(|lines| {
        has_log_line(lines, "GET /hello.html HTTP/1.1", 200)
            && has_log_line(lines, "GET /index.html HTTP/1.1", 200)
            && has_log_line(lines, "GET /no-such-page.html HTTP/1.1", 404)
    });
    for (request, status) in [
        ("GET /hello.html HTTP/1.1", 200),
        ("GET /index.html HTTP/1.1", 200),
        ("GET /no-such-page.html HTTP/1.1", 404),
    ] {
        assert!(
            has_log_line(&lines, request, status),
            "no `{request}` {status} in the log: {lines:?}"
        );
    }
}

#[test]
fn a_reload_revalidates_and_the_server_answers_304() {
    let site = Site::new();
    site.add(
        "_probe/reload.html",
        probe_page(&format!(
            r#"{LOAD_INDEX}
report("first.title", frame.contentDocument.title);
// A reload revalidates the page itself: the browser sends its validators, and on a 304
// shows the copy it has.
loaded = frameLoad(frame);
frame.contentWindow.location.reload();
await loaded;
report("reload.title", frame.contentDocument.title);
report("reload.h1", frame.contentDocument.querySelector("h1").textContent);
// `no-cache` makes fetch revalidate a cached response too; a 304 reaches the script as the
// cached 200.
const r = await fetch("/style.css", {{ cache: "no-cache" }});
report("nocache.status", r.status);
report("nocache.length", (await r.arrayBuffer()).byteLength);
"#
        ))
        .as_bytes(),
    );
    let server = TestServer::start(&site.root, &[]);
    let found = Chromium::new().probe(&url(&server, "/_probe/reload.html"));

    let title = title_of(&site.original("index.html"));
    assert_eq!(found.text("first.title"), title);
    assert_eq!(found.text("reload.title"), title);
    assert_eq!(found.text("reload.h1"), "mioserve");
    assert_eq!(found.number("nocache.status"), 200.0, "{found:?}");
    assert_eq!(
        found.number("nocache.length"),
        site.original("style.css").len() as f64
    );

    let lines = server.wait_for_log(|lines| {
        has_log_line(lines, "GET / HTTP/1.1", 304)
            && has_log_line(lines, "GET /style.css HTTP/1.1", 304)
    });
    // In any order: the browser may have used a new connection for the reload, served by
    // another worker that flushes its own log lines.
    let index: Vec<_> = lines
        .iter()
        .filter(|l| l.request_line == "GET / HTTP/1.1")
        .map(|l| (l.status, l.bytes))
        .collect();
    assert_eq!(
        sorted(index),
        [(200, site.original("index.html").len() as u64), (304, 0)],
        "expected `GET /` once 200 and once (the reload) 304: {lines:?}"
    );
    assert!(
        has_log_line(&lines, "GET /style.css HTTP/1.1", 304),
        "the no-cache fetch of style.css was not answered 304: {lines:?}"
    );
}

#[test]
fn a_large_file_is_fetched_whole_and_with_range_requests() {
    /// Larger than any socket buffer, so the ranges are served from deep inside the file.
    const LEN: usize = 8 * 1024 * 1024;
    /// (Range header, first byte, last byte).
    const RANGES: &[(&str, usize, usize)] = &[
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=5000000-5999999", 5_000_000, 5_999_999),
        ("bytes=-4096", LEN - 4096, LEN - 1),
    ];
    let body = pseudo_random(LEN, 0xB0B5_1E55);
    let site = Site::new();
    site.add("big.bin", &body);
    let mut script = String::from(
        r#"
const whole = await fetch("/big.bin");
const bytes = new Uint8Array(await whole.arrayBuffer());
report("whole.status", whole.status);
report("whole.acceptRanges", whole.headers.get("Accept-Ranges"));
report("whole.length", bytes.length);
report("whole.hash", hash(bytes));
"#,
    );
    for (i, (range, _, _)) in RANGES.iter().enumerate() {
        script.push_str(&format!(
            r#"
{{
  const r = await fetch("/big.bin", {{ headers: {{ Range: "{range}" }}, cache: "no-store" }});
  const part = new Uint8Array(await r.arrayBuffer());
  report("range{i}.status", r.status);
  report("range{i}.contentRange", r.headers.get("Content-Range"));
  report("range{i}.length", part.length);
  report("range{i}.hash", hash(part));
}}
"#
        ));
    }
    site.add("_probe/range.html", probe_page(&script).as_bytes());
    let server = TestServer::start(&site.root, &[]);
    let found = Chromium::new().probe(&url(&server, "/_probe/range.html"));

    assert_eq!(found.number("whole.status"), 200.0, "{found:?}");
    assert_eq!(found.text("whole.acceptRanges"), "bytes");
    assert_eq!(found.number("whole.length"), LEN as f64);
    assert_eq!(found.number("whole.hash"), f64::from(probe_hash(&body)));
    for (i, &(range, first, last)) in RANGES.iter().enumerate() {
        let key = |k: &str| format!("range{i}.{k}");
        assert_eq!(found.number(&key("status")), 206.0, "{range}: {found:?}");
        assert_eq!(
            found.text(&key("contentRange")),
            format!("bytes {first}-{last}/{LEN}"),
            "{range}"
        );
        assert_eq!(found.number(&key("length")), (last + 1 - first) as f64);
        assert_eq!(
            found.number(&key("hash")),
            f64::from(probe_hash(&body[first..=last])),
            "{range}: wrong bytes"
        );
    }

    let lines = server.wait_for_log(|lines| {
        lines
            .iter()
            .filter(|l| l.request_line == "GET /big.bin HTTP/1.1" && l.status == 206)
            .count()
            == RANGES.len()
    });
    let mut sent: Vec<_> = lines
        .iter()
        .filter(|l| l.request_line == "GET /big.bin HTTP/1.1")
        .map(|l| (l.status, l.bytes))
        .collect();
    sent.sort_unstable();
    let mut expected: Vec<_> = RANGES
        .iter()
        .map(|&(_, first, last)| (206, (last + 1 - first) as u64))
        .chain([(200, LEN as u64)])
        .collect();
    expected.sort_unstable();
    assert_eq!(sent, expected, "log lines for /big.bin: {lines:?}");
}

#[test]
fn a_screenshot_of_the_index_page_shows_the_styled_page() {
    let site = Site::new();
    let css = site.original("style.css");
    for colour in [CSS_BACKGROUND, CSS_CARD, CSS_ACCENT] {
        assert_css_declares(&css, colour);
    }
    site.add(
        "_probe/blank.html",
        b"<!doctype html>\n<meta charset=\"utf-8\">\n<title>blank</title>\n",
    );
    let server = TestServer::start(&site.root, &[]);
    let chromium = Chromium::new();
    let out = test_output_dir("browser");
    let index_png = out.join("index.png");
    let blank_png = out.join("blank.png");
    // A stale file from an earlier run must not pass for this run's screenshot.
    let _ = fs::remove_file(&index_png);
    let _ = fs::remove_file(&blank_png);
    chromium.screenshot(&url(&server, "/"), &index_png);
    chromium.screenshot(&url(&server, "/_probe/blank.html"), &blank_png);

    let index = fs::read(&index_png).unwrap();
    let blank = fs::read(&blank_png).unwrap();
    assert_eq!(png_size(&index), support::browser::WINDOW);
    assert_eq!(png_size(&blank), support::browser::WINDOW);
    // A flat page compresses to almost nothing; text, a logo and a shadowed card do not.
    assert!(
        index.len() > 4 * blank.len(),
        "{} ({} bytes) is hardly larger than an empty page's screenshot ({} bytes)",
        index_png.display(),
        index.len(),
        blank.len()
    );

    // Let the browser decode both screenshots and count the demo site's colours in them.
    site.add("_probe/index.png", &index);
    site.add("_probe/blank.png", &blank);
    let (bg, card, accent) = (CSS_BACKGROUND.1, CSS_CARD.1, CSS_ACCENT.1);
    site.add(
        "_probe/pixels.html",
        probe_page(&format!(
            r#"
const want = {{ bg: "{bg}", card: "{card}", accent: "{accent}" }};
const rgb = (s) => s.match(/\d+/g).map(Number);
for (const name of ["index", "blank"]) {{
  const img = await imageLoad(name + ".png");
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const g = canvas.getContext("2d");
  g.drawImage(img, 0, 0);
  const px = g.getImageData(0, 0, canvas.width, canvas.height).data;
  const distinct = new Set();
  const counts = {{ bg: 0, card: 0, accent: 0 }};
  const targets = Object.entries(want).map(([k, v]) => [k, rgb(v)]);
  for (let i = 0; i < px.length; i += 4) {{
    distinct.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
    for (const [k, [r, gr, b]] of targets) {{
      if (Math.abs(px[i] - r) <= 3 && Math.abs(px[i + 1] - gr) <= 3 && Math.abs(px[i + 2] - b) <= 3) counts[k]++;
    }}
  }}
  report(name + ".pixels", px.length / 4);
  report(name + ".distinct", distinct.size);
  for (const k in counts) report(name + "." + k, counts[k]);
}}
"#
        ))
        .as_bytes(),
    );
    let found = chromium.probe(&url(&server, "/_probe/pixels.html"));
    let pixels = found.number("index.pixels");
    assert_eq!(pixels, f64::from(WINDOW_PIXELS), "{found:?}");
    // The analysis itself must be able to tell: the empty page is one flat colour.
    assert!(found.number("blank.distinct") <= 2.0, "{found:?}");
    // Text and a logo on three flat colours: hundreds of shades (anti-aliasing).
    assert!(found.number("index.distinct") > 50.0, "{found:?}");
    // Roughly: the page background around the card, the white card, the teal title, top
    // border and links. Measured at 1024x768: 63 %, 32 %, 1.3 %.
    let share = |k: &str| found.number(&format!("index.{k}")) / pixels;
    assert!(share("bg") > 0.25, "page background missing: {found:?}");
    assert!(share("card") > 0.10, "white card missing: {found:?}");
    assert!(share("accent") > 0.002, "teal accents missing: {found:?}");
}

/// Pixels in a screenshot of [`support::browser::WINDOW`].
const WINDOW_PIXELS: u32 = support::browser::WINDOW.0 * support::browser::WINDOW.1;

/// A WAV file: `seconds` of a 440 Hz tone, 16-bit mono PCM at 8,000 Hz.
fn wav_tone(seconds: u32) -> Vec<u8> {
    const RATE: u32 = 8_000;
    let samples = RATE * seconds;
    let data_len = samples * 2;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&RATE.to_le_bytes());
    wav.extend_from_slice(&(RATE * 2).to_le_bytes()); // bytes per second
    wav.extend_from_slice(&2u16.to_le_bytes()); // bytes per frame
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for n in 0..samples {
        let phase = f64::from(n) * 440.0 * std::f64::consts::TAU / f64::from(RATE);
        wav.extend_from_slice(&((phase.sin() * 8000.0) as i16).to_le_bytes());
    }
    wav
}

#[test]
fn a_media_element_seeks_through_range_requests() {
    // 2,000 s of audio, 32 MB: far more than the browser buffers up front, so
    // seeking near the end needs a range that starts deep in the file.
    const SECONDS: u32 = 2_000;
    const SEEK_TO: u32 = 1_900;
    let site = Site::new();
    site.add("tone.wav", &wav_tone(SECONDS));
    let script = format!(
        r#"
const audio = document.createElement("audio");
audio.preload = "auto";
audio.src = "/tone.wav";
document.body.append(audio);
await new Promise((resolve, reject) => {{
  audio.addEventListener("loadedmetadata", resolve, {{ once: true }});
  audio.addEventListener("error", () => reject(new Error("media error " + audio.error.code)));
}});
report("duration", Math.round(audio.duration));
audio.currentTime = {SEEK_TO};
await new Promise((resolve) => audio.addEventListener("seeked", resolve, {{ once: true }}));
report("seekedTo", Math.round(audio.currentTime));
"#
    );
    site.add("_probe/media.html", probe_page(&script).as_bytes());
    let server = TestServer::start(&site.root, &[]);
    let found = Chromium::new().probe(&url(&server, "/_probe/media.html"));
    assert_eq!(found.number("duration"), f64::from(SECONDS), "{found:?}");
    assert_eq!(found.number("seekedTo"), f64::from(SEEK_TO), "{found:?}");

    // The media player fetched the file in ranges (206), one of them starting
    // near the seek target. Stopping the server flushes every log line.
    let mut server = server;
    assert!(server.stop().success());
    let seek_offset = u64::from(44 + SEEK_TO * 8_000 * 2);
    let total = u64::from(44 + SECONDS * 8_000 * 2);
    let ranged: Vec<(u16, u64)> = server
        .log_lines()
        .iter()
        .map(|line| parse_access_line(line))
        .filter(|l| l.request_line == "GET /tone.wav HTTP/1.1")
        .map(|l| (l.status, l.bytes))
        .collect();
    assert!(
        !ranged.is_empty() && ranged.iter().all(|&(status, _)| status == 206),
        "the media player asks for ranges: {ranged:?}"
    );
    assert!(
        ranged.len() >= 2
            && ranged
                .iter()
                .any(|&(_, bytes)| bytes <= total - seek_offset + 65_536),
        "no range started near the seek target: {ranged:?}"
    );
}

/// `--list-dirs` in a real browser: the listing renders as a table, a file name that is
/// markup (an `<img onerror>` and a `<script>`) shows as text and creates no element, and
/// the link the rendered page holds leads to the file.
#[test]
fn a_listing_renders_names_as_text_and_its_links_lead_to_the_files() {
    let fixture = Fixture::new();
    fs::create_dir(fixture.path("files")).unwrap();
    fixture.write("files/notes.txt", b"plain notes\n");
    let img = "<img src=x onerror=\"document.title='pwned'\">";
    let script = "<script>document.title='pwned'<\\script>";
    fixture.write(&format!("files/{img}"), b"img\n");
    fixture.write(&format!("files/{script}"), b"script\n");
    let server = TestServer::start(fixture.root(), &["--list-dirs"]);
    let chromium = Chromium::new();
    let dom = chromium.dump_dom(&url(&server, "/files/"));
    assert!(dom.contains("<title>Index of /files/</title>"), "{dom}");
    assert_eq!(dom.matches("<img").count(), 0, "{dom}");
    assert_eq!(dom.matches("<script").count(), 0, "{dom}");
    assert!(
        dom.contains("&lt;img src=x onerror=\"document.title='pwned'\"&gt;"),
        "{dom}"
    );
    let href = dom
        .split("href=\"")
        .find(|rest| rest.starts_with("/files/notes"))
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .expect("a link to notes.txt");
    let file = chromium.dump_dom(&url(&server, href));
    assert!(file.contains("plain notes"), "{file}");
}

#[test]
fn a_precompressed_stylesheet_is_decoded_and_applied() {
    let site = Site::new();
    let css = site.original("style.css");
    assert_css_declares(&css, CSS_ACCENT);
    // The copy gave every file a new modification time, in directory order; a sidecar
    // older than its original would be ignored, so make them as new as `gzip -k` does.
    let modified = fs::metadata(site.root.join("style.css"))
        .unwrap()
        .modified()
        .unwrap();
    for sidecar in ["style.css.br", "style.css.zst", "style.css.gz"] {
        let file = fs::File::options()
            .write(true)
            .open(site.root.join(sidecar));
        file.unwrap().set_modified(modified).unwrap();
    }
    site.add(
        "_probe/precompressed.html",
        probe_page(&format!(
            r#"{LOAD_INDEX}
const doc = frame.contentDocument;
report("h1.color", getComputedStyle(doc.querySelector("h1")).color);
report("rules", doc.styleSheets[0].cssRules.length);
const timing = frame.contentWindow.performance.getEntriesByName(new URL("/style.css", location).href)[0];
report("encodedBodySize", timing.encodedBodySize);
report("decodedBodySize", timing.decodedBodySize);
const r = await fetch("/style.css", {{ cache: "no-store" }});
report("fetch.encoding", r.headers.get("content-encoding"));
report("fetch.vary", r.headers.get("vary"));
const bytes = new Uint8Array(await r.arrayBuffer());
report("fetch.length", bytes.length);
report("fetch.hash", hash(bytes));
"#
        ))
        .as_bytes(),
    );
    let server = TestServer::start(&site.root, &["--precompressed"]);
    let found = Chromium::new().probe(&url(&server, "/_probe/precompressed.html"));

    // The stylesheet arrived encoded, and the page shows its decoded rules.
    assert_eq!(found.text("h1.color"), CSS_ACCENT.1, "{found:?}");
    assert!(found.number("rules") > 5.0, "{found:?}");
    assert_eq!(
        found.number("decodedBodySize"),
        css.len() as f64,
        "{found:?}"
    );
    let coding = found.text("fetch.encoding");
    let sidecar = match coding.as_str() {
        "br" => "style.css.br",
        "zstd" => "style.css.zst",
        "gzip" => "style.css.gz",
        other => panic!("style.css was not sent encoded (Content-Encoding {other:?}): {found:?}"),
    };
    let encoded_len = fs::read(site.root.join(sidecar)).unwrap().len();
    assert_eq!(
        found.number("encodedBodySize"),
        encoded_len as f64,
        "{found:?}"
    );
    assert_eq!(found.text("fetch.vary"), "Accept-Encoding");
    assert_eq!(found.number("fetch.length"), css.len() as f64);
    assert_eq!(found.number("fetch.hash"), f64::from(probe_hash(&css)));
    let lines = server.wait_for_log(|lines| has_log_line(lines, "GET /style.css HTTP/1.1", 200));
    assert!(
        lines
            .iter()
            .any(|l| l.request_line == "GET /style.css HTTP/1.1" && l.bytes == encoded_len as u64),
        "no `GET /style.css` of {encoded_len} bytes ({coding}) in the log: {lines:?}"
    );
}
