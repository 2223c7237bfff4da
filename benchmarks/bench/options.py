"""The options the benchmark scripts share, defined once: the same name means the same thing
in every script (``--shards``, ``--shard-size``, ``--runs``, ``--workdir``, ``--sa1b``...).

A script calls :func:`add_shared_options` with its own defaults for those it takes (an
option left at ``None`` or ``False`` is not added), then adds its own options beside them.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Literal

from .common import parse_size
from .tools import default_sa1b_command

__all__ = ["PRIVATE_FOLDER_HELP", "add_shared_options", "sa1b_command"]

#: ``--workdir``'s help for a script that works in a folder of its own inside it.
PRIVATE_FOLDER_HELP = "a private folder is made (and deleted) in here (default: %(default)s)"

#: How ``--sa1b`` runs sa1b when not given: the installed ``bin/sa1b`` (beside this Python,
#: else on ``PATH``), or this Python's ``-m sa1b`` (whatever ``PYTHONPATH`` gives it).
Sa1bDefault = Literal["installed", "this-python"]


def _shell_words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as error:  # "No closing quotation"
        raise argparse.ArgumentTypeError(f"{error}: {text}") from None


def add_shared_options(
    parser: argparse.ArgumentParser,
    *,
    shards: int | None = None,
    shard_size: str | None = None,
    runs: int | None = None,
    warmup: int | None = None,
    workdir: Path | None = None,
    workdir_help: str = "scratch folder (default: %(default)s)",
    sa1b: Sa1bDefault | None = None,
    timeout: float | None = None,
    check_goals: bool = False,
    json_out: bool = False,
    results: bool = False,
) -> None:
    """Add the shared options the keywords give defaults for."""
    if shards is not None:
        parser.add_argument(
            "--shards", type=int, default=shards, help="synthetic shards (default: %(default)s)"
        )
    if shard_size is not None:
        parser.add_argument(
            "--shard-size",
            type=parse_size,
            default=parse_size(shard_size),
            help=f"bytes per shard, K/M/G binary (default: {shard_size})",
        )
    if runs is not None:
        parser.add_argument(
            "--runs", type=int, default=runs, help="measured runs of each (default: %(default)s)"
        )
    if warmup is not None:
        parser.add_argument(
            "--warmup",
            type=int,
            default=warmup,
            help="unmeasured runs of each first (default: %(default)s)",
        )
    if workdir is not None:
        parser.add_argument("--workdir", "--work", type=Path, default=workdir, help=workdir_help)
    if sa1b is not None:
        parser.add_argument(
            "--sa1b",
            metavar="CMD",
            type=_shell_words,
            default=[sys.executable, "-m", "sa1b"] if sa1b == "this-python" else None,
            help="how to run the sa1b CLI, split like a shell would (default: "
            + (
                "this Python -m sa1b)"
                if sa1b == "this-python"
                else "bin/sa1b beside this Python, else sa1b on PATH)"
            ),
        )
        parser.add_argument(
            "--sa1b-args",
            metavar="ARGS",
            type=_shell_words,
            default=[],
            help='added to every sa1b download, split like a shell would ("--files 4")',
        )
    if timeout is not None:
        parser.add_argument(
            "--timeout",
            type=float,
            default=timeout,
            help="seconds a run may take (default: %(default)s)",
        )
    if check_goals:
        parser.add_argument(
            "--check-goals", action="store_true", help="exit 1 when a goal is missed"
        )
    if json_out:
        parser.add_argument("--json-out", type=Path, help="also write every run as JSON here")
    if results:
        parser.add_argument("--results", type=Path, help="also append the report to this file")


def sa1b_command(args: argparse.Namespace) -> list[str] | None:
    """The command ``--sa1b`` gave, else the installed one (``None``: none found)."""
    given: list[str] | None = args.sa1b
    return given or default_sa1b_command()
