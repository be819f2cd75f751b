//! The open-file cache: small, hot files kept in memory per worker, so that
//! serving one costs no `open`, `fstat`, `sendfile` or `close`: the whole
//! response (head and body) leaves in a single `send` (a body of
//! `respond::MIN_CACHED_SEND_BYTES` or more by reference, beside the head, in
//! one `sendmsg`: see `connection.rs`, "How a body leaves").
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
//! each system call around it (`openat2`, `fstat`, `send` for the head,
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
//! At most [`MAX_CACHED_BYTES`] of content per worker, and at most
//! [`MAX_CACHED_FILES`] entries: enough for that many bytes of 4 KiB files,
//! so the byte budget binds for all but the smallest files. Each entry holds
//! an inotify watch (one per file and worker); where `max_user_watches` is
//! low (8,192 on older kernels), a watch that cannot be added leaves its
//! file uncached, answered from disk, never cached unwatched.
//!
//! When full, the cache evicts with CLOCK (second chance), an approximation
//! of least-recently-used that costs O(1) however many entries there are.
//! The entries' keys sit in a ring in insertion order; a hit sets the
//! entry's `referenced` mark (one store, where true LRU order would move the
//! entry in a list). To evict, the hand at the front of the ring looks at
//! the oldest entry: a marked one loses its mark and goes to the back, the
//! first unmarked one is evicted. Each mark is set by a hit and cleared once,
//! so the hand's work is amortised O(1) per request, where finding the least
//! recently used entry by a scan was O(entries) per eviction. An entry
//! dropped by invalidation leaves a stale slot in the ring (told by its
//! insertion number), which the hand drops when it gets there; should
//! stale slots pile up, they are swept out all at once (`MAX_RING_SLOTS`).
//! CLOCK rather than an exact LRU list: a linked list through the hash table
//! would need a node per entry and two pointer updates per hit; CLOCK's
//! mark is a single store on the hit path, and its choice differs from LRU
//! only among entries not hit since the hand last passed.
//!
//! While there is room, every small file that is opened is cached. Once the
//! cache is full, TinyLFU decides: every request is counted in a
//! count-min sketch of 4-bit counters (`FrequencySketch`, halved every
//! `SKETCH_SAMPLE` requests), and a missed file gets in only if it was asked
//! for at least `MIN_ADMISSION_FREQUENCY` times recently *and* more often than
//! the entry it would evict (the hand's candidate). Anything else is answered
//! from disk, with `sendfile`, and leaves the cache as it was. Without such a
//! rule a working set larger than the cache (a uniform load over 100,000 files,
//! say) evicts an entry on nearly every miss: each paid for watching, reading
//! and copying a file that is evicted again before its next request, and for
//! unwatching the one it evicted (`inotify_add_watch`, `read`,
//! `inotify_rm_watch` and the kernel's `IN_IGNORED` to read). Under that load
//! almost every file is asked for once per sample, so almost none gets past the
//! first test, which costs a hash and four counters; under a skewed (Zipf) load
//! the popular files keep their entries, since a file asked for now and then
//! cannot displace them.
//!
//! ## Hashing the key
//! Every request hashes its key three times: once for the frequency sketch,
//! and a hit looks it up twice (once to check freshness, once to serve; the
//! standard library's `HashMap` takes no precomputed hash). The standard
//! library's SipHash cost about 220 instructions per lookup of a short path,
//! more than parsing the request; with foldhash (hashbrown's own default,
//! randomly seeded per table) a hit costs about 400 instructions less
//! (callgrind, `benches/instructions.py`). Its weaker resistance to chosen
//! collisions does not matter here: a client chooses the keys it *looks
//! up*, but only the names of files that exist get *into* the table, at most
//! [`MAX_CACHED_FILES`] of them, so no request can make a chain of colliding
//! entries.

use std::collections::{HashMap, VecDeque};
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

/// Most entries in one worker's cache: enough for [`MAX_CACHED_BYTES`] of
/// 4 KiB files, so that the byte budget, not the count, bounds a cache of
/// small files. Each entry holds an inotify watch (see "Bounds, and which
/// files get in").
pub const MAX_CACHED_FILES: usize = 8 * 1024;

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

/// Requests the [`FrequencySketch`] counts before it halves every count
/// (TinyLFU's sample): a file must be asked for about once per 2,560
/// requests or more often to enter a full cache. Deliberately not tied to
/// the cache's size (TinyLFU's papers suggest ten times the entries): every
/// admission into a full cache costs an `inotify_add_watch`, a `read`, an
/// eviction's `inotify_rm_watch` and its `IN_IGNORED` event, and with a
/// sample of 10 × 8,192 a uniform load over 100,000 files (0.8 requests per
/// file per sample) let enough files through to cost 16.3 µs of CPU per
/// request against 14.0 with this sample (one worker, `wrk -c256`, access
/// log on, `docs/benchmarks.md`, "Misses"). A file popular enough to matter
/// is asked for far more often than that.
const SKETCH_SAMPLE: usize = 5 * 1024;

/// Rows of the [`FrequencySketch`]: a key's estimate is too high only if
/// other keys share its counter in every row.
const SKETCH_ROWS: usize = 4;

/// Counters in each row of the [`FrequencySketch`]: the power of two at
/// least three times [`SKETCH_SAMPLE`]. With that many requests of distinct
/// keys recorded, at most a third of a row's counters are taken, so a key
/// never asked for shares a counter in all four rows about once in 100 times
/// (16 Ki counters a row: 32 KiB per worker).
const SKETCH_WIDTH: usize = (3 * SKETCH_SAMPLE).next_power_of_two();

/// Odd multipliers, one per row of the [`FrequencySketch`]: a row's column
/// is the top bits of the key's hash times its multiplier (multiply-shift
/// hashing), so the rows index independently, however wide they are.
const SKETCH_ROW_MULTIPLIERS: [u64; SKETCH_ROWS] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0xD6E8_FEB8_6659_FD93,
];

/// How many recent requests (in the [`FrequencySketch`]) a file needs to
/// enter a full cache: one more than a file asked for once, which under a
/// uniform load over a large tree is nearly every file.
const MIN_ADMISSION_FREQUENCY: u64 = 2;

/// Slots the eviction ring may hold before its stale ones are dropped: at
/// most half of them are live.
const MAX_RING_SLOTS: usize = 2 * MAX_CACHED_FILES;

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
            len: file.size(),
            modified: file.modified(),
            etag: EntityTag::of(file.modified(), file.size()),
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
    /// Set by every hit, cleared when the eviction hand passes the entry:
    /// its second chance (see "Bounds, and which files get in").
    referenced: bool,
    /// Which insertion made the entry ([`FileCache::insertions`]), to tell
    /// its slot in the eviction ring from a stale one, left by an earlier
    /// entry under the same key.
    inserted: u64,
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

/// How often each key was asked for recently, estimated (TinyLFU's
/// count-min sketch): [`SKETCH_ROWS`] rows of [`SKETCH_WIDTH`] 4-bit
/// counters, each row indexed by its own mix of the key's hash
/// ([`SKETCH_ROW_MULTIPLIERS`]). Recording a
/// key increments its counter in every row; the estimate is the smallest of
/// them, so a key is overcounted only if other keys collide with it in every
/// row. Every [`SKETCH_SAMPLE`] requests all counters are halved, so the
/// counts describe the recent past. An array allocated once: recording
/// allocates nothing and costs a few dozen instructions.
#[derive(Debug)]
struct FrequencySketch {
    /// The counters, row after row, 16 to a word; on the heap, being too
    /// large for a thread's stack.
    counters: Box<[u64; SKETCH_WORDS]>,
    /// Requests recorded since the counters were last halved.
    recorded: usize,
}

/// Words in the [`FrequencySketch`]'s counter array.
const SKETCH_WORDS: usize = SKETCH_ROWS * SKETCH_WIDTH / COUNTERS_PER_WORD;

/// 4-bit counters in one `u64`.
const COUNTERS_PER_WORD: usize = 16;

/// The largest count a 4-bit counter holds.
const COUNTER_MAX: u64 = 15;

impl FrequencySketch {
    fn new() -> FrequencySketch {
        FrequencySketch {
            // Built on the heap (`Box::new([0; SKETCH_WORDS])` may build it
            // on the stack first); the fixed length spares the bounds checks.
            counters: vec![0; SKETCH_WORDS]
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("a vector of SKETCH_WORDS counters")),
            recorded: 0,
        }
    }

    /// Where the counter of `hash` in `row` is: its word and bit offset.
    fn counter(hash: u64, row: usize) -> (usize, u32) {
        let column_bits = SKETCH_WIDTH.trailing_zeros();
        let column =
            (hash.wrapping_mul(SKETCH_ROW_MULTIPLIERS[row]) >> (u64::BITS - column_bits)) as usize;
        let index = row * SKETCH_WIDTH + column;
        (
            index / COUNTERS_PER_WORD,
            (index % COUNTERS_PER_WORD) as u32 * 4,
        )
    }

    /// Counts one request for the key hashed to `hash`.
    fn record(&mut self, hash: u64) {
        for row in 0..SKETCH_ROWS {
            let (word, shift) = FrequencySketch::counter(hash, row);
            if (self.counters[word] >> shift) & COUNTER_MAX < COUNTER_MAX {
                self.counters[word] += 1 << shift;
            }
        }
        self.recorded += 1;
        if self.recorded == SKETCH_SAMPLE {
            // Halve every counter at once: shift each word right, and clear
            // the bit each counter received from its neighbour.
            for word in self.counters.iter_mut() {
                *word = (*word >> 1) & 0x7777_7777_7777_7777;
            }
            self.recorded = SKETCH_SAMPLE / 2;
        }
    }

    /// How many recent requests the key hashed to `hash` had (never fewer
    /// than it really had, up to [`COUNTER_MAX`]).
    fn estimate(&self, hash: u64) -> u64 {
        (0..SKETCH_ROWS)
            .map(|row| {
                let (word, shift) = FrequencySketch::counter(hash, row);
                (self.counters[word] >> shift) & COUNTER_MAX
            })
            .min()
            .unwrap_or(0)
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
    /// The eviction ring (CLOCK): a slot per insertion, oldest first; the
    /// front is the hand. Every entry has exactly one live slot; entries
    /// dropped by invalidation leave stale slots that the hand skips.
    ring: VecDeque<RingSlot>,
    /// Insertions so far: numbers each entry and its slot.
    insertions: u64,
    /// How many entries use each inotify watch (one file cached under two
    /// keys has one watch), so that dropping an entry knows without a scan
    /// whether to unwatch its file.
    watch_users: HashMap<i32, usize>,
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
    /// How often each key was asked for recently: which file may enter a
    /// full cache, and in place of which entry.
    frequencies: FrequencySketch,
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
            ring: VecDeque::new(),
            insertions: 0,
            watch_users: HashMap::new(),
            key: Vec::new(),
            watcher: sys::inotify_init().ok(),
            hidden: None,
            frequencies: FrequencySketch::new(),
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
        if self.watch_users.remove(&wd).is_none() {
            // No entry uses it: the `IN_IGNORED` that follows our own
            // `inotify_rm_watch` (one per eviction), or a second event about
            // a file already dropped. Nothing to scan for.
            return;
        }
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

    /// Counts one more entry using `watch`.
    fn use_watch(&mut self, watch: Option<i32>) {
        if let Some(wd) = watch {
            *self.watch_users.entry(wd).or_insert(0) += 1;
        }
    }

    /// Counts one entry fewer using `watch`, and stops watching when no
    /// other entry (the same file under another name) uses it.
    fn release_watch(&mut self, watch: Option<i32>) {
        let Some(wd) = watch else { return };
        let Some(users) = self.watch_users.get_mut(&wd) else {
            return;
        };
        *users -= 1;
        if *users == 0 {
            self.watch_users.remove(&wd);
            if let Some(watcher) = &self.watcher {
                let _ = sys::inotify_unwatch(watcher, wd);
            }
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
                cache.probe_sidecars(root, path, file.modified())
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
                .filter(|file| file.modified() >= original_facts.modified)
                .ok_or(Served::Refused(Status::NotFound))?;
            let facts = FileFacts {
                etag: EntityTag::of_encoded(file.modified(), file.size(), coding),
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
        let hash = self.entries.hasher().hash_one(&self.key[..]);
        self.frequencies.record(hash);
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
        if file.size() <= MAX_CACHED_FILE_BYTES
            && self.admits(file.size(), stale.is_some(), hash)
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

    /// Whether a file of `len` bytes just opened under the current key (whose
    /// hash is `hash`) may be cached: a new version of a cached file
    /// (`replaces`) always, any other file while there is room, and in a full
    /// cache only a file asked for more often recently than the entry it
    /// would evict (see "Bounds, and which files get in").
    fn admits(&mut self, len: u64, replaces: bool, hash: u64) -> bool {
        if replaces || self.has_room_for(len as usize) {
            return true;
        }
        let frequency = self.frequencies.estimate(hash);
        if frequency < MIN_ADMISSION_FREQUENCY {
            // Most misses of a uniform load end here, before the hand moves.
            return false;
        }
        let hasher = self.entries.hasher().clone();
        self.next_victim()
            .map(|victim| hasher.hash_one(victim))
            .is_none_or(|victim| frequency > self.frequencies.estimate(victim))
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
                    .is_some_and(|sidecar| sidecar.modified() >= modified)
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
        match self.entries.get_mut(&self.key[..]) {
            Some(entry) if now.saturating_duration_since(entry.checked_at) < CACHE_VALIDITY => {
                entry.referenced = true;
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
        entry.referenced = true;
        if entry.sidecars != sidecars {
            entry.sidecars = sidecars;
            entry.facts = facts;
            entry.fields = facts.formatted(FileFacts::write_fields);
            entry.not_modified_fields = facts.formatted(FileFacts::write_not_modified_fields);
        }
    }

    /// Reads `file` (at most [`MAX_CACHED_FILE_BYTES`], checked by the
    /// caller) and caches it under the current key, replacing any older
    /// version and evicting entries (CLOCK) to make room. Fails, leaving the
    /// file uncached, if the file cannot be watched (inotify's
    /// `max_user_watches` reached: an unwatched entry could be served stale)
    /// or changed while being read.
    fn insert(
        &mut self,
        file: &StaticFile,
        facts: FileFacts,
        sidecars: Sidecars,
        now: Instant,
    ) -> io::Result<()> {
        // Watch before reading: a change made while we read is then reported
        // (and drops the entry), never lost.
        let watch = match &self.watcher {
            Some(watcher) => Some(sys::inotify_watch(watcher, &file.file, WATCHED_CHANGES)?),
            None => None,
        };
        self.use_watch(watch);
        let mut body = Vec::with_capacity(facts.len as usize);
        let read = (&file.file).take(facts.len).read_to_end(&mut body);
        if read.is_err() || body.len() as u64 != facts.len {
            // A read error, or the file changed while we read it: do not
            // cache a torn copy.
            self.release_watch(watch);
            return Err(read.err().unwrap_or(io::ErrorKind::UnexpectedEof.into()));
        }
        if let Some(old) = self.entries.remove(&self.key[..]) {
            self.content_bytes -= old.body.len();
            self.release_watch(old.watch);
        }
        while !self.has_room_for(body.len()) && self.evict() {}
        self.content_bytes += body.len();
        self.insertions += 1;
        let entry = CachedFile {
            facts,
            fields: facts.formatted(FileFacts::write_fields),
            not_modified_fields: facts.formatted(FileFacts::write_not_modified_fields),
            body: Arc::from(body),
            sidecars,
            identity: file.identity,
            checked_at: now,
            referenced: false,
            inserted: self.insertions,
            watch,
        };
        self.entries
            .insert(self.key.clone().into_boxed_slice(), entry);
        self.ring.push_back(RingSlot {
            key: self.key.clone().into_boxed_slice(),
            inserted: self.insertions,
        });
        if self.ring.len() > MAX_RING_SLOTS {
            // Mostly stale slots (at most MAX_CACHED_FILES are live): drop
            // them all at once, a scan paid for by the insertions that made
            // them.
            let entries = &self.entries;
            self.ring.retain(|slot| slot.is_live(entries));
        }
        Ok(())
    }

    /// Moves the hand to the entry CLOCK evicts next and returns its key:
    /// every entry it passes that was hit since the hand last passed loses
    /// its mark and goes to the back of the ring (its second chance); stale
    /// slots are dropped. Amortised O(1): a hit sets at most one mark, an
    /// insertion makes at most one slot, and the hand clears or drops each
    /// once.
    fn next_victim(&mut self) -> Option<&[u8]> {
        while let Some(slot) = self.ring.front() {
            match self.entries.get_mut(&slot.key[..]) {
                Some(entry) if entry.inserted != slot.inserted => {
                    self.ring.pop_front();
                }
                Some(entry) if entry.referenced => {
                    entry.referenced = false;
                    self.ring.rotate_left(1);
                }
                Some(_) => break,
                None => {
                    self.ring.pop_front();
                }
            }
        }
        self.ring.front().map(|slot| &slot.key[..])
    }

    /// Evicts the entry the hand points to ([`FileCache::next_victim`]);
    /// `false` if the cache is empty.
    fn evict(&mut self) -> bool {
        if self.next_victim().is_none() {
            return false;
        }
        let Some(slot) = self.ring.pop_front() else {
            return false;
        };
        if let Some(entry) = self.entries.remove(&slot.key[..]) {
            self.content_bytes -= entry.body.len();
            self.release_watch(entry.watch);
        }
        true
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

/// A slot of the eviction ring: the key of an entry, as it was inserted.
#[derive(Debug)]
struct RingSlot {
    /// The entry's key.
    key: Box<[u8]>,
    /// Its [`CachedFile::inserted`]: the slot is stale once that entry is
    /// gone or replaced.
    inserted: u64,
}

impl RingSlot {
    /// Whether the slot's entry is still in `entries`.
    fn is_live<S: std::hash::BuildHasher>(
        &self,
        entries: &HashMap<Box<[u8]>, CachedFile, S>,
    ) -> bool {
        entries
            .get(&self.key[..])
            .is_some_and(|entry| entry.inserted == self.inserted)
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

    /// Names `f0`, `f1`, ... for `count` files, and a site holding them,
    /// each `contents`.
    fn numbered_site(
        count: usize,
        contents: &[u8],
    ) -> (Vec<String>, tempfile::TempDir, DocumentRoot) {
        let names: Vec<String> = (0..count).map(|i| format!("f{i}")).collect();
        let files: Vec<(&str, &[u8])> =
            names.iter().map(|name| (name.as_str(), contents)).collect();
        let (dir, root) = site(&files);
        (names, dir, root)
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
    fn an_entry_without_a_hit_is_evicted_before_one_with() {
        let now = Instant::now();
        let (names, _dir, root) = numbered_site(MAX_CACHED_FILES + 1, b"x");
        let mut cache = FileCache::default();
        for name in &names[..MAX_CACHED_FILES] {
            cached(serve(&mut cache, &root, name, now));
        }
        // A hit marks f0: the hand gives it a second chance and evicts f1,
        // the first entry without a mark.
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
    fn stale_ring_slots_are_skipped() {
        let now = Instant::now();
        let (names, dir, root) = numbered_site(MAX_CACHED_FILES + 1, b"x");
        let mut cache = FileCache::new();
        for name in &names[..MAX_CACHED_FILES] {
            cached(serve(&mut cache, &root, name, now));
        }
        // f0 changes: its entry goes, its slot at the hand stays, stale. Read
        // again, f0 gets a new entry and a new slot at the back.
        std::fs::write(dir.path().join("f0"), b"y").unwrap();
        cache.apply_changes();
        assert_eq!(cache.len(), MAX_CACHED_FILES - 1);
        cached(serve(&mut cache, &root, "f0", now));
        assert_eq!(cache.ring.len(), MAX_CACHED_FILES + 1);
        // A newcomer evicts: the hand drops the stale slot (not the new f0)
        // and evicts f1.
        let newcomer = &names[MAX_CACHED_FILES];
        serve(&mut cache, &root, newcomer, now);
        cached(serve(&mut cache, &root, newcomer, now));
        assert_eq!(
            freshness(&mut cache, b"f0", PathForm::File, now),
            Freshness::Fresh
        );
        assert_eq!(
            freshness(&mut cache, b"f1", PathForm::File, now),
            Freshness::Missing
        );
        assert_eq!(cache.len(), MAX_CACHED_FILES);
        assert_eq!(cache.ring.len(), MAX_CACHED_FILES);
    }

    #[test]
    fn a_thousand_small_files_fit_without_evicting() {
        let now = Instant::now();
        let (names, _dir, root) = numbered_site(1000, &[b'x'; 4096]);
        let mut cache = FileCache::new();
        for name in &names {
            cached(serve(&mut cache, &root, name, now));
        }
        for name in &names {
            assert_eq!(
                freshness(&mut cache, name.as_bytes(), PathForm::File, now),
                Freshness::Fresh,
                "{name}"
            );
        }
        assert_eq!(cache.content_bytes, 1000 * 4096);
    }

    #[test]
    fn the_byte_budget_bounds_a_cache_of_large_files() {
        let now = Instant::now();
        let largest = MAX_CACHED_FILE_BYTES as usize;
        let fitting = MAX_CACHED_BYTES / largest;
        let (names, _dir, root) = numbered_site(fitting + 1, &vec![b'x'; largest]);
        let mut cache = FileCache::new();
        for name in &names[..fitting] {
            cached(serve(&mut cache, &root, name, now));
        }
        assert_eq!(cache.content_bytes, MAX_CACHED_BYTES);
        // Full by bytes, far below MAX_CACHED_FILES: a newcomer admitted at
        // its second miss evicts f0.
        serve(&mut cache, &root, &names[fitting], now);
        cached(serve(&mut cache, &root, &names[fitting], now));
        assert_eq!(cache.len(), fitting);
        assert_eq!(cache.content_bytes, MAX_CACHED_BYTES);
        assert_eq!(
            freshness(&mut cache, b"f0", PathForm::File, now),
            Freshness::Missing
        );
    }

    #[test]
    fn a_file_that_cannot_be_watched_is_not_cached() {
        let now = Instant::now();
        let (_dir, root) = site(&[("a", b"hello")]);
        let mut cache = FileCache::new();
        // Not an inotify descriptor: every watch fails, as it does with
        // ENOSPC once `max_user_watches` is reached.
        cache.watcher = Some(File::open("/dev/null").unwrap());
        match serve(&mut cache, &root, "a", now) {
            Served::File(FileBody::Disk { facts, .. }) => assert_eq!(facts.len, 5),
            other => panic!("expected a file from disk, got {other:?}"),
        }
        assert!(cache.is_empty());
        assert!(cache.watch_users.is_empty());
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
    fn the_sketch_counts_requests_and_halves_them_each_sample() {
        let mut sketch = FrequencySketch::new();
        assert_eq!(sketch.estimate(7), 0);
        for _ in 0..3 {
            sketch.record(7);
        }
        assert_eq!(sketch.estimate(7), 3);
        for _ in 0..20 {
            sketch.record(9);
        }
        assert_eq!(sketch.estimate(9), COUNTER_MAX, "saturates, never wraps");
        assert_eq!(sketch.estimate(7), 3, "another key's counters are its own");
        // Distinct keys (each its own counters) fill the sample: every count
        // is halved.
        let others = (1u64..).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for other in others.take(SKETCH_SAMPLE - 23) {
            sketch.record(other);
        }
        assert_eq!(sketch.estimate(7), 1);
        assert_eq!(sketch.estimate(9), COUNTER_MAX / 2);
    }

    #[test]
    fn a_frequent_entry_is_not_displaced_by_files_asked_for_less_often() {
        let now = Instant::now();
        let (names, _dir, root) = numbered_site(MAX_CACHED_FILES + 100, b"x");
        let (cached_names, newcomers) = names.split_at(MAX_CACHED_FILES);
        let mut cache = FileCache::default();
        for name in cached_names {
            cached(serve(&mut cache, &root, name, now));
        }
        // No entry has been hit, so the hand's first victim is f0, the first
        // in. Filling took more than a sample (its counts are halved away);
        // f0 is now asked for three times, counted in the sketch as its
        // requests are, but without the hit that would give it CLOCK's
        // second chance: nothing saves it but its frequency.
        let f0 = cache.entries.hasher().hash_one(&b"f0"[..]);
        for _ in 0..3 {
            cache.frequencies.record(f0);
        }
        // A stream of files asked for once (a uniform load over a large
        // tree) never gets in; asked for twice, still less often than f0.
        for name in newcomers {
            for _ in 0..2 {
                match serve(&mut cache, &root, name, now) {
                    Served::File(FileBody::Disk { .. }) => {}
                    other => panic!("{name}: expected a file from disk, got {other:?}"),
                }
            }
        }
        assert_eq!(
            freshness(&mut cache, b"f0", PathForm::File, now),
            Freshness::Fresh
        );
        assert_eq!(cache.len(), MAX_CACHED_FILES);
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
