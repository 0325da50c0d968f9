"""Memory of one large file (issue 11): what Python holds while a big document syncs stays
a small multiple of the document, not hundreds of bytes per token. The whole process's peak
(the tokenizer's and the model's memory too) is measured by bench/memory.py."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from plugin.edge_store import EdgeStore
from plugin.encoder import Encoder
from tests.conftest import CORPUS, run_sync

DOCUMENT_CHARS = 2_000_000


def large_document(path: Path) -> int:
    """About 2 MB of the corpus, each copy numbered so that no two chunks are alike."""
    sources = [p.read_text(encoding="utf-8") for p in sorted(CORPUS.rglob("*.rst"))]
    parts, size, copy = [], 0, 0
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
