//! The timeline pictures of `docs/event-loop.md`: `--trace-format json` over real sockets,
//! then `docs/timeline/timeline.py record` run against this build, and its pages rendered
//! in headless Chromium (see `support/browser.rs`): each picture loads, is not blank, and
//! shows a span for each connection state, the wake-up ticks, the timeouts and the
//! closes. The committed pictures in `docs/timeline/` are checked the same way, so a
//! picture that stopped rendering is caught even before anyone regenerates it.
//!
//! Needs `python3` and the Debian package `chromium`.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::browser::{Chromium, PROBE_JS, probe_page};
use support::tools::{require, run_ok};
use support::*;

/// The recorder runs six scenarios of at most about a second each.
const RECORD_TIMEOUT: Duration = Duration::from_secs(120);

/// The scenarios `timeline.py record` draws, one SVG each.
const PICTURES: [&str; 6] = [
    "reuseport",
    "keepalive",
    "pipelined",
    "sendfile",
    "slow-reader",
    "header-timeout",
];

/// The states the scenarios go through (no PROXY protocol header in them).
const STATES: [&str; 5] = [
    "Idle",
    "ReadingRequest",
    "WritingResponse",
    "SendingFile",
    "Lingering",
];

#[test]
fn json_trace_is_one_object_per_line_with_wake_ups() {
    let fixture = Fixture::new();
    let mut server = TestServer::start(
        fixture.root(),
        &["--threads", "1", "--trace=events", "--trace-format", "json"],
    );
    let mut client = server.connect();
    assert_eq!(client.get("/hello.txt").status, 200);
    drop(client);
    assert!(server.stop().success());
    let stderr = server.stderr();
    let objects: Vec<&str> = stderr.lines().filter(|l| l.starts_with('{')).collect();
    assert!(
        objects
            .iter()
            .all(|l| l.ends_with('}') && l.contains(r#""worker":0,"#) && l.contains(r#""kind":""#)),
        "{stderr}"
    );
    let has = |needle: &str| objects.iter().any(|l| l.contains(needle));
    assert!(has(r#""kind":"wake","events":1"#), "{stderr}");
    assert!(
        has(r#""kind":"accept","conn":0,"peer":"127.0.0.1:"#),
        "{stderr}"
    );
    assert!(
        has(r#""conn":0,"token":0,"kind":"event","readiness":["readable"]"#),
        "{stderr}"
    );
    assert!(
        has(r#""kind":"transition","from":"Idle","to":"ReadingRequest""#),
        "{stderr}"
    );
    assert!(
        has(r#""kind":"request","line":"GET /hello.txt HTTP/1.1","status":200"#),
        "{stderr}"
    );
    assert!(
        has(r#""kind":"syscall","call":"read","asked":8192,"bytes":0,"drained":false"#),
        "{stderr}"
    );
    assert!(has(r#""to":"closed""#), "{stderr}");
    // No text trace line slips into the JSON.
    assert!(!stderr.contains(" -> ReadingRequest\n"), "{stderr}");
}

#[test]
fn text_trace_shows_each_epoll_wait_wake_up() {
    let fixture = Fixture::new();
    let mut server = TestServer::start(fixture.root(), &["--threads", "1", "--trace=events"]);
    let mut client = server.connect();
    assert_eq!(client.get("/hello.txt").status, 200);
    drop(client);
    assert!(server.stop().success());
    let stderr = server.stderr();
    assert!(stderr.contains(" w0  woke with 1 event\n"), "{stderr}");
}

/// The probe script for one picture, in a block of its own: loads it into the frame, counts what is drawn, and
/// draws it onto a canvas to count the pixels that are not background.
fn picture_probe(prefix: &str, url: &str) -> String {
    let states = STATES.map(|s| format!("\"{s}\"")).join(",");
    format!(
        r#"{{
  const frame = document.getElementById("frame");
  const loaded = frameLoad(frame);
  frame.src = "{url}";
  await loaded;
  const svg = frame.contentDocument.querySelector("svg");
  report("{prefix}.svg", svg !== null);
  for (const state of [{states}]) {{
    report("{prefix}.spans." + state, svg.querySelectorAll("rect.span.state-" + state).length);
  }}
  report("{prefix}.wakes", svg.querySelectorAll("line.wake").length);
  report("{prefix}.timeouts", svg.querySelectorAll("path.timeout").length - 1);
  report("{prefix}.closes", svg.querySelectorAll("rect.closed").length - 1);
  report("{prefix}.blocked", svg.querySelectorAll(".blocked").length - 1);
  report("{prefix}.lanes", svg.querySelectorAll("rect.lane").length);
  const image = await imageLoad("{url}");
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 0; i < pixels.length; i += 4) {{
    if (pixels[i] < 240 || pixels[i + 1] < 240 || pixels[i + 2] < 240) inked++;
  }}
  report("{prefix}.inked", inked / (canvas.width * canvas.height));
}}
"#
    )
}

#[test]
fn recorded_timelines_render_in_chromium_with_every_state() {
    let python = require("python3", "python3");
    let chromium = Chromium::new();
    let site = tempfile::tempdir().expect("create site directory");
    let root = site.path();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/timeline/timeline.py");
    run_ok(
        Command::new(python)
            .arg(&script)
            .arg("record")
            .args(["--binary", env!("CARGO_BIN_EXE_mioserve")])
            .arg("--out")
            .arg(root.join("fresh")),
        RECORD_TIMEOUT,
    );
    let committed = root.join("committed");
    fs::create_dir_all(&committed).unwrap();
    for name in PICTURES {
        let file = format!("{name}.svg");
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/timeline");
        fs::copy(docs.join(&file), committed.join(&file)).expect("a committed picture");
    }
    fs::create_dir_all(root.join("_probe")).unwrap();
    fs::write(root.join("_probe/probe.js"), PROBE_JS).unwrap();
    let mut script = String::new();
    for dir in ["fresh", "committed"] {
        for name in PICTURES {
            script += &picture_probe(&format!("{dir}.{name}"), &format!("/{dir}/{name}.svg"));
        }
    }
    script += r#"
  const page = document.getElementById("frame");
  const pageLoaded = frameLoad(page);
  page.src = "/fresh/timeline.html";
  await pageLoaded;
  report("page.pictures", page.contentDocument.querySelectorAll(".picture svg").length);
  const before = page.contentDocument.querySelector(".picture svg").getAttribute("width");
  page.contentDocument.getElementById("in").click();
  report("page.zoomed", page.contentDocument.querySelector(".picture svg").getAttribute("width") / before);
"#;
    fs::write(root.join("_probe/timeline.html"), probe_page(&script)).unwrap();

    let server = TestServer::start(root, &[]);
    let found = chromium.probe(&format!("http://{}/_probe/timeline.html", server.addr()));

    assert_eq!(found.number("page.pictures"), PICTURES.len() as f64);
    assert_eq!(found.number("page.zoomed"), 1.5);
    for dir in ["fresh", "committed"] {
        let count = |name: &str, what: &str| found.number(&format!("{dir}.{name}.{what}"));
        for name in PICTURES {
            assert_eq!(found.expect(&format!("{dir}.{name}.svg")), "true");
            assert!(count(name, "wakes") > 0.0, "{dir}/{name}: {found:?}");
            assert!(count(name, "closes") > 0.0, "{dir}/{name}: {found:?}");
            // Not blank: spans, marks and text cover a few per cent of the picture.
            assert!(count(name, "inked") > 0.02, "{dir}/{name}: {found:?}");
        }
        for state in STATES {
            let spans: f64 = PICTURES
                .iter()
                .map(|name| count(name, &format!("spans.{state}")))
                .sum();
            assert!(spans > 0.0, "{dir}: no {state} span: {found:?}");
        }
        assert_eq!(count("reuseport", "lanes"), 2.0, "{dir}: {found:?}");
        assert!(count("keepalive", "timeouts") >= 1.0, "{dir}: {found:?}");
        assert!(
            count("header-timeout", "timeouts") >= 1.0,
            "{dir}: {found:?}"
        );
        assert!(
            count("header-timeout", "spans.Lingering") >= 1.0,
            "{dir}: {found:?}"
        );
        assert!(
            count("sendfile", "spans.SendingFile") >= 1.0,
            "{dir}: {found:?}"
        );
        // A reader that keeps up may never fill the socket buffer; the slow
        // reader (a small receive buffer, paced reads) always does.
        assert!(count("slow-reader", "blocked") >= 1.0, "{dir}: {found:?}");
    }
}
