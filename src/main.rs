//! The `mioserve` command: parse the command line into a [`Config`] and run
//! the server. Everything else lives in the library.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mioserve::config::{self, Config, LogTarget};
use mioserve::listeners::Binding;
use mioserve::trace::TraceLevel;

/// A stats path is an absolute URL path without query or fragment.
fn parse_stats_path(path: &str) -> Result<String, String> {
    if path.starts_with('/') && !path.contains(['?', '#', ' ']) {
        Ok(path.to_owned())
    } else {
        Err("must be an absolute path like /_stats".to_owned())
    }
}

/// A static-file HTTP/1.1 server on a per-core epoll reactor.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Directory to serve.
    #[arg(default_value = "htdocs")]
    root: PathBuf,

    /// Address to listen on (127.0.0.1, 0.0.0.0, ::1, ::).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,

    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = config::DEFAULT_PORT)]
    port: u16,

    /// Join the port of a mioserve already listening on it (its SO_REUSEPORT
    /// group; same user only) instead of refusing a port in use: for
    /// restarts without a gap (docs/deploy.md). Without it, a port in use
    /// is an error.
    #[arg(long)]
    reuse_port: bool,

    /// Worker threads, each with its own event loop [default: number of cores].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,

    /// Access log file, or - for stdout.
    #[arg(long, default_value = "access.log", conflicts_with = "no_log")]
    log: String,

    /// Do not write an access log.
    #[arg(long)]
    no_log: bool,

    /// Most simultaneous connections [default: from the open-files limit].
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

    /// Print the event loop's steps to stderr: request lines, state
    /// transitions too (the default level), or every event and system call.
    #[arg(long, value_enum, num_args = 0..=1, default_value = "off", default_missing_value = "states", value_name = "LEVEL")]
    trace: TraceLevel,

    /// Serve the live counters as JSON at this path (e.g. /_stats); kept out
    /// of the access log.
    #[arg(long, value_name = "PATH", value_parser = parse_stats_path)]
    stats_path: Option<String>,
}

impl Args {
    fn into_config(self) -> Config {
        let mut config = Config::new(self.root);
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
        config.max_connections = self.max_connections.map(|n| n as usize);
        config.keepalive_timeout = Duration::from_secs(self.keepalive_timeout);
        config.header_timeout = Duration::from_secs(self.header_timeout);
        config.send_timeout = Duration::from_secs(self.send_timeout);
        config.trace = self.trace;
        config.stats_path = self.stats_path;
        config
    }
}

fn main() -> ExitCode {
    let config = Args::parse().into_config();
    match mioserve::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mioserve: {error}");
            ExitCode::FAILURE
        }
    }
}
