//! Network namespaces as separate machines, for tests that need a client which is not on
//! the server's loopback. Two shapes:
//!
//! - [`VethLink`]: two namespaces joined by a veth pair, a server and its client;
//! - [`Lan`]: any number of namespaces on one Ethernet segment (a bridge), for a load
//!   balancer, its backends and a client.
//!
//! ```text
//!   namespace <server>                         namespace <client>
//!   lo 127.0.0.1 (up)                          lo 127.0.0.1 (up)
//!   veth  10.213.X.(4Y+1)/30  <----------->  veth  10.213.X.(4Y+2)/30
//! ```
//!
//! The /30 exists only inside the two namespaces; X and Y are drawn per link from the
//! clock and the pid, and names carry the pid and a counter, so parallel test runs never
//! meet. The veth ends are created directly inside the namespaces, so the host's own
//! network never sees them, and deleting the namespaces deletes the link.
//!
//! [`VethLink`] removes both namespaces when dropped, also when the test panics. Declare it
//! *before* the servers running inside it: locals drop in reverse order, so the servers
//! are killed first and the namespaces are then freed at once.
//!
//! Needs root (`CAP_SYS_ADMIN` and `CAP_NET_ADMIN`) and `ip` from `iproute2`;
//! [`VethLink::create`] and [`Lan::create`] say why they cannot run instead of failing, so
//! the test can skip.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::server::{BIN, TestServer, server_args};
use super::tools::{require, run, tail};

/// How long one `ip` command may take.
const IP_TIMEOUT: Duration = Duration::from_secs(30);

/// Distinguishes links made by one test process.
static NEXT_LINK: AtomicU32 = AtomicU32::new(0);

/// One network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates namespace `name` as the first of a set, doubling as the permission probe:
    /// `Err(reason)` when this process may not create network namespaces (not root, or
    /// `ip netns add` refused, as in an unprivileged container). Nothing exists then, and
    /// the caller skips.
    fn probe(name: String) -> Result<Netns, String> {
        require("ip", "iproute2");
        if !is_root() {
            return Err("not running as root (network namespaces need CAP_SYS_ADMIN)".into());
        }
        let added = run(Command::new("ip").args(["netns", "add", &name]), IP_TIMEOUT);
        if !added.status.success() {
            return Err(format!(
                "`ip netns add` is not permitted here: {}",
                String::from_utf8_lossy(&added.stderr).trim()
            ));
        }
        Ok(Netns { name })
    }

    /// Creates namespace `name`; any failure is a test failure.
    fn add(name: String) -> Netns {
        ip_ok(Command::new("ip").args(["netns", "add", &name]));
        Netns { name }
    }

    /// `ip netns exec NAME PROGRAM`: a command for `program` inside this namespace.
    /// `ip netns exec` `exec`s the program after entering the namespace, so the child's pid
    /// is the program's own.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `ip ARGS` inside this namespace (`ip -n NAME ARGS`), panicking on failure.
    fn ip(&self, args: &[&str]) {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.name]).args(args);
        ip_ok(&mut cmd);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Not `run`: a panic in `drop` while a failing test unwinds would abort the run.
        let out = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: could not delete network namespace {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("warning: could not run `ip netns del {}`: {e}", self.name),
        }
    }
}

/// Two namespaces with a veth pair between them, addressed from a private /30.
pub struct VethLink {
    pub server: Netns,
    pub client: Netns,
    pub server_ip: Ipv4Addr,
    pub client_ip: Ipv4Addr,
}

impl VethLink {
    /// Creates the namespaces and the link. `Err(reason)` when this process may not create
    /// network namespaces (not root, or `ip netns add` refused, as in an unprivileged
    /// container): the caller skips. Any failure after the first namespace exists is a test
    /// failure, and whatever was made is removed again.
    pub fn create() -> Result<VethLink, String> {
        let (pid, n) = next_names();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let seed = nanos ^ pid.rotate_left(16) ^ n.wrapping_mul(0x9E37_79B9);
        let x = (seed % 256) as u8;
        let y = ((seed >> 8) % 64) as u8;
        let server_ip = Ipv4Addr::new(10, 213, x, 4 * y + 1);
        let client_ip = Ipv4Addr::new(10, 213, x, 4 * y + 2);

        let server = Netns::probe(format!("mioserve-s-{pid}-{n}"))?;
        let client = Netns::add(format!("mioserve-c-{pid}-{n}"));
        let link = VethLink {
            server,
            client,
            server_ip,
            client_ip,
        };

        // Interface names are at most 15 bytes: "mvs" + pid (at most 7 digits) + n.
        let server_if = format!("mvs{pid}x{n}");
        let client_if = format!("mvc{pid}x{n}");
        ip_ok(Command::new("ip").args([
            "link",
            "add",
            &server_if,
            "netns",
            &link.server.name,
            "type",
            "veth",
            "peer",
            "name",
            &client_if,
            "netns",
            &link.client.name,
        ]));
        for (ns, ifname, ip) in [
            (&link.server, &server_if, server_ip),
            (&link.client, &client_if, client_ip),
        ] {
            // A new namespace's loopback is down; servers bound to 127.0.0.1 need it.
            ns.ip(&["link", "set", "lo", "up"]);
            ns.ip(&["addr", "add", &format!("{ip}/30"), "dev", ifname]);
            ns.ip(&["link", "set", ifname, "up"]);
        }
        Ok(link)
    }
}

/// The pid and a fresh counter value, which keep the names of namespaces (and of veth
/// ends made outside them) apart between tests and test processes running at once.
fn next_names() -> (u32, u32) {
    (
        std::process::id(),
        NEXT_LINK.fetch_add(1, Ordering::Relaxed),
    )
}

/// The first address of a [`Lan`]; hosts count up from it.
const LAN_FIRST_HOST: Ipv4Addr = Ipv4Addr::new(10, 214, 0, 1);

/// Hosts on one Ethernet segment: a namespace per host, each with one interface (`eth0`)
/// in the /24 of [`LAN_FIRST_HOST`], whose veth peer is plugged into a bridge in a hub
/// namespace of its own.
///
/// ```text
///   namespace <host 0>     namespace <host 1>     ...
///   eth0 10.214.0.1/24     eth0 10.214.0.2/24
///        │                      │
///   namespace <hub>: br0 ── port0, port1, ...
/// ```
///
/// The addresses exist only inside these namespaces, which reach nothing else, so a fixed
/// subnet cannot meet another test's. Dropping the `Lan` deletes the hosts' namespaces,
/// then the hub's (fields drop in declaration order); deleting a namespace deletes its
/// veth ends, and with them their peers.
pub struct Lan {
    /// The hosts, in the order their names were given to [`Lan::create`].
    pub hosts: Vec<Host>,
    /// The namespace holding the bridge.
    hub: Netns,
}

/// One machine on a [`Lan`].
pub struct Host {
    pub ns: Netns,
    pub ip: Ipv4Addr,
}

impl Lan {
    /// Creates one namespace per name in `roles` (the names show in `ip netns list`) and
    /// plugs them all into one bridge. `Err(reason)` as for [`VethLink::create`].
    pub fn create(roles: &[&str]) -> Result<Lan, String> {
        let (pid, n) = next_names();
        let hub = Netns::probe(format!("mioserve-hub-{pid}-{n}"))?;
        let mut lan = Lan {
            hosts: Vec::new(),
            hub,
        };
        lan.hub.ip(&["link", "add", "br0", "type", "bridge"]);
        lan.hub.ip(&["link", "set", "br0", "up"]);
        for (i, role) in roles.iter().enumerate() {
            let ns = Netns::add(format!("mioserve-{role}-{pid}-{n}"));
            let ip = Ipv4Addr::from(u32::from(LAN_FIRST_HOST) + i as u32);
            let port = format!("port{i}");
            ip_ok(Command::new("ip").args([
                "link",
                "add",
                "eth0",
                "netns",
                &ns.name,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &lan.hub.name,
            ]));
            lan.hub.ip(&["link", "set", &port, "master", "br0", "up"]);
            ns.ip(&["link", "set", "lo", "up"]);
            ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
            ns.ip(&["link", "set", "eth0", "up"]);
            lan.hosts.push(Host { ns, ip });
        }
        Ok(lan)
    }
}

/// Whether the effective user is root, read from `/proc/self/status` (no `unsafe`
/// `geteuid` needed).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uids = status.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
            // Uid: real effective saved filesystem
            Some(uids.split_whitespace().nth(2)? == "0")
        })
        .unwrap_or(false)
}

fn ip_ok(cmd: &mut Command) {
    let what = format!("{cmd:?}");
    let out = run(cmd, IP_TIMEOUT);
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stderr))
    );
}

impl TestServer {
    /// [`TestServer::start`] inside network namespace `ns`: the binary is started as
    /// `ip netns exec NS mioserve ROOT --port 0 --log <tmp>/access.log EXTRA...`. `ip`
    /// `exec`s the server, so signals and the kill on drop reach it directly. The address
    /// in the start line is the one the server bound inside the namespace.
    pub fn start_in_netns(ns: &Netns, root: &Path, extra: &[&str]) -> TestServer {
        let workdir = tempfile::tempdir().expect("create server working directory");
        let (server_args, log_path) = server_args(&workdir, root, extra);
        let mut args: Vec<OsString> = vec!["netns".into(), "exec".into(), (&ns.name).into()];
        args.push(BIN.into());
        args.extend(server_args);
        let mut server = TestServer::spawn_program(workdir, "ip".as_ref(), args);
        server.log_path = log_path;
        server
    }
}
