"""Memory of one large file (issue 11): what Python holds while a big document syncs stays
a small multiple of the document, not hundreds of bytes per token. The whole process's peak
(the tokenizer's and the model's memory too) is measured by bench/memory.py."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from docsync.plugin.encoder import Encoder
from docsync.plugin.stores.edge import EdgeStore
from tests.conftest import CORPUS, run_sync

DOCUMENT_CHARS = 2_000_000


def large_document(path: Path, first_line: str = "") -> int:
    """About 2 MB of the corpus, each copy numbered so that no two chunks are alike."""
    sources = [p.read_text(encoding="utf-8") for p in sorted(CORPUS.rglob("*.rst"))]
    parts, size, copy = [first_line], len(first_line), 0
    while size < DOCUMENT_CHARS:
        for text in sources:
            part = f"Copy {copy}.\n\n" + text.replace("\n\n", f"\n\nIn copy {copy}: ", 50)
            parts.append(part)
            size += len(part)
        copy += 1
    path.write_text("\n\n".join(parts), encoding="utf-8")
    return size


def test_a_large_file_syncs_in_memory_that_does_not_grow_per_token(
    tmp_path: Path, tiny_encoder: Encoder
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    chars = large_document(folder / "big.rst")
    store = EdgeStore(tmp_path / "store", "big")  # its points live outside Python's heap
    tracemalloc.start()
    try:
        report = run_sync(folder, store, tiny_encoder)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        store.close()
    assert report.ok and report.chunks_embedded > 2000
    # Spans as tuples (130 bytes a token, 4 characters a token) and every vector as a list
    # of floats at once (12 KB a chunk) took about 50 bytes per character here; now about 15.
    assert peak < 30 * chars, f"{peak / chars:.0f} bytes per character"


def test_a_large_files_text_is_freed_before_its_points_are_embedded(
    tmp_path: Path, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once chunked, a file's text and token spans are not needed: the chunks hold what is
    embedded and written. One character beyond the BMP makes Python store the text at 4
    bytes a character, so the text alone would be 4 bytes per character of the heap."""
    folder = tmp_path / "docs"
    folder.mkdir()
    chars = large_document(folder / "big.rst", first_line="Snakes \N{SNAKE}\n\n")
    store = EdgeStore(tmp_path / "store", "big")
    heap: list[int] = []
    embed = Encoder.embed_passages

    def measured(self: Encoder, *args: object, **kwargs: object) -> object:
        heap.append(tracemalloc.get_traced_memory()[0])
        return embed(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Encoder, "embed_passages", measured)
    tracemalloc.start()
    try:
        report = run_sync(folder, store, tiny_encoder)
    finally:
        tracemalloc.stop()
        store.close()
    assert report.ok and len(heap) > 2
    # about 6.5 here (chunks, points planned with their neighbours' IDs and tokens, ids: 4.5
    # before points named their neighbours); the text still held would add 4
    assert max(heap) < 8.5 * chars, f"{max(heap) / chars:.1f} bytes per character while embedding"
