"""Token spans in pieces: exactly the whole text's tokens, in bounded tokenizer calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from docsync.plugin import spans as spans_module
from docsync.plugin.encoder import Encoder
from docsync.plugin.spans import TokenSpans, cuts_at_whitespace, token_spans_many
from tests.conftest import CORPUS

# Where a careless cut would change tokens: long words (WordPiece makes one [UNK] of a word
# over 100 characters), accents, CJK (BERT splits each ideograph), tabs, CR LF, runs of spaces
# and a long stretch without any space or line break.
AWKWARD = (
    "Café naïve résumé\r\n\r\n"
    + "x" * 150
    + " 東京都 の 天気 "
    + "\t".join(["tab"] * 40)
    + "     spaced     out     "
    + "-".join(["dash"] * 200)
    + "\n\n"
    + "end. " * 50
)


def whole(tokenizer: Any, text: str) -> list[tuple[int, int]]:
    return list(tokenizer.encode(text, add_special_tokens=False).offsets)


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of 97 characters, calls of 500: many cuts in every text."""
    monkeypatch.setattr(spans_module, "PIECE_CHARS", 97)
    monkeypatch.setattr(spans_module, "CALL_CHARS", 500)


@pytest.mark.usefixtures("small_pieces")
def test_pieces_give_the_tokens_of_the_whole_text(tiny_encoder: Encoder) -> None:
    tokenizer = tiny_encoder._tokenizer
    assert cuts_at_whitespace(tokenizer)  # BERT's WordPiece
    texts = [p.read_text(encoding="utf-8") for p in sorted(CORPUS.rglob("*.rst"))[:8]]
    texts += [AWKWARD, "", "   ", "oneword"]
    got = token_spans_many(tokenizer, texts, piecewise=True)
    for text, text_spans in zip(texts, got, strict=True):
        assert text_spans == whole(tokenizer, text)


def test_a_long_text_goes_to_the_tokenizer_in_bounded_calls(tiny_encoder: Encoder) -> None:
    """What bounds the tokenizer's memory (600 bytes a token while it holds a text): no call
    is given more than CALL_CHARS characters, however long the document."""
    calls: list[list[str]] = []

    class Recording:
        def encode_batch(self, pieces: list[str], add_special_tokens: bool) -> Any:
            calls.append(pieces)
            return tiny_encoder._tokenizer.encode_batch(
                pieces, add_special_tokens=add_special_tokens
            )

    text = (CORPUS / "howto" / "regex.rst").read_text(encoding="utf-8") * 20  # about 1.3 MB
    got = token_spans_many(Recording(), [text], piecewise=True)[0]
    assert len(calls) > 1
    assert max(sum(map(len, pieces)) for pieces in calls) <= spans_module.CALL_CHARS
    assert max(len(p) for pieces in calls for p in pieces) <= spans_module.PIECE_CHARS
    assert "".join(p for pieces in calls for p in pieces) == text
    assert got == whole(tiny_encoder._tokenizer, text)


def byte_level_tokenizer(tmp_path: Path) -> Tokenizer:
    vocab = {chr(c): i for i, c in enumerate(range(33, 127))} | {"Ġ": 94}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return tokenizer


def test_other_tokenizers_get_whole_texts(tmp_path: Path, tiny_encoder: Encoder) -> None:
    """Byte-level BPE treats runs of spaces by what follows them: a cut could change its
    tokens, so it is never cut."""
    tokenizer = byte_level_tokenizer(tmp_path)
    assert not cuts_at_whitespace(tokenizer)
    config = json.loads(tiny_encoder._tokenizer.to_str())
    config["normalizer"] = {"type": "Replace", "pattern": {"String": "a b"}, "content": "ab"}
    assert not cuts_at_whitespace(Tokenizer.from_str(json.dumps(config)))
    text = "def  f():\n    return   1\n" * 3
    assert token_spans_many(tokenizer, [text], piecewise=False)[0] == whole(tokenizer, text)


def test_spans_read_like_a_list_of_pairs() -> None:
    spans = TokenSpans.of([(0, 3), (4, 9), (9, 10)])
    assert len(spans) == 3 and spans[1] == (4, 9) and spans[-1] == (9, 10)
    assert spans[:2] == [(0, 3), (4, 9)]
    assert list(spans) == [(0, 3), (4, 9), (9, 10)]
    assert spans == [(0, 3), (4, 9), (9, 10)] and spans != [(0, 3)]
    assert TokenSpans.of(spans) is spans
