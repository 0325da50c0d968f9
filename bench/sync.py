"""End-to-end benchmark: `docsync sync` of a corpus into a fresh embedded store, against a
naive script doing the same job the way one is usually written: for each file, chunk it (with
docsync's chunker, so the work is the same), `encode` the chunks with stock
sentence-transformers (batch 32, fp32), upsert them.

Both start with the model loaded and the store empty; the clock covers reading to written.
A third run syncs the same corpus with a stand-in model that costs next to nothing (hash
vectors, the real tokenizer): `pipeline_chunks_per_s` is what reading, chunking, planning,
lookups and writes allow, the most a sync can reach however fast the device embeds (on a GPU,
compare it with `bench/embed.py`'s chunks/s).

    DOCSYNC_MODEL=/path/to/model python bench/sync.py [--json] [--corpus DIR] [--synthetic N]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # for tests.fakes
from corpus import DEFAULT_CORPUS, SUFFIXES, synthetic_chunks
from output import emit

from docsync.plugin.encoder import Encoder
from docsync.plugin.settings import Settings
from docsync.plugin.store import Point
from docsync.plugin.stores.edge import EdgeStore
from docsync.worker.chunk import chunk_text, clip_title, find_title
from docsync.worker.pipeline import SyncOptions, sync
from tests.fakes import HashModel


def naive(corpus: Path, store: EdgeStore, encoder: Encoder, model: Any) -> int:
    store.open(encoder.profile(), create=True)
    written = 0
    for path in sorted(p for p in corpus.rglob("*") if p.suffix in SUFFIXES):
        text = path.read_text(encoding="utf-8")
        title = clip_title(find_title(text, fallback=path.stem), encoder)
        budget = min(SyncOptions().chunk_tokens, encoder.passage_budget(title))
        chunks = chunk_text(text, tokenizer=encoder, max_tokens=budget)
        inputs = [encoder.passage_input(c.text, title) for c in chunks]
        vectors = model.encode(inputs, batch_size=32, convert_to_numpy=True)
        store.upsert(
            [
                Point(
                    id=str(uuid.uuid4()),
                    vector=v.tolist(),
                    payload={"path": str(path.relative_to(corpus)), "text": c.text},
                )
                for c, v in zip(chunks, vectors, strict=True)
            ]
        )
        written += len(chunks)
    return written


def pipeline_only(corpus: Path, path: Path, encoder: Encoder) -> float:
    """Seconds for `docsync sync` of `corpus` when embedding costs next to nothing."""
    instant = Encoder(
        HashModel(encoder._model.tokenizer, encoder.dimension, encoder.max_tokens),
        name="instant",
        query_prefix=encoder.query_prefix,
        passage_prefix=encoder.passage_prefix,
    )
    instant.embed_passages(["warm up"])
    started = time.perf_counter()
    store = EdgeStore.connect(path=path, collection="bench")
    sync([corpus], store=store, encoder=instant, options=SyncOptions())
    seconds = time.perf_counter() - started
    store.close()
    return seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--synthetic", type=int, metavar="N", help="N generated files instead")
    args = parser.parse_args(argv)
    settings = Settings()
    encoder = Encoder.from_settings(settings)
    from sentence_transformers import SentenceTransformer

    stock = SentenceTransformer(Encoder.source(settings.model), device=encoder.device)
    with tempfile.TemporaryDirectory(prefix="docsync-sync-") as tmp:
        work = Path(tmp)
        corpus = args.corpus
        if args.synthetic:
            corpus = work / "synthetic"
            corpus.mkdir()
            for f in synthetic_chunks(args.synthetic, 30):
                (corpus / Path(f.path).name).write_text("\n\n".join(f.inputs))
        else:
            shutil.copytree(args.corpus, work / "corpus")
            corpus = work / "corpus"
        stock.encode(["warm up"]), encoder.embed_passages(["warm up"])
        started = time.perf_counter()
        ours = EdgeStore.connect(path=work / "docsync", collection="bench")
        report = sync([corpus], store=ours, encoder=encoder, options=SyncOptions())
        docsync_s = time.perf_counter() - started
        points = ours.count()
        ours.close()
        started = time.perf_counter()
        theirs = EdgeStore.connect(path=work / "naive", collection="bench")
        naive_points = naive(corpus, theirs, encoder, stock)
        naive_s = time.perf_counter() - started
        theirs.close()
        pipeline_s = pipeline_only(corpus, work / "pipeline", encoder)
    result = {
        "files": report.files_changed,
        "docsync_points": points,
        "naive_points": naive_points,
        "docsync_seconds": round(docsync_s, 2),
        "naive_seconds": round(naive_s, 2),
        "ratio": round(docsync_s / naive_s, 3),
        "pipeline_seconds": round(pipeline_s, 2),
        "pipeline_chunks_per_s": round(points / pipeline_s),
        "model": encoder.name,
        "device": encoder.device,
        "precision": encoder.precision,
    }
    emit(result, as_json=args.json, cpu=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
