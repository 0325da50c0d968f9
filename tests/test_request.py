"""One query path: a search is a `SearchRequest`, checked once with the same rules and the
same one-line messages whoever asks (`docsync query`, HTTP /search, `Searcher.search`); a
`Searcher` answers it through a local or a daemon backend with the same hits; and a searcher
reads the collection's profile once when it opens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from docsync.plugin.backends import DaemonBackend
from docsync.plugin.choices import SEARCH_MODES
from docsync.plugin.encoder import Encoder
from docsync.plugin.hit import Hit
from docsync.plugin.request import SearchOptions, SearchRequest
from docsync.plugin.search import Searcher, connect, holding
from docsync.plugin.settings import Settings
from docsync.plugin.store import Store
from docsync.plugin.stores.edge import EdgeStore
from docsync.worker.cli import cli
from docsync.worker.serve import Api, Endpoints
from tests.conftest import CORPUS, CliSynced, copy_store, run_sync


class Untouched:
    """A backend a refused request must never reach."""

    via_daemon = False

    @property
    def store(self) -> Store:
        raise AssertionError("the store was used")

    @property
    def encoder(self) -> Encoder:
        raise AssertionError("the model was used")

    def keyword_ready(self) -> bool:
        return True

    def search(self, request: SearchRequest) -> list[Hit]:
        raise AssertionError(f"searched for a refused request: {request}")

    def close(self) -> None:
        pass


def api_for(searcher: Searcher) -> Api:
    return Api(
        searcher=searcher,
        healthy=lambda: True,
        ready=lambda: True,
        metrics=CollectorRegistry(),
        status=lambda: {},
    )


# The same refused request through each client: `docsync query` arguments, the HTTP query,
# `Searcher.search` keywords, and the one line each says.
REFUSED: list[tuple[list[str], str, dict[str, Any], str]] = [
    (
        ["--mode", "fuzzy"],
        "mode=fuzzy",
        {"mode": "fuzzy"},
        "the search mode must be dense, keyword or hybrid, not 'fuzzy'",
    ),
    (
        ["--context", "5000"],
        "context=5000",
        {"context": 5000},
        "context must be between 0 and 4096 tokens",
    ),
    (["--per-file", "0"], "per_file=0", {"per_file": 0}, "per_file must be at least 1"),
    (
        ["--path-prefix", "/etc"],
        "path_prefix=/etc",
        {"path_prefix": "/etc"},
        "the path prefix '/etc' is absolute; it is a path relative to a synced folder, as "
        "hits show it (e.g. 'howto' or 'howto/sockets.rst')",
    ),
    (
        ["--where", "colour=red"],
        "where=colour=red",
        {"filters": {"colour": "red"}},
        "unknown filter key 'colour': use format, path, tags, title or author, or meta.NAME "
        "for another field of the documents' front matter or properties",
    ),
    (
        ["--where", "format=exe"],
        "where=format=exe",
        {"filters": {"format": "exe"}},
        "format must be markdown, rst, text, pdf, html, docx, pptx, odp, xlsx, ods, csv, odt, "
        "epub, eml or image, not 'exe'",
    ),
]


@pytest.mark.parametrize(("args", "query", "keywords", "message"), REFUSED)
def test_the_same_refused_request_says_the_same_line_through_every_client(
    env: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    query: str,
    keywords: dict[str, Any],
    message: str,
) -> None:
    searcher = Searcher.over(Untouched())
    with pytest.raises(ValueError) as refused:
        searcher.search("sockets", **keywords)
    assert str(refused.value) == message
    status, _, body = api_for(searcher).answer(f"/search?q=sockets&{query}")
    assert (status, json.loads(body)) == (400, {"error": message})
    assert cli("query", "sockets", *args) == 2
    out, err = capsys.readouterr()
    assert not out and err.splitlines() == [f"docsync: error: {message}"]
    assert not (env.parent / "store").exists()  # refused before the store was opened


def test_a_limit_out_of_range_is_the_same_line_for_http_and_the_searcher() -> None:
    searcher = Searcher.over(Untouched())
    for limit in (0, 101):
        with pytest.raises(ValueError, match=r"^limit must be between 1 and 100$"):
            searcher.search("sockets", limit=limit)
        status, _, body = api_for(searcher).answer(f"/search?q=sockets&limit={limit}")
        assert (status, json.loads(body)) == (400, {"error": "limit must be between 1 and 100"})


def test_http_parameters_keep_their_own_messages() -> None:
    api = api_for(Searcher.over(Untouched()))
    for query, message in (
        ("", "missing q (the question)"),
        ("q=+", "missing q (the question)"),
        ("q=a&limit=many", "limit must be a number"),
        ("q=a&context=big", "context must be a number"),
        ("q=a&per_file=x", "per_file must be a number"),
        ("q=a&where=format", "a filter is key=value, not 'format' (e.g. format=pdf)"),
        (
            "q=a&limt=3&x=1",
            "unknown parameter limt, x (the search takes context, limit, mode, path_prefix, "
            "per_file, q, where)",
        ),
    ):
        status, _, body = api.answer(f"/search?{query}")
        assert (status, json.loads(body)) == (400, {"error": message}), query


def test_a_request_is_a_frozen_value_that_travels_as_http_parameters() -> None:
    request = SearchRequest.of(
        "How do I open a socket?",
        limit=7,
        path_prefix="howto",
        mode="keyword",
        context=0,
        per_file=2,
        filters={"Format": "rst"},
        where=["path=*.rst", "format=markdown"],
    )
    assert request.filters == {"format": ("rst", "markdown"), "path": ("*.rst",)}
    params = request.to_params()
    single = {k: v for k, v in params.items() if isinstance(v, str)}
    where = params["where"]
    assert isinstance(where, list)
    assert SearchRequest.from_params(single, where) == request
    with pytest.raises(ValueError):  # pydantic's frozen-instance error is a ValueError
        request.limit = 3  # type: ignore[misc]
    bare = SearchRequest.of("sockets")
    assert SearchRequest.from_params(*_split(bare.to_params())) == bare
    defaults = SearchOptions.checked(mode="dense", context=64, per_file=1)
    assert bare.filled(defaults).model_dump() == {
        **bare.model_dump(),
        "mode": "dense",
        "context": 64,
        "per_file": 1,
    }
    assert request.filled(defaults) == request  # what a request says wins


def _split(params: dict[str, str | list[str]]) -> tuple[dict[str, str], list[str]]:
    where = params.get("where", [])
    assert isinstance(where, list)
    return {k: v for k, v in params.items() if isinstance(v, str)}, where


def test_a_pydantic_type_error_is_one_line_too() -> None:
    with pytest.raises(ValueError) as refused:
        SearchRequest.of("sockets", limit="many")  # type: ignore[arg-type]
    assert "\n" not in str(refused.value) and str(refused.value).startswith("limit: ")
    with pytest.raises(ValueError, match=r"^filters are a mapping"):
        SearchOptions.checked(filters=["format=pdf"])  # type: ignore[arg-type]


@pytest.fixture
def served(
    memory_store: Store, tiny_encoder: Encoder, tmp_path: Path
) -> Iterator[tuple[Searcher, Searcher]]:
    """A local searcher, and one through a daemon's socket answered by that local one."""
    run_sync([CORPUS / "howto", CORPUS / "using"], memory_store, tiny_encoder)
    local = Searcher(memory_store, tiny_encoder)
    sock = tmp_path / "daemon.sock"
    endpoints = Endpoints(api_for(local), socket_path=sock, tcp=None)
    try:
        with Searcher.over(DaemonBackend(sock)) as remote:
            yield local, remote
    finally:
        endpoints.close()


def test_a_daemon_backed_and_a_local_searcher_give_the_same_hits(
    served: tuple[Searcher, Searcher],
) -> None:
    local, remote = served
    assert remote.via_daemon and not local.via_daemon
    question = "How do I create a socket and connect it?"
    asked: list[dict[str, Any]] = [
        {},
        *({"mode": mode} for mode in SEARCH_MODES),
        {"limit": 10, "context": 0},
        {"limit": 10, "per_file": 1},
        {"path_prefix": "sockets.rst"},
        {"filters": {"path": "*.rst", "format": "rst"}},
        {"filters": {"format": "pdf"}},
    ]
    for keywords in asked:
        expected = local.search(question, **keywords)
        assert same_hits(remote.search(question, **keywords), expected), keywords
        assert expected or keywords.get("filters") == {"format": "pdf"}, keywords
    with pytest.raises(ValueError, match="unknown filter key"):
        remote.search(question, filters={"colour": "red"})


def same_hits(got: list[Hit], expected: list[Hit]) -> bool:
    """The same passages in the same order, their scores equal but for the last float bits
    (two embeddings of one question on a CPU may differ there, whoever computes them)."""
    scores = [h.score for h in got] == pytest.approx([h.score for h in expected], abs=1e-5)
    return scores and [replace(h, score=0.0) for h in got] == [
        replace(h, score=0.0) for h in expected
    ]


def count_reads(store: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How often the store seam is asked for the collection's profile (one cell, counting)."""
    reads = [0]
    real = store.read_profile

    def counted(*args: Any) -> Any:
        reads[0] += 1
        return real(*args)

    monkeypatch.setattr(store, "read_profile", counted)
    return reads


def test_a_searcher_reads_the_profile_once_per_open(
    memory_store: Store, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_sync(CORPUS / "howto", memory_store, tiny_encoder)
    reads = count_reads(memory_store, monkeypatch)
    searcher = Searcher(memory_store, tiny_encoder)
    for mode in (*SEARCH_MODES, *SEARCH_MODES):
        assert searcher.search("socket", mode=mode)
    assert reads == [1]


def test_connect_reads_the_profile_once_per_open(
    env: Path, tmp_path: Path, cli_synced: CliSynced, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_store(cli_synced.store, tmp_path / "store")  # env's documents, synced
    reads = count_reads(EdgeStore, monkeypatch)  # every store connect opens
    settings = Settings()
    for _ in range(2):
        with connect(settings) as searcher:
            for mode in SEARCH_MODES:
                assert searcher.search("socket", mode=mode)
    assert reads == [2]


def test_the_daemon_searches_with_the_settings_defaults(
    memory_store: Store, tiny_encoder: Encoder, tiny_model_dir: Path
) -> None:
    """HTTP /search and MCP on a daemon default to DOCSYNC_SEARCH_MODE, _CONTEXT_TOKENS and
    _HITS_PER_FILE, as `docsync query` does (the daemon's searcher once took only the mode)."""
    run_sync(CORPUS / "howto", memory_store, tiny_encoder)
    settings = Settings(
        model=str(tiny_model_dir), search_mode="keyword", context_tokens=0, hits_per_file=1
    )
    searcher = holding(settings, memory_store, tiny_encoder)
    assert (searcher.mode, searcher.context, searcher.per_file) == ("keyword", 0, 1)
    hits = searcher.search("socket", limit=10)
    assert hits and len({h.path for h in hits}) == len(hits)
    assert all((h.start, h.end) == (h.match_start, h.match_end) for h in hits)
