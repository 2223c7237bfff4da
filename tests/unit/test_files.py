"""FileControl's verdicts end a file once, whoever lets go of it last."""

from __future__ import annotations

from pathlib import Path

from sa1b.config import DownloadConfig
from sa1b.engine.files import FileControl
from sa1b.engine.run import Run
from sa1b.engine.tasks import Task
from sa1b.errors import SA1BError, SizeMismatchError
from sa1b.links import Link
from sa1b.progress import FileOutcome, Snapshot
from sa1b.store.state import StateStore


def test_a_file_rejected_while_a_connection_still_holds_it_ends_when_it_lets_go(
    tmp_path: Path,
) -> None:
    """All its bytes are in and the publisher rejects it, but a connection has not given
    its job back yet: the file ends then, once (ending it twice was an internal error,
    an illegal 'fail' of a failed file)."""
    config = DownloadConfig(out=tmp_path)
    finished: list[FileOutcome] = []
    errors: list[SA1BError] = []
    with StateStore(tmp_path) as store:
        record = store.register("sa_000000.tar", "sa_000000.tar")
        run = Run(config, store)
        files = FileControl(run, extractors=None, listener=_Listener(finished), abort=errors.append)
        link = Link(name="sa_000000.tar", url="https://cdn.example/sa_000000.tar", line=1)
        task = Task(link, record.id, 0, config.failure_account(), state="verifying", size=10)
        task.connections = 1
        files.reject(task, SizeMismatchError("9 bytes on disk", name=task.name))
        assert task.state == "verifying" and task.halted and finished == []
        task.connections = 0  # what Scheduler.release does, before it ends a halted file
        files.end(task)
        assert task.state == "failed"
        assert [o.state for o in finished] == ["failed"] and errors == []
        files.disk.start()
        files.disk.close()
        assert store.get("sa_000000.tar").status == "failed"


class _Listener:
    def __init__(self, finished: list[FileOutcome]) -> None:
        self._finished = finished

    def update(self, snapshot: Snapshot) -> None:
        pass

    def finished(self, outcome: FileOutcome) -> None:
        self._finished.append(outcome)
