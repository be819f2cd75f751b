//! The open-file cache: small, hot files kept in memory per worker, so that
//! serving one costs no `open`, `fstat`, `sendfile` or `close`: the whole
//! response (head and body) leaves in a single `send`.
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
//! are unchanged, the entry is trusted again, otherwise it is reloaded.
//!
//! ## Bounds
//! At most [`MAX_CACHED_FILES`] entries and [`MAX_CACHED_BYTES`] of content per
//! worker. When full, the least recently used entry is evicted (found by a
//! linear scan: it happens only on a miss, and the table is small).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::time::{Duration, Instant, SystemTime};

use crate::files::{FileIdentity, PathForm};
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
    /// Media type from the extension.
    pub mime: &'static str,
}

impl FileFacts {
    /// Appends the header fields that describe the file itself (not this
    /// response): `Content-Type`, `ETag`, `Last-Modified`, `Accept-Ranges`.
    pub fn write_fields(&self, head: &mut HeadWriter<'_>) {
        head.content_type(self.mime);
        head.header("ETag", self.etag.as_bytes());
        head.date("Last-Modified", self.modified);
        head.header("Accept-Ranges", b"bytes");
    }
}

/// One cached file.
#[derive(Debug)]
pub struct CachedFile {
    /// Its facts.
    pub facts: FileFacts,
    /// [`FileFacts::write_fields`], formatted once when the entry was made.
    pub fields: Box<[u8]>,
    /// The whole content.
    pub body: Box<[u8]>,
    identity: FileIdentity,
    checked_at: Instant,
    last_used: u64,
    /// The inotify watch on the file (shared by entries of the same file).
    watch: Option<i32>,
}

/// A worker's cache of small files, keyed by the decoded path as requested
/// (before `index.html` is appended), with a trailing `/` for directory
/// requests: `"a/b"` and `"a/b/"` are different requests.
#[derive(Debug)]
pub struct FileCache {
    entries: HashMap<Box<[u8]>, CachedFile>,
    content_bytes: usize,
    uses: u64,
    /// The key being looked up, built here so a lookup allocates nothing.
    key: Vec<u8>,
    /// The inotify descriptor reporting changes to cached files; `None` if
    /// inotify is unavailable (then [`CACHE_VALIDITY`] alone bounds
    /// staleness).
    watcher: Option<File>,
}

impl Default for FileCache {
    fn default() -> FileCache {
        FileCache::new()
    }
}

/// The outcome of looking a path up in the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// A fresh entry: serve it ([`FileCache::get`]).
    Fresh,
    /// An entry older than [`CACHE_VALIDITY`]: check the file again, then
    /// [`FileCache::confirm`] it or [`FileCache::insert`] the new version.
    Stale(FileIdentity),
    /// Nothing cached.
    Missing,
}

impl FileCache {
    /// An empty cache with its own inotify instance.
    pub fn new() -> FileCache {
        FileCache {
            entries: HashMap::new(),
            content_bytes: 0,
            uses: 0,
            key: Vec::new(),
            watcher: sys::inotify_init().ok(),
        }
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

    /// How fresh the entry for a decoded path is; marks it used.
    pub fn freshness(&mut self, path: &[u8], form: PathForm, now: Instant) -> Freshness {
        self.uses += 1;
        set_key(&mut self.key, path, form);
        match self.entries.get_mut(&self.key[..]) {
            Some(entry) if now.saturating_duration_since(entry.checked_at) < CACHE_VALIDITY => {
                entry.last_used = self.uses;
                Freshness::Fresh
            }
            Some(entry) => Freshness::Stale(entry.identity),
            None => Freshness::Missing,
        }
    }

    /// The entry for a decoded path.
    pub fn get(&mut self, path: &[u8], form: PathForm) -> Option<&CachedFile> {
        set_key(&mut self.key, path, form);
        self.entries.get(&self.key[..])
    }

    /// The file behind a stale entry was checked and has not changed: trust
    /// the entry for another [`CACHE_VALIDITY`].
    pub fn confirm(&mut self, path: &[u8], form: PathForm, now: Instant) {
        set_key(&mut self.key, path, form);
        if let Some(entry) = self.entries.get_mut(&self.key[..]) {
            entry.checked_at = now;
        }
    }

    /// Reads `file` (at most [`MAX_CACHED_FILE_BYTES`], checked by the
    /// caller) and caches it under `key`, evicting the least recently used
    /// entries to make room.
    pub fn insert(
        &mut self,
        path: &[u8],
        form: PathForm,
        mut file: &File,
        facts: FileFacts,
        identity: FileIdentity,
        now: Instant,
    ) -> io::Result<&CachedFile> {
        // Watch before reading: a change made while we read is then reported
        // (and drops the entry), never lost.
        let watch = self
            .watcher
            .as_ref()
            .and_then(|watcher| sys::inotify_watch(watcher, file, WATCHED_CHANGES).ok());
        let mut body = Vec::with_capacity(facts.len as usize);
        (&mut file).take(facts.len).read_to_end(&mut body)?;
        if body.len() as u64 != facts.len {
            // The file changed while we read it; do not cache a torn copy.
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        set_key(&mut self.key, path, form);
        if let Some(old) = self.entries.remove(&self.key[..]) {
            self.content_bytes -= old.body.len();
            if old.watch != watch {
                self.release_watch(old.watch);
            }
        }
        while self.entries.len() >= MAX_CACHED_FILES
            || self.content_bytes + body.len() > MAX_CACHED_BYTES && !self.entries.is_empty()
        {
            self.evict_least_recently_used();
        }
        let mut fields = Vec::new();
        facts.write_fields(&mut HeadWriter::fields_only(&mut fields));
        self.content_bytes += body.len();
        self.uses += 1;
        let entry = CachedFile {
            facts,
            fields: fields.into_boxed_slice(),
            body: body.into_boxed_slice(),
            identity,
            checked_at: now,
            last_used: self.uses,
            watch,
        };
        let key = self.key.clone().into_boxed_slice();
        Ok(self.entries.entry(key).insert_entry(entry).into_mut())
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
    use std::io::Write;

    fn cache_file(cache: &mut FileCache, path: &[u8], contents: &[u8], now: Instant) {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(contents).unwrap();
        let metadata = file.metadata().unwrap();
        let identity = FileIdentity::of(&metadata).unwrap();
        let facts = FileFacts {
            len: metadata.len(),
            modified: metadata.modified().unwrap(),
            etag: EntityTag::of(metadata.modified().unwrap(), metadata.len()),
            mime: "text/plain",
        };
        use std::io::Seek;
        file.rewind().unwrap();
        cache
            .insert(path, PathForm::File, &file, facts, identity, now)
            .unwrap();
    }

    #[test]
    fn entries_are_fresh_then_stale_then_confirmed() {
        let start = Instant::now();
        let mut cache = FileCache::default();
        let file = PathForm::File;
        assert_eq!(cache.freshness(b"a", file, start), Freshness::Missing);
        cache_file(&mut cache, b"a", b"hello", start);
        assert_eq!(cache.freshness(b"a", file, start), Freshness::Fresh);
        let entry = cache.get(b"a", file).unwrap();
        assert_eq!(&*entry.body, b"hello");
        let fields = String::from_utf8(entry.fields.to_vec()).unwrap();
        assert!(fields.starts_with("\r\nContent-Type: text/plain; charset=utf-8\r\nETag: \""));
        assert!(fields.ends_with("\r\nAccept-Ranges: bytes"));
        let later = start + CACHE_VALIDITY;
        assert!(matches!(
            cache.freshness(b"a", file, later),
            Freshness::Stale(_)
        ));
        cache.confirm(b"a", file, later);
        assert_eq!(cache.freshness(b"a", file, later), Freshness::Fresh);
        assert_eq!(
            cache.freshness(b"a", PathForm::Directory, later),
            Freshness::Missing
        );
    }

    #[test]
    fn a_changed_file_is_dropped_as_soon_as_the_change_is_read() {
        let now = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("page.html");
        std::fs::write(&path, b"old").unwrap();
        let file = File::open(&path).unwrap();
        let metadata = file.metadata().unwrap();
        let facts = FileFacts {
            len: 3,
            modified: metadata.modified().unwrap(),
            etag: EntityTag::of(metadata.modified().unwrap(), 3),
            mime: "text/html",
        };
        let identity = FileIdentity::of(&metadata).unwrap();
        let mut cache = FileCache::new();
        assert!(cache.watcher().is_some(), "inotify is available on Linux");
        cache
            .insert(b"page.html", PathForm::File, &file, facts, identity, now)
            .unwrap();
        cache.apply_changes();
        assert_eq!(
            cache.freshness(b"page.html", PathForm::File, now),
            Freshness::Fresh
        );
        std::fs::write(&path, b"new").unwrap();
        cache.apply_changes();
        assert_eq!(
            cache.freshness(b"page.html", PathForm::File, now),
            Freshness::Missing
        );
        assert_eq!(cache.content_bytes, 0);
    }

    #[test]
    fn the_least_recently_used_entry_is_evicted() {
        let now = Instant::now();
        let mut cache = FileCache::default();
        for i in 0..MAX_CACHED_FILES {
            cache_file(&mut cache, format!("f{i}").as_bytes(), b"x", now);
        }
        // Touch f0 so that f1 is now the oldest.
        assert_eq!(
            cache.freshness(b"f0", PathForm::File, now),
            Freshness::Fresh
        );
        cache_file(&mut cache, b"new", b"y", now);
        assert_eq!(cache.len(), MAX_CACHED_FILES);
        assert_eq!(
            cache.freshness(b"f0", PathForm::File, now),
            Freshness::Fresh
        );
        assert_eq!(
            cache.freshness(b"f1", PathForm::File, now),
            Freshness::Missing
        );
    }
}
