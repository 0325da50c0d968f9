"""Where applications and agents meet the collection: `docsync mcp` through the official MCP
SDK's client over stdio, the LangChain and LlamaIndex retrievers, and `read` that serves only
indexed files. Each route's top hit is `docsync query`'s."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from docsync.plugin.encoder import Encoder
from docsync.plugin.search import Searcher
from docsync.plugin.settings import Settings
from docsync.plugin.stored_text import MAX_READ_CHARS, read_stored
from docsync.plugin.stores.edge import EdgeStore
from docsync.worker.mcp_server import Collection
from tests.conftest import HANG, CliSynced, copy_store, run_sync
from tests.test_cli import run
from tests.test_serve import make_api, serving

QUESTION = "How do I create a socket and connect to a web server?"


@pytest.fixture
def synced(
    env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cli_synced: CliSynced
) -> Path:
    """The CLI's settings (`env`), told what the collection holds, its documents synced: a
    copy of the session's store; answers the folder its points' root names (the tests
    only read it)."""
    monkeypatch.setenv("DOCSYNC_MCP_DESCRIPTION", "the Python HOWTOs")
    copy_store(cli_synced.store, tmp_path / "store")
    return cli_synced.docs


def query_top(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, err = run(capsys, "query", "--json", QUESTION)
    assert code == 0, err
    return json.loads(out)[0]  # type: ignore[no-any-return]


def place(hit: dict[str, Any]) -> tuple[str, int, int]:
    return hit["path"], hit["start"], hit["end"]


async def mcp_session(calls: list[tuple[str, dict[str, Any]]]) -> tuple[Any, list[Any]]:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "docsync.worker.cli", "mcp"],
        env=dict(os.environ),
        cwd=os.getcwd(),
    )
    async with Client(params) as client:
        tools = (await client.list_tools()).tools
        results = [await client.call_tool(name, arguments) for name, arguments in calls]
    return tools, results


def test_an_agent_searches_reads_and_asks_status_over_stdio(
    synced: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    top = query_top(capsys)
    calls = [
        ("search", {"question": QUESTION, "limit": 5}),
        ("read", {"path": top["path"], "start": top["start"], "end": top["end"]}),
        ("read", {"path": "/etc/passwd"}),
        ("read", {"path": "../../../etc/passwd"}),
        ("read", {"path": str(synced / "sockets.rst")}),  # on disk, but not as hits name it
        ("status", {}),
    ]
    tools, results = anyio.run(mcp_session, calls)
    assert {tool.name for tool in tools} == {"search", "read", "status"}
    assert all("the Python HOWTOs" in (tool.description or "") for tool in tools)

    search, read, passwd, climbing, absolute, status = results
    assert not search.is_error
    hits = search.structured_content["hits"]
    assert place(hits[0]) == place(top)  # the same top hit as `docsync query`
    text = search.content[0].text
    assert text.startswith(f"[1] {top['path']}") and f"characters {top['start']}-" in text

    assert not read.is_error and read.structured_content["text"] == top["text"]
    for refused in (passwd, climbing, absolute):
        assert refused.is_error
        assert "no indexed file" in refused.content[0].text
        assert "root:" not in refused.content[0].text

    assert not status.is_error and status.structured_content["files"] == 3


def test_read_is_bounded_and_says_where_to_go_on(synced: Path) -> None:
    store = EdgeStore.connect(path=Path("store"), collection="docsync", reading=True)
    try:
        whole = read_stored(store, "sockets.rst", start=0, end=10**9)
        assert len(whole.text) == min(MAX_READ_CHARS, whole.length) and whole.start == 0
        source = (synced / "sockets.rst").read_text()
        assert whole.text == source[: whole.end]  # the file's own text, offsets and all
        tail = read_stored(store, "sockets.rst", start=whole.length - 50)
        assert tail.text == source[whole.length - 50 : whole.length]
        with pytest.raises(ValueError):
            read_stored(store, "sockets.rst", start=10, end=5)
    finally:
        store.close()


def test_calls_go_through_the_daemon_that_holds_the_store(synced: Path) -> None:
    settings = Settings()
    store = EdgeStore.connect(path=settings.qdrant_path, collection=settings.collection)
    searcher = Searcher(store, Encoder.from_settings(settings))
    collection = Collection(settings)
    try:
        status = {"collection": "docsync", "daemon": {"pending_changes": 2}}
        api = make_api(searcher, status=lambda: status)
        with serving(api, socket_path=settings.qdrant_path / "daemon.sock"):
            hits = collection.search(QUESTION, limit=1)
            text = collection.read(hits[0].path, hits[0].start, hits[0].end)
            assert collection.status()["daemon"]["pending_changes"] == 2
            with pytest.raises(LookupError, match="no indexed file"):
                collection.read("/etc/passwd")
    finally:
        store.close()
    assert text.text == hits[0].text


def test_the_retrievers_return_the_query_s_top_hit_with_its_fields(
    synced: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from docsync.plugin.frameworks.langchain import DocsyncRetriever as LangChainRetriever
    from docsync.plugin.frameworks.llamaindex import DocsyncRetriever as LlamaIndexRetriever

    top = query_top(capsys)
    chain = LangChainRetriever.from_settings(k=5)  # as the query: fused scores depend on k
    try:
        documents = chain.invoke(QUESTION)
    finally:
        chain.searcher.close()
    assert documents[0].page_content == top["text"]
    meta = documents[0].metadata
    assert (meta["path"], meta["start"], meta["end"]) == place(top)
    assert meta["score"] == pytest.approx(top["score"]) and meta["section"] == top["section"]

    index = LlamaIndexRetriever.from_settings(k=5)
    try:
        nodes = index.retrieve(QUESTION)
    finally:
        index.searcher.close()
    node = nodes[0]
    assert node.node.get_content() == top["text"]
    assert (node.node.metadata["path"], node.node.metadata["start"]) == place(top)[:2]
    assert node.score == pytest.approx(top["score"])
    from llama_index.core.schema import MetadataMode

    shown = node.node.get_content(metadata_mode=MetadataMode.LLM)
    assert f"path: {top['path']}" in shown and "match_start" not in shown


@pytest.mark.parametrize("framework", ["langchain", "llamaindex"])
def test_a_retriever_takes_the_readme_s_filters_and_lets_the_store_go_when_refused(
    synced: Path, framework: str
) -> None:
    """`from_settings(k=3, filters={"format": "pdf"})`, the README's form, was refused by
    LangChain's retriever, and the searcher it had opened kept the embedded store: the next
    retriever in the process found it locked."""
    import importlib

    retriever_class = importlib.import_module(
        f"docsync.plugin.frameworks.{framework}"
    ).DocsyncRetriever
    for refused in ({"filters": {"colour": "red"}}, {"k": 0}, {"mode": "fuzzy"}):
        with pytest.raises(ValueError):  # pydantic's ValidationError is one too
            retriever_class.from_settings(**refused)
    retriever = retriever_class.from_settings(k=3, filters={"format": "rst"})
    try:
        found = (
            [d.metadata for d in retriever.invoke(QUESTION)]
            if framework == "langchain"
            else [n.node.metadata for n in retriever.retrieve(QUESTION)]
        )
        assert retriever.filters == {"format": ["rst"]}
    finally:
        retriever.searcher.close()
    assert len(found) == 3 and {hit["format"] for hit in found} == {"rst"}
    empty = retriever_class.from_settings(k=3, filters={"format": "pdf"})
    try:
        assert (empty.invoke if framework == "langchain" else empty.retrieve)(QUESTION) == []
    finally:
        empty.searcher.close()


def test_the_frameworks_are_imported_only_by_their_modules() -> None:
    import subprocess

    code = (
        "import sys, docsync, docsync.plugin.frameworks, docsync.worker.cli; "
        "print(sorted(m for m in ('langchain_core', 'llama_index', 'mcp') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


async def mcp_over_http(url: str) -> tuple[Any, Any]:
    from mcp import Client

    async with Client(url) as client:
        tools = (await client.list_tools()).tools
        result = await client.call_tool("search", {"question": QUESTION, "limit": 5})
    return tools, result


def test_mcp_over_http_logs_no_line_a_request(
    caplog: pytest.LogCaptureFixture, memory_store: Any, tiny_encoder: Encoder, tmp_path: Path
) -> None:
    import http.client

    from docsync.worker.mcp_server import build_server

    sdk_log = "mcp.server.streamable_http"
    caplog.set_level(logging.INFO)
    logging.getLogger(sdk_log).setLevel(logging.NOTSET)  # as a fresh process has it
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    (tmp_path / "a.md").write_text("# A\n\nOne passage.\n")
    run_sync(tmp_path, memory_store, tiny_encoder)
    api = make_api(Searcher(memory_store, tiny_encoder))
    api.mcp = build_server(settings, Collection(settings, status=dict))
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    answers = []
    with serving(api) as (_, port):
        for _ in range(3):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG)
            connection.request("POST", "/mcp", body=request, headers=headers)
            response = connection.getresponse()
            answers.append((response.status, response.read()))
            connection.close()
    assert [status for status, _ in answers] == [200] * 3
    assert {tool["name"] for tool in json.loads(answers[0][1])["result"]["tools"]} == {
        "search",
        "read",
        "status",
    }
    said = [r.getMessage() for r in caplog.records if r.name == sdk_log]
    assert said == []  # was "Terminating session: None" at INFO for every request
    assert [r.getMessage() for r in caplog.records if r.name.startswith("uvicorn")] == []


def test_the_daemon_serves_mcp_over_streamable_http(
    synced: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import http.client

    from docsync.worker.mcp_server import build_server

    top = query_top(capsys)
    settings = Settings()
    store = EdgeStore.connect(path=settings.qdrant_path, collection=settings.collection)
    # Questions embedded as `docsync query` embeds them (the card's export): the tiny random
    # model's hybrid ranking has near ties that bf16 rounding can reorder.
    searcher = Searcher(store, Encoder.from_settings(settings, lazy=True))
    status = {"collection": "docsync"}
    api = make_api(searcher)
    api.mcp = build_server(settings, Collection(settings, searcher=searcher, status=lambda: status))
    try:
        with serving(api) as (_, port):
            tools, result = anyio.run(mcp_over_http, f"http://127.0.0.1:{port}/mcp")
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG)
            try:
                connection.request("GET", "/mcp", headers={"Accept": "text/event-stream"})
                refused = connection.getresponse().status
            finally:
                connection.close()
        with serving(api, token="s3cret") as (_, port):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG)
            try:
                connection.request("POST", "/mcp", body=b"{}", headers={"Host": "localhost"})
                unauthorised = connection.getresponse().status
            finally:
                connection.close()
    finally:
        store.close()
    assert {tool.name for tool in tools} == {"search", "read", "status"}
    assert not result.is_error and place(result.structured_content["hits"][0]) == place(top)
    assert refused == 405  # stateless: no stream to GET
    assert unauthorised == 401  # the endpoint's token guards /mcp as every other route
