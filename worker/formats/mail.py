"""Saved mail (`.eml`, RFC 5322 with MIME): the standard library's `email`.

The subject is the document's title and its first heading; `From`, `To`, `Cc` and `Date`
follow it as lines (so a question about who wrote finds the mail) and are the document's
metadata (`meta.from`, `meta.to`, `meta.cc`, `meta.date` in ISO 8601: usable as filters,
`--where meta.from=...`). Then the body: the text part, or where there is none the HTML part
read as the HTML reader reads a page (worker/formats/html.py). The names of attached files
follow (`Attachments: report.pdf, budget.xlsx`), then each attachment of a format docsync
reads, as a section of its own (`# Attachment: report.pdf`) holding what that format's
reader gives (in this same reader process, under the mail's time limit; an attached mail's
own attachments are not opened). One file is one document: an attachment's hits are the
mail's, in the attachment's section; an attachment that cannot be read is named with its
skip reason (`report.pdf (not read: encrypted)`).

A mail encrypted with S/MIME or PGP (`multipart/encrypted`, `application/pkcs7-mime`) is
skipped as `encrypted`; bytes with no header at all are `corrupt`.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
from email.message import EmailMessage
from pathlib import PurePosixPath

from docsync.worker.formats import (
    BINARY_FORMATS,
    EML,
    READ_SUFFIXES,
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
    if not has_text(body) and not has_text(subject):
        raise Unreadable("no_text", "the mail has no subject and no text")
    blocks: list[Block] = [(f"# {subject}", (0,)) if subject else ("", ())]
    blocks += [("\n".join(lines), ()), (body, ())]
    if names:
        blocks.append(("Attachments: " + ", ".join(names), ()))
    blocks.extend(attached)
    text, headings = _join(blocks)
    fields["title"] = subject
    title, tags, meta = metadata(fields)
    return Extracted(text, EML, headings=headings, title=title, tags=tags, meta=meta)


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


def _attachments(message: EmailMessage, depth: int) -> tuple[list[str], list[Block]]:
    """The attachments' names (with why one was not read), and a section for each one that
    was read."""
    names: list[str] = []
    sections: list[Block] = []
    size = 0
    for part in message.iter_attachments():
        name = one_line(part.get_filename() or "")
        if not name or len(names) >= MAX_ATTACHMENT_NAMES:
            continue
        extracted, why = _attachment_text(name, part, depth)
        names.append(f"{name} (not read: {why})" if why else name)
        if extracted is not None and size + len(extracted.text) <= MAX_TEXT_CHARS:
            heading = f"# Attachment: {name}\n\n"
            text, marks = _demoted(extracted)
            sections.append((heading + text, (0, *(len(heading) + m for m in marks))))
            size += len(extracted.text)
    return names, sections


def _attachment_text(name: str, part: EmailMessage, depth: int) -> tuple[Extracted | None, str]:
    """(what its reader gave, "") for an attachment read, (None, reason) for one that could
    not be, (None, "") for one of a format docsync does not read."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in READ_SUFFIXES or (suffix == ".eml" and depth > 0):
        return None, ""
    payload = part.get_payload(decode=True)
    raw = payload if isinstance(payload, bytes) else b""
    kind = format_of(name)
    try:
        if kind == EML:
            extracted = read_eml(raw, depth + 1)
        elif kind in BINARY_FORMATS:
            from docsync.worker.formats.isolated import extract

            extracted = extract(kind, raw)
        else:
            extracted = read_text(raw, kind)
    except Unreadable as exc:
        return None, exc.reason
    return extracted, ""


def _demoted(extracted: Extracted) -> tuple[str, list[int]]:
    """An attachment's text (less front matter) with the headings its reader marked one
    level deeper (`# Title` becomes `## Title`, under `# Attachment: ...`), and where they
    start; a reader that leaves headings to the text's own rules (Markdown, HTML, Word)
    gives none here, its text kept as it is."""
    start = extracted.body_start
    marks = [h - start for h in extracted.headings or () if h >= start]
    source = extracted.text[start:]
    parts: list[str] = []
    offsets: list[int] = []
    previous = 0
    for mark in marks:
        parts.append(source[previous:mark])
        offsets.append(sum(map(len, parts)))
        if source.startswith("#", mark) and not source.startswith("######", mark):
            parts.append("#")
        previous = mark
    parts.append(source[previous:])
    text = "".join(parts)
    lead = len(text) - len(text.lstrip())
    return text.strip(), [o - lead for o in offsets if o >= lead]
