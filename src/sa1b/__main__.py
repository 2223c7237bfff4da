"""``python -m sa1b``: the same as the ``sa1b`` command."""

from sa1b.cli.main import run

run()
