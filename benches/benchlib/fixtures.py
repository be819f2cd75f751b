"""The document root every benchmark serves: files with known bytes, so a
server can be checked before it is measured."""

from __future__ import annotations

import random
from pathlib import Path

# The small page every small-file scenario fetches: a round size makes
# transfer rates easy to sanity-check against req/s.
INDEX_BYTES = 1024
LARGE_FILE_BYTES = 64 * 1024 * 1024
# The file of the many-downloads scenario (500 at once, 8 GiB in all).
DOWNLOAD_FILE_BYTES = 16 * 1024 * 1024
# The working set: more distinct files than any server's cache holds,
# spread over directories as a real site's would be.
WORKING_SET_DIR = "ws"
WORKING_SET_FILES = 100_000
WORKING_SET_DIRS = 1_000
WORKING_SET_FILE_BYTES = 4096


def index_page() -> bytes:
    """An HTML page of exactly INDEX_BYTES."""
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>mioserve benchmark</title>\n</head>\n<body>\n<h1>Benchmark page</h1>\n"
    )
    tail = "</body>\n</html>\n"
    filler_line = "<p>The quick brown fox jumps over the lazy dog.</p>\n"
    body = head
    while len(body) + len(filler_line) + len(tail) <= INDEX_BYTES:
        body += filler_line
    # Pad with an HTML comment so the page is exactly INDEX_BYTES.
    pad = INDEX_BYTES - len(body) - len(tail)
    if pad >= 8:
        body += "<!--" + "-" * (pad - 8) + "-->\n"
    return (body + tail).encode()


def make_fixture_root(root: Path, *, with_large_file: bool = False) -> dict[str, bytes]:
    """Write the benchmark files into a new directory `root` and return
    {url path: expected body}: ``index.html`` (1 KiB), ``16k.bin``,
    ``1m.bin`` and, if asked, ``16m.bin`` and ``64m.bin``."""
    root.mkdir()
    # Fixed seeds: the same bytes on every run, and incompressible, so nothing
    # on the path can cheat by compressing them.
    rng = random.Random(20240601)
    files = {
        "/index.html": index_page(),
        "/16k.bin": rng.randbytes(16 * 1024),
        "/1m.bin": rng.randbytes(1024 * 1024),
    }
    if with_large_file:
        files["/16m.bin"] = random.Random(20240603).randbytes(DOWNLOAD_FILE_BYTES)
        files["/64m.bin"] = random.Random(20240602).randbytes(LARGE_FILE_BYTES)
    for url, data in files.items():
        (root / url.lstrip("/")).write_bytes(data)
    return files


def working_set_url(index: int) -> str:
    """The url path of working-set file `index` (0 to WORKING_SET_FILES - 1):
    ``/ws/DDD/NNNNN.bin``, file i in directory i mod WORKING_SET_DIRS.
    ``benches/working_set.lua`` builds the same paths."""
    return f"/{WORKING_SET_DIR}/{index % WORKING_SET_DIRS:03d}/{index:05d}.bin"


def make_working_set(root: Path) -> dict[str, bytes]:
    """Write the WORKING_SET_FILES distinct seeded files of
    WORKING_SET_FILE_BYTES under `root`/ws (about 400 MB; 10–30 s on the
    benchmark machine, which leaves them in the page cache) and return
    {url path: body} of a sample of them, for the correctness check."""
    rng = random.Random(20240604)
    for d in range(WORKING_SET_DIRS):
        (root / WORKING_SET_DIR / f"{d:03d}").mkdir(parents=True)
    sample = {}
    for i in range(WORKING_SET_FILES):
        url = working_set_url(i)
        data = rng.randbytes(WORKING_SET_FILE_BYTES)
        (root / url.lstrip("/")).write_bytes(data)
        if i % (WORKING_SET_FILES // 4) == 0 or i == WORKING_SET_FILES - 1:
            sample[url] = data
    return sample


def read_working_set(root: Path) -> None:
    """Read every working-set file under `root` once, so the page cache and
    the kernel's dentry and inode caches hold all of them before a
    measurement (writing them leaves their pages cached, but a machine short
    of memory may have dropped some since, and then the first server to ask
    would pay for the disk)."""
    for i in range(WORKING_SET_FILES):
        (root / working_set_url(i).lstrip("/")).read_bytes()
