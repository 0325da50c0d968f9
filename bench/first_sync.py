"""Where a first `docsync sync`'s CPU goes, stage by stage: what `worker.wiring.sync_once`
does, in this process, with the CPU seconds (user + sys, children included) of each stage.

- imports: docsync's modules, up to the encoder;
- encoder: the lazy encoder made from the model's card (card made already);
- card: with an empty cache, the card written (the model's load apart);
- model_load: importing torch and loading the model;
- embed: the process's CPU while passages were embedded (the forward pass, and whatever the
  planning and writing threads did meanwhile);
- sync_rest: the rest of the sync: reading, chunking, planning, keyword vectors, writes;
- release, index: the model let go, and the store's index built (its child's CPU counted).

    DOCSYNC_MODEL=... python bench/first_sync.py [--json] [--corpus DIR] [--empty-cache]

Run it on a fresh store (a temporary folder) each time; `--empty-cache` makes the model
card in the run, as a user's very first sync does.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from output import emit

DEFAULT_CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpus" / "python-docs"


def cpu() -> float:
    """CPU seconds of this process and the children it waited for."""
    own, kids = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Stages:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = cpu()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + cpu() - started

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with self.stage(name):
                return fn(*args, **kwargs)

        return wrapped


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--empty-cache", action="store_true", help="make the model card too")
    args = parser.parse_args(argv)
    stages, wall = Stages(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="docsync-first-") as scratch:
        result = first_sync(stages, args.corpus.resolve(), Path(scratch), args.empty_cache)
    total = sum(stages.seconds.values())
    result.update({f"{k}_cpu_s": round(v, 2) for k, v in stages.seconds.items()})
    result.update(total_cpu_s=round(total, 2), wall_s=round(time.perf_counter() - wall, 1))
    result["cpu_s_per_chunk"] = round(total / max(1, result["chunks"]), 4)
    emit(result, as_json=args.json)
    return 0


def first_sync(stages: Stages, corpus: Path, scratch: Path, empty_cache: bool) -> dict[str, Any]:
    with stages.stage("imports"):
        from docsync.plugin import encoder as encoder_module
        from docsync.plugin.encoder import Encoder
        from docsync.plugin.settings import Settings
        from docsync.worker import wiring
        from docsync.worker.pipeline import sync
        from docsync.worker.progress import progress_bar
    cache = scratch / "cache" if empty_cache else None
    settings = Settings(qdrant_path=scratch / "store")
    if cache is not None:
        settings = settings.model_copy(update={"cache": cache})
    encoder_module.load_model = stages.wrap("model_load", encoder_module.load_model)  # type: ignore[attr-defined]
    Encoder.embed_passages = stages.wrap("embed", Encoder.embed_passages)  # type: ignore[method-assign]
    with wiring.checked_store(settings) as store:
        with stages.stage("encoder"):
            encoder = wiring.load_encoder(settings)
        with stages.stage("sync_all"), progress_bar(False) as progress:
            report = sync([corpus], store=store, encoder=encoder, progress=progress)
        del encoder
        with stages.stage("release"):
            wiring.release_memory()
        with stages.stage("index"):
            store.optimize()
    seconds = stages.seconds
    seconds["sync_rest"] = seconds.pop("sync_all") - seconds.get("embed", 0.0)
    if empty_cache:  # the model was loaded, and its card written, as the encoder was made
        seconds["card"] = seconds.pop("encoder") - seconds.get("model_load", 0.0)
    else:  # the model was loaded inside the sync
        seconds["sync_rest"] -= seconds.get("model_load", 0.0)
    return {"chunks": report.chunks_embedded, "card_made_in_run": empty_cache}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
