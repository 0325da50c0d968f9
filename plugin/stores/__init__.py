"""The store adapters behind `docsync.plugin.store.Store`: `edge` (Qdrant Edge in-process, with
`edge_shard`, the engine's calls, and `edge_host`, the child process that holds a daemon's
shard) and `qdrant` (a Qdrant server or cluster through qdrant-client)."""
