"""The ``sa1b`` command: parse arguments, build the config, call the library, report.

Exit codes (the README's table): 0 every selected file is done; 1 some failed or
expired (listed; every link expired too), a check found problems, or the run stopped
(disk full, a damaged store); 2 bad input or usage (a file, a flag, a folder with no
sa1b state, a folder another run holds); 130 interrupted (state saved); 141 the reader
of the output went away (``sa1b index OUT | head``): quietly, as git and every tool a
SIGPIPE ends.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import cast

from sa1b import api
from sa1b.checksums import read_checksums
from sa1b.cli.bucket import show_clean
from sa1b.cli.bucket import show_status as show_bucket_status
from sa1b.cli.display import Display, PlainDisplay, QuietDisplay
from sa1b.cli.output import Output, clean_record
from sa1b.cli.parser import build_parser, installed_version
from sa1b.cli.plan import show_plan
from sa1b.cluster.ray_engine import ClusterOptions, download_on_ray
from sa1b.config import DownloadConfig, ExtractOptions, UploadOptions, only_refuses
from sa1b.errors import (
    InputError,
    NewerStateError,
    NoStateError,
    OutputLocationError,
    SA1BError,
    StateError,
    StateLockedError,
)
from sa1b.expiry import forecast, remaining_bytes
from sa1b.links import Link, check_mirror, read_links, redact
from sa1b.net.options import Timeouts, TransportOptions, find_ca_bundle
from sa1b.net.proxy import Proxies
from sa1b.objectstore.location import BucketLocation, parse_output
from sa1b.redaction import clean
from sa1b.repack import Output as BucketOutput
from sa1b.retry import RetryPolicy
from sa1b.selection import parse_shard_spec, select_links, within_budget
from sa1b.sizes import NOMINAL_SHARD_SIZE
from sa1b.split import WorkerPart, take_part, worker_part
from sa1b.store.members import shard_members
from sa1b.store.paths import WORKERS, OutputPaths, bucket_state
from sa1b.store.shards import ShardState
from sa1b.store.state import folder_stores, lock_holder, no_state
from sa1b.store.usage import space_taken
from sa1b.store.walks import WalkRecord
from sa1b.units import human_bytes, human_duration, plural

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
USAGE_ERRORS = (InputError, NoStateError, NewerStateError, StateLockedError)
"""Exit 2: what was given cannot be used as it is; every other error exits 1."""
EXIT_OUTPUT_CLOSED = 128 + signal.SIGPIPE
"""What a shell reports for ``git log | head`` (git dies of SIGPIPE): the same here."""
BUCKET_COMMANDS = ("download", "plan", "status", "verify", "clean")
"""The commands that take an ``s3://`` output (status, verify and clean read the bucket
alone; a download keeps its state in a local folder too)."""
OUTPUT_VERBS = {"download": "write to", "plan": "write to", "demo": "write to", "clean": "clean up"}
"""What a command does with its output, for the line refusing one it cannot use; the
others (status, verify, index) read it."""
DEMO_MARK = ".sa1b-demo"
"""A file in the demo's data folder: only a folder holding it is ever deleted by a demo."""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["cdn"]:  # the stand-in has a command line of its own
        from sa1b.cdn.cli import main as cdn_main

        return cdn_main(argv[1:])
    args = _parse(build_parser(), argv)
    if args.command == "version":
        Output(sys.stdout).line(f"sa1b {installed_version()}")
        return EXIT_OK
    console = Output(sys.stderr)
    _configure_logging(args, console)
    try:
        bucket = _output(args)
        if args.command == "clean":
            return _clean(args, bucket)
        if args.command == "status" and bucket is not None:
            return show_bucket_status(bucket, Output(sys.stdout))
        if args.command == "status":
            return _status(args.out, args.state_dir, Output(sys.stdout))
        if args.command == "demo":
            return _demo(args, console)
        if args.command == "index":
            return _index(args.out, args.state_dir, Output(sys.stdout))
        if args.command == "verify":
            return _verify(args, Output(sys.stdout), bucket)
        if args.links is None:
            raise InputError(
                f"a links file is needed: sa1b {args.command} LINKS_FILE [-o OUT]",
                hint="download it from Meta's SA-1B page (see the README); "
                "'sa1b demo' runs a demo without one",
            )
        if args.command == "plan":
            return _plan(args, console, bucket)
        return _download(args, console, bucket)
    except KeyboardInterrupt:
        console.line("interrupted: progress is saved; run the same command to resume")
        return EXIT_INTERRUPTED
    except SA1BError as error:
        console.error(error.message)
        if error.hint:
            console.line(f"  hint: {error.hint}")
        return EXIT_USAGE if isinstance(error, USAGE_ERRORS) else EXIT_FAILED


def _output(args: argparse.Namespace) -> BucketLocation | None:
    """``-o`` (or OUT) read once, here: a local folder is put back in ``args.out`` as a
    Path; an ``s3://`` location is returned where the command can use it (plan) and
    refused where it cannot yet; whatever else sa1b cannot write (``gs://``, a typo) is
    refused (exit 2), never made a local folder named after a scheme."""
    where = parse_output(str(args.out), verb=OUTPUT_VERBS.get(args.command, "read"))
    if isinstance(where, Path):
        args.out = where
        return None
    if args.command not in BUCKET_COMMANDS:
        raise OutputLocationError(
            f"{where}: sa1b {args.command} cannot use an s3:// output yet "
            f"(sa1b {', '.join(BUCKET_COMMANDS)} can)",
            hint="for now, download into a local folder (-o FOLDER) and copy it to the bucket",
        )
    if args.command == "download":
        _check_bucket_download(args, where)
        # The local folder of an s3:// download holds its state only.
        args.out = args.state_dir or bucket_state(
            where.bucket, where.prefix, os.environ, Path.home()
        )
        return where
    args.out = Path()  # not looked at: the bucket is read, no local folder
    return where


def _check_bucket_download(args: argparse.Namespace, where: BucketLocation) -> None:
    """What a download into a bucket cannot do, refused in one line (exit 2)."""
    if args.only and args.layout != "shard":
        raise OutputLocationError(
            f"{where}: --only {args.only} into a bucket makes one {args.only}-only tar a shard "
            f"({args.only}/sa_NNNNNN.tar): --layout {args.layout} does not apply",
            hint="drop --layout",
        )
    repacked = _bucket_output(args) != "tars"
    if repacked and (args.checksums or args.keep_tars or args.engine == "ray"):
        given = {"--checksums": args.checksums, "--keep-tars": args.keep_tars}
        what = next((option for option, on in given.items() if on), "--engine ray")
        raise OutputLocationError(
            f"{where}: {what} with a tar made in the bucket (--layout wds, --only) is not built",
            hint="download the tars with --no-extract (--checksums checks those)",
        )
    if not args.no_extract and not repacked:
        raise OutputLocationError(
            f"{where}: only tars go into a bucket (--no-extract, --layout wds, --only json): an "
            "extracted layout is one object per image, millions of PUTs",
            hint="add --no-extract or --layout wds",
        )


def _bucket_output(args: argparse.Namespace) -> BucketOutput:
    """What each shard becomes in the bucket (:mod:`sa1b.repack`)."""
    if args.only:
        return cast("BucketOutput", args.only)
    return "wds" if args.layout == "wds" and not args.no_extract else "tars"


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
        else ExtractOptions(
            layout=args.layout,
            keep_tars=args.keep_tars,
            only=getattr(args, "only", None),
            tar_window=args.tar_window,
        ),
    )


def _proxies() -> Proxies:
    """HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY, read once, here at the edge."""
    try:
        return Proxies.from_environment(os.environ)
    except ValueError as error:
        raise InputError(
            f"proxy settings: {error}", hint="fix or unset that variable (HTTPS_PROXY, ...)"
        ) from None


def _download(args: argparse.Namespace, console: Output, bucket: BucketLocation | None) -> int:
    if args.engine != "ray" and (args.ray_address or args.node_local):
        args.command_parser.error("--ray-address and --node-local need --engine ray")
    if args.only:
        _check_only(args)
    selected, worker = _selection(args, console)
    mirrors = tuple(check_mirror(base) for base in args.mirror)
    check = not args.no_space_check
    config = replace(_config(args), worker=worker, mirrors=mirrors, check_space=check)
    if bucket is not None:
        upload = UploadOptions(
            location=bucket,
            part_size=args.part_size,
            memory=args.upload_memory,
            output=_bucket_output(args),
        )
        state = config.out  # a worker of a split download keeps its own, by default
        if worker is not None and args.state_dir is None:
            state = state / WORKERS / worker.folder
        # Ray tasks keep theirs on their nodes: under --state-dir if given, else each
        # node's own cache folder (see sa1b.cluster.bucket_task).
        kept = args.state_dir if args.engine == "ray" else state
        config = replace(
            config, out=state, state_dir=kept, upload=upload, extract=None, check_space=False
        )
    cluster = None
    if args.engine == "ray":
        cluster = ClusterOptions(
            address=args.ray_address, files_per_task=config.max_files, node_local=args.node_local
        )
    _announce(selected, config, args, console)
    return _run(selected, config, args, console, cluster)


def _check_only(args: argparse.Namespace) -> None:
    """--only beside what its configuration cannot hold (the configuration refuses the
    rest itself: --keep-tars, --layout wds, --checksums, --mirror)."""
    clashes = {
        "--no-extract": args.no_extract,
        "--extras": args.extras,
        "--engine ray": args.engine == "ray",
    }
    for option, given in clashes.items():
        if given:
            args.command_parser.error(only_refuses(option).message)


def _plan(args: argparse.Namespace, console: Output, bucket: BucketLocation | None) -> int:
    selected, worker = _selection(args, console)
    config = replace(_config(args), worker=worker)
    plan = api.plan(selected, config, probe_seconds=args.probe_seconds, bucket=bucket)
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
            console.line(
                f"budget: {len(kept)} of {plural(every, 'shard')} ({kept[0]} to {kept[-1]})"
            )
        selected = chosen
    worker = worker_part(args.shard_index, args.shard_count, os.environ)
    if worker is not None:
        mine = take_part(selected, worker)
        if not args.quiet:
            source = "" if worker.source == "--shard-index" else f" (from {worker.source})"
            files = plural(len(selected), "file")
            console.line(f"{worker.label}{source}: {len(mine)} of the {files}")
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
    if folder and getattr(args, "only", None):  # walked, and these members published so
        kind = f"{args.layout}:{args.only}"
        done |= {n for n, walk in folder.walks.items() if walk.complete and kind in walk.published}
    pending = [link for link in selected if link.name not in done]
    expired = set(api.check_validity(pending, now=now).expired)
    if expired and len(expired) < len(pending):
        shown = ", ".join(sorted(expired)[:3]) + (", ..." if len(expired) > 3 else "")
        logging.getLogger("sa1b").warning(
            "%d of the links still needed %s expired (%s): the other files are fetched; "
            "for these, download a fresh links file and run again",
            len(expired),
            "has" if len(expired) == 1 else "have",
            shown,
        )
    live = [link for link in pending if link.name not in expired]
    validity = api.check_validity(live, now=now)
    if args.quiet or not selected:
        return
    if not pending:
        every = f"all {len(selected)} files are" if len(selected) > 1 else f"{selected[0].name} is"
        into = config.upload.location if config.upload else config.out
        console.line(f"{every} already done in {into}; nothing to download")
        return
    chosen = plural(len(selected), "file")
    into = config.upload.location if config.upload else config.out
    console.line(f"{chosen} selected, {len(pending)} still to fetch into {into}")
    left = validity.seconds_left(now)
    if left is None or left <= 0:
        return
    console.line(f"links valid for {human_duration(left)} more")
    speed = (folder.last_run.speed or 0.0) if folder and folder.last_run else 0.0
    stamps = [stamp for link in live if (stamp := link.expires_at) is not None]
    known = {r.name: (r.size, r.done_bytes) for r in folder.files} if folder else {}
    remaining = remaining_bytes(
        (known.get(link.name, (None, 0)) for link in pending), nominal=NOMINAL_SHARD_SIZE
    )
    outlook = forecast(
        remaining=remaining, speed=speed, expires=stamps, now=now, cap=config.max_rate
    )
    if outlook is not None and outlook.too_late:
        logging.getLogger("sa1b").warning("judging by the last run: %s", outlook.warning())


def _folder_status(config: DownloadConfig) -> api.FolderStatus | None:
    """What the output folder holds already, read once; None without a readable store
    (a damaged one is set aside by the download, which says so); one a newer sa1b
    wrote is refused now, before anything is said of the run."""
    if not config.paths.database.exists():
        return None
    try:
        return api.status(config.out, state=config.state_dir)
    except NewerStateError:
        raise
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
    if result.walked:
        share = 100 * result.fetched / result.walked
        console.line(f"  {share:.2f}% of the {human_bytes(result.walked)} the shards hold")
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
    paths = OutputPaths.of(out)
    for shard in folder.shards:
        record, walk = shard.record, shard.walk
        if walk is not None and shard.state in ("walked", "pending"):
            console.line(clean(f"{record.name}  {_walked(walk)}", limit=1000))
            continue
        size, done = shard.size, shard.bytes
        if shard.state == "partial":
            share = f"{100 * done / size:.1f}%" if size else "?"
            label = f"partial {share}"
        elif shard.state == "extracted":
            label = f"extracted ({record.extracted})"
        else:
            label = shard.state
        sizes = f"{human_bytes(done)} / {human_bytes(size)}" if size else human_bytes(done)
        error = f"  ({record.error})" if record.error and record.status != "done" else ""
        # clean(): the store may be another's, or damaged; it is shown, never obeyed.
        console.line(clean(f"{record.name}  {label:<19} {sizes}{error}", limit=1000))
    if len(folder.stores) > 1:
        for store in folder.stores:
            running = f", running (pid {store.running})" if store.running is not None else ""
            console.line(f"{store.label}: {_tally(paths, store.shards)}{running}")
    console.line(
        f"in all: {_tally(paths, folder.shards)}"
        if len(folder.stores) > 1
        else _tally(paths, folder.shards)
    )
    run = folder.last_run
    if run and run.speed is not None:
        console.line(
            f"last run: {human_bytes(run.bytes)} at {human_bytes(run.speed)}/s ({run.outcome})"
        )
    return EXIT_OK if folder.ok else EXIT_FAILED


def _walked(walk: WalkRecord) -> str:
    """A shard walked by range reads (``--only``), as far as it got."""
    if walk.complete:
        kinds = ", ".join(sorted(walk.kinds))
        return f"{'walked: ' + kinds:<19} {len(walk.entries)} members indexed"
    share = f"walking {100 * walk.next / walk.size:.1f}%"
    return f"{share:<19} {human_bytes(walk.next)} / {human_bytes(walk.size)}"


def _index(out: Path, state: Path | None, console: Output) -> int:
    """Every member of every extracted or walked (``--only``) shard; a walked shard's
    members that were not published have no path."""
    rows = shard_members(out, state)
    if not rows and not folder_stores(out, state):
        raise no_state(out)
    if not rows:
        raise StateError(f"{out}: no extracted or walked shard with a member index here")
    console.line("shard\tmember\toffset\tsize\tpath")
    for shard, members in sorted(rows.items()):
        for member in members:
            where = member.path or ""
            console.line(f"{shard}\t{member.name}\t{member.offset}\t{member.size}\t{where}")
    return EXIT_OK


def _verify(args: argparse.Namespace, console: Output, bucket: BucketLocation | None) -> int:
    checksums = read_checksums(args.checksums) if args.checksums else None
    if bucket is not None and args.repair:
        raise InputError(f"{bucket}: --repair is for a local folder (a bucket's is not built)")
    report = (
        api.verify_bucket(bucket, checksums=checksums)
        if bucket is not None
        else api.verify(
            args.out, state=args.state_dir, checksums=checksums, deep=args.deep, repair=args.repair
        )
    )
    for check in report.checks:
        if args.quiet and not check.problems:  # -q: only the problems and the end
            continue
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


def _clean(args: argparse.Namespace, bucket: BucketLocation | None) -> int:
    if bucket is None:
        raise InputError(
            f"{args.out}: sa1b clean removes the stray uploads of an s3:// output "
            "(a local folder has none)",
            hint="sa1b status OUT shows what a folder holds",
        )
    return show_clean(bucket, Output(sys.stdout), dry_run=args.dry_run)


def _tally(paths: OutputPaths, shards: Sequence[ShardState]) -> str:
    """``3 files: 2 done, 1 partial; 21.0 MiB fetched, 30.0 MiB on disk`` (an extracted
    shard counts as ``done``, a shard walked to its end by ``--only`` as ``walked``): the
    bytes received, and the space the files take as ``du`` counts it (partial files are
    preallocated whole)."""
    counts: dict[str, int] = {}
    for shard in shards:
        state = "done" if shard.finished else shard.state
        counts[state] = counts.get(state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    fetched = sum(shard.bytes for shard in shards)
    taken = sum(space_taken(paths, shard.record) for shard in shards)
    published = (
        size
        for shard in shards
        if shard.walk is not None
        for *_, size in shard.walk.published_index(shard.name)
    )
    return (
        f"{len(shards)} files: {summary or 'none'}; {human_bytes(fetched)} fetched, "
        f"{human_bytes(taken + sum(published))} on disk"
    )


def _demo(args: argparse.Namespace, console: Output) -> int:
    from sa1b.cdn.server import CDNServer
    from sa1b.cdn.synth import make_dataset

    out: Path = args.out
    source, data = out / "cdn", out / "data"
    count, size = args.count, args.shard_size
    shards = plural(count, "synthetic shard")
    console.line(f"demo: making {shards} of {human_bytes(size)} in {source}")
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
        code = _run(selected, config, args, console)
    if code == EXIT_OK and not args.quiet:
        _next_steps(data, source, console)
    return code


def _next_steps(data: Path, source: Path, console: Output) -> None:
    """Where the demo wrote, and the commands to try on it, ready to paste."""
    sa1b, python, folder = _typed("sa1b"), _typed("python"), shlex.quote(str(data))
    code = (
        f"import sa1b; s = sa1b.open({json.dumps(str(data))}); "
        'print(len(s), "samples; the first,", s[0].key, "has", len(s[0].annotations), "masks")'
    )
    console.line(f"demo: the shards are extracted in {data} (the synthetic tars in {source})")
    console.line("try next:")
    console.line(f"  {sa1b} status {folder}    # what the folder holds")
    console.line(f"  {sa1b} verify {folder}    # check every file against what was recorded")
    console.line(f"  {sa1b} index {folder}     # every member: its tar, offset, size and path")
    console.line(f"  {python} -c {shlex.quote(code)}    # read the samples, as to train")


def _typed(name: str) -> str:
    """How to run ``name`` (sa1b, python) of this sa1b's environment: by name when that
    is what the name runs, else by its path (./run leaves its .venv off PATH)."""
    mine = Path(sys.executable).with_name(name)
    if not mine.exists() or shutil.which(name) == str(mine):
        return name
    return shlex.quote(os.path.relpath(mine))


def run() -> None:
    """Console-script entry point."""
    try:
        code = main()
        sys.stdout.flush()  # inside the try: what is still buffered may meet a closed pipe
    except BrokenPipeError:
        code = _output_closed()
    sys.exit(code)


def _output_closed() -> int:
    """The reader of stdout or stderr has gone (``| head``): say nothing more. Both
    are pointed at /dev/null, or Python's own flush at exit would fail again, loudly
    (the recipe of Python's ``signal`` documentation)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or no descriptor
            os.dup2(devnull, stream.fileno())
    return EXIT_OUTPUT_CLOSED
