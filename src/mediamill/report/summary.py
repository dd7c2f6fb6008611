"""A run's summary: counts by status, audio, cost by backend and kind, and the failed rows, as data and markdown."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..core import exact_sum
from .results import STATUSES


def summarise(rows: Iterable[dict[str, Any]], wall_s: float | None = None) -> dict[str, Any]:
    """Totals for a run: counts by status, audio hours, cost, and cost by kind and backend."""
    rows = list(rows)
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    by_kind: dict[str, list] = defaultdict(list)
    by_backend: dict[str, list] = defaultdict(list)
    for r in rows:
        by_kind[r["kind"]].append(r["cost_usd"] or 0.0)
        by_backend[r["backend"]].append(r["cost_usd"] or 0.0)
    return {
        "rows": len(rows),
        **counts,
        "audio_h": sum(r["audio_s"] or 0.0 for r in rows) / 3600,
        "cost_usd": exact_sum([r["cost_usd"] or 0.0 for r in rows]) or 0.0,
        "compute_s": sum(r["compute_s"] or 0.0 for r in rows),
        "elapsed_s": wall_s if wall_s is not None else sum(r["elapsed_s"] or 0.0 for r in rows),
        "cost_by_kind": {k: exact_sum(v) for k, v in by_kind.items()},
        "cost_by_backend": {k: exact_sum(v) for k, v in by_backend.items()},
        "failures": [(r["id"], r["error"]) for r in rows if r["status"] == "failed"],
        # Generated rows whose service reported no cost and no price table priced them.
        "cost_not_reported": sum(r["status"] == "done" and r["cost_source"] == "not reported" for r in rows),
    }


def summary_markdown(name: str, s: dict[str, Any]) -> str:
    lines = [
        f"# {name}",
        "",
        "| rows | done | cached | failed | audio (h) | cost (USD) | compute (s) | elapsed (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {s['rows']} | {s['done']} | {s['cached']} | {s['failed']} | {s['audio_h']:.3f} "
        f"| {s['cost_usd']:.4f} | {s['compute_s']:.1f} | {s['elapsed_s']:.1f} |",
    ]
    if s.get("cost_not_reported"):
        lines += [
            "",
            f"{s['cost_not_reported']} generated row(s) had no reported cost and no price in "
            "MEDIAMILL_PRICES: the cost above leaves them out.",
        ]
    if len(s["cost_by_backend"]) > 1 or len(s["cost_by_kind"]) > 1:
        lines += ["", "| cost by | | USD |", "|---|---|---:|"]
        lines += [f"| backend | {k} | {v:.4f} |" for k, v in sorted(s["cost_by_backend"].items())]
        lines += [f"| kind | {k} | {v:.4f} |" for k, v in sorted(s["cost_by_kind"].items())]
    if s["failures"]:
        lines += ["", "## Failed rows", ""]
        lines += [f"- `{rid}`: {err}" for rid, err in s["failures"][:50]]
        if len(s["failures"]) > 50:
            lines.append(f"- … and {len(s['failures']) - 50} more (see results.csv)")
    return "\n".join(lines) + "\n"


def production_summary(
    name: str,
    results: list[Any],
    wall_s: float,
    out_dir: Path,
    m4b: Path | None,
    chapters: list[Path],
    phases_s: dict[str, float],
    qc: dict[str, bool],
    undelivered: list[str],
    limits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``summary.json``: the totals of ``summarise`` plus where everything went and how long each phase took."""
    summary = summarise([r.__dict__ for r in results], wall_s=wall_s)
    summary.update(
        name=name,
        outputs=str(out_dir),
        m4b=str(m4b) if m4b else None,
        chapters=[str(p) for p in chapters],
        phases_s={k: round(v, 3) for k, v in phases_s.items()},
        qc=qc,
        undelivered=undelivered,
        limits=limits or {},  # each backend's limit and what its server slots cost
    )
    return summary
