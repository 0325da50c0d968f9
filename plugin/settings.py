"""Every setting docsync reads, from `DOCSYNC_*` environment variables and a `.env` file.

Read once at the entry point (the CLI, or `Searcher.from_settings()`) and passed down;
nothing else looks at the environment.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, get_args
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from docsync.plugin.choices import (
    DEFAULT_CONTEXT_TOKENS,
    DEFAULT_FUSION,
    DEFAULT_GUARD,
    DEFAULT_RRF_K,
    DEFAULT_SEARCH_MODE,
    Backend,
    Fusion,
    Ocr,
    Precision,
    Quantization,
    SearchMode,
    WriteOrdering,
    one_of,
)
from docsync.plugin.device import DEVICES, check_device
from docsync.plugin.errors import ConfigError

DEFAULT_MODEL = "srinivasanAI/bge-small-my-qna-model"
# The settings that take one of a few names (a `Literal` each; case and spaces forgiven).
CHOICES = (
    "precision",
    "backend",
    "search_mode",
    "fusion",
    "quantization",
    "write_ordering",
    "ocr",
)
DEFAULT_QUERY_PREFIX = "Represent this sentence for searching relevant passages: "
DEFAULT_INCLUDE = (
    "*.md",
    "*.markdown",
    "*.rst",
    "*.txt",
    "*.pdf",
    "*.html",
    "*.htm",
    "*.docx",
    "*.pptx",
    "*.odp",
    "*.xlsx",
    "*.ods",
    "*.csv",
    "*.odt",
    "*.epub",
    "*.eml",
    "*.png",
    "*.jpg",
    "*.jpeg",
    "*.tif",
    "*.tiff",
)
# Hidden files and folders (".git", ".hg", ".svn", ".docsync", editor droppings) and the
# VCS folders that are not hidden.
DEFAULT_EXCLUDE = (".*", "_darcs", "CVS", "node_modules", "__pycache__")

_TOKEN = re.compile(r"^[\x21-\x7e]+$")
# Tesseract's language names joined by `+` (`eng`, `deu+fra`, `chi_sim`, `script/Latin`).
_LANGUAGES = re.compile(r"^[A-Za-z0-9_/-]+(\+[A-Za-z0-9_/-]+)*$")
# What Qdrant refuses in a collection name (the server's rule, as qdrant-client's local mode
# copies it): both engines keep a collection in a folder named after it, so a '/' or '..'
# would put it outside the store. The limit is in bytes, as a folder name's is.
_NAME_CHARS = frozenset('<>:"/\\|?*\0\x1f')
_NAME_BYTES = 255
_URL_SCHEMES = ("http", "https")

# What must never be shown of a URL: its user and password, and an api_key parameter.
_USERINFO = re.compile(r"(//)[^/?#\s@]*@")
_KEY_PARAM = re.compile(r"([?&;](?:api[_-]?key|key|token)=)[^&#;\s)]*", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` (a URL, or a message quoting one) fit to show: userinfo and key parameters
    become `***`."""
    return _KEY_PARAM.sub(r"\1***", _USERINFO.sub(r"\1***@", text))


def default_cache() -> Path:
    """docsync's cache folder when DOCSYNC_CACHE is unset: `$XDG_CACHE_HOME/docsync`, else
    `~/.cache/docsync`."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "docsync"


def check_collection_name(name: str) -> str:
    """`name` if Qdrant would accept it for a new collection, else a `ValueError` saying why."""
    bad = sorted(_NAME_CHARS.intersection(name))
    if bad:
        raise ValueError(
            f"{name!r} contains {bad[0]!r}; a collection name cannot hold any of "
            '< > : " / \\ | ? * or control characters NUL and 0x1f'
        )
    if name in ("", ".", ".."):
        raise ValueError(f"{name!r} is not a collection name")
    if len(name.encode("utf-8")) > _NAME_BYTES:
        raise ValueError(f"is longer than {_NAME_BYTES} bytes")
    return name


def check_url(url: str) -> str:
    """`url` if it names a Qdrant server by http or https (a bare `host:port` is taken as
    http, as qdrant-client takes it), else a `ValueError` (never quoting credentials)."""
    full = url if "://" in url else f"http://{url}"
    try:
        parts = urlsplit(full)
        parts.port  # noqa: B018 (parsed here: a port out of range raises ValueError)
    except ValueError as exc:
        raise ValueError(f"{redact(url)!r} is not a URL ({exc})") from None
    if parts.scheme.lower() not in _URL_SCHEMES:
        raise ValueError(f"{redact(url)!r}: the scheme must be http or https")
    if not parts.hostname:
        raise ValueError(f"{redact(url)!r} names no host")
    return url


def _split_globs(value: object) -> object:
    """`DOCSYNC_INCLUDE="*.md,*.txt"` as well as a JSON list or a Python list."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"starts with '[' but is not a JSON list ({exc.msg})") from None
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """docsync's configuration. Each field is `DOCSYNC_<NAME>` in the environment or `.env`."""

    model_config = SettingsConfigDict(
        env_prefix="DOCSYNC_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    model: str = Field(
        DEFAULT_MODEL,
        min_length=1,
        description="sentence-transformers model: a Hugging Face hub name or a local directory",
    )
    device: str = Field(
        "auto", description="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps"
    )
    query_prefix: str = Field(DEFAULT_QUERY_PREFIX, description="instruction put before questions")
    passage_prefix: str = Field("", description="text put before every passage")
    qdrant_url: str | None = Field(None, description="Qdrant server URL; unset: embedded store")
    qdrant_api_key: SecretStr | None = Field(None, description="API key for the Qdrant server")
    qdrant_path: Path = Field(Path(".docsync/qdrant"), description="folder of the embedded store")
    qdrant_retries: int = Field(
        4, ge=1, le=20, description="tries per server call on transient failures (backoff between)"
    )
    collection: str = Field("docsync", min_length=1, description="Qdrant collection name")
    shard_number: int | None = Field(
        None, ge=1, le=1000, description="server: shards of a collection docsync creates"
    )
    replication_factor: int | None = Field(
        None, ge=1, le=100, description="server: copies of each shard, in a collection it creates"
    )
    write_consistency_factor: int | None = Field(
        None, ge=1, le=100, description="server: replicas that must confirm each write"
    )
    quantization: Quantization = Field(
        "none",
        description="none, or int8: searches scan int8 copies of the vectors (a quarter of the "
        "memory) and rescore with the originals; for collections docsync creates",
    )
    write_ordering: WriteOrdering = Field(
        "weak", description="server: weak, medium or strong ordering of writes among replicas"
    )
    include: Annotated[list[str], NoDecode] = Field(
        list(DEFAULT_INCLUDE), description="comma-separated globs of files to index"
    )
    exclude: Annotated[list[str], NoDecode] = Field(
        list(DEFAULT_EXCLUDE), description="comma-separated globs of files and folders to skip"
    )
    chunk_tokens: int = Field(256, ge=32, le=8192, description="largest chunk, in model tokens")
    precision: Precision = Field(
        "auto",
        description="auto (fp16 on CUDA, bf16 on CPUs that run it natively), fp32, fp16, bf16",
    )
    token_budget: int | None = Field(
        None, ge=64, description="padded tokens per embedding batch (unset: tuned per device)"
    )
    backend: Backend = Field(
        "torch", description="torch, or onnx / onnx-int8 (ONNX Runtime on the CPU)"
    )
    batch_size: int | None = Field(
        None, ge=1, le=65536, description="most passages per batch (unset: the budget decides)"
    )
    search_mode: SearchMode = Field(
        DEFAULT_SEARCH_MODE,
        description="dense (the model), keyword (BM25) or hybrid (both, fused)",
    )
    fusion: Fusion = Field(
        DEFAULT_FUSION, description="hybrid: rrf (reciprocal rank) or dbsf (score)"
    )
    rrf_k: int = Field(
        DEFAULT_RRF_K,
        ge=1,
        le=10_000,
        description="hybrid with rrf: k, how little the first ranks weigh",
    )
    fusion_guard: int = Field(
        DEFAULT_GUARD,
        ge=0,
        le=2,
        description="hybrid: dense's and keyword's first N passages kept in the first five",
    )
    context_tokens: int = Field(
        DEFAULT_CONTEXT_TOKENS,
        ge=0,
        le=4096,
        description="a hit's passage grows to about this many tokens within its section",
    )
    hits_per_file: int | None = Field(
        None, ge=1, description="at most this many hits from one file (unset: no limit)"
    )
    max_file_bytes: int = Field(10_000_000, ge=1, description="files larger than this are skipped")
    read_timeout: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="seconds the reader process may take for a file (all but text, Markdown, reST)",
    )
    reader_memory_mb: int = Field(
        2048,
        ge=512,
        le=1_048_576,
        description="MiB of address space the reader process may take (then too_large)",
    )
    ocr: Ocr = Field(
        "auto",
        description="scanned PDF pages and images read by Tesseract: auto (where it is "
        "installed), off, on (a sync refuses to start without it)",
    )
    ocr_languages: str = Field(
        "eng", description="Tesseract's languages, joined by + (eng, deu+eng); each installed"
    )
    ocr_cache_mb: int = Field(
        256, ge=1, le=1_048_576, description="MiB of OCR'd page text cached (in DOCSYNC_CACHE)"
    )
    cache: Path = Field(
        default_factory=default_cache,
        description="docsync's cache folder: model cards, ONNX exports, OCR'd pages "
        "(unset: ~/.cache/docsync)",
    )
    progress_seconds: float = Field(
        30.0, gt=0, le=86400, description="seconds between progress lines where stderr is no TTY"
    )
    mcp_description: str = Field(
        "the documents docsync keeps in sync",
        min_length=1,
        description="docsync mcp: what the collection holds, as its tools tell an agent",
    )
    rescan_seconds: float = Field(
        3600.0, ge=0, description="daemon: full reconcile this often (0: never)"
    )
    polling: bool = Field(False, description="daemon: poll the folders instead of inotify")
    debounce_seconds: float = Field(
        0.25, ge=0, le=60, description="daemon: a file syncs once quiet this long"
    )
    max_wait_seconds: float = Field(
        5.0, gt=0, le=3600, description="daemon: or at most this long after its first change"
    )
    http_host: str = Field("127.0.0.1", description="daemon: address of the HTTP endpoint")
    http_port: int | None = Field(
        None, ge=0, le=65535, description="daemon: HTTP endpoint port (unset: no endpoint)"
    )
    http_token: SecretStr | None = Field(
        None, description="daemon: bearer token the HTTP endpoint requires (unset: none)"
    )
    http_insecure: bool = Field(
        False, description="daemon: let the HTTP endpoint listen beyond loopback with no token"
    )
    http_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        [], description="daemon: more names the HTTP endpoint answers to (Host), comma-separated"
    )

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        try:
            return check_device(value)
        except ConfigError:
            raise ValueError(f"must be {DEVICES}") from None

    @field_validator(*CHOICES, mode="before")
    @classmethod
    def _check_choice(cls, value: object, info: ValidationInfo) -> object:
        """One of the field's names, said in one line (pydantic's own message for a
        `Literal` quotes each name); `" HYBRID"` is `hybrid`."""
        if not isinstance(value, str):
            return value  # pydantic refuses it as the Literal's own type
        value = value.strip().lower()
        choices: tuple[str, ...] = get_args(cls.model_fields[str(info.field_name)].annotation)
        if value not in choices:
            raise ValueError(f"must be {one_of(choices)}")
        return value

    @field_validator(
        "shard_number", "replication_factor", "write_consistency_factor", mode="before"
    )
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _consistency_within_replicas(self) -> Settings:
        wanted, copies = self.write_consistency_factor, self.replication_factor
        if wanted is not None and wanted > (copies or 1):
            raise ValueError(
                f"DOCSYNC_WRITE_CONSISTENCY_FACTOR={wanted} is more than the "
                f"{copies or 1} replica(s) DOCSYNC_REPLICATION_FACTOR gives"
            )
        return self

    def cluster_settings(self) -> dict[str, int]:
        """The collection settings docsync applies when it creates a collection on a server."""
        values = {
            "shard_number": self.shard_number,
            "replication_factor": self.replication_factor,
            "write_consistency_factor": self.write_consistency_factor,
        }
        return {name: value for name, value in values.items() if value is not None}

    @field_validator("qdrant_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return check_url(value.strip())

    @field_validator("collection")
    @classmethod
    def _check_collection(cls, value: str) -> str:
        return check_collection_name(value)

    @field_validator("http_token", mode="before")
    @classmethod
    def _check_token(cls, value: object) -> object:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(text, str):
            return value
        text = text.strip()
        if not text:
            return None  # compose passes an unset variable through as ""
        if not _TOKEN.match(text):
            # Never echo the token: this message reaches the terminal.
            raise ValueError("must be printable ASCII without spaces (a header carries it)")
        return text

    @field_validator("ocr_languages")
    @classmethod
    def _check_languages(cls, value: str) -> str:
        value = value.strip()
        if not _LANGUAGES.match(value):
            raise ValueError("must be Tesseract language names joined by + (e.g. eng or deu+eng)")
        return value

    @field_validator("include", "exclude", "http_allowed_hosts", mode="before")
    @classmethod
    def _globs(cls, value: object) -> object:
        return _split_globs(value)

    @field_validator("include")
    @classmethod
    def _some_include(cls, value: list[str]) -> list[str]:
        value = [glob.strip() for glob in value if glob.strip()]
        if not value:
            raise ValueError("names no glob, so nothing would ever be indexed (e.g. '*.md,*.txt')")
        return value

    def store_description(self) -> str:
        """Where the collection lives, for log lines and `docsync status` (never the key)."""
        if self.qdrant_url:
            return f"server {redact(self.qdrant_url)}"
        return f"embedded {self.qdrant_path}"
