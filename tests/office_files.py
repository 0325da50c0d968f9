"""Files for tests/test_office.py that Debian ships no example of (an `.odp`, a deck with
speaker notes, CSV, mail) and hostile ones: zip bombs, huge decks and sheets, encrypted
packages. Every one is made in a few milliseconds, in memory."""

from __future__ import annotations

import functools
import io
import zipfile
from email.message import EmailMessage
from pathlib import Path

OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_ODF_NAMESPACES = (
    f'xmlns:office="{OFFICE}" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
    'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0"'
)
_MANIFEST = (
    '<?xml version="1.0"?><manifest:manifest '
    'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
    '<manifest:file-entry manifest:full-path="/" manifest:media-type="{mime}"/>'
    '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">'
    "{encryption}</manifest:file-entry></manifest:manifest>"
)
ODP_MIME = "application/vnd.oasis.opendocument.presentation"
ODS_MIME = "application/vnd.oasis.opendocument.spreadsheet"
ODT_MIME = "application/vnd.oasis.opendocument.text"


def odf(mime: str, body: str, *, encrypted: bool = False) -> bytes:
    """An OpenDocument package whose content.xml's office:body holds `body`."""
    encryption = (
        '<manifest:encryption-data manifest:checksum-type="SHA1" manifest:checksum="x"/>'
        if encrypted
        else ""
    )
    content = f'<?xml version="1.0"?><office:document-content {_ODF_NAMESPACES}>'
    content += f"<office:body>{body}</office:body></office:document-content>"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("mimetype", mime, compress_type=zipfile.ZIP_STORED)
        package.writestr("content.xml", content)
        package.writestr(
            "META-INF/manifest.xml", _MANIFEST.format(mime=mime, encryption=encryption)
        )
    return out.getvalue()


def odp_slide(title: str, body: str, notes: str = "") -> str:
    page = "<draw:page>"
    if title:
        page += f'<draw:frame presentation:class="title"><draw:text-box><text:p>{title}'
        page += "</text:p></draw:text-box></draw:frame>"
    page += f'<draw:frame presentation:class="outline"><draw:text-box><text:p>{body}'
    page += "</text:p></draw:text-box></draw:frame>"
    if notes:
        page += '<presentation:notes><draw:frame presentation:class="notes"><draw:text-box>'
        page += f"<text:p>{notes}</text:p></draw:text-box></draw:frame></presentation:notes>"
    return page + "</draw:page>"


def make_odp(path: Path) -> Path:
    """Three slides; the second's notes alone hold the word `halibut`."""
    slides = (
        odp_slide(
            "Harbour survey",
            "Survey of the north harbour walls in spring, by boat and from the quay, with the "
            "divers of the port authority.",
        ),
        odp_slide(
            "Findings",
            "Two cracks in the east breakwater.",
            "Mention that the fishermen reported halibut nesting near the cracks.",
        ),
        odp_slide("", "Questions from the council."),
    )
    path.write_bytes(odf(ODP_MIME, f"<office:presentation>{''.join(slides)}</office:presentation>"))
    return path


def make_pptx(path: Path) -> Path:
    """Two slides; the second has speaker notes that alone name the `aurora` budget."""
    import pptx

    deck = pptx.Presentation()
    for title, body, notes in (
        (
            "Roadmap",
            "Ship the sync worker in May, the search daemon in June, and the web page "
            "reader once the office formats are merged.",
            "",
        ),
        (
            "Budget",
            "Hardware costs rise by a tenth; the cloud bill falls as the nightly "
            "benchmarks move to the lab machines.",
            "Say that the aurora budget is frozen.",
        ),
    ):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    deck.save(str(path))
    return path


def make_csv(path: Path) -> Path:
    """A header row over 60 rows: the row of `Quokka` is row 43 (A43:C43)."""
    rows = ["animal;habitat;count"]
    rows += [f"Animal {n};Forest {n};{n * 3}" for n in range(1, 61)]
    rows[42] = "Quokka;Rottnest Island;42"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def make_eml(path: Path) -> Path:
    mail = EmailMessage()
    mail["Subject"] = "Boiler inspection moved"
    mail["From"] = "Grace Hopper <grace@example.org>"
    mail["To"] = "facilities@example.org"
    mail["Date"] = "Tue, 03 Mar 2026 10:15:00 +0100"
    mail.set_content("The boiler inspection moves to Thursday; the gasket order is late.\n")
    mail.add_alternative(
        "<html><body><p>The boiler inspection moves to <b>Thursday</b>; "
        "the gasket order is late.</p></body></html>",
        subtype="html",
    )
    mail.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="parts.csv")
    pdf = (Path(__file__).parent / "documents" / "small.pdf").read_bytes()
    mail.add_attachment(pdf, maintype="application", subtype="pdf", filename="texshop.pdf")
    path.write_bytes(bytes(mail))
    return path


# hostile -------------------------------------------------------------------------------------


@functools.cache
def zip_bomb() -> bytes:
    """A ZIP of some 300 KB whose one part inflates to 300 MB of zeros (made in about a
    second, once)."""
    out = io.BytesIO()
    block = b"\0" * (1 << 20)
    with (
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package,
        package.open("content.xml", "w", force_zip64=True) as part,
    ):
        for _ in range(300):
            part.write(block)
    return out.getvalue()


def many_slides(count: int = 10_000) -> bytes:
    """A .pptx package naming `count` slide parts (each empty)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as package:
        for number in range(1, count + 1):
            package.writestr(f"ppt/slides/slide{number}.xml", b"")
    return out.getvalue()


def many_odp_slides(count: int = 10_000) -> bytes:
    slide = odp_slide("", "x")
    return odf(ODP_MIME, f"<office:presentation>{slide * count}</office:presentation>")


def million_cells_ods() -> bytes:
    """A 1,000 x 1,000 sheet in one repeated row of one repeated cell."""
    row = (
        '<table:table-row table:number-rows-repeated="1000">'
        '<table:table-cell table:number-columns-repeated="1000"><text:p>7</text:p>'
        "</table:table-cell></table:table-row>"
    )
    body = f'<office:spreadsheet><table:table table:name="Big">{row}</table:table>'
    return odf(ODS_MIME, body + "</office:spreadsheet>")


_XLSX_PARTS = {
    "[Content_Types].xml": (
        '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-'
        'package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/'
        'sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml'
        '.worksheet+xml"/></Types>'
    ),
    "_rels/.rels": (
        '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
        '2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
        'officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>"
    ),
    "xl/workbook.xml": (
        '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
        '2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships"><sheets><sheet name="Big" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
        '2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
        'officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
        "</Relationships>"
    ),
}


def big_xlsx(rows: int, columns: int, *, declared: bool) -> bytes:
    """A sheet of rows x columns numbers, its dimension declared or not."""
    cells = "".join(f"<c><v>{c}</v></c>" for c in range(columns))
    data = "".join(f'<row r="{r}">{cells}</row>' for r in range(1, rows + 1))
    dimension = f'<dimension ref="A1:A{rows}"/>'.replace("A1:A", f"A1:{_col(columns)}")
    sheet = (
        '<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/'
        f'spreadsheetml/2006/main">{dimension if declared else ""}<sheetData>{data}'
        "</sheetData></worksheet>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        for name, part in _XLSX_PARTS.items():
            package.writestr(name, part)
        package.writestr("xl/worksheets/sheet1.xml", sheet)
    return out.getvalue()


def _col(number: int) -> str:
    name = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        name = chr(65 + rest) + name
    return name


def ooxml_encrypted() -> bytes:
    """What Office writes for a password-protected file: an OLE compound file holding an
    `EncryptedPackage` stream (the header and stream name suffice for the reader)."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504
    return header + "EncryptedPackage".encode("utf-16-le") + b"\0" * 512


def encrypted_epub() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        package.writestr("mimetype", "application/epub+zip")
        package.writestr(
            "META-INF/encryption.xml",
            '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
            'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
            '<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
            '<enc:CipherData><enc:CipherReference URI="OEBPS/ch1.xhtml"/></enc:CipherData>'
            "</enc:EncryptedData></encryption>",
        )
        package.writestr("OEBPS/ch1.xhtml", b"\x93\x11ciphertext")
    return out.getvalue()


def encrypted_eml() -> bytes:
    return (
        b"Subject: secret\r\nFrom: a@example.org\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAx\r\n"
    )
