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
_INSTALL = "apt-get install tesseract-ocr tesseract-ocr-{language}"
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
        page_seconds=settings.read_timeout,
        missing=f"{missing}, so scanned PDFs and images are not read (DOCSYNC_OCR)"
        if missing
        else "",
    )


def _missing(languages: str) -> str:
    """What keeps Tesseract from reading `languages` here ("" when nothing does)."""
    command = shutil.which("tesseract")
    first = languages.split("+")[0]
    if command is None:
        return f"Tesseract is not installed ({_INSTALL.format(language=first)})"
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
    installed = set(listed.stdout.split())
    lacking = [name for name in languages.split("+") if name not in installed]
    if lacking:
        return (
            f"Tesseract has no data for {', '.join(lacking)} "
            f"(apt-get install tesseract-ocr-{lacking[0]})"
        )
    return ""


def tell_missing(options: OcrOptions, path: str) -> None:
    """Say once in this process that `path` needed the OCR that is missing."""
    if options.missing and not _told.is_set():
        _told.set()
        log.warning("%s has no text but its images: %s", path, options.missing)
