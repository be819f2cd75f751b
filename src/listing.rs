//! Directory listings (`--list-dirs`): what a directory without an index file
//! shows, as an HTML page or, for clients that ask for it, as JSON.
//!
//! A listing is built on the miss path of a request for `/dir/` whose
//! directory has no `index.html` ([`crate::files::Lookup::NoIndex`]): read
//! the directory, keep what the server would serve, sort, render. It is
//! never cached; [`crate::respond`] gives it an `ETag` from a hash of the
//! rendered bytes, so a browser's revalidation gets `304`.
//!
//! ## What is listed
//! Exactly what a request for the entry's URL would get, so a listing never
//! names a file that answers `403` or `404`, and never reveals one that
//! does: not dot files ([`crate::files::is_hidden_name`]); only regular
//! files and directories (no FIFOs, sockets or devices); a symlink only if
//! [`DocumentRoot::open_relative`], the very call that serves files, opens
//! it under the [`crate::files::SymlinkPolicy`] and finds a file or a
//! directory there (its size and time are the target's); a file or
//! directory whose permission bits do not let everyone read it only if that
//! call opens it too (so a `chmod 000` file the server cannot read is left
//! out); and never the access log ([`crate::cache::FileCache::hide`]). One
//! gap remains, for speed: an entry readable by all by its bits but refused
//! by an ACL or a security module is listed, then answers `403`. Opening
//! every entry would tell, at nearly twice the time per listing. Entries are read through
//! the directory descriptor that the confined lookup opened, so the listing
//! is of the directory that was checked, not of whatever its path names now.
//!
//! ## Order and names
//! Directories first, then files, each group in byte order of the names
//! (`B` before `a`; no locale, no natural-number order: byte order is the
//! one order every client can reproduce). Names are file-system bytes, not
//! necessarily UTF-8: the text shown replaces invalid sequences with U+FFFD,
//! while links carry the exact bytes percent-encoded
//! ([`crate::files::encode_path`]), so every entry stays reachable. In HTML,
//! names are escaped as HTML text and links as double-quoted attributes by
//! the `html-escape` crate, and links are absolute paths, so a name
//! such as `javascript:alert(1)` or `<script>` can only ever be text. The
//! response adds `X-Content-Type-Options: nosniff` and a
//! `Content-Security-Policy` that allows no script, style or frame at all.
//!
//! ## Format
//! HTML unless the request's `Accept` names `application/json` with a
//! higher weight than `text/html` ([`Format::negotiate`]); either way the
//! answer carries `Vary: Accept`. The JSON is an object: `path` (the directory's URL path), `entries`
//! (each with `name`, `type` (`"directory"` or `"file"`), `size` in bytes,
//! `mtime` in seconds since the Unix epoch, and `url`, the entry's
//! percent-encoded path) and `truncated`.
//!
//! ## Never stalling the worker
//! A listing is built inside one event-loop iteration, and every other
//! connection of that worker waits meanwhile. So at most
//! [`MAX_LISTED_ENTRIES`] entries are read (each costs a `getdents64` share
//! and a `statx`); a larger directory's listing shows the first entries the
//! file system returned, sorted, with a note that more exist.

use std::fs::{File, Metadata};
use std::hash::{DefaultHasher, Hasher};
use std::io::{self, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::ascii::push_decimal;
use crate::files::{self, DocumentRoot, Inode};
use crate::http::accept;
use crate::json;

/// Most directory entries read for one listing, hidden ones included. Reading
/// 10,000 entries of a warm directory and rendering them takes about
/// 10 ms, the longest another connection on the same worker waits (see
/// tests/listing.rs); past it the listing says that it is incomplete.
pub const MAX_LISTED_ENTRIES: usize = 10_000;

/// The `Content-Security-Policy` of a listing: nothing but the page itself,
/// no script, style, image, form target or frame parent. The page needs none.
pub const CONTENT_SECURITY_POLICY: &[u8] =
    b"default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The representations of a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A page for people (the default).
    Html,
    /// An object for programs (`Accept: application/json`).
    Json,
}

impl Format {
    /// Chooses by the request's `Accept` (RFC 9110 §12.5.1): JSON when it
    /// lists `application/json` with a weight above zero and above that of
    /// an explicit `text/html` (so `Accept: application/json, */*` is JSON,
    /// and a browser's `text/html, …, */*;q=0.8` is HTML); HTML otherwise,
    /// including on a tie and without `Accept`.
    pub fn negotiate(accept: Option<&[u8]>) -> Format {
        let Some(accept) = accept else {
            return Format::Html;
        };
        let json = accept::weight(accept, b"application/json").unwrap_or(0);
        let html = accept::weight(accept, b"text/html").unwrap_or(0);
        if json > 0 && json > html {
            Format::Json
        } else {
            Format::Html
        }
    }

    /// The `Content-Type` of this representation.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Html => "text/html",
            Format::Json => "application/json",
        }
    }
}

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Listed first, linked with a trailing slash.
    Directory,
    /// A regular file.
    File,
}

/// One listed entry.
#[derive(Debug)]
struct Entry {
    /// Sorts directories first.
    kind: Kind,
    /// The name's bytes, as the file system has them.
    name: Vec<u8>,
    /// Size in bytes (for a symlink, its target's).
    size: u64,
    /// Modification time (for a symlink, its target's).
    modified: SystemTime,
}

/// A directory's servable entries, sorted.
#[derive(Debug)]
pub struct Listing {
    entries: Vec<Entry>,
    /// Whether the directory holds more than [`MAX_LISTED_ENTRIES`] entries,
    /// so that some were not read.
    truncated: bool,
}

impl Listing {
    /// Reads `directory`, opened by the root's lookup for the decoded path
    /// `path` ("" for the root), leaving out what the server would not serve
    /// (see the module docs) and the file `hidden`.
    pub fn read(
        root: &DocumentRoot,
        directory: &File,
        path: &[u8],
        hidden: Option<Inode>,
    ) -> io::Result<Listing> {
        // `/proc/self/fd/N` names the directory the descriptor holds, even if
        // its path was renamed or replaced since the confined open; `std`
        // then reads it with `getdents64` and stats each entry relative to
        // it (`statx` on the directory descriptor, not following symlinks).
        let entries = std::fs::read_dir(format!("/proc/self/fd/{}", directory.as_raw_fd()))?;
        let mut listing = Listing {
            entries: Vec::new(),
            truncated: false,
        };
        let mut entry_path = Vec::new();
        for (read, entry) in entries.enumerate() {
            if read == MAX_LISTED_ENTRIES {
                listing.truncated = true;
                break;
            }
            let entry = entry?;
            let name = entry.file_name();
            if files::is_hidden_name(name.as_bytes()) {
                continue;
            }
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            // A symlink is opened as a request would open it: only that
            // tells whether the policy lets the server follow it, and to
            // what. So is a file or directory whose permission bits do not
            // let everyone read it (`chmod 600`, `chmod 000`): the server may
            // not be able to, and then the entry would answer 403 (FIFOs and
            // devices are never opened: opening one can have effects of its
            // own, and they are not listed anyway). Any other takes the
            // `statx` alone: opening every entry as well would
            // nearly double the time a large listing holds up the worker
            // (10,000 files: about 25 ms -> 45 ms, release build).
            let metadata = if file_type.is_symlink() {
                open_metadata(root, path, name.as_bytes(), &mut entry_path)
            } else {
                match entry.metadata() {
                    Ok(metadata)
                        if (metadata.is_file() || metadata.is_dir())
                            && metadata.mode() & READABLE_BY_ALL != READABLE_BY_ALL =>
                    {
                        open_metadata(root, path, name.as_bytes(), &mut entry_path)
                    }
                    result => result,
                }
            };
            let Ok(metadata) = metadata else {
                continue;
            };
            if let Some(entry) = Entry::servable(name.as_bytes(), &metadata, hidden) {
                listing.entries.push(entry);
            }
        }
        listing
            .entries
            .sort_unstable_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        Ok(listing)
    }

    /// Renders the listing of the decoded directory path `path` in `format`
    /// into `out`.
    pub fn render(&self, path: &[u8], format: Format, out: &mut Vec<u8>) {
        match format {
            Format::Html => self.render_html(path, out),
            Format::Json => self.render_json(path, out),
        }
    }

    fn render_html(&self, path: &[u8], out: &mut Vec<u8>) {
        let title = shown_directory(path);
        let mut url = Vec::new();
        out.extend_from_slice(b"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">");
        out.extend_from_slice(
            b"<meta name=\"viewport\" content=\"width=device-width\">\n<title>Index of ",
        );
        html_escape::encode_text_to_vec(&title, out);
        out.extend_from_slice(b"</title></head>\n<body>\n<h1>Index of ");
        html_escape::encode_text_to_vec(&title, out);
        out.extend_from_slice(b"</h1>\n<table>\n<thead><tr><th>Name</th><th>Size</th><th>Modified</th></tr></thead>\n<tbody>\n");
        if let Some(parent) = parent_path(path) {
            url.clear();
            directory_url(parent, &mut url);
            link_row(out, &url, b"../", None);
        }
        let mut name_path = Vec::new();
        for entry in &self.entries {
            entry_url(path, &entry.name, entry.kind, &mut name_path, &mut url);
            link_row(out, &url, &entry.name, Some(entry));
        }
        out.extend_from_slice(b"</tbody>\n</table>\n");
        if self.truncated {
            out.extend_from_slice(b"<p>This directory holds more than ");
            push_decimal(out, MAX_LISTED_ENTRIES as u64);
            out.extend_from_slice(b" entries: only the first ones read are listed.</p>\n");
        }
        out.extend_from_slice(b"<hr><p>mioserve</p>\n</body></html>\n");
    }

    fn render_json(&self, path: &[u8], out: &mut Vec<u8>) {
        let mut url = Vec::new();
        directory_url(path, &mut url);
        out.extend_from_slice(b"{\"path\":");
        json::push_string(out, &url);
        out.extend_from_slice(b",\"entries\":[");
        let mut name_path = Vec::new();
        for (index, entry) in self.entries.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"\n{\"name\":");
            json::push_string(out, &entry.name);
            out.extend_from_slice(match entry.kind {
                Kind::Directory => b",\"type\":\"directory\",\"size\":",
                Kind::File => b",\"type\":\"file\",\"size\":",
            });
            push_decimal(out, entry.size);
            out.extend_from_slice(b",\"mtime\":");
            push_decimal(out, unix_seconds(entry.modified));
            out.extend_from_slice(b",\"url\":");
            entry_url(path, &entry.name, entry.kind, &mut name_path, &mut url);
            json::push_string(out, &url);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"truncated\":");
        out.extend_from_slice(if self.truncated { b"true" } else { b"false" });
        out.extend_from_slice(b"}\n");
    }
}

/// The permission bits that let owner, group and others read (`0o444`).
const READABLE_BY_ALL: u32 = 0o444;

/// The metadata of the entry `name` of the decoded directory path
/// `directory`, from the file that [`DocumentRoot::open_relative`] (the call
/// that serves files) opens for it: a symlink's target, and an error for
/// what a request would be refused. `scratch` holds the entry's path.
fn open_metadata(
    root: &DocumentRoot,
    directory: &[u8],
    name: &[u8],
    scratch: &mut Vec<u8>,
) -> io::Result<Metadata> {
    entry_path(directory, name, scratch);
    root.open_relative(scratch)?.metadata()
}

/// The strong validator of a rendered listing: a hash of its bytes, so it
/// changes whenever anything shown changes (a file's size or time included,
/// which the directory's own modification time would miss). The hash is
/// `std`'s SipHash with fixed keys: stable for one build of the server, and
/// a mismatch after an upgrade costs one full answer, never a wrong `304`.
pub fn digest(body: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(body);
    hasher.finish()
}

impl Entry {
    /// The entry for `name` if the server would serve what `metadata`
    /// describes.
    fn servable(name: &[u8], metadata: &Metadata, hidden: Option<Inode>) -> Option<Entry> {
        let kind = if metadata.is_dir() {
            Kind::Directory
        } else if metadata.is_file() && hidden != Some(Inode::of(metadata)) {
            Kind::File
        } else {
            return None;
        };
        Some(Entry {
            kind,
            name: name.to_vec(),
            size: metadata.len(),
            modified: metadata.modified().unwrap_or(UNIX_EPOCH),
        })
    }
}

/// One row of the HTML table: a link (an encoded URL path, escaped again for
/// the attribute) with its text, the name `name` (and a slash for a
/// directory), then size and time for an entry.
fn link_row(out: &mut Vec<u8>, url: &[u8], name: &[u8], entry: Option<&Entry>) {
    out.extend_from_slice(b"<tr><td><a href=\"");
    // An encoded path is ASCII (so this borrows, never copies); the path
    // encoding leaves `&` in it, which must become `&amp;` here (`&lt;` in
    // a name would decode to `<`).
    html_escape::encode_double_quoted_attribute_to_vec(String::from_utf8_lossy(url), out);
    out.extend_from_slice(b"\">");
    push_html_text(out, name);
    if entry.is_some_and(|entry| entry.kind == Kind::Directory) {
        out.push(b'/');
    }
    out.extend_from_slice(b"</a></td><td>");
    if let Some(entry) = entry {
        if entry.kind == Kind::File {
            push_size(out, entry.size);
        }
        out.extend_from_slice(b"</td><td>");
        // As the head writer writes `Last-Modified`: formatted in place.
        let _ = write!(out, "{}", httpdate::HttpDate::from(entry.modified));
    } else {
        out.extend_from_slice(b"</td><td>");
    }
    out.extend_from_slice(b"</td></tr>\n");
}

/// Appends the file-system name `name` as HTML text, each sequence that is
/// not UTF-8 as U+FFFD (as `String::from_utf8_lossy` would, without making
/// that string).
fn push_html_text(out: &mut Vec<u8>, name: &[u8]) {
    for chunk in name.utf8_chunks() {
        html_escape::encode_text_to_vec(chunk.valid(), out);
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
}

/// A decoded directory path as people read it: `/a/b/`, invalid UTF-8 as
/// U+FFFD.
fn shown_directory(path: &[u8]) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    format!("/{}/", String::from_utf8_lossy(path))
}

/// The URL path of a decoded directory path: `/` for the root, `/a/b/`.
fn directory_url(path: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if !path.is_empty() {
        files::encode_path(path, out);
    }
    out.push(b'/');
}

/// The URL path of the entry `name` of the decoded directory path
/// `directory`; `scratch` holds the decoded entry path on the way.
fn entry_url(directory: &[u8], name: &[u8], kind: Kind, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    entry_path(directory, name, scratch);
    out.clear();
    files::encode_path(scratch, out);
    if kind == Kind::Directory {
        out.push(b'/');
    }
}

/// The decoded path of the entry `name` of the decoded directory path
/// `directory` ("" for the root), into `out`.
fn entry_path(directory: &[u8], name: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(directory);
    if !directory.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
}

/// The decoded path of a directory's parent; `None` for the root.
fn parent_path(path: &[u8]) -> Option<&[u8]> {
    if path.is_empty() {
        return None;
    }
    Some(match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => &path[..slash],
        None => b"",
    })
}

/// A size for people: bytes below 1 KiB, else one decimal and a binary unit.
fn push_size(out: &mut Vec<u8>, size: u64) {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if size < 1024 {
        push_decimal(out, size);
        out.extend_from_slice(b" B");
        return;
    }
    let mut value = size as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    // Into the buffer directly: `format!` would allocate a string per row.
    let _ = write!(out, "{value:.1} {}", UNITS[unit]);
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_chosen_only_when_preferred() {
        let cases: [(Option<&str>, Format); 10] = [
            (None, Format::Html),
            (Some("*/*"), Format::Html),
            (Some("application/json"), Format::Json),
            (Some("application/json, text/plain, */*"), Format::Json),
            (Some("Application/JSON;charset=utf-8"), Format::Json),
            (Some("text/html, application/json"), Format::Html),
            (Some("text/html;q=0.5, application/json"), Format::Json),
            (Some("application/json;q=0"), Format::Html),
            (
                Some("application/json;q=0.9, text/html;q=0.95"),
                Format::Html,
            ),
            (
                Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                Format::Html,
            ),
        ];
        for (accept, format) in cases {
            assert_eq!(
                Format::negotiate(accept.map(str::as_bytes)),
                format,
                "{accept:?}"
            );
        }
    }

    #[test]
    fn names_are_html_text_with_invalid_utf8_replaced() {
        let mut out = Vec::new();
        push_html_text(&mut out, b"<a&b>\xff\xfe \"q\" caf\xc3\xa9");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "&lt;a&amp;b&gt;\u{fffd}\u{fffd} \"q\" café"
        );
    }

    #[test]
    fn sizes_for_people() {
        let shown = |size| {
            let mut out = Vec::new();
            push_size(&mut out, size);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(shown(0), "0 B");
        assert_eq!(shown(1023), "1023 B");
        assert_eq!(shown(1536), "1.5 KiB");
        assert_eq!(shown(5 << 30), "5.0 GiB");
    }

    #[test]
    fn parents() {
        assert_eq!(parent_path(b""), None);
        assert_eq!(parent_path(b"a"), Some(&b""[..]));
        assert_eq!(parent_path(b"a/b"), Some(&b"a"[..]));
    }
}
