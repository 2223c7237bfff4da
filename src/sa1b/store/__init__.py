"""What a run keeps on disk besides the files themselves, and where.

- :mod:`~sa1b.store.paths` where finals, partials, staging, the store and the journal
  live (the state may sit apart from the output, on node-local disk);
- :mod:`~sa1b.store.state` the SQLite store: each file's validator, plan and ranges
  made durable, each run's summary, the folder lock;
- :mod:`~sa1b.store.walks` each shard walked by range reads (``--only``): its catalog
  and checkpoints;
- :mod:`~sa1b.store.shards` the one reading of a file's records as its state
  (extracted, done, walked, partial, ...);
- :mod:`~sa1b.store.members` each shard's members over the folder's stores, extraction
  and walk, in one precedence;
- :mod:`~sa1b.store.journal` the crash journal: where each connection had written to,
  between two commits of the store;
- :mod:`~sa1b.store.writeback` pushing written pages to disk early, and syncing.

Nothing here knows HTTP or the engine; the engine decides when to commit.
"""
