"""The chunker's invariants, asserted over the real corpus with the model's real tokenizer."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from docsync.plugin.encoder import Encoder
from docsync.worker.chunk import Chunk, chunk_text, clip_title, find_title
from tests.conftest import CORPUS

DOCUMENTS = sorted(CORPUS.rglob("*.rst"))
INSERTED = (
    "This paragraph was inserted by an editor. It talks about something new that the "
    "document did not cover before, so its chunk must be embedded again."
)


def chunks_of(text: str, encoder: Encoder, limit: int = 256) -> list[Chunk]:
    return chunk_text(text, tokenizer=encoder, max_tokens=limit)


def test_corpus_is_there() -> None:
    assert len(DOCUMENTS) >= 20


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_offsets_size_and_coverage(path: Path, tiny_encoder: Encoder) -> None:
    text = path.read_text(encoding="utf-8")
    title = find_title(text, fallback=path.stem)
    limit = min(256, tiny_encoder.passage_budget(title))
    chunks = chunks_of(text, tiny_encoder, limit)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.text == chunk.text.strip()
        assert tiny_encoder.count_tokens(chunk.text) <= limit
        # the whole model input fits: special tokens + prefix + title + passage
        model_input = tiny_encoder.passage_input(chunk.text, title)
        assert tiny_encoder.count_tokens(model_input) + 2 <= tiny_encoder.max_tokens
    assert all(a.end <= b.start for a, b in itertools.pairwise(chunks))
    # nothing but whitespace falls between chunks
    assert (
        "".join(c.text for c in chunks).split()
        == "".join(text[a.start : a.end] for a in chunks).split()
    )
    assert re.sub(r"\s", "", "".join(c.text for c in chunks)) == re.sub(r"\s", "", text)
    # each chunk's gap is the whitespace before it: together they give back the text
    ends = [0, *(c.end for c in chunks)][:-1]
    assert all(c.gap == text[e : c.start] for e, c in zip(ends, chunks, strict=True))
    assert "".join(c.gap + c.text for c in chunks) == text.rstrip()


def test_sizes_are_close_to_training_passages(tiny_encoder: Encoder) -> None:
    sizes = [
        c.tokens for p in DOCUMENTS for c in chunks_of(p.read_text(encoding="utf-8"), tiny_encoder)
    ]
    mean = sum(sizes) / len(sizes)
    assert 100 <= mean <= 250, mean
    assert max(sizes) <= 256


def test_headings_start_chunks(tiny_encoder: Encoder) -> None:
    text = (CORPUS / "howto" / "sockets.rst").read_text(encoding="utf-8")
    chunks = chunks_of(text, tiny_encoder)
    for heading in ("Creating a Socket", "Using a Socket", "Disconnecting", "Non-blocking Sockets"):
        (owner,) = [c for c in chunks if heading + "\n" in c.text]
        assert owner.text.startswith(heading), owner.text[:80]


def test_markdown_headings_and_fences(tiny_encoder: Encoder) -> None:
    body = "This section explains one thing in enough words to stand on its own as a chunk."
    text = (
        f"# Guide\n\n{body}\n\n## Install\n\n{body}\n\n```sh\n# not a heading\npip x\n```\n\n"
        f"Setext heading\n--------------\n\n{body}\n"
    )
    chunks = chunks_of(text, tiny_encoder)
    starts = [c.text.split("\n")[0] for c in chunks]
    assert starts == ["# Guide", "## Install", "Setext heading"]
    assert find_title(text, "fallback") == "Guide"


def test_a_fence_closes_only_on_its_own_kind_so_comments_in_code_are_not_headings(
    tiny_encoder: Encoder,
) -> None:
    body = "This section explains one thing in enough words to stand on its own as a chunk."
    text = (
        f"# Setup\n\n{body}\n\n```sh\n~~~\n# Restart the IRC proxy after each reboot\n"
        f"```\n\n~~~~\n```\n#\n# not a heading\n~~~\n## nor this\n~~~~\n\n## Logs\n\n{body}\n"
    )
    chunks = chunks_of(text, tiny_encoder)
    assert {c.section for c in chunks} == {"Setup", "Setup > Logs"}
    assert [c.text.split("\n")[0] for c in chunks] == ["# Setup", "## Logs"]


def test_rst_title_with_overline_and_label(tiny_encoder: Encoder) -> None:
    text = (CORPUS / "extending" / "extending.rst").read_text(encoding="utf-8")
    assert find_title(text, "x") == "Extending Python with C or C++"
    first = chunks_of(text, tiny_encoder)[0]
    # a lone directive above the title joins it; the label sticks to its heading
    assert first.text.startswith(".. highlight:: c")
    assert ".. _extending-intro:\n\n****" in first.text
    assert "Extending Python with C or C++\n****" in first.text


def test_spans_tokenized_together_give_the_same_chunks(tiny_encoder: Encoder) -> None:
    texts = [path.read_text(encoding="utf-8") for path in DOCUMENTS[:6]]
    spans = tiny_encoder.token_spans_many(texts)
    assert spans == [tiny_encoder.token_spans(text) for text in texts]
    for text, text_spans in zip(texts, spans, strict=True):
        given = chunk_text(text, tokenizer=tiny_encoder, max_tokens=128, spans=text_spans)
        assert given == chunk_text(text, tokenizer=tiny_encoder, max_tokens=128)


def test_title_falls_back_to_the_file_name() -> None:
    assert find_title("just some text\n\nmore text\n", "notes") == "notes"


def test_long_title_is_clipped(tiny_encoder: Encoder) -> None:
    title = " ".join(["word"] * 100)
    clipped = clip_title(title, tiny_encoder, 32)
    assert tiny_encoder.count_tokens(clipped) == 32
    assert title.startswith(clipped)


def test_long_paragraph_is_split_at_sentences(tiny_encoder: Encoder) -> None:
    sentence = "The quick brown fox jumps over the lazy dog near the river bank today."
    text = " ".join([sentence] * 60)
    chunks = chunks_of(text, tiny_encoder, 64)
    assert len(chunks) > 1
    assert all(c.text.endswith(".") for c in chunks)
    assert all(c.tokens <= 64 for c in chunks)


def test_text_without_breaks_is_split_by_tokens(tiny_encoder: Encoder) -> None:
    text = "x" + "abc " * 2000
    chunks = chunks_of(text.strip(), tiny_encoder, 50)
    assert all(c.tokens <= 50 for c in chunks)
    assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")


def _paragraph_gaps(text: str) -> list[int]:
    return [m.start() for m in re.finditer(r"\n\n(?=[A-Za-z])", text)]


@pytest.mark.parametrize(
    "path", [p for p in DOCUMENTS if p.stat().st_size > 30_000], ids=lambda p: p.name
)
def test_insertion_near_the_top_changes_few_chunks(path: Path, tiny_encoder: Encoder) -> None:
    text = path.read_text(encoding="utf-8")
    before = {c.text for c in chunks_of(text, tiny_encoder)}
    assert len(before) >= 40
    for gap in _paragraph_gaps(text)[1:6]:
        edited = text[:gap] + "\n\n" + INSERTED + text[gap:]
        after = chunks_of(edited, tiny_encoder)
        changed = [c for c in after if c.text not in before]
        assert 1 <= len(changed) <= 3, (gap, [c.text[:60] for c in changed])
