"""The download engine, in the parts a reader can take one at a time.

- :mod:`~sa1b.engine.supervisor` (:class:`Engine`): builds a run's parts, runs the
  transport in a thread of its own, paces durability and progress, ends the run
  cleanly however it ends.
- :mod:`~sa1b.engine.startup`: matches each link with what the store and the disk say
  (the decisions are :func:`sa1b.reconcile.reconcile`'s) and folds in the crash journal.
- :mod:`~sa1b.engine.scheduler`: what connections and the transport ask; which job a
  free connection takes is :func:`sa1b.scheduling.choose_job`'s decision.
- :mod:`~sa1b.engine.files`: every change to a file (plan, restart, halt, end, the
  publisher's verdicts), along :mod:`sa1b.lifecycle`'s table.
- :mod:`~sa1b.engine.durability`: ``fdatasync`` before the store records anything.
- :mod:`~sa1b.engine.run`: what they share (the files, the lock, the stop).

Bytes go straight to their offsets with ``pwrite`` from the transport's thread
(:mod:`sa1b.connection`); each connection also notes its position in the crash
:class:`~sa1b.journal.Journal`. Shards are extracted while they download
(:mod:`sa1b.unpacker`), and the :class:`~sa1b.publishing.Publisher` verifies complete
files and publishes them.
"""

from sa1b.engine.supervisor import Engine

__all__ = ["Engine"]
