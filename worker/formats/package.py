"""ZIP packages (Office Open XML, OpenDocument, EPUB) opened with their bounds checked first.

Every one of these formats is a ZIP of XML parts, so every one can be a zip bomb (a few
kilobytes that inflate to gigabytes), truncated (no central directory), or encrypted: a
password-protected Office file is not a ZIP at all but an OLE compound file holding an
`EncryptedPackage` stream, an OpenDocument file says so in its manifest, and a ZIP can mark
entries as encrypted. `open_zip` tells these apart before any parser sees the bytes;
`member` reads one part no larger than it declares (Python's `zipfile` stops at the declared
size and checks the CRC), and `parse_xml` parses a part without entities, DTDs or network.
"""

from __future__ import annotations

import io
import zipfile

from lxml import etree

from docsync.worker.formats import Unreadable

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
# The most a package may inflate to (the sum of its parts' declared sizes; `zipfile` reads no
# part past its declared size). Not a ratio: sheets of repeated rows compress 200 times and
# more, as zip bombs do; what a package inflates to past this bound is data, not a document.
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
_MAX_MEMBERS = 100_000


def open_zip(raw: bytes, kind: str) -> zipfile.ZipFile:
    """`raw` as a ZIP whose declared sizes are within bounds; `Unreadable` (`encrypted`,
    `corrupt`, `too_large`) otherwise. `kind` names the format in the messages."""
    if raw.startswith(OLE_MAGIC):
        if _ENCRYPTED_STREAM in raw:
            raise Unreadable("encrypted", f"the {kind} file needs a password")
        raise Unreadable("corrupt", f"a legacy binary Office file, not {kind}: save it as {kind}")
    try:
        package = zipfile.ZipFile(io.BytesIO(raw))
        infos = package.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise Unreadable("corrupt", f"not a readable {kind} (broken ZIP: {exc})") from None
    if len(infos) > _MAX_MEMBERS:
        raise Unreadable("too_large", f"the {kind} package holds {len(infos):,} parts")
    total = sum(info.file_size for info in infos)
    if total > MAX_UNPACKED_BYTES:
        raise Unreadable(
            "too_large", f"the {kind} package inflates to {total:,} bytes (a zip bomb?)"
        )
    if any(info.flag_bits & 0x1 for info in infos):
        raise Unreadable("encrypted", f"the {kind} file's parts are encrypted")
    return package


def member(package: zipfile.ZipFile, name: str, kind: str) -> bytes:
    """One part's bytes; `corrupt` when it is missing or does not inflate to what it says."""
    try:
        return package.read(name)
    except KeyError:
        raise Unreadable("corrupt", f"the {kind} package has no {name}") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError) as exc:
        raise Unreadable("corrupt", f"{name} in the {kind} package is broken ({exc})") from None


_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_pis=True
)


def parse_xml(data: bytes, name: str, kind: str) -> etree._Element:
    """A part parsed as XML: no entities resolved, no DTD or network fetched."""
    try:
        return etree.fromstring(data, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise Unreadable("corrupt", f"{name} in the {kind} package is not XML ({exc})") from None
