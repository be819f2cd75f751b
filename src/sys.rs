//! The only module with `unsafe`: small wrappers over the Linux system calls
//! that neither `std`, `mio` nor `socket2` offer.
//!
//! Every wrapper follows the same pattern as mio's `syscall!` helper: call the
//! function, turn the C convention "`-1` and `errno`" into an `io::Error` in
//! one place (`check`), and hand the caller a safe, typed result. Each
//! `unsafe` block says in a `// SAFETY:` comment why the call is sound.
//! Descriptors come in as [`AsFd`]: a [`BorrowedFd`] is open for as long as
//! it lives, so the type system, not a comment, guarantees that every
//! descriptor a call uses stays open for the duration of the call.
//!
//! This is the one module allowed `unsafe_code` (the crate root denies it
//! everywhere else; see the `#[allow]` on `pub mod sys` in `lib.rs`).
//!
//! ## Why we may do I/O on a socket that mio owns
//! mio documents I/O performed on a registered fd *outside* mio as
//! "unspecified", because on some platforms (Windows, kqueue emulations) mio
//! must see every `WouldBlock` to re-arm its notifications. On Linux mio is a
//! thin layer over epoll in edge-triggered mode: readiness is tracked by the
//! kernel, not by mio, and an edge fires whenever the socket's state changes,
//! no matter which system call drained or filled it. So `send(MSG_MORE)`,
//! `sendmsg` and `sendfile(2)` on a socket registered with mio behave exactly
//! like mio's own `write`. This crate is Linux-only for that reason.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Turns a raw system-call return value into an `io::Result`: a negative
/// value means the call failed and `errno` says why.
fn check(ret: libc::c_long) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Writes `bytes` to a socket. With `more_follows`, passes `MSG_MORE`: the
/// kernel holds the bytes back until the next write (our `sendfile`) so that
/// the response head and the start of the body leave in one full TCP segment
/// instead of a tiny header packet followed by the body (what nginx gets with
/// `tcp_nopush`, without the two extra `setsockopt` calls per request).
/// `MSG_NOSIGNAL`: a peer that went away yields `EPIPE`, never a `SIGPIPE`.
pub fn send(socket: impl AsFd, bytes: &[u8], more_follows: bool) -> io::Result<usize> {
    let socket: BorrowedFd<'_> = socket.as_fd();
    let flags = libc::MSG_NOSIGNAL | if more_follows { libc::MSG_MORE } else { 0 };
    // SAFETY: the pointer and length describe the live, initialised slice
    // `bytes`, which the kernel only reads; `socket` is a `BorrowedFd`, open
    // for as long as it lives, which spans the call.
    let ret = unsafe {
        libc::send(
            socket.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            flags,
        )
    };
    check(ret as libc::c_long)
}

/// Writes `head` and then `body` to a socket in one `sendmsg`, as if they
/// were one buffer: a response head from the connection's output buffer and
/// a body that stays where it lies (a cache entry), without copying one
/// beside the other first. The same flags as [`send`]: `MSG_NOSIGNAL`, and
/// `MSG_MORE` when `more_follows` (a FIN after the last bytes). std's
/// `write_vectored` would be `writev`, which takes no flags.
pub fn send_pair(
    socket: impl AsFd,
    head: &[u8],
    body: &[u8],
    more_follows: bool,
) -> io::Result<usize> {
    let socket: BorrowedFd<'_> = socket.as_fd();
    let flags = libc::MSG_NOSIGNAL | if more_follows { libc::MSG_MORE } else { 0 };
    let mut pieces = [
        libc::iovec {
            iov_base: head.as_ptr().cast_mut().cast(),
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: body.as_ptr().cast_mut().cast(),
            iov_len: body.len(),
        },
    ];
    // SAFETY: all-zero is a valid `msghdr` (null pointers, zero lengths): no
    // address, no control data.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = pieces.as_mut_ptr();
    message.msg_iovlen = pieces.len();
    // SAFETY: `message` points at `pieces`, two `iovec`s that describe the
    // live, initialised slices `head` and `body`, which the kernel only
    // reads (the `*mut` is the C type's, not a licence to write); all of
    // them outlive the call. `socket` is a `BorrowedFd`, open for the call.
    let ret = unsafe { libc::sendmsg(socket.as_raw_fd(), &message, flags) };
    check(ret as libc::c_long)
}

/// Writes `bytes` to a socket without ever blocking (`MSG_DONTWAIT`), even if
/// the socket's open file description is blocking and shared with another
/// process (the access log on a standard output that is a socket, as under
/// journald): a full send buffer is `WouldBlock`.
pub fn send_nonblocking(socket: impl AsFd, bytes: &[u8]) -> io::Result<usize> {
    let socket: BorrowedFd<'_> = socket.as_fd();
    // SAFETY: as in `send`: the pointer and length describe the live slice
    // `bytes`, only read; `socket` is open for the call.
    let ret = unsafe {
        libc::send(
            socket.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    check(ret as libc::c_long)
}

/// Copies up to `count` bytes of `file`, starting at `*offset`, straight from
/// the page cache into the socket's send buffer, and advances `*offset` by the
/// number of bytes sent. The body never enters user space: no `read` into a
/// buffer, no `write` out of it, no copy.
///
/// `Ok(0)` with `count > 0` means the file ended before `*offset + count`: it
/// was truncated after we announced its length.
pub fn sendfile(
    socket: impl AsFd,
    file: impl AsFd,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    let (socket, file) = (socket.as_fd(), file.as_fd());
    let mut off = *offset as libc::off_t;
    // SAFETY: both descriptors are `BorrowedFd`s, open for the whole call;
    // `off` is a valid, exclusive pointer to a local that the kernel updates;
    // `sendfile` writes to no user memory.
    let ret = unsafe { libc::sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
    let sent = check(ret as libc::c_long)?;
    *offset = off as u64;
    Ok(sent)
}

/// `fstat(2)`: what the kernel knows of an open file (glibc makes the call
/// `newfstatat` with an empty path, which is the name strace prints).
///
/// Not std's `File::metadata`, which calls `statx` with an empty path
/// string: under `perf`, on a load where every request opens a file, that
/// `statx` took 3.8 % of the server's time where a C loop's `fstat` took
/// 0.1 %, on the same kernel (docs/benchmarks.md, "Misses").
pub fn fstat(file: impl AsFd) -> io::Result<libc::stat> {
    let file = file.as_fd();
    let mut status = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `status` is a local with room for one `struct stat`, which the
    // kernel only writes; `file` is a `BorrowedFd`, open for the call.
    let ret = unsafe { libc::fstat(file.as_raw_fd(), status.as_mut_ptr()) };
    check(ret as libc::c_long)?;
    // SAFETY: `fstat` succeeded, so the kernel filled in the whole struct.
    Ok(unsafe { status.assume_init() })
}

/// `struct open_how` of `openat2(2)`, as the kernel defines it (libc's
/// version cannot be built outside libc: it is marked non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// How `openat2(2)` may resolve the symlinks on a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// No symlink at all: any symlink on the path fails with `ELOOP`. The
    /// fast, common case, and the only one whose result needs no re-check.
    NoSymlinks,
    /// Symlinks whose targets stay beneath the directory.
    Beneath,
    /// Any symlink, wherever it leads (`--follow-symlinks`).
    Anywhere,
}

/// Opens `path` (relative, NUL-terminated) for reading relative to the
/// directory `root`, using `openat2(2)`. With [`Resolution::Beneath`] (and
/// [`Resolution::NoSymlinks`]) the kernel resolves every component, `..` and
/// symlink included, and fails with `EXDEV` if resolution would ever leave
/// `root` (`RESOLVE_BENEATH`). Because the check and the open are one system
/// call, no rename or symlink swap between "check" and "open" can escape.
/// `RESOLVE_NO_MAGICLINKS` always refuses `/proc/self/fd/…`-style links.
///
/// `O_NONBLOCK` keeps a FIFO planted in the document root from blocking the
/// whole worker in `open`; it changes nothing for regular files.
pub fn open_at(root: impl AsFd, path: &CStr, resolution: Resolution) -> io::Result<File> {
    let root = root.as_fd();
    let resolve = libc::RESOLVE_NO_MAGICLINKS
        | match resolution {
            Resolution::NoSymlinks => libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
            Resolution::Beneath => libc::RESOLVE_BENEATH,
            Resolution::Anywhere => 0,
        };
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK) as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: `root` is a `BorrowedFd`, open for the call; `path` is a valid
    // NUL-terminated string and `how` a valid `open_how` whose size we pass;
    // both outlive the call. On success the kernel returns a new descriptor
    // that nobody else owns.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    let fd = check(ret)?;
    // SAFETY: `fd` was just returned by a successful `openat2`, so it is an
    // open descriptor that we own exclusively.
    Ok(File::from(unsafe {
        OwnedFd::from_raw_fd(fd as libc::c_int)
    }))
}

/// Raises the soft limit on open files to the hard limit and returns the new
/// soft limit. Every connection is a file descriptor, and the default soft
/// limit (often 1024) would cap a server at about a thousand clients.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, exclusive pointer to a local `rlimit`.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } as libc::c_long)?;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid pointer to an initialised `rlimit`.
        if check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } as libc::c_long).is_ok() {
            limit = raised;
        }
    }
    Ok(limit.rlim_cur)
}

/// Creates an inotify instance: a descriptor that becomes readable when a
/// watched file changes. Nonblocking, so reading it drains to `WouldBlock`
/// like any socket in the event loop.
pub fn inotify_init() -> io::Result<File> {
    // SAFETY: no pointers are passed; on success the kernel returns a new
    // descriptor that nobody else owns.
    let fd = check(
        unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) } as libc::c_long,
    )?;
    // SAFETY: `fd` was just returned by a successful `inotify_init1`.
    Ok(File::from(unsafe {
        OwnedFd::from_raw_fd(fd as libc::c_int)
    }))
}

/// Watches the file that `file` has open (its inode, whatever its names)
/// for the events in `mask`; returns the watch descriptor. The path given to
/// the kernel is `/proc/self/fd/N`, a link to exactly that open file, so no
/// rename between opening and watching can make us watch something else.
pub fn inotify_watch(inotify: impl AsFd, file: impl AsFd, mask: u32) -> io::Result<i32> {
    use std::io::Write as _;
    let (inotify, file) = (inotify.as_fd(), file.as_fd());
    let mut path = [0u8; 40];
    let mut unused = &mut path[..];
    // "/proc/self/fd/" plus at most 10 digits and the NUL fit in 40 bytes.
    write!(unused, "/proc/self/fd/{}\0", file.as_raw_fd())?;
    // SAFETY: `path` holds a NUL-terminated string (written just above, into
    // a zeroed buffer); both descriptors are `BorrowedFd`s, open for the call.
    let wd = unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), path.as_ptr().cast(), mask) };
    check(wd as libc::c_long).map(|wd| wd as i32)
}

/// Stops watching `wd`.
pub fn inotify_unwatch(inotify: impl AsFd, wd: i32) -> io::Result<()> {
    let inotify = inotify.as_fd();
    // SAFETY: `inotify` is a `BorrowedFd`, open for the call; `wd` is a plain
    // integer, and an unknown one is reported as EINVAL.
    check(unsafe { libc::inotify_rm_watch(inotify.as_raw_fd(), wd) } as libc::c_long).map(drop)
}

/// Registers a listening socket with the epoll instance behind `poll`, for
/// edge-triggered readability, with `EPOLLEXCLUSIVE`: when several epoll
/// instances (several workers) watch the same socket, a new connection wakes
/// one of the workers waiting in `epoll_wait`, not all of them (the
/// "thundering herd"; see [`crate::listeners`]). On a socket that only one
/// worker watches the flag changes nothing.
///
/// mio cannot set the flag, hence this wrapper. It registers exactly as mio's
/// own `register` would otherwise: `EPOLLIN | EPOLLET`, with the token in the
/// event's `u64`, which is where mio reads it back from, so `poll` reports
/// the socket's events under `token` like any other source. The kernel
/// refuses `EPOLL_CTL_MOD` on an exclusive registration; listeners are never
/// modified, only removed (with mio's `deregister`, `EPOLL_CTL_DEL`) while
/// their worker cannot accept, and added again with this function.
pub fn register_exclusive(
    poll: &mio::Poll,
    socket: impl AsFd,
    token: mio::Token,
) -> io::Result<()> {
    let socket = socket.as_fd();
    let mut event = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLET | libc::EPOLLEXCLUSIVE) as u32,
        u64: token.0 as u64,
    };
    // SAFETY: `poll` is borrowed for the call, so its epoll descriptor is
    // open; `socket` is a `BorrowedFd`, open for the call; `event` is a valid,
    // initialised `epoll_event` that the kernel only reads.
    let ret = unsafe {
        libc::epoll_ctl(
            poll.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            socket.as_raw_fd(),
            &mut event,
        )
    };
    check(ret as libc::c_long).map(drop)
}

/// Takes ownership of descriptor `fd`, which this process inherited from its
/// parent (systemd's socket activation passes listening sockets from fd 3
/// up), and sets `FD_CLOEXEC` on it, as sd_listen_fds(3) asks, so that it
/// does not leak into programs we might execute.
///
/// The caller must take each inherited number once, and before this process
/// opens any descriptor of its own, so that a number that is open can only
/// be inherited; [`crate::listeners::Inherited::take`] does both (it unsets
/// `LISTEN_FDS` as it reads it, and runs first thing at start).
pub fn adopt_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: `F_GETFD` reads the descriptor's flags and touches no memory;
    // on a number that is not open it fails with `EBADF`, which is how we
    // learn that the parent passed fewer descriptors than it announced.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFD) } as libc::c_long)?;
    let cloexec = flags as libc::c_int | libc::FD_CLOEXEC;
    // SAFETY: as above; `F_SETFD` only changes the descriptor's flags.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, cloexec) } as libc::c_long)?;
    // SAFETY: `fd` is open (`F_GETFD` succeeded); the caller runs before
    // this process opens any descriptor of its own and takes each number
    // once (see above), so `fd` was inherited and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Removes the variables `names` from the environment, if this process runs
/// a single thread; returns whether it did.
///
/// Changing the environment is sound only while no other thread can read it
/// (C's `getenv` takes no lock). When this process has one thread, the
/// caller, no other thread can read the environment during the call, nor
/// start while it runs. With more threads (a test harness calling the library)
/// the variables are left alone.
pub fn remove_env_if_single_threaded(names: &[&str]) -> bool {
    let threads = std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count);
    if threads != 1 {
        return false;
    }
    for name in names {
        // SAFETY: this process has a single thread (checked just above), the
        // one running this call, so nothing reads the environment
        // concurrently.
        unsafe { std::env::remove_var(name) };
    }
    true
}
