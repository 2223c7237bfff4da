"""Running a tool and counting what it cost (time, CPU, peak RSS, bytes served) and
checking every byte it wrote."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import shlex
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from harness.nginx import NginxServer
from sa1b.layout import shard_stem

from .common import POLL_S, PROXY_VARIABLES, BenchError, md5_of
from .corpus import Shard


@dataclasses.dataclass(kw_only=True)
class RunResult:
    tool: str
    exit_code: int
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_kib: int
    children_cpu_s: float  # cross-check: RUSAGE_CHILDREN delta around the run
    killed: bool = False
    log_path: str = ""

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


# Linux copies a process's peak RSS into ru_maxrss of every child it forks or vforks (exec
# records the old address space's high-water mark), so a child of this script would report at
# least this script's own peak (~150 MB after hashing and generating shards). Tools are
# therefore started through a tiny `python -I -S` launcher (~9 MB) that forks the tool, reaps it
# with os.wait4 and writes the tool's own rusage to a report file.
_LAUNCHER = r"""
import os, sys, time
started = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    except OSError as exc:
        os.write(2, ("cannot run %s: %s\n" % (sys.argv[2], exc)).encode())
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.monotonic() - started
with open(sys.argv[1], "w") as report:
    report.write("%r %r %d %r\n" % (usage.ru_utime, usage.ru_stime, usage.ru_maxrss, wall))
code = os.waitstatus_to_exitcode(status)
os._exit(code if code >= 0 else 128 - code)
"""


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment tools run in: ours without proxy variables (every URL is loopback),
    plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
    env.update(extra or {})
    return env


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _proc_stat(int(entry))
            if fields is not None and int(fields[2]) == pgid:
                members.append(int(entry))
    return members


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int | None, *, with_children: bool = False) -> float:
    """User + system CPU seconds of ``pid`` so far (and of its live children), from /proc."""
    if pid is None:
        return 0.0
    pids = [pid]
    if with_children:
        with contextlib.suppress(OSError, ValueError):
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
            pids += [int(child) for child in text.split()]
    total = 0
    for one in pids:
        fields = _proc_stat(one)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def run_child(
    argv: list[str],
    *,
    log_path: Path,
    timeout: float,
    stop_when: Callable[[], bool] | None = None,
    env: dict[str, str] | None = None,
) -> RunResult:
    """Run ``argv`` (through the launcher) and return its own rusage from ``os.wait4``.

    ``stop_when`` is polled while the tool runs; when it returns True every process of the
    group but the launcher gets SIGKILL, so that the launcher still reaps the tool and reports
    its rusage (the result then has ``killed=True``). ``env`` is added to :func:`child_env`.
    """
    report = log_path.with_suffix(".rusage")
    report.unlink(missing_ok=True)
    launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(report), *argv]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path, "wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            launcher,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            env=child_env(env),
        )
    killed = False
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                os.wait4(proc.pid, 0)
                raise BenchError(
                    f"{shlex.join(argv[:2])} ... did not finish within {timeout:.0f} s "
                    f"(log: {log_path})"
                )
            if stop_when is not None and stop_when():
                killed = True
                for member in _group_members(proc.pid):
                    if member != proc.pid:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(member, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while True:  # the launcher reaps the tool and writes its report
                    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                    if pid:
                        break
                    if time.monotonic() > deadline:
                        os.killpg(proc.pid, signal.SIGKILL)
                        _, status, usage = os.wait4(proc.pid, 0)
                        break
                    time.sleep(0.005)
                break
            time.sleep(POLL_S)
    except BaseException:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
        raise
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    # Descendants the tool left behind belong to the run too: none may outlive it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    user, system, maxrss = usage.ru_utime, usage.ru_stime, usage.ru_maxrss
    try:
        fields = report.read_text().split()
        user, system, maxrss, tool_wall = (
            float(fields[0]),
            float(fields[1]),
            int(fields[2]),
            float(fields[3]),
        )
        if not killed:
            wall = tool_wall
    except (OSError, ValueError, IndexError):
        pass  # launcher killed or broken: keep its own (less exact) figures
    return RunResult(
        tool=Path(argv[0]).name,
        exit_code=proc.returncode,
        wall_s=wall,
        user_s=user,
        sys_s=system,
        maxrss_kib=maxrss,
        children_cpu_s=children_cpu,
        killed=killed,
        log_path=str(log_path),
    )


def log_tail(path: str, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join("    | " + line for line in text.splitlines()[-lines:])


def verify_output(directory: Path, shards: list[Shard]) -> list[str]:
    """Every shard present, right size, right md5; returns the list of problems."""
    problems = []
    for shard in shards:
        path = directory / shard.name
        if not path.is_file():
            problems.append(f"{shard.name}: missing in {directory}")
            continue
        size = path.stat().st_size
        if size != shard.size:
            problems.append(f"{shard.name}: {size} bytes, expected {shard.size}")
            continue
        got = md5_of(path)
        if got != shard.md5:
            problems.append(f"{shard.name}: md5 {got}, expected {shard.md5}")
    return problems


def _walk_entries(root: Path) -> tuple[dict[str, os.stat_result], list[str]]:
    """Every non-directory entry under ``root`` (relative POSIX path -> lstat) and every empty
    directory. Symlinks are entries, never followed."""
    entries: dict[str, os.stat_result] = {}
    empty_dirs: list[str] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            children = list(os.scandir(folder))
        except OSError:
            continue
        if not children and folder != root:
            empty_dirs.append(folder.relative_to(root).as_posix())
        for child in children:
            path = Path(child.path)
            try:
                st = child.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(path)
            else:
                entries[path.relative_to(root).as_posix()] = st
    return entries, empty_dirs


def _summarise_problems(problems: list[str], limit: int = 8) -> list[str]:
    if len(problems) <= limit:
        return problems
    return [*problems[:limit], f"... and {len(problems) - limit} more"]


def verify_extracted(
    outdir: Path, shards: list[Shard], *, allowed: Callable[[str], bool]
) -> tuple[list[str], list[str]]:
    """Every member of every shard at ``OUT/<stem>/<normalised name>``, a regular file with the
    source member's size and md5, and no other file under OUT unless ``allowed(relative path)``.

    Returns (problems, warnings); an empty directory left behind is only a warning.
    """
    entries, empty_dirs = _walk_entries(outdir)
    problems: list[str] = []
    expected: set[str] = set()
    for shard in shards:
        assert shard.members is not None
        stem = shard_stem(shard.name)
        for name, (size, md5) in sorted(shard.members.items()):
            rel = PurePosixPath(stem, name).as_posix()
            expected.add(rel)
            st = entries.get(rel)
            if st is None:
                problems.append(f"{rel}: missing")
            elif not stat.S_ISREG(st.st_mode):
                problems.append(f"{rel}: not a regular file (mode {stat.filemode(st.st_mode)})")
            elif st.st_size != size:
                problems.append(f"{rel}: {st.st_size} bytes, expected {size}")
            else:
                got = md5_of(outdir / rel)
                if got != md5:
                    problems.append(f"{rel}: md5 {got}, expected {md5}")
    extra = sorted(rel for rel in entries if rel not in expected and not allowed(rel))
    problems += [f"{rel}: unexpected file in {outdir}" for rel in extra]
    warnings = [
        f"{rel}/: empty folder left in {outdir}" for rel in sorted(empty_dirs) if not allowed(rel)
    ]
    return _summarise_problems(problems), warnings


def settled_bytes_sent(server: NginxServer, *, expect_at_least: int, patience: float = 3.0) -> int:
    """nginx logs a request when it ends; wait briefly for aborted ones to be logged."""
    deadline = time.monotonic() + patience
    last = server.bytes_sent()
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = server.bytes_sent()
        if now != last:
            last, stable_since = now, time.monotonic()
        elif last >= expect_at_least and time.monotonic() - stable_since >= 0.3:
            break
    return last
