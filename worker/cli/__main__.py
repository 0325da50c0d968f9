"""`python -m docsync.worker.cli`, as the `docsync` command."""

from docsync.worker.cli import main

main()
