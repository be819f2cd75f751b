//! From a request target to an open file, without ever leaving the document
//! root.
//!
//! Two layers keep a request inside the root:
//!
//! 1. [`decode_path`] turns the target into a relative path: it drops the query,
//!    percent-decodes, and *rejects* (rather than resolves) every `..`
//!    segment, NUL byte and malformed escape. The result never starts with `/`
//!    and never names a parent directory.
//! 2. [`DocumentRoot::lookup`] opens that path relative to a directory
//!    descriptor held open for the root, with `openat2(RESOLVE_BENEATH)`
//!    ([`crate::sys::open_at`]): the kernel refuses any resolution that
//!    would leave the root, including through symlinks that point outside it,
//!    and it does so atomically, so a symlink swapped in between a check and
//!    an open cannot win a race. On kernels before 5.6 (no `openat2`) we fall
//!    back to canonicalising the path and checking its prefix, which is
//!    correct but not race-free.
//!
//! ## Symlinks
//! The URL's segments are checked for dot files, but a symlink inside the
//! root (`env_link -> .env`) could still lead to one. So a path is first
//! opened with symlinks forbidden (`RESOLVE_NO_SYMLINKS`); that is the common
//! case and costs nothing extra. Only when the kernel says a symlink is on the
//! way (`ELOOP`) is the path opened again with symlinks allowed, and then the
//! name the kernel gives the open file (`/proc/self/fd/N`) must pass the same
//! dot-file rule as a URL. Cached files are never opened, so cache hits pay
//! nothing either way. By default symlinks may not leave the root; with
//! `--follow-symlinks` ([`SymlinkPolicy::Anywhere`]) they may (a tree that
//! links to `/usr/share/javascript`, say), still never to a dot file or
//! anything but a regular file. That opt-in trusts everyone who can create a
//! symlink in the root with every file the server may read.
//!
//! Failures map to statuses in one table, [`status_for_error`], as nginx's
//! static module does: a missing file is `404`, a forbidden one `403`, running
//! out of descriptors `503`, anything unexpected `500`.

use std::ffi::{CStr, OsStr};
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::Status;
use crate::sys;

/// The file served for a directory request (`/` or `/dir/`).
pub const INDEX_FILE: &str = "index.html";

/// The one dot-directory we serve: RFC 8615 well-known URIs (used, for
/// example, by ACME certificate challenges). Every other path segment that
/// starts with a dot (`.git`, `.env`, `.htpasswd`) is answered with `404`.
pub const SERVED_DOT_DIRECTORY: &[u8] = b".well-known";

/// Which file on disk, whatever name (hard link, symlink) led to it: its
/// device and inode numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inode {
    device: u64,
    number: u64,
}

impl Inode {
    /// The file `metadata` describes.
    pub fn of(metadata: &Metadata) -> Inode {
        Inode {
            device: metadata.dev(),
            number: metadata.ino(),
        }
    }
}

/// What identifies one version of a file on disk: if any of these changed,
/// the file did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIdentity {
    inode: Inode,
    len: u64,
    modified: SystemTime,
}

impl FileIdentity {
    /// Which file this is a version of.
    pub fn inode(&self) -> Inode {
        self.inode
    }
}

/// What one `fstat(2)` of an open file tells a lookup ([`sys::fstat`]:
/// cheaper than std's `File::metadata`).
#[derive(Clone, Copy, Debug)]
pub struct FileStatus {
    /// The file type bits of `st_mode` (`S_IFREG`, `S_IFDIR`, ...).
    kind: libc::mode_t,
    /// Which version of which file it is.
    identity: FileIdentity,
}

impl FileStatus {
    /// `fstat`s `file`.
    pub fn of(file: &File) -> io::Result<FileStatus> {
        let status = sys::fstat(file)?;
        let since_epoch = |seconds: i64, nanos: i64| {
            let nanos = Duration::from_nanos(nanos as u64);
            match u64::try_from(seconds) {
                Ok(seconds) => UNIX_EPOCH + Duration::from_secs(seconds) + nanos,
                Err(_) => UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs()) + nanos,
            }
        };
        Ok(FileStatus {
            kind: status.st_mode & libc::S_IFMT,
            identity: FileIdentity {
                inode: Inode {
                    device: status.st_dev,
                    number: status.st_ino,
                },
                len: status.st_size as u64,
                modified: since_epoch(status.st_mtime, status.st_mtime_nsec),
            },
        })
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == libc::S_IFDIR
    }

    /// Whether it is a regular file.
    pub fn is_file(&self) -> bool {
        self.kind == libc::S_IFREG
    }
}

/// An open file ready to be served, with what its response head needs.
#[derive(Debug)]
pub struct StaticFile {
    /// The open file; the body is sent from it with `sendfile`.
    pub file: File,
    /// Its media type, guessed from the extension.
    pub mime: &'static str,
    /// Which version of which file this is: also its length and
    /// modification time, as [`StaticFile::size`] and
    /// [`StaticFile::modified`] give them.
    pub identity: FileIdentity,
}

impl StaticFile {
    /// Its size in bytes when we opened it: the `Content-Length` we
    /// announce.
    pub fn size(&self) -> u64 {
        self.identity.len
    }

    /// Its modification time: `Last-Modified`, and what `If-Modified-Since`
    /// is compared with.
    pub fn modified(&self) -> SystemTime {
        self.identity.modified
    }
}

/// What a request target leads to.
#[derive(Debug)]
pub enum Lookup {
    /// A regular file to serve.
    File(StaticFile),
    /// A directory named without its trailing slash: redirect to `target/`,
    /// so relative links inside its index page resolve against the directory.
    AddSlash,
    /// A directory request (`/dir/`) for a directory without an index file:
    /// the open directory, for a listing ([`crate::listing`]) when those are
    /// enabled, `403` otherwise.
    NoIndex(File),
    /// Nothing we will serve.
    Refused(Status),
}

/// Where symlinks under the root may lead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SymlinkPolicy {
    /// Only to files beneath the root (the default).
    #[default]
    Beneath,
    /// Anywhere the server may read (`--follow-symlinks`).
    Anywhere,
}

/// How we confine lookups to the root on this kernel.
#[derive(Debug)]
enum Confinement {
    /// `openat2(RESOLVE_BENEATH)`: atomic, enforced by the kernel.
    Openat2,
    /// Canonicalise and compare prefixes; the root's canonical path is kept.
    Canonicalize(PathBuf),
}

/// The document root: an open directory descriptor that every lookup is
/// relative to. Renaming or replacing the root's path after start does not
/// change what is served: the descriptor still names the original directory.
#[derive(Debug)]
pub struct DocumentRoot {
    dir: File,
    /// The root's canonical path, for checking where a symlink led.
    canonical: PathBuf,
    confinement: Confinement,
    symlinks: SymlinkPolicy,
}

impl DocumentRoot {
    /// Opens `path`, which must be a directory, with symlinks confined to
    /// it ([`SymlinkPolicy::Beneath`]).
    pub fn open(path: &Path) -> io::Result<DocumentRoot> {
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(path)?;
        let canonical = path.canonicalize()?;
        let probe = sys::open_at(&dir, c".", sys::Resolution::NoSymlinks);
        let confinement = match probe {
            Ok(_) => Confinement::Openat2,
            Err(error) if matches!(error.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                Confinement::Canonicalize(canonical.clone())
            }
            Err(error) => return Err(error),
        };
        Ok(DocumentRoot {
            dir,
            canonical,
            confinement,
            symlinks: SymlinkPolicy::Beneath,
        })
    }

    /// The same root with another [`SymlinkPolicy`].
    pub fn with_symlinks(self, symlinks: SymlinkPolicy) -> DocumentRoot {
        DocumentRoot { symlinks, ..self }
    }

    /// Finds what `target` (a request target, still percent-encoded) names.
    /// `scratch` is a reusable buffer for the decoded path, so a lookup
    /// allocates nothing once it has grown to fit.
    pub fn lookup(&self, target: &[u8], scratch: &mut Vec<u8>) -> Lookup {
        let form = match decode_path(target, scratch) {
            Ok(form) => form,
            Err(status) => return Lookup::Refused(status),
        };
        self.lookup_decoded(scratch, form)
    }

    /// Finds what a path decoded by [`decode_path`] names. For a directory,
    /// appends `/index.html` to `path`.
    pub fn lookup_decoded(&self, path: &mut Vec<u8>, form: PathForm) -> Lookup {
        match self.open_decoded(path, form) {
            Ok(lookup) => lookup,
            Err(error) => Lookup::Refused(status_for_error(&error)),
        }
    }

    fn open_decoded(&self, path: &mut Vec<u8>, form: PathForm) -> io::Result<Lookup> {
        let file = self.open_relative(path)?;
        let status = FileStatus::of(&file)?;
        if form == PathForm::Directory && !status.is_dir() {
            // `/page.html/`: a file has no directory-style URL. Serving it
            // would give every file a second URL on which its relative
            // links resolve against the wrong directory (nginx: 404 too).
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        if status.is_dir() {
            if form == PathForm::File {
                return Ok(Lookup::AddSlash);
            }
            let directory_len = path.len();
            append_index(path);
            let index = match self.open_relative(path) {
                Ok(index) => index,
                Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {
                    // The path names the directory again, for its listing.
                    path.truncate(directory_len);
                    return Ok(Lookup::NoIndex(file));
                }
                Err(error) => return Err(error),
            };
            let status = FileStatus::of(&index)?;
            return Ok(serve_regular(index, status, path));
        }
        Ok(serve_regular(file, status, path))
    }

    /// Opens the precompressed copy of the file at `path` (a path
    /// [`DocumentRoot::lookup_decoded`] resolved to a file) whose name adds
    /// `suffix` (`.br`, `.gz`), under the same confinement and symlink rules
    /// as any file; `None` unless it is a regular file we may serve.
    pub fn open_sidecar(&self, path: &mut Vec<u8>, suffix: &str) -> Option<StaticFile> {
        let len = path.len();
        path.extend_from_slice(suffix.as_bytes());
        let found = match self.lookup_decoded(path, PathForm::File) {
            Lookup::File(file) => Some(file),
            Lookup::AddSlash | Lookup::NoIndex(_) | Lookup::Refused(_) => None,
        };
        path.truncate(len);
        found
    }

    /// Opens a decoded relative path (empty for the root itself) under the
    /// root, following symlinks only as the [`SymlinkPolicy`] allows and
    /// never to a dot file (see "Symlinks" above). A listing opens the
    /// symlinks it finds with this, so it shows exactly what would be served.
    pub fn open_relative(&self, path: &mut Vec<u8>) -> io::Result<File> {
        match &self.confinement {
            Confinement::Openat2 => {
                let len = path.len();
                if len == 0 {
                    path.push(b'.');
                }
                path.push(0);
                let opened = CStr::from_bytes_with_nul(path)
                    .map_err(|_| io::Error::from_raw_os_error(libc::ENOENT))
                    .and_then(|c_path| self.open_following_allowed_symlinks(c_path));
                path.truncate(len);
                opened
            }
            Confinement::Canonicalize(root) => {
                let full = root.join(OsStr::from_bytes(path)).canonicalize()?;
                if self.symlinks == SymlinkPolicy::Beneath && !full.starts_with(root) {
                    return Err(io::Error::from_raw_os_error(libc::EXDEV));
                }
                self.check_resolved(&full)?;
                OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                    .open(full)
            }
        }
    }

    /// `openat2` without symlinks; if one is on the way, again with the
    /// policy's symlinks, checking where they led.
    fn open_following_allowed_symlinks(&self, path: &CStr) -> io::Result<File> {
        match sys::open_at(&self.dir, path, sys::Resolution::NoSymlinks) {
            Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
                let resolution = match self.symlinks {
                    SymlinkPolicy::Beneath => sys::Resolution::Beneath,
                    SymlinkPolicy::Anywhere => sys::Resolution::Anywhere,
                };
                let file = sys::open_at(&self.dir, path, resolution)?;
                let resolved = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
                self.check_resolved(&resolved)?;
                Ok(file)
            }
            result => result,
        }
    }

    /// Refuses (as not found, like a dot file named in the URL) a resolved
    /// path that names a dot file or passes through a dot directory: below
    /// the root, or anywhere on the path if a symlink left the root.
    fn check_resolved(&self, resolved: &Path) -> io::Result<()> {
        let shown = resolved.strip_prefix(&self.canonical).unwrap_or(resolved);
        let hidden = shown
            .components()
            .any(|component| is_hidden_name(component.as_os_str().as_bytes()));
        if hidden {
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        } else {
            Ok(())
        }
    }
}

/// A file ready to serve, if it is a regular file.
fn serve_regular(file: File, status: FileStatus, path: &[u8]) -> Lookup {
    if !status.is_file() {
        // A FIFO, socket or device: never served (and an index.html that is
        // itself a directory is no index).
        return Lookup::Refused(Status::Forbidden);
    }
    Lookup::File(StaticFile {
        mime: media_type(path),
        identity: status.identity,
        file,
    })
}

/// Turns a decoded directory path into the path of the file it serves,
/// `path/index.html` (`index.html` for the root).
pub fn append_index(path: &mut Vec<u8>) {
    if !path.is_empty() {
        path.push(b'/');
    }
    path.extend_from_slice(INDEX_FILE.as_bytes());
}

/// Maps a failed open or stat to the status the client sees.
pub fn status_for_error(error: &io::Error) -> Status {
    match error.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG) => Status::NotFound,
        // EXDEV: RESOLVE_BENEATH refused to leave the root. ELOOP: too many
        // symlinks, or a magic link. ENXIO, ENODEV: a device node without a
        // device (or one we may not open). ETXTBSY, EOPNOTSUPP, EAGAIN: other
        // files that cannot be opened for reading. A client can name all of
        // these, so none of them may look like our failure (500).
        Some(
            libc::EACCES
            | libc::EPERM
            | libc::ELOOP
            | libc::EXDEV
            | libc::ENXIO
            | libc::ENODEV
            | libc::ETXTBSY
            | libc::EOPNOTSUPP
            | libc::EAGAIN,
        ) => Status::Forbidden,
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM) => Status::ServiceUnavailable,
        _ => Status::InternalServerError,
    }
}

/// Whether a decoded path names a file or, with a trailing slash, a
/// directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathForm {
    /// `/a/b`: a file (or a directory to redirect).
    File,
    /// `/a/b/` or `/`: a directory, served through its index.
    Directory,
}

/// Splits a request target into its path and its query (without the `?`).
pub fn split_target(target: &[u8]) -> (&[u8], Option<&[u8]>) {
    let target = match target.iter().position(|&b| b == b'#') {
        Some(hash) => &target[..hash],
        None => target,
    };
    match target.iter().position(|&b| b == b'?') {
        Some(mark) => (&target[..mark], Some(&target[mark + 1..])),
        None => (target, None),
    }
}

/// Decodes the path of a request target into `out` as a path relative to the
/// root: no leading slash, segments joined by single slashes, `.` and empty
/// segments dropped. Refuses (with the status to answer) anything that could
/// step outside the root or smuggle a byte the file system treats specially:
/// `..` segments (after decoding, so `%2e%2e` and `..%2f` count), NUL bytes,
/// malformed `%` escapes, and targets that are not absolute paths.
pub fn decode_path(target: &[u8], out: &mut Vec<u8>) -> Result<PathForm, Status> {
    out.clear();
    let (path, _query) = split_target(strip_absolute_form(target));
    if path.first() != Some(&b'/') {
        return Err(Status::BadRequest);
    }
    let mut segment_start = 0;
    let mut rest = path;
    let names_directory = loop {
        // Plain bytes are copied a run at a time: only `%`, `/` and NUL need
        // a decision, and a typical path has a handful of them.
        let Some(at) = rest.iter().position(|&b| matches!(b, b'%' | b'/' | 0)) else {
            out.extend_from_slice(rest);
            break end_segment(out, segment_start)?;
        };
        out.extend_from_slice(&rest[..at]);
        let byte = if rest[at] == b'%' {
            let high = rest.get(at + 1).copied().and_then(hex_value);
            let low = rest.get(at + 2).copied().and_then(hex_value);
            rest = rest.get(at + 3..).unwrap_or_default();
            match (high, low) {
                (Some(high), Some(low)) => high << 4 | low,
                _ => return Err(Status::BadRequest),
            }
        } else {
            let byte = rest[at];
            rest = &rest[at + 1..];
            byte
        };
        // A decoded byte counts as if it had been sent as itself: `%2f`
        // separates segments, `%00` is refused.
        match byte {
            0 => return Err(Status::BadRequest),
            b'/' => {
                end_segment(out, segment_start)?;
                if !out.is_empty() && out.last() != Some(&b'/') {
                    out.push(b'/');
                }
                segment_start = out.len();
            }
            byte => out.push(byte),
        }
    };
    if out.last() == Some(&b'/') {
        out.pop();
    }
    if names_directory {
        Ok(PathForm::Directory)
    } else {
        Ok(PathForm::File)
    }
}

/// Checks the segment that ends at the end of `out` (it started at `start`):
/// drops `.`, refuses `..` and hidden names. Returns whether the segment
/// names "this directory" (empty or `.`), which, for the last segment, makes
/// the whole path a directory request.
fn end_segment(out: &mut Vec<u8>, start: usize) -> Result<bool, Status> {
    match &out[start..] {
        b"" => Ok(true),
        b"." => {
            out.truncate(start);
            Ok(true)
        }
        b".." => Err(Status::BadRequest),
        segment if is_hidden_name(segment) => Err(Status::NotFound),
        _ => Ok(false),
    }
}

/// Whether a file name is a dot file we never serve (nor list): any name
/// that starts with a dot, but [`SERVED_DOT_DIRECTORY`].
pub fn is_hidden_name(name: &[u8]) -> bool {
    name.starts_with(b".") && name != SERVED_DOT_DIRECTORY
}

/// The bytes of a decoded path that a URL path must percent-encode: controls,
/// space, non-ASCII (always encoded), and every delimiter that would change
/// what the URL means (`?`, `#`, `%`, `\\`, quotes, brackets). `/` stays, as
/// the separator it is in a decoded path.
const PATH_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Appends the URL path of a path decoded by [`decode_path`]: a `/`, then the
/// path with every byte a URL may not carry as itself percent-encoded. The
/// result starts with exactly one `/` (a decoded path never starts with one),
/// so it can never be read as `//host` or `/\\host`, another site.
pub fn encode_path(decoded: &[u8], out: &mut Vec<u8>) {
    out.push(b'/');
    for piece in percent_encoding::percent_encode(decoded, PATH_ESCAPES) {
        out.extend_from_slice(piece.as_bytes());
    }
}

/// RFC 9112 §3.2.2: a server must accept the absolute form
/// (`GET http://host/path HTTP/1.1`); we only need its path.
fn strip_absolute_form(target: &[u8]) -> &[u8] {
    let Some(rest) = target
        .strip_prefix(b"http://")
        .or_else(|| target.strip_prefix(b"https://"))
    else {
        return target;
    };
    match rest.iter().position(|&b| b == b'/' || b == b'?') {
        Some(path_start) if rest[path_start] == b'/' => &rest[path_start..],
        _ => b"/",
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Media types where `mime_guess`'s first guess is wrong or dated for a web
/// server, checked first (extensions compared without regard to case).
///
/// `.ts` is ambiguous: TypeScript source or an MPEG transport stream. Browsers
/// never load TypeScript source, while HLS players load `.ts` segments by the
/// thousand, so we answer as nginx's `mime.types` does.
const MEDIA_TYPE_OVERRIDES: [(&str, &str); 6] = [
    ("map", "application/json"),
    ("mjs", "text/javascript"), // RFC 9239
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("m3u8", "application/vnd.apple.mpegurl"),
    ("ts", "video/mp2t"),
];

/// The media types of the most common extensions, as `mime_guess` gives
/// them: a `match` on a few bytes instead of its case-insensitive binary
/// search over some 1,500 extensions, which cost a miss about a thousand
/// instructions (`benches/instructions.py --working-set`).
fn common_media_type(lowercase_extension: &[u8]) -> Option<&'static str> {
    Some(match lowercase_extension {
        b"html" | b"htm" => "text/html",
        b"css" => "text/css",
        b"js" => "text/javascript",
        b"json" => "application/json",
        b"txt" => "text/plain",
        b"png" => "image/png",
        b"jpg" | b"jpeg" => "image/jpeg",
        b"gif" => "image/gif",
        b"svg" => "image/svg+xml",
        b"webp" => "image/webp",
        b"ico" => "image/x-icon",
        b"wasm" => "application/wasm",
        b"pdf" => "application/pdf",
        b"bin" => "application/octet-stream",
        _ => return None,
    })
}

/// The longest extension [`common_media_type`] knows.
const COMMON_EXTENSION_MAX_LEN: usize = 4;

/// The media type for a path, from its extension; `application/octet-stream`
/// when unknown, so browsers download rather than guess.
pub fn media_type(path: &[u8]) -> &'static str {
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    let extension = match name.iter().rposition(|&b| b == b'.') {
        Some(dot) if dot > 0 => &name[dot + 1..],
        _ => return "application/octet-stream",
    };
    if extension.len() <= COMMON_EXTENSION_MAX_LEN {
        let mut lowercase = [0u8; COMMON_EXTENSION_MAX_LEN];
        let lowercase = &mut lowercase[..extension.len()];
        lowercase.copy_from_slice(extension);
        lowercase.make_ascii_lowercase();
        if let Some(media_type) = common_media_type(lowercase) {
            return media_type;
        }
    }
    let Ok(extension) = std::str::from_utf8(extension) else {
        return "application/octet-stream";
    };
    MEDIA_TYPE_OVERRIDES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(extension))
        .map(|&(_, media_type)| media_type)
        .or_else(|| mime_guess::from_ext(extension).first_raw())
        .unwrap_or("application/octet-stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(target: &str) -> Result<(String, PathForm), Status> {
        let mut out = Vec::new();
        let form = decode_path(target.as_bytes(), &mut out)?;
        Ok((String::from_utf8(out).unwrap(), form))
    }

    #[test]
    fn file_status_agrees_with_std_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        std::fs::write(&path, b"hello").unwrap();
        let file = File::options().write(true).open(&path).unwrap();
        // Before 1970, and with nanoseconds, so both arms of the conversion run.
        for modified in [
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            UNIX_EPOCH - Duration::new(1_000, 0) + Duration::from_nanos(250_000_000),
        ] {
            file.set_modified(modified).unwrap();
            let status = FileStatus::of(&file).unwrap();
            let metadata = file.metadata().unwrap();
            assert!(status.is_file() && !status.is_dir());
            let identity = status.identity;
            assert_eq!(identity.len, 5);
            assert_eq!(identity.modified, modified);
            assert_eq!(identity.modified, metadata.modified().unwrap());
            assert_eq!(identity.inode, Inode::of(&metadata));
        }
        let directory = FileStatus::of(&File::open(dir.path()).unwrap()).unwrap();
        assert!(directory.is_dir() && !directory.is_file());
    }

    #[test]
    fn decodes_paths() {
        let cases = [
            ("/", "", PathForm::Directory),
            ("/index.html", "index.html", PathForm::File),
            ("/index.html?x=1&y=/../", "index.html", PathForm::File),
            ("/a/b/", "a/b", PathForm::Directory),
            ("//a///b", "a/b", PathForm::File),
            ("/a/./b/.", "a/b", PathForm::Directory),
            ("/hello%20world.txt", "hello world.txt", PathForm::File),
            ("/caf%C3%A9.txt", "café.txt", PathForm::File),
            ("/a%2fb", "a/b", PathForm::File),
            ("/a%2F", "a", PathForm::Directory),
            ("/page#frag", "page", PathForm::File),
            ("http://example.com/x/y?q", "x/y", PathForm::File),
            ("http://example.com", "", PathForm::Directory),
            ("/.well-known/acme", ".well-known/acme", PathForm::File),
            ("/a..b/c...", "a..b/c...", PathForm::File),
        ];
        for (target, path, form) in cases {
            assert_eq!(decoded(target), Ok((path.to_string(), form)), "{target}");
        }
    }

    #[test]
    fn encoded_paths_decode_to_themselves_and_never_name_another_host() {
        let mut encoded = Vec::new();
        let mut decoded = Vec::new();
        for path in [
            &b"evil.example"[..],
            b"\\evil.example",
            b"a b/c?d#e%f",
            b"caf\xc3\xa9/\xff",
            b"a/b",
        ] {
            encoded.clear();
            encode_path(path, &mut encoded);
            assert!(encoded.starts_with(b"/") && !encoded.starts_with(b"//"));
            assert!(!encoded.contains(&b'\\'), "{encoded:?}");
            assert_eq!(decode_path(&encoded, &mut decoded), Ok(PathForm::File));
            assert_eq!(decoded, path);
        }
    }

    #[test]
    fn refuses_traversal_and_bad_bytes() {
        let cases = [
            ("/..", Status::BadRequest),
            ("/../etc/passwd", Status::BadRequest),
            ("/a/../../etc/passwd", Status::BadRequest),
            ("/a/..", Status::BadRequest),
            ("/%2e%2e/etc/passwd", Status::BadRequest),
            ("/%2E%2e%2fetc", Status::BadRequest),
            ("/..%2f..%2fetc/passwd", Status::BadRequest),
            ("/.%2e/x", Status::BadRequest),
            ("/a%00b", Status::BadRequest),
            ("/a%2", Status::BadRequest),
            ("/a%zz", Status::BadRequest),
            ("a/b", Status::BadRequest),
            ("*", Status::BadRequest),
            ("/.git/config", Status::NotFound),
            ("/a/.env", Status::NotFound),
            ("/%2ehtpasswd", Status::NotFound),
        ];
        for (target, status) in cases {
            assert_eq!(decoded(target), Err(status), "{target}");
        }
    }

    #[test]
    fn decoded_paths_never_climb() {
        // Every two-segment combination of tricky pieces: whatever decodes
        // must be free of `..` segments and leading slashes.
        let pieces = [
            "..", ".", "%2e", "%2E%2e", "%2f", "/", "a", "%00", "%", "b%2f..", "",
        ];
        let mut out = Vec::new();
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let target = format!("/{a}/{b}{c}");
                    if decode_path(target.as_bytes(), &mut out).is_ok() {
                        assert!(!out.starts_with(b"/"), "{target}");
                        assert!(
                            !out.split(|&b| b == b'/').any(|s| s == b".."),
                            "{target} -> {out:?}"
                        );
                        assert!(!out.contains(&0), "{target}");
                    }
                }
            }
        }
    }

    #[test]
    fn media_types() {
        let cases = [
            ("index.html", "text/html"),
            ("a/style.css", "text/css"),
            ("app.js", "text/javascript"),
            ("logo.png", "image/png"),
            ("photo.jpg", "image/jpeg"),
            ("icon.svg", "image/svg+xml"),
            ("data.json", "application/json"),
            ("mod.wasm", "application/wasm"),
            ("blob.unknownext", "application/octet-stream"),
            ("Makefile", "application/octet-stream"),
            ("dir.d/noext", "application/octet-stream"),
            ("app.js.map", "application/json"),
            ("module.mjs", "text/javascript"),
            ("font.woff", "font/woff"),
            ("font.WOFF2", "font/woff2"),
            ("live.m3u8", "application/vnd.apple.mpegurl"),
            ("segment0.ts", "video/mp2t"),
        ];
        for (path, mime) in cases {
            assert_eq!(media_type(path.as_bytes()), mime, "{path}");
        }
    }

    #[test]
    fn common_media_types_agree_with_mime_guess() {
        let extensions = [
            "html", "htm", "css", "js", "json", "txt", "png", "jpg", "jpeg", "gif", "svg", "webp",
            "ico", "wasm", "pdf", "bin",
        ];
        for extension in extensions {
            assert!(extension.len() <= COMMON_EXTENSION_MAX_LEN);
            assert_eq!(
                common_media_type(extension.as_bytes()),
                mime_guess::from_ext(extension).first_raw(),
                "{extension}"
            );
            let upper = format!("a.{}", extension.to_ascii_uppercase());
            let lower = format!("a.{extension}");
            assert_eq!(media_type(upper.as_bytes()), media_type(lower.as_bytes()));
        }
    }

    #[test]
    fn errno_table() {
        let status = |errno| status_for_error(&io::Error::from_raw_os_error(errno));
        assert_eq!(status(libc::ENOENT), Status::NotFound);
        assert_eq!(status(libc::ENOTDIR), Status::NotFound);
        assert_eq!(status(libc::EACCES), Status::Forbidden);
        assert_eq!(status(libc::ELOOP), Status::Forbidden);
        assert_eq!(status(libc::EXDEV), Status::Forbidden);
        assert_eq!(status(libc::ENXIO), Status::Forbidden);
        assert_eq!(status(libc::ENODEV), Status::Forbidden);
        assert_eq!(status(libc::EMFILE), Status::ServiceUnavailable);
        assert_eq!(status(libc::EIO), Status::InternalServerError);
    }

    /// What `target` leads to under `root`: a file's length, or the status
    /// (`301` for a directory to redirect).
    fn found(root: &DocumentRoot, target: &str) -> Result<u64, Status> {
        match root.lookup(target.as_bytes(), &mut Vec::new()) {
            Lookup::File(file) => Ok(file.size()),
            Lookup::AddSlash => Err(Status::MovedPermanently),
            Lookup::NoIndex(_) => Err(Status::Forbidden),
            Lookup::Refused(status) => Err(status),
        }
    }

    #[test]
    fn lookups_stay_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "secret").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::create_dir(root.path().join("dir")).unwrap();
        std::fs::create_dir(root.path().join("empty")).unwrap();
        std::fs::write(root.path().join("dir/index.html"), "dir").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("leak"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("leakdir")).unwrap();
        std::os::unix::fs::symlink("index.html", root.path().join("alias.html")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.path().join("passwd")).unwrap();
        std::fs::write(root.path().join(".env"), "SECRET=1").unwrap();
        std::fs::create_dir(root.path().join(".git")).unwrap();
        std::fs::write(root.path().join(".git/config"), "[core]").unwrap();
        std::os::unix::fs::symlink(".env", root.path().join("env_link")).unwrap();
        std::os::unix::fs::symlink(".git", root.path().join("git_link")).unwrap();

        let root = DocumentRoot::open(root.path()).unwrap();
        let lookup = |target: &str| found(&root, target);
        assert_eq!(lookup("/"), Ok(11));
        assert_eq!(lookup("/index.html"), Ok(11));
        assert_eq!(lookup("/alias.html"), Ok(11));
        assert_eq!(lookup("/dir/"), Ok(3));
        assert_eq!(lookup("/dir"), Err(Status::MovedPermanently));
        assert_eq!(lookup("/empty/"), Err(Status::Forbidden));
        assert_eq!(lookup("/missing"), Err(Status::NotFound));
        assert_eq!(lookup("/index.html/x"), Err(Status::NotFound));
        assert_eq!(lookup("/leak"), Err(Status::Forbidden));
        assert_eq!(lookup("/leakdir/secret"), Err(Status::Forbidden));
        assert_eq!(lookup("/passwd"), Err(Status::Forbidden));
        // A file has no directory-style URL.
        assert_eq!(lookup("/index.html/"), Err(Status::NotFound));
        assert_eq!(lookup("/index.html/."), Err(Status::NotFound));
        assert_eq!(lookup("/index.html%2F"), Err(Status::NotFound));
        assert_eq!(lookup("/alias.html/"), Err(Status::NotFound));
        // Symlinks to dot files are dot files.
        assert_eq!(lookup("/env_link"), Err(Status::NotFound));
        assert_eq!(lookup("/git_link/config"), Err(Status::NotFound));
    }

    #[test]
    fn follow_symlinks_leaves_the_root_but_never_for_dot_files() {
        // Not `tempdir()`: its `.tmpXXXX` name is itself a dot directory.
        let outside = tempfile::Builder::new()
            .prefix("outside")
            .tempdir()
            .unwrap();
        std::fs::write(outside.path().join("lib.js"), "lib()").unwrap();
        std::fs::write(outside.path().join(".secret"), "secret").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("javascript")).unwrap();
        std::os::unix::fs::symlink(outside.path().join(".secret"), root.path().join("s")).unwrap();
        std::os::unix::fs::symlink("/dev/null", root.path().join("null")).unwrap();

        let confined = DocumentRoot::open(root.path()).unwrap();
        let following = DocumentRoot::open(root.path())
            .unwrap()
            .with_symlinks(SymlinkPolicy::Anywhere);
        let lookup = found;
        assert_eq!(
            lookup(&confined, "/javascript/lib.js"),
            Err(Status::Forbidden)
        );
        assert_eq!(lookup(&following, "/javascript/lib.js"), Ok(5));
        assert_eq!(
            lookup(&following, "/javascript/.secret"),
            Err(Status::NotFound)
        );
        assert_eq!(lookup(&following, "/s"), Err(Status::NotFound));
        assert_eq!(lookup(&following, "/null"), Err(Status::Forbidden));
    }
}
