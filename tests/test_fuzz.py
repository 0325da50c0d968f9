"""Fuzzing the scanner, reader and chunker with hostile files and names (seeded, reproducible).

Every run writes DOCSYNC_FUZZ_FILES (1,000 by default) generated files into a folder, under
names a real disk can hold (bytes that are not UTF-8, newlines, glob characters, 255-byte
names, decomposed accents) and with contents a real folder has (binary, broken encodings,
BOMs, control characters, one huge line, invisible text, unclosed fences, adornment-only
reStructuredText), beside symlink loops, broken and escaping links and FIFOs. Then:
- the scan, the reader and the chunker raise nothing, every skip carries a known reason and
  a detail, and every chunk is its text's slice within the token limit;
- a whole sync raises nothing, accounts for every candidate, and a second sync writes nothing.
A failing case reproduces with DOCSYNC_FUZZ_SEED set to the seed the failure names.
"""

from __future__ import annotations

import codecs
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from docsync.plugin.encoder import Encoder
from docsync.plugin.settings import DEFAULT_EXCLUDE, DEFAULT_INCLUDE
from docsync.plugin.store import Store
from docsync.worker.chunk import chunk_text
from docsync.worker.read import Document, read_document
from docsync.worker.report import SKIP_REASONS, Skip
from docsync.worker.scan import Rules, scan_root
from tests.conftest import run_sync

SEED = int(os.environ.get("DOCSYNC_FUZZ_SEED", "20261202"))
FILES = int(os.environ.get("DOCSYNC_FUZZ_FILES", "1000"))
MAX_BYTES = 64_000
# Reasons a file's problem may be reported under: skips by rule, and failures.
FAILURE_REASONS = frozenset({"unreadable", "unlistable"})
WORDS = [
    *("the", "socket", "server", "binds", "a", "port", "and", "accepts", "clients", "while"),
    *("threads", "handle", "each", "request", "from", "queue", "of", "bytes", "sent"),
]

Content = Callable[[random.Random], bytes]


def prose(rng: random.Random, words: int = 60) -> str:
    sentences = []
    while words > 0:
        n = rng.randint(3, 14)
        sentences.append(" ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + ".")
        words -= n
    return " ".join(sentences)


def markdown(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randint(1, 8)):
        parts.append("#" * rng.randint(1, 7) + " " + prose(rng, 4))
        parts.append(prose(rng, rng.randint(0, 200)))
        if rng.random() < 0.2:
            parts.append("```" + ("\n" + prose(rng, 30)) * rng.randint(0, 3))  # maybe unclosed
    return "\n\n".join(parts).encode()


def restructured(rng: random.Random) -> bytes:
    lines = []
    for _ in range(rng.randint(1, 6)):
        mark = rng.choice("=-~^*+#\"'`:._")
        title = prose(rng, 3)
        lines += [mark * rng.randint(0, 40), title, mark * rng.randint(0, 40), ""]
        lines += [prose(rng, rng.randint(0, 150)), ""]
        if rng.random() < 0.3:
            lines.append(".. _label-" + str(rng.randint(0, 9)) + ":")
    return "\n".join(lines).encode()


def random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randint(1, 4096))


def broken_utf8(rng: random.Random) -> bytes:
    data = bytearray(prose(rng, 80).encode())
    for _ in range(rng.randint(1, 5)):
        data.insert(rng.randrange(len(data) + 1), rng.choice([0x80, 0xC3, 0xE2, 0xED, 0xF0, 0xFF]))
    return bytes(data)


def encoded(rng: random.Random) -> bytes:
    text = prose(rng, 40) + " café crème naïve Grüße Ελληνικά русский 中文 🙂"
    encoding = rng.choice(["utf-16-le", "utf-16-be", "utf-16", "utf-32", "cp1252", "koi8-r"])
    data = text.encode(encoding, errors="replace")
    if rng.random() < 0.3:
        data = data[: rng.randint(0, len(data))]  # truncated, maybe mid-character
    return data


def boms(rng: random.Random) -> bytes:
    bom = rng.choice([codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, b"\xff", b"\xef"])
    return bom * rng.randint(1, 3) + rng.choice([b"", prose(rng, 20).encode(), rng.randbytes(9)])


def controls(rng: random.Random) -> bytes:
    pool = [chr(c) for c in range(32)] + ["\x7f", "\x85", "\u2028", "\u2029", "\r", "\r\n"]
    return "".join(
        rng.choice(pool) if rng.random() < 0.3 else rng.choice(WORDS) for _ in range(300)
    ).encode()


def invisible(rng: random.Random) -> bytes:
    pool = [
        "\u200b",
        "\u200c",
        "\u200d",
        "\u2060",
        "\ufeff",
        "\u00ad",
        "\u200e",
        "\u202e",
        " ",
        "\t",
        "\n",
    ]
    text = "".join(rng.choice(pool) for _ in range(rng.randint(1, 500)))
    if rng.random() < 0.3:
        text += rng.choice(WORDS)
    return text.encode()


def one_long_line(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return ("x" * rng.randint(1000, 40_000)).encode()  # one "word" with no whitespace
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(500, 6000))).encode()


def unicode_mess(rng: random.Random) -> bytes:
    pool = [
        "e\u0301" * 50,
        "\U0001f600" * 30,
        "\u05d0\u05d1\u05d2 ",
        "\ufffd",
        "\u0000",
        "\U0010ffff",
        "ﷺ" * 20,
    ]
    return "\n\n".join(
        rng.choice(pool) + prose(rng, 10) for _ in range(rng.randint(1, 20))
    ).encode()


def whitespace(rng: random.Random) -> bytes:
    return "".join(rng.choice(" \t\r\n\f\v") for _ in range(rng.randint(0, 300))).encode()


def oversized(rng: random.Random) -> bytes:
    return prose(rng, 20).encode() * (MAX_BYTES // 100)


CONTENTS: list[Content] = [
    markdown, markdown, markdown, restructured, restructured, random_bytes, broken_utf8,
    encoded, boms, controls, invisible, one_long_line, unicode_mess, whitespace, oversized,
]  # fmt: skip
EXTENSIONS = [b".md"] * 4 + [b".rst", b".txt", b".markdown", b".MD", b".pdf", b"", b".md~"]


def hostile_name(rng: random.Random, index: int) -> bytes:
    """A file name a real disk can hold; unique by its index."""
    stem = (
        b"plain"
        if rng.random() < 0.5
        else rng.choice(
            [
                b"caf\xe9",  # Latin-1
                b"\xff\xfe",  # not UTF-8 at all
                b"cafe\xcc\x81",  # decomposed accent
                b"with space",
                b"new\nline",
                b"tab\there",
                b"*glob?[x]",
                b"back\\slash",
                b"-dash",
                b"percent%41",
                b"\xf0\x9f\x99\x82emoji",
                b"." + b"hidden",
                b"x" * 200,
            ]
        )
    )
    name = stem + b"-" + str(index).encode() + rng.choice(EXTENSIONS)
    return name[-255:]


def _utf8(name: bytes) -> bool:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def write_tree(root: Path, rng: random.Random, count: int) -> None:
    folders = [b""]
    # No folder goes in a folder whose name is not UTF-8: every file under it is skipped the
    # same way, and a deep tree of them would leave ever fewer files to read.
    parents = folders.copy()
    for index in range(count):
        if rng.random() < 0.05:
            name = hostile_name(rng, index) if rng.random() < 0.2 else b"sub%d" % index
            folder = rng.choice(parents) + name.replace(b".", b"_") + b"/"
            os.makedirs(os.fsencode(root) + b"/" + folder, exist_ok=True)
            folders.append(folder)
            if _utf8(folder):
                parents.append(folder)
        path = os.fsencode(root) + b"/" + rng.choice(folders) + hostile_name(rng, index)
        special = rng.random()
        if special < 0.03:
            os.symlink(os.path.basename(path), path)  # a link to itself
        elif special < 0.05:
            os.symlink(b"/nonexistent/" + str(index).encode(), path)
        elif special < 0.06:
            os.symlink(b"/etc/hostname", path)  # outside the root
        elif special < 0.07:
            os.mkfifo(path)
        else:
            with open(path, "wb") as handle:
                handle.write(rng.choice(CONTENTS)(rng))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "root"
    root.mkdir()
    a, b = root / "loop-a.md", root / "loop-b.md"
    a.symlink_to("loop-b.md")
    b.symlink_to("loop-a.md")
    (root / "dir-loop").symlink_to(".")
    write_tree(root, random.Random(SEED), FILES)
    return root.resolve()


def check_skip(skip: Skip) -> None:
    assert skip.reason in SKIP_REASONS | FAILURE_REASONS, skip
    assert skip.detail, skip


def test_scan_read_and_chunk_survive_hostile_files(tree: Path, tiny_encoder: Encoder) -> None:
    scan = scan_root(tree, Rules(DEFAULT_INCLUDE, DEFAULT_EXCLUDE))
    assert scan.candidates > FILES // 2, f"seed {SEED}"
    for skip in scan.skipped:
        check_skip(skip)
    limit = 64
    read = 0
    for source in scan.files:
        document = read_document(source, max_bytes=MAX_BYTES)
        if isinstance(document, Skip):
            check_skip(document)
            continue
        assert isinstance(document, Document)
        read += 1
        chunks = chunk_text(document.text, tokenizer=tiny_encoder, max_tokens=limit)
        assert chunks, f"seed {SEED}: {source.path!r} has text but no chunk"
        for chunk in chunks:
            assert chunk.text == document.text[chunk.start : chunk.end]
            assert chunk.text.strip() and chunk.tokens <= limit, (source.path, chunk)
        joined = "".join(c.gap + c.text for c in chunks)
        assert joined == document.text.rstrip(), f"seed {SEED}: {source.path!r} loses text"
    assert read > FILES // 8, f"seed {SEED}: too few files read to say much"


def test_a_sync_of_hostile_files_accounts_for_every_file(
    tree: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    report = run_sync(tree, memory_store, tiny_encoder, max_file_bytes=MAX_BYTES)
    skipped = sum(report.files_skipped.values())
    assert report.files_scanned == report.files_changed + skipped + len(report.failures)
    assert set(report.files_skipped) <= SKIP_REASONS
    assert {f.reason for f in report.failures} <= FAILURE_REASONS, report.failures
    assert report.files_skipped["undecodable_name"] > 0 and report.files_skipped["binary"] > 0
    again = run_sync(tree, memory_store, tiny_encoder, max_file_bytes=MAX_BYTES)
    assert (again.chunks_embedded, again.points_upserted, again.points_deleted) == (0, 0, 0)
