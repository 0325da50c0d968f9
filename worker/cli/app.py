"""The `docsync` group and what every command shares: the flags that override settings, the
logging flags, the settings they make, and the one place library errors become one error
line and an exit code."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypedDict, cast

import click
from pydantic import ValidationError

from docsync.plugin.device import check_present
from docsync.plugin.errors import DocsyncError
from docsync.plugin.search import MAX_LIMIT
from docsync.plugin.settings import Settings
from docsync.worker.logs import FORMATS, LEVELS, LogFormat, LogLevel, configure_logging

# A command's body: the settings first, then its own parameters by name (click's way).
Body = Callable[..., int]
PATH = click.Path(path_type=Path)


class Flags(TypedDict, total=False):
    """The flags that override a setting of the same name, where given."""

    model: str
    device: str
    collection: str
    qdrant_url: str
    qdrant_path: Path
    http_host: str
    http_port: int
    polling: bool


_SETTING_FLAGS = tuple(Flags.__annotations__)


def fail(message: str, code: int = 2) -> int:
    print(f"docsync: error: {message}", file=sys.stderr)
    return code


def _validation_lines(exc: ValidationError, flags: Flags) -> Iterator[str]:
    """Each refused value named as the user gave it: the flag where one was given (it
    overrides the environment), else the environment's setting."""
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if field in flags:
            yield f"--{field.replace('_', '-')}: {message}"
        else:
            yield f"setting DOCSYNC_{field.upper()}: {message}"


def _settings(flags: Flags) -> Settings:
    """The settings, with the flags that were given over the environment's."""
    settings = Settings(**flags)
    # Every command takes --device: one that is not there is refused now, also by a
    # command that would never load the model (DESIGN: never a silent fallback).
    check_present(settings.device)
    return settings


def edge(body: Body) -> Body:
    """`body` behind the options every command takes, called with the settings they make;
    its library errors become one error line and an exit code."""

    @functools.wraps(body)
    def run(*, log_level: LogLevel, log_format: LogFormat, **params: object) -> int:
        configure_logging(log_level, log_format)
        given = {name: params.pop(name) for name in _SETTING_FLAGS if name in params}
        # click converted each flag to its type; one not given is None, and the setting decides
        flags = cast(Flags, {name: value for name, value in given.items() if value is not None})
        try:
            return body(_settings(flags), **params)
        except ValidationError as exc:
            return fail("; ".join(_validation_lines(exc, flags)))
        except DocsyncError as exc:
            return fail(str(exc))
        except KeyboardInterrupt:
            return fail("interrupted", code=130)
        except BrokenPipeError:
            # The reader closed our output (`docsync export | head`): stop quietly, and keep
            # Python from failing again when it flushes stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141

    for option in reversed(_COMMON_OPTIONS):
        option(run)
    return run


_COMMON_OPTIONS = (
    click.option("--model", metavar="MODEL", help="model name or local directory (DOCSYNC_MODEL)"),
    click.option(
        "--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:N or mps (DOCSYNC_DEVICE)"
    ),
    click.option("--collection", metavar="COLLECTION", help="collection name (DOCSYNC_COLLECTION)"),
    click.option(
        "--qdrant-url", metavar="QDRANT_URL", help="Qdrant server URL (DOCSYNC_QDRANT_URL)"
    ),
    click.option(
        "--qdrant-path",
        type=PATH,
        metavar="QDRANT_PATH",
        help="embedded store folder (DOCSYNC_QDRANT_PATH)",
    ),
    click.option(
        "--log-level",
        default="INFO",
        type=click.Choice(LEVELS),
        help="log lines on stderr at this level and above (default INFO)",
    ),
    click.option(
        "--log-format",
        default="text",
        type=click.Choice(FORMATS),
        help="json: one object a line",
    ),
)


def check_limit(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """-k: hits, 1 to MAX_LIMIT (what HTTP /search and `Searcher.search` take)."""
    hint = "/".join(param.opts)  # -k/--limit, as the message has always named it
    try:
        number = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a whole number", ctx, param, hint) from None
    if not 1 <= number <= MAX_LIMIT:
        raise click.BadParameter(f"must be between 1 and {MAX_LIMIT}", ctx, param, hint)
    return number


def _show_version(ctx: click.Context, _: click.Parameter, wanted: bool) -> None:
    if wanted and not ctx.resilient_parsing:
        click.echo(f"docsync {_version()}")
        ctx.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("docsync-qdrant")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class _Commands(click.Group):
    """Commands listed in the order they were added (sync first), not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Keep a Qdrant collection exactly in step with folders of documents, and answer "
    "questions from it. Settings come from DOCSYNC_* environment variables and a .env file; "
    "the flags of each command override them.",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="show the version and exit",
)
def app() -> None:
    """The commands below; `docsync COMMAND --help` for each one's flags."""


def command(name: str, summary: str, *more: str) -> Callable[[Body], click.Command]:
    """A command of `docsync`: `summary` in the list of commands, `more` paragraphs (what
    its arguments are) in its own help."""
    return click.command(name, help="\n\n".join((summary, *more)), short_help=summary)
