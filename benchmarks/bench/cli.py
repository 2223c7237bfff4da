"""The command line: ``python -m benchmarks.bench --help``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import certs as _certs
from harness import nginx as _nginx
from harness.certs import make_certificates
from harness.nginx import find_nginx

from .accounting import child_env
from .common import (
    DEFAULT_SCENARIOS,
    MB,
    PACER,
    SCENARIOS,
    SPECS,
    TOOLS,
    BenchError,
    log,
    parse_size,
)
from .corpus import prepare_shards
from .goals import evaluate_goals, render_goals
from .options import add_shared_options, sa1b_command
from .report import machine_info, render_table
from .scenarios import Context, make_tool, run_extract, run_kill, run_throughput
from .tools import Inputs, tar_argv


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description=(
            "Benchmark `sa1b download` against curl and aria2c on synthetic SA-1B shards served "
            "by a private nginx on 127.0.0.1, over HTTPS (uncapped, capped per TCP connection, "
            "with a long RTT) and plain HTTP."
        ),
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=(*SCENARIOS, "all"),
        help="scenario to run (repeatable; default: all = every scenario but kill-http)",
    )
    add_shared_options(
        parser,
        shards=6,
        shard_size="170M",
        runs=3,
        warmup=1,
        workdir=Path(__file__).resolve().parents[1] / "work",
        workdir_help="scratch folder; generated shards are kept here between invocations "
        "(default: benchmarks/work)",
        sa1b="installed",
        timeout=300.0,
        check_goals=True,
        json_out=True,
    )
    parser.add_argument(
        "--tools",
        help=f"comma-separated tools to run, among {','.join(TOOLS)} (default: all four in the "
        "HTTPS throughput scenarios, aria2c,sa1b elsewhere); each scenario runs those it can",
    )
    parser.add_argument("--aria2c", default="aria2c", help="aria2c binary (default: aria2c)")
    parser.add_argument("--curl", default="curl", help="curl binary for curl8 (default: curl)")
    parser.add_argument(
        "--per-connection-rate",
        type=parse_size,
        default=parse_size("2M"),
        metavar="RATE",
        help="https-paced*: bytes/s per TCP connection, K/M/G binary (default: 2M)",
    )
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=20.0,
        help="https-paced-rtt: added latency each way; RTT = 2 x this (default: 20)",
    )
    parser.add_argument(
        "--kill-at",
        type=float,
        default=0.5,
        help="kill scenarios: SIGKILL when this fraction of the data is on disk (default: 0.5)",
    )
    return parser


def _usage_error(message: str) -> int:
    print(f"bench: {message}", file=sys.stderr)
    return 2


def sa1b_has_ca_bundle(command: list[str]) -> bool:
    """Whether `sa1b download --help` lists --ca-bundle."""
    try:
        done = subprocess.run(
            [*command, "download", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=child_env(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log(f"warning: `sa1b download --help` did not run: {exc}")
        return False
    if done.returncode != 0:
        log(
            f"warning: `sa1b download --help` exited with {done.returncode}: "
            + (done.stderr.strip().splitlines() or [""])[-1]
        )
    return "--ca-bundle" in done.stdout


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    chosen = args.scenario or ["all"]
    scenarios = [
        s for s in SCENARIOS if s in chosen or ("all" in chosen and s in DEFAULT_SCENARIOS)
    ]
    wanted: list[str] | None = None
    if args.tools is not None:
        wanted = [t.strip() for t in args.tools.split(",") if t.strip()]
        if not wanted or any(t not in TOOLS for t in wanted):
            return _usage_error(f"--tools must be a subset of {','.join(TOOLS)}")
    if args.shards < 1 or args.runs < 1 or args.shard_size < 1 or args.warmup < 0:
        return _usage_error("--shards, --runs, --shard-size must be > 0")
    if not 0 < args.kill_at < 1:
        return _usage_error("--kill-at must be between 0 and 1")
    if args.per_connection_rate < 1 or args.delay_ms < 0:
        return _usage_error("--per-connection-rate must be > 0 and --delay-ms >= 0")
    tools_for: dict[str, list[str]] = {}
    for name in scenarios:
        spec = SPECS[name]
        pick = spec.default_tools if wanted is None else wanted
        tools_for[name] = [t for t in TOOLS if t in pick and t in spec.tools]
        if not tools_for[name]:
            log(f"{name}: none of the tools asked for runs in this scenario; skipped")
    scenarios = [s for s in scenarios if tools_for[s]]
    used = {t for s in scenarios for t in tools_for[s]}
    if not scenarios:
        return _usage_error("nothing to run")

    tar: str | None = None
    if any(SPECS[s].kind == "extract" and "aria2c" in tools_for[s] for s in scenarios):
        tar = shutil.which("tar")
        if tar is None:
            return _usage_error("the extract scenarios need tar on PATH")
    aria2c: str | None = None
    if used & {"aria2c", "aria2c-best"}:
        aria2c = shutil.which(args.aria2c)
        if aria2c is None:
            return _usage_error(f"aria2c not found ({args.aria2c}): apt-get install aria2")
    curl = xargs = None
    if "curl8" in used:
        curl, xargs = shutil.which(args.curl), shutil.which("xargs")
        if curl is None or xargs is None:
            return _usage_error("curl8 needs curl and xargs on PATH (apt-get install curl)")
    sa1b: list[str] | None = None
    if "sa1b" in used:
        sa1b = sa1b_command(args)
        if not sa1b:
            return _usage_error(
                "no sa1b executable next to this Python nor on PATH; install the package "
                "(pip install -e .), pass --sa1b CMD, or use --tools without sa1b"
            )
        if shutil.which(sa1b[0]) is None:
            return _usage_error(f"--sa1b: cannot run {sa1b[0]!r} (not found or not executable)")
    try:
        find_nginx()
    except FileNotFoundError as exc:
        return _usage_error(str(exc))

    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    ca: Path | None = None
    tls: tuple[Path, Path] | None = None
    sa1b_ca_bundle = False
    if any(SPECS[s].tls for s in scenarios):
        try:
            paths = make_certificates(workdir / "tls")
        except (_certs.CertificateError, OSError) as exc:
            return _usage_error(f"cannot make the private CA: {exc}")
        ca, tls = paths.ca, (paths.certificate, paths.key)
        log(f"private CA: {ca}")
        if sa1b is not None and any(SPECS[s].tls and "sa1b" in tools_for[s] for s in scenarios):
            sa1b_ca_bundle = sa1b_has_ca_bundle(sa1b)
            log(
                "sa1b gets the CA through SSL_CERT_FILE"
                + (" and --ca-bundle" if sa1b_ca_bundle else " (no --ca-bundle option)")
            )
    try:
        shards = prepare_shards(workdir, count=args.shards, shard_size=args.shard_size)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    total = sum(s.size for s in shards)
    ctx = Context(
        args=args,
        workdir=workdir,
        shards=shards,
        total=total,
        aria2c=aria2c,
        sa1b=sa1b,
        failures=[],
        tools=tools_for,
        tar=tar,
        curl=curl,
        xargs=xargs,
        ca=ca,
        tls=tls,
        sa1b_ca_bundle=sa1b_ca_bundle,
    )
    results: dict[str, Any] = {}
    started = time.monotonic()
    try:
        for scenario in scenarios:
            spec = SPECS[scenario]
            log(
                f"== {scenario}: {len(shards)} shards, {total / MB:.0f} MB in all; "
                f"{', '.join(tools_for[scenario])}"
            )
            try:
                if spec.kind == "kill":
                    results[scenario] = run_kill(ctx, spec)
                elif spec.kind == "extract":
                    results[scenario] = run_extract(ctx, spec)
                else:
                    results[scenario] = run_throughput(ctx, spec)
            except (BenchError, _nginx.NginxError) as exc:  # lost; the others still run
                ctx.failures.append(f"{scenario}: {exc}")
                log(f"ERROR {scenario}: {exc}")
    except KeyboardInterrupt:
        log("interrupted")
        return 130

    verdicts = evaluate_goals(results)
    print(render_table(results))
    print()
    print(render_goals(verdicts))
    if args.json_out:
        sample_inputs = Inputs(aria2c=Path("INPUT"), links=Path("LINKS"), curl=Path("CURL_LIST"))
        sample_spec = SPECS["https"]
        document: dict[str, Any] = {
            "machine": machine_info(ctx),
            "params": {
                "shards": len(shards),
                "shard_size": args.shard_size,
                "total_bytes": total,
                "runs": args.runs,
                "warmup": args.warmup,
                "scenarios": scenarios,
                "tools": tools_for,
                "per_connection_rate": args.per_connection_rate,
                "delay_ms": args.delay_ms,
                "ca": str(ca) if ca else None,
                "sa1b_ca_bundle_option": sa1b_ca_bundle,
                "pacer_argv": [
                    sys.executable,
                    "-I",
                    str(PACER),
                    "--upstream",
                    "127.0.0.1:NGINX_PORT",
                    "--rate",
                    str(args.per_connection_rate),
                    "--delay-ms",
                    "0 or DELAY_MS",
                ],
                "argv_https": {
                    name: dataclasses.asdict(
                        make_tool(ctx, name, sample_spec, sample_inputs, Path("OUTDIR"))
                    )
                    for name in TOOLS
                    if name in used
                },
                "tar_argv": tar_argv(tar, Path("OUTDIR/NAME"), Path("OUTDIR/STEM"))
                if tar
                else None,
                "elapsed_s": time.monotonic() - started,
            },
            "results": results,
            "goals": verdicts,
            "failures": ctx.failures,
        }
        for entry in document["params"]["argv_https"].values():
            entry.pop("output_dir", None)
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    status = 0
    if ctx.failures:
        print("\nFAILURES:", file=sys.stderr)
        for failure in ctx.failures:
            print(f"  - {failure}", file=sys.stderr)
        status = 1
    if args.check_goals and any(v["status"] == "FAIL" for v in verdicts):
        print("\ngoals failed (--check-goals)", file=sys.stderr)
        status = 1
    return status
