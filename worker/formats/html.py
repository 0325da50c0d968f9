"""HTML: the page's main content as Markdown, every heading, table, definition list and code
block of it kept (worker/formats/html_markdown.py), without its menus, sidebars, headers and
footers. The page's title, author and keywords come from its metadata (trafilatura,
Apache-2.0).

The main content is the page's `main` element (or `role="main"`), else its one `article`,
else its body. Left out of it: what is never text (scripts, styles, forms' controls), the
navigation HTML marks as such (`nav`, `role="navigation"` and the like; `aside` too unless
the page marks its main content, inside which an `aside` is a footnote or a sidebar of the
text), what a page marks as not for search (class `nosearch`, `noindex`, `nocontent`), and
blocks that the page hides or whose class or id names a menu, sidebar, table of contents,
breadcrumb or header/footer, unless they hold a heading or code (then they are content: a
hidden tab of code examples, a "header" block holding the title).

Not trafilatura's extraction, which this reader used before: its heuristics, made for news
articles, dropped every heading of a manual page whose content is not in a container it
knows (SQLite's docs: 225 of 3,094 kept), some link-heavy tables' rows, and left code
unfenced (its `# comment` lines then read as headings).
The `¶` anchors that documentation generators put after each heading are dropped.
"""

from __future__ import annotations

import re

from lxml import etree
from lxml.html import HtmlElement, HTMLParser, document_fromstring

from docsync.worker.formats import HTML, Extracted, Unreadable
from docsync.worker.formats.html_markdown import HEADINGS, to_markdown
from docsync.worker.formats.text import has_text, metadata

_PILCROW = re.compile(r"[ \t]*¶")
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")
# Never text.
_DROP_TAGS = (
    "script", "style", "noscript", "template", "svg", "math", "iframe", "object", "embed",
    "canvas", "button", "input", "select", "textarea", "option", "head", "title", "meta", "link",
)  # fmt: skip
# Navigation that HTML marks as such.
_NAV_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "complementary"})
# Class or id words of what a page marks as not its content.
_NOT_CONTENT = frozenset({"nosearch", "noindex", "nocontent", "sphinxsidebar", "headerlink"})
# Class or id words of page furniture; a block so named that holds a heading or code is kept.
_FURNITURE = frozenset({
    "nav", "navbar", "navigation", "menu", "mainmenu", "submenu", "sidebar", "breadcrumb",
    "breadcrumbs", "toc", "related", "footer", "header", "masthead", "cookie", "cookies", "skip",
    "pagination",
})  # fmt: skip
# The elements that the words above can mark as furniture (not a `span` in running text).
_FURNITURE_TAGS = frozenset({
    "div", "section", "header", "footer", "ul", "ol", "table", "p", "form", "details", "aside",
    "center",
})  # fmt: skip
_WORD = re.compile(r"[a-z0-9]+")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
# Anchor links that generators put in headings ("¶", "#", "§").
_ANCHOR_TEXT = frozenset({"¶", "#", "§", ""})


def read_html(raw: bytes) -> Extracted:
    import trafilatura
    from trafilatura.utils import decode_file

    no_text = Unreadable("no_text", "no main text found in the page")
    text = page_markdown(decode_file(raw))
    try:
        info = trafilatura.extract_metadata(raw)
    except (ValueError, TypeError, RecursionError) as exc:
        raise Unreadable("corrupt", f"not readable as HTML ({type(exc).__name__})") from None
    if not has_text(text):
        raise no_text
    fields: dict[object, object] = {}
    if info is not None:
        title = _PILCROW.sub("", info.title or "")
        fields = {"title": title, "author": info.author, "tags": ", ".join(info.tags or [])}
    title, tags, meta = metadata({k: v for k, v in fields.items() if v})
    return Extracted(text, HTML, title=title, tags=tags, meta=meta)


def page_markdown(source: str) -> str:
    """A decoded page's main content as Markdown ("" for a page with no elements);
    `Unreadable` (`corrupt`) when lxml cannot read it. Also the reader of an e-book's
    chapters and of a mail's HTML part."""
    try:
        root = document_fromstring(
            _XML_DECLARATION.sub("", source), parser=HTMLParser(remove_comments=True)
        )
        return _PILCROW.sub("", to_markdown(main_content(root))).strip()
    except etree.ParserError:  # lxml's HTML parser fails only on a page with no elements
        return ""
    except (ValueError, TypeError, RecursionError) as exc:
        raise Unreadable("corrupt", f"not readable as HTML ({type(exc).__name__})") from None


def main_content(root: HtmlElement) -> HtmlElement:
    """The element that holds the page's content, with what is not content removed."""
    etree.strip_elements(root, *_DROP_TAGS, with_tail=False)
    main = root.xpath("//main|//*[@role='main']")
    articles = root.xpath("//article")
    body = root.find("body")
    content: HtmlElement = main[0] if main else articles[0] if len(articles) == 1 else body
    if content is None:
        content = root
    marked = content is not body and content is not root  # the page marks its main content
    doomed = [el for el in content.iterdescendants() if _is_furniture(el, marked)]
    for el in doomed:
        parent = el.getparent()
        if parent is not None:
            _remove_keeping_tail(el, parent)
    return content


def _is_furniture(el: HtmlElement, marked: bool) -> bool:
    """Whether `el` is not content; `marked`: it is inside the content the page marked as
    main, where an `aside` is the text's own (a footnote, a sidebar of the text)."""
    if not isinstance(el.tag, str):
        return False
    if el.tag == "nav" or (el.tag == "aside" and not marked) or el.get("role") in _NAV_ROLES:
        return True
    words = set(_WORD.findall(f"{el.get('class', '')} {el.get('id', '')}".lower()))
    if words & _NOT_CONTENT:
        return True
    parent = el.getparent()
    if el.tag == "a" and parent is not None and parent.tag in HEADINGS:
        return el.text_content().strip() in _ANCHOR_TEXT
    hidden = el.get("hidden") is not None or el.get("aria-hidden") == "true"
    hidden = hidden or bool(_HIDDEN_STYLE.search(el.get("style", "")))
    named = bool(words & _FURNITURE) and el.tag in _FURNITURE_TAGS
    if not (hidden or named) or any(a.tag in HEADINGS for a in el.iterancestors()):
        return False
    # a hidden tab of code examples, a "header" block holding the title: content after all
    return el.find(".//pre") is None and next(el.iter(*HEADINGS), None) is None


def _remove_keeping_tail(el: HtmlElement, parent: HtmlElement) -> None:
    """Remove `el` but keep the text that follows it (its tail) in place."""
    previous = el.getprevious()
    if previous is not None:
        previous.tail = (previous.tail or "") + (el.tail or "")
    else:
        parent.text = (parent.text or "") + (el.tail or "")
    parent.remove(el)
