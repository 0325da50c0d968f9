"""Documents read out of a file: a mail's attached files, each indexed under the mail's path
(`inbox/a.eml/report.pdf`) with its own format, pages and title, and `container` naming the
mail in its payload.

The mail is the unit the planner reads, stamps and keeps: its attachments are current only
as the mail is, so a mail is unchanged (not read) only when its own points and every one of
its attachments' carry its stat key (or hash), complete and of this chunker. Its documents
are written as one file's parts (`FileWrite` shared): the deletes of attachments it no longer
has and its attachments first, the mail's own document last, and only the mail's counts as a
file changed. So after a crash (`kill -9`) between any two writes the mail's own points are
old, and it is read again (its unchanged documents then write nothing); an attachment whose
write Qdrant refused stops the mail's own document too. Attachments written from another
version than the mail's own points (a store put together from two backups) are caught all
the same: the mail is read again. A mail gone, renamed or moved takes its attachments with it
(their paths are under its own), and a moved mail's attachments find their vectors as a
moved file's chunks do.

A path under a mail's path can only be an attachment's: a file cannot also be a folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from docsync.worker.plan import FilePlan, FileWrite, IndexedFile, plan_removal
from docsync.worker.read import Document
from docsync.worker.report import Skip
from docsync.worker.scan import SourceFile

# The suffix of the files whose documents include their attachments (lower case).
MAIL_SUFFIX = ".eml"
Attached = Mapping[str, IndexedFile]  # an indexed mail's attachments: path -> listing


@dataclass
class ToPlan:
    """A document to chunk and plan: a file's, or one read out of it (`container`: the file's
    path), with the write its file's documents share."""

    document: Document
    has_points: bool
    container: str = ""
    write: FileWrite | None = None


def attached_paths(indexed: Mapping[str, IndexedFile]) -> dict[str, dict[str, IndexedFile]]:
    """The indexed attachments of each indexed or not indexed mail path: the listed paths
    directly under a path ending in `.eml`."""
    by_mail: dict[str, dict[str, IndexedFile]] = {}
    for path, entry in indexed.items():
        parent, sep, _ = path.rpartition("/")
        if sep and parent.lower().endswith(MAIL_SUFFIX):
            by_mail.setdefault(parent, {})[path] = entry
    return by_mail


def unchanged(entry: IndexedFile | None, attached: Attached, key: str, chunker: str) -> bool:
    """A file whose points, and all its attachments', carry this stat key and are complete."""
    if entry is None or not entry.is_unchanged(key, chunker):
        return False
    return all(
        a.is_unchanged(key, chunker) and a.file_hash == entry.file_hash for a in attached.values()
    )


def current_hash(entry: IndexedFile | None, attached: Attached, chunker: str) -> str | None:
    """The hash the file's points and all its attachments' were written from, when they are
    complete and of this chunker; None when anything is to be planned again."""
    current = entry.current_hash(chunker) if entry is not None else None
    if current is None or any(a.current_hash(chunker) != current for a in attached.values()):
        return None
    return current


def kept(root: str, attached: Iterable[str]) -> list[FilePlan]:
    """The attachments of a file that is current, or whose read failed (its points stay): a
    part of the file's write with nothing to write, so that their paths are kept."""
    return [FilePlan(root=root, path=path, final=False) for path in attached]


def documents(
    document: Document,
    has_points: bool,
    attached: Attached,
    point_ids: Callable[[str], list[str]],
) -> tuple[list[Skip | FilePlan], list[ToPlan]]:
    """A file read with its attachments: the skips of those not read and the deletes of
    those it no longer has (`point_ids` of a path: its points), as events now; then its
    documents to plan, its own last."""
    source, content = document.source, document.content
    root = str(source.root)
    write = FileWrite()
    events: list[Skip | FilePlan] = []
    plans: list[ToPlan] = []
    for attachment in content.attachments:
        path = f"{source.path}/{attachment.name}"
        if attachment.content is None:
            events.append(Skip(path, attachment.reason, attachment.detail))
            continue
        inner = Document(
            SourceFile(source.root, path),
            attachment.content,
            document.file_hash,
            document.stat_key,
        )
        plans.append(ToPlan(inner, path in attached, source.path, write))
    wanted = {plan.document.source.path for plan in plans}
    for path in attached:
        if path not in wanted:
            removal = plan_removal(root, path, point_ids(path))
            removal.final, removal.write = False, write
            events.append(removal)
    own = replace(document, content=replace(content, attachments=()))
    plans.append(ToPlan(own, has_points, "", write))
    return events, plans
