"""``sa1b plan``'s report: a few lines for a person, or JSON for a script."""

from __future__ import annotations

import json

from sa1b.cli.output import Output
from sa1b.config import DownloadConfig
from sa1b.planning import Plan
from sa1b.redaction import clean
from sa1b.units import human_bytes, human_duration, plural


def show_plan(plan: Plan, config: DownloadConfig, output: Output, *, as_json: bool) -> None:
    if as_json:
        output.line(json.dumps(_as_dict(plan), indent=2))
        return
    files, done = plan.files, [f for f in plan.files if f.done]
    partial = [f for f in plan.files if not f.done and f.kept]
    shards = sum(1 for f in files if f.shard)
    into = plan.bucket.url if plan.bucket else config.out
    output.line(f"plan: {plural(len(files), 'file')} ({plural(shards, 'shard')}) into {into}")
    answered = len(files) - len(plan.unanswered)
    output.line(
        f"  server sizes    {human_bytes(plan.total)} ({answered} of {len(files)} answered)"
    )
    if done or partial:
        kept = human_bytes(sum(f.kept for f in partial))
        output.line(f"  already there   {len(done)} done, {len(partial)} partial ({kept} fetched)")
    output.line(f"  to fetch        {human_bytes(plan.to_fetch)}")
    if plan.bucket:
        output.line(f"  bucket          reachable and writable ({clean(plan.bucket.endpoint)})")
    else:
        for line in _disk_lines(plan, config):
            output.line(line)
    for line in _time_lines(plan):
        output.line(line)
    for problem in problems(plan):
        output.line(f"problem: {problem}")
    if plan.ok and plan.bucket:
        output.line("ok: the bucket takes writes, every file answered, and its links outlive it")
    elif plan.ok:
        output.line("ok: the download fits, every file answered, and its links outlive it")


def problems(plan: Plan) -> list[str]:
    """What stands in the way, each with what to do."""
    found = []
    if not plan.fits:
        found.append(
            f"it needs {human_bytes(plan.needed)} and {human_bytes(plan.free)} are free: "
            "free some space, pick another -o, or take less (--shards, --fraction)"
        )
    for facts in plan.unanswered:
        found.append(f"{facts.name}: {clean(facts.error or 'no answer', limit=200)}")
    outlook = plan.outlook
    if any(stamp <= plan.now for stamp in plan.expires):
        found.append("links have expired already: download a fresh links file")
    elif outlook is not None and outlook.too_late:
        found.append(outlook.warning())
    return found


def _disk_lines(plan: Plan, config: DownloadConfig) -> list[str]:
    fits = "fits" if plan.fits else "does NOT fit"
    mode = (
        "tars only"
        if config.extract is None
        else "extracting, tars kept"
        if config.extract.keep_tars
        else "extracting, tars deleted"
    )
    lines = [
        f"  disk            needs {human_bytes(plan.needed)} more ({mode}); "
        f"{human_bytes(plan.free)} free: {fits}"
    ]
    if config.extract is not None:
        other, label = (
            (plan.needed_without_tars, "without --keep-tars")
            if config.extract.keep_tars
            else (plan.needed_keeping_tars, "with --keep-tars")
        )
        verdict = "fits" if other <= plan.free else "does NOT fit"
        lines.append(f"                  {label}: needs {human_bytes(other)}: {verdict}")
    return lines


def _time_lines(plan: Plan) -> list[str]:
    lines = []
    if plan.speed:
        expected, speed = plan.expected_speed, f"{human_bytes(plan.speed)}/s (probe)"
        if expected < plan.speed:
            speed += f", {human_bytes(expected)}/s with --max-rate"
        eta = human_duration(plan.to_fetch / expected)
        lines.append(f"  speed           {speed} -> about {eta}")
    first = min(plan.expires, default=None)
    if first is not None and first > plan.now:
        lines.append(f"  links           valid for {human_duration(first - plan.now)} more")
    return lines


def _as_dict(plan: Plan) -> dict[str, object]:
    outlook = plan.outlook
    first = min(plan.expires, default=None)
    local = plan.bucket is None
    return {
        "ok": plan.ok,
        "bucket": None
        if plan.bucket is None
        else {"url": plan.bucket.url, "endpoint": plan.bucket.endpoint, "writable": True},
        "files": [
            {
                "name": f.name,
                "size": f.size,
                "done": f.done,
                "fetched": f.kept,
                "error": None if f.error is None else clean(f.error, limit=200),
            }
            for f in plan.files
        ],
        "total_bytes": plan.total,
        "to_fetch_bytes": plan.to_fetch,
        # No local disk figure for a bucket: nothing of the download lands on a local disk.
        "free_bytes": plan.free if local else None,
        "needed_bytes": plan.needed if local else None,
        "needed_bytes_keeping_tars": plan.needed_keeping_tars if local else None,
        "needed_bytes_without_tars": plan.needed_without_tars if local else None,
        "fits": plan.fits if local else None,
        "speed_bytes_per_second": plan.speed,
        "max_rate_bytes_per_second": plan.max_rate,
        "eta_seconds": outlook.needed if outlook else None,
        "links_valid_seconds": None if first is None else first - plan.now,
        "problems": problems(plan),
    }
