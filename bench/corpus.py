"""Benchmark corpora: docsync's own chunks of real documents, or generated text."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from docsync.plugin.encoder import Encoder
from docsync.worker.chunk import chunk_text, clip_title, find_title

DEFAULT_CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpus" / "python-docs"
SUFFIXES = {".md", ".markdown", ".rst", ".txt"}


@dataclass(frozen=True)
class FileChunks:
    path: str
    inputs: list[str]  # what the model reads: title, blank line, passage


def real_chunks(encoder: Encoder, corpus: Path = DEFAULT_CORPUS) -> list[FileChunks]:
    """Each document cut by docsync's chunker, as passage inputs, file by file."""
    files = []
    for path in sorted(p for p in corpus.rglob("*") if p.suffix in SUFFIXES and p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace")
        title = clip_title(find_title(text, fallback=path.stem), encoder)
        budget = min(256, encoder.passage_budget(title))
        chunks = chunk_text(text, tokenizer=encoder, max_tokens=budget)
        inputs = [encoder.passage_input(c.text, title) for c in chunks]
        if inputs:
            files.append(FileChunks(str(path.relative_to(corpus)), inputs))
    return files


def synthetic_chunks(files: int, per_file: int, seed: int = 0) -> list[FileChunks]:
    """Generated English-like passages with lengths spread like real chunks (20-240 words)."""
    rng = random.Random(seed)
    words = [
        "socket",
        "server",
        "client",
        "data",
        "request",
        "module",
        "function",
        "value",
        "return",
        "object",
        "type",
        "list",
        "string",
        "file",
        "path",
        "error",
        "system",
        "python",
        "language",
        "program",
        "network",
        "thread",
        "process",
        "memory",
        "buffer",
        "index",
        "query",
        "vector",
        "search",
        "result",
        "document",
        "section",
        "example",
        "option",
    ]
    out = []
    for f in range(files):
        inputs = []
        for _ in range(per_file):
            n = int(min(240, max(20, rng.gauss(110, 50))))
            inputs.append(f"Document {f}\n\n" + " ".join(rng.choice(words) for _ in range(n)))
        out.append(FileChunks(f"synthetic/{f}.md", inputs))
    return out


def take(files: list[FileChunks], limit: int | None) -> list[FileChunks]:
    """Whole files, in order, until at least `limit` chunks (all when None)."""
    if limit is None:
        return files
    kept, count = [], 0
    for f in files:
        if count >= limit:
            break
        kept.append(f)
        count += len(f.inputs)
    return kept
