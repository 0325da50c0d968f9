"""Token spans of texts of any length, in memory that does not grow with the text's size.

The chunker needs the character span of every token of a document. The Rust tokenizer
holds about 600 bytes per token while it encodes one text (the normalized text with an
alignment per byte, each token's string, id and offsets), and a list of `(start, end)`
tuples costs another 130 bytes per token: a 10 MB file (2.5 million tokens) took 1.7 GB.

Here a long text is tokenized in pieces of about `PIECE_CHARS` characters, at most
`CALL_CHARS` characters per tokenizer call, and the spans are kept in two arrays of
32-bit offsets (8 bytes a token). Pieces are cut only at a space or a line break, and only for
tokenizers that split words at whitespace before anything else looks across it (BERT's
WordPiece, as in the seed model and MiniLM): for them, a cut at whitespace gives exactly
the tokens of the whole text. Any other tokenizer (byte-level BPE treats runs of spaces by
what follows them, SentencePiece marks a word's start with the space before it) gets its
text in one call, as before, so its tokens never change.

Hand-written: the `tokenizers` library has no bounded-memory way to get offsets of a long
text, and nothing else computes this model's exact token spans.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np

PIECE_CHARS = 16_384
CALL_CHARS = 262_144
# Pre-tokenizers that split at every whitespace character first, and normalizers that map
# each character on its own: with both, a cut at a space or line break changes no token.
_SPLITS_AT_WHITESPACE = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit"}
_CHARWISE_NORMALIZERS = {"BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD"}
_CHARWISE_NORMALIZERS |= {"StripAccents"}
_WHITESPACE = re.compile(r"[ \n]")


# Offsets are 32-bit: a text of 2**31 characters or more (far above any file size docsync
# can hold in memory) is refused rather than wrapped.
OFFSET_TYPE = "i"
MAX_OFFSET = 2**31 - 1


class TokenSpans(Sequence[tuple[int, int]]):
    """The character spans of a text's tokens, as two arrays of offsets."""

    __slots__ = ("ends", "starts")

    def __init__(self, starts: array[int] | None = None, ends: array[int] | None = None) -> None:
        self.starts: array[int] = array(OFFSET_TYPE) if starts is None else starts
        self.ends: array[int] = array(OFFSET_TYPE) if ends is None else ends

    @classmethod
    def of(cls, spans: Sequence[tuple[int, int]]) -> TokenSpans:
        if isinstance(spans, TokenSpans):
            return spans
        starts = array(OFFSET_TYPE, (s for s, _ in spans))
        return cls(starts, array(OFFSET_TYPE, (e for _, e in spans)))

    def extend(self, offsets: Sequence[tuple[int, int]], shift: int) -> None:
        """Append a piece's token offsets, moved by `shift` characters."""
        if not offsets:
            return
        pairs = np.asarray(offsets, dtype=np.int64).reshape(-1, 2) + shift
        if int(pairs.max()) > MAX_OFFSET:
            raise OverflowError(f"text too long for token offsets: {int(pairs.max())} characters")
        pairs = pairs.astype(np.dtype(OFFSET_TYPE))
        self.starts.frombytes(np.ascontiguousarray(pairs[:, 0]).tobytes())
        self.ends.frombytes(np.ascontiguousarray(pairs[:, 1]).tobytes())

    def __len__(self) -> int:
        return len(self.starts)

    @overload
    def __getitem__(self, index: int) -> tuple[int, int]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[int, int]]: ...

    def __getitem__(self, index: int | slice) -> tuple[int, int] | list[tuple[int, int]]:
        if isinstance(index, slice):
            return list(zip(self.starts[index], self.ends[index], strict=True))
        return self.starts[index], self.ends[index]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self.starts, self.ends, strict=True)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TokenSpans):
            return self.starts == other.starts and self.ends == other.ends
        if isinstance(other, Sequence):
            return len(self) == len(other) and all(
                tuple(a) == tuple(b) for a, b in zip(self, other, strict=True)
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        return f"TokenSpans({len(self)} tokens)"


def cuts_at_whitespace(tokenizer: Any) -> bool:
    """Whether `tokenizer` (a `tokenizers.Tokenizer`) gives a text cut at a space or a line
    break exactly the tokens of the whole text (see the module docstring)."""
    config = json.loads(tokenizer.to_str())
    splits = _types(config.get("pre_tokenizer"))
    maps = _types(config.get("normalizer"))
    return bool(splits) and splits <= _SPLITS_AT_WHITESPACE and maps <= _CHARWISE_NORMALIZERS


def _types(part: dict[str, Any] | None) -> set[str]:
    """The component types of a normalizer or pre-tokenizer, looking into a Sequence."""
    if part is None:
        return set()
    if part.get("type") == "Sequence":
        inner = part.get("normalizers") or part.get("pretokenizers") or []
        return set().union(*(_types(p) for p in inner)) if inner else set()
    return {str(part.get("type"))}


def token_spans_many(tokenizer: Any, texts: Sequence[str], *, piecewise: bool) -> list[TokenSpans]:
    """The spans of each text's tokens (special tokens left out). With `piecewise`, long
    texts go to the tokenizer in pieces cut at whitespace, a bounded amount per call;
    without, each call holds whole texts (up to `CALL_CHARS` of them, or one longer one)."""
    spans = [TokenSpans() for _ in texts]
    call: list[tuple[int, int, str]] = []  # (text index, offset, piece)
    call_chars = 0
    for index, text in enumerate(texts):
        for offset, piece in _pieces(text) if piecewise else [(0, text)]:
            if call and call_chars + len(piece) > CALL_CHARS:
                _encode(tokenizer, call, spans)
                call, call_chars = [], 0
            call.append((index, offset, piece))
            call_chars += len(piece)
    _encode(tokenizer, call, spans)
    return spans


def _encode(tokenizer: Any, call: list[tuple[int, int, str]], spans: list[TokenSpans]) -> None:
    if not call:
        return
    # encode_batch tokenizes the pieces on every core, and without the GIL.
    encodings = tokenizer.encode_batch([piece for _, _, piece in call], add_special_tokens=False)
    for (index, offset, _), encoding in zip(call, encodings, strict=True):
        spans[index].extend(encoding.offsets, offset)


def _pieces(text: str) -> Iterator[tuple[int, str]]:
    """`text` in pieces of about `PIECE_CHARS` characters, each (but the first) starting at a
    space or line break: at the last line break of a piece's second half, else its last
    space, else the first whitespace after it (one word longer than a piece stays whole)."""
    size = PIECE_CHARS
    start = 0
    while len(text) - start > size:
        end = start + size
        cut = text.rfind("\n", start + size // 2, end)
        if cut < 0:
            cut = text.rfind(" ", start + size // 2, end)
        if cut < 0:
            after = _WHITESPACE.search(text, end)
            cut = after.start() if after else len(text)
        if cut <= start:
            break
        yield start, text[start:cut]
        start = cut
    if start < len(text) or not text:
        yield start, text[start:]
