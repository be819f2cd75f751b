#!/usr/bin/env python3
"""Checks that the docs still name files and items that exist in the code.

Scans docs/*.md, README.md and examples/README.md and prints one line per
stale reference (``doc:line: reference: why``), exiting 1; when every
reference resolves it prints a one-line summary and exits 0.

What it checks:

* Relative Markdown links, ``[text](path)`` and ``[text](path#anchor)``:
  the path exists, relative to the doc. An anchor must match a heading of
  the target doc, slugged the way GitHub does (lowercase, punctuation other
  than ``-`` and ``_`` dropped, spaces to ``-``).
* Backticked repository paths (``src/worker.rs``, ``tests/run.sh``,
  ``benches/suite.py`` ...): the file or directory exists. ``src/x.rs:NAME``
  also needs NAME to occur in that file.
* Backticked Rust paths such as ``Worker::run``, ``respond::answer``,
  ``files::DocumentRoot::lookup_decoded``, ``Due::{Stale, Expired}``:
  lowercase leading segments must be modules of the crate (``src/a/b.rs``
  or ``src/a/b/mod.rs``), and every later segment must occur as an
  identifier in that module (in all of the code when there is none). A path
  that starts with a type must start with one the code defines (``struct``,
  ``enum``, ``trait`` or ``type``) or one listed in ``EXTERNAL_TYPES``;
  paths into ``std``, ``mio`` and the other crates in ``EXTERNAL_ROOTS``
  are not checked.
* Backticked single names that can only be code: CamelCase with two or more
  humps (``FileCache``, ``ReadingRequest``) and snake_case with an
  underscore (``finish_exchange``): the name occurs as an identifier.

Names are looked up in src/, and for examples/README.md in examples/ too,
as whole identifiers anywhere in the files, comments included: a plain
grep, cheap and good enough to catch a rename or a removal.

What it cannot tell: whether a name still means what the text says about
it (a method that kept its name but changed its job), whether ``Type::item``
really belongs to that type (each segment is looked up on its own), prose
that names code without backticks, figures and command output quoted in
the docs, and SCREAMING_CASE names (too many are the kernel's, such as
``SO_REUSEPORT``). A new external type written as ``Type::item`` in a doc
needs an entry in ``EXTERNAL_TYPES``, and a code-shaped word that names
something else (``io_uring``) one in ``NOT_CODE``. Backticks split over two
lines, and anything inside fenced blocks (commands and their output), are
not read.
"""

from __future__ import annotations

import functools
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = [
    *sorted((REPO / "docs").glob("*.md")),
    REPO / "README.md",
    REPO / "examples" / "README.md",
]

# Leading path segments that belong to other crates or to the language:
# paths starting with them are not ours to check.
EXTERNAL_ROOTS = frozenset(
    {
        "std",
        "core",
        "alloc",
        "io",
        "fs",
        "net",
        "mio",
        "libc",
        "httparse",
        "slab",
        "socket2",
        "signal_hook",
        "usize",
        "u64",
        "u32",
        "i32",
    }
)
# Types of other crates the docs write as `Type::item`.
EXTERNAL_TYPES = frozenset(
    {
        "Poll",
        "File",
        "String",
        "Events",
        "Event",
        "Token",
        "Waker",
        "Registry",
        "Interest",
        "TcpListener",
        "TcpStream",
        "Slab",
    }
)
# Directories of code whose backticked paths are checked for existence
# (not docs/: the docs also name files that scripts write there).
REPO_DIRS = ("src/", "tests/", "benches/", "examples/", "fuzz/", ".ci/")
# Besides src/, where each doc's bare names may come from.
EXTRA_CODE = {
    "docs/testing.md": "tests",
    "docs/benchmarks.md": "benches",
    "examples/README.md": "examples",
}
# Backticked words shaped like code that name something else.
# nginx directives and other names that are not ours.
NOT_CODE = frozenset(
    {
        "io_uring",
        "gzip_static",
        "gzip_vary",
        "open_file_cache",
        "inet_csk_reqsk_queue_add",
        "tcp_shutdown",
        "tcp_rcv_state_process",
        "tcp_set_state",
        "sk_shutdown",
    }
)
# Files whose identifiers count as code.
CODE_SUFFIXES = (".rs", ".py", ".c", ".lua", ".sh")

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TYPE_DEFINITION = re.compile(r"\b(?:struct|enum|trait|type)\s+([A-Z][A-Za-z0-9_]*)")
BACKTICKED = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*)$")
FENCE = re.compile(r"^\s*```")
RUST_PATH = re.compile(r"[A-Za-z_]\w*(?:::\w+)*(?:::\{\s*\w+(?:\s*,\s*\w+)*\s*\})?(?:\(\))?")
FILE_AND_NAME = re.compile(r"(src/[\w/]+\.rs):(\w+)")
CAMEL_CASE = re.compile(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+")
SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")


@dataclass(frozen=True)
class Reference:
    """A stale reference: where a doc makes it, and why it does not resolve."""

    doc: Path
    line: int
    text: str
    why: str

    def __str__(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}: {self.text}: {self.why}"


@dataclass
class Code:
    """The identifiers of the code a doc may name: src/ first (the crate),
    then any other tree of sources, per file and in all."""

    root: Path
    names_by_file: dict[Path, frozenset[str]]
    all_names: frozenset[str]
    type_names: frozenset[str]

    @staticmethod
    def read(roots: list[Path]) -> Code:
        names_by_file: dict[Path, frozenset[str]] = {}
        types: set[str] = set()
        for root in roots:
            for path in (path for path in root.rglob("*") if path.suffix in CODE_SUFFIXES):
                text = path.read_text(encoding="utf-8")
                names_by_file[path] = frozenset(IDENTIFIER.findall(text))
                types.update(TYPE_DEFINITION.findall(text))
        all_names = frozenset().union(*names_by_file.values())
        return Code(roots[0], names_by_file, all_names, frozenset(types))

    def module_names(self, segments: list[str]) -> frozenset[str] | None:
        """The identifiers of module `a::b` (src/a/b.rs or src/a/b/mod.rs,
        with its submodules), or None when the crate has no such module."""
        base = self.root.joinpath(*segments)
        files = [path for path in (base.with_suffix(".rs"), base / "mod.rs") if path in self.names_by_file]
        if base.is_dir():
            files += [path for path in self.names_by_file if base in path.parents]
        if not files:
            return None
        return frozenset().union(*(self.names_by_file[path] for path in files))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def prose_lines(doc: Path) -> list[tuple[int, str]]:
    """The doc's numbered lines outside fenced blocks (commands and their
    output quote other programs, not our code)."""
    lines: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


@functools.cache
def anchors(doc: Path) -> frozenset[str]:
    """The anchors of a doc's headings."""
    return frozenset(slug(match.group(1)) for _, line in prose_lines(doc) if (match := HEADING.match(line)))


def check_link(doc: Path, target: str) -> str | None:
    """Checks a link's target; None when it resolves (or is not local)."""
    if re.match(r"[a-z]+:", target):
        return None
    path_part, _, anchor = target.partition("#")
    path = (doc.parent / path_part).resolve() if path_part else doc
    if not path.exists():
        return "no such file"
    if anchor and path.suffix == ".md" and anchor not in anchors(path):
        return f"no heading with anchor #{anchor} in {path.relative_to(REPO)}"
    return None


def check_repo_path(text: str, code: Code) -> str | None:
    """Checks `src/x.rs`, or `src/x.rs:NAME`, against the repository."""
    if match := FILE_AND_NAME.fullmatch(text):
        path = REPO / match.group(1)
        if not path.is_file():
            return "no such file"
        if match.group(2) not in code.names_by_file.get(path, frozenset()):
            return f"{match.group(2)} does not occur in {match.group(1)}"
        return None
    return None if (REPO / text).exists() else "no such file or directory"


def split_rust_path(text: str) -> list[str]:
    """`a::B::{C, D}()` -> [a, B, C, D]."""
    text = text.removesuffix("()")
    head, _, group = text.partition("{")
    segments = [segment for segment in head.split("::") if segment]
    return segments + [name.strip() for name in group.rstrip("}").split(",") if name.strip()]


def check_rust_path(text: str, code: Code) -> str | None:
    """Checks `module::Type::item` against the crate's modules and names."""
    segments = split_rust_path(text)
    if segments[0] in EXTERNAL_ROOTS or segments[0] in EXTERNAL_TYPES:
        return None
    names = code.all_names
    rest = segments
    if segments[0][0].islower():
        module_length = next(
            (n for n in range(len(segments) - 1, 0, -1) if code.module_names(segments[:n]) is not None),
            0,
        )
        if module_length == 0:
            return f"no module {segments[0]} in the crate"
        names = code.module_names(segments[:module_length]) or frozenset()
        rest = segments[module_length:]
    elif segments[0] not in code.type_names:
        return f"no type {segments[0]} in the code (external: see EXTERNAL_TYPES)"
    missing = [name for name in rest if name not in names]
    return f"{', '.join(missing)} not found" if missing else None


def check_backticked(text: str, code: Code) -> str | None:
    """Checks backticked text that names code; None when it resolves or
    does not look like code at all."""
    if text in NOT_CODE or "*" in text:
        return None
    if text.startswith(REPO_DIRS):
        return check_repo_path(text, code)
    if "::" in text and RUST_PATH.fullmatch(text):
        return check_rust_path(text, code)
    if CAMEL_CASE.fullmatch(text) or SNAKE_CASE.fullmatch(text):
        return None if text in code.all_names else "not found in the code"
    return None


def stale_references(doc: Path, code: Code) -> list[Reference]:
    """The references in one doc that no longer resolve."""
    stale: list[Reference] = []
    for number, line in prose_lines(doc):
        for match in LINK.finditer(line):
            if why := check_link(doc, match.group(1)):
                stale.append(Reference(doc, number, match.group(1), why))
        for match in BACKTICKED.finditer(line):
            if why := check_backticked(match.group(1), code):
                stale.append(Reference(doc, number, match.group(1), why))
    return stale


def code_for(doc: Path) -> Code:
    """The code a doc's names are looked up in: src/, and for some docs the
    tests, benches or examples they describe."""
    roots = [REPO / "src"]
    if extra := EXTRA_CODE.get(doc.relative_to(REPO).as_posix()):
        roots.append(REPO / extra)
    return Code.read(roots)


def main() -> int:
    started = time.monotonic()
    stale = [reference for doc in DOCS for reference in stale_references(doc, code_for(doc))]
    for reference in stale:
        print(reference)
    if stale:
        return 1
    elapsed = time.monotonic() - started
    print(f"check-doc-refs: every code reference in {len(DOCS)} docs resolves ({elapsed:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
