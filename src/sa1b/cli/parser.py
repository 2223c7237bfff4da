"""The command line's grammar: every subcommand, its options and their types.

Built once by :func:`build_parser`; :mod:`sa1b.cli.main` turns what it parses into a
frozen configuration and runs the command.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from sa1b.config import ONLY_KINDS
from sa1b.holes import CHECKPOINT_EVERY
from sa1b.layout import LAYOUTS
from sa1b.objectstore.parts import DEFAULT_MEMORY, DEFAULT_PART
from sa1b.units import parse_size

DEFAULT_OUT = Path("SA-1B")
DEMO_OUT = Path("sa1b-demo")


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _fraction(text: str) -> Fraction:
    """``0.1`` or ``1/10``, exactly (0.29 of 100 shards is 29, not 28.999...)."""
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"expected a share like 0.1 or 1/10, got {text!r}"
        ) from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a share above 0 and at most 1, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value >= 0.001:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def installed_version() -> str:
    """The version of the installed package, from its metadata (pyproject.toml's)."""
    try:
        return version("sa1b")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed: pip install -e .)"


class _DefaultsShown(argparse.HelpFormatter):
    """Show an option's default when it says something (not None, not False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sa1b",
        description="Download Meta's SA-1B dataset fast, verifiably and resumably.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"sa1b {installed_version()}",
        help="print sa1b's version and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_download(commands)
    _add_plan(commands)
    _add_status(commands)
    _add_verify(commands)
    _add_clean(commands)
    _add_index(commands)
    _add_demo(commands)
    _command(commands, "version", help="print sa1b's version", description="Print sa1b's version.")
    commands.add_parser("cdn", help="run the local CDN stand-in (sa1b cdn --help)", add_help=False)
    return parser


if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def _add_download(commands: Commands) -> None:
    dl = _command(
        commands,
        "download",
        help="download the files of a links file",
        description="Download the selected files of an SA-1B links file and extract each "
        "shard while it downloads (--no-extract: keep the tars in OUT/tars/). "
        "Run the same command again to resume; a fresh links file continues the same bytes.",
    )
    _add_selection_options(dl)
    _add_storage_options(dl)
    dl.add_argument(
        "--only",
        choices=ONLY_KINDS,
        help="fetch only these members of each shard, by range reads, into the layout "
        "(json: the annotations, about 6%% of the bytes); the tars are never downloaded. "
        "Into s3://BUCKET/PREFIX: one tar of them a shard, PREFIX/json/<shard>.tar",
    )
    dl.add_argument(
        "--part-size",
        type=_size,
        default=DEFAULT_PART,
        metavar="SIZE",
        help="-o s3://: each shard is one multipart upload of parts of SIZE (5M to 5G; "
        "default 8M), each fetched by ranged requests of 1M and held in memory until uploaded",
    )
    dl.add_argument(
        "--upload-memory",
        type=_size,
        default=DEFAULT_MEMORY,
        metavar="SIZE",
        help="-o s3://: memory for parts being downloaded or uploaded at once (default "
        "128M: 16 parts of 8M); no part is fetched while it is spent, and a kill loses "
        "what the store has not taken of it",
    )
    dl.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="BASE_URL",
        help="where to fetch BASE_URL/<file name> when a file's own link has expired or "
        "failed for good (repeatable, tried in order); kept bytes are continued only when "
        "the size matches, and the ETag too unless --checksums checks the file",
    )
    dl.add_argument(
        "--no-space-check",
        action="store_true",
        help="start even when the download may not fit on the disk (see sa1b plan)",
    )
    _add_cluster_options(dl)
    _add_network_options(dl)
    _add_state_dir_option(dl)
    _add_output_options(dl)


def _add_plan(commands: Commands) -> None:
    plan = _command(
        commands,
        "plan",
        help="say what a download needs, without downloading",
        description="Ask the server for each selected file's size (one byte of each, many at "
        "once) and measure its speed for a few seconds; say what OUT holds already, whether "
        "the download fits on the disk (with and without --keep-tars) and whether its links "
        "outlive it. Exit 1 when it does not fit, a file does not answer, or the links "
        "expire first.",
    )
    _add_selection_options(plan)
    _add_storage_options(plan)
    plan.add_argument(
        "--probe-seconds",
        type=float,
        default=4.0,
        metavar="S",
        help="how long to measure the speed (0: not at all)",
    )
    plan.add_argument("--json", action="store_true", help="print the plan as JSON, for scripts")
    _add_network_options(plan)
    _add_state_dir_option(plan)
    _add_output_options(plan)


def _add_selection_options(parser: argparse.ArgumentParser) -> None:
    """Which files: the links file, the shards, a budget, this worker's part."""
    parser.add_argument("links", nargs="?", type=Path, help="the links file from Meta's SA-1B page")
    # -o stays text here: main() reads it once (a Path would fold s3://b into s3:/b).
    parser.add_argument(
        "-o",
        "--out",
        default=DEFAULT_OUT,
        help="output folder, or s3://BUCKET/PREFIX (download --no-extract, plan): the tars "
        "stream into the bucket, the state stays in --state-dir or ~/.cache/sa1b/s3/",
    )
    parser.add_argument(
        "--shards", help="shard ids to fetch, e.g. 0-99,120,sa_000777 (default: all)"
    )
    parser.add_argument("--extras", action="store_true", help="also fetch non-shard files")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--max-bytes",
        type=_size,
        metavar="SIZE",
        help="only as many shards, lowest ids first, as fit in SIZE (e.g. 2T) at 10.5 GiB each",
    )
    budget.add_argument(
        "--fraction",
        type=_fraction,
        metavar="F",
        help="only this share of the selected shards, lowest ids first (0.1: sa_000000 to "
        "sa_000099 of all 1000, the same for everyone)",
    )
    _add_split_options(parser)


def _add_storage_options(parser: argparse.ArgumentParser) -> None:
    """What is kept on disk, and how it is checked."""
    parser.add_argument("--checksums", type=Path, help="md5sum/sha256sum file to verify against")
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="shard",
        help="shard: OUT/<shard>/; split: OUT/images/<shard>/ and "
        "OUT/annotations/<shard>/; flat: every file in OUT/; wds: OUT/wds/<shard>.tar, "
        "each image's jpg then json, by image id (for the webdataset package; into "
        "s3://BUCKET/PREFIX, PREFIX/wds/<shard>.tar)",
    )
    parser.add_argument("--keep-tars", action="store_true", help="also keep the tars in OUT/tars/")
    parser.add_argument(
        "--tar-window",
        type=_size,
        default=CHECKPOINT_EVERY,
        metavar="SIZE",
        help="extracting: a checkpoint each time SIZE more of a shard is extracted and synced "
        "(a kill loses at most about SIZE of each shard in flight); where a tar is on disk, "
        "it is freed behind the extraction each time",
    )
    parser.add_argument(
        "--no-extract", action="store_true", help="do not extract: keep the tars in OUT/tars/"
    )


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """The Ray engine: the same download as Ray tasks on a cluster."""
    parser.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this machine; ray: Ray tasks of --files files each on a Ray cluster "
        "(pip install 'sa1b[ray]')",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="the Ray cluster to join (default: RAY_ADDRESS, else a Ray on this machine)",
    )
    parser.add_argument(
        "--node-local",
        action="store_true",
        help="with --engine ray: OUT is on each node's own disk, not shared (a task lost "
        "with its node starts again from zero elsewhere)",
    )


def _add_split_options(parser: argparse.ArgumentParser) -> None:
    """One worker's part of a download split among several (machines, array tasks)."""
    parser.add_argument(
        "--shard-index",
        type=_non_negative_int,
        metavar="I",
        help="this worker's part, from 0, of a download split among --shard-count workers "
        "(default: SLURM_ARRAY_TASK_ID in a Slurm array, JOB_COMPLETION_INDEX in a "
        "Kubernetes indexed Job)",
    )
    parser.add_argument(
        "--shard-count",
        type=_positive_int,
        metavar="N",
        help="how many workers share the download: each takes every N-th selected file by "
        "name (default: SLURM_ARRAY_TASK_COUNT in a Slurm array)",
    )


def _add_network_options(parser: argparse.ArgumentParser) -> None:
    """How many connections, how fast, how patient, whom to trust."""
    parser.add_argument(
        "--connections",
        type=_positive_int,
        help="use exactly N connections (default: adapt, growing while throughput grows)",
    )
    parser.add_argument(
        "--max-connections",
        type=_positive_int,
        default=256,
        help="never more connections than this (to the one CDN host)",
    )
    parser.add_argument("--files", type=_positive_int, default=8, help="files in flight at once")
    parser.add_argument(
        "--connections-per-file", type=_positive_int, help="cap per file (default: none)"
    )
    parser.add_argument("--max-rate", type=_size, help="total bandwidth cap, bytes/s (e.g. 100M)")
    parser.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=15.0,
        metavar="SECONDS",
        help="give up on a connection attempt after this long",
    )
    parser.add_argument(
        "--head-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="give up on a request whose response head is not complete after this long",
    )
    parser.add_argument(
        "--read-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="a connection bringing under 4 KiB/s for this long is a stall",
    )
    parser.add_argument(
        "--ca-bundle",
        type=Path,
        help="trust these CA certificates (default: SSL_CERT_FILE, else the system's)",
    )
    parser.add_argument(
        "--retries",
        type=_positive_int,
        default=8,
        help="failures in a row (without progress at the speed floor) before a file is given up",
    )


def _add_status(commands: Commands) -> None:
    st = _command(
        commands,
        "status",
        help="show what an output folder holds, and whether a download is running",
        description="Show each file's state in an output folder (done, partial with the "
        "bytes kept, failed, expired), whether a download is running there, and the last "
        "run. Exits 1 when a file failed or expired. For s3://BUCKET/PREFIX, read from the "
        "bucket alone: the files published, the uploads in progress and the stray uploads "
        "(sa1b clean removes them).",
    )
    _add_folder_argument(st, bucket=True)
    _add_state_dir_option(st)
    _add_output_options(st)


def _add_index(commands: Commands) -> None:
    index = _command(
        commands,
        "index",
        help="print each extracted shard's members as TSV",
        description="Print, as tab-separated lines with a header, every member of every "
        "extracted shard as its extraction recorded it: the shard, the member's name in the "
        "tar, the offset of its data in the tar, its size, and its path in OUT.",
    )
    _add_folder_argument(index)
    _add_state_dir_option(index)
    _add_output_options(index)


def _add_verify(commands: Commands) -> None:
    check = _command(
        commands,
        "verify",
        help="check what an output folder holds, file by file",
        description="Check every file the folder's state knows: kept tars (size, digest with "
        "--checksums, tar structure) and extracted shards (every member there with its "
        "size, every jpg with its json, every json of SA-1B's shape; --deep also decodes "
        "every mask). Exits 1 on any problem; --repair marks the bad files so that the next "
        "download fetches them again, and only them. For s3://BUCKET/PREFIX: each object's "
        "size against its sa1b-size metadata; with --checksums each object is also read "
        "once, streamed, for its digest and tar structure.",
    )
    _add_folder_argument(check, bucket=True)
    check.add_argument("--checksums", type=Path, help="md5sum/sha256sum file to check kept tars")
    check.add_argument(
        "--deep",
        action="store_true",
        help="decode every mask (pycocotools) and check it against its image and area",
    )
    check.add_argument("--repair", action="store_true", help="mark bad files to be fetched again")
    _add_state_dir_option(check)
    _add_output_options(check)


def _add_clean(commands: Commands) -> None:
    cleaning = _command(
        commands,
        "clean",
        help="remove the stray uploads of an s3:// output",
        description="Abort the stray multipart uploads under s3://BUCKET/PREFIX, as sa1b "
        "status shows them (older duplicates of a file's upload, uploads of a published "
        "file or of a key outside the layout), and nothing else: never the upload a file "
        "resumes from, never an object. Names each upload removed.",
    )
    cleaning.add_argument("out", metavar="s3://BUCKET/PREFIX", help="the output given to -o")
    cleaning.add_argument(
        "-n", "--dry-run", action="store_true", help="only list what would be removed"
    )
    _add_output_options(cleaning)


def _add_demo(commands: Commands) -> None:
    demo = _command(
        commands,
        "demo",
        help="download synthetic shards from a local CDN stand-in (no network needed)",
        description="Make synthetic SA-1B shards, serve them from a local CDN stand-in on "
        "loopback and download them with the live display. Each demo starts afresh.",
    )
    demo.add_argument("-o", "--out", default=DEMO_OUT, help="the demo's folder")
    demo.add_argument("--count", type=_positive_int, default=4, help="how many shards")
    demo.add_argument("--shard-size", type=_size, default="48M", help="bytes per shard")
    demo.add_argument(
        "--rate",
        type=_size,
        default="4M",
        help="the stand-in's per-connection cap, bytes/s (slow enough to watch)",
    )
    _add_output_options(demo)


def _command(
    commands: Commands,
    name: str,
    *,
    help: str,
    description: str,
) -> argparse.ArgumentParser:
    """A subcommand: defaults shown, no abbreviations, its own usage on errors."""
    parser = commands.add_parser(
        name,
        help=help,
        description=description,
        formatter_class=_DefaultsShown,
        allow_abbrev=False,
    )
    parser.set_defaults(command_parser=parser)
    return parser


def _add_folder_argument(parser: argparse.ArgumentParser, *, bucket: bool = False) -> None:
    """OUT, for the commands that read an output folder (status, verify, index)."""
    parser.add_argument(
        "out",
        nargs="?",
        default=DEFAULT_OUT,
        help=f"the folder{' (or s3://BUCKET/PREFIX)' if bucket else ''} given to download -o",
    )


def _add_state_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="keep the state store, its lock and the crash journal here, on a local disk, "
        "when OUT is on a network filesystem (default: OUT/.sa1b)",
    )


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors and the end")
    parser.add_argument("--log-file", type=Path, help="write a detailed log here")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="what goes into --log-file",
    )
