"""The `docsync` command. `cli(*args)` is the whole program (tests call it directly); library
errors become one-line messages here and nowhere else. Each command sits beside its options;
what they run on is built in `docsync.worker.wiring`, what they print in `docsync.worker.render`.

Exit codes: 0 done; 1 the sync finished but a file failed or a root was held back;
2 nothing done (bad settings or arguments, model or store unavailable, profile mismatch);
130 interrupted; 141 the reader of the output went away (`docsync export | head`), as a
command stopped by SIGPIPE.
"""

from __future__ import annotations

import faulthandler
import os
import sys

import click

from docsync.worker.cli.app import app, fail
from docsync.worker.cli.collection import export, import_, show, status
from docsync.worker.cli.generations import reindex, switch
from docsync.worker.cli.indexing import run, sync
from docsync.worker.cli.searching import evaluate, mcp, query
from docsync.worker.cli.serving import serve

__all__ = ["app", "cli", "main"]

for _command in (
    sync,
    run,
    reindex,
    switch,
    query,
    evaluate,
    show,
    mcp,
    serve,
    status,
    export,
    import_,
):
    app.add_command(_command)


def main() -> None:
    # A crash in native code (a SIGBUS from an engine's memory-mapped file, say) then at
    # least says where, instead of ending the process without a word.
    faulthandler.enable()
    # Everything docsync creates holds the documents' text or serves it: the engine's own
    # files (segments, WAL) included, which it creates with the process's umask.
    os.umask(os.umask(0o077) | 0o077)
    sys.exit(cli(*sys.argv[1:]))


def cli(*args: str) -> int:
    """Run `docsync ARGS` and return its exit code. A usage error (an unknown command or
    flag, a bad value) prints the command's usage and is 2; `--help` and `--version` are 0."""
    try:
        code = app.main(args=list(args), prog_name="docsync", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:  # ^C while click itself was reading the arguments
        return fail("interrupted", code=130)
    return code if isinstance(code, int) else 0
