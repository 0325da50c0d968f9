"""docsync's log lines on stderr: `docsync: LEVEL message`, or one JSON object a line for a
log collector (`--log-format json`)."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Literal, get_args

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]  # --log-level
LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)
LogFormat = Literal["text", "json"]  # --log-format
FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)
# Libraries that log every retry of an unreachable hub, or their own progress: docsync's one
# error line says it all.
_NOISY = ("huggingface_hub", "httpx", "sentence_transformers", "transformers")


def configure_logging(level: LogLevel, style: LogFormat = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if style == "json"
        else logging.Formatter("docsync: %(levelname)s %(message)s")
    )
    logging.basicConfig(level=getattr(logging, level), handlers=[handler], force=True)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # huggingface_hub sets its own logger's level when it is imported, over the one above.
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the fields a record carries
    (`path`, `embedded`) for machines to pick out."""

    EXTRA = ("path", "embedded")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: getattr(record, k) for k in self.EXTRA if hasattr(record, k)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
