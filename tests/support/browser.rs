//! Headless Debian Chromium as a test client.
//!
//! The browser is driven from the command line only, no DevTools protocol: each call is one
//! `chromium --headless` run that loads one URL and either prints the DOM (`--dump-dom`) or
//! writes a screenshot (`--screenshot`). What a test wants to know about the page is found
//! out by a small test-only *probe page* served by mioserve itself: its script inspects the
//! site (in an `<iframe>`, with `fetch`, with a `<canvas>`) and writes `key=value` lines
//! into `<pre id="result">`, which the dumped DOM carries back. [`PROBE_JS`] is the shared
//! part of those scripts.
//!
//! `--virtual-time-budget` makes the dump wait until the page's scripts have run: virtual
//! time only advances while no network fetch is pending, so the budget is spent on timers,
//! not on a slow machine's I/O, and the result does not depend on the load of the machine.
//!
//! A [`Chromium`] owns a fresh profile directory (`--user-data-dir`), so runs share
//! nothing with each other or with a developer's browser; two runs of the same `Chromium`
//! share its HTTP cache, as a browser that is restarted would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::tools::{require, run, tail};

/// How long one Chromium run may take, start-up included, before the test fails. A run
/// takes about 1.5 s on an idle 2-core machine; this leaves room for a busy one.
pub const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);

/// Virtual time, in milliseconds, a page's scripts get before the DOM is dumped. Virtual
/// time fast-forwards when the page is idle, so this costs nothing when probes finish.
pub const VIRTUAL_TIME_BUDGET_MS: u32 = 30_000;

/// The window (and so the screenshot) size.
pub const WINDOW: (u32, u32) = (1024, 768);

/// Shared probe-page script, served as `probe.js` next to the probe pages. It defines
///
/// - `report(key, value)`: appends `key=value` to `<pre id="result">` (the value as JSON,
///   so `"text"`, `12`, `true`);
/// - `probe(async () => { ... })`: runs the steps, reports an exception as `error=...`,
///   then reports `done=true` and sets the title to `finished`;
/// - `frameLoad(frame)`: a promise for the next `load` event of an `<iframe>`;
/// - `imageLoad(src)`: a promise for a loaded `Image` of `src`;
/// - `hash(bytes)`: a 32-bit polynomial hash of a `Uint8Array`, the same as
///   [`probe_hash`], so the test can check bytes without shipping them through the DOM.
pub const PROBE_JS: &str = r#""use strict";
function report(key, value) {
  const pre = document.getElementById("result");
  pre.textContent += key + "=" + JSON.stringify(value) + "\n";
}
async function probe(steps) {
  try {
    await steps();
  } catch (e) {
    report("error", String((e && e.stack) || e));
  }
  report("done", true);
  document.title = "finished";
}
function frameLoad(frame) {
  return new Promise((resolve) => frame.addEventListener("load", resolve, { once: true }));
}
function imageLoad(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("cannot load image " + src));
    img.src = src;
  });
}
function hash(bytes) {
  let h = 0;
  for (const b of bytes) h = (Math.imul(h, 31) + b) >>> 0;
  return h;
}
"#;

/// The hash `probe.js`'s `hash` computes: `h = h * 31 + byte (mod 2^32)`.
pub fn probe_hash(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0u32, |h, &b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
}

/// A probe page: `probe.js` and `body_script` inside `probe(async () => { ... })`, with an
/// `<iframe id="frame">` of [`WINDOW`]'s size for the pages under test.
pub fn probe_page(body_script: &str) -> String {
    let (w, h) = WINDOW;
    format!(
        "<!doctype html>\n<meta charset=\"utf-8\">\n<title>probe running</title>\n\
         <pre id=\"result\"></pre>\n\
         <iframe id=\"frame\" width=\"{w}\" height=\"{h}\"></iframe>\n\
         <script src=\"probe.js\"></script>\n\
         <script>\nprobe(async () => {{\n{body_script}\n}});\n</script>\n"
    )
}

/// One headless Chromium profile.
pub struct Chromium {
    program: PathBuf,
    /// The `--user-data-dir`: fresh per `Chromium`, removed on drop.
    profile: TempDir,
}

impl Chromium {
    /// Finds `chromium` (failing the test, naming the package, if it is missing) and makes
    /// a fresh profile.
    pub fn new() -> Chromium {
        Chromium {
            program: require("chromium", "chromium"),
            profile: tempfile::tempdir().expect("create chromium profile directory"),
        }
    }

    /// The flags every run gets: headless, no sandbox (tests run as root in CI), and none
    /// of the background traffic a fresh profile would start (component updates, sync,
    /// QUIC probes), so the only network traffic is to the server under test.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", self.profile.path().display()))
        .arg(format!("--window-size={},{}", WINDOW.0, WINDOW.1))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"));
        cmd
    }

    /// Loads `url`, lets its scripts run, and returns the serialised DOM.
    pub fn dump_dom(&self, url: &str) -> String {
        let out = run(self.command().arg("--dump-dom").arg(url), CHROMIUM_TIMEOUT);
        let dom = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && dom.contains("<html"),
            "chromium --dump-dom {url} failed ({}); stdout: {:?}; stderr: {:?}",
            out.status,
            tail(&dom),
            tail(&String::from_utf8_lossy(&out.stderr))
        );
        dom
    }

    /// Loads the probe page at `url` and returns its findings (see [`findings`]); panics
    /// if the probe did not finish or reported an error.
    pub fn probe(&self, url: &str) -> Findings {
        let dom = self.dump_dom(url);
        let found = findings(&dom);
        assert!(
            found.get("done") == Some("true") && found.get("error").is_none(),
            "probe {url} did not finish cleanly: {found:?}\nDOM: {}",
            tail(&dom)
        );
        found
    }

    /// Loads `url` and writes a PNG screenshot of the window to `path`.
    pub fn screenshot(&self, url: &str, path: &Path) {
        let out = run(
            self.command()
                .arg(format!("--screenshot={}", path.display()))
                .arg(url),
            CHROMIUM_TIMEOUT,
        );
        assert!(
            out.status.success() && path.is_file(),
            "chromium --screenshot {url} failed ({}); stderr: {:?}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr))
        );
    }
}

/// What a probe page reported: `key` → the value's JSON text.
#[derive(Debug)]
pub struct Findings(BTreeMap<String, String>);

impl Findings {
    /// The JSON text reported for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The JSON text reported for `key`; panics if it was not reported.
    pub fn expect(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| panic!("the probe reported no {key:?}: {self:?}"))
    }

    /// A reported JSON string, unquoted. Only the escapes `JSON.stringify` produces for
    /// ordinary text (`\"`, `\\`) are undone; that is all the probes need.
    pub fn text(&self, key: &str) -> String {
        let raw = self.expect(key);
        raw.strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{key} is not a string: {raw}"))
            .replace("\\\"", "\"")
            .replace("\\\\", "\\")
    }

    /// A reported number.
    pub fn number(&self, key: &str) -> f64 {
        let raw = self.expect(key);
        raw.parse()
            .unwrap_or_else(|_| panic!("{key} is not a number: {raw}"))
    }
}

/// Parses the `key=value` lines of `<pre id="result">` in a dumped DOM. The DOM is HTML, so
/// the text's `&`, `<`, `>` and non-breaking spaces arrive as entities and are decoded.
pub fn findings(dom: &str) -> Findings {
    const OPEN: &str = "<pre id=\"result\">";
    let mut map = BTreeMap::new();
    let Some(start) = dom.find(OPEN) else {
        return Findings(map);
    };
    let text = &dom[start + OPEN.len()..];
    let text = &text[..text.find("</pre>").unwrap_or(text.len())];
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=') {
            map.insert(key.to_owned(), value.to_owned());
        }
    }
    Findings(map)
}

/// Width and height from a PNG's `IHDR` chunk, after checking the signature.
pub fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR",
        "not a PNG file ({} bytes)",
        png.len()
    );
    let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

/// Where a test crate keeps files for people to look at after a run:
/// `<target dir>/test-output/<name>/`, created if needed. (Cargo gives integration tests
/// `CARGO_TARGET_TMPDIR`, `<target dir>/tmp`; its parent is the target directory, wherever
/// `CARGO_TARGET_DIR` put it.)
pub fn test_output_dir(name: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("test-output").join(name);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}
