"""What `docsync reindex`, `docsync switch` and `docsync eval --compare` run on, built from the
settings (`docsync.plugin.generations`): the one-shot reindex with its progress bar, and a
searcher on one generation with the model its profile names."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from docsync.plugin.backends import LocalBackend, ViewBackend
from docsync.plugin.evaluate import DEPTH, Question, Scores, score
from docsync.plugin.generations import GenerationError, Generations
from docsync.plugin.hit import Hit
from docsync.plugin.search import Searcher, fusion, profile_loader, searcher_over
from docsync.plugin.settings import Settings
from docsync.worker import wiring
from docsync.worker.next_generation import Side
from docsync.worker.reindex import Reindexed, reindex


def reindex_once(settings: Settings, roots: list[Path]) -> Reindexed:
    """`docsync reindex`: the next generation built (or its build gone on with) from `roots`
    with the settings' model and chunker; the live one is only read."""
    from docsync.worker.progress import progress_bar

    options = wiring.sync_options(settings, allow_empty=False, mass_delete=False)
    with wiring.checked_store(settings) as live:
        encoder = wiring.load_encoder(settings)
        with progress_bar(interval=settings.progress_seconds) as progress:
            return reindex(roots, live=live, encoder=encoder, options=options, progress=progress)


@contextmanager
def generation_searcher(settings: Settings, gens: Generations, name: str) -> Iterator[Searcher]:
    """A searcher on generation `name` alone, with the model its profile names."""
    store = gens.store(name)
    try:
        stored = store.read_profile()
        if stored is None:
            raise GenerationError(f"generation {name!r} has no embedding profile")
        load = profile_loader(settings, wiring.load_encoder)
        backend = LocalBackend(store, load(stored), stored, fusion=fusion(settings), load=load)
    except BaseException:
        store.close()
        raise
    with searcher_over(backend, settings) as searcher:
        yield searcher


def compare(
    settings: Settings, gens: Generations, questions: list[Question], modes: Sequence[str]
) -> dict[str, Scores]:
    """Each mode's scores on the live generation and on the other one, rows named
    `<mode> live <name>` and `<mode> next <name>` (or `previous`)."""
    lineup = gens.lineup()
    if lineup.live is None or lineup.other is None:
        raise GenerationError(
            f"collection {gens.collection!r} has no generation beside the live one to compare "
            "with: `docsync reindex DIR` builds one"
        )
    side = "previous" if lineup.other.state == "previous" else "next"
    with ExitStack() as stack:
        pairs = [
            (
                "live",
                lineup.live,
                stack.enter_context(generation_searcher(settings, gens, lineup.live)),
            ),
            (
                side,
                lineup.other.name,
                stack.enter_context(generation_searcher(settings, gens, lineup.other.name)),
            ),
        ]
        return scored(pairs, questions, modes)


def compare_sides(
    settings: Settings,
    live: Side,
    other: Side,
    label: str,
    questions: list[Question],
    modes: Sequence[str],
) -> dict[str, Scores]:
    """`compare` in a daemon, on the two generations it holds open (`label`: next or
    previous, for the other)."""
    pairs = [
        ("live", live.name, _over(settings, live)),
        (label, other.name, _over(settings, other)),
    ]
    return scored(pairs, questions, modes)


def _over(settings: Settings, side: Side) -> Searcher:
    return searcher_over(ViewBackend(side.store, side.encoder, fusion=fusion(settings)), settings)


def scored(
    pairs: Sequence[tuple[str, str, Searcher]], questions: list[Question], modes: Sequence[str]
) -> dict[str, Scores]:
    """Each mode's scores on each (label, generation, searcher)."""
    rows: dict[str, Scores] = {}
    for mode in modes:
        for label, name, searcher in pairs:
            model = searcher.encoder.name
            rows[f"{mode} {label} {name} ({model})"] = score(questions, _searching(searcher, mode))
    return rows


def _searching(searcher: Searcher, mode: str) -> Callable[[str], list[Hit]]:
    def search(question: str) -> list[Hit]:
        return searcher.search(question, limit=DEPTH, mode=mode)

    return search


def hit_at_5(rows: dict[str, Scores], label: str) -> float:
    return next(s.hit_at_5 for name, s in rows.items() if name.split()[1] == label)
