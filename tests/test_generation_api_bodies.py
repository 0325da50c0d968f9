"""What the daemon's `/generations` routes answer to bodies no `docsync` command sends (a
client of the socket's own, or a mistake): one 400 with a clear error, before anything is
started, never a 500 or a model loaded from the daemon's working directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import pytest

from docsync.plugin.embedding.runner import StopRequested
from docsync.worker.generation_api import GenerationApi
from docsync.worker.generation_switch import GenerationSwitch
from docsync.worker.loop_calls import LoopCalls


class Untouched:
    """The daemon's next generation, which none of these bodies may reach."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the next generation was asked for {name!r}")


def loop_asked() -> None:
    raise AssertionError("the daemon's loop was asked")


@pytest.fixture
def api(tmp_path: Path) -> GenerationApi:
    nxt = cast(GenerationSwitch, Untouched())
    return GenerationApi(nxt, LoopCalls(wake=loop_asked), [tmp_path], lambda side: None)


QUESTION = {"question": "How do I create a socket?", "path": "howto/sockets.rst"}


@pytest.mark.parametrize(
    ("route", "body", "error"),
    [
        ("/generations/compare", {"questions": [QUESTION], "mode": "nonsense"}, "'mode'"),
        ("/generations/switch", {"questions": [QUESTION], "mode": "semantic"}, "'mode'"),
        ("/generations/reindex", {"model": ""}, "'model'"),
        ("/generations/reindex", {"model": "  "}, "'model'"),
        ("/generations/switch", {"discard": True, "back": True}, "'discard'"),
    ],
)
def test_a_bad_field_is_one_clear_400(
    api: GenerationApi, tmp_path: Path, route: str, body: dict[str, object], error: str
) -> None:
    if route.endswith("reindex"):
        body = {"roots": [str(tmp_path)], **body}
    status, _, data = api.answer("POST", route, json.dumps(body).encode())
    assert status == 400, data
    assert error in json.loads(data)["error"]


def test_a_body_nested_too_deeply_is_a_400(api: GenerationApi) -> None:
    body = b"[" * 100_000 + b"]" * 100_000  # 200 kB: within the body limit
    status, _, data = api.answer("POST", "/generations/switch", body)
    assert status == 400 and "nested" in json.loads(data)["error"]


class Stopping:
    """A next generation whose switch meets the daemon's stop in its catch-up sync."""

    def switch(self, **_: object) -> None:
        raise StopRequested


def test_a_switch_met_by_the_daemons_stop_is_a_503_not_a_500(tmp_path: Path) -> None:
    calls = LoopCalls(wake=lambda: calls.run_pending())  # the loop's turn, at once
    nxt = cast(GenerationSwitch, Stopping())
    api = GenerationApi(nxt, calls, [tmp_path], lambda side: None)
    status, _, data = api.answer("POST", "/generations/switch", b"{}")
    assert status == 503 and "stopping" in json.loads(data)["error"]


def test_reindex_through_a_daemon_sends_a_relative_model_folder_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from docsync.plugin.embedding.loading import model_named

    (tmp_path / "my-model-v2").mkdir()
    monkeypatch.chdir(tmp_path)
    assert model_named("./my-model-v2") == str(tmp_path.resolve() / "my-model-v2")
    assert model_named("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"


def test_the_web_page_names_the_collection_not_the_generation_after_a_switch() -> None:
    from types import SimpleNamespace

    from docsync.plugin.store import Store
    from docsync.worker.web.views import WebViews

    def store(name: str) -> Store:
        return cast(Store, SimpleNamespace(collection=name, description="embedded /x"))

    web = WebViews(store("docsync"), collection="docsync")
    web.store = store("docsync--g2")  # what a switch in the daemon does (`moved`)
    status, about = web.answer("/api/about", {})
    assert status == 200 and cast(dict[str, object], about)["collection"] == "docsync"
