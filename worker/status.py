"""What `docsync status` and the daemon's /status report about a collection."""

from __future__ import annotations

from typing import Any

from docsync.plugin import schema
from docsync.plugin.store import Store


def collection_status(store: Store) -> dict[str, Any]:
    profile = store.read_profile()
    files: dict[str, set[str]] = {}
    for point in store.scroll({}, fields=[schema.ROOT, schema.PATH]):
        root = str(point.payload.get(schema.ROOT, ""))
        files.setdefault(root, set()).add(str(point.payload.get(schema.PATH, "")))
    roots = {root: len(paths) for root, paths in sorted(files.items())}
    return {
        "collection": store.collection,
        "store": store.description,
        "points": store.count(),
        "files": sum(roots.values()),
        "roots": roots,
        "profile": profile.to_dict() if profile else None,
    }
