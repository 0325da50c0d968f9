"""docsync's query side, and the contract the worker writes to: settings, embedding profile,
encoder, payload schema, stores and the `Searcher`.

Nothing is imported here, so a child process that needs one module of this package (the
reader needs `errors`) does not load numpy, pydantic or the engine: the public names are
`docsync`'s (`from docsync import Searcher`).
"""
