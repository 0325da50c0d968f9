"""A model's card: what its first load leaves in docsync's cache, so that later processes need
not load it.

Loading a sentence-transformers model imports torch and transformers: seconds of a small
machine's time before the first token. Most commands need far less. A sync with nothing
changed needs the model's dimension (its profile is checked against the collection's), a
query needs one vector. So the first process that loads a model writes its card, a folder
under `DOCSYNC_CACHE/models/`:

- `card.json`: dimension, token limit, special tokens, the input names the model takes;
- `tokenizer.json`: the model's fast tokenizer as transformers built it (not as the folder
  has it: transformers fills in what older folders leave out), truncation and padding off;
- `question.onnx`: the whole module chain (transformer, pooling, normalisation) exported to
  ONNX in fp32, kept only where its vectors agree with the chain's on sample texts
  (cosine >= `AGREEMENT`) and its tokenizer gives the model's own ids;
- the precision that embeds passages fastest on this CPU (`precisions.time_precisions`), with
  each candidate's speed and the CPU it was measured on, where the model is on the CPU.

A card is keyed by the content of the model's files (`profile.model_fingerprint`) and the
versions of the libraries that read them: edited weights, or an upgrade that tokenizes
otherwise, make a new card. It is written in a scratch folder and renamed into place, so a
reader finds a whole card or none, and two processes writing one card both end well.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from docsync.plugin.embedding.onnx_runtime import export_chain
from docsync.plugin.embedding.precisions import PrecisionTiming, time_precisions
from docsync.plugin.folders import private_dirs
from docsync.plugin.profile import model_fingerprint

log = logging.getLogger("docsync.encoder")
CARD_VERSION = 2  # 2: the precision timing
# The export must give the module chain's vectors: fp32 against fp32, ONNX Runtime's kernels
# move the cosine by about 1e-7; a wrong graph, by far more.
AGREEMENT = 0.9999
# Texts the export must embed as the model does: a question, a passage, one past the token
# limit (truncation), text the tokenizer must normalise (accents, case, CJK).
SAMPLES = (
    "How do I create a socket and connect to a web server?",
    "The socket module gives access to the BSD socket interface. Sockets are created with "
    "socket(), bound to an address with bind(), and connected with connect().",
    " ".join(["Truncation keeps the first tokens the model reads and drops the rest."] * 80),
    "Ça coûte 3,50 € — naïve CAFÉ 東京 résumé",
)
_LIBRARIES = ("sentence-transformers", "transformers", "tokenizers")


@dataclass(frozen=True)
class ModelCard:
    folder: Path
    dimension: int
    max_tokens: int  # the longest input the model reads, special tokens included
    special_tokens: int  # added to a single text
    inputs: tuple[str, ...]  # the tensors the model takes: input_ids, attention_mask, ...
    questions: bool  # whether `question.onnx` is there, checked
    timing: PrecisionTiming | None = None  # measured when the card was made, on a CPU

    @property
    def cpu_precision(self) -> str | None:
        """The fastest precision for passages measured on this CPU; None where the card was
        made on a GPU or on another kind of CPU."""
        timing = self.timing
        return timing.fastest if timing is not None and timing.here() else None

    @property
    def question_model(self) -> Path:
        return self.folder / "question.onnx"

    def tokenizer(self) -> Any:
        """The model's tokenizer (a `tokenizers.Tokenizer`), truncation and padding off."""
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(self.folder / "tokenizer.json"))


def card_key(source: str, fingerprint: str | None) -> str | None:
    """The key of the card of model `source` (a local folder, whose `fingerprint` is given,
    or a hub name, found in the hub's cache); None where its files are not on this machine."""
    if fingerprint is None:
        folder = _hub_folder(source)
        if folder is None:
            return None
        fingerprint = model_fingerprint(folder)
    digest = hashlib.sha256(f"{CARD_VERSION}\0{fingerprint}".encode())
    for library in _LIBRARIES:
        digest.update(f"\0{library} {_version(library)}".encode())
    return digest.hexdigest()[:32]


def read_card(cache: Path, key: str) -> ModelCard | None:
    """The card under `cache`, or None where there is none (or it cannot be read)."""
    folder = cache / "models" / key
    try:
        data = json.loads((folder / "card.json").read_text(encoding="utf-8"))
        card = ModelCard(
            folder=folder,
            dimension=int(data["dimension"]),
            max_tokens=int(data["max_tokens"]),
            special_tokens=int(data["special_tokens"]),
            inputs=tuple(str(name) for name in data["inputs"]),
            questions=bool(data["questions"]),
            timing=PrecisionTiming.from_json(data["timing"]) if data.get("timing") else None,
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the model card in %s, which cannot be read: %s", folder, exc)
        return None
    if card.questions and not card.question_model.is_file():
        return None
    return card


def write_card(
    model: Any, *, source: str, cache: Path, key: str, inputs: list[str], dimension: int
) -> ModelCard | None:
    """Write the card of `model` (a SentenceTransformer in fp32, as loaded) under `cache`;
    answers it, or None where the cache cannot be written (said once, as a warning)."""
    final = cache / "models" / key
    scratch = final.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}")
    log.info("writing the model's card for quick starts (once): %s", final)
    try:
        if final.exists():  # a card that cannot be read (read_card said so): replaced
            shutil.rmtree(final)
        private_dirs(scratch.parent)
        scratch.mkdir(mode=0o700)
        tokenizer = plain_tokenizer(model.tokenizer)
        tokenizer.save(str(scratch / "tokenizer.json"))
        questions = _on_cpu(
            model, lambda: _export_questions(model, inputs, tokenizer, scratch / "question.onnx")
        )
        on_cpu = str(getattr(model, "device", "")) == "cpu"
        timing = time_precisions(model) if on_cpu else None
        data = {
            "version": CARD_VERSION,
            "model": source,  # for people reading the cache
            "dimension": dimension,
            "max_tokens": int(model.max_seq_length),
            "special_tokens": int(model.tokenizer.num_special_tokens_to_add(pair=False)),
            "inputs": list(inputs),
            "questions": questions,
            "timing": timing.as_json() if timing is not None else None,
        }
        (scratch / "card.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
        _rename_into_place(scratch, final)
    except OSError as exc:
        log.warning(
            "could not write the model's card under %s (%s): each command will load the model",
            cache,
            exc,
        )
        return None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return read_card(cache, key)


def _on_cpu(model: Any, work: Callable[[], bool]) -> bool:
    """`work` done with `model` on the CPU (where ONNX Runtime will run the export), and the
    model put back where it was (a GPU, say) after."""
    device = getattr(model, "device", "cpu")
    if str(device) == "cpu":
        return work()
    model.to("cpu")
    try:
        return work()
    finally:
        model.to(device)


def plain_tokenizer(tokenizer: Any) -> Any:
    """A private copy of a transformers fast tokenizer's Rust tokenizer, truncation and
    padding off."""
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        from docsync.plugin.errors import ModelLoadError

        raise ModelLoadError("docsync needs a model with a fast (Rust) tokenizer")
    copy = Tokenizer.from_str(backend.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy


def truncating(tokenizer: Any, max_tokens: int) -> Any:
    """A private copy of a `tokenizers.Tokenizer` (see `plain_tokenizer`) that truncates as
    the model does, at `max_tokens`."""
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.enable_truncation(max_length=max_tokens)
    return copy


def model_inputs(model: Any) -> list[str]:
    """The input tensors `model` (a SentenceTransformer) takes, of the three BERT-like
    encoders know."""
    sample = model.preprocess(["x"]) if hasattr(model, "preprocess") else model.tokenize(["x"])
    return [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in sample]


def model_dimension(model: Any) -> int:
    """The length of `model`'s sentence embeddings."""
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(get())


def _export_questions(model: Any, inputs: list[str], tokenizer: Any, path: Path) -> bool:
    """Export the module chain to `path`; keep it only where it embeds as the model does."""
    try:
        export_chain(model, inputs, path)
        agreement = _agreement(model, inputs, tokenizer, path)
    # The exporter can fail in many ways on a model it does not support (unsupported
    # operators, tracing errors, a missing onnx package): every one means the same thing
    # here, questions go through the model, and the reason is logged.
    except Exception as exc:
        log.info("no ONNX export for quick questions: %s", " ".join(str(exc).split())[:300])
        path.unlink(missing_ok=True)
        return False
    if agreement < AGREEMENT:
        log.info("the ONNX export disagrees with the model (cosine %.6f): not used", agreement)
        path.unlink(missing_ok=True)
        return False
    return True


def _agreement(model: Any, inputs: list[str], tokenizer: Any, path: Path) -> float:
    """The lowest cosine between the export's vectors and the module chain's over `SAMPLES`
    (0 where the tokenizer gives other ids than the model's own tokenizing)."""
    import onnxruntime as ort
    import torch

    from docsync.plugin.embedding.questions import features

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    truncated = truncating(tokenizer, int(model.max_seq_length))
    worst = 1.0
    for text in SAMPLES:
        ids = truncated.encode(text).ids
        tokenize = getattr(model, "preprocess", None) or model.tokenize
        if [int(i) for i in tokenize([text])["input_ids"][0]] != ids:
            log.info("the card's tokenizer gives other ids than the model's for %r", text[:40])
            return 0.0
        ours = session.run(None, features(ids, inputs))[0][0]
        tensors = {k: torch.from_numpy(v) for k, v in features(ids, inputs).items()}
        with torch.inference_mode():
            theirs = model(tensors)["sentence_embedding"][0].float().numpy()
        cosine = float(np.dot(ours, theirs) / (np.linalg.norm(ours) * np.linalg.norm(theirs)))
        worst = min(worst, cosine)
    return worst


def _rename_into_place(scratch: Path, final: Path) -> None:
    try:
        scratch.rename(final)
    except OSError:
        if not (final / "card.json").is_file():
            raise
        # Another process wrote the same card first: theirs is as good as this one.


def _hub_folder(name: str) -> Path | None:
    """Where the hub's cache holds model `name`, without asking the hub; None if it does not."""
    try:
        from huggingface_hub import snapshot_download

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Path(snapshot_download(name, local_files_only=True))
    except Exception as exc:
        log.debug("model %s is not in the hub's cache: %s", name, exc)
        return None


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "none"
