//! nginx in front of mioserve, with the configurations docs/deploy.md shows: an HTTP
//! reverse proxy that keeps its upstream connections alive, and (when nginx's `stream`
//! module is installed) a TCP proxy that sends the PROXY protocol header, so that
//! mioserve logs the client's address.
//!
//! Each machine is a network namespace on one bridge ([`Lan`]): a client, nginx, a
//! backend. Needs root, `ip`, `nginx`, `curl` and `wrk`; skips, saying why, without root.
//! nginx runs in the foreground in a process group the test kills, with every path it
//! writes in a temporary directory.

mod support;

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use support::load::Load;
use support::netns::{Host, Lan};
use support::tools::{GroupGuard, require, run, skip, tail};
use support::*;

/// The port mioserve listens on in its namespace.
const BACKEND_PORT: u16 = 8080;

/// The port nginx listens on for clients.
const FRONTEND_PORT: u16 = 80;

/// nginx's dynamic `stream` module, as Debian's `libnginx-mod-stream` installs it.
const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// nginx with a configuration of the test's, killed with its workers on drop.
struct Nginx {
    dir: tempfile::TempDir,
    _child: Child,
    _group: GroupGuard,
}

impl Nginx {
    /// Writes `body` (the `http` or `stream` block, and a `load_module` line if needed)
    /// under the settings every run needs, checks it, and starts nginx in `host`. nginx
    /// takes `load_module` only before any block, so those lines go first.
    fn start(host: &Host, body: &str) -> Nginx {
        let nginx = require("nginx", "nginx");
        let dir = tempfile::tempdir().expect("nginx directory");
        let prefix = dir.path().display().to_string();
        let config = dir.path().join("nginx.conf");
        // Everything nginx writes stays in the temporary directory.
        let common = format!(
            "daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n\
             error_log {prefix}/error.log warn;\nevents {{}}\n"
        );
        let (modules, blocks): (Vec<&str>, Vec<&str>) = body
            .lines()
            .partition(|line| line.starts_with("load_module"));
        let text = format!("{}\n{common}{}\n", modules.join("\n"), blocks.join("\n"));
        std::fs::write(&config, text).unwrap();
        // Checked where it runs: `-t` binds the listening address too.
        let checked = run(
            host.ns
                .command(&nginx)
                .args(["-t", "-p", &prefix, "-c"])
                .arg(&config),
            Duration::from_secs(10),
        );
        assert!(
            checked.status.success(),
            "nginx -t: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
        let child = host
            .ns
            .command(nginx)
            .args(["-p", &prefix, "-c"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.path().join("stderr")).unwrap())
            .process_group(0)
            .spawn()
            .expect("spawn nginx");
        let group = GroupGuard::new(&child);
        let started = wait_until(Duration::from_secs(10), || {
            dir.path().join("nginx.pid").exists()
        });
        let nginx = Nginx {
            dir,
            _child: child,
            _group: group,
        };
        assert!(started, "nginx did not start: {}", nginx.errors());
        nginx
    }

    fn errors(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
        tail(&log).to_owned()
    }
}

/// The directives that keep nginx's temporary files under `prefix`.
fn temp_paths(prefix: &Path) -> String {
    ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|kind| format!("    {kind}_temp_path {}/{kind};\n", prefix.display()))
        .collect()
}

/// The `http` block of docs/deploy.md: a reverse proxy keeping up to 16 idle connections
/// to mioserve open between requests.
fn http_proxy(listen: Ipv4Addr, backend: Ipv4Addr, prefix: &Path) -> String {
    format!(
        "http {{
{temp}    access_log off;
    upstream mioserve {{
        server {backend}:{BACKEND_PORT};
        keepalive 16;
    }}
    server {{
        listen {listen}:{FRONTEND_PORT};
        location / {{
            proxy_pass http://mioserve;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
",
        temp = temp_paths(prefix),
    )
}

/// The `stream` block of docs/deploy.md: TCP passed through, with a PROXY header first.
fn stream_proxy(listen: Ipv4Addr, backend: Ipv4Addr) -> String {
    format!(
        "load_module {STREAM_MODULE};
stream {{
    server {{
        listen {listen}:{FRONTEND_PORT};
        proxy_pass {backend}:{BACKEND_PORT};
        proxy_protocol on;
    }}
}}
"
    )
}

/// The total of counter `name` in the JSON served at `/_stats`.
fn total(json: &str, name: &str) -> u64 {
    let total = &json[json.find("\"total\"").expect("a total")..];
    let key = format!("\"{name}\":");
    let value = &total[total.find(&key).expect("the counter") + key.len()..];
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

/// The three hosts of a test, in this order: the client, nginx's and mioserve's; `None`
/// (the test skipped, and why said) where network namespaces cannot be made.
fn client_front_and_backend(test: &str) -> Option<Lan> {
    match Lan::create(&["client", "nginx", "backend"]) {
        Ok(lan) => Some(lan),
        Err(reason) => {
            skip(test, &reason);
            None
        }
    }
}

/// mioserve serving `fixture` on `host`'s address and [`BACKEND_PORT`], with `args` too.
fn start_backend(host: &Host, fixture: &Fixture, args: &[&str]) -> TestServer {
    let bind = host.ip.to_string();
    let port = BACKEND_PORT.to_string();
    let mut all = vec!["--bind", &bind, "--port", &port];
    all.extend_from_slice(args);
    TestServer::start_in_netns(&host.ns, fixture.root(), &all)
}

/// `curl -s URL` from `host`, expecting a 2xx answer; returns the body. A refused
/// connection is retried for a few seconds: nginx writes its pid file before every
/// listener of a fresh namespace is reachable.
fn curl(host: &Host, url: &str) -> String {
    let curl = require("curl", "curl");
    let retry = ["--retry", "20", "--retry-delay", "0", "--retry-connrefused"];
    let out = run(
        host.ns.command(curl).arg("-sf").args(retry).arg(url),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "curl {url}: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nginx_http_proxy_reuses_its_upstream_connections() {
    let test = "nginx_http_proxy_reuses_its_upstream_connections";
    let Some(lan) = client_front_and_backend(test) else {
        return;
    };
    let [client, front, back] = &lan.hosts[..] else {
        unreachable!("three hosts")
    };
    let fixture = Fixture::new();
    let mut server = start_backend(back, &fixture, &["--stats-path", "/_stats"]);
    let prefix = tempfile::tempdir().unwrap();
    let _nginx = Nginx::start(front, &http_proxy(front.ip, back.ip, prefix.path()));
    let base = format!("http://{}:{FRONTEND_PORT}", front.ip);
    // Once nginx answers (curl retries until it listens), wrk can start.
    assert_eq!(
        curl(client, &format!("{base}/hello.txt")).as_bytes(),
        content("hello.txt")
    );

    let load = Load::start(
        &client.ns,
        "keep-alive through nginx",
        &format!("{base}/hello.txt"),
        &[],
    );
    std::thread::sleep(Duration::from_secs(1));
    let report = load.finish();
    assert_eq!(report.failures(), 0, "{}", tail(&report.text));
    let stats = curl(client, &format!("{base}/_stats"));
    let (accepted, requests) = (total(&stats, "accepted"), total(&stats, "requests"));
    eprintln!(
        "nginx keepalive 16: {} through nginx; mioserve accepted {accepted} connections \
         for {requests} requests",
        report.summary()
    );
    // Without upstream keep-alive, every request would be a connection of its own.
    assert!(
        requests >= 100 * accepted,
        "{accepted} connections for {requests} requests: nginx did not keep them alive"
    );
    // An HTTP proxy is mioserve's peer: the log names nginx (the client's address travels
    // in X-Forwarded-For, which mioserve does not read; the stream proxy below passes it).
    assert!(server.stop().success());
    let nginx = format!("{} ", front.ip);
    let lines = server.log_lines();
    assert!(!lines.is_empty() && lines.iter().all(|line| line.starts_with(&nginx)));
}

#[test]
fn nginx_stream_proxy_with_proxy_protocol_logs_the_client_address() {
    let test = "nginx_stream_proxy_with_proxy_protocol_logs_the_client_address";
    if !Path::new(STREAM_MODULE).exists() {
        return skip(
            test,
            &format!(
                "nginx's stream module is not installed ({STREAM_MODULE}: apt-get install libnginx-mod-stream)"
            ),
        );
    }
    let Some(lan) = client_front_and_backend(test) else {
        return;
    };
    let [client, front, back] = &lan.hosts[..] else {
        unreachable!("three hosts")
    };
    let fixture = Fixture::new();
    let trusted = format!("{}/32", front.ip);
    let mut server = start_backend(
        back,
        &fixture,
        &["--proxy-protocol", "--trusted-proxy", &trusted],
    );
    let _nginx = Nginx::start(front, &stream_proxy(front.ip, back.ip));
    let url = format!("http://{}:{FRONTEND_PORT}/hello.txt", front.ip);
    for _ in 0..5 {
        assert_eq!(curl(client, &url).as_bytes(), content("hello.txt"));
    }
    assert!(server.stop().success());
    let client_address = format!("{} ", client.ip);
    let lines = server.log_lines();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(
        lines.iter().all(|line| line.starts_with(&client_address)),
        "{lines:?}"
    );
}
