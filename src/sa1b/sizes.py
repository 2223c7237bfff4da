"""Sizes known about SA-1B before any server has answered."""

NOMINAL_SHARD_SIZE = int(10.5 * 1024**3)
"""A shard's typical size, for estimates made before the server has told the real one."""

MAX_FILE_SIZE = 64 * 1024**3
"""The largest size a server may announce for one file: six times a shard. A larger
one is a broken or hostile server, refused before anything is allocated for it."""
