"""Settings come from DOCSYNC_* variables and .env, with the documented defaults."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from docsync.plugin.choices import one_of
from docsync.plugin.settings import CHOICES, DEFAULT_MODEL, DEFAULT_QUERY_PREFIX, Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("DOCSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    s = Settings()
    assert s.model == DEFAULT_MODEL == "srinivasanAI/bge-small-my-qna-model"
    assert s.query_prefix == DEFAULT_QUERY_PREFIX
    assert s.passage_prefix == ""
    assert s.device == "auto"
    assert s.qdrant_url is None and s.qdrant_path == Path(".docsync/qdrant")
    assert s.collection == "docsync"
    assert "*.md" in s.include and "*.rst" in s.include and "*.txt" in s.include
    assert ".*" in s.exclude
    assert 150 <= s.chunk_tokens <= 512


def test_environment_and_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSYNC_INCLUDE", "*.md, notes/*.txt")
    monkeypatch.setenv("DOCSYNC_EXCLUDE", '["drafts", ".*"]')
    monkeypatch.setenv("DOCSYNC_QUERY_PREFIX", "")
    monkeypatch.setenv("DOCSYNC_DEVICE", "CUDA:1")
    monkeypatch.setenv("DOCSYNC_QDRANT_URL", "")
    s = Settings()
    assert s.include == ["*.md", "notes/*.txt"]
    assert s.exclude == ["drafts", ".*"]
    assert s.query_prefix == ""
    assert s.device == "cuda:1"
    assert s.qdrant_url is None


def test_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DOCSYNC_COLLECTION=notes\nDOCSYNC_QDRANT_API_KEY=s3cret\n")
    s = Settings()
    assert s.collection == "notes"
    assert s.qdrant_api_key is not None and s.qdrant_api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s) and "s3cret" not in str(s.model_dump())


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSYNC_COLLECTION", "from-env")
    assert Settings(collection="from-flag").collection == "from-flag"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DOCSYNC_DEVICE", "gpu"),
        ("DOCSYNC_CHUNK_TOKENS", "5"),
        ("DOCSYNC_BATCH_SIZE", "0"),
        ("DOCSYNC_INCLUDE", ""),
        ("DOCSYNC_INCLUDE", ",, ,"),
        ("DOCSYNC_INCLUDE", "[]"),
        ("DOCSYNC_INCLUDE", '["*.md"'),
        ("DOCSYNC_COLLECTION", "../../../escaped"),
        ("DOCSYNC_COLLECTION", ".."),
        ("DOCSYNC_COLLECTION", "."),
        ("DOCSYNC_COLLECTION", "a/b"),
        ("DOCSYNC_COLLECTION", "a\\b"),
        ("DOCSYNC_COLLECTION", "notes:v2"),
        ("DOCSYNC_COLLECTION", "x" * 256),
        ("DOCSYNC_COLLECTION", "é" * 128),  # 256 bytes: too long for a folder's name
        ("DOCSYNC_QDRANT_URL", "ftp://example"),
        ("DOCSYNC_QDRANT_URL", "http://[bad"),
        ("DOCSYNC_QDRANT_URL", "http://:6333"),
        ("DOCSYNC_QDRANT_URL", "http://qdrant:99999"),
        ("DOCSYNC_QDRANT_URL", "file:///tmp/qdrant"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_the_docs_list_every_setting() -> None:
    """docs/configuration.md's settings table and the Settings class name the same variables."""
    page = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    readme = page.read_text(encoding="utf-8")
    table = set(re.findall(r"^\| `(DOCSYNC_[A-Z_]+)`", readme, re.MULTILINE))
    assert table == {f"DOCSYNC_{name.upper()}" for name in Settings.model_fields}


@pytest.mark.parametrize("name", ["docsync", "my-docs_v2", "notes.2024", "x" * 255, "é" * 127])
def test_collection_names_qdrant_accepts(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("DOCSYNC_COLLECTION", name)
    assert Settings().collection == name


@pytest.mark.parametrize(
    "url", ["http://localhost:6333", "https://user:pw@qdrant.example:443/", "qdrant:6333"]
)
def test_server_urls_qdrant_client_accepts(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("DOCSYNC_QDRANT_URL", f"  {url} ")
    assert Settings().qdrant_url == url


def test_a_bad_url_is_refused_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSYNC_QDRANT_URL", "ftp://admin:s3cret@example")
    with pytest.raises(ValidationError) as refused:
        Settings()
    message = refused.value.errors()[0]["msg"]  # what the CLI prints
    assert "http or https" in message and "s3cret" not in message


@pytest.mark.parametrize("field", CHOICES)
def test_a_fixed_choice_is_a_literal_refused_in_one_line(
    field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = get_args(Settings.model_fields[field].annotation)
    assert names and all(isinstance(name, str) for name in names)  # a Literal of names
    monkeypatch.setenv(f"DOCSYNC_{field.upper()}", f" {names[-1].upper()} ")
    assert getattr(Settings(), field) == names[-1]  # case and spaces forgiven
    monkeypatch.setenv(f"DOCSYNC_{field.upper()}", "bogus")
    with pytest.raises(ValidationError) as refused:
        Settings()
    (error,) = refused.value.errors()
    assert error["msg"] == f"Value error, must be {one_of(names)}"
