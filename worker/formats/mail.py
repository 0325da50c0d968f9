"""Saved mail (`.eml`, RFC 5322 with MIME): the standard library's `email`.

The subject is the document's title and its first heading; `From`, `To`, `Cc` and `Date`
follow it as lines (so a question about who wrote finds the mail) and are the document's
metadata (`meta.from`, `meta.to`, `meta.cc`, `meta.date` in ISO 8601: usable as filters,
`--where meta.from=...`). Then the body: the text part, or where there is none the HTML part
read as the HTML reader reads a page (worker/formats/html.py). The names of attached files
close the text (`Attachments: report.pdf, budget.xlsx`); their content is not read here: one
file is one document, and attachments as their own documents under the mail's path need
the pipeline to carry more than one document per file.

A mail encrypted with S/MIME or PGP (`multipart/encrypted`, `application/pkcs7-mime`) is
skipped as `encrypted`; bytes with no header at all are `corrupt`.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
from email.message import EmailMessage

from docsync.worker.formats import EML, Extracted, Unreadable
from docsync.worker.formats.html import page_markdown
from docsync.worker.formats.pages import one_line
from docsync.worker.formats.text import has_text, metadata

_ENCRYPTED_TYPES = frozenset({
    "multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime",
})  # fmt: skip
_ADDRESS_HEADERS = (("From", "from"), ("To", "to"), ("Cc", "cc"))
MAX_ATTACHMENT_NAMES = 50


def read_eml(raw: bytes) -> Extracted:
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
        names = _attachments(message)
    except (ValueError, TypeError, LookupError, AttributeError, IndexError) as exc:
        raise Unreadable("corrupt", f"not a readable mail ({type(exc).__name__}: {exc})") from None
    if not has_text(body) and not has_text(subject):
        raise Unreadable("no_text", "the mail has no subject and no text")
    blocks = [f"# {subject}" if subject else "", "\n".join(lines), body]
    if names:
        blocks.append("Attachments: " + ", ".join(names))
    text = "\n\n".join(b for b in blocks if b.strip())
    fields["title"] = subject
    title, tags, meta = metadata(fields)
    return Extracted(text, EML, title=title, tags=tags, meta=meta)


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


def _attachments(message: EmailMessage) -> list[str]:
    names: list[str] = []
    for part in message.iter_attachments():
        name = part.get_filename()
        if name and len(names) < MAX_ATTACHMENT_NAMES:
            names.append(one_line(name))
    return names
