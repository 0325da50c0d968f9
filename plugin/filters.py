"""Metadata filters for searches: `docsync query --where key=value`, the `filters` argument of
`Searcher.search`, HTTP `/search?where=key=value`, all checked as part of a
`docsync.plugin.request.SearchRequest`.

    format=pdf          what the file was read as: markdown, rst, text, pdf, html, docx
    path=guides/*.pdf   the file's path under its root, a glob (`*` also crosses folders)
    tags=howto          one of the document's tags (front matter `tags`, PDF/Word keywords)
    title=...           the document's title, exactly
    author=...          its author (front matter, PDF/Word properties)
    meta.NAME=...       any other scalar field of the front matter or properties

A key given twice matches either value; different keys must all match. Keys and values are
checked before anything is searched (an unknown key is an error, `format` must be a known
format) and reach the store only as exact-match conditions, never as raw filter syntax.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from fnmatch import fnmatchcase

from docsync.plugin import schema
from docsync.plugin.choices import one_of
from docsync.plugin.store import Match

MAX_VALUE = 256
MAX_PATH_MATCHES = 10_000  # files one path glob may select
_META_KEY = re.compile(r"^meta\.([A-Za-z][A-Za-z0-9_-]{0,63})$")
_FIELDS = {
    "format": schema.FORMAT,
    "path": schema.PATH,
    "tags": schema.TAGS,
    "title": schema.TITLE,
    "author": f"{schema.META}.author",
}
FILTER_KEYS = tuple(_FIELDS)
_GLOB = re.compile(r"[*?\[]")

Filters = Mapping[str, str | Sequence[str]]


def where_filters(items: Iterable[str]) -> dict[str, list[str]]:
    """`key=value` strings (repeatable keys) as filters, not yet checked (`check_filters`);
    `ValueError` for one that is not `key=value`."""
    filters: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"a filter is key=value, not {item!r} (e.g. format=pdf)")
        filters.setdefault(key.strip(), []).append(value.strip())
    return filters


def check_filters(filters: Filters) -> dict[str, list[str]]:
    """Filters with their keys known and values valid, each key's values as a list."""
    checked: dict[str, list[str]] = {}
    for key, raw in filters.items():
        values = [raw] if isinstance(raw, str) else list(raw)
        field_key = key.strip().lower()
        if field_key not in _FIELDS and not _META_KEY.match(field_key):
            raise ValueError(
                f"unknown filter key {key!r}: use {one_of(FILTER_KEYS)}, or meta.NAME for "
                "another field of the documents' front matter or properties"
            )
        if not values:
            raise ValueError(f"the filter {key!r} has no value")
        for value in values:
            _check_value(field_key, value)
        checked.setdefault(field_key, []).extend(values)
    return checked


def _check_value(key: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"the filter {key!r} needs a non-empty text value")
    if len(value) > MAX_VALUE or not value.isprintable():
        raise ValueError(f"the value of filter {key!r} is too long or holds control characters")
    if key == "format" and value not in schema.FORMATS:
        raise ValueError(f"format must be {one_of(schema.FORMATS)}, not {value!r}")
    if key == "path" and value.startswith("/"):
        raise ValueError(
            f"the path filter {value!r} is absolute; paths are relative to a synced folder, "
            "as hits show them (e.g. path=guides/*.pdf)"
        )


def to_match(
    filters: Mapping[str, Sequence[str]], paths: Callable[[], Iterable[str]]
) -> Match | None:
    """The store conditions for checked `filters`; None when no point can match (a path
    glob that selects no file). `paths`: every indexed path, asked for only for a glob."""
    match: dict[str, str | list[str]] = {}
    for key, values in filters.items():
        if key == "path":
            wanted = _paths(values, paths)
            if not wanted:
                return None
            match[schema.PATH] = wanted
            continue
        field_name = _FIELDS.get(key) or f"{schema.META}.{key.removeprefix('meta.')}"
        match[field_name] = values[0] if len(values) == 1 else list(values)
    return match


def _paths(values: Sequence[str], paths: Callable[[], Iterable[str]]) -> list[str]:
    exact = [v.strip("/") for v in values if not _GLOB.search(v)]
    globs = [v.strip("/") for v in values if _GLOB.search(v)]
    found = set(exact)
    if globs:
        for path in paths():
            if any(fnmatchcase(path, g) for g in globs):
                found.add(path)
                if len(found) > MAX_PATH_MATCHES:
                    raise ValueError(
                        f"the path filter selects over {MAX_PATH_MATCHES} files: narrow it "
                        "(or use a folder prefix)"
                    )
    return sorted(found)
