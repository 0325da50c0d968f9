"""One-shot sync invariants (DESIGN.md 1, 2, 3, 6, 7): exact, idempotent, minimal, robust."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from qdrant_client import QdrantClient
from sentence_transformers import SentenceTransformer

from docsync.plugin.embedding.runner import Prepared
from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import ConfigError, ProfileMismatchError, StoreRequestError
from docsync.plugin.store import Point, Store
from docsync.plugin.stores.qdrant import QdrantClientStore
from docsync.worker.pipeline import Syncer, SyncOptions
from tests.conftest import CORPUS, QUERY_PREFIX, SyncedCorpus, run_sync, state

INSERTED = (
    "A paragraph added by an editor near the top of the file. It introduces a topic the "
    "document never mentioned, so the chunk that holds it has new text."
)


def fresh_store(roots: list[Path] | Path, encoder: Encoder, **options: object) -> Store:
    store = QdrantClientStore(QdrantClient(location=":memory:"), "fresh")
    run_sync(roots, store, encoder, **options)
    return store


def fresh_state(roots: list[Path] | Path, encoder: Encoder, **options: object) -> set[Any]:
    """The `state` of a collection synced from scratch, which a synced one must equal."""
    return state(fresh_store(roots, Remembering(encoder), **options))  # type: ignore[arg-type]


class Remembering:
    """An encoder that embeds each passage input once a session: the fresh syncs that check a
    collection compare points (`state`), not vectors, and most of their texts recur. All
    else is the encoder's own."""

    # Vectors by the model's name, precision and dimension, and the passage input.
    vectors: ClassVar[dict[tuple[str, str, int, str], Any]] = {}

    def __init__(self, encoder: Encoder) -> None:
        self._encoder = encoder
        self._model = (encoder.name, encoder.precision, encoder.dimension)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)

    def prepare_passages(self, inputs: Sequence[str]) -> Prepared:
        return Prepared(list(inputs), None)

    def embed_passages(self, inputs: Sequence[str] | Prepared, should_stop: Any = None) -> Any:
        texts = inputs.texts if isinstance(inputs, Prepared) else list(inputs)
        keys = {t: (*self._model, t) for t in texts}
        new = [t for t, key in keys.items() if key not in self.vectors]
        if new:
            vectors = self._encoder.embed_passages(new)
            self.vectors.update(zip([keys[t] for t in new], vectors, strict=True))
        return np.stack([self.vectors[keys[t]] for t in texts])


def assert_exact(store: Store, roots: list[Path] | Path, encoder: Encoder, **opts: Any) -> None:
    assert_same(store, fresh_state(roots, encoder, **opts))


def assert_same(store: Store, fresh: set[Any]) -> None:
    """`store` holds the points of `fresh`, the state of a collection synced from scratch,
    each once."""
    points = list(store.scroll({}))
    assert len({p.id for p in points}) == len(points) == store.count()
    assert state(store) == fresh
    assert len(state(store)) == len(points)  # no duplicated (path, text, span)


def insert_after_paragraph(path: Path, nth: int, text: str) -> None:
    source = path.read_text(encoding="utf-8")
    gaps = [
        i for i in range(len(source) - 2) if source[i : i + 2] == "\n\n" and source[i + 2].isalpha()
    ]
    cut = gaps[nth]
    path.write_text(source[:cut] + "\n\n" + text + source[cut:], encoding="utf-8")


def test_first_sync_indexes_everything(
    docs: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    report = run_sync(docs, memory_store, tiny_encoder)
    assert report.ok
    assert report.files_scanned == report.files_changed == 21
    assert report.points_upserted == memory_store.count() > 21 * 10
    paths = {p.payload["path"] for p in memory_store.scroll({}, fields=["path"])}
    assert "howto/sockets.rst" in paths and "using/cmdline.rst" in paths
    for p in memory_store.scroll({"path": "howto/sockets.rst"}):
        source = (docs / "howto" / "sockets.rst").read_text(encoding="utf-8")
        assert p.payload["text"] == source[p.payload["start"] : p.payload["end"]]
        assert p.payload["title"] == "Socket Programming HOWTO"


def test_files_planned_in_groups_give_the_same_points(
    docs: Path, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documents are tokenized many at a time (one tokenizer call a group); what is written
    must not depend on how the files were grouped."""
    from docsync.worker import planner

    docs = docs / "using"  # six files: more than one group of four

    def points(store: Store) -> dict[str, tuple[dict[str, Any], list[float] | None]]:
        # file_stat left out: a file's key depends on when it was read (unsettled: "")
        return {
            p.id: ({k: v for k, v in p.payload.items() if k != "file_stat"}, p.vector)
            for p in store.scroll({}, with_vectors=True)
        }

    calls: list[int] = []
    spans_many = tiny_encoder.token_spans_many

    def counted(texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        calls.append(len(texts))
        return spans_many(texts)

    monkeypatch.setattr(tiny_encoder, "token_spans_many", counted)
    monkeypatch.setattr(planner, "PLAN_GROUP_FILES", 1)
    one_by_one = QdrantClientStore(QdrantClient(location=":memory:"), "one")
    run_sync(docs, one_by_one, tiny_encoder)
    files = len(calls)
    assert files > 5 and set(calls) == {1}
    calls.clear()
    monkeypatch.setattr(planner, "PLAN_GROUP_FILES", 4)
    grouped = QdrantClientStore(QdrantClient(location=":memory:"), "grouped")
    run_sync(docs, grouped, tiny_encoder)
    assert sum(calls) == files and max(calls) == 4 and len(calls) == -(-files // 4)
    assert points(grouped) == points(one_by_one)
    calls.clear()
    monkeypatch.setattr(planner, "PLAN_GROUP_CHARS", 1)  # every file fills a group
    by_size = QdrantClientStore(QdrantClient(location=":memory:"), "by_size")
    run_sync(docs, by_size, tiny_encoder)
    assert set(calls) == {1}
    assert points(by_size) == points(one_by_one)


def test_second_sync_does_nothing(synced: tuple[Path, Store], tiny_encoder: Encoder) -> None:
    docs, store = synced
    again = run_sync(docs, store, tiny_encoder)
    assert (again.chunks_embedded, again.points_upserted, again.points_deleted) == (0, 0, 0)
    assert again.files_changed == again.files_deleted == 0
    assert again.files_scanned == 21


def test_exact_after_edits_appends_truncations_deletes_renames(
    synced: tuple[Path, Store], tiny_encoder: Encoder
) -> None:
    docs, store = synced
    howto, using = docs / "howto", docs / "using"
    regex = howto / "regex.rst"
    regex.write_text(regex.read_text().replace("regular expression", "regexp pattern", 3))
    with open(howto / "enum.rst", "a", encoding="utf-8") as handle:
        handle.write("\n\nAppendix\n========\n\nA section appended at the end of the file.\n")
    unicode = howto / "unicode.rst"
    unicode.write_text(unicode.read_text()[: len(unicode.read_text()) // 3])
    (howto / "curses.rst").unlink()
    (howto / "net").mkdir()
    (howto / "sockets.rst").rename(howto / "net" / "sockets-guide.rst")
    shutil.rmtree(using)
    (docs / "notes").mkdir()
    (docs / "notes" / "new.md").write_text("# New note\n\nWritten after the first sync.\n")
    report = run_sync(docs, store, tiny_encoder)
    assert report.ok
    assert report.files_deleted == 1 + 1 + 6  # curses, the old sockets path, using/*
    assert report.files_changed == 5  # regex, enum, unicode, the new sockets path, new.md
    assert_exact(store, docs, tiny_encoder)


def test_shrinking_file_leaves_no_stale_chunks(
    synced: tuple[Path, Store], tiny_encoder: Encoder
) -> None:
    docs, store = synced
    target = docs / "howto" / "functional.rst"
    before = store.count({"path": "howto/functional.rst"})
    target.write_text(target.read_text()[:3000])
    report = run_sync(docs, store, tiny_encoder)
    after = store.count({"path": "howto/functional.rst"})
    assert after < before and report.points_deleted >= before - after
    assert_exact(store, docs, tiny_encoder)


def test_paragraph_inserted_near_top_reembeds_few_chunks(
    synced: tuple[Path, Store], tiny_encoder: Encoder
) -> None:
    docs, store = synced
    target = docs / "howto" / "descriptor.rst"
    assert store.count({"path": "howto/descriptor.rst"}) >= 40
    insert_after_paragraph(target, 2, INSERTED)
    report = run_sync(docs, store, tiny_encoder)
    assert 1 <= report.chunks_embedded <= 3
    assert report.files_changed == 1
    assert_exact(store, docs, tiny_encoder)


@pytest.mark.parametrize("new_name", ["howto/sockets-renamed.rst", "moved/deeper/sockets.rst"])
def test_renamed_or_moved_file_is_not_reembedded(
    synced: tuple[Path, Store], tiny_encoder: Encoder, new_name: str
) -> None:
    docs, store = synced
    n = store.count({"path": "howto/sockets.rst"})
    (docs / new_name).parent.mkdir(parents=True, exist_ok=True)
    (docs / "howto" / "sockets.rst").rename(docs / new_name)
    report = run_sync(docs, store, tiny_encoder)
    assert report.chunks_embedded == 0
    assert report.vectors_reused == n == report.points_upserted == report.points_deleted
    assert store.count({"path": new_name}) == n
    assert_exact(store, docs, tiny_encoder)


def test_copied_file_reuses_vectors(synced: tuple[Path, Store], tiny_encoder: Encoder) -> None:
    docs, store = synced
    shutil.copy(docs / "howto" / "enum.rst", docs / "enum-copy.rst")
    report = run_sync(docs, store, tiny_encoder)
    assert report.chunks_embedded == 0 and report.points_upserted > 0


def test_bad_input_is_skipped_with_reasons(
    tmp_path: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "good.md").write_text("# Good\n\nA perfectly fine document about gardening.\n")
    (root / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (root / "latin.txt").write_bytes(
        "Crème brûlée à la française, déjà vu.\n".encode("latin-1") * 4
    )
    (root / "empty.md").write_text("")
    (root / "huge.txt").write_text("word " * 5000)
    (outside / "secret.md").write_text("# Secret\n\nOutside the root.\n")
    os.symlink(root / "nowhere.md", root / "broken.md")
    os.symlink(outside / "secret.md", root / "escape.md")
    report = run_sync(root, memory_store, tiny_encoder, max_file_bytes=10_000)
    assert report.ok
    assert report.files_skipped == {
        "binary": 1,
        "empty": 1,
        "too_large": 1,
        "broken_symlink": 1,
        "outside_root": 1,
    }
    texts = {text for _, path, text, _, _ in state(memory_store)}
    assert any("gardening" in t for t in texts)
    assert any("Crème brûlée" in t for t in texts)
    assert not any("Outside the root" in t for t in texts)


def test_file_that_turns_bad_loses_its_points(
    synced: tuple[Path, Store], tiny_encoder: Encoder
) -> None:
    docs, store = synced
    (docs / "howto" / "enum.rst").write_bytes(b"\x00\x01binary now")
    report = run_sync(docs, store, tiny_encoder)
    assert report.files_skipped == {"binary": 1}
    assert store.count({"path": "howto/enum.rst"}) == 0


def test_unreadable_file_keeps_its_points_and_fails_the_sync(
    synced: tuple[Path, Store], tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs, store = synced
    kept = store.count({"path": "howto/enum.rst"})
    (docs / "howto" / "enum.rst").write_text("# Changed\n\nBut we cannot read it.\n")
    real_open = os.open

    def deny(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file).endswith("enum.rst"):
            raise PermissionError(13, "Permission denied")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    report = run_sync(docs, store, tiny_encoder)
    assert not report.ok
    assert [(f.reason, f.path.endswith("howto/enum.rst")) for f in report.failures] == [
        ("unreadable", True)
    ]
    assert store.count({"path": "howto/enum.rst"}) == kept


def test_profile_guard_refuses_and_writes_nothing(
    synced: tuple[Path, Store], tiny_encoder: Encoder
) -> None:
    docs, store = synced
    before = state(store)
    (docs / "notes.md").write_text("# Notes\n\nNew text that must not be written.\n")
    other = Encoder(tiny_encoder._model, name=tiny_encoder.name, query_prefix="query: ")
    with pytest.raises(ProfileMismatchError, match="query_prefix"):
        run_sync(docs, store, other)
    assert state(store) == before


def test_emptied_root_is_not_wiped(synced: tuple[Path, Store], tiny_encoder: Encoder) -> None:
    docs, store = synced
    count = store.count()
    for child in docs.iterdir():
        shutil.rmtree(child)
    report = run_sync(docs, store, tiny_encoder)
    assert report.protected_roots == [str(docs.resolve())] and not report.ok
    assert store.count() == count
    confirmed = run_sync(docs, store, tiny_encoder, allow_empty_roots=True)
    assert confirmed.ok and store.count() == 0


def test_missing_root_is_an_error_and_deletes_nothing(
    synced: tuple[Path, Store], tiny_encoder: Encoder
) -> None:
    docs, store = synced
    count = store.count()
    shutil.rmtree(docs)
    with pytest.raises(ConfigError, match="directory not found"):
        run_sync(docs, store, tiny_encoder)
    assert store.count() == count


def test_roots_are_independent(tmp_path: Path, memory_store: Store, tiny_encoder: Encoder) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        root.mkdir()
        (root / "same.md").write_text(f"# {root.name}\n\nShared name, different roots.\n")
    run_sync([a, b], memory_store, tiny_encoder)
    assert {p.payload["root"] for p in memory_store.scroll({})} == {str(a), str(b)}
    (a / "same.md").unlink()
    (a / "other.md").write_text("# Other\n\nOnly in a.\n")
    run_sync([a], memory_store, tiny_encoder)
    assert memory_store.count({"root": str(b)}) == 1
    assert_exact(memory_store, [a, b], tiny_encoder)


def test_changed_rules_remove_excluded_files(
    synced: tuple[Path, Store], tiny_encoder: Encoder
) -> None:
    docs, store = synced
    report = run_sync(docs, store, tiny_encoder, exclude=[".*", "using"])
    assert report.files_deleted == 6
    assert store.count({"path_prefixes": "using"}) == 0
    assert_exact(store, docs, tiny_encoder, exclude=[".*", "using"])


def test_rules_that_drop_most_of_a_root_are_held_back(
    synced: tuple[Path, Store], tiny_encoder: Encoder, caplog: pytest.LogCaptureFixture
) -> None:
    """`DOCSYNC_INCLUDE='sockets.rst'` deleted 28 of 29 files' points and exited 0."""
    docs, store = synced
    before = state(store)
    (docs / "using" / "mac.rst").unlink()  # really gone: deleted even while the rest is held
    held = run_sync(docs, store, tiny_encoder, include=["sockets.rst"])
    assert held.protected_roots == [str(docs.resolve())] and not held.ok
    assert held.files_deleted == 1 and {p for _, p, *_ in state(store)} == {
        p for _, p, *_ in before if p != "using/mac.rst"
    }
    said = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "no longer select 19 of the 21 files" in said and "--allow-mass-delete" in said
    assert "(howto/annotations.rst, howto/argparse.rst, howto/clinic.rst, " in said
    assert "and 14 more): not deleting them" in said
    # the not-included warning names files too, not only their extensions
    assert "(19 .rst: howto/annotations.rst, howto/argparse.rst" in said
    report = run_sync(docs, store, tiny_encoder, include=["sockets.rst"], allow_mass_delete=True)
    assert report.ok and report.files_deleted == 19
    assert_exact(store, docs, tiny_encoder, include=["sockets.rst"])


def skip_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The files named by this sync's skip warnings, and forget them."""
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    caplog.clear()
    return sorted(m.split(":")[0].rsplit("/", 1)[-1] for m in said if m.startswith("skipped"))


def test_a_skip_is_said_once_until_its_file_changes(
    synced: tuple[Path, Store], tiny_encoder: Encoder, caplog: pytest.LogCaptureFixture
) -> None:
    """A daemon's Syncer: its rescans repeated every skip warning, each time."""
    docs, store = synced
    caplog.set_level(logging.DEBUG, logger="docsync.sync")
    (docs / "blob.md").write_bytes(b"\x00\x01" * 100)
    (docs / "empty.md").write_text("")
    syncer = Syncer(store, tiny_encoder, SyncOptions())
    scopes = [(docs.resolve(), "")]
    first = syncer.sync_scopes(scopes)
    assert first.files_skipped == {"binary": 1, "empty": 1}
    assert skip_warnings(caplog) == ["blob.md", "empty.md"]
    again = syncer.sync_scopes(scopes)
    assert again.files_skipped == first.files_skipped  # still counted, not said
    assert skip_warnings(caplog) == []
    (docs / "blob.md").write_bytes(b"\x00\x02" * 300)  # changed, still binary
    syncer.sync_scopes(scopes)
    assert skip_warnings(caplog) == ["blob.md"]
    (docs / "empty.md").write_text("# Not empty\n\nNow it has words in it.\n")
    syncer.sync_scopes(scopes)
    (docs / "empty.md").write_text("")  # empty once more: said once more
    syncer.sync_scopes(scopes)
    assert skip_warnings(caplog) == ["empty.md"]


def test_changed_chunk_size_rechunks(synced: tuple[Path, Store], tiny_encoder: Encoder) -> None:
    docs, store = synced
    report = run_sync(docs, store, tiny_encoder, chunk_tokens=128)
    assert report.files_changed == 21
    assert_exact(store, docs, tiny_encoder, chunk_tokens=128)


class FlakyStore:
    """A real store that fails on cue: `fail_on` names a method and after how many calls,
    `apply_first` whether the failing call still reaches the store (a lost acknowledgement)."""

    def __init__(self, inner: Store, fail_on: str, after: int, *, apply_first: bool) -> None:
        self._inner, self._fail_on, self._left, self._apply = inner, fail_on, after, apply_first

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if name != self._fail_on:
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self._left -= 1
            if self._left < 0:
                if self._apply:
                    target(*args, **kwargs)
                raise RuntimeError(f"injected failure in {name}")
            return target(*args, **kwargs)

        return call


@pytest.mark.parametrize(
    ("method", "after", "apply_first"),
    [("upsert", 1, False), ("upsert", 2, True), ("delete", 0, False), ("delete", 2, True)],
)
def test_interrupted_sync_is_repaired_by_the_next(
    synced: tuple[Path, Store],
    tiny_encoder: Encoder,
    method: str,
    after: int,
    apply_first: bool,
) -> None:
    docs, store = synced
    insert_after_paragraph(docs / "howto" / "descriptor.rst", 2, INSERTED)
    (docs / "howto" / "regex.rst").write_text("# Regex\n\nShort now.\n")
    (docs / "howto" / "enum.rst").rename(docs / "enum.rst")
    (docs / "howto" / "curses.rst").unlink()
    flaky = FlakyStore(store, method, after, apply_first=apply_first)
    with pytest.raises(RuntimeError, match="injected"):
        run_sync(docs, flaky, tiny_encoder)  # type: ignore[arg-type]
    run_sync(docs, store, tiny_encoder)
    assert_exact(store, docs, tiny_encoder)


def test_rejected_write_fails_that_file_only(
    tmp_path: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    docs = tmp_path / "docs"
    (docs / "howto").mkdir(parents=True)
    for name in ("enum.rst", "regex.rst"):  # the file refused and one written
        shutil.copy(CORPUS / "howto" / name, docs / "howto" / name)

    class Rejecting(FlakyStore):
        def upsert(self, points: Sequence[Point]) -> None:
            if any(p.payload["path"] == "howto/enum.rst" for p in points):
                raise StoreRequestError("payload too large (413)")
            self._inner.upsert(points)

    report = run_sync(docs, Rejecting(memory_store, "none", 0, apply_first=False), tiny_encoder)  # type: ignore[arg-type]
    assert [f.reason for f in report.failures] == ["rejected"]
    assert memory_store.count({"path": "howto/enum.rst"}) == 0
    assert memory_store.count({"path": "howto/regex.rst"}) > 0


def test_windows_prepared_ahead_sync_exactly(
    docs: Path, memory_store: Store, tiny_encoder: Encoder, tiny_model_dir: Path
) -> None:
    """With the next window tokenized on a thread while one embeds (as on a GPU), and
    windows that start small, every point gets its own text's vector."""

    def encoder(prefetch: bool) -> Encoder:  # fp32: batch shapes then change nothing
        model = SentenceTransformer(str(tiny_model_dir), device="cpu")
        name, prefix = tiny_encoder.name, QUERY_PREFIX
        return Encoder(model, name=name, query_prefix=prefix, precision="fp32", prefetch=prefetch)

    ahead, plain = encoder(True), encoder(False)
    report = run_sync(docs, memory_store, ahead)
    assert report.ok and report.chunks_embedded > ahead.window  # several windows
    (docs / "howto" / "curses.rst").unlink()
    insert_after_paragraph(docs / "howto" / "descriptor.rst", 2, INSERTED)
    run_sync(docs, memory_store, ahead)
    fresh = fresh_store(docs, plain)  # its vectors are compared: embedded here
    assert_same(memory_store, state(fresh))

    def vectors(store: Store) -> dict[tuple[str, int], Any]:
        return {
            (p.payload["path"], p.payload["start"]): p.vector
            for p in store.scroll({}, with_vectors=True)
        }

    got, want = vectors(memory_store), vectors(fresh)
    assert got.keys() == want.keys()
    assert max(float(np.abs(np.subtract(got[k], want[k])).max()) for k in got) < 1e-5


def test_long_files_are_written_in_parts_with_the_same_points(
    synced: tuple[Path, Store],
    synced_corpus: SyncedCorpus,
    memory_store: Store,
    tiny_encoder: Encoder,
) -> None:
    """With windows of 8 chunks, every file of more is planned, embedded and written in
    parts; the points are those of a sync in one part, and each file counts once."""
    docs, whole = synced  # synced in one part
    expected = synced_corpus.report
    parts = run_sync(docs, memory_store, tiny_encoder, window_chunks=8)
    assert parts.files_changed == expected.files_changed == 21
    assert parts.points_upserted == expected.points_upserted
    assert sorted(parts.synced_paths) == sorted(expected.synced_paths)
    assert state(memory_store) == state(whole)
    insert_after_paragraph(docs / "howto" / "descriptor.rst", 2, INSERTED)
    (docs / "howto" / "regex.rst").write_text("# Regex\n\nShort now.\n")
    edited = run_sync(docs, memory_store, tiny_encoder, window_chunks=8)
    assert edited.files_changed == 2 and edited.chunks_embedded <= 4
    assert_exact(memory_store, docs, tiny_encoder)


def test_a_rejected_part_keeps_the_files_old_points(
    synced: tuple[Path, Store], tiny_encoder: Encoder
) -> None:
    """A part of a long file that the store refuses stops the file's later parts, its
    deletes above all: the old points stay until the whole new version is in."""
    docs, store = synced
    path = "howto/descriptor.rst"
    old = {p.id for p in store.scroll({"path": path})}
    source = docs / path
    source.write_text(source.read_text(encoding="utf-8").replace("descriptor", "Descriptor"))

    class RejectingSecondPart(FlakyStore):
        parts = 0

        def upsert(self, points: Sequence[Point]) -> None:
            if points[0].payload["path"] == path:
                self.parts += 1
                if self.parts == 2:
                    raise StoreRequestError("payload too large (413)")
            self._inner.upsert(points)

    rejecting = RejectingSecondPart(store, "none", 0, apply_first=False)
    report = run_sync(docs, rejecting, tiny_encoder, window_chunks=8)  # type: ignore[arg-type]
    assert rejecting.parts == 2  # the parts after the rejected one were not tried
    assert [(f.path, f.reason) for f in report.failures] == [(str(docs / path), "rejected")]
    assert path not in report.synced_paths and report.files_changed == 0
    assert old <= {p.id for p in store.scroll({"path": path})}
    run_sync(docs, store, tiny_encoder)
    assert_exact(store, docs, tiny_encoder)


def test_points_written_before_heading_paths_and_gaps_gain_them_without_reembedding(
    docs: Path, memory_store: Store, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from docsync.worker import plan, sync_options

    payload = plan._payload

    def before_sections(*args: Any) -> Any:
        old = payload(*args)
        del old["section"]  # type: ignore[misc]
        del old["gap"]  # type: ignore[misc]
        return old

    monkeypatch.setattr(plan, "_payload", before_sections)
    monkeypatch.setattr(sync_options, "PAYLOAD_VERSION", 1)
    run_sync(docs, memory_store, tiny_encoder)
    assert all("section" not in p.payload for p in memory_store.scroll({}))
    monkeypatch.undo()
    report = run_sync(docs, memory_store, tiny_encoder)
    assert report.chunks_embedded == 0 and report.files_changed == 21
    sections = {p.payload["section"] for p in memory_store.scroll({"path": "howto/regex.rst"})}
    assert "Regular Expression HOWTO > Introduction" in sections
    gaps = {p.payload["gap"] for p in memory_store.scroll({"path": "howto/regex.rst"})}
    assert "\n\n" in gaps
    assert run_sync(docs, memory_store, tiny_encoder).files_changed == 0
