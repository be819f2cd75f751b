//! The document root a test serves: files with distinct, known contents and a fixed
//! modification time, so bodies and `Last-Modified` can be compared exactly.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use tempfile::TempDir;

/// The modification time given to every fixture file: 2023-04-18 08:32:14 UTC.
pub const FIXTURE_MTIME_SECS: u64 = 1_681_806_734;

/// `FIXTURE_MTIME_SECS` as an IMF-fixdate, the exact expected `Last-Modified` value.
pub const FIXTURE_LAST_MODIFIED: &str = "Tue, 18 Apr 2023 08:32:14 GMT";

/// Size of `big.bin`, written by [`Fixture::big`].
pub const BIG_LEN: usize = 20 * 1024 * 1024;

/// The files every fixture root starts with: path, contents. Contents are distinct so a
/// response can never match the wrong file.
pub const FILES: &[(&str, &[u8])] = &[
    (
        "index.html",
        b"<!doctype html>\n<title>fixture</title>\n<h1>root index</h1>\n",
    ),
    ("hello.txt", b"Hello, world!\n"),
    ("sub/index.html", b"<h1>sub index</h1>\n"),
    ("sub/page.html", b"<p>a page in sub</p>\n"),
    ("style.css", b"body { color: #333; }\n"),
    ("app.js", b"console.log(\"app\");\n"),
    // PNG signature: not UTF-8, with CR, LF and NUL, so the body must be binary-safe.
    (
        "logo.png",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89",
    ),
    (
        "photo.jpg",
        b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0\xff\xd9",
    ),
    (
        "icon.svg",
        b"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1\" height=\"1\"/>\n",
    ),
    ("data.json", b"{\"answer\": 42}\n"),
    ("mod.wasm", b"\0asm\x01\0\0\0"),
    ("blob.unknownext", b"opaque bytes \x00\x01\x02\xfe\xff"),
    ("hello world.txt", b"a name with a space\n"),
    ("caf\u{e9}.txt", b"a UTF-8 name\n"),
    (
        "404.html",
        b"<!doctype html>\n<title>custom 404</title>\n<p>fixture: nothing here</p>\n",
    ),
    (
        "400.html",
        b"<!doctype html>\n<title>custom 400</title>\n<p>fixture: bad request</p>\n",
    ),
];

/// The contents of fixture file `name` (as listed in [`FILES`]).
pub fn content(name: &str) -> &'static [u8] {
    FILES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("{name} is not a fixture file"))
        .1
}

/// A temporary directory holding `root/` (the document root, filled from [`FILES`], plus an
/// empty `emptydir/`) and `outside/` (next to the root, never to be served).
pub struct Fixture {
    dir: TempDir,
    root: PathBuf,
}

/// The contents of `outside/secret.txt`, which must never appear in a response.
pub const SECRET: &[u8] = b"TOP-SECRET-OUTSIDE-THE-ROOT\n";

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("create fixture directory");
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        fs::create_dir(root.join("emptydir")).unwrap();
        let fixture = Fixture { dir, root };
        for (name, body) in FILES {
            fixture.write(name, body);
        }
        let outside = fixture.outside();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret.txt"), SECRET).unwrap();
        fixture
    }

    /// The document root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A directory beside the root (same parent) holding `secret.txt`.
    pub fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    /// `root/rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Writes `root/rel` and gives it the fixed fixture mtime.
    pub fn write(&self, rel: &str, body: &[u8]) {
        let path = self.path(rel);
        fs::write(&path, body).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        let mtime = UNIX_EPOCH + Duration::from_secs(FIXTURE_MTIME_SECS);
        fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(mtime))
            .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
    }

    pub fn remove(&self, rel: &str) {
        fs::remove_file(self.path(rel)).unwrap();
    }

    /// Writes `big.bin`, `BIG_LEN` pseudo-random bytes, and returns its contents.
    pub fn big(&self) -> Vec<u8> {
        let body = pseudo_random(BIG_LEN, 0x9E37_79B9_7F4A_7C15);
        self.write("big.bin", &body);
        body
    }
}

/// Deterministic incompressible bytes (xorshift64*), so a misplaced or repeated chunk of a
/// large body shows up as a mismatch.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Whether this process can read files it has no permission for (root, CAP_DAC_OVERRIDE):
/// then a "file the server cannot read" cannot be made, and such tests skip.
pub fn ignores_file_permissions(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let probe = dir.join(".permission-probe");
    fs::write(&probe, b"x").unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o000)).unwrap();
    let readable = fs::read(&probe).is_ok();
    fs::remove_file(&probe).unwrap();
    readable
}
