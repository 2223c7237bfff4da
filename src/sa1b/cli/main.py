"""The ``sa1b`` command: parse arguments, build the config, call the library, report.

Exit codes: 0 every selected file is done; 1 some failed or expired (listed);
2 bad input or usage; 130 interrupted (state saved).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from sa1b import api
from sa1b.checksums import read_checksums
from sa1b.cli.display import Display, PlainDisplay, QuietDisplay
from sa1b.cli.output import Output, clean_record
from sa1b.cli.plan import show_plan
from sa1b.cluster.ray_engine import ClusterOptions, download_on_ray
from sa1b.config import DownloadConfig, ExtractOptions
from sa1b.errors import InputError, SA1BError, StateError, StateLockedError
from sa1b.expiry import forecast
from sa1b.layout import LAYOUTS
from sa1b.links import Link, check_mirror, read_links, redact
from sa1b.net.options import Timeouts, TransportOptions, find_ca_bundle
from sa1b.net.proxy import Proxies
from sa1b.records import FileRecord
from sa1b.redaction import clean
from sa1b.retry import RetryPolicy
from sa1b.selection import parse_shard_spec, select_links, within_budget
from sa1b.sizes import NOMINAL_SHARD_SIZE
from sa1b.split import WorkerPart, take_part, worker_part
from sa1b.store.paths import OutputPaths
from sa1b.store.state import lock_holder
from sa1b.units import human_bytes, human_duration, parse_size

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_OUT = Path("SA-1B")
DEMO_OUT = Path("sa1b-demo")
DEMO_MARK = ".sa1b-demo"
"""A file in the demo's data folder: only a folder holding it is ever deleted by a demo."""


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
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_download(commands)
    _add_plan(commands)
    _add_status(commands)
    _add_verify(commands)
    _add_demo(commands)
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
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help="output folder")
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
        "OUT/annotations/<shard>/; flat: every file in OUT/",
    )
    parser.add_argument("--keep-tars", action="store_true", help="also keep the tars in OUT/tars/")
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
        help="failures in a row (without progress) before a file is given up",
    )


def _add_status(commands: Commands) -> None:
    st = _command(
        commands,
        "status",
        help="show what an output folder holds, and whether a download is running",
        description="Show each file's state in an output folder (done, partial with the "
        "bytes kept, failed, expired), whether a download is running there, and the last "
        "run. Exits 1 when a file failed or expired.",
    )
    st.add_argument(
        "out", nargs="?", type=Path, default=DEFAULT_OUT, help="the folder given to download -o"
    )
    _add_state_dir_option(st)
    _add_output_options(st)


def _add_verify(commands: Commands) -> None:
    check = _command(
        commands,
        "verify",
        help="check what an output folder holds, file by file",
        description="Check every file the folder's state knows: kept tars (size, digest with "
        "--checksums, tar structure) and extracted shards (every member there with its "
        "size, every jpg with its json, every json of SA-1B's shape; --deep also decodes "
        "every mask). Exits 1 on any problem; --repair marks the bad files so that the next "
        "download fetches them again, and only them.",
    )
    check.add_argument(
        "out", nargs="?", type=Path, default=DEFAULT_OUT, help="the folder given to download -o"
    )
    check.add_argument("--checksums", type=Path, help="md5sum/sha256sum file to check kept tars")
    check.add_argument(
        "--deep",
        action="store_true",
        help="decode every mask (pycocotools) and check it against its image and area",
    )
    check.add_argument("--repair", action="store_true", help="mark bad files to be fetched again")
    _add_output_options(check)


def _add_demo(commands: Commands) -> None:
    demo = _command(
        commands,
        "demo",
        help="download synthetic shards from a local CDN stand-in (no network needed)",
        description="Make synthetic SA-1B shards, serve them from a local CDN stand-in on "
        "loopback and download them with the live display. Each demo starts afresh.",
    )
    demo.add_argument("-o", "--out", type=Path, default=DEMO_OUT, help="the demo's folder")
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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["cdn"]:  # the stand-in has a command line of its own
        from sa1b.cdn.cli import main as cdn_main

        return cdn_main(argv[1:])
    args = _parse(build_parser(), argv)
    console = Output(sys.stderr)
    _configure_logging(args, console)
    try:
        if args.command == "status":
            return _status(args.out, args.state_dir, Output(sys.stdout))
        if args.command == "demo":
            return _demo(args, console)
        if args.command == "verify":
            return _verify(args, Output(sys.stdout))
        if args.links is None:
            raise InputError(
                f"a links file is needed: sa1b {args.command} LINKS_FILE [-o OUT]",
                hint="download it from Meta's SA-1B page (see the README); "
                "'sa1b demo' runs a demo without one",
            )
        if args.command == "plan":
            return _plan(args, console)
        return _download(args, console)
    except KeyboardInterrupt:
        console.line("interrupted: progress is saved; run the same command to resume")
        return EXIT_INTERRUPTED
    except SA1BError as error:
        console.error(error.message)
        if error.hint:
            console.line(f"  hint: {error.hint}")
        return EXIT_USAGE if isinstance(error, InputError | StateLockedError) else EXIT_FAILED


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; an unknown option is reported by its subcommand's own usage."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _configure_logging(args: argparse.Namespace, console: Output) -> None:
    root = logging.getLogger("sa1b")
    root.setLevel(logging.DEBUG)
    screen = console.log_handler()
    screen.setLevel(logging.ERROR if args.quiet else logging.WARNING)
    root.addHandler(screen)
    if args.log_file:
        handler = logging.FileHandler(args.log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(clean_record)
        handler.setLevel(args.log_level.upper())
        root.addHandler(handler)


def _config(args: argparse.Namespace) -> DownloadConfig:
    checksums = read_checksums(args.checksums) if args.checksums else {}
    return DownloadConfig(
        out=args.out,
        state_dir=args.state_dir,
        connections=args.connections,
        max_connections=args.max_connections,
        max_files=args.files,
        connections_per_file=args.connections_per_file,
        max_rate=args.max_rate,
        transport=TransportOptions(
            timeouts=Timeouts(
                connect=args.connect_timeout, head=args.head_timeout, read=args.read_timeout
            ),
            proxies=_proxies(),
            ca_bundle=find_ca_bundle(args.ca_bundle, os.environ),
        ),
        retry=RetryPolicy(attempts=args.retries),
        checksums=checksums,
        extract=None
        if args.no_extract
        else ExtractOptions(layout=args.layout, keep_tars=args.keep_tars),
    )


def _proxies() -> Proxies:
    """HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY, read once, here at the edge."""
    try:
        return Proxies.from_environment(os.environ)
    except ValueError as error:
        raise InputError(
            f"proxy settings: {error}", hint="fix or unset that variable (HTTPS_PROXY, ...)"
        ) from None


def _download(args: argparse.Namespace, console: Output) -> int:
    if args.engine != "ray" and (args.ray_address or args.node_local):
        args.command_parser.error("--ray-address and --node-local need --engine ray")
    selected, worker = _selection(args, console)
    mirrors = tuple(check_mirror(base) for base in args.mirror)
    config = replace(_config(args), worker=worker, mirrors=mirrors)
    cluster = None
    if args.engine == "ray":
        cluster = ClusterOptions(
            address=args.ray_address, files_per_task=config.max_files, node_local=args.node_local
        )
    if not args.no_space_check and not args.node_local:  # node-local: disks elsewhere
        api.check_space(selected, config)
    _announce(selected, config, args, console)
    return _run(selected, config, args, console, cluster)


def _plan(args: argparse.Namespace, console: Output) -> int:
    selected, worker = _selection(args, console)
    config = replace(_config(args), worker=worker)
    plan = api.plan(selected, config, probe_seconds=args.probe_seconds)
    show_plan(plan, config, Output(sys.stdout), as_json=args.json)
    return EXIT_OK if plan.ok else EXIT_FAILED


def _selection(args: argparse.Namespace, console: Output) -> tuple[list[Link], WorkerPart | None]:
    """The links this run takes: selected, within the budget, this worker's part."""
    links = read_links(args.links)
    shards = parse_shard_spec(args.shards) if args.shards else None
    selected = select_links(links, shards=shards, extras=args.extras)
    if args.max_bytes is not None or args.fraction is not None:
        chosen = within_budget(selected, max_bytes=args.max_bytes, fraction=args.fraction)
        if not args.quiet:
            kept = [link.name for link in chosen if link.shard_id is not None]
            every = sum(1 for link in selected if link.shard_id is not None)
            console.line(f"budget: {len(kept)} of {every} shards ({kept[0]} to {kept[-1]})")
        selected = chosen
    worker = worker_part(args.shard_index, args.shard_count, os.environ)
    if worker is not None:
        mine = take_part(selected, worker)
        if not args.quiet:
            source = "" if worker.source == "--shard-index" else f" (from {worker.source})"
            console.line(f"{worker.label}{source}: {len(mine)} of the {len(selected)} files")
        selected = mine
    return selected, worker


def _announce(
    selected: Sequence[Link],
    config: DownloadConfig,
    args: argparse.Namespace,
    console: Output,
) -> None:
    """Say what will be fetched and how long the links stay valid; warn if too short."""
    now = time.time()
    folder = _folder_status(config)
    done = {r.name for r in folder.files if r.status == "done"} if folder else set()
    pending = [link for link in selected if link.name not in done]
    expired = set(api.check_validity(pending, now=now).expired)
    if expired and len(expired) < len(pending):
        shown = ", ".join(sorted(expired)[:3]) + (", ..." if len(expired) > 3 else "")
        logging.getLogger("sa1b").warning(
            "%d of the links still needed have expired (%s): the other files are fetched; "
            "for these, download a fresh links file and run again",
            len(expired),
            shown,
        )
    live = [link for link in pending if link.name not in expired]
    validity = api.check_validity(live, now=now)
    if args.quiet or not pending:
        return
    console.line(f"{len(selected)} files selected, {len(pending)} still to fetch into {config.out}")
    left = validity.seconds_left(now)
    if left is None or left <= 0:
        return
    console.line(f"links valid for {human_duration(left)} more")
    speed = (folder.last_run.speed or 0.0) if folder and folder.last_run else 0.0
    stamps = [stamp for link in live if (stamp := link.expires_at) is not None]
    remaining = len(pending) * NOMINAL_SHARD_SIZE
    outlook = forecast(remaining=remaining, speed=speed, expires=stamps, now=now)
    if outlook is not None and outlook.too_late:
        logging.getLogger("sa1b").warning("judging by the last run: %s", outlook.warning())


def _folder_status(config: DownloadConfig) -> api.FolderStatus | None:
    """What the output folder holds already, read once; None without a readable store
    (a damaged one is set aside by the download, which says so)."""
    if not config.paths.database.exists():
        return None
    try:
        return api.status(config.out, state=config.state_dir)
    except StateError:
        return None


def _run(
    selected: Sequence[Link],
    config: DownloadConfig,
    args: argparse.Namespace,
    console: Output,
    cluster: ClusterOptions | None = None,
) -> int:
    """Download with a display; on a Ray cluster when ``cluster`` is given."""
    display: Display
    if args.quiet:
        display = QuietDisplay()
    elif console.console is not None:
        from sa1b.cli.live import LiveDisplay

        display = LiveDisplay(console.console)
    else:
        display = PlainDisplay(sys.stderr)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with display:
            if cluster is not None:
                result = download_on_ray(selected, config, cluster, listener=display)
            else:
                result = api.download(selected, config, listener=display)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return _summarise(result, console)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _summarise(result: api.DownloadResult, console: Output) -> int:
    done = result.with_state("done")
    speed = result.fetched / result.seconds if result.seconds > 0 else 0.0
    console.line(
        f"{len(done)}/{len(result.outcomes)} files done; fetched {human_bytes(result.fetched)} "
        f"in {human_duration(result.seconds)} ({human_bytes(speed)}/s)"
    )
    for outcome in result.outcomes:
        if outcome.state == "done" and outcome.source:
            console.line(f"  {outcome.name}  from the mirror {redact(outcome.source)}")
    if result.ok:
        return EXIT_OK
    for outcome in result.outcomes:
        if outcome.state != "done":
            console.line(f"  {outcome.name}  {outcome.state}: {outcome.message}")
    hints = {o.hint for o in result.outcomes if o.state != "done" and o.hint}
    for hint in sorted(hints):
        console.line(f"  hint: {hint}")
    return EXIT_FAILED


def _status(out: Path, state: Path | None, console: Output) -> int:
    folder = api.status(out, state=state)
    if folder.running is not None:
        pid = f" (pid {folder.running})" if folder.running else ""
        console.line(f"a download is running in {out}{pid}; these figures are live")
    for record in folder.files:
        size = record.size
        done = record.done_bytes
        if record.status == "partial" or (record.status == "pending" and done):
            share = f"{100 * done / size:.1f}%" if size else "?"
            label = f"partial {share}"
        elif record.extracted:
            label = f"extracted ({record.extracted})"
        else:
            label = record.status
        sizes = f"{human_bytes(done)} / {human_bytes(size)}" if size else human_bytes(done)
        error = f"  ({record.error})" if record.error and record.status != "done" else ""
        # clean(): the store may be another's, or damaged; it is shown, never obeyed.
        console.line(clean(f"{record.name}  {label:<19} {sizes}{error}", limit=1000))
    if len(folder.stores) > 1:
        for store in folder.stores:
            running = f", running (pid {store.running})" if store.running is not None else ""
            console.line(f"{store.label}: {_tally(store.files)}{running}")
    console.line(
        f"in all: {_tally(folder.files)}" if len(folder.stores) > 1 else _tally(folder.files)
    )
    run = folder.last_run
    if run and run.speed is not None:
        console.line(
            f"last run: {human_bytes(run.bytes)} at {human_bytes(run.speed)}/s ({run.outcome})"
        )
    return EXIT_OK if folder.ok else EXIT_FAILED


def _verify(args: argparse.Namespace, console: Output) -> int:
    checksums = read_checksums(args.checksums) if args.checksums else None
    report = api.verify(args.out, checksums=checksums, deep=args.deep, repair=args.repair)
    for check in report.checks:
        verdict = "BAD" if check.problems else "ok"
        console.line(clean(f"{check.name}  {verdict:<3}  {check.kind}", limit=300))
        for problem in check.problems:
            console.line(clean(f"    {problem}", limit=300))
    bad = sum(1 for check in report.checks if check.problems)
    console.line(f"{len(report.checks)} files: {len(report.checks) - bad} ok, {bad} with problems")
    if report.repaired:
        console.line(
            f"marked to be fetched again: {', '.join(report.repaired)}; "
            "run the same sa1b download to fetch them"
        )
    return EXIT_OK if report.ok else EXIT_FAILED


def _tally(files: Sequence[FileRecord]) -> str:
    """``3 files: 2 done, 1 partial; 21.0 MiB on disk``."""
    counts: dict[str, int] = {}
    for record in files:
        counts[record.status] = counts.get(record.status, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    kept = sum(record.done_bytes for record in files)
    return f"{len(files)} files: {summary or 'none'}; {human_bytes(kept)} on disk"


def _demo(args: argparse.Namespace, console: Output) -> int:
    from sa1b.cdn.server import CDNServer
    from sa1b.cdn.synth import make_dataset

    out: Path = args.out
    source, data = out / "cdn", out / "data"
    count, size = args.count, args.shard_size
    console.line(f"demo: making {count} synthetic shards of {human_bytes(size)} in {source}")
    make_dataset(source, shard_indices=range(count), shard_size=size, seed=0, extras=False)
    if (pid := lock_holder(OutputPaths.of(data))) is not None:
        raise StateLockedError(f"{data}: another demo (pid {pid}) is running in this folder")
    mark = data / DEMO_MARK
    if data.exists() and not mark.exists():
        raise InputError(
            f"{data} exists and is not a demo's: the demo would replace it",
            hint="pass the demo another folder with -o",
        )
    if data.exists():  # each demo starts afresh (the synthetic shards are reused)
        shutil.rmtree(data)
    data.mkdir(parents=True)
    mark.write_text("made by sa1b demo: each demo deletes and remakes this folder\n")
    with CDNServer(root=source, rate_per_connection=float(args.rate)) as server:
        links_file = out / "demo-links.tsv"
        server.write_links_file(links_file)
        console.line(f"demo: local CDN at {server.base_url}, links in {links_file}")
        selected = select_links(read_links(links_file))
        config = DownloadConfig(out=data, connections=8, max_files=2)
        _announce(selected, config, args, console)
        return _run(selected, config, args, console)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
