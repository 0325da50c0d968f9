"""Bytes to text: every kind of bad input becomes a skip with its reason, never an exception."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from docsync.worker.read import Document, read_document
from docsync.worker.report import Skip
from docsync.worker.scan import SourceFile

LATIN1 = "Café crème, déjà vu: the naïve façade of a résumé in Zürich and São Paulo.\n" * 5


def read(root: Path, name: str, data: bytes, max_bytes: int = 1000) -> Document | Skip:
    (root / name).write_bytes(data)
    return read_document(SourceFile(root, name), max_bytes=max_bytes)


def test_utf8_with_and_without_bom(tmp_path: Path) -> None:
    plain = read(tmp_path, "a.md", "# Héllo\n\nwörld\n".encode())
    bom = read(tmp_path, "b.md", "\ufeff# Héllo\n\nwörld\n".encode())
    assert isinstance(plain, Document) and isinstance(bom, Document)
    assert plain.text == bom.text == "# Héllo\n\nwörld\n"
    assert plain.file_hash != bom.file_hash  # the hash is of the bytes on disk


def test_latin1_is_decoded_when_detectable(tmp_path: Path) -> None:
    doc = read(tmp_path, "latin.txt", LATIN1.encode("latin-1"))
    assert isinstance(doc, Document)
    assert "Café crème" in doc.text and "Zürich" in doc.text


def test_utf16_with_bom(tmp_path: Path) -> None:
    doc = read(tmp_path, "w.txt", "Hello from Windows.\r\n".encode("utf-16"))
    assert isinstance(doc, Document) and doc.text == "Hello from Windows.\r\n"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary"),
        (b"", "empty"),
        (b"  \n\t\n", "empty"),
        (b"x" * 1001, "too_large"),
        (bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D]) * 3 + b"\xff\xfe\xfd" * 7, "undecodable"),
    ],
)
def test_bad_files_are_skipped_with_reason(tmp_path: Path, data: bytes, reason: str) -> None:
    result = read(tmp_path, "bad.md", data)
    assert isinstance(result, Skip)
    assert result.reason == reason
    assert not result.is_failure


def test_vanished_file(tmp_path: Path) -> None:
    result = read_document(SourceFile(tmp_path, "gone.md"), max_bytes=100)
    assert isinstance(result, Skip) and result.reason == "vanished"


def test_fifo_is_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.md")
    result = read_document(SourceFile(tmp_path, "pipe.md"), max_bytes=100)
    assert isinstance(result, Skip) and result.reason == "not_a_file"


def test_unreadable_file_is_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secret.md").write_text("text")
    real_open = os.open

    def deny(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file).endswith("secret.md"):
            raise PermissionError(13, "Permission denied")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    result = read_document(SourceFile(tmp_path, "secret.md"), max_bytes=100)
    assert isinstance(result, Skip)
    assert result.reason == "unreadable" and result.is_failure


RUSSIAN = (
    "Привет мир, это тест. Сегодня мы поговорим о том, как работает поиск по документам "
    "и почему это важно для пользователей.\n"
) * 3


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Crème brûlée à la française, déjà vu.\n" * 4, "latin-1"),
        ("Grüße aus München, schöne Äpfel.\n", "cp1252"),
        (RUSSIAN, "cp1251"),
        ("Привет мир, это тест.\n", "cp1251"),
        ("Ελληνικά κείμενα για δοκιμή της κωδικοποίησης και της ανίχνευσης.\n" * 3, "cp1253"),
        ("日本語のテキストです。検索のテストをしています。\n" * 3, "shift_jis"),
    ],
)
def test_legacy_encodings_decode_right_or_not_at_all(
    tmp_path: Path, text: str, encoding: str
) -> None:
    result = read(tmp_path, "legacy.txt", text.encode(encoding))
    if isinstance(result, Skip):
        assert result.reason == "undecodable"
    else:
        assert result.text == text
    if encoding in ("latin-1", "cp1252") or text == RUSSIAN:
        assert isinstance(result, Document)
