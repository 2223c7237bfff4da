"""The goals sa1b's medians are held to, and their verdicts."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True, kw_only=True)
class Goal:
    """A target for sa1b, checked from one scenario's medians."""

    scenario: str
    text: str
    op: str  # ">=" or "<="
    target: float
    reference: str | None  # the tool sa1b is compared with (None: an absolute figure)
    metric: str  # "mb_s" or "cpu_s_per_gb" (ratios), "served_over_size" or "peak_rss_mb" (kill),
    # "cpu_s_per_gb_median" (https-extract)


GOALS = (
    Goal(scenario="https", text="sa1b MB/s >= 1.6 x aria2c", op=">=", target=1.6,
         reference="aria2c", metric="mb_s"),
    Goal(scenario="https", text="sa1b MB/s >= 0.8 x curl8", op=">=", target=0.8,
         reference="curl8", metric="mb_s"),
    Goal(scenario="https", text="sa1b CPU s/GB <= 0.8 x aria2c", op="<=", target=0.8,
         reference="aria2c", metric="cpu_s_per_gb"),
    Goal(scenario="https-paced", text="sa1b MB/s >= 1.25 x aria2c-best", op=">=", target=1.25,
         reference="aria2c-best", metric="mb_s"),
    Goal(scenario="https-paced-rtt", text="sa1b MB/s >= 1.25 x aria2c-best", op=">=",
         target=1.25, reference="aria2c-best", metric="mb_s"),
    Goal(scenario="uncapped", text="sa1b MB/s >= 1.5 x aria2c", op=">=", target=1.5,
         reference="aria2c", metric="mb_s"),
    Goal(scenario="https-extract", text="sa1b MB/s >= 0.85 x its own download-only",
         op=">=", target=0.85, reference="sa1b-tars", metric="mb_s"),
    Goal(scenario="https-extract", text="sa1b CPU s/GB <= 1.6", op="<=", target=1.6,
         reference=None, metric="cpu_s_per_gb_median"),
    Goal(scenario="https-extract", text="sa1b MB/s >= 2 x aria2c then tar", op=">=",
         target=2.0, reference="aria2c+tar", metric="mb_s"),
    Goal(scenario="kill", text="sa1b bytes served <= 1.03 x data", op="<=", target=1.03,
         reference=None, metric="served_over_size"),
    Goal(scenario="kill", text="sa1b peak RSS <= 200 MB", op="<=", target=200.0,
         reference=None, metric="peak_rss_mb"),
)  # fmt: skip


def evaluate_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """PASS, FAIL or n/a (not measured) for every goal; a failed sa1b run is a FAIL."""
    verdicts = []
    for goal in GOALS:
        verdict: dict[str, Any] = {**dataclasses.asdict(goal), "measured": None}
        data = results.get(goal.scenario)
        tools = data["tools"] if data else {}
        sa1b = tools.get("sa1b")
        reference = tools.get(goal.reference) if goal.reference else None
        value: float | None = None
        if data is None:
            verdict.update(status="n/a", note="scenario not run")
        elif sa1b is None:
            verdict.update(status="n/a", note="sa1b not run")
        elif goal.reference is not None and reference is None:
            verdict.update(status="n/a", note=f"{goal.reference} not run")
        elif sa1b.get("failed") or (goal.reference is None and goal.metric not in sa1b):
            verdict.update(status="FAIL", note="sa1b failed")
        elif reference is not None and reference.get("failed"):
            verdict.update(status="n/a", note=f"{goal.reference} failed")
        else:
            if goal.reference is None:
                value = float(sa1b[goal.metric])
            else:
                value = float(data["ratios_sa1b_over"][goal.reference][goal.metric])
            passed = value >= goal.target if goal.op == ">=" else value <= goal.target
            verdict.update(status="PASS" if passed else "FAIL", measured=value, note="")
        verdicts.append(verdict)
    return verdicts


def render_goals(verdicts: list[dict[str, Any]]) -> str:
    lines = ["goals (sa1b, from the medians above):"]
    for v in verdicts:
        if v["measured"] is None:
            measured = f"({v['note']})"
        elif v["reference"] is None:
            measured = {
                "served_over_size": f"{v['measured']:.3f}",
                "cpu_s_per_gb_median": f"{v['measured']:.2f} CPU s/GB",
            }.get(v["metric"], f"{v['measured']:.1f} MB")
        else:
            measured = f"x{v['measured']:.2f}"
        lines.append(f"  {v['status']:4s}  {v['scenario']:15s}  {v['text']:42s}  {measured}")
    return "\n".join(lines)
