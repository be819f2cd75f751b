//! Where the workers' listening sockets come from: bound here as a fresh
//! `SO_REUSEPORT` group, bound into the group of a running predecessor on
//! purpose (`--reuse-port`), or inherited from systemd (socket activation).
//!
//! ## A fresh `SO_REUSEPORT` group (the default)
//! The classic design shares one listening socket between threads; then all
//! of them are woken for every new connection (the "thundering herd") and they
//! contend for the socket's accept queue lock. With `SO_REUSEPORT`, every
//! worker binds *its own* socket to the same address and port, and the kernel
//! spreads incoming connections across the group by a hash of the connection's
//! addresses. Each worker accepts only from its own queue, so workers share
//! nothing: no lock, no wake-up of a neighbour. `ss -ltn` shows one listening
//! socket per worker.
//!
//! `SO_REUSEPORT` would also let a *second* mioserve join the group by mistake
//! and silently take half the traffic. So before binding the group we bind a
//! probe socket without `SO_REUSEPORT`: it fails with `EADDRINUSE` if anyone
//! holds the port, and with port 0 it tells us which port the kernel picked.
//!
//! ## Joining a predecessor's group (`--reuse-port`)
//! A restart without a gap starts the new server while the old one still
//! listens: the new one skips the probe and binds its sockets into the old
//! one's group, the kernel spreads connections over both, then the old one is
//! stopped. The kernel lets a socket join a group only if it belongs to the
//! same effective user as the group's first socket, so another user's
//! process still gets `EADDRINUSE`; so does a port held without
//! `SO_REUSEPORT`. When the old server closes its sockets, the connections
//! still waiting in their accept queues are reset, unless
//! `net.ipv4.tcp_migrate_req = 1` (Linux 5.14, per network namespace): then
//! the kernel moves them to a surviving socket of the group, the new
//! server's. Only a handshake that completes during the close itself is
//! still reset, by the kernel (docs/deploy.md, "Restarts", has the race and
//! the procedure).
//!
//! ## Leaving the group: shut down, then close
//! A plain `close` of a listening socket has a second flaw, worse than that
//! reset. The kernel's `tcp_close` first marks the socket shut down in both
//! directions, and only then takes it out of the group and moves its queue.
//! A handshake that completes in between, on another CPU, builds its
//! connection as a copy of the listener, that mark included: the new
//! connection sends its FIN the moment it is established, and answers the
//! request that follows with a reset (`TCPAbortOnData`), whichever server
//! accepts it. The client loses a request it did send. `shutdown(SHUT_RD)`
//! on a listener takes the other road (`tcp_disconnect`): out of the group
//! and the hash first, its queue moved or reset exactly as by a close, and
//! the mark never set. So [`close`] shuts a socket we bound down before
//! closing it; the close then finds it closed already. An inherited socket
//! is only closed: systemd's copy keeps it listening, so it never leaves the
//! group, and a shutdown would close it for systemd and the next server too.
//!
//! ## Sockets inherited from systemd (socket activation)
//! With a `.socket` unit, systemd binds the port itself and passes the
//! listening sockets to the server it starts, as descriptors 3, 4, ... (the
//! protocol of sd_listen_fds(3)): `LISTEN_FDS` says how many, `LISTEN_PID`
//! which process they are for (a variable inherited by a grandchild must not
//! fool it), `LISTEN_FDNAMES` their names. systemd keeps its own copy open,
//! so while the service restarts new connections wait in the socket's
//! backlog instead of being refused: a restart loses nothing.
//!
//! We unset the variables once read, set `FD_CLOEXEC` on each descriptor and
//! check that each really is a listening TCP socket, refusing to start with
//! one line otherwise. All of this ([`Inherited::take`]) happens before the
//! process opens a descriptor of its own (signal handling's pipe, the
//! document root): a `LISTEN_FDS` that counts more descriptors than were
//! passed then names numbers that are not open, and we refuse to start
//! instead of taking one of ours for an inherited socket and closing it. One socket (one `ListenStream=`) is shared by all
//! workers: each registers it with `EPOLLEXCLUSIVE` (see
//! [`crate::sys::register_exclusive`]), so a new connection wakes one waiting
//! worker instead of the whole herd. Several sockets are dealt out to the
//! workers in turn (worker `i` takes socket `i mod N`), so that
//! `ReusePort=yes` with one `ListenStream=` per worker gives back the
//! unshared layout above; more sockets than workers is refused, since some
//! would never be served.

use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::fd::RawFd;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::config::LISTEN_BACKLOG;
use crate::server::StartError;
use crate::sys;

/// The first descriptor systemd passes (after stdin, stdout, stderr).
const SD_LISTEN_FDS_START: RawFd = 3;

/// The variables of the socket-activation protocol, unset once read.
const ACTIVATION_VARIABLES: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

/// How to find the port when no sockets are inherited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Bind a new `SO_REUSEPORT` group; fail if anyone holds the port.
    Fresh,
    /// Join the group of a running mioserve (`--reuse-port`), or start one.
    JoinExisting,
}

/// The listening sockets systemd passed to this process: none unless it was
/// socket-activated.
#[derive(Debug)]
pub struct Inherited(Vec<Socket>);

impl Inherited {
    /// Takes the sockets that the socket-activation variables announce, and
    /// unsets the variables.
    ///
    /// Call it before this process opens any descriptor of its own
    /// ([`crate::server::run`] and [`crate::Server::start`] do so first
    /// thing): the numbers from 3 up are then either inherited or not open at
    /// all, so a `LISTEN_FDS` that overstates the count fails with `EBADF`
    /// instead of adopting, and later closing, a descriptor this process
    /// opened (see [`sys::adopt_inherited_fd`]).
    pub fn take() -> Result<Inherited, StartError> {
        let pid = std::env::var("LISTEN_PID").ok();
        let fds = std::env::var("LISTEN_FDS").ok();
        let names = std::env::var("LISTEN_FDNAMES").ok();
        if pid.is_some() || fds.is_some() {
            sys::remove_env_if_single_threaded(&ACTIVATION_VARIABLES);
        }
        let count = activation_count(pid.as_deref(), fds.as_deref(), std::process::id())
            .map_err(|error| StartError::new("cannot use the sockets passed by systemd", error))?;
        let names: Vec<&str> = names
            .as_deref()
            .map_or(Vec::new(), |n| n.split(':').collect());
        let sockets = (0..count)
            .map(|i| inherit(SD_LISTEN_FDS_START + i as RawFd, names.get(i).copied()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Inherited(sockets))
    }
}

/// Where a worker's listening socket came from, which decides how it is
/// closed (see [`close`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Bound by this process: closing it takes it out of the group.
    Bound,
    /// Passed by systemd, which keeps its own copy open.
    Inherited,
}

/// One listening socket per worker, and where they all came from: the
/// `inherited` ones if systemd passed any, otherwise bound to `addr` as
/// `binding` says.
pub fn open(
    addr: SocketAddr,
    binding: Binding,
    workers: usize,
    inherited: Inherited,
) -> Result<(Vec<TcpListener>, Origin), StartError> {
    let Inherited(sockets) = inherited;
    if sockets.is_empty() {
        Ok((bind_group(addr, binding, workers)?, Origin::Bound))
    } else {
        Ok((deal_out(sockets, workers)?, Origin::Inherited))
    }
}

/// Closes a worker's listening socket once it stops accepting: one this
/// process bound is shut down for reading first, so that no connection is
/// born half closed while it leaves the group (see "Leaving the group" in
/// the module docs); an inherited one is only closed.
pub fn close(listener: mio::net::TcpListener, origin: Origin) {
    if origin == Origin::Bound {
        // On failure the close below still takes the socket out of the
        // group, the old way.
        let _ = SockRef::from(&listener).shutdown(Shutdown::Read);
    }
    drop(listener);
}

/// How many sockets the `LISTEN_PID` and `LISTEN_FDS` variables pass to the
/// process `our_pid`: 0 when they are missing or meant for another process
/// (as sd_listen_fds(3) answers), an error when they are malformed.
fn activation_count(
    pid: Option<&str>,
    fds: Option<&str>,
    our_pid: u32,
) -> Result<usize, std::io::Error> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(0);
    };
    let pid: u32 = pid
        .parse()
        .map_err(|_| invalid(format!("LISTEN_PID={pid:?} is not a process id")))?;
    if pid != our_pid {
        return Ok(0);
    }
    let count: usize = fds
        .parse()
        .map_err(|_| invalid(format!("LISTEN_FDS={fds:?} is not a number")))?;
    // Descriptor numbers are `int`s: a count that overflows them is a lie.
    if count > (RawFd::MAX - SD_LISTEN_FDS_START) as usize {
        return Err(invalid(format!("LISTEN_FDS={count} is too large")));
    }
    Ok(count)
}

/// Takes inherited descriptor `fd` and checks that it is what a worker can
/// accept from: a listening TCP socket.
fn inherit(fd: RawFd, name: Option<&str>) -> Result<Socket, StartError> {
    let what = match name {
        Some(name) => format!("cannot use descriptor {fd} ('{name}') passed by systemd"),
        None => format!("cannot use descriptor {fd} passed by systemd"),
    };
    let refuse = |why: &str| StartError::new(what.clone(), std::io::Error::other(why.to_owned()));
    let socket =
        Socket::from(sys::adopt_inherited_fd(fd).map_err(|e| StartError::new(what.clone(), e))?);
    let is_tcp_listener = || -> std::io::Result<bool> {
        Ok(socket.r#type()? == Type::STREAM
            && matches!(socket.domain()?, Domain::IPV4 | Domain::IPV6)
            && socket.protocol()? == Some(Protocol::TCP)
            && socket.is_listener()?)
    };
    match is_tcp_listener() {
        Ok(true) => Ok(socket),
        Ok(false) => Err(refuse("not a listening TCP socket")),
        Err(error) if error.raw_os_error() == Some(libc::ENOTSOCK) => Err(refuse("not a socket")),
        Err(error) => Err(StartError::new(what, error)),
    }
}

/// Gives worker `i` inherited socket `i mod N` (a duplicate descriptor when
/// workers share one), nonblocking, with `TCP_NODELAY` for the connections it
/// accepts (see [`new_socket`]).
fn deal_out(sockets: Vec<Socket>, workers: usize) -> Result<Vec<TcpListener>, StartError> {
    if sockets.len() > workers {
        return Err(StartError::new(
            format!("cannot serve {} sockets passed by systemd", sockets.len()),
            std::io::Error::other(format!(
                "only {workers} workers, each accepts from one socket; use --threads {} or more",
                sockets.len()
            )),
        ));
    }
    let setup = |error| StartError::new("cannot set up a socket passed by systemd", error);
    for socket in &sockets {
        // Both options belong to the socket, shared with systemd's copy:
        // systemd does not mind, it never accepts from it itself.
        socket.set_nonblocking(true).map_err(setup)?;
        socket.set_tcp_nodelay(true).map_err(setup)?;
    }
    (0..workers)
        .map(|worker| {
            let socket = sockets[worker % sockets.len()].try_clone().map_err(setup)?;
            Ok(TcpListener::from(socket))
        })
        .collect()
}

/// Binds `count` listening sockets to `addr` as one `SO_REUSEPORT` group,
/// after the probe unless joining on purpose.
fn bind_group(
    addr: SocketAddr,
    binding: Binding,
    count: usize,
) -> Result<Vec<TcpListener>, StartError> {
    let cannot_listen = |error| StartError::new(format!("cannot listen on {addr}"), error);
    let addr = match binding {
        Binding::Fresh => {
            // The probe: fails if anyone holds the port, and resolves port 0.
            let probe = new_socket(addr, false).map_err(|error: std::io::Error| {
                if error.kind() == std::io::ErrorKind::AddrInUse {
                    StartError::new(
                        format!("cannot listen on {addr} (to take over from a mioserve on it, add --reuse-port)"),
                        error,
                    )
                } else {
                    cannot_listen(error)
                }
            })?;
            let port = probe
                .local_addr()
                .ok()
                .and_then(|local| local.as_socket())
                .map_or(addr.port(), |local| local.port());
            SocketAddr::new(addr.ip(), port)
        }
        Binding::JoinExisting if addr.port() == 0 => {
            return Err(cannot_listen(std::io::Error::other(
                "--reuse-port joins a port already in use, so it needs --port",
            )));
        }
        Binding::JoinExisting => addr,
    };
    (0..count)
        .map(|_| {
            let socket = new_socket(addr, true).map_err(cannot_listen)?;
            socket.listen(LISTEN_BACKLOG).map_err(cannot_listen)?;
            socket.set_nonblocking(true).map_err(cannot_listen)?;
            Ok(TcpListener::from(socket))
        })
        .collect()
}

/// A TCP socket bound to `addr`, with the options every listener needs.
fn new_socket(addr: SocketAddr, reuse_port: bool) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // Restarting the server must not fail because old connections of the
    // previous run linger in TIME_WAIT on this port.
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    // Small responses must leave at once, not wait for Nagle's algorithm to
    // hear back about the previous segment. Set here, once: Linux copies the
    // option to every connection the listener accepts, which spares a
    // `setsockopt` per connection.
    socket.set_tcp_nodelay(true)?;
    if addr.is_ipv6() {
        // Set explicitly rather than inherit the system default
        // (net.ipv6.bindv6only): `::` means IPv6 only. Run a second instance
        // on 0.0.0.0 to serve IPv4 too.
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    #[test]
    fn listeners_share_one_port_and_pass_tcp_nodelay_to_their_connections() {
        let addr = "127.0.0.1:0".parse().unwrap();
        let listeners = bind_group(addr, Binding::Fresh, 2).unwrap();
        let port = listeners[0].local_addr().unwrap().port();
        assert_eq!(listeners[1].local_addr().unwrap().port(), port);

        // Connect until one listener of the group has a connection to accept
        // (the kernel picks which); its accepted socket must have inherited
        // TCP_NODELAY: no worker sets it per connection.
        let mut clients = Vec::new();
        let accepted = loop {
            clients.push(TcpStream::connect(("127.0.0.1", port)).unwrap());
            if let Some((socket, _)) = listeners.iter().find_map(|l| l.accept().ok()) {
                break socket;
            }
            assert!(clients.len() < 100, "no listener accepted anything");
        };
        assert!(accepted.nodelay().unwrap());
        assert!(
            !clients[0].nodelay().unwrap(),
            "the client side is untouched"
        );
    }

    #[test]
    fn a_fresh_group_refuses_a_held_port_but_joining_shares_it() {
        let addr = "127.0.0.1:0".parse().unwrap();
        let first = bind_group(addr, Binding::Fresh, 1).unwrap();
        let held = first[0].local_addr().unwrap();
        let error = bind_group(held, Binding::Fresh, 1).unwrap_err();
        assert!(error.to_string().contains("--reuse-port"), "{error}");
        let joined = bind_group(held, Binding::JoinExisting, 2).unwrap();
        assert_eq!(joined[1].local_addr().unwrap(), held);
    }

    /// A listener bound with a second descriptor open on it, as a duplicate
    /// held elsewhere (systemd's copy of an inherited socket) would be, and
    /// its port.
    fn listener_with_a_copy() -> (mio::net::TcpListener, TcpListener, u16) {
        let addr = "127.0.0.1:0".parse().unwrap();
        let listener = bind_group(addr, Binding::Fresh, 1).unwrap().remove(0);
        let port = listener.local_addr().unwrap().port();
        let copy = listener.try_clone().unwrap();
        (mio::net::TcpListener::from_std(listener), copy, port)
    }

    #[test]
    fn closing_a_bound_listener_shuts_the_socket_itself_down() {
        // A plain close would leave a socket with another descriptor open
        // listening; only the shutdown that keeps the close from giving a
        // half-closed connection takes it down (see "Leaving the group").
        let (listener, _copy, port) = listener_with_a_copy();
        close(listener, Origin::Bound);
        let refused = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn closing_an_inherited_listener_leaves_systemds_copy_listening() {
        let (listener, copy, port) = listener_with_a_copy();
        close(listener, Origin::Inherited);
        let _client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        copy.set_nonblocking(false).unwrap();
        assert!(copy.accept().is_ok(), "the next server accepts from it");
    }

    #[test]
    fn joining_needs_a_port() {
        let addr = "127.0.0.1:0".parse().unwrap();
        let error = bind_group(addr, Binding::JoinExisting, 1).unwrap_err();
        assert!(error.to_string().contains("needs --port"), "{error}");
    }

    #[test]
    fn activation_variables_count_only_for_our_pid() {
        assert_eq!(activation_count(None, None, 7).unwrap(), 0);
        assert_eq!(activation_count(Some("7"), None, 7).unwrap(), 0);
        assert_eq!(activation_count(Some("8"), Some("2"), 7).unwrap(), 0);
        assert_eq!(activation_count(Some("7"), Some("2"), 7).unwrap(), 2);
        assert_eq!(activation_count(Some("7"), Some("0"), 7).unwrap(), 0);
        for (pid, fds) in [("x", "1"), ("7", "-1"), ("7", "one"), ("7", "99999999999")] {
            let error = activation_count(Some(pid), Some(fds), 7).unwrap_err();
            assert!(error.to_string().starts_with("LISTEN_"), "{error}");
        }
    }
}
