//! Arbitrary bytes as a request target, through both layers that keep a
//! request inside the document root (see `mioserve::files`).
//!
//! 1. [`decode_path`]: never panics, and whatever it accepts is a clean
//!    relative path: no leading `/`, no empty, `.` or `..` segment, no NUL, no
//!    hidden segment other than `.well-known`. Decoding that path again (as
//!    `/path`) gives the same path: nothing is left for a second decoding
//!    pass to turn into a separator or a parent.
//! 2. [`DocumentRoot::lookup`] on a fixed document root that contains
//!    symlinks pointing out of it (to a secret file, to the secret's
//!    directory, to `/etc/passwd`, relative and absolute). A file it returns
//!    must be one of the regular files that really live under the root, by
//!    device and inode, and the kernel's name for the open descriptor must be
//!    under the root: never the secret, never anything outside.
//!
//! The fixture is built once per fuzzing process (a `OnceLock`) in a
//! temporary directory; `lookup` itself only opens files, so every execution
//! sees the same tree.

#![no_main]

use std::collections::HashSet;
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, symlink};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mioserve::files::{DocumentRoot, Lookup, PathForm, SERVED_DOT_DIRECTORY, decode_path};
use mioserve_fuzz::literal;

/// Written into the file outside the root; finding it in a response is the
/// failure this target exists to catch.
const SECRET_MARKER: &str = "MIOSERVE-FUZZ-SECRET-7f3a9c1e";

/// The document root and what is known about the files around it.
struct Fixture {
    /// Keeps the temporary tree alive for the life of the process.
    _dir: tempfile::TempDir,
    /// The document root, canonical, as the kernel names its files.
    root: PathBuf,
    /// The open root every lookup goes through.
    document_root: DocumentRoot,
    /// `(dev, ino)` of every regular file a lookup may return.
    servable: HashSet<(u64, u64)>,
    /// `(dev, ino)` of the secret outside the root.
    secret: (u64, u64),
    /// `(dev, ino)` of the hidden file inside the root, which `decode_path`
    /// must never let through.
    hidden: (u64, u64),
}

fn identity(path: &Path) -> (u64, u64) {
    let metadata = fs::metadata(path).expect("fixture file");
    (metadata.dev(), metadata.ino())
}

/// Builds:
///
/// ```text
/// outside/secret.txt            the marker
/// outside/index.html            so `/leakdir/` would have an index to serve
/// root/index.html
/// root/sub/index.html
/// root/sub/page.txt
/// root/.well-known/acme.txt     the one dot-directory that is served
/// root/.hidden                  never served
/// root/alias.html -> index.html                  inside: fine to follow
/// root/leak       -> <abs>/outside/secret.txt
/// root/leakdir    -> <abs>/outside
/// root/up         -> ../outside                  relative escape
/// root/sub/leak2  -> ../../outside/secret.txt    relative escape, one down
/// root/passwd     -> /etc/passwd
/// root/self       -> .                           a loop back to the root
/// ```
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("mioserve-fuzz-")
            .tempdir()
            .expect("temporary directory");
        let base = dir.path().canonicalize().expect("canonical temp dir");
        let outside = base.join("outside");
        let root = base.join("root");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret.txt"), SECRET_MARKER).unwrap();
        fs::write(outside.join("index.html"), SECRET_MARKER).unwrap();
        fs::create_dir(&root).unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        fs::create_dir(root.join(".well-known")).unwrap();
        fs::write(root.join("index.html"), "<h1>root</h1>").unwrap();
        fs::write(root.join("sub/index.html"), "<h1>sub</h1>").unwrap();
        fs::write(root.join("sub/page.txt"), "page").unwrap();
        fs::write(root.join(".well-known/acme.txt"), "token").unwrap();
        fs::write(root.join(".hidden"), "hidden").unwrap();
        symlink("index.html", root.join("alias.html")).unwrap();
        symlink(outside.join("secret.txt"), root.join("leak")).unwrap();
        symlink(&outside, root.join("leakdir")).unwrap();
        symlink("../outside", root.join("up")).unwrap();
        symlink("../../outside/secret.txt", root.join("sub/leak2")).unwrap();
        symlink("/etc/passwd", root.join("passwd")).unwrap();
        symlink(".", root.join("self")).unwrap();

        let servable = [
            "index.html",
            "sub/index.html",
            "sub/page.txt",
            ".well-known/acme.txt",
        ]
        .iter()
        .map(|file| identity(&root.join(file)))
        .collect();
        let document_root = DocumentRoot::open(&root).expect("open the document root");
        // Says which confinement this kernel gets (openat2 or the fallback):
        // only that one is fuzzed.
        eprintln!("path_resolution fixture: {document_root:?}");
        Fixture {
            secret: identity(&outside.join("secret.txt")),
            hidden: identity(&root.join(".hidden")),
            servable,
            document_root,
            root,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    check_decoded(data);
    check_lookup(data);
});

fn check_decoded(target: &[u8]) {
    let mut path = Vec::new();
    let Ok(form) = decode_path(target, &mut path) else {
        return;
    };
    assert!(
        !path.starts_with(b"/"),
        "{} -> {}",
        literal(target),
        literal(&path)
    );
    assert!(
        !path.contains(&0),
        "{} -> {}",
        literal(target),
        literal(&path)
    );
    if !path.is_empty() {
        for segment in path.split(|&b| b == b'/') {
            assert!(
                !segment.is_empty(),
                "empty segment: {} -> {}",
                literal(target),
                literal(&path)
            );
            assert!(
                segment != b"." && segment != b"..",
                "dot segment: {} -> {}",
                literal(target),
                literal(&path)
            );
            assert!(
                !segment.starts_with(b".") || segment == SERVED_DOT_DIRECTORY,
                "hidden segment: {} -> {}",
                literal(target),
                literal(&path)
            );
        }
    }

    // Decoding is a fixed point once nothing is left to decode: a path with no
    // `%`, `?` or `#` comes back unchanged, named as a file (or, when empty,
    // as the root directory).
    if !path.iter().any(|b| matches!(b, b'%' | b'?' | b'#')) {
        let mut again_target = vec![b'/'];
        again_target.extend_from_slice(&path);
        let mut again = Vec::new();
        let again_form = decode_path(&again_target, &mut again);
        let expected_form = if path.is_empty() {
            PathForm::Directory
        } else {
            PathForm::File
        };
        assert_eq!(
            (again_form, again.as_slice()),
            (Ok(expected_form), path.as_slice()),
            "{} (form {form:?}) decoded to {}, which decodes differently",
            literal(target),
            literal(&path)
        );
    }
}

fn check_lookup(target: &[u8]) {
    let fixture = fixture();
    let mut scratch = Vec::new();
    let Lookup::File(found) = fixture.document_root.lookup(target, &mut scratch) else {
        return;
    };
    let metadata = found.file.metadata().expect("fstat a served file");
    let id = (metadata.dev(), metadata.ino());
    assert_ne!(
        id,
        fixture.secret,
        "{} served the secret outside the root",
        literal(target)
    );
    assert_ne!(
        id,
        fixture.hidden,
        "{} served the hidden file",
        literal(target)
    );
    assert!(
        fixture.servable.contains(&id),
        "{} served a file that is not under the root: {:?}",
        literal(target),
        kernel_name(&found.file)
    );
    let name = kernel_name(&found.file);
    assert!(
        name.starts_with(&fixture.root),
        "{} served {name:?}, outside {:?}",
        literal(target),
        fixture.root
    );
    assert_eq!(
        found.size(),
        metadata.len(),
        "{}: announced length",
        literal(target)
    );
}

/// The path the kernel has for an open descriptor.
fn kernel_name(file: &File) -> PathBuf {
    fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).expect("readlink /proc/self/fd")
}
