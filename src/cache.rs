//! The open-file cache: small, hot files kept in memory per worker, so that
//! serving one costs no `open`, `fstat`, `sendfile` or `close`: the whole
//! response (head and body) leaves in a single `send`.
//!
//! [`FileCache::serve`] is the one call a request makes: it answers a decoded
//! path with a [`FileBody`] from memory when it can, and otherwise looks the
//! path up in the document root, caches what it found if it is small, and
//! passes on what the lookup said. The caller sees where the bytes come from,
//! never how the cache decided.
//!
//! ## Why in memory, and only small files
//! `sendfile` saves copying a body through user space, which matters for
//! large files. For a small file the copy is a few hundred nanoseconds, while
//! each system call around it (`openat2`, `statx`, `send` for the head,
//! `sendfile`, `close`) costs a kernel entry and exit. Caching the bytes turns
//! five system calls per request into one. Files over
//! [`MAX_CACHED_FILE_BYTES`] are always opened and sent with `sendfile`.
//!
//! ## Freshness
//! Each cached file is watched with inotify: a write, `touch`, `chmod`,
//! rename or unlink of that file makes the kernel queue an event on the
//! worker's inotify descriptor, which sits in the event loop like a socket.
//! The worker handles those events *before* the requests of the same
//! `epoll_wait` batch ([`FileCache::apply_changes`]), so a request sent after
//! a change was made is never answered from the old copy, and checking costs
//! nothing per request.
//!
//! inotify watches the file, not every directory on its path: renaming a
//! parent directory or re-pointing a symlink on the path goes unnoticed. So
//! an entry is also trusted for at most [`CACHE_VALIDITY`] after it was last
//! checked (nginx's `open_file_cache_valid`); the next request then re-opens
//! and `fstat`s the file: if the device, inode, size and modification time
//! are unchanged, the entry is trusted again, otherwise it is read again (or,
//! grown past [`MAX_CACHED_FILE_BYTES`], sent from disk).
//!
//! A file is watched before it is read into memory, so a change during the
//! read is reported and drops the new entry; a file that shrinks while being
//! read is not cached at all, and that request is answered from the open
//! file, with `sendfile`.
//!
//! ## Precompressed files
//! With `--precompressed` a file may have sidecars (`style.css.br`, `.zst`,
//! `.gz`; see [`crate::http::encoding`]). Whenever the original is opened (a
//! miss, a revalidation, a file too large to cache) its sidecars are probed
//! too, and a sidecar older than the original is ignored: it was made from
//! an earlier version. The original's entry remembers which sidecars it
//! found, so a hit knows without a system call whether the path varies by
//! `Accept-Encoding`, and which codings are on offer; a sidecar added later
//! is noticed when the entry is next revalidated, within [`CACHE_VALIDITY`].
//! The chosen sidecar is a file like any other, with its own entry (its key
//! is the original's key, a NUL and the coding's name: no decoded path holds
//! a NUL), its own watch, validator and length; only its media type is the
//! original's. Without the flag, nothing is probed and every file is its
//! path's only representation.
//!
//! ## Never the access log
//! The server's own access log must never be served, whatever the paths: a
//! `--log` inside the root, a hard link or a symlink to it. Every file is
//! opened before it is served, so [`FileCache::serve`] compares the opened
//! file's device and inode with the log's ([`FileCache::hide`]) and answers
//! `404` on a match. The comparison sits on the miss path only, after the
//! `openat2` and `fstat` a miss makes anyway; a hit costs nothing more. A
//! file that is the log is never cached, so no entry can hold it, with one
//! exception: a reopen (SIGHUP) may make an existing file the log (a path
//! that already existed, or now a link to a cached file). So [`FileCache::hide`]
//! also drops any entry of the newly hidden file. The worker calls it with
//! the log it writes to, at start and after every switch to a reopened log.
//!
//! ## Bounds, and which files get in
//! At most [`MAX_CACHED_FILES`] entries and [`MAX_CACHED_BYTES`] of content per
//! worker. When full, the least recently used entry is evicted (found by a
//! linear scan: it happens only on a miss, and the table is small).
//!
//! While there is room, every small file that is opened is cached. Once the
//! cache is full, a file gets in only on its *second* miss within a window
//! of recent misses (TinyLFU's "doorkeeper", `Doorkeeper`); a file missed
//! once is answered from disk, with `sendfile`, and leaves the cache as it
//! was. Without this rule, a working set larger than the cache (say 1,000
//! files requested in turn) evicts an entry on every request and hits
//! never: each miss paid for watching, reading and copying a file that is
//! evicted again before its next request, and for unwatching the one it
//! evicted (8 system calls per request where a plain `sendfile` takes 6),
//! plus the scan for the eviction. The window is counted in misses, not in
//! time or requests: while the cache serves most requests, misses are rare
//! and a file asked for again soon gets in at its second request.
//!
//! ## Hashing the key
//! Every request hashes its key (a hit looks it up twice: once to check
//! freshness, once to serve). The standard library's SipHash cost about 220
//! instructions per lookup of a short path, more than parsing the request;
//! with foldhash (hashbrown's own default, randomly seeded per table) a hit
//! costs about 400 instructions less (callgrind, `benches/instructions.py`). Its weaker resistance to chosen collisions does not
//! matter here: a client chooses the keys it *looks up*, but only the names
//! of files that exist get *into* the table, at most [`MAX_CACHED_FILES`] of
//! them, so no request can make a chain of colliding entries.

use std::collections::HashMap;
use std::fs::File;
use std::hash::BuildHasher as _;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::files::{self, DocumentRoot, FileIdentity, Inode, Lookup, PathForm, StaticFile};
use crate::http::Status;
use crate::http::encoding::{AcceptEncoding, Coding, Sidecars, Variant};
use crate::http::response::HeadWriter;
use crate::http::validators::EntityTag;
use crate::sys;

/// Largest file kept in memory.
pub const MAX_CACHED_FILE_BYTES: u64 = 64 * 1024;

/// Most entries in one worker's cache.
pub const MAX_CACHED_FILES: usize = 512;

/// Most content bytes in one worker's cache.
pub const MAX_CACHED_BYTES: usize = 32 * 1024 * 1024;

/// How long an entry is served without checking the file again (changes
/// that inotify reports invalidate it sooner).
pub const CACHE_VALIDITY: Duration = Duration::from_secs(1);

/// The changes to a cached file that invalidate it: its content (write,
/// truncate), its metadata (`touch`, `chmod`, link count: renamed over or
/// unlinked), and its name going away.
const WATCHED_CHANGES: u32 =
    libc::IN_MODIFY | libc::IN_ATTRIB | libc::IN_MOVE_SELF | libc::IN_DELETE_SELF;

/// How many distinct missed files one generation of the [`Doorkeeper`]
/// notes before it starts the next: a file is admitted into a full cache if
/// it missed before within the last one or two generations (between this
/// many and twice this many misses ago).
const ADMISSION_WINDOW_MISSES: usize = MAX_CACHED_FILES / 2;

/// Bits in each generation of the [`Doorkeeper`]: with
/// [`ADMISSION_WINDOW_MISSES`] keys noted, about one lookup in 16 of a key
/// never seen finds its bit set anyway, and admits that file a miss early.
const DOORKEEPER_BITS: usize = 4096;

/// Size of the fixed part of `struct inotify_event`: `wd`, `mask`, `cookie`,
/// `len`, each four bytes; `len` bytes of name follow.
const INOTIFY_EVENT_HEADER_BYTES: usize = 16;

/// The facts a response about a file needs.
#[derive(Clone, Copy, Debug)]
pub struct FileFacts {
    /// Length in bytes.
    pub len: u64,
    /// Modification time (`Last-Modified`, `If-Modified-Since`).
    pub modified: SystemTime,
    /// The strong validator (`ETag`, `If-None-Match`, `If-Range`).
    pub etag: EntityTag,
    /// Media type from the extension (a sidecar's is its original's).
    pub mime: &'static str,
    /// Which representation of its path this is (`--precompressed`).
    pub variant: Variant,
}

impl FileFacts {
    /// The facts of a file just opened, as the representation `variant`.
    pub fn of(file: &StaticFile, variant: Variant) -> FileFacts {
        FileFacts {
            len: file.len,
            modified: file.modified,
            etag: EntityTag::of(file.modified, file.len),
            mime: file.mime,
            variant,
        }
    }

    /// Appends the header fields that describe the file itself (not this
    /// response): `Content-Type`, `Content-Encoding` for a sidecar, `ETag`,
    /// `Last-Modified`, `Accept-Ranges`, and `Vary` for a path with sidecars.
    pub fn write_fields(&self, head: &mut HeadWriter<'_>) {
        head.content_type(self.mime);
        if let Some(coding) = self.variant.content_encoding() {
            head.header("Content-Encoding", coding.as_bytes());
        }
        head.header("ETag", self.etag.as_bytes());
        head.date("Last-Modified", self.modified);
        head.header("Accept-Ranges", b"bytes");
        if self.variant.varies() {
            head.header("Vary", VARY_VALUE);
        }
    }

    /// Appends the header fields a `304 Not Modified` repeats of the `200`
    /// it stands for: `ETag`, and `Vary` for a path with sidecars (RFC 9110
    /// §15.4.5; no other metadata, since we always send an `ETag`).
    pub fn write_not_modified_fields(&self, head: &mut HeadWriter<'_>) {
        head.header("ETag", self.etag.as_bytes());
        if self.variant.varies() {
            head.header("Vary", VARY_VALUE);
        }
    }

    /// `write` (one of the methods above), formatted once for a cache entry.
    fn formatted(&self, write: fn(&FileFacts, &mut HeadWriter<'_>)) -> Box<[u8]> {
        let mut fields = Vec::new();
        write(self, &mut HeadWriter::fields_only(&mut fields));
        fields.into_boxed_slice()
    }
}

/// The `Vary` of every response for a path with sidecars: which request
/// field chose the representation (RFC 9110 §12.5.5).
pub const VARY_VALUE: &[u8] = b"Accept-Encoding";

/// One cached file.
#[derive(Debug)]
pub struct CachedFile {
    /// Its facts.
    pub facts: FileFacts,
    /// [`FileFacts::write_fields`], formatted once when the entry was made.
    pub fields: Box<[u8]>,
    /// [`FileFacts::write_not_modified_fields`], formatted then too: a
    /// revalidation answered `304` copies them like a `200` copies
    /// [`CachedFile::fields`].
    pub not_modified_fields: Box<[u8]>,
    /// The whole content. Shared, not owned: a response sent by reference
    /// ([`crate::respond::CachedSend`]) holds it until its last byte is out,
    /// even if the entry is evicted or invalidated meanwhile. `Arc` only
    /// because a worker is built on the starting thread and then moved to
    /// its own; every count is touched by that one thread, uncontended.
    pub body: Arc<[u8]>,
    /// Which sidecars the file had when last checked (always none for a
    /// sidecar's own entry), so that a hit knows whether to negotiate without
    /// a system call.
    sidecars: Sidecars,
    /// Which version of the file the body is, to confirm a stale entry.
    identity: FileIdentity,
    /// When the file was last opened and found to be this version.
    checked_at: Instant,
    /// [`FileCache::uses`] when the entry was last served, for eviction.
    last_used: u64,
    /// The inotify watch on the file (shared by entries of the same file).
    watch: Option<i32>,
}

/// A file to answer with, and where its bytes come from.
#[derive(Debug)]
pub enum FileBody<'a> {
    /// The worker's in-memory copy: the whole response leaves in one
    /// system call, the body copied after the head or sent by reference.
    Cached(&'a CachedFile),
    /// The open file: its bytes go out with `sendfile`.
    Disk {
        /// The file, open for reading.
        file: File,
        /// What the response says about it.
        facts: FileFacts,
    },
}

impl FileBody<'_> {
    /// The facts of the file, wherever its bytes come from.
    pub fn facts(&self) -> &FileFacts {
        match self {
            FileBody::Cached(cached) => &cached.facts,
            FileBody::Disk { facts, .. } => facts,
        }
    }

    /// Appends the fields that describe the file to the head of a response
    /// with `status`: [`FileFacts::write_not_modified_fields`] for a `304`,
    /// [`FileFacts::write_fields`] otherwise; a cached file's were formatted
    /// once, when its entry was made.
    pub fn write_fields(&self, status: Status, head: &mut HeadWriter<'_>) {
        let not_modified = status == Status::NotModified;
        match self {
            FileBody::Cached(cached) if not_modified => head.fields(&cached.not_modified_fields),
            FileBody::Cached(cached) => head.fields(&cached.fields),
            FileBody::Disk { facts, .. } if not_modified => facts.write_not_modified_fields(head),
            FileBody::Disk { facts, .. } => facts.write_fields(head),
        }
    }
}

/// What a decoded path leads to, as [`FileCache::serve`] answers it: the
/// outcomes of [`Lookup`], with the file's bytes in memory when they can be.
#[derive(Debug)]
pub enum Served<'a> {
    /// A regular file.
    File(FileBody<'a>),
    /// A directory named without its trailing slash ([`Lookup::AddSlash`]).
    AddSlash,
    /// A directory without an index file ([`Lookup::NoIndex`]); never
    /// cached, since a listing is built afresh.
    NoIndex(File),
    /// Nothing we will serve ([`Lookup::Refused`]).
    Refused(Status),
}

/// What [`FileCache::find`] found under the current key.
#[derive(Debug)]
enum Found {
    /// A fresh entry: confirmed, just read, or fresh already.
    Cached,
    /// A file to send from disk.
    Disk {
        /// The file, open for reading.
        file: File,
        /// What the response says about it.
        facts: FileFacts,
        /// Its sidecars, probed when it was opened.
        sidecars: Sidecars,
    },
    /// No file: what to answer instead.
    NotAFile(Served<'static>),
}

/// Which files missed recently, as bits of their keys' hashes, in two
/// generations: the one being filled and the one before it. A fixed-size
/// bit set, so noting a miss allocates nothing and costs a few instructions.
#[derive(Debug)]
struct Doorkeeper {
    /// The generation being filled.
    current: [u64; DOORKEEPER_BITS / 64],
    /// The generation before: still counts as recent.
    previous: [u64; DOORKEEPER_BITS / 64],
    /// How many keys `current` has noted, up to [`ADMISSION_WINDOW_MISSES`].
    noted: usize,
}

impl Doorkeeper {
    const fn new() -> Doorkeeper {
        Doorkeeper {
            current: [0; DOORKEEPER_BITS / 64],
            previous: [0; DOORKEEPER_BITS / 64],
            noted: 0,
        }
    }

    /// Whether the key hashed to `hash` missed before within the window; if
    /// not, notes this miss (and starts a new generation when this one is
    /// full).
    fn has_seen(&mut self, hash: u64) -> bool {
        let bit = hash as usize % DOORKEEPER_BITS;
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if (self.current[word] | self.previous[word]) & mask != 0 {
            return true;
        }
        self.current[word] |= mask;
        self.noted += 1;
        if self.noted == ADMISSION_WINDOW_MISSES {
            self.previous = self.current;
            self.current = [0; DOORKEEPER_BITS / 64];
            self.noted = 0;
        }
        false
    }
}

/// A worker's cache of small files, keyed by the decoded path as requested
/// (before `index.html` is appended), with a trailing `/` for directory
/// requests: `"a/b"` and `"a/b/"` are different requests.
#[derive(Debug)]
pub struct FileCache {
    /// The cached files, by key.
    entries: HashMap<Box<[u8]>, CachedFile, foldhash::fast::RandomState>,
    /// The sum of the entries' body lengths, bounded by [`MAX_CACHED_BYTES`].
    content_bytes: usize,
    /// A clock that ticks once per request, for least-recently-used order.
    uses: u64,
    /// The key of the path being served, built here once per request so that
    /// serving allocates nothing.
    key: Vec<u8>,
    /// The inotify descriptor reporting changes to cached files; `None` if
    /// inotify is unavailable (then [`CACHE_VALIDITY`] alone bounds
    /// staleness).
    watcher: Option<File>,
    /// The access log's file, answered as not found whatever name leads to
    /// it; `None` when there is no log file to hide.
    hidden: Option<Inode>,
    /// The files that missed recently: which may enter a full cache.
    doorkeeper: Doorkeeper,
}

impl Default for FileCache {
    fn default() -> FileCache {
        FileCache::new()
    }
}

/// What the cache holds under a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Freshness {
    /// An entry checked less than [`CACHE_VALIDITY`] ago: serve it.
    Fresh,
    /// An entry older than that: open the file again, and confirm the entry
    /// if the file is still this version.
    Stale(FileIdentity),
    /// Nothing.
    Missing,
}

impl FileCache {
    /// An empty cache with its own inotify instance.
    pub fn new() -> FileCache {
        FileCache {
            entries: HashMap::default(),
            content_bytes: 0,
            uses: 0,
            key: Vec::new(),
            watcher: sys::inotify_init().ok(),
            hidden: None,
            doorkeeper: Doorkeeper::new(),
        }
    }

    /// Never serves `file` from now on (the access log's file, see the module
    /// docs), and drops any entry that holds it.
    pub fn hide(&mut self, file: Inode) {
        self.hidden = Some(file);
        let content_bytes = &mut self.content_bytes;
        let mut released = Vec::new();
        self.entries.retain(|_, entry| {
            let is_hidden = entry.identity.inode() == file;
            if is_hidden {
                *content_bytes -= entry.body.len();
                released.push(entry.watch);
            }
            !is_hidden
        });
        for watch in released {
            self.release_watch(watch);
        }
    }

    /// The file [`FileCache::hide`] hides, if any: a listing leaves it out.
    pub fn hidden(&self) -> Option<Inode> {
        self.hidden
    }

    /// The inotify descriptor, for the worker to register with its `Poll`.
    pub fn watcher(&self) -> Option<&File> {
        self.watcher.as_ref()
    }

    /// Reads every queued change notification and drops the entries of the
    /// files that changed. Called when the watcher is readable, before any
    /// request of the same batch is answered.
    pub fn apply_changes(&mut self) {
        let mut events = [0u8; 4096];
        loop {
            let Some(mut watcher) = self.watcher.as_ref() else {
                return;
            };
            let len = match watcher.read(&mut events) {
                Ok(0) => return,
                Ok(len) => len,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock: drained. Anything else: nothing more to learn.
                Err(_) => return,
            };
            let mut offset = 0;
            while offset + INOTIFY_EVENT_HEADER_BYTES <= len {
                let field = |at: usize| {
                    let bytes = [events[at], events[at + 1], events[at + 2], events[at + 3]];
                    u32::from_ne_bytes(bytes)
                };
                let wd = field(offset) as i32;
                let removed_by_kernel = field(offset + 4) & libc::IN_IGNORED != 0;
                self.forget_watch(wd, removed_by_kernel);
                offset += INOTIFY_EVENT_HEADER_BYTES + field(offset + 12) as usize;
            }
        }
    }

    /// Drops every entry of the file behind `wd`, and the watch itself.
    fn forget_watch(&mut self, wd: i32, removed_by_kernel: bool) {
        let content_bytes = &mut self.content_bytes;
        self.entries.retain(|_, entry| {
            let changed = entry.watch == Some(wd);
            if changed {
                *content_bytes -= entry.body.len();
            }
            !changed
        });
        if !removed_by_kernel && let Some(watcher) = &self.watcher {
            let _ = sys::inotify_unwatch(watcher, wd);
        }
    }

    /// Stops watching `wd` unless another entry (the same file under another
    /// name) still uses it.
    fn release_watch(&mut self, watch: Option<i32>) {
        let Some(wd) = watch else { return };
        if self.entries.values().all(|entry| entry.watch != Some(wd))
            && let Some(watcher) = &self.watcher
        {
            let _ = sys::inotify_unwatch(watcher, wd);
        }
    }

    /// Answers a path decoded by [`crate::files::decode_path`] (in `path`, of
    /// form `form`): from memory when a fresh copy is cached; otherwise from
    /// `root`, keeping a copy of a small file for the next requests. For a
    /// directory the lookup appends `/index.html` to `path`.
    ///
    /// With `--precompressed`, `accepted` is the request's `Accept-Encoding`
    /// (`None` otherwise): when the file has a sidecar the client accepts,
    /// the sidecar is served instead, as its own entry (see "Precompressed
    /// files" above).
    pub fn serve(
        &mut self,
        root: &DocumentRoot,
        path: &mut Vec<u8>,
        form: PathForm,
        accepted: Option<AcceptEncoding<'_>>,
        now: Instant,
    ) -> Served<'_> {
        set_key(&mut self.key, path, form);
        let requested_len = path.len();
        let probes_sidecars = accepted.is_some();
        let original = self.find(now, |cache| {
            let file = match cache.lookup(root, path, form) {
                Lookup::File(file) => file,
                Lookup::AddSlash => return Err(Served::AddSlash),
                Lookup::NoIndex(directory) => return Err(Served::NoIndex(directory)),
                Lookup::Refused(status) => return Err(Served::Refused(status)),
            };
            let sidecars = if probes_sidecars {
                cache.probe_sidecars(root, path, file.modified)
            } else {
                Sidecars::NONE
            };
            let variant = if sidecars.is_empty() {
                Variant::Sole
            } else {
                Variant::Identity
            };
            let facts = FileFacts::of(&file, variant);
            Ok((file, facts, sidecars))
        });
        let Some(accepted) = accepted else {
            return self.served(original);
        };
        let (sidecars, original_facts) = match &original {
            Found::Cached => match self.entries.get(&self.key[..]) {
                Some(entry) => (entry.sidecars, entry.facts),
                None => return Served::Refused(Status::InternalServerError),
            },
            Found::Disk {
                facts, sidecars, ..
            } => (*sidecars, *facts),
            Found::NotAFile(_) => return self.served(original),
        };
        let Some(coding) = accepted.choose(sidecars) else {
            return self.served(original);
        };
        // The sidecar's own entry, under the original's key plus a NUL (which
        // no decoded path holds) and the coding's name.
        let original_key_len = self.key.len();
        self.key.push(0);
        self.key.extend_from_slice(coding.token().as_bytes());
        // A cache hit left `path` as requested; a lookup made it the file's.
        path.truncate(requested_len);
        if form == PathForm::Directory {
            files::append_index(path);
        }
        let encoded = self.find(now, |cache| {
            let file = cache
                .open_sidecar(root, path, coding)
                .filter(|file| file.modified >= original_facts.modified)
                .ok_or(Served::Refused(Status::NotFound))?;
            let facts = FileFacts {
                etag: EntityTag::of_encoded(file.modified, file.len, coding),
                mime: original_facts.mime,
                ..FileFacts::of(&file, Variant::Encoded(coding))
            };
            Ok((file, facts, Sidecars::NONE))
        });
        match encoded {
            // The sidecar went away (or grew older than the original) since
            // the original's entry was checked: the original will do.
            Found::NotAFile(_) => {
                self.key.truncate(original_key_len);
                self.served(original)
            }
            found => self.served(found),
        }
    }

    /// Finds the file under the current key: the entry, if fresh; otherwise
    /// the file `open` opens (with its facts and sidecars), which confirms a
    /// stale entry, replaces it, or (too large, or changing while read) is
    /// sent from disk. What `open` refuses is passed on.
    fn find(
        &mut self,
        now: Instant,
        open: impl FnOnce(&FileCache) -> Result<(StaticFile, FileFacts, Sidecars), Served<'static>>,
    ) -> Found {
        let stale = match self.freshness(now) {
            Freshness::Fresh => return Found::Cached,
            Freshness::Stale(identity) => Some(identity),
            Freshness::Missing => None,
        };
        let (file, facts, sidecars) = match open(self) {
            Ok(opened) => opened,
            Err(served) => return Found::NotAFile(served),
        };
        if stale == Some(file.identity) {
            self.confirm(facts, sidecars, now);
            return Found::Cached;
        }
        if file.len <= MAX_CACHED_FILE_BYTES
            && self.admits(file.len, stale.is_some())
            && self.insert(&file, facts, sidecars, now).is_ok()
        {
            return Found::Cached;
        }
        // Too large to cache, not admitted, or changed while being read.
        Found::Disk {
            file: file.file,
            facts,
            sidecars,
        }
    }

    /// Whether a file of `len` bytes just opened under the current key may be
    /// cached: a new version of a cached file (`replaces`) always, any other
    /// file while there is room, and in a full cache only a file that missed
    /// before within the window (see "Bounds, and which files get in").
    fn admits(&mut self, len: u64, replaces: bool) -> bool {
        if replaces || self.has_room_for(len as usize) {
            return true;
        }
        let hash = self.entries.hasher().hash_one(&self.key[..]);
        self.doorkeeper.has_seen(hash)
    }

    /// Whether `len` more bytes fit without evicting anything.
    fn has_room_for(&self, len: usize) -> bool {
        self.entries.len() < MAX_CACHED_FILES && self.content_bytes + len <= MAX_CACHED_BYTES
    }

    /// What [`FileCache::find`] found, as the caller answers it.
    fn served(&self, found: Found) -> Served<'_> {
        match found {
            Found::Cached => match self.entries.get(&self.key[..]) {
                Some(entry) => Served::File(FileBody::Cached(entry)),
                // `find` answers `Cached` only with the entry in place.
                None => Served::Refused(Status::InternalServerError),
            },
            Found::Disk { file, facts, .. } => Served::File(FileBody::Disk { file, facts }),
            Found::NotAFile(served) => served,
        }
    }

    /// Which of the file at `path` (opened, last modified at `modified`) has
    /// sidecars we would serve: each is opened and closed again, so this
    /// costs three `openat2` calls and is made only when the original is
    /// opened anyway (a miss, a revalidation, a file too large to cache).
    fn probe_sidecars(
        &self,
        root: &DocumentRoot,
        path: &mut Vec<u8>,
        modified: SystemTime,
    ) -> Sidecars {
        Coding::PREFERENCE
            .into_iter()
            .filter(|&coding| {
                self.open_sidecar(root, path, coding)
                    .is_some_and(|sidecar| sidecar.modified >= modified)
            })
            .fold(Sidecars::NONE, Sidecars::with)
    }

    /// Opens the `coding` sidecar of the file at `path`, unless it is the
    /// access log.
    fn open_sidecar(
        &self,
        root: &DocumentRoot,
        path: &mut Vec<u8>,
        coding: Coding,
    ) -> Option<StaticFile> {
        root.open_sidecar(path, coding.suffix())
            .filter(|file| Some(file.identity.inode()) != self.hidden)
    }

    /// Looks `path` up in `root`, the access log answered as not found.
    fn lookup(&self, root: &DocumentRoot, path: &mut Vec<u8>, form: PathForm) -> Lookup {
        match root.lookup_decoded(path, form) {
            Lookup::File(file) if Some(file.identity.inode()) == self.hidden => {
                Lookup::Refused(Status::NotFound)
            }
            found => found,
        }
    }

    /// What is cached under the current key; marks a fresh entry used.
    fn freshness(&mut self, now: Instant) -> Freshness {
        self.uses += 1;
        match self.entries.get_mut(&self.key[..]) {
            Some(entry) if now.saturating_duration_since(entry.checked_at) < CACHE_VALIDITY => {
                entry.last_used = self.uses;
                Freshness::Fresh
            }
            Some(entry) => Freshness::Stale(entry.identity),
            None => Freshness::Missing,
        }
    }

    /// The file behind the stale entry under the current key was opened again
    /// and has not changed: trusts the entry for another [`CACHE_VALIDITY`].
    /// Its sidecars may have come or gone, which changes its `Vary`.
    fn confirm(&mut self, facts: FileFacts, sidecars: Sidecars, now: Instant) {
        let Some(entry) = self.entries.get_mut(&self.key[..]) else {
            return;
        };
        entry.checked_at = now;
        if entry.sidecars != sidecars {
            entry.sidecars = sidecars;
            entry.facts = facts;
            entry.fields = facts.formatted(FileFacts::write_fields);
            entry.not_modified_fields = facts.formatted(FileFacts::write_not_modified_fields);
        }
    }

    /// Reads `file` (at most [`MAX_CACHED_FILE_BYTES`], checked by the
    /// caller) and caches it under the current key, replacing any older
    /// version and evicting the least recently used entries to make room.
    fn insert(
        &mut self,
        file: &StaticFile,
        facts: FileFacts,
        sidecars: Sidecars,
        now: Instant,
    ) -> io::Result<()> {
        // Watch before reading: a change made while we read is then reported
        // (and drops the entry), never lost.
        let watch = self
            .watcher
            .as_ref()
            .and_then(|watcher| sys::inotify_watch(watcher, &file.file, WATCHED_CHANGES).ok());
        let mut body = Vec::with_capacity(facts.len as usize);
        (&file.file).take(facts.len).read_to_end(&mut body)?;
        if body.len() as u64 != facts.len {
            // The file changed while we read it; do not cache a torn copy.
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        if let Some(old) = self.entries.remove(&self.key[..]) {
            self.content_bytes -= old.body.len();
            if old.watch != watch {
                self.release_watch(old.watch);
            }
        }
        while !self.has_room_for(body.len()) && !self.entries.is_empty() {
            self.evict_least_recently_used();
        }
        self.content_bytes += body.len();
        self.uses += 1;
        let entry = CachedFile {
            facts,
            fields: facts.formatted(FileFacts::write_fields),
            not_modified_fields: facts.formatted(FileFacts::write_not_modified_fields),
            body: Arc::from(body),
            sidecars,
            identity: file.identity,
            checked_at: now,
            last_used: self.uses,
            watch,
        };
        self.entries
            .insert(self.key.clone().into_boxed_slice(), entry);
        Ok(())
    }

    fn evict_least_recently_used(&mut self) {
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, entry)| entry.last_used)
            .map(|(key, _)| key.clone());
        if let Some(entry) = oldest.and_then(|key| self.entries.remove(&key)) {
            self.content_bytes -= entry.body.len();
            self.release_watch(entry.watch);
        }
    }

    /// Number of cached files.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Builds the key of a decoded path: the path, plus `/` for a directory
/// request.
fn set_key(key: &mut Vec<u8>, path: &[u8], form: PathForm) {
    key.clear();
    key.extend_from_slice(path);
    if form == PathForm::Directory {
        key.push(b'/');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document root holding `files`, and the directory it is in.
    fn site(files: &[(&str, &[u8])]) -> (tempfile::TempDir, DocumentRoot) {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).unwrap();
        }
        let root = DocumentRoot::open(dir.path()).unwrap();
        (dir, root)
    }

    /// Serves `path` as a file request, without `--precompressed`.
    fn serve<'a>(
        cache: &'a mut FileCache,
        root: &DocumentRoot,
        path: &str,
        now: Instant,
    ) -> Served<'a> {
        cache.serve(
            root,
            &mut path.as_bytes().to_vec(),
            PathForm::File,
            None,
            now,
        )
    }

    /// Serves `path` as a file request with `--precompressed`, to a client
    /// sending `Accept-Encoding: accepted`.
    fn serve_accepting<'a>(
        cache: &'a mut FileCache,
        root: &DocumentRoot,
        path: &str,
        accepted: &str,
        now: Instant,
    ) -> Served<'a> {
        let accepted = Some(AcceptEncoding::new(Some(accepted.as_bytes())));
        cache.serve(
            root,
            &mut path.as_bytes().to_vec(),
            PathForm::File,
            accepted,
            now,
        )
    }

    /// The cached entry `serve` answered with; fails on anything else.
    fn cached<'a>(served: Served<'a>) -> &'a CachedFile {
        match served {
            Served::File(FileBody::Cached(entry)) => entry,
            other => panic!("expected a cached file, got {other:?}"),
        }
    }

    /// What is cached for `path` (a file request) at `now`.
    fn freshness(cache: &mut FileCache, path: &[u8], form: PathForm, now: Instant) -> Freshness {
        set_key(&mut cache.key, path, form);
        cache.freshness(now)
    }

    #[test]
    fn entries_are_fresh_then_stale_then_confirmed() {
        let start = Instant::now();
        let (_dir, root) = site(&[("a.txt", b"hello")]);
        let mut cache = FileCache::default();
        let file = PathForm::File;
        assert_eq!(
            freshness(&mut cache, b"a.txt", file, start),
            Freshness::Missing
        );
        let entry = cached(serve(&mut cache, &root, "a.txt", start));
        assert_eq!(&*entry.body, b"hello");
        let fields = String::from_utf8(entry.fields.to_vec()).unwrap();
        assert!(fields.starts_with("\r\nContent-Type: text/plain; charset=utf-8\r\nETag: \""));
        assert!(fields.ends_with("\r\nAccept-Ranges: bytes"));
        let body = entry.body.as_ptr();
        assert_eq!(
            freshness(&mut cache, b"a.txt", file, start),
            Freshness::Fresh
        );
        let later = start + CACHE_VALIDITY;
        assert!(matches!(
            freshness(&mut cache, b"a.txt", file, later),
            Freshness::Stale(_)
        ));
        // The file has not changed: the same entry is trusted again.
        let entry = cached(serve(&mut cache, &root, "a.txt", later));
        assert_eq!(entry.body.as_ptr(), body, "confirmed, not read again");
        assert_eq!(
            freshness(&mut cache, b"a.txt", file, later),
            Freshness::Fresh
        );
        assert_eq!(
            freshness(&mut cache, b"a.txt", PathForm::Directory, later),
            Freshness::Missing
        );
    }

    #[test]
    fn a_stale_entry_of_a_changed_file_is_reloaded() {
        let start = Instant::now();
        let (dir, root) = site(&[("a", b"old")]);
        let mut cache = FileCache::default();
        cached(serve(&mut cache, &root, "a", start));
        std::fs::write(dir.path().join("a"), b"newer").unwrap();
        // inotify's report of the change is not read here (no
        // `apply_changes`): the check of a stale entry alone must find it.
        let later = start + CACHE_VALIDITY;
        let entry = cached(serve(&mut cache, &root, "a", later));
        assert_eq!(&*entry.body, b"newer");
        assert_eq!(entry.facts.len, 5);
        assert_eq!(cache.content_bytes, 5);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_changed_file_is_dropped_as_soon_as_the_change_is_read() {
        let now = Instant::now();
        let (dir, root) = site(&[("page.html", b"old")]);
        let mut cache = FileCache::new();
        assert!(cache.watcher().is_some(), "inotify is available on Linux");
        cached(serve(&mut cache, &root, "page.html", now));
        cache.apply_changes();
        assert_eq!(
            freshness(&mut cache, b"page.html", PathForm::File, now),
            Freshness::Fresh
        );
        std::fs::write(dir.path().join("page.html"), b"new").unwrap();
        cache.apply_changes();
        assert_eq!(
            freshness(&mut cache, b"page.html", PathForm::File, now),
            Freshness::Missing
        );
        assert_eq!(cache.content_bytes, 0);
    }

    #[test]
    fn large_files_and_non_files_are_not_cached() {
        let now = Instant::now();
        let large = vec![b'x'; MAX_CACHED_FILE_BYTES as usize + 1];
        let (_dir, root) = site(&[("large", &large)]);
        let mut cache = FileCache::default();
        match serve(&mut cache, &root, "large", now) {
            Served::File(FileBody::Disk { facts, .. }) => assert_eq!(facts.len, large.len() as u64),
            other => panic!("expected a file from disk, got {other:?}"),
        }
        assert!(matches!(
            serve(&mut cache, &root, "missing", now),
            Served::Refused(Status::NotFound)
        ));
        assert!(cache.is_empty());
    }

    #[test]
    fn the_least_recently_used_entry_is_evicted() {
        let now = Instant::now();
        let names: Vec<String> = (0..=MAX_CACHED_FILES).map(|i| format!("f{i}")).collect();
        let files: Vec<(&str, &[u8])> = names
            .iter()
            .map(|name| (name.as_str(), &b"x"[..]))
            .collect();
        let (_dir, root) = site(&files);
        let mut cache = FileCache::default();
        for name in &names[..MAX_CACHED_FILES] {
            cached(serve(&mut cache, &root, name, now));
        }
        // Touch f0 so that f1 is now the oldest.
        assert_eq!(
            freshness(&mut cache, b"f0", PathForm::File, now),
            Freshness::Fresh
        );
        // The cache is full: a new file gets in at its second miss (see
        // `a_full_cache_admits_a_file_at_its_second_miss`).
        serve(&mut cache, &root, &names[MAX_CACHED_FILES], now);
        cached(serve(&mut cache, &root, &names[MAX_CACHED_FILES], now));
        assert_eq!(cache.len(), MAX_CACHED_FILES);
        assert_eq!(
            freshness(&mut cache, b"f0", PathForm::File, now),
            Freshness::Fresh
        );
        assert_eq!(
            freshness(&mut cache, b"f1", PathForm::File, now),
            Freshness::Missing
        );
    }

    #[test]
    fn a_full_cache_admits_a_file_at_its_second_miss() {
        let now = Instant::now();
        let names: Vec<String> = (0..MAX_CACHED_FILES).map(|i| format!("f{i}")).collect();
        let mut files: Vec<(&str, &[u8])> = names
            .iter()
            .map(|name| (name.as_str(), &b"x"[..]))
            .collect();
        files.push(("new", b"new"));
        let (dir, root) = site(&files);
        let mut cache = FileCache::new();
        for name in &names {
            cached(serve(&mut cache, &root, name, now));
        }
        // Seen once: answered from disk, and the cache is left as it was.
        match serve(&mut cache, &root, "new", now) {
            Served::File(FileBody::Disk { facts, .. }) => assert_eq!(facts.len, 3),
            other => panic!("expected a file from disk, got {other:?}"),
        }
        assert_eq!(
            freshness(&mut cache, b"new", PathForm::File, now),
            Freshness::Missing
        );
        assert_eq!(
            freshness(&mut cache, b"f0", PathForm::File, now),
            Freshness::Fresh
        );
        // Seen twice: cached, evicting the least recently used entry, and
        // served from memory from then on.
        assert_eq!(&*cached(serve(&mut cache, &root, "new", now)).body, b"new");
        assert_eq!(cache.len(), MAX_CACHED_FILES);
        assert_eq!(
            freshness(&mut cache, b"f1", PathForm::File, now),
            Freshness::Missing
        );
        assert_eq!(
            freshness(&mut cache, b"new", PathForm::File, now),
            Freshness::Fresh
        );
        // An admitted entry is invalidated like any other.
        std::fs::write(dir.path().join("new"), b"newer").unwrap();
        cache.apply_changes();
        assert_eq!(
            freshness(&mut cache, b"new", PathForm::File, now),
            Freshness::Missing
        );
        // That left room: the next miss is cached at once.
        assert_eq!(
            &*cached(serve(&mut cache, &root, "new", now)).body,
            b"newer"
        );
    }

    #[test]
    fn the_doorkeeper_forgets_a_miss_after_two_generations() {
        let mut doorkeeper = Doorkeeper::new();
        assert!(!doorkeeper.has_seen(7), "first miss");
        assert!(doorkeeper.has_seen(7), "second miss");
        // Misses of other keys (each its own bit) fill this generation, then
        // the next: the first miss of key 7 is then out of the window.
        let others = (8..).take(2 * ADMISSION_WINDOW_MISSES);
        for (noted, other) in others.enumerate() {
            assert!(!doorkeeper.has_seen(other), "miss {noted} of a new key");
            if noted + 1 == ADMISSION_WINDOW_MISSES {
                assert!(doorkeeper.has_seen(7), "one generation ago still counts");
            }
        }
        assert!(!doorkeeper.has_seen(7), "forgotten after two generations");
    }

    #[test]
    fn a_hidden_file_is_dropped_and_not_found_under_any_name() {
        let now = Instant::now();
        let (dir, root) = site(&[("log.txt", b"lines"), ("a.txt", b"hello")]);
        std::fs::hard_link(dir.path().join("log.txt"), dir.path().join("link.txt")).unwrap();
        let mut cache = FileCache::default();
        cached(serve(&mut cache, &root, "log.txt", now));
        cached(serve(&mut cache, &root, "a.txt", now));
        let metadata = std::fs::metadata(dir.path().join("log.txt")).unwrap();
        cache.hide(Inode::of(&metadata));
        assert_eq!(cache.len(), 1, "the entry of the hidden file is dropped");
        for name in ["log.txt", "link.txt"] {
            assert!(matches!(
                serve(&mut cache, &root, name, now),
                Served::Refused(Status::NotFound)
            ));
        }
        cached(serve(&mut cache, &root, "a.txt", now));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_sidecar_is_its_own_entry_and_the_original_varies() {
        let now = Instant::now();
        let (dir, root) = site(&[("a.css", b"body{}"), ("a.css.gz", b"GZ")]);
        let mut cache = FileCache::default();
        let encoded = cached(serve_accepting(&mut cache, &root, "a.css", "gzip", now));
        assert_eq!(&*encoded.body, b"GZ");
        assert_eq!(encoded.facts.mime, "text/css", "the original's media type");
        assert_eq!(encoded.facts.variant, Variant::Encoded(Coding::Gzip));
        assert!(encoded.facts.etag.as_bytes().ends_with(b"-gzip\""));
        let fields = String::from_utf8(encoded.fields.to_vec()).unwrap();
        assert!(
            fields.contains("\r\nContent-Encoding: gzip\r\n"),
            "{fields}"
        );
        assert!(fields.ends_with("\r\nVary: Accept-Encoding"), "{fields}");
        let original = cached(serve_accepting(&mut cache, &root, "a.css", "br", now));
        assert_eq!(&*original.body, b"body{}");
        assert_eq!(original.facts.variant, Variant::Identity);
        assert_eq!(cache.len(), 2);
        // A hit negotiates from what the entry remembers: no lookup, so a
        // sidecar removed behind its back is noticed by inotify, or on
        // opening it, and the original answers.
        std::fs::remove_file(dir.path().join("a.css.gz")).unwrap();
        cache.apply_changes();
        let original = cached(serve_accepting(&mut cache, &root, "a.css", "gzip", now));
        assert_eq!(&*original.body, b"body{}");
        // The same file without --precompressed is its only representation.
        let mut plain = FileCache::default();
        let sole = cached(serve(&mut plain, &root, "a.css", now));
        assert_eq!(sole.facts.variant, Variant::Sole);
        assert!(!String::from_utf8_lossy(&sole.fields).contains("Vary"));
    }

    #[test]
    fn an_entry_formats_its_304_fields_once_too() {
        let now = Instant::now();
        let (_dir, root) = site(&[("a.css", b"body{}"), ("a.css.gz", b"GZ")]);
        let mut plain = FileCache::default();
        let sole = cached(serve(&mut plain, &root, "a.css", now));
        let etag = |entry: &CachedFile| String::from_utf8(entry.facts.etag.as_bytes().to_vec());
        assert_eq!(
            String::from_utf8(sole.not_modified_fields.to_vec()).unwrap(),
            format!("\r\nETag: {}", etag(sole).unwrap())
        );
        let mut precompressed = FileCache::default();
        let encoded = cached(serve_accepting(
            &mut precompressed,
            &root,
            "a.css",
            "gzip",
            now,
        ));
        assert_eq!(
            String::from_utf8(encoded.not_modified_fields.to_vec()).unwrap(),
            format!(
                "\r\nETag: {}\r\nVary: Accept-Encoding",
                etag(encoded).unwrap()
            )
        );
    }

    #[test]
    fn a_sidecar_older_than_its_original_is_ignored() {
        let now = Instant::now();
        let (dir, root) = site(&[("a.js", b"x=1"), ("a.js.br", b"BR")]);
        let older = SystemTime::now() - Duration::from_secs(60);
        let sidecar = File::options().write(true).open(dir.path().join("a.js.br"));
        sidecar.unwrap().set_modified(older).unwrap();
        let mut cache = FileCache::default();
        let original = cached(serve_accepting(&mut cache, &root, "a.js", "br", now));
        assert_eq!(&*original.body, b"x=1");
        assert_eq!(original.facts.variant, Variant::Sole, "no Vary either");
        // Remade: noticed when the original's entry is next revalidated.
        std::fs::write(dir.path().join("a.js.br"), b"BR2").unwrap();
        let later = now + CACHE_VALIDITY;
        let encoded = cached(serve_accepting(&mut cache, &root, "a.js", "br", later));
        assert_eq!(&*encoded.body, b"BR2");
        // A request for the sidecar itself gets it as a plain file.
        let itself = cached(serve_accepting(&mut cache, &root, "a.js.br", "br", later));
        assert_eq!(itself.facts.variant, Variant::Sole);
        assert_ne!(itself.facts.mime, "text/javascript");
    }
}
