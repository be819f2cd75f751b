//! The `mioserve` command: parse the command line into a [`Config`] and run
//! the server. Everything else lives in the library.
//!
//! The command line is meant for people who would otherwise type
//! `python3 -m http.server`: short flags for the common options (`-p`, `-b`,
//! `-t`), host names for `--bind`, and every mistake answered with one line
//! that says what to do instead.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mioserve::config::{self, Config, CorsOrigins, LogFormat, LogTarget, ResponseHeader};
use mioserve::files::SymlinkPolicy;
use mioserve::listeners::Binding;
use mioserve::proxy::Cidr;
use mioserve::trace::{TraceFormat, TraceLevel};

/// The root served when none is given.
const DEFAULT_ROOT: &str = "htdocs";

/// A path the server answers itself (`--stats-path`, `--health-path`) is an
/// absolute URL path without query or fragment.
fn parse_own_path(path: &str) -> Result<String, String> {
    if path.starts_with('/') && !path.contains(['?', '#', ' ']) {
        Ok(path.to_owned())
    } else {
        Err("must be an absolute path like /_stats or /healthz".to_owned())
    }
}

/// `--bind`: an IP address, or a host name resolved once at start (`localhost`
/// binds loopback). A name with both IPv4 and IPv6 addresses binds the IPv4
/// one, since one listener group binds one address.
fn parse_bind_address(host: &str) -> Result<IpAddr, String> {
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = unbracketed.parse() {
        return Ok(ip);
    }
    let addresses: Vec<IpAddr> = (unbracketed, 0)
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve '{host}': {error}"))?
        .map(|addr| addr.ip())
        .collect();
    addresses
        .iter()
        .find(|ip| ip.is_ipv4())
        .or(addresses.first())
        .copied()
        .ok_or_else(|| format!("'{host}' has no address"))
}

/// A static-file HTTP/1.1 server on a per-core epoll reactor.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Directory to serve [default: htdocs].
    root: Option<PathBuf>,

    /// Address or host name to listen on (127.0.0.1, localhost, 0.0.0.0, ::1, ::).
    #[arg(short, long, default_value = "127.0.0.1", value_parser = parse_bind_address)]
    bind: IpAddr,

    /// Port to listen on; 0 picks a free one.
    #[arg(short, long, default_value_t = config::DEFAULT_PORT)]
    port: u16,

    /// Join the port of a mioserve already listening on it (its SO_REUSEPORT
    /// group; same user only) instead of refusing a port in use: for
    /// restarts without a gap (docs/deploy.md). Without it, a port in use
    /// is an error.
    #[arg(long)]
    reuse_port: bool,

    /// Worker threads, each with its own event loop [default: number of cores].
    #[arg(short, long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,

    /// Access log: - for standard output, or a file to append to (reopened on
    /// SIGHUP, for logrotate).
    #[arg(
        long,
        default_value = "-",
        value_name = "PATH",
        conflicts_with = "no_log"
    )]
    log: String,

    /// How access-log lines are written (docs/http.md shows each).
    #[arg(long, value_enum, default_value = "common", value_name = "FORMAT")]
    log_format: LogFormat,

    /// Do not write an access log.
    #[arg(long)]
    no_log: bool,

    /// Most simultaneous connections [default: from the open-files limit],
    /// split evenly between the workers. Each worker holds its own share: a
    /// client the kernel hashes to a full worker waits in the accept queue
    /// even while another worker has room.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,

    /// Seconds an idle keep-alive connection is kept open.
    #[arg(long, default_value_t = config::DEFAULT_KEEPALIVE_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    keepalive_timeout: u64,

    /// Seconds a client has to send a complete request head.
    #[arg(long, default_value_t = config::DEFAULT_HEADER_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,

    /// Seconds a client may stall while we send it a response.
    #[arg(long, default_value_t = config::DEFAULT_SEND_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    send_timeout: u64,

    /// Print the event loop's steps to stderr: `--trace` shows state
    /// transitions, `--trace=requests` only request lines, `--trace=events`
    /// also every readiness event and system call.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_value = "off", default_missing_value = "states", value_name = "LEVEL")]
    trace: TraceLevel,

    /// How `--trace` writes its lines: `text` (aligned columns) or `json`
    /// (one object per line, for tools such as docs/timeline/timeline.py).
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    trace_format: TraceFormat,

    /// Serve the live counters as JSON at this path (e.g. /_stats); kept out
    /// of the access log.
    #[arg(long, value_name = "PATH", value_parser = parse_own_path)]
    stats_path: Option<String>,

    /// Follow symlinks that lead out of the root (never to dot files or
    /// special files). Anyone who can create a symlink in the root can then
    /// publish any file the server may read.
    #[arg(long)]
    follow_symlinks: bool,

    /// Serve FILE.br, FILE.zst or FILE.gz in place of FILE to clients whose
    /// Accept-Encoding takes it (made beforehand, e.g. with gzip -k; one
    /// older than FILE is ignored), with Vary: Accept-Encoding.
    #[arg(long)]
    precompressed: bool,

    /// Answer health checks at this path (e.g. /healthz): 200 while serving,
    /// 503 once draining; counted, kept out of the access log.
    #[arg(long, value_name = "PATH", value_parser = parse_own_path)]
    health_path: Option<String>,

    /// Seconds to keep accepting after SIGTERM or Ctrl-C, with the health
    /// check failing and every response closing its connection, so a load
    /// balancer can notice before connections are refused.
    #[arg(long, value_name = "SECS", default_value_t = config::DEFAULT_DRAIN_DELAY.as_secs(), value_parser = clap::value_parser!(u64).range(0..=3600))]
    drain_delay: u64,

    /// Seconds responses in flight may take once accepting has stopped;
    /// then whatever is still open is closed.
    #[arg(long, value_name = "SECS", default_value_t = config::DEFAULT_SHUTDOWN_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(0..=3600))]
    shutdown_timeout: u64,

    /// List directories that have no index.html (HTML, or JSON for
    /// `Accept: application/json`); dot files, special files and symlinks
    /// the server would not follow are left out. Without it: 403.
    #[arg(long)]
    list_dirs: bool,

    /// Add a header to every 200, 206 and 304 answer with a file or a
    /// listing, e.g. 'Cache-Control: max-age=3600' (repeatable).
    #[arg(long = "header", value_name = "'NAME: VALUE'", value_parser = ResponseHeader::parse)]
    headers: Vec<ResponseHeader>,

    /// Let pages from other sites read the files (CORS): `--cors` allows any
    /// origin (`*`), `--cors=ORIGIN` only that one (repeatable); OPTIONS
    /// preflights are answered.
    #[arg(long, value_name = "ORIGIN", num_args = 0..=1, require_equals = true, default_missing_value = "*", value_parser = parse_cors_origin)]
    cors: Vec<String>,

    /// For single-page apps: answer a GET or HEAD for a missing path whose
    /// last segment has no extension, from a client that accepts HTML, with
    /// this file (e.g. /index.html) and 200. Missing assets stay 404.
    #[arg(long, value_name = "PATH")]
    fallback: Option<String>,

    /// Every connection starts with a PROXY protocol header (v1 or v2, as
    /// HAProxy's send-proxy and send-proxy-v2 write it) naming the client to
    /// log. A missing, invalid or slow header (--header-timeout) closes the
    /// connection without an answer. Use with --trusted-proxy.
    #[arg(long)]
    proxy_protocol: bool,

    /// Only peers in this block may connect (10.0.0.0/8, 192.0.2.7, ::1);
    /// repeat for more. Others are closed before anything is read.
    #[arg(long, value_name = "CIDR")]
    trusted_proxy: Vec<Cidr>,
}

/// `--cors`'s value: `*` (the flag alone) or one origin.
fn parse_cors_origin(origin: &str) -> Result<String, String> {
    if origin == "*" {
        Ok(origin.to_owned())
    } else {
        config::parse_origin(origin)
    }
}

impl Args {
    fn into_config(self) -> Config {
        let mut config = Config::new(self.root.unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT)));
        config.bind = self.bind;
        config.port = self.port;
        if self.reuse_port {
            config.binding = Binding::JoinExisting;
        }
        if let Some(threads) = self.threads {
            config.threads = usize::from(threads);
        }
        config.log = match (self.no_log, self.log.as_str()) {
            (true, _) => LogTarget::Off,
            (false, "-") => LogTarget::Stdout,
            (false, path) => LogTarget::File(PathBuf::from(path)),
        };
        config.log_format = self.log_format;
        config.max_connections = self.max_connections.map(|n| n as usize);
        config.keepalive_timeout = Duration::from_secs(self.keepalive_timeout);
        config.header_timeout = Duration::from_secs(self.header_timeout);
        config.send_timeout = Duration::from_secs(self.send_timeout);
        config.trace = self.trace;
        config.trace_format = self.trace_format;
        config.site.stats_path = self.stats_path;
        if self.follow_symlinks {
            config.site.symlinks = SymlinkPolicy::Anywhere;
        }
        config.site.precompressed = self.precompressed;
        config.site.health_path = self.health_path;
        config.drain_delay = Duration::from_secs(self.drain_delay);
        config.shutdown_timeout = Duration::from_secs(self.shutdown_timeout);
        config.site.list_dirs = self.list_dirs;
        config.site.headers = self.headers;
        config.site.cors = match self.cors {
            origins if origins.is_empty() => None,
            origins if origins.iter().any(|origin| origin == "*") => Some(CorsOrigins::Any),
            origins => Some(CorsOrigins::Only(origins)),
        };
        config.site.fallback = self.fallback;
        config.proxy_protocol = self.proxy_protocol;
        config.trusted_proxies = self.trusted_proxy;
        config
    }
}

/// When the root is not a directory, the one line that says what to do
/// instead. `given` is false when the root is the default.
fn missing_root_advice(root: &Path, given: bool) -> Option<String> {
    if root.is_dir() {
        return None;
    }
    let name = root.display();
    let digits = root
        .to_str()
        .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()));
    Some(match digits {
        _ if !given => {
            format!("no {DEFAULT_ROOT}/ here: give the directory to serve, e.g. `mioserve .`")
        }
        // `mioserve 8000` is what a `python3 -m http.server 8000` user types.
        // A number can also be a directory's name, so it is never taken as a
        // port by guessing: the message shows the unambiguous command.
        Some(port) => format!(
            "'{name}' is not a directory; to serve this directory on port {port}, \
             run `mioserve . -p {port}`"
        ),
        None if root.exists() => format!("'{name}' is not a directory"),
        None => format!("'{name}' does not exist; give the directory to serve, e.g. `mioserve .`"),
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let given = args.root.is_some();
    let config = args.into_config();
    if let Some(advice) = missing_root_advice(&config.root, given) {
        eprintln!("mioserve: {advice}");
        return ExitCode::FAILURE;
    }
    match mioserve::run(&config) {
        Ok(stopped) => ExitCode::from(stopped.exit_status()),
        Err(error) => {
            eprintln!("mioserve: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_accepts_addresses_and_host_names() {
        assert_eq!(
            parse_bind_address("127.0.0.1"),
            Ok(IpAddr::from([127, 0, 0, 1]))
        );
        assert_eq!(parse_bind_address("::1"), Ok("::1".parse().unwrap()));
        assert_eq!(parse_bind_address("[::1]"), Ok("::1".parse().unwrap()));
        assert_eq!(
            parse_bind_address("localhost"),
            Ok(IpAddr::from([127, 0, 0, 1]))
        );
        assert!(parse_bind_address("no-such-host.invalid").is_err());
    }

    #[test]
    fn trace_never_swallows_the_root() {
        let args = Args::try_parse_from(["mioserve", "--trace", "site"]).unwrap();
        assert_eq!(args.trace, TraceLevel::States);
        assert_eq!(args.root, Some(PathBuf::from("site")));
        let args = Args::try_parse_from(["mioserve", "--trace=events", "site"]).unwrap();
        assert_eq!(args.trace, TraceLevel::Events);
        let args = Args::try_parse_from(["mioserve", "-p", "0", "-b", "::1", "-t", "3"]).unwrap();
        assert_eq!((args.port, args.threads), (0, Some(3)));
    }

    #[test]
    fn cors_never_swallows_the_root() {
        let config = |args: &[&str]| Args::try_parse_from(args).unwrap().into_config();
        let any = config(&["mioserve", "--cors", "site"]);
        assert_eq!(
            (any.site.cors, any.root),
            (Some(CorsOrigins::Any), PathBuf::from("site"))
        );
        let only = config(&[
            "mioserve",
            "--cors=https://a.example",
            "--cors=http://b.example",
        ]);
        assert_eq!(
            only.site.cors,
            Some(CorsOrigins::Only(vec![
                "https://a.example".to_owned(),
                "http://b.example".to_owned()
            ]))
        );
        assert_eq!(config(&["mioserve"]).site.cors, None);
        assert!(Args::try_parse_from(["mioserve", "--cors=a.example"]).is_err());
        assert!(Args::try_parse_from(["mioserve", "--header", "X: a\r\nY: b"]).is_err());
    }

    #[test]
    fn log_format_defaults_to_common() {
        let format = |args: &[&str]| {
            Args::try_parse_from([&["mioserve"], args].concat()).map(|a| a.into_config().log_format)
        };
        assert_eq!(format(&[]).unwrap(), LogFormat::Common);
        assert_eq!(
            format(&["--log-format", "combined"]).unwrap(),
            LogFormat::Combined
        );
        assert_eq!(format(&["--log-format=json"]).unwrap(), LogFormat::Json);
        assert!(format(&["--log-format", "xml"]).is_err());
    }

    #[test]
    fn a_missing_root_gets_advice() {
        let advice = |root: &str, given| missing_root_advice(Path::new(root), given);
        assert_eq!(advice(".", true), None);
        assert!(
            advice("htdocs-missing", false)
                .unwrap()
                .contains("e.g. `mioserve .`")
        );
        assert!(
            advice("8000", true)
                .unwrap()
                .contains("`mioserve . -p 8000`")
        );
        assert!(
            advice("Cargo.toml", true)
                .unwrap()
                .ends_with("is not a directory")
        );
    }
}
