"""Backend trade-off: what each embedding backend costs and gives, against torch fp32.

For torch (fp32 and the `auto` precision), ONNX Runtime fp32 and ONNX Runtime int8, on the
corpus's real chunks: passage throughput, cosine of the vectors to torch fp32, agreement of
each question's 10 nearest chunks with fp32's, and the hit rate of a labelled question set
(is a chunk of the right file first, or among the first 5). Single-question latency too.

    DOCSYNC_MODEL=/path/to/model python bench/backends.py [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import DEFAULT_CORPUS, real_chunks

from docsync.plugin.encoder import Encoder
from docsync.plugin.settings import Settings

LABELLED = {
    "How do I create a socket and connect to a web server?": "howto/sockets.rst",
    "How can I get the annotations dict of an object?": "howto/annotations.rst",
    "How do I install packages just for the current user?": "installing.rst",
    "How can I add optional arguments with argparse?": "howto/argparse.rst",
    "How do I send data to a URL with urllib?": "howto/urllib2.rst",
    "What are windows and pads in curses?": "howto/curses.rst",
    "What macros handle reference counting in C extensions?": "extending/extending.rst",
    "How do I make a regular expression more readable with re.VERBOSE?": "howto/regex.rst",
    "What is a Unicode code point?": "howto/unicode.rst",
    "How do I embed Python in a C application?": "extending/embedding.rst",
    "How do I define an enum with automatic values?": "howto/enum.rst",
    "How does a descriptor's __get__ method work?": "howto/descriptor.rst",
    "How do I port code from Python 2 to Python 3?": "howto/pyporting.rst",
    "How do I create an IPv4 network object?": "howto/ipaddress.rst",
    "How do DTrace and SystemTap probes work in CPython?": "howto/instrumentation.rst",
    "What is a generator expression?": "howto/functional.rst",
    "What is the Python launcher for Windows?": "using/windows.rst",
    "How do I configure the build with link time optimization?": "using/configure.rst",
    "How do I install Python on a Mac?": "using/mac.rst",
    "How do I build a C extension module with setuptools?": "extending/building.rst",
}
VARIANTS = {  # name -> (backend, precision)
    "torch-fp32": ("torch", "fp32"),
    "torch-auto": ("torch", "auto"),
    "onnx-fp32": ("onnx", "fp32"),
    "onnx-int8": ("onnx-int8", "fp32"),
}


def unit(v: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray(v / np.linalg.norm(v, axis=-1, keepdims=True))


def measure(name: str, settings: Settings, inputs: list[str], files: list[str]) -> dict[str, Any]:
    backend, precision = VARIANTS[name]
    encoder = Encoder.load(
        settings.model,
        device="cpu",
        query_prefix=settings.query_prefix,
        passage_prefix=settings.passage_prefix,
        precision=precision,
        backend=backend,
    )
    started = time.perf_counter()
    passages = unit(encoder.embed_passages(inputs))
    seconds = time.perf_counter() - started
    questions = list(LABELLED)
    queries = unit(np.stack([encoder.embed_query(q) for q in questions]))
    latency = []
    for _ in range(5):
        for q in questions:
            t0 = time.perf_counter()
            encoder.embed_query(q)
            latency.append((time.perf_counter() - t0) * 1000)
    ranked = np.argsort(-(queries @ passages.T), axis=1)
    first = [files[row[0]] == LABELLED[q] for q, row in zip(questions, ranked, strict=True)]
    top5 = [
        LABELLED[q] in {files[i] for i in row[:5]} for q, row in zip(questions, ranked, strict=True)
    ]
    return {
        "precision": encoder.precision,
        "tokens_per_s": round(encoder.tokens(inputs) / seconds),
        "query_p50_ms": round(statistics.median(latency), 2),
        "hit_at_1": round(sum(first) / len(first), 3),
        "hit_at_5": round(sum(top5) / len(top5), 3),
        "_passages": passages,
        "_ranked": ranked,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    settings = Settings()
    probe = Encoder.load(settings.model, device="cpu", precision="fp32")
    chunks = real_chunks(probe, DEFAULT_CORPUS)
    inputs = [text for f in chunks for text in f.inputs]
    files = [f.path for f in chunks for _ in f.inputs]
    results = {name: measure(name, settings, inputs, files) for name in VARIANTS}
    base = results["torch-fp32"]
    for r in results.values():
        cosines = np.sum(r["_passages"] * base["_passages"], axis=1)
        r["cosine_mean"] = round(float(cosines.mean()), 5)
        r["cosine_min"] = round(float(cosines.min()), 5)
        agree = [
            len(set(a[:10]) & set(b[:10])) / 10
            for a, b in zip(r["_ranked"], base["_ranked"], strict=True)
        ]
        r["top10_agreement"] = round(float(np.mean(agree)), 3)
        r["speedup"] = round(r["tokens_per_s"] / base["tokens_per_s"], 2)
    table = {
        name: {k: v for k, v in r.items() if not k.startswith("_")} for name, r in results.items()
    }
    if args.json:
        print(json.dumps({"chunks": len(inputs), "questions": len(LABELLED), "variants": table}))
        return 0
    print(
        f"{len(inputs)} chunks, {len(LABELLED)} labelled questions; cosine and top-10 vs torch-fp32"
    )
    columns = [
        "precision",
        "tokens_per_s",
        "speedup",
        "cosine_mean",
        "cosine_min",
        "top10_agreement",
        "hit_at_1",
        "hit_at_5",
        "query_p50_ms",
    ]
    print("variant     " + " ".join(f"{c:>15}" for c in columns))
    for name, row in table.items():
        print(f"{name:<11} " + " ".join(f"{row[c]!s:>15}" for c in columns))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
