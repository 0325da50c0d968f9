"""The embedding model behind two doors: questions (with the query instruction) and passages.

The prefix rules live here and nowhere else, so the worker that writes vectors and the plugin
that reads them cannot disagree. Pooling and normalisation come from the model's own
sentence-transformers configuration; nothing here overrides them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from docsync.plugin.device import calm_cpu_waits, check_present, likely_device
from docsync.plugin.embedding.card import (
    ModelCard,
    model_dimension,
    plain_tokenizer,
)
from docsync.plugin.embedding.combine import Combiner
from docsync.plugin.embedding.loading import card_or_model, known_card, load_model, model_source
from docsync.plugin.embedding.machine import check_precision, resolve_precision
from docsync.plugin.embedding.questions import QuestionEncoder
from docsync.plugin.embedding.runner import Prepared, Runner, RunnerOptions
from docsync.plugin.embedding.teams import passing
from docsync.plugin.errors import ModelLoadError
from docsync.plugin.keyword import KeywordEncoder
from docsync.plugin.profile import CHUNKER_VERSION, DISTANCE, EmbeddingProfile, model_fingerprint
from docsync.plugin.spans import TokenSpans, cuts_at_whitespace, token_spans_many

if TYPE_CHECKING:
    from docsync.plugin.settings import Settings

log = logging.getLogger("docsync.encoder")
# Put between a document's title and a passage's text, as the model saw them in training.
TITLE_SEPARATOR = "\n\n"
COUNT_BATCH = 256  # texts per tokenizer call when counting many
Vectors = np.ndarray[Any, np.dtype[np.float32]]


class Encoder:
    """Embeds questions and passages with one sentence-transformers model.

    Built from a loaded model, or lazily from the model's card (`docsync.plugin.embedding.card`) and
    a loader: then the tokenizer, the dimension and the profile come from the card, questions
    are embedded by its ONNX export, and the model is loaded (torch imported) only when
    passages must be embedded."""

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
        card: ModelCard | None = None,
        loader: Callable[[], Any] | None = None,
        device: str = "auto",
    ) -> None:
        self.name = name
        self.revision = revision
        self.fingerprint = fingerprint
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        # The keyword door: BM25, no model to load, the same for every dense model.
        self.keyword = KeywordEncoder()
        self._runner_options = RunnerOptions(
            precision=precision,
            token_budget=token_budget,
            max_batch=batch_size,
            backend=backend,
            prefetch=prefetch,
            cache=cache,
            timing=card.timing if card is not None else None,
        )
        self._device_setting = device
        self._card = card
        self._loader = loader
        self._loading = threading.Lock()
        self._model: Any = None
        self._runner: Runner | None = None
        self._combined: Combiner | None = None  # questions asked at once, embedded together
        self._questions: QuestionEncoder | None = None
        if model is not None:
            self._tokenizer = plain_tokenizer(model.tokenizer)
            self._special_tokens = int(model.tokenizer.num_special_tokens_to_add(pair=False))
            passing(lambda: self._adopt(model))
        elif card is not None and loader is not None:
            self._tokenizer = card.tokenizer()
            self._special_tokens = card.special_tokens
            self._questions = QuestionEncoder(card) if card.questions else None
        else:
            raise ValueError("an Encoder needs a model, or a card and a loader")
        self._piecewise = cuts_at_whitespace(self._tokenizer)

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
        lazy: bool = False,
    ) -> Encoder:
        """Load `name` (a hub name or a local directory) onto `device`, and warm it up.
        `cache`: docsync's cache folder, where the ONNX backends keep their export and model
        cards are kept (default: `docsync.plugin.settings.default_cache()`).

        `lazy`: where the model has a card, answer an encoder that loads the model only when
        passages must be embedded; where it has none, load it now and write its card."""
        name = os.fspath(name)
        calm_cpu_waits()  # before torch is imported, by the loader or the card
        check_present(device)  # also when the model is never loaded (a lazy encoder)
        check_precision(precision)
        source = cls.source(name)
        fingerprint = model_fingerprint(Path(source)) if Path(source).is_dir() else None
        encoder = partial(
            cls,
            name=source,
            query_prefix=query_prefix,
            passage_prefix=passage_prefix,
            precision=precision,
            token_budget=token_budget,
            batch_size=batch_size,
            backend=backend,
            cache=cache,
            fingerprint=fingerprint,
            device=device,
        )
        loader = partial(load_model, source, device, precision)
        if not lazy:  # the card, where there is one, keeps this CPU's precision timing
            return encoder(passing(loader), card=known_card(source, fingerprint, cache)).warm()
        card, model = passing(lambda: card_or_model(source, fingerprint, cache, loader))
        if model is None:
            return encoder(None, card=card, loader=loader)
        return encoder(model, card=card).warm()

    @staticmethod
    def source(name: str | os.PathLike[str]) -> str:
        """Where the model comes from: a local directory as an absolute path, else a hub name."""
        return model_source(os.fspath(name))

    @classmethod
    def from_settings(cls, settings: Settings, *, lazy: bool = False) -> Encoder:
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
            lazy=lazy,
        )

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (a lazy encoder loads it for its first passages)."""
        return self._runner is not None

    def warm(self) -> Encoder:
        """Load the model now if it is not, and run it once: first calls pay for lazy
        initialisation, which should not be a user's first question."""
        self._runner_now()
        assert self._combined is not None
        self._combined(self.query_input("warm up"))  # on the thread questions run on
        return self

    def _runner_now(self) -> Runner:
        runner = self._runner
        if runner is not None:
            return runner
        with self._loading:
            if self._runner is None:
                assert self._loader is not None
                model = passing(self._loader)  # see docsync.plugin.embedding.teams
                card, dimension = self._card, model_dimension(model)
                if card is not None and dimension != card.dimension:
                    raise ModelLoadError(
                        f"model {self.name!r} gives {dimension}-dimensional vectors but its "
                        f"card in {card.folder} says {card.dimension}: delete that folder"
                    )
                passing(lambda: self._adopt(model))  # a CPU precision may be timed here
            assert self._runner is not None
            return self._runner

    def _adopt(self, model: Any) -> None:
        self._model = model
        runner = Runner(model, self._runner_options)
        self._combined = Combiner(runner.embed_one, lambda texts: runner.embed(texts))
        self._runner = runner

    @property
    def dimension(self) -> int:
        if self._runner is None and self._card is not None:
            return self._card.dimension
        return self._runner_now().dimension

    @property
    def max_tokens(self) -> int:
        """The longest input the model reads, special tokens included."""
        if self._model is None and self._card is not None:
            return self._card.max_tokens
        return int(self._model.max_seq_length)

    @property
    def device(self) -> str:
        """The model's device; before a lazy encoder loads it, the one it will likely get."""
        if self._model is None:
            return likely_device(self._device_setting)
        return str(self._model.device)

    @property
    def precision(self) -> str:
        if self._runner is None:
            backend = self._runner_options.backend
            if backend != "torch":
                return "int8" if backend == "onnx-int8" else "fp32"
            card = self._card
            measured = card.cpu_precision if card is not None else None
            auto = self._runner_options.precision.strip().lower() == "auto"
            if measured and auto and self.device == "cpu":
                return measured
            return resolve_precision(self._runner_options.precision, self.device)
        return self._runner.precision

    @property
    def precision_timing(self) -> dict[str, int]:
        """Tokens a second of each precision `auto` timed on this CPU (empty where it did
        not: an explicit precision, a GPU)."""
        timing = self._runner.timing if self._runner is not None else None
        if timing is None and self._card is not None and self._card.cpu_precision:
            timing = self._card.timing
        return dict(timing.tokens_per_s) if timing is not None else {}

    @property
    def query_forward(self) -> str:
        """How questions are embedded: "lean" (`docsync.plugin.embedding.lean`), "model" (its module
        chain), or, before a lazy encoder has loaded the model, "onnx" (the card's export)."""
        if self._runner is None and self._questions is not None:
            return "onnx"
        return passing(lambda: self._runner_now().query_forward)  # may check the lean pass

    @property
    def window(self) -> int:
        """Passages worth collecting before embedding: enough to sort into good batches
        (on a GPU, enough to keep it busy)."""
        return 32768 if self.device.startswith("cuda") else 512

    @property
    def prefetch(self) -> bool:
        """Whether the next window is tokenized while one embeds; before a lazy encoder has
        loaded the model, decided as its `Runner` will decide it, on the likely device: a
        sync that embeds nothing (renames, metadata edits) sizes its windows by this and must
        not load the model for it (DESIGN: light until needed)."""
        if self._runner is not None:
            return self._runner.prefetch
        option = self._runner_options.prefetch
        return self.device.startswith("cuda") if option is None else option

    def window_at(self, index: int) -> int:
        """The size of the `index`-th window of a run. Where the next window is tokenized
        while one embeds (CUDA), windows start small and double up to `window`, so the
        device waits only for the first small one (a sixteenth) to be tokenized."""
        if not self.prefetch:
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
        if self._runner is None and self._questions is not None:
            return self._questions.embed(self.query_input(question))
        self._runner_now()
        assert self._combined is not None
        return self._combined(self.query_input(question))

    def prepare_passages(self, inputs: Sequence[str]) -> Prepared:
        """Passage inputs to be embedded next, by `embed_passages`: on a GPU their tokenizing
        begins now, on a thread, while the device works on earlier ones."""
        return self._runner_now().prepare(inputs)

    def embed_passages(
        self, inputs: Sequence[str] | Prepared, should_stop: Callable[[], bool] | None = None
    ) -> Vectors:
        """Embed passage inputs exactly as given (build each with `passage_input`), or what
        `prepare_passages` was given. `should_stop` is asked between batches; when it says
        so, `StopRequested` is raised. The work runs on a thread that ends with it (see
        `docsync.plugin.embedding.teams`)."""
        runner = self._runner_now()
        stop = threading.Event()  # set by an interrupt (Ctrl-C): the embedding ends at once

        def stopping() -> bool:
            return stop.is_set() or (should_stop is not None and should_stop())

        return passing(lambda: runner.embed(inputs, stopping), interrupted=stop.set)

    def token_spans(self, text: str) -> TokenSpans:
        """Character offsets of the model's tokens in `text`, special tokens left out."""
        return token_spans_many(self._tokenizer, [text], piecewise=self._piecewise)[0]

    def token_spans_many(self, texts: Sequence[str]) -> list[TokenSpans]:
        """`token_spans` of each text, the texts tokenized in parallel on the CPU's cores
        (one text at a time uses one core), a long one in pieces (see `docsync.plugin.spans`)."""
        return token_spans_many(self._tokenizer, texts, piecewise=self._piecewise)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text).ids)

    def count_tokens_many(self, texts: Sequence[str]) -> list[int]:
        """`count_tokens` of each text, a batch per tokenizer call (on every core; a batch
        at a time, so a file of tens of thousands of chunks never holds all their
        encodings at once)."""
        counts: list[int] = []
        for i in range(0, len(texts), COUNT_BATCH):
            batch = list(texts[i : i + COUNT_BATCH])
            counts.extend(
                len(e.ids) for e in self._tokenizer.encode_batch(batch, add_special_tokens=False)
            )
        return counts

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
        return self._runner_now().tokens(inputs)
