"""`docsync show`, `status`, `export` and `import`: a document as docsync reads it, and the
collection described, written out and read back."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from docsync.plugin.schema import SHEET_FORMATS, SLIDE_FORMATS
from docsync.plugin.settings import Settings
from docsync.worker import render, wiring
from docsync.worker.cli.app import PATH, command, edge, fail

log = logging.getLogger("docsync")


@command(
    "show",
    "print a document's text as docsync extracted it (to check a hit's span)",
    "FILE: the file (a PDF, web page, Word or text file), or a mail's attachment "
    "(inbox/a.eml/report.pdf)",
)
@click.argument("file", type=PATH)
@click.option(
    "--start", type=int, metavar="START", default=0, help="first character (a hit's start)"
)
@click.option(
    "--end", type=int, metavar="END", help="end character (a hit's end; default: the end)"
)
@click.option(
    "--pages",
    is_flag=True,
    help="print where each page starts instead (PDF pages, slides, blocks of rows)",
)
@edge
def show(settings: Settings, file: Path, start: int, end: int | None, pages: bool) -> int:
    """The extracted text of a file, or a span of it: what a hit's start and end index."""
    from dataclasses import replace

    from docsync.worker.ocr_setup import ocr_options
    from docsync.worker.read import Unchanged, read_document
    from docsync.worker.report import Skip
    from docsync.worker.scan import SourceFile

    path = file.absolute()
    # A mail's attachment is shown from the mail: its path is the mail's and its name.
    attachment = "" if path.is_file() or not path.parent.is_file() else path.name
    if attachment:
        path = path.parent
    if not path.is_file():
        # Hits name a file relative to its root: `show` reads the file itself.
        relative = " (a hit's path is relative to its root: give ROOT/PATH)"
        hint = "" if file.is_absolute() else relative
        return fail(f"no such file: {file}{hint}")
    real = path.resolve()  # a link is shown as the file it names (the read checks the root)
    document = read_document(
        SourceFile(real.parent, real.name),
        max_bytes=settings.max_file_bytes,
        timeout=settings.read_timeout,
        memory_mb=settings.reader_memory_mb,
        ocr=ocr_options(settings),
    )
    if isinstance(document, Skip):
        return fail(f"{file} is not indexed as text: {document.reason} ({document.detail})", 1)
    assert not isinstance(document, Unchanged)
    if attachment:
        found = next((a for a in document.content.attachments if a.name == attachment), None)
        if found is None:
            return fail(f"no such file: {file} (nor an attachment of {path.name})")
        if found.content is None:
            return fail(f"{file} is not indexed as text: {found.reason} ({found.detail})", 1)
        document = replace(document, content=found.content)
    if pages:
        if not document.content.pages:
            return fail(f"{file} has no pages ({document.content.format})", 1)
        labels = document.content.labels  # printed labels first, as hits cite them
        for number, page_start in enumerate(document.content.pages, 1):
            label = labels[number - 1] if labels else ""
            page = f"{label} ({number})" if label and label != str(number) else str(number)
            kind = document.content.format  # a sheet's block: its cell range alone
            unit = "slide " if kind in SLIDE_FORMATS else "" if kind in SHEET_FORMATS else "p. "
            print(f"{unit}{page}\t{page_start}")
        return 0
    end = len(document.text) if end is None else end
    if not 0 <= start <= end <= len(document.text):
        return fail(
            f"--start and --end must satisfy 0 <= start <= end <= {len(document.text)} "
            f"(the length of {file}'s text)"
        )
    sys.stdout.write(document.text[start:end] + "\n")
    return 0


@command("status", "describe the collection")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@edge
def status(settings: Settings, as_json: bool) -> int:
    from docsync.worker.status import collection_status

    info = wiring.daemon_status(settings)
    if info is None:
        with wiring.checked_store(settings, reading=True) as store:
            info = collection_status(store)
    if as_json:
        render.print_json(info)
    else:
        render.print_lines(render.status_text(info))
    return 0


@command("export", "write every point as JSON lines on stdout")
@click.option("--vectors", is_flag=True, help="include vectors (needed by import)")
@edge
def export(settings: Settings, vectors: bool) -> int:
    from docsync.worker.transfer import export_points

    with wiring.checked_store(settings, reading=True) as store:
        count = export_points(store, sys.stdout, vectors=vectors)
    log.info(
        "exported %d points from collection %r (%s)", count, store.collection, store.description
    )
    return 0


@command(
    "import",
    "read an export (--vectors) into the collection",
    "FILE: export file (default: standard input)",
)
@click.argument("file", type=PATH, required=False)
@edge
def import_(settings: Settings, file: Path | None) -> int:
    from docsync.worker.progress import progress_bar
    from docsync.worker.transfer import import_points, read_export

    try:
        source = file.open(encoding="utf-8") if file else sys.stdin
    except OSError as exc:
        return fail(f"cannot read {file}: {exc.strerror or exc}")
    try:
        incoming = read_export(source)  # a broken input creates no store or collection
        with wiring.checked_store(settings) as store, progress_bar() as progress:
            count = import_points(store, incoming, on_batch=progress.advance)
            store.optimize()
    except UnicodeDecodeError:
        return fail(f"{file or 'the input'} is not a docsync export (not UTF-8 text)")
    finally:
        if file:
            source.close()
    print(f"imported {count} points into collection {store.collection!r} ({store.description})")
    return 0
