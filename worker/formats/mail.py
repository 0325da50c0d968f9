"""Saved mail (`.eml`, RFC 5322 with MIME): the standard library's `email`.

The subject is the document's title and its first heading; `From`, `To`, `Cc` and `Date`
follow it as lines (so a question about who wrote finds the mail) and are the document's
metadata (`meta.from`, `meta.to`, `meta.cc`, `meta.date` in ISO 8601: usable as filters,
`--where meta.from=...`). Then the body: the text part, or where there is none the HTML part
read as the HTML reader reads a page (worker/formats/html.py). The names of attached files
follow (`Attachments: report.pdf, budget.xlsx`).

Each attachment of a format docsync reads is read by that format's reader (in this same
reader process, under the mail's time limit) into a document of its own, `Extracted.
attachments`, indexed under the mail's path (`inbox/a.eml/report.pdf`, see
worker/attachments.py) with its own format, pages and headings, its file name as title. Names
are made safe and unique within the mail (`/` becomes `_`, a repeated name is numbered:
`report (2).pdf`). An attachment that cannot be read is named in the mail with its reason
(`report.pdf (not read: encrypted)`) and skipped with it; an attached mail is a document, its
own attachments only named. Images are only named (see `_readable`).

A mail encrypted with S/MIME or PGP (`multipart/encrypted`, `application/pkcs7-mime`) is
skipped as `encrypted`; bytes with no header at all are `corrupt`.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
from dataclasses import replace
from email.message import EmailMessage
from pathlib import PurePosixPath

from docsync.worker.formats import (
    BINARY_FORMATS,
    EML,
    IMAGE,
    READ_SUFFIXES,
    Attachment,
    Extracted,
    Unreadable,
    format_of,
)
from docsync.worker.formats.html import page_markdown
from docsync.worker.formats.pages import MAX_TEXT_CHARS, one_line
from docsync.worker.formats.text import has_text, metadata, read_text

_ENCRYPTED_TYPES = frozenset({
    "multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime",
})  # fmt: skip
_ADDRESS_HEADERS = (("From", "from"), ("To", "to"), ("Cc", "cc"))
MAX_ATTACHMENT_NAMES = 50
MAX_NAME_CHARS = 120  # an attachment's name in its path


def read_eml(raw: bytes, depth: int = 0) -> Extracted:
    """`depth`: 1 for a mail attached to a mail (its attachments are only named)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    if not isinstance(message, EmailMessage) or not message.keys():
        raise Unreadable("corrupt", "no mail headers: not a saved mail")
    try:
        if message.get_content_type() in _ENCRYPTED_TYPES:
            raise Unreadable("encrypted", "the mail is encrypted (S/MIME or PGP)")
        subject = one_line(str(message.get("Subject", "")))
        fields: dict[object, object] = {}
        lines: list[str] = []
        for header, key in _ADDRESS_HEADERS:
            value = one_line(str(message.get(header, "")))
            if value:
                fields[key] = value
                lines.append(f"{header}: {value}")
        date = _date(message)
        if date:
            fields["date"] = date
            lines.append(f"Date: {date}")
        body = _body(message)
        names, attached = _attachments(message, depth)
    except (ValueError, TypeError, LookupError, AttributeError, IndexError) as exc:
        raise Unreadable("corrupt", f"not a readable mail ({type(exc).__name__}: {exc})") from None
    if not has_text(body) and not has_text(subject) and not names:
        raise Unreadable("no_text", "the mail has no subject, no text and no attachment")
    blocks: list[Block] = [(f"# {subject}", (0,)) if subject else ("", ())]
    blocks += [("\n".join(lines), ()), (body, ())]
    if names:
        blocks.append(("Attachments: " + ", ".join(names), ()))
    text, headings = _join(blocks)
    fields["title"] = subject
    title, tags, meta = metadata(fields)
    return Extracted(
        text, EML, headings=headings, title=title, tags=tags, meta=meta, attachments=attached
    )


# A block of the mail's text, and where its heading lines start in it.
Block = tuple[str, tuple[int, ...]]


def _join(blocks: list[Block]) -> tuple[str, tuple[int, ...]]:
    """The blocks joined by blank lines, and every heading's offset in the whole. Only these
    lines are headings: the subject, each attachment's, and the headings its reader found
    (a `# comment` in a plain-text body stays text)."""
    parts: list[str] = []
    headings: list[int] = []
    offset = 0
    for text, marks in blocks:
        if not text.strip():
            continue
        if parts:
            offset += 2
        headings += [offset + mark for mark in marks]
        parts.append(text)
        offset += len(text)
    return "\n\n".join(parts), tuple(headings)


def _date(message: EmailMessage) -> str:
    value = message.get("Date")
    if value is None:
        return ""
    try:
        return email.utils.parsedate_to_datetime(str(value)).isoformat()
    except (TypeError, ValueError, IndexError):
        return one_line(str(value))


def _body(message: EmailMessage) -> str:
    """The text part, else the HTML part as Markdown; "" when the mail has neither."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    content = part.get_content()
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        return page_markdown(content)
    return content.replace("\r\n", "\n").strip()


def _attachments(message: EmailMessage, depth: int) -> tuple[list[str], tuple[Attachment, ...]]:
    """The attachments' names as the mail's text lists them (with why one was not read), and
    the documents read from them (none for an attached mail's)."""
    names: list[str] = []
    attached: list[Attachment] = []
    taken: set[str] = set()
    size = 0
    for part in message.iter_attachments():
        name = one_line(part.get_filename() or "")
        if not name or len(names) >= MAX_ATTACHMENT_NAMES:
            continue
        if depth > 0 or not _readable(name):
            names.append(name)
            continue
        unique = unique_name(name, taken)
        try:
            extracted = _read_attachment(unique, part, depth)
            if size + len(extracted.text) > MAX_TEXT_CHARS:
                raise Unreadable(
                    "too_large", f"the mail's attachments pass {MAX_TEXT_CHARS} characters"
                )
        except Unreadable as exc:
            names.append(f"{name} (not read: {exc.reason})")
            attached.append(Attachment(unique, None, exc.reason, exc.detail))
            continue
        size += len(extracted.text)
        names.append(name)
        attached.append(Attachment(unique, replace(extracted, title=unique)))
    return names, tuple(attached)


def _readable(name: str) -> bool:
    """Whether an attachment of this name is read: of a format docsync reads, and not an
    image. Images attached to mail are mostly logos and photographs, and reading one costs
    OCR (seconds a page) under the mail's one time limit: named, not read."""
    return PurePosixPath(name).suffix.lower() in READ_SUFFIXES and format_of(name) != IMAGE


def unique_name(name: str, taken: set[str]) -> str:
    """`name` as the last part of a path: no `/` or `\\`, not `.` or `..`, at most
    `MAX_NAME_CHARS` characters (its suffix kept), numbered when `taken` holds it (`a (2).pdf`);
    added to `taken`."""
    safe = "".join("_" if c in "/\\" or not c.isprintable() else c for c in name)
    safe = safe.encode("utf-8", "replace").decode("utf-8")
    if not safe.strip("."):
        safe = "attachment" + safe
    path = PurePosixPath(safe)
    stem, suffix = path.stem, path.suffix[:20]
    stem = stem[: MAX_NAME_CHARS - len(suffix)]
    unique, number = stem + suffix, 1
    while unique.lower() in taken:
        number += 1
        unique = f"{stem} ({number}){suffix}"
    taken.add(unique.lower())
    return unique


def _read_attachment(name: str, part: EmailMessage, depth: int) -> Extracted:
    """What its format's reader gives for an attachment; `Unreadable` for one that cannot be
    read, whatever the reader failed with (it must not cost the mail)."""
    payload = part.get_payload(decode=True)
    raw = payload if isinstance(payload, bytes) else b""
    if not raw.strip():
        raise Unreadable("empty", "the attached file is empty")
    kind = format_of(name)
    try:
        if kind == EML:
            return read_eml(raw, depth + 1)
        if kind in BINARY_FORMATS:
            from docsync.worker.formats.isolated import extract

            return extract(kind, raw)
        return read_text(raw, kind)
    except MemoryError:
        raise Unreadable("too_large", "reading it needed more memory than the reader has") from None
    except Unreadable:
        raise
    except Exception as exc:  # a parser's own bug on a bad attachment: that attachment's problem
        raise Unreadable("corrupt", f"{type(exc).__name__}: {exc}") from None
