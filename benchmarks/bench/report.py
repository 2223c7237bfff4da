"""The table of results and what machine they were measured on."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from typing import Any

from harness.nginx import find_nginx

from .common import MB, SCENARIOS, SPECS, tool_version
from .scenarios import REFERENCES, Context

TABLE_COLUMNS = (
    "scenario",
    "tool",
    "MB/s",
    "CPU s/GB",
    "peak RSS MB",
    "served/size",
    "peak disk MB",
    "sa1b/aria2c",
    "sa1b/sa1b-tars",
    "sa1b/aria2c-best",
    "sa1b/curl8",
)


def _ratio_cell(ratio: dict[str, float] | None) -> str:
    if not ratio:
        return ""
    return f"x{ratio['mb_s']:.2f} (CPU x{ratio['cpu_s_per_gb']:.2f})"


def _table_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for scenario in SCENARIOS:
        if scenario not in results:
            continue
        spec, data = SPECS[scenario], results[scenario]
        for tool, t in data["tools"].items():
            row = {"scenario": scenario, "tool": tool}
            rows.append(row)
            if spec.kind == "kill":
                row["MB/s"] = "-"
                if "served_over_size" in t:
                    row["served/size"] = f"{t['served_over_size']:.3f}"
                    row["CPU s/GB"] = f"{t['cpu_s_per_gb']:.2f}"
                else:
                    row["served/size"] = "FAILED" if t.get("killed") else "not killed"
                row["peak RSS MB"] = f"{t['peak_rss_mb']:.1f}"
                continue
            if t["failed"]:
                row["MB/s"] = "FAILED"
                continue
            row.update(
                {
                    "MB/s": f"{t['mb_s_median']:.0f}",
                    "CPU s/GB": f"{t['cpu_s_per_gb_median']:.2f}",
                    "peak RSS MB": f"{t['peak_rss_mb']:.1f}",
                    "served/size": f"{t['served_over_size_median']:.3f}",
                }
            )
            if spec.kind == "extract":
                row["peak disk MB"] = f"{t['peak_disk_mb']:.0f}"
                ratios = data["ratios_sa1b_over"]
                if tool == "sa1b" and "aria2c+tar" in ratios:
                    ratio = ratios["aria2c+tar"]
                    row["sa1b/aria2c"] = f"{_ratio_cell(ratio)}, disk x{ratio['peak_disk_mb']:.2f}"
                if tool == "sa1b" and "sa1b-tars" in ratios:
                    row["sa1b/sa1b-tars"] = _ratio_cell(ratios["sa1b-tars"])
            elif tool == "sa1b":
                for ref in REFERENCES:
                    row[f"sa1b/{ref}"] = _ratio_cell(data["ratios_sa1b_over"].get(ref))
    return rows


def render_table(results: dict[str, Any]) -> str:
    rows = _table_rows(results)
    columns = [c for c in TABLE_COLUMNS if c in ("scenario", "tool") or any(r.get(c) for r in rows)]
    cells = [columns] + [[r.get(c, "") for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for scenario in SCENARIOS:
        data = results.get(scenario)
        if data is None or SPECS[scenario].kind != "throughput":
            continue
        side = [
            f"{tool} {t['nginx_cpu_s_per_gb_median']:.2f}"
            + (f"/{t['pacer_cpu_s_per_gb_median']:.2f}" if "pacer_cpu_s_per_gb_median" in t else "")
            for tool, t in data["tools"].items()
            if not t["failed"]
        ]
        if side:
            what = "nginx/pacer" if SPECS[scenario].paced else "nginx"
            lines.append(f"{scenario}: {what} CPU s/GB during each tool's runs: " + ", ".join(side))
    for scenario in ("kill", "kill-http"):
        if scenario not in results:
            continue
        scheme = "HTTPS" if SPECS[scenario].tls else "plain HTTP"
        lines.append("")
        lines.append(
            f"{scenario} ({scheme}, SIGKILL at ~half, then rerun): "
            "bytes served by nginx / data size"
        )
        for tool, t in results[scenario]["tools"].items():
            if not t.get("killed"):
                lines.append(f"  {tool:11s} not killed (finished too early)")
            elif "served_over_size" not in t:
                lines.append(f"  {tool:11s} FAILED")
            else:
                ok = "verified" if t.get("verified") else "NOT VERIFIED"
                lines.append(
                    f"  {tool:11s} {t['served_over_size']:.3f}  "
                    f"(killed at {t['bytes_on_disk_at_kill'] / t['total_bytes']:.0%}, "
                    f"rerun {t['rerun_s']:.1f} s, peak RSS {t['peak_rss_mb']:.1f} MB, {ok})"
                )
    for scenario in ("extract", "https-extract"):
        if scenario not in results:
            continue
        data = results[scenario]
        extracted, shards = data["extracted_bytes"] / MB, data["shards_bytes"] / MB
        lines.append("")
        lines.append(
            f"{scenario}: shards {shards:.0f} MB in all, extracted files {extracted:.0f} MB "
            f"({data['members']} members); peak disk use without --keep-tars should be "
            f"<= extracted + {data['in_flight_slack']:g} x the shards in flight"
        )
        for tool, t in data["tools"].items():
            if t["failed"]:
                lines.append(f"  {tool:10s} FAILED")
            elif tool == "sa1b":
                verdict = "ok" if t["peak_disk_within_bound"] else "OVER"
                lines.append(
                    f"  {tool:10s} peak {t['peak_disk_mb']:.0f} MB; bound with all "
                    f"{t['shards_in_flight']} shards in flight: {extracted:.0f} + "
                    f"{data['in_flight_slack']:g} x {shards:.0f} = {t['disk_bound_mb']:.0f} MB "
                    f"({verdict})"
                )
            elif tool == "sa1b-tars":
                lines.append(f"  {tool:10s} peak {t['peak_disk_mb']:.0f} MB (no extraction)")
            else:
                lines.append(
                    f"  {tool:10s} peak {t['peak_disk_mb']:.0f} MB; keeps every tar: "
                    f"extracted + shards = {t['disk_bound_mb']:.0f} MB"
                )
    return "\n".join(lines)


def machine_info(ctx: Context) -> dict[str, Any]:
    nginx = "unknown"
    with contextlib.suppress(Exception):
        done = subprocess.run([find_nginx(), "-v"], capture_output=True, text=True, check=False)
        nginx = done.stderr.strip()
    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": nginx,
        "aria2c": tool_version([ctx.aria2c, "--version"]) if ctx.aria2c else None,
        "curl": tool_version([ctx.curl, "--version"]) if ctx.curl else None,
        "openssl": tool_version(["openssl", "version"]),
    }
