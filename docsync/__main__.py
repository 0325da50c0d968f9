"""`python -m docsync` is the `docsync` command."""

from docsync.worker.cli import main

if __name__ == "__main__":
    main()
