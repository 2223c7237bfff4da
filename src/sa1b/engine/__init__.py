r"""The download engine, in the parts a reader can take one at a time.

One engine runs every kind of item: a whole file, whose answers feed ranges of its
partial file, and a shard walked member by member (``--only``), whose answers feed a
tar walk. What differs is the item's body (:mod:`~sa1b.engine.bodies`); its state,
start-up, scheduling, failure accounting, lifecycle, supervision and publication are
the same code.

- :mod:`~sa1b.engine.supervisor` (:class:`Engine`): builds a run's parts, runs the
  transport in a thread of its own, paces durability and progress, ends the run
  cleanly however it ends.
- :mod:`~sa1b.engine.startup`: matches each link with what the store and the disk say
  (the decisions are :func:`sa1b.reconcile.reconcile`'s) and folds in the crash journal.
- :mod:`~sa1b.engine.scheduler`: what connections and the transport ask; which job a
  free connection takes is :func:`sa1b.jobchoice.choose_job`'s decision, whether a file
  that failed is tried again its :class:`sa1b.retry.FailureAccount`'s.
- :mod:`~sa1b.engine.files`: every change to a file (plan, restart, halt, end, the
  publisher's verdicts), along :mod:`sa1b.lifecycle`'s table.
- :mod:`~sa1b.engine.diskworker`: what would block the transport (opening, sizing and
  allocating a partial file, the store's writes that follow a decision, starting an
  extraction), done in order in a thread of its own.
- :mod:`~sa1b.engine.durability`: ``fdatasync`` before the store records anything.
- :mod:`~sa1b.engine.run`: what they share (the files, the lock, the stop).
- :mod:`~sa1b.engine.tasks`: one item during a run.
- :mod:`~sa1b.engine.bodies`: the seam for what an answer feeds besides a partial file;
  :mod:`~sa1b.engine.walk` the walk body (with :mod:`~sa1b.engine.staging`, which
  writes its members).
- :mod:`~sa1b.engine.slots`: each transport slot's job (its requests), and the receiver that
  judges each answer and ``pwrite``\ s its body at its offset from the transport's
  thread, noting its position in the crash :class:`~sa1b.store.journal.Journal`.
- :mod:`~sa1b.engine.publisher`: verifies complete files and publishes them (a tar
  renamed into place, or a shard's extraction, :mod:`sa1b.extract`, moved into its
  layout).

The layers, lowest first: pure decisions at the top of the package; :mod:`sa1b.net`
(HTTP) and :mod:`sa1b.store` (state on disk), which know nothing of each other;
:mod:`sa1b.extract`; this engine; :mod:`sa1b.api`; :mod:`sa1b.cli`. The contracts in
``pyproject.toml`` (``lint-imports``) hold them to that.
"""

from sa1b.engine.supervisor import Engine

__all__ = ["Engine"]
