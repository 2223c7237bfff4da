"""Sizes known about SA-1B before any server has answered."""

NOMINAL_SHARD_SIZE = int(10.5 * 1024**3)
"""A shard's typical size, for estimates made before the server has told the real one."""
