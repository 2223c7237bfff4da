"""The scenarios: throughput, kill-and-resume, download plus extraction."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import select
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.nginx import NginxServer
from harness.processes import end, spawn
from sa1b.layout import shard_stem

from .accounting import (
    RunResult,
    log_tail,
    process_cpu_s,
    run_child,
    settled_bytes_sent,
    verify_extracted,
    verify_output,
)
from .common import (
    GB,
    IN_FLIGHT_SLACK,
    MB,
    PACER,
    STATE_DIR,
    BenchError,
    DiskSampler,
    Spec,
    allocated_bytes,
    bytes_on_disk,
    log,
    sync_and_clear,
)
from .corpus import Shard
from .tools import Inputs, Tool, aria2c_tool, curl8_tool, sa1b_tool, tar_argv, write_inputs


@dataclasses.dataclass(kw_only=True)
class Context:
    args: argparse.Namespace
    workdir: Path
    shards: list[Shard]
    total: int
    aria2c: str | None
    sa1b: list[str] | None
    failures: list[str]
    tools: dict[str, list[str]]  # scenario -> tools it runs, in TOOLS order
    tar: str | None = None
    curl: str | None = None
    xargs: str | None = None
    ca: Path | None = None  # the private CA (HTTPS scenarios)
    tls: tuple[Path, Path] | None = None  # nginx's certificate chain and key
    sa1b_ca_bundle: bool = False  # `sa1b download --help` lists --ca-bundle


class Pacer:
    """``benchmarks/pacer.py`` as a child process, relaying to ``upstream_port``."""

    def __init__(self, *, upstream_port: int, rate: int, delay_ms: float, log_path: Path) -> None:
        self.argv = [
            sys.executable,
            "-I",
            str(PACER),
            "--upstream",
            f"127.0.0.1:{upstream_port}",
            "--rate",
            str(rate),
            "--delay-ms",
            f"{delay_ms:g}",
        ]
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Pacer:
        with open(self.log_path, "wb") as err:  # killed with this process, as nginx is
            self.proc = spawn(self.argv, stdout=subprocess.PIPE, stderr=err)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 10.0)
        line = self.proc.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            self.__exit__()
            raise BenchError(
                f"pacer did not start ({shlex.join(self.argv)}):\n{log_tail(str(self.log_path))}"
            )
        self.port = int(line)
        return self

    def cpu_s(self) -> float:
        return process_cpu_s(self.proc.pid if self.proc else None)

    def __exit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        end(proc, timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@dataclasses.dataclass(kw_only=True)
class Endpoint:
    """What the tools are pointed at in one scenario."""

    server: NginxServer
    base_url: str
    inputs: Inputs
    pacer: Pacer | None

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds so far of nginx (master and workers) and of the pacer."""
        return (
            process_cpu_s(self.server.pid, with_children=True),
            self.pacer.cpu_s() if self.pacer else 0.0,
        )


@contextlib.contextmanager
def serve(ctx: Context, spec: Spec, outdir: Path) -> Iterator[Endpoint]:
    """nginx for ``spec`` (TLS with HTTP/2 offered, rate limit), behind the pacer if paced."""
    tls = ctx.tls if spec.tls else None
    if spec.tls and tls is None:
        raise BenchError(f"{spec.name}: no certificate (openssl missing?)")
    shard_dir = ctx.shards[0].path.parent
    logs = ctx.workdir / "logs"
    logs.mkdir(exist_ok=True)
    with NginxServer(
        root=shard_dir,
        limit_rate=spec.limit_rate,
        workdir=ctx.workdir / "nginx",
        tls=tls,
        http2=tls is not None,
    ) as server:
        if not spec.paced:
            inputs = write_inputs(ctx.workdir, server.base_url, ctx.shards, outdir)
            yield Endpoint(server=server, base_url=server.base_url, inputs=inputs, pacer=None)
            return
        delay = ctx.args.delay_ms if spec.rtt else 0.0
        with Pacer(
            upstream_port=server.port,
            rate=ctx.args.per_connection_rate,
            delay_ms=delay,
            log_path=logs / f"{spec.name}-pacer.log",
        ) as pacer:
            base_url = f"{server.scheme}://127.0.0.1:{pacer.port}"
            inputs = write_inputs(ctx.workdir, base_url, ctx.shards, outdir)
            log(
                f"{spec.name}: pacer on port {pacer.port}, "
                f"{ctx.args.per_connection_rate / 2**20:g} MiB/s per TCP connection, "
                f"{delay:g} ms each way"
            )
            yield Endpoint(server=server, base_url=base_url, inputs=inputs, pacer=pacer)


def make_tool(
    ctx: Context, name: str, spec: Spec, inputs: Inputs, outdir: Path, *, resume: bool = False
) -> Tool:
    ca = ctx.ca if spec.tls else None
    if name in ("aria2c", "aria2c-best"):
        assert ctx.aria2c is not None
        return aria2c_tool(
            ctx.aria2c,
            input_file=inputs.aria2c,
            outdir=outdir,
            resume=resume,
            jobs=16 if name == "aria2c-best" else 4,
            ca=ca,
            name=name,
        )
    if name == "curl8":
        assert ctx.xargs is not None and ctx.curl is not None
        return curl8_tool(ctx.xargs, ctx.curl, curl_list=inputs.curl, ca=ca)
    if ctx.sa1b is None:
        raise BenchError("no sa1b executable (install the package or pass --sa1b CMD)")
    return sa1b_tool(
        ctx.sa1b,
        links=inputs.links,
        outdir=outdir,
        extra=ctx.args.sa1b_args,
        ca=ca,
        ca_bundle_option=ctx.sa1b_ca_bundle,
    )


def describe_run(
    ctx: Context, result: RunResult, sent: int, server_cpu: float, pacer_cpu: float, *, paced: bool
) -> str:
    gigabytes = ctx.total / GB
    text = (
        f"{ctx.total / result.wall_s / MB:7.1f} MB/s, {result.cpu_s / gigabytes:5.2f} CPU s/GB, "
        f"{result.maxrss_kib / 1024:6.1f} MB RSS, served/size {sent / ctx.total:.3f}; "
        f"nginx {server_cpu / gigabytes:4.2f}"
    )
    if paced:
        text += f", pacer {pacer_cpu / gigabytes:4.2f}"
    return text + " CPU s/GB"


def run_throughput(ctx: Context, spec: Spec) -> dict[str, Any]:
    scenario = spec.name
    tools = ctx.tools[scenario]
    outdir = ctx.workdir / "out"
    logs = ctx.workdir / "logs"
    results: dict[str, list[RunResult]] = {t: [] for t in tools}
    served: dict[str, list[int]] = {t: [] for t in tools}
    side_cpu: dict[str, list[tuple[float, float]]] = {t: [] for t in tools}
    broken: set[str] = set()
    with serve(ctx, spec, outdir) as endpoint:
        server = endpoint.server
        # The first run after a change of workload is often 20-40% slower here (the kernel
        # recycling the page cache of the previous output): one unmeasured run absorbs it,
        # made by the first tool other than curl8 (which is slow behind the pacer).
        warm_name = next((t for t in tools if t != "curl8"), tools[0])
        for warm in range(ctx.args.warmup):
            tool = make_tool(ctx, warm_name, spec, endpoint.inputs, outdir)
            sync_and_clear(outdir)
            result = run_child(
                tool.argv,
                log_path=logs / f"{scenario}-warmup-{warm + 1}.log",
                timeout=ctx.args.timeout,
                env=tool.env,
            )
            log(
                f"{scenario:8s} warm-up ({tool.name}): {ctx.total / result.wall_s / MB:7.1f} MB/s"
                f"{'' if result.exit_code == 0 else f', exit code {result.exit_code}'}"
            )
        for run in range(ctx.args.runs):
            for tool_name in tools:
                if tool_name in broken:
                    continue
                tool = make_tool(ctx, tool_name, spec, endpoint.inputs, outdir)
                sync_and_clear(outdir)
                server.clear_log()
                log_path = logs / f"{scenario}-{tool_name}-{run + 1}.log"
                server_before, pacer_before = endpoint.cpu_s()
                try:
                    result = run_child(
                        tool.argv, log_path=log_path, timeout=ctx.args.timeout, env=tool.env
                    )
                except BenchError as exc:  # timed out: this tool is out, the others go on
                    msg = f"{scenario}: {tool_name}: {exc}"
                    log("FAILED " + msg + "\n" + log_tail(str(log_path)))
                    ctx.failures.append(msg)
                    broken.add(tool_name)
                    continue
                server_after, pacer_after = endpoint.cpu_s()
                result.tool = tool_name
                sent = settled_bytes_sent(server, expect_at_least=ctx.total)
                if result.exit_code != 0:
                    msg = (
                        f"{scenario}: {tool_name} exited with {result.exit_code} "
                        f"(command: {shlex.join(tool.argv)}; log: {log_path})"
                    )
                    log("FAILED " + msg + "\n" + log_tail(str(log_path)))
                    ctx.failures.append(msg)
                    broken.add(tool_name)
                    continue
                problems = verify_output(tool.output_dir(outdir), ctx.shards)
                if problems:
                    msg = f"{scenario}: {tool_name} run {run + 1} wrote wrong data: " + "; ".join(
                        problems
                    )
                    log("MISMATCH " + msg)
                    ctx.failures.append(msg)
                    broken.add(tool_name)
                    continue
                results[tool_name].append(result)
                served[tool_name].append(sent)
                cpu = (server_after - server_before, pacer_after - pacer_before)
                side_cpu[tool_name].append(cpu)
                log(
                    f"{scenario:8s} {tool_name:11s} run {run + 1}/{ctx.args.runs}: "
                    + describe_run(ctx, result, sent, *cpu, paced=spec.paced)
                )
    sync_and_clear(outdir)
    return summarize(ctx, spec, results, served, side_cpu)


REFERENCES = ("aria2c", "aria2c-best", "curl8")  # sa1b is compared with each


def summarize(
    ctx: Context,
    spec: Spec,
    results: dict[str, list[RunResult]],
    served: dict[str, list[int]],
    side_cpu: dict[str, list[tuple[float, float]]],
) -> dict[str, Any]:
    tools: dict[str, Any] = {}
    for name, runs in results.items():
        if not runs:
            tools[name] = {"runs": [], "failed": True}
            continue
        speeds = [ctx.total / r.wall_s / MB for r in runs]
        cpu = [r.cpu_s / (ctx.total / GB) for r in runs]
        tools[name] = {
            "failed": False,
            "mb_s_median": statistics.median(speeds),
            "cpu_s_per_gb_median": statistics.median(cpu),
            "peak_rss_mb": max(r.maxrss_kib for r in runs) / 1024,
            "served_over_size_median": statistics.median(s / ctx.total for s in served[name]),
            "nginx_cpu_s_per_gb_median": statistics.median(
                c[0] / (ctx.total / GB) for c in side_cpu[name]
            ),
            "runs": [
                {
                    **dataclasses.asdict(r),
                    "mb_s": ctx.total / r.wall_s / MB,
                    "cpu_s_per_gb": r.cpu_s / (ctx.total / GB),
                    "served_bytes": s,
                    "nginx_cpu_s": c[0],
                    "pacer_cpu_s": c[1] if spec.paced else None,
                }
                for r, s, c in zip(runs, served[name], side_cpu[name], strict=True)
            ],
        }
        if spec.paced:
            tools[name]["pacer_cpu_s_per_gb_median"] = statistics.median(
                c[1] / (ctx.total / GB) for c in side_cpu[name]
            )
    ratios: dict[str, dict[str, float]] = {}
    s = tools.get("sa1b")
    for ref in REFERENCES:
        r = tools.get(ref)
        if r and s and not r["failed"] and not s["failed"]:
            ratios[ref] = {
                "mb_s": s["mb_s_median"] / r["mb_s_median"],
                "cpu_s_per_gb": s["cpu_s_per_gb_median"] / r["cpu_s_per_gb_median"],
                "peak_rss_mb": s["peak_rss_mb"] / r["peak_rss_mb"],
            }
    return {
        "https": spec.tls,
        "limit_rate": spec.limit_rate,
        "per_connection_rate": ctx.args.per_connection_rate if spec.paced else None,
        "delay_ms_each_way": ctx.args.delay_ms if spec.rtt else 0.0,
        "tools": tools,
        "ratios_sa1b_over": ratios,
        "ratio_sa1b_over_aria2c": ratios.get("aria2c", {}),
    }


def run_kill(ctx: Context, spec: Spec) -> dict[str, Any]:
    outdir = ctx.workdir / "out"
    logs = ctx.workdir / "logs"
    threshold = int(ctx.total * ctx.args.kill_at)
    report: dict[str, Any] = {
        "https": spec.tls,
        "limit_rate": spec.limit_rate,
        "kill_at": ctx.args.kill_at,
        "tools": {},
    }
    with serve(ctx, spec, outdir) as endpoint:
        server = endpoint.server
        for tool_name in ctx.tools[spec.name]:
            tool = make_tool(ctx, tool_name, spec, endpoint.inputs, outdir, resume=True)
            sync_and_clear(outdir)
            server.clear_log()
            seen = {"bytes": 0}

            def half_on_disk(seen: dict[str, int] = seen) -> bool:
                seen["bytes"] = bytes_on_disk(outdir)
                return seen["bytes"] >= threshold

            try:
                first = run_child(
                    tool.argv,
                    log_path=logs / f"{spec.name}-{tool_name}-1.log",
                    timeout=ctx.args.timeout,
                    stop_when=half_on_disk,
                    env=tool.env,
                )
                second = (
                    run_child(
                        tool.argv,
                        log_path=logs / f"{spec.name}-{tool_name}-2.log",
                        timeout=ctx.args.timeout,
                        env=tool.env,
                    )
                    if first.killed
                    else None
                )
            except BenchError as exc:  # timed out: this tool is out, the others go on
                ctx.failures.append(f"{spec.name}: {tool_name}: {exc}")
                log(f"FAILED {spec.name}: {tool_name}: {exc}")
                report["tools"][tool_name] = {"killed": True, "timed_out": True, "peak_rss_mb": 0}
                continue
            entry: dict[str, Any] = {
                "killed": first.killed,
                "killed_after_s": first.wall_s,
                "bytes_on_disk_at_kill": seen["bytes"],
                "peak_rss_mb": first.maxrss_kib / 1024,
            }
            if second is None:
                how = "finished" if first.exit_code == 0 else f"failed (exit {first.exit_code})"
                msg = (
                    f"{spec.name}: {tool_name} {how} before {ctx.args.kill_at:.0%} of the bytes "
                    f"were on disk (command: {shlex.join(tool.argv)}; log: {first.log_path})"
                )
                log("FAILED " + msg + "\n" + log_tail(first.log_path))
                ctx.failures.append(msg)
                report["tools"][tool_name] = entry
                continue
            sent = settled_bytes_sent(server, expect_at_least=ctx.total)
            entry.update(
                rerun_exit_code=second.exit_code,
                rerun_s=second.wall_s,
                served_bytes=sent,
                total_bytes=ctx.total,
                served_over_size=sent / ctx.total,
                cpu_s=first.cpu_s + second.cpu_s,
                cpu_s_per_gb=(first.cpu_s + second.cpu_s) / (ctx.total / GB),
                peak_rss_mb=max(first.maxrss_kib, second.maxrss_kib) / 1024,
                runs=[dataclasses.asdict(first), dataclasses.asdict(second)],
            )
            if second.exit_code != 0:
                msg = (
                    f"{spec.name}: {tool_name} rerun exited with {second.exit_code} "
                    f"(command: {shlex.join(tool.argv)}; log: {second.log_path})"
                )
                log("FAILED " + msg + "\n" + log_tail(second.log_path))
                ctx.failures.append(msg)
            else:
                problems = verify_output(tool.output_dir(outdir), ctx.shards)
                entry["verified"] = not problems
                entry["problems"] = problems
                if problems:
                    msg = f"{spec.name}: {tool_name} wrote wrong data after resume: " + "; ".join(
                        problems
                    )
                    log("MISMATCH " + msg)
                    ctx.failures.append(msg)
            log(
                f"{spec.name:9s} {tool_name:11s}: killed at {seen['bytes'] / ctx.total:.0%} on "
                f"disk after {first.wall_s:.1f} s; rerun {second.wall_s:.1f} s; "
                f"served/size {sent / ctx.total:.3f}; peak RSS {entry['peak_rss_mb']:.1f} MB"
            )
            report["tools"][tool_name] = entry
    sync_and_clear(outdir)
    return report


DOWNLOAD_ONLY = "sa1b-download"  # https-extract: sa1b --no-extract, as a third pipeline
EXTRACT_LABELS = {"aria2c": "aria2c+tar", "sa1b": "sa1b", DOWNLOAD_ONLY: "sa1b-tars"}


def combine_steps(label: str, steps: list[RunResult]) -> RunResult:
    """One result for a pipeline of processes run one after the other: wall and CPU add up
    (wall as each launcher measured it, fork to reap), peak RSS is the largest."""
    failed = next((r for r in steps if r.exit_code != 0), None)
    return RunResult(
        tool=label,
        exit_code=failed.exit_code if failed else 0,
        wall_s=sum(r.wall_s for r in steps),
        user_s=sum(r.user_s for r in steps),
        sys_s=sum(r.sys_s for r in steps),
        maxrss_kib=max(r.maxrss_kib for r in steps),
        children_cpu_s=sum(r.children_cpu_s for r in steps),
        log_path=(failed or steps[0]).log_path,
    )


def run_extract_pipeline(
    ctx: Context, tool_name: str, *, inputs: Inputs, outdir: Path, tag: str, tls: bool
) -> tuple[RunResult, list[RunResult], list[str]]:
    """Run one tool's whole download-and-extract pipeline into ``outdir``.

    aria2c: aria2c (capped-scenario flags) into OUT, then, once it is done, one
    ``tar -xf OUT/NAME -C OUT/<stem>`` per shard, in order (the tars stay). sa1b: one
    ``sa1b download LINKS -o OUT --quiet`` (extraction on, tars not kept); the
    download-only pipeline (``https-extract``) the same with ``--no-extract``. Over
    HTTPS each verifies nginx's certificate against the private CA.
    Returns (combined result, each process's result, argv of the last process run).
    Raises BenchError when a process outlives ``--timeout``.
    """
    logs = ctx.workdir / "logs"
    ca = ctx.ca if tls else None
    if tool_name == "aria2c":
        assert ctx.aria2c is not None
        aria2c = aria2c_tool(
            ctx.aria2c, input_file=inputs.aria2c, outdir=outdir, resume=False, ca=ca
        )
        argv = aria2c.argv
        steps = [run_child(argv, log_path=logs / f"{tag}-aria2c.log", timeout=ctx.args.timeout)]
        if steps[0].exit_code == 0:
            assert ctx.tar is not None
            for shard in ctx.shards:
                stem = shard_stem(shard.name)
                dest = outdir / stem
                dest.mkdir(exist_ok=True)  # what `mkdir -p` before `tar -C` does
                argv = tar_argv(ctx.tar, outdir / shard.name, dest)
                step = run_child(
                    argv, log_path=logs / f"{tag}-tar-{stem}.log", timeout=ctx.args.timeout
                )
                steps.append(step)
                if step.exit_code != 0:
                    break
        return combine_steps(EXTRACT_LABELS[tool_name], steps), steps, argv
    if ctx.sa1b is None:
        raise BenchError("no sa1b executable (install the package or pass --sa1b CMD)")
    tool = sa1b_tool(
        ctx.sa1b,
        links=inputs.links,
        outdir=outdir,
        extract=tool_name == "sa1b",
        extra=ctx.args.sa1b_args,
        ca=ca,
        ca_bundle_option=ctx.sa1b_ca_bundle,
    )
    argv = tool.argv
    result = run_child(
        argv, log_path=logs / f"{tag}-{tool_name}.log", timeout=ctx.args.timeout, env=tool.env
    )
    result.tool = EXTRACT_LABELS[tool_name]
    return result, [result], argv


def run_extract(ctx: Context, spec: Spec) -> dict[str, Any]:
    outdir = ctx.workdir / "out"
    shard_names = {s.name for s in ctx.shards}
    allowed: dict[str, Callable[[str], bool]] = {
        # aria2c's downloads stay in OUT, as a user's `aria2c -d OUT` then `tar -x` leaves them
        "aria2c": lambda rel: rel in shard_names,
        # sa1b: its state folder and nothing else
        "sa1b": lambda rel: rel.split("/", 1)[0] == STATE_DIR,
    }
    tools = list(ctx.tools[spec.name])
    if spec.download_only and "sa1b" in tools:
        tools.append(DOWNLOAD_ONLY)
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    failed_runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    broken: set[str] = set()

    def describe(result: RunResult, served: int, peak: int) -> str:
        return (
            f"{ctx.total / result.wall_s / MB:7.1f} MB/s, "
            f"{result.cpu_s / (ctx.total / GB):5.2f} CPU s/GB, "
            f"{result.maxrss_kib / 1024:6.1f} MB RSS, peak disk {peak / MB:6.0f} MB, "
            f"served/size {served / ctx.total:.3f}"
        )

    with serve(ctx, spec, outdir) as endpoint:
        server = endpoint.server
        for warm in range(ctx.args.warmup):
            tool_name = tools[0]
            sync_and_clear(outdir)
            try:
                result, _steps, _argv = run_extract_pipeline(
                    ctx,
                    tool_name,
                    inputs=endpoint.inputs,
                    outdir=outdir,
                    tag=f"{spec.name}-warmup-{warm + 1}",
                    tls=spec.tls,
                )
            except BenchError as exc:
                log(f"{spec.name} warm-up ({EXTRACT_LABELS[tool_name]}): {exc}")
                continue
            log(
                f"{spec.name} warm-up ({EXTRACT_LABELS[tool_name]}): "
                f"{ctx.total / result.wall_s / MB:7.1f} MB/s"
                f"{'' if result.exit_code == 0 else f', exit code {result.exit_code}'}"
            )
        for run in range(ctx.args.runs):
            for tool_name in tools:
                if tool_name in broken:
                    continue
                label = EXTRACT_LABELS[tool_name]
                sync_and_clear(outdir)
                server.clear_log()
                tag = f"{spec.name}-{run + 1}"
                try:
                    started = time.monotonic()
                    with DiskSampler(outdir) as disk:
                        result, steps, argv = run_extract_pipeline(
                            ctx,
                            tool_name,
                            inputs=endpoint.inputs,
                            outdir=outdir,
                            tag=tag,
                            tls=spec.tls,
                        )
                    outer_wall = time.monotonic() - started
                except BenchError as exc:
                    msg = f"{spec.name}: {label} run {run + 1}: {exc}"
                    log("FAILED " + msg)
                    ctx.failures.append(msg)
                    broken.add(tool_name)
                    continue
                sent = settled_bytes_sent(server, expect_at_least=ctx.total)
                record: dict[str, Any] = {
                    **dataclasses.asdict(result),
                    "mb_s": ctx.total / result.wall_s / MB,
                    "cpu_s_per_gb": result.cpu_s / (ctx.total / GB),
                    "outer_wall_s": outer_wall,
                    "served_bytes": sent,
                    "peak_disk_bytes": disk.peak,
                    "final_disk_bytes": allocated_bytes(outdir),
                    "disk_samples": disk.samples,
                    "steps": [{**dataclasses.asdict(r)} for r in steps],
                }
                if result.exit_code != 0:
                    msg = (
                        f"{spec.name}: {label} run {run + 1} exited with {result.exit_code} "
                        f"(command: {shlex.join(argv)}; log: {result.log_path})"
                    )
                    log("FAILED " + msg + "\n" + log_tail(result.log_path))
                    ctx.failures.append(msg)
                    failed_runs[tool_name].append({**record, "problems": [msg]})
                    broken.add(tool_name)
                    continue
                if tool_name == DOWNLOAD_ONLY:  # the tars, in OUT/tars/
                    problems, warnings = verify_output(outdir / "tars", ctx.shards), []
                else:
                    problems, warnings = verify_extracted(
                        outdir, ctx.shards, allowed=allowed[tool_name]
                    )
                record["warnings"] = warnings
                for warning in warnings:
                    log(f"warning: extract: {label}: {warning}")
                if problems:
                    msg = (
                        f"{spec.name}: {label} run {run + 1} ({describe(result, sent, disk.peak)}) "
                        "left wrong output: " + "; ".join(problems)
                    )
                    log("MISMATCH " + msg)
                    ctx.failures.append(msg)
                    failed_runs[tool_name].append({**record, "problems": problems})
                    broken.add(tool_name)
                    continue
                runs[tool_name].append(record)
                log(
                    f"{spec.name:8s} {label:10s} run {run + 1}/{ctx.args.runs}: "
                    + describe(result, sent, disk.peak)
                )
    sync_and_clear(outdir)
    return summarize_extract(ctx, spec, runs, failed_runs)


def summarize_extract(
    ctx: Context,
    spec: Spec,
    runs: dict[str, list[dict[str, Any]]],
    failed_runs: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    extracted = sum(size for s in ctx.shards for size, _md5 in (s.members or {}).values())
    tools: dict[str, Any] = {}
    for tool_name, done in runs.items():
        label = EXTRACT_LABELS[tool_name]
        entry: dict[str, Any] = {
            "failed": not done,
            "runs": done,
            "failed_runs": failed_runs[tool_name],
        }
        if done:
            entry.update(
                mb_s_median=statistics.median(r["mb_s"] for r in done),
                cpu_s_per_gb_median=statistics.median(r["cpu_s_per_gb"] for r in done),
                peak_rss_mb=max(r["maxrss_kib"] for r in done) / 1024,
                peak_disk_mb=max(r["peak_disk_bytes"] for r in done) / MB,
                served_over_size_median=statistics.median(
                    r["served_bytes"] / ctx.total for r in done
                ),
            )
        if tool_name == "sa1b":
            # All shards are in flight at once; the tars are not kept.
            entry["shards_in_flight"] = len(ctx.shards)
            bound = extracted + IN_FLIGHT_SLACK * ctx.total
        elif tool_name == DOWNLOAD_ONLY:  # the tars alone
            entry["shards_in_flight"] = len(ctx.shards)
            bound = ctx.total
        else:
            # aria2c -j4 has four in flight, but every tar stays until the end.
            entry["shards_in_flight"] = min(4, len(ctx.shards))
            bound = extracted + ctx.total
        entry["disk_bound_mb"] = bound / MB
        if done:
            entry["peak_disk_within_bound"] = entry["peak_disk_mb"] <= entry["disk_bound_mb"]
        tools[label] = entry
    ratios: dict[str, dict[str, float]] = {}
    s = tools.get("sa1b")
    for reference in ("aria2c+tar", EXTRACT_LABELS[DOWNLOAD_ONLY]):
        r = tools.get(reference)
        if r and s and not r["failed"] and not s["failed"]:
            ratios[reference] = {
                key: s[f"{key}_median"] / r[f"{key}_median"] for key in ("mb_s", "cpu_s_per_gb")
            } | {key: s[key] / r[key] for key in ("peak_rss_mb", "peak_disk_mb")}
    return {
        "limit_rate": spec.limit_rate,
        "shards_bytes": ctx.total,
        "extracted_bytes": extracted,
        "members": sum(len(s.members or {}) for s in ctx.shards),
        "in_flight_slack": IN_FLIGHT_SLACK,
        "tools": tools,
        "ratio_sa1b_over_aria2c_tar": ratios.get("aria2c+tar", {}),
        "ratios_sa1b_over": ratios,
    }
