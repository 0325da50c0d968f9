"""The OCR page cache: each page's text and confidence by the page's content hash, in one
SQLite file in docsync's cache folder (`<DOCSYNC_CACHE>/ocr/pages.sqlite`, beside the model
cards), so that no page is read by Tesseract twice.

Bounded: past `max_bytes` of text, the pages used longest ago go. It is a cache: a file
that cannot be opened, read or written (locked by another sync for too long, corrupt, on a
full disk) costs only OCR run again, never a file.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

from docsync.worker.formats.ocr import OcrLine, OcrPage

log = logging.getLogger("docsync.sync")
FILE = "pages.sqlite"
_BUSY_SECONDS = 2.0  # how long a write waits for another process's
# Pruned to this share of the bound, so that a full cache is not pruned on every page.
_PRUNE_TO = 0.9
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS pages (key TEXT PRIMARY KEY, lines TEXT NOT NULL,"
    " confidence REAL NOT NULL, bytes INTEGER NOT NULL, used REAL NOT NULL)"
)


class OcrCache:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.path = folder / FILE
        self.max_bytes = max_bytes
        self._db: sqlite3.Connection | None = None

    def get(self, key: str) -> OcrPage | None:
        db = self._open()
        if db is None:
            return None
        try:
            row = db.execute("SELECT lines, confidence FROM pages WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            with db:
                db.execute("UPDATE pages SET used = ? WHERE key = ?", (time.time(), key))
            return OcrPage(_lines(row[0]), float(row[1]))
        except (sqlite3.Error, ValueError, TypeError, KeyError) as exc:
            log.debug("OCR cache %s unreadable: %s", self.path, exc)
            return None

    def put(self, key: str, page: OcrPage) -> None:
        db = self._open()
        if db is None:
            return
        lines = json.dumps([[x.text, x.left, x.bottom, x.paragraph_start] for x in page.lines])
        size = len(lines.encode()) + len(key)
        try:
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?, ?)",
                    (key, lines, page.confidence, size, time.time()),
                )
                self._prune(db)
        except sqlite3.Error as exc:
            log.debug("OCR cache %s not written: %s", self.path, exc)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _prune(self, db: sqlite3.Connection) -> None:
        """Drop the pages used longest ago while the cache holds more than its bound."""
        total = int(db.execute("SELECT COALESCE(SUM(bytes), 0) FROM pages").fetchone()[0])
        if total <= self.max_bytes:
            return
        excess = total - int(self.max_bytes * _PRUNE_TO)
        rows = db.execute("SELECT key, bytes FROM pages ORDER BY used").fetchall()
        doomed: list[tuple[str]] = []
        for key, size in rows:
            if excess <= 0:
                break
            doomed.append((key,))
            excess -= int(size)
        db.executemany("DELETE FROM pages WHERE key = ?", doomed)

    def _open(self) -> sqlite3.Connection | None:
        if self._db is not None:
            return self._db
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=_BUSY_SECONDS, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            log.debug("no OCR cache at %s: %s", self.path, exc)
            return None
        db.isolation_level = "DEFERRED"
        self._db = db
        return db


def _lines(raw: str) -> tuple[OcrLine, ...]:
    return tuple(
        OcrLine(str(text), int(left), int(bottom), bool(start))
        for text, left, bottom, start in json.loads(raw)
    )
