"""Compare ``sa1b download`` with aria2c and curl on synthetic SA-1B shards served by nginx.

Scenarios (``--scenario``, repeatable; default: all but ``kill-http``), HTTPS first:

* ``https``           nginx over TLS (private CA made at start, HTTP/2 offered), uncapped.
* ``https-paced``     the same behind ``benchmarks/pacer.py``: every TCP connection capped at
  ``--per-connection-rate`` (2 MiB/s) across all its requests.
* ``https-paced-rtt`` the same plus ``--delay-ms`` (20 ms) each way: a 40 ms round trip.
* ``kill``     HTTPS, nginx ``limit_rate 8m``; start the tool, SIGKILL it when about half the
  bytes are on disk, rerun the same command to completion; report bytes served by nginx / total
  data size and peak RSS; verify every file. Done for aria2c (``-c``) and sa1b.
* ``capped``   plain HTTP, nginx ``limit_rate 8m`` (8 MiB/s per request), N shards of ~170 MiB.
* ``uncapped`` plain HTTP, no rate limit, same shards.
* ``kill-http`` the kill scenario over plain HTTP (only when asked for).
* ``extract``  plain HTTP, capped; download *and extract* every shard into OUT/<shard_stem>/:
  aria2c (same flags) then one ``tar -xf`` per shard, against ``sa1b download`` with its
  default extraction (tars not kept). Also samples the disk space allocated under OUT every
  ~50 ms and reports the peak.

Tools: ``curl8`` (one curl per file, 8 at most at once: the machine's reference), ``aria2c``
as SA-1B guides configure it (-j4), ``aria2c-best`` (-j16), ``sa1b`` (default flags). All but
extract measure the download alone: sa1b runs there with ``--no-extract``.

For the throughput scenarios and extract the tools alternate (curl8, aria2c, aria2c-best, sa1b,
curl8, ...), ``--runs`` times each; before every run the page cache is synced and the previous
output deleted. Throughput is the median; CPU time (user+sys, including every process the tool
waited for) and peak RSS come from ``os.wait4`` on the child. Every output byte is checked
against the md5 of its source (for extract: of its source tar member); any mismatch (or a tool
failure) makes the script exit 1 after printing what it measured. A "goals" section checks
sa1b's medians against the targets in ``GOALS``; ``--check-goals`` makes a missed one exit 1.

Run ``python -m benchmarks.bench --help`` from the repository. See benchmarks/README.md.

Modules: :mod:`.common` (constants, the scenario table, small helpers), :mod:`.corpus` (the
shards), :mod:`.tools` (how each tool is run), :mod:`.accounting` (running one, counting its
cost, checking its bytes), :mod:`.scenarios`, :mod:`.goals`, :mod:`.report` (the table) and
:mod:`.cli`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The loopback servers (nginx, a private CA) live in the repository's ``harness`` package,
# outside the wheel: they are for tests and benchmarks, not for users.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from .accounting import log_tail, process_cpu_s, run_child, settled_bytes_sent
from .cli import main, sa1b_has_ca_bundle
from .common import BenchError, log, parse_size, sync_and_clear
from .scenarios import Pacer

__all__ = [
    "BenchError",
    "Pacer",
    "log",
    "log_tail",
    "main",
    "parse_size",
    "process_cpu_s",
    "run_child",
    "sa1b_has_ca_bundle",
    "settled_bytes_sent",
    "sync_and_clear",
]
