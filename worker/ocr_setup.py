"""Whether a sync runs OCR, decided once from the settings: DOCSYNC_OCR (auto, off, on),
DOCSYNC_OCR_LANGUAGES, and whether Tesseract and its language data are installed.

With `auto` and no Tesseract (or no data for a language), scanned PDFs and images are
skipped as `no_text`, and the first such file a process meets says so in one line, with
what to install. With `on`, a missing Tesseract is a configuration error before anything
syncs.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading

from docsync.plugin.errors import ConfigError
from docsync.plugin.settings import Settings
from docsync.worker.formats.ocr import OCR_OFF, OcrOptions

log = logging.getLogger("docsync.sync")
_LIST_SECONDS = 10.0  # `tesseract --list-langs` answers in milliseconds
_told = threading.Event()


def ocr_options(settings: Settings) -> OcrOptions:
    """The OCR a sync with these settings runs (`OCR_OFF`'s `command` "" where none)."""
    if settings.ocr == "off":
        return OCR_OFF
    missing = _missing(settings.ocr_languages)
    if missing and settings.ocr == "on":
        raise ConfigError(f"DOCSYNC_OCR=on, but {missing}")
    command = "" if missing else shutil.which("tesseract") or ""
    return OcrOptions(
        command=command,
        languages=settings.ocr_languages,
        cache=str(settings.cache / "ocr"),
        cache_bytes=settings.ocr_cache_mb * 1024 * 1024,
        seconds=settings.read_timeout,
        missing=missing,
    )


def _missing(languages: str) -> str:
    """What keeps Tesseract from reading `languages` here ("" when nothing does)."""
    command = shutil.which("tesseract")
    if command is None:
        return "Tesseract is not installed"
    try:
        listed = subprocess.run(
            [command, "--list-langs"],
            capture_output=True,
            text=True,
            timeout=_LIST_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"Tesseract at {command} does not run ({exc})"
    installed = set((listed.stdout + listed.stderr).split())  # Tesseract 3 said it on stderr
    lacking = [name for name in languages.split("+") if name not in installed]
    if lacking:
        return f"Tesseract has no data for {'+'.join(lacking)}"
    return ""


def tell_missing(options: OcrOptions, path: str) -> None:
    """Say once in this process that `path` needed the OCR that is missing, and what to
    install for it."""
    if options.missing and not _told.is_set():
        _told.set()
        packages = " ".join(f"tesseract-ocr-{name}" for name in options.languages.split("+"))
        log.warning(
            "%s is scanned (or an image) and %s: scanned PDFs and images are skipped as "
            "no_text until it is (apt-get install tesseract-ocr %s), or set DOCSYNC_OCR=off",
            path,
            options.missing,
            packages,
        )
