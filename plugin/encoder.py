"""The embedding model behind two doors: questions (with the query instruction) and passages.

The prefix rules live here and nowhere else, so the worker that writes vectors and the plugin
that reads them cannot disagree. Pooling and normalisation come from the model's own
sentence-transformers configuration; nothing here overrides them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from plugin.device import resolve_device
from plugin.embedding.runner import Prepared, Runner, configure_cpu_threads, resolve_precision
from plugin.errors import ModelLoadError
from plugin.keyword import KeywordEncoder
from plugin.profile import CHUNKER_VERSION, DISTANCE, EmbeddingProfile, model_fingerprint
from plugin.spans import TokenSpans, cuts_at_whitespace, token_spans_many

if TYPE_CHECKING:
    from plugin.settings import Settings

# Put between a document's title and a passage's text, as the model saw them in training.
TITLE_SEPARATOR = "\n\n"
Vectors = np.ndarray[Any, np.dtype[np.float32]]


class Encoder:
    """Embeds questions and passages with one sentence-transformers model."""

    def __init__(
        self,
        model: Any,
        *,
        name: str,
        query_prefix: str,
        passage_prefix: str = "",
        revision: str | None = None,
        precision: str = "auto",
        token_budget: int | None = None,
        batch_size: int | None = None,
        backend: str = "torch",
        prefetch: bool | None = None,
        cache: Path | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self._model = model
        self.name = name
        self.revision = revision
        self.fingerprint = fingerprint
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        # The keyword door: BM25, no model to load, the same for every dense model.
        self.keyword = KeywordEncoder()
        self._tokenizer = _offsets_tokenizer(model.tokenizer)
        self._piecewise = cuts_at_whitespace(self._tokenizer)
        self._special_tokens = int(model.tokenizer.num_special_tokens_to_add(pair=False))
        self._runner = Runner(
            model,
            precision=precision,
            token_budget=token_budget,
            max_batch=batch_size,
            backend=backend,
            prefetch=prefetch,
            cache=cache,
        )

    @classmethod
    def load(
        cls,
        name: str | os.PathLike[str],
        *,
        device: str = "auto",
        query_prefix: str = "",
        passage_prefix: str = "",
        precision: str = "auto",
        token_budget: int | None = None,
        batch_size: int | None = None,
        backend: str = "torch",
        cache: Path | None = None,
    ) -> Encoder:
        """Load `name` (a hub name or a local directory) onto `device`, and warm it up.
        `cache`: docsync's cache folder, where the ONNX backends keep their export (default:
        `plugin.settings.default_cache()`)."""
        name = os.fspath(name)
        resolved = resolve_device(device)
        resolve_precision(precision, resolved)  # refuse an impossible precision before loading
        if resolved == "cpu":
            configure_cpu_threads()
        source = cls.source(name)
        local = Path(source).is_dir()
        try:
            from sentence_transformers import SentenceTransformer

            with _quiet_loading():
                model = SentenceTransformer(source, device=resolved)
        except Exception as exc:  # any loader failure means the same thing to the user
            raise ModelLoadError(_load_failure(name, exc)) from exc
        encoder = cls(
            model,
            name=source,
            query_prefix=query_prefix,
            passage_prefix=passage_prefix,
            precision=precision,
            token_budget=token_budget,
            batch_size=batch_size,
            backend=backend,
            cache=cache,
            fingerprint=model_fingerprint(Path(source)) if local else None,
        )
        encoder.embed_query("warm up")  # first calls pay for lazy initialisation: not a user's
        return encoder

    @staticmethod
    def source(name: str | os.PathLike[str]) -> str:
        """Where the model comes from: a local directory as an absolute path, else a hub name."""
        return _model_source(os.fspath(name))

    @classmethod
    def from_settings(cls, settings: Settings) -> Encoder:
        return cls.load(
            settings.model,
            device=settings.device,
            query_prefix=settings.query_prefix,
            passage_prefix=settings.passage_prefix,
            precision=settings.precision,
            token_budget=settings.token_budget,
            batch_size=settings.batch_size,
            backend=settings.backend,
            cache=settings.cache,
        )

    @property
    def dimension(self) -> int:
        return self._runner.dimension

    @property
    def max_tokens(self) -> int:
        """The longest input the model reads, special tokens included."""
        return int(self._model.max_seq_length)

    @property
    def device(self) -> str:
        return str(self._model.device)

    @property
    def precision(self) -> str:
        return self._runner.precision

    @property
    def query_forward(self) -> str:
        """How questions are embedded: "lean" (`plugin.embedding.lean`) or "model" (its module
        chain)."""
        return self._runner.query_forward

    @property
    def window(self) -> int:
        """Passages worth collecting before embedding: enough to sort into good batches
        (on a GPU, enough to keep it busy)."""
        return 32768 if self.device.startswith("cuda") else 512

    def window_at(self, index: int) -> int:
        """The size of the `index`-th window of a run. Where the next window is tokenized
        while one embeds (CUDA), windows start small and double up to `window`, so the
        device waits only for the first small one (a sixteenth) to be tokenized."""
        if not self._runner.prefetch:
            return self.window
        return min(self.window, max(1, self.window // 16) << min(index, 4))

    def profile(self) -> EmbeddingProfile:
        return EmbeddingProfile(
            model=self.name,
            revision=self.revision,
            dimension=self.dimension,
            distance=DISTANCE,
            query_prefix=self.query_prefix,
            passage_prefix=self.passage_prefix,
            chunker=CHUNKER_VERSION,
            fingerprint=self.fingerprint,
            keyword=self.keyword.profile,
        )

    def query_input(self, question: str) -> str:
        """The question with the query instruction applied exactly once."""
        if question.startswith(self.query_prefix):
            return question
        return self.query_prefix + question

    def passage_input(self, text: str, title: str = "") -> str:
        """What the model reads for a passage: prefix, then the document's title, then the text."""
        head = title + TITLE_SEPARATOR if title else ""
        return self.passage_prefix + head + text

    def embed_query(self, question: str) -> Vectors:
        return self._runner.embed_one(self.query_input(question))

    def embed_queries(self, questions: Sequence[str]) -> Vectors:
        return self._runner.embed([self.query_input(q) for q in questions])

    def prepare_passages(self, inputs: Sequence[str]) -> Prepared:
        """Passage inputs to be embedded next, by `embed_passages`: on a GPU their tokenizing
        begins now, on a thread, while the device works on earlier ones."""
        return self._runner.prepare(inputs)

    def embed_passages(
        self, inputs: Sequence[str] | Prepared, should_stop: Callable[[], bool] | None = None
    ) -> Vectors:
        """Embed passage inputs exactly as given (build each with `passage_input`), or what
        `prepare_passages` was given. `should_stop` is asked between batches; when it says
        so, `StopRequested` is raised."""
        return self._runner.embed(inputs, should_stop)

    def token_spans(self, text: str) -> TokenSpans:
        """Character offsets of the model's tokens in `text`, special tokens left out."""
        return token_spans_many(self._tokenizer, [text], piecewise=self._piecewise)[0]

    def token_spans_many(self, texts: Sequence[str]) -> list[TokenSpans]:
        """`token_spans` of each text, the texts tokenized in parallel on the CPU's cores
        (one text at a time uses one core), a long one in pieces (see `plugin.spans`)."""
        return token_spans_many(self._tokenizer, texts, piecewise=self._piecewise)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text).ids)

    def _tokenize(self, text: str) -> Any:
        # encode_batch releases the GIL (encode does not: 35 ms on a 68 KB file), so a
        # search in another thread is not kept waiting while a long document is tokenized.
        return self._tokenizer.encode_batch([text], add_special_tokens=False)[0]

    def passage_budget(self, title: str) -> int:
        """How many tokens of passage text still fit beside the special tokens, prefix and title."""
        overhead = self.count_tokens(self.passage_input("", title)) + self._special_tokens
        return self.max_tokens - overhead

    def tokens(self, inputs: Sequence[str]) -> int:
        """Tokens the model reads for `inputs` (specials in, padding out): what tokens/s count."""
        return self._runner.tokens(inputs)


def _model_source(name: str) -> str:
    """A local directory as an absolute path; anything else is a hub name, kept as given."""
    path = Path(name).expanduser()
    # Hub names look like "org/model"; only an explicit path is taken as a local directory.
    looks_local = name.startswith(("/", "./", "../", "~", os.sep))
    if path.is_dir():
        return str(path.resolve())
    if looks_local:
        raise ModelLoadError(
            f"model directory {name!r} does not exist. Set DOCSYNC_MODEL to a directory that "
            "holds a sentence-transformers model, or to a Hugging Face hub name."
        )
    return name


def _load_failure(name: str, exc: BaseException) -> str:
    reason = " ".join(str(exc).split())[:300].rstrip(".") or type(exc).__name__
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    # Only say what is not already so: with HF_HUB_OFFLINE set, the hub is no way out.
    stop_trying = "" if offline else "; HF_HUB_OFFLINE=1 stops docsync trying the hub"
    return (
        f"could not load model {name!r}: {reason}. To use a local copy, set DOCSYNC_MODEL to "
        "a local directory holding the sentence-transformers model (e.g. made on a machine "
        f"with network access by `hf download {name} --local-dir DIR`, then copied here)"
        f"{stop_trying}."
    )


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """No progress bars while a model loads (transformers draws one for its weights on
    every load): a library should not write to a program's terminal. Restored after."""
    from transformers.utils import logging as transformers_logging

    bars: Any = transformers_logging  # its switches cover the hub's bars too
    were_on = bool(bars.is_progress_bar_enabled())
    bars.disable_progress_bar()
    try:
        yield
    finally:
        if were_on:
            bars.enable_progress_bar()


def _offsets_tokenizer(tokenizer: Any) -> Any:
    """A private copy of the fast tokenizer with truncation and padding off, for offsets."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ModelLoadError("docsync needs a model with a fast (Rust) tokenizer")
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy
