"""One search as a value, checked once, whoever asks: `docsync query`, HTTP `/search`, the MCP
`search` tool, `Searcher.search` and the framework retrievers all build a `SearchRequest`
and hand it to the same search code (`docsync.plugin.search.Searcher.find`).

`SearchOptions` is a search but its question: what a client that takes its options before
its questions (a framework's retriever) checks when it is made. A broken request is a
`ValueError` with one line that says what is wrong, the same line through every client;
an option left out (None) is the searcher's default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from docsync.plugin.choices import SEARCH_MODES, one_of
from docsync.plugin.filters import Filters, check_filters, where_filters

# The most hits one search returns, whoever asks: `Searcher.search`, `docsync query -k`
# and HTTP /search all refuse more.
MAX_LIMIT = 100
MAX_CONTEXT_TOKENS = 4096
DEFAULT_LIMIT = 5
_NOT_A_MAPPING = "filters are a mapping of key to value(s), e.g. {'format': 'pdf'}"

Params = dict[str, str | list[str]]
Model = TypeVar("Model", bound=BaseModel)


class SearchOptions(BaseModel):
    """How to search, checked: at most `limit` hits; `path_prefix` keeps files under a
    folder or one file (relative, as hits show paths); `mode`: dense, keyword or hybrid;
    `context`: the tokens a passage grows to (0: the chunk alone); `per_file`: at most this
    many hits from one file; `filters`: metadata conditions (`docsync.plugin.filters`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    limit: int = DEFAULT_LIMIT
    path_prefix: str | None = None
    mode: str | None = None
    context: int | None = None
    per_file: int | None = None
    filters: dict[str, tuple[str, ...]] = {}

    @classmethod
    def checked(
        cls,
        *,
        limit: int = DEFAULT_LIMIT,
        path_prefix: str | None = None,
        mode: str | None = None,
        context: int | None = None,
        per_file: int | None = None,
        filters: Filters | None = None,
        where: Sequence[str] = (),
    ) -> SearchOptions:
        """The options, or a one-line `ValueError`. `where`: filters as `key=value` strings
        (`--where`, `?where=`), added to `filters`."""
        values = {
            "limit": limit,
            "path_prefix": path_prefix,
            "mode": mode,
            "context": context,
            "per_file": per_file,
            "filters": _with_where(filters, where),
        }
        return _one_line(SearchOptions, values)

    def ask(self, question: str) -> SearchRequest:
        """These options with a question: a request (`ValueError` for an empty question)."""
        return _one_line(SearchRequest, {**dict(self), "question": question})

    @field_validator("limit")
    @classmethod
    def _limit(cls, limit: int) -> int:
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        return limit

    @field_validator("path_prefix")
    @classmethod
    def _path_prefix(cls, path_prefix: str | None) -> str | None:
        if path_prefix and path_prefix.strip().startswith("/"):
            raise ValueError(
                f"the path prefix {path_prefix!r} is absolute; it is a path relative to a "
                "synced folder, as hits show it (e.g. 'howto' or 'howto/sockets.rst')"
            )
        return path_prefix

    @field_validator("mode")
    @classmethod
    def _mode(cls, mode: str | None) -> str | None:
        return None if mode is None else check_mode(mode)

    @field_validator("context")
    @classmethod
    def _context(cls, context: int | None) -> int | None:
        if context is not None and not 0 <= context <= MAX_CONTEXT_TOKENS:
            raise ValueError(f"context must be between 0 and {MAX_CONTEXT_TOKENS} tokens")
        return context

    @field_validator("per_file")
    @classmethod
    def _per_file(cls, per_file: int | None) -> int | None:
        if per_file is not None and per_file < 1:
            raise ValueError("per_file must be at least 1")
        return per_file

    @field_validator("filters", mode="before")
    @classmethod
    def _filters(cls, filters: object) -> dict[str, list[str]]:
        if filters is None:
            return {}
        if not isinstance(filters, Mapping):
            raise ValueError(_NOT_A_MAPPING)
        return check_filters(filters)


# What an HTTP search takes (`SearchRequest.from_params`, `to_params`).
HTTP_PARAMETERS = frozenset({"q", "limit", "path_prefix", "mode", "context", "per_file", "where"})


class SearchRequest(SearchOptions):
    """One search: `question` with its options (`SearchOptions`), checked."""

    question: str

    @classmethod
    def of(
        cls,
        question: str,
        *,
        limit: int = DEFAULT_LIMIT,
        path_prefix: str | None = None,
        mode: str | None = None,
        context: int | None = None,
        per_file: int | None = None,
        filters: Filters | None = None,
        where: Sequence[str] = (),
    ) -> SearchRequest:
        """A request, or a one-line `ValueError`; `where` as for `SearchOptions.checked`.
        The options are checked before the question, the order of the fields, so the first
        problem is the one said."""
        options = SearchOptions.checked(
            limit=limit,
            path_prefix=path_prefix,
            mode=mode,
            context=context,
            per_file=per_file,
            filters=filters,
            where=where,
        )
        return options.ask(question)

    @classmethod
    def from_params(cls, params: Mapping[str, str], where: Sequence[str] = ()) -> SearchRequest:
        """The request of an HTTP query (`/search?q=...&limit=5&where=format=pdf`): each
        parameter's last value in `params`, every `where` in `where`. A parameter it does
        not take is refused (`limt=3` would otherwise give the default five hits)."""
        unknown = sorted(set(params) - HTTP_PARAMETERS)
        if unknown:
            taken = ", ".join(sorted(HTTP_PARAMETERS))
            raise ValueError(f"unknown parameter {', '.join(unknown)} (the search takes {taken})")
        question = params.get("q", "").strip()
        if not question:
            raise ValueError("missing q (the question)")
        try:
            limit = int(params.get("limit", str(DEFAULT_LIMIT)))
        except ValueError:
            raise ValueError("limit must be a number") from None
        return cls.of(
            question,
            limit=limit,
            path_prefix=params.get("path_prefix"),
            mode=params.get("mode", "").strip() or None,
            context=_optional_int(params, "context"),
            per_file=_optional_int(params, "per_file"),
            where=where,
        )

    def to_params(self) -> Params:
        """The HTTP query of this request, as `from_params` reads it (the daemon's client)."""
        params: Params = {"q": self.question, "limit": str(self.limit)}
        optional = {
            "path_prefix": self.path_prefix,
            "mode": self.mode,
            "context": self.context,
            "per_file": self.per_file,
        }
        params.update({key: str(value) for key, value in optional.items() if value is not None})
        if self.filters:
            params["where"] = [f"{k}={v}" for k, values in self.filters.items() for v in values]
        return params

    def filled(self, defaults: SearchOptions) -> SearchRequest:
        """This request with the options it leaves out taken from `defaults` (a searcher's);
        both are checked already."""
        return self.model_copy(
            update={
                "mode": self.mode or defaults.mode,
                "context": defaults.context if self.context is None else self.context,
                "per_file": self.per_file or defaults.per_file,
            }
        )

    @field_validator("question")
    @classmethod
    def _question(cls, question: str) -> str:
        if not question.strip():
            raise ValueError("the question is empty")
        return question


def check_mode(mode: str) -> str:
    """`mode` when it is a search mode, else `ValueError`."""
    if mode not in SEARCH_MODES:
        raise ValueError(f"the search mode must be {one_of(SEARCH_MODES)}, not {mode!r}")
    return mode


def _one_line(model: type[Model], values: dict[str, Any]) -> Model:
    """`model` validated from `values`; pydantic's report (several lines, a URL) becomes
    the first problem's own line: the message users see, whichever client they use."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, ValueError):
            raise ValueError(str(cause)) from None
        where = ".".join(str(part) for part in error["loc"])
        raise ValueError(f"{where}: {error['msg']}") from None


def _with_where(filters: Filters | None, where: Sequence[str]) -> Filters | None:
    """`filters` and the `key=value` strings of `where` as one mapping, still unchecked."""
    if not where:
        return filters
    if filters is not None and not isinstance(filters, Mapping):
        raise ValueError(_NOT_A_MAPPING)
    merged = {k: [v] if isinstance(v, str) else list(v) for k, v in (filters or {}).items()}
    for key, values in where_filters(where).items():
        merged.setdefault(key, []).extend(values)
    return merged


def _optional_int(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be a number") from None
