"""The embedding profile: everything that must agree between the vectors in a collection and
the vectors a reader or writer computes now.

The worker writes it into the collection when it creates it; the worker and the plugin both
compare it on every open and refuse a collection whose profile differs from theirs.

A hub model is identified by its name (and revision); a local model folder by its content,
`fingerprint`, so that an identical copy elsewhere (a new virtual environment, another
machine, a Docker path) is the same model. Its path stays in `model` for people to read and
is compared only with a profile written before fingerprints (which has none).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from docsync.plugin.errors import ModelLoadError, ProfileMismatchError

# Bump when worker/chunk.py changes where it cuts text: chunks from different chunker
# versions must not mix in one collection.
CHUNKER_VERSION = "docsync-chunker/1"
DISTANCE = "cosine"
METADATA_KEY = "docsync_profile"
# Weights up to this size are hashed whole (about 70 ms per 100 MB here, from the page cache
# the loader fills anyway); a larger file by its size and its first and last SAMPLE_BYTES.
FULL_HASH_BYTES = 1 << 30
SAMPLE_BYTES = 1 << 20
# Files in a model folder that do not change its vectors.
_NOT_MODEL = ("README", "LICENSE", "LICENCE")


@dataclass(frozen=True)
class EmbeddingProfile:
    model: str
    revision: str | None
    dimension: int
    distance: str
    query_prefix: str
    passage_prefix: str
    chunker: str
    # A local model's content (`model_fingerprint`); None for a hub model, and in profiles
    # written before fingerprints.
    fingerprint: str | None = None
    # How the keyword (BM25) vectors are made (`docsync.plugin.keyword.KEYWORD_PROFILE`); None: the
    # collection has none (made before keyword vectors). Not part of `differences`: keyword
    # vectors that are missing or made otherwise are rebuilt by the next sync, from the
    # payloads, and searches use the dense vectors alone until then (see `keyword_ready`).
    keyword: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbeddingProfile:
        required = {f.name for f in fields(cls) if f.default is MISSING}
        missing = required - data.keys()
        if missing:
            raise ValueError(f"profile lacks {', '.join(sorted(missing))}")
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def differences(self, other: EmbeddingProfile) -> list[str]:
        """Human-readable `field: theirs != ours` lines, empty when the profiles agree."""
        ours, theirs = self.to_dict(), other.to_dict()
        by_content = self.fingerprint is not None and other.fingerprint is not None
        skipped = {"model", "fingerprint"} if by_content else {"fingerprint"}
        skipped.add("keyword")
        lines = [
            f"{name}: collection has {theirs[name]!r}, settings give {ours[name]!r}"
            for name in ours
            if name not in skipped and ours[name] != theirs[name]
        ]
        if by_content and self.fingerprint != other.fingerprint:
            lines.insert(
                0,
                f"model: collection has the model files {other.fingerprint} (then at "
                f"{other.model!r}), settings give other files, {self.fingerprint} (at "
                f"{self.model!r})",
            )
        return lines

    def same_passage_vectors(self, other: EmbeddingProfile) -> bool:
        """Whether `other`'s passage vectors are what this profile computes for the same text
        (the same model and passage prefix: the chunker and query prefix do not matter)."""
        ignored = ("chunker:", "query_prefix:")
        return not [d for d in self.differences(other) if not d.startswith(ignored)]

    def keyword_ready(self, stored: EmbeddingProfile) -> bool:
        """Whether the collection (`stored`) holds keyword vectors made as this profile
        makes them: only then can a keyword query be compared with them."""
        return self.keyword is not None and stored.keyword == self.keyword

    def ensure_matches(self, stored: EmbeddingProfile, *, collection: str) -> None:
        """Raise `ProfileMismatchError` unless `stored` (the collection's) equals this one."""
        diffs = self.differences(stored)
        if diffs:
            raise ProfileMismatchError(
                f"collection {collection!r} was written with another embedding profile "
                f"({'; '.join(diffs)}). Use the settings it was written with, or sync into "
                "a new collection (DOCSYNC_COLLECTION)."
            )


def model_fingerprint(folder: Path) -> str:
    """What a local sentence-transformers folder holds, as `sha256:<hex>`: the files its
    loader reads (the top level and the module folders `modules.json` names), by relative
    path, size and content. Hidden files, READMEs and licences are left out, and so are
    folders no module names (`onnx/`, `openvino/`): a copy without them is the same model."""
    digest = hashlib.sha256()
    try:
        for path in _model_files(folder):
            name = path.relative_to(folder).as_posix()
            digest.update(f"{name}\0{path.stat().st_size}\0".encode())
            digest.update(_file_digest(path))
    except OSError as exc:
        # An unreadable file (or folder) is a model that cannot load: one line naming it.
        where = exc.filename or folder
        raise ModelLoadError(
            f"cannot read model file {where}: {exc.strerror or exc}. DOCSYNC_MODEL must be a "
            "folder whose files docsync can read"
        ) from exc
    return "sha256:" + digest.hexdigest()


def _model_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and _is_model_file(p)]
    for module in _module_folders(folder):
        files.extend(p for p in module.rglob("*") if p.is_file() and _is_model_file(p))
    return sorted(set(files))


def _module_folders(folder: Path) -> list[Path]:
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []  # a plain transformers folder: its files are all at the top
    paths = (
        [m.get("path") for m in modules if isinstance(m, dict)] if isinstance(modules, list) else []
    )
    return [folder / p for p in paths if isinstance(p, str) and p and (folder / p).is_dir()]


def _is_model_file(path: Path) -> bool:
    name = path.name
    return (
        not name.startswith(".")
        and not name.upper().startswith(_NOT_MODEL)
        and path.suffix != ".md"
    )


def _file_digest(path: Path) -> bytes:
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size <= FULL_HASH_BYTES:
            return hashlib.file_digest(handle, "sha256").digest()
        # Reading gigabytes on every start would cost seconds: a huge file is known by its
        # size (hashed above) and its two ends.
        head = handle.read(SAMPLE_BYTES)
        handle.seek(size - SAMPLE_BYTES)
        return hashlib.sha256(head + handle.read(SAMPLE_BYTES)).digest()
