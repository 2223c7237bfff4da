"""The tools compared: how curl8, aria2c and sa1b are run on the same inputs."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path

from .common import CURL_PARALLEL, LINKS_HEADER
from .corpus import Shard


@dataclasses.dataclass(frozen=True, kw_only=True)
class Tool:
    name: str
    argv: list[str]
    output_dir: Callable[[Path], Path]  # outdir -> directory holding the finished files
    env: dict[str, str] = dataclasses.field(default_factory=dict)  # added to the environment


def aria2c_tool(
    binary: str,
    *,
    input_file: Path,
    outdir: Path,
    resume: bool,
    jobs: int = 4,
    ca: Path | None = None,
    name: str = "aria2c",
) -> Tool:
    """aria2c as SA-1B guides configure it (``-j4``; ``aria2c-best`` is the same with -j16)."""
    argv = [
        binary,
        "-x16",
        "-s16",
        f"-j{jobs}",
        "-k1M",
        "--file-allocation=falloc",
        "--auto-file-renaming=false",
        "--allow-overwrite=true",
        "--console-log-level=warn",
        "--summary-interval=0",
        "--download-result=hide",
    ]
    if ca is not None:
        argv.append(f"--ca-certificate={ca}")
    if resume:
        argv.append("-c")
    argv += ["-d", str(outdir), "-i", str(input_file)]
    return Tool(name=name, argv=argv, output_dir=lambda out: out)


def curl8_tool(xargs: str, curl: str, *, curl_list: Path, ca: Path | None) -> Tool:
    """One ``curl -o OUT/NAME URL`` per file, at most 8 at once: ``xargs -0 -P8 -n2``.

    xargs waits for every curl, so its rusage (from ``os.wait4``) includes theirs. HTTP/1.1,
    like aria2c and sa1b: it is the faster choice for curl here. Measured over HTTPS, 6 x 170 MiB,
    4 alternating runs, medians: HTTP/1.1 1244 MB/s at 1.12 CPU s/GB, curl's default (HTTP/2,
    offered by nginx) 1077 MB/s at 1.30; this row is the machine's limit, so the faster one.
    """
    argv = [xargs, "-0", "-P", str(CURL_PARALLEL), "-n", "2", "-a", str(curl_list), curl]
    argv += ["--silent", "--show-error", "--fail", "--http1.1"]
    if ca is not None:
        argv += ["--cacert", str(ca)]
    argv.append("-o")  # xargs appends OUT/NAME URL
    return Tool(name="curl8", argv=argv, output_dir=lambda out: out)


def sa1b_tool(
    command: list[str],
    *,
    links: Path,
    outdir: Path | str,
    extract: bool = False,
    extra: Sequence[str] = (),
    ca: Path | None = None,
    ca_bundle_option: bool = False,
) -> Tool:
    """``sa1b download``; without ``extract`` it runs with ``--no-extract`` (tars in OUT/tars/).
    ``outdir`` may be a bucket's URL (``s3://BUCKET/PREFIX``, ``benchmarks/s3_ingest.py``).

    With ``ca`` the private CA reaches sa1b through ``SSL_CERT_FILE`` (and ``--ca-bundle`` when
    its ``--help`` lists that option). ``extra`` (``--sa1b-args``) goes last.
    """
    argv = [*command, "download", str(links), "-o", str(outdir), "--quiet"]
    env: dict[str, str] = {}
    if ca is not None:
        env["SSL_CERT_FILE"] = str(ca)
        if ca_bundle_option:
            argv += ["--ca-bundle", str(ca)]
    if not extract:
        argv.append("--no-extract")
    argv += list(extra)
    if extract or not isinstance(outdir, Path):
        return Tool(name="sa1b", argv=argv, output_dir=lambda out: out, env=env)
    return Tool(name="sa1b", argv=argv, output_dir=lambda out: out / "tars", env=env)


def tar_argv(tar: str, archive: Path, dest: Path) -> list[str]:
    """How a user extracts one shard: ``tar -xf SHARD -C OUT/<stem>``."""
    return [tar, "-xf", str(archive), "-C", str(dest)]


def url_for(base_url: str, name: str) -> str:
    return f"{base_url}/{urllib.parse.quote(name)}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Inputs:
    aria2c: Path  # aria2c -i file
    links: Path  # official-format links file for sa1b
    curl: Path  # NUL-separated OUT/NAME, URL pairs for xargs


def write_inputs(workdir: Path, base_url: str, shards: list[Shard], outdir: Path) -> Inputs:
    """Write the aria2c input file, the official-format links file and curl8's list."""
    aria_input = workdir / "aria2c-input.txt"
    aria_input.write_text(
        "".join(f"{url_for(base_url, s.name)}\n  out={s.name}\n" for s in shards),
        encoding="utf-8",
    )
    links = workdir / "sa1b_links.txt"
    rows = [LINKS_HEADER] + [f"{s.name}\t{url_for(base_url, s.name)}" for s in shards]
    links.write_bytes(("\n".join(rows) + "\n").encode("utf-8"))
    curl_list = workdir / "curl8-list.bin"
    curl_list.write_bytes(
        b"".join(f"{outdir / s.name}\0{url_for(base_url, s.name)}\0".encode() for s in shards)
    )
    return Inputs(aria2c=aria_input, links=links, curl=curl_list)


def default_sa1b_command() -> list[str] | None:
    beside = Path(sys.executable).parent / "sa1b"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("sa1b")
    return [found] if found else None
