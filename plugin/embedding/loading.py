"""Loading a sentence-transformers model: from a local folder or the hub, with one clear
error for every way that fails, and quietly (no progress bars in a program's terminal).

torch, transformers and sentence-transformers are imported here only when a model is loaded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from docsync.plugin.device import resolve_device
from docsync.plugin.embedding.card import (
    ModelCard,
    card_key,
    model_dimension,
    model_inputs,
    read_card,
    write_card,
)
from docsync.plugin.embedding.machine import configure_cpu_threads, resolve_precision
from docsync.plugin.errors import ModelLoadError

log = logging.getLogger("docsync.encoder")


def load_model(source: str, device: str, precision: str) -> Any:
    """The SentenceTransformer at `source` (a folder or a hub name) on `device`, in fp32 as
    its files hold it."""
    resolved = resolve_device(device)
    resolve_precision(precision, resolved)  # refuse an impossible precision before loading
    if resolved == "cpu":
        configure_cpu_threads()
    log.info("loading model %s", source)
    if not Path(source).is_dir() and os.environ.get("HF_HUB_OFFLINE", "0") in ("", "0"):
        log.info(
            "(from the Hugging Face hub or its cache; an unreachable hub is retried for about "
            "a minute: HF_HUB_OFFLINE=1 skips it, DOCSYNC_MODEL=DIR loads a local copy)"
        )
    try:
        from sentence_transformers import SentenceTransformer

        with _quiet_loading():
            return SentenceTransformer(source, device=resolved)
    except Exception as exc:  # any loader failure means the same thing to the user
        raise ModelLoadError(_load_failure(source, exc)) from exc


def card_or_model(
    source: str, fingerprint: str | None, cache: Path | None, loader: Callable[[], Any]
) -> tuple[ModelCard | None, Any]:
    """The model's card where one is kept under `cache` (and no model: it is not loaded);
    else the model, loaded now, and the card written for it (None where the model's files
    are not on this machine, or the cache cannot be written)."""
    from docsync.plugin.settings import default_cache

    folder = cache or default_cache()
    key = card_key(source, fingerprint)
    card = read_card(folder, key) if key else None
    if card is not None:
        return card, None
    model = loader()
    if key is None:
        return None, model
    inputs, dimension = model_inputs(model), model_dimension(model)
    card = write_card(
        model, source=source, cache=folder, key=key, inputs=inputs, dimension=dimension
    )
    return card, model


def known_card(source: str, fingerprint: str | None, cache: Path | None) -> ModelCard | None:
    """The model's card where one is kept under `cache`; never writes one."""
    from docsync.plugin.settings import default_cache

    key = card_key(source, fingerprint)
    return read_card(cache or default_cache(), key) if key else None


def model_source(name: str) -> str:
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


def model_named(name: str) -> str:
    """The model setting `name` as it reads from any working directory: a local directory by
    its absolute path, anything else as given (one that is not there is left for the load
    to say so, `model_source`). For sending a setting to a daemon, and comparing two."""
    try:
        return model_source(name)
    except ModelLoadError:
        return name


def _load_failure(name: str, exc: BaseException) -> str:
    reason = " ".join(str(exc).split())[:300].rstrip(".") or type(exc).__name__
    if Path(name).is_dir():  # a local folder: the hub is no part of it
        return (
            f"could not load model {name!r}: {reason}. DOCSYNC_MODEL names a local directory: "
            "it must hold a sentence-transformers model (modules.json and the model's files, "
            "as SentenceTransformer.save writes them, or a copy of the model from the hub)."
        )
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
