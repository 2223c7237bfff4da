"""``python -m sa1b.cdn``: make synthetic SA-1B shards and serve them like Meta's CDN.

Commands::

    python -m sa1b.cdn make  --dir DIR [--shards 0-5] [--shard-size 170M] [--seed 0]
                             [--member-style flat|dotslash|folder] [--no-extras]
                             [--checksums-out FILE]
    python -m sa1b.cdn serve --dir DIR [--shards 0-5] [--shard-size 170M] [--seed 0]
                             [--port 0] [--rate 8M] [--links-out FILE] [--expires-in 30d]
                             [--links-style official|crlf|spaces|noheader|urls]
                             [--secret TEXT] [--checksums-out FILE]

Sizes (``--shard-size``, ``--rate``) take a number with an optional K, M, G or T suffix, in
powers of 1024 (``170M`` is 170 * 1024**2 bytes; ``KiB``/``MB`` spellings mean the same);
``--rate`` is bytes per second per connection. Durations (``--expires-in``) take s, m, h or d
(``30d``, ``12h``); a negative one (``--expires-in=-1h``) writes links that are already expired.
Shards are ids (``0-5``, ``0,7,42``, ``0-3,9``), 0 to 999. ``serve`` generates missing shards,
writes the links file (default ``DIR/sa1b_links.txt``), prints the base URL and the links path,
and serves until SIGINT or SIGTERM. Exit codes: 0 done, 1 runtime error, 2 usage error.
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TypeVar, get_args

from sa1b.cdn.server import CDNServer, LinksStyle
from sa1b.cdn.synth import MemberStyle, ShardInfo, make_dataset, write_checksums

__all__ = ["main", "parse_duration", "parse_shards", "parse_size"]

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}
_DURATION_RE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*([SMHD]?)\s*$", re.IGNORECASE)
_SECONDS = {"": 1, "S": 1, "M": 60, "H": 3600, "D": 86400}
_MAX_SHARD = 999

T = TypeVar("T")


def parse_size(text: str) -> int:
    """``170M`` -> 178257920: a byte count with an optional K/M/G/T suffix (powers of 1024)."""
    match = _SIZE_RE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (examples: 512K, 170M, 1G)")
    number, unit = match.groups()
    return int(float(number) * 1024 ** _UNITS[unit.upper()])


def parse_duration(text: str) -> int:
    """``30d`` -> 2592000: seconds, with an optional s/m/h/d suffix; may be negative."""
    match = _DURATION_RE.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (examples: 45s, 90m, 12h, 30d)")
    number, unit = match.groups()
    return int(float(number) * _SECONDS[unit.upper()])


def parse_shards(text: str) -> list[int]:
    """``0-3,9`` -> [0, 1, 2, 3, 9]: shard ids and inclusive ranges, in the order given."""
    ids: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"not a shard id or range: {part!r} (examples: 0-5, 0,7,42)")
        lo, hi = int(first), int(last) if dash else int(first)
        if lo > hi or hi > _MAX_SHARD:
            raise ValueError(f"shard range {part!r} must be ascending, within 0-{_MAX_SHARD}")
        ids.extend(i for i in range(lo, hi + 1) if i not in ids)
    return ids


def _arg(parse: Callable[[str], T]) -> Callable[[str], T]:
    """Wrap a parser so argparse reports its ValueError as a usage error."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return convert


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sa1b.cdn",
        description="Synthetic SA-1B shards and a local stand-in for Meta's CDN.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--dir",
            type=Path,
            required=True,
            help="folder of the shards: made if missing; shards already there with the same "
            "parameters are reused",
        )
        sub.add_argument(
            "--shards",
            metavar="IDS",
            type=_arg(parse_shards),
            default=parse_shards("0-5"),
            help="shard ids to make, 0 to 999: 0-5, 0,7,42 or 0-3,9 (default: 0-5)",
        )
        sub.add_argument(
            "--shard-size",
            metavar="SIZE",
            type=_arg(parse_size),
            default=parse_size("170M"),
            help="bytes per shard, with K, M, G or T in powers of 1024 (default: 170M; "
            "the real ones are about 10.5G)",
        )
        sub.add_argument(
            "--seed",
            metavar="N",
            type=int,
            default=0,
            help="makes the same bytes again for the same seed, and shuffles the links "
            "file's rows (default: 0)",
        )
        sub.add_argument(
            "--member-style",
            choices=get_args(MemberStyle),
            default="flat",
            help="member names in the tars: flat sa_1.jpg (as Meta's), dotslash ./sa_1.jpg, "
            "folder sa_000000/sa_1.jpg (default: flat)",
        )
        sub.add_argument("--no-extras", action="store_true", help="do not make sa_images_ids.txt")
        sub.add_argument(
            "--checksums-out",
            metavar="FILE",
            type=Path,
            help="also write md5sum-format checksums to this file",
        )

    make = commands.add_parser("make", help="make the shards, and stop")
    common(make)
    serve = commands.add_parser(
        "serve",
        help="make missing shards, write a links file and serve them until Ctrl-C",
        description="Make missing shards, write a links file of signed, expiring links to "
        "them, and serve them over HTTP on 127.0.0.1 (with ranges) until SIGINT or SIGTERM.",
    )
    common(serve)
    serve.add_argument(
        "--port",
        metavar="PORT",
        type=int,
        default=0,
        help="port on 127.0.0.1 (default: 0, a free one)",
    )
    serve.add_argument(
        "--rate",
        metavar="SIZE",
        type=_arg(parse_size),
        help="cap on each connection, bytes/s, K, M or G in powers of 1024 (default: none)",
    )
    serve.add_argument(
        "--links-out",
        metavar="FILE",
        type=Path,
        help="where to write the links file (default: DIR/sa1b_links.txt)",
    )
    serve.add_argument(
        "--links-style",
        choices=get_args(LinksStyle),
        default="official",
        help="the links file's shape: official (Meta's: a header, then name TAB url), crlf "
        "(the same with CRLF), spaces (name url, no header), noheader (name TAB url), urls "
        "(one url a line) (default: official)",
    )
    serve.add_argument(
        "--expires-in",
        metavar="DURATION",
        type=_arg(parse_duration),
        default=parse_duration("30d"),
        help="how long the links stay valid: s, m, h or d; negative (--expires-in=-1h) for "
        "links expired already (default: 30d)",
    )
    serve.add_argument(
        "--secret",
        metavar="TEXT",
        default="sa1b-demo",
        help="the key that signs the links; the server refuses a link not signed with it "
        "(default: sa1b-demo)",
    )
    return parser


def _generate(args: argparse.Namespace) -> list[ShardInfo]:
    started = time.monotonic()
    infos = make_dataset(
        args.dir,
        shard_indices=args.shards,
        shard_size=args.shard_size,
        seed=args.seed,
        extras=not args.no_extras,
        member_style=args.member_style,
    )
    elapsed = time.monotonic() - started
    total = sum(i.size for i in infos)
    made = f"{len(infos)} file{'' if len(infos) == 1 else 's'}"
    print(f"{made}, {total / 1024**2:.1f} MiB in {args.dir} ({elapsed:.1f} s)")
    if args.checksums_out is not None:
        write_checksums(infos, args.checksums_out)
        print(f"checksums: {args.checksums_out}")
    return infos


def _serve(args: argparse.Namespace, infos: list[ShardInfo]) -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server = CDNServer(
            root=args.dir,
            secret=args.secret.encode(),
            rate_per_connection=args.rate,
            port=args.port,
        )
        with server:
            links = args.links_out or args.dir / "sa1b_links.txt"
            expires_at = max(0, int(time.time()) + args.expires_in)
            names = [i.name for i in infos]
            random.Random(args.seed).shuffle(names)  # the real file is not sorted either
            server.write_links_file(links, names, expires_at=expires_at, style=args.links_style)
            print(f"serving {server.base_url}")
            print(f"links: {links}")
            print("press Ctrl-C to stop", flush=True)
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # usage errors (2) and --help (0)
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )
    try:
        infos = _generate(args)
        if args.command == "serve":
            _serve(args, infos)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
