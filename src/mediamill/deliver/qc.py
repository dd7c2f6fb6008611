"""The QC report: ``qc.json``, ``qc.md`` and a loudness plot per delivered file.

``qc.json`` holds every delivered file's measurements and every rule's
verdict; ``qc.md`` is the same as tables, with a loudness-over-time plot per
file; ``load_profile_doc`` finds a profile delivered earlier from the same
inputs, so a rerun measures nothing again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.files import atomic_path, write_bytes_atomic, write_json_atomic
from ..profiles import PROFILES
from .base import DeliveredFile, Delivery


def load_profile_doc(out_dir: Path, profile: str, fingerprint: str) -> dict[str, Any] | None:
    """The QC record of a profile delivered earlier from the same inputs, if its files are all there."""
    try:
        state = json.loads((out_dir / f".deliver-{profile}.json").read_text())
        doc = json.loads((out_dir / "qc.json").read_text())["profiles"][profile]
    except (OSError, ValueError, KeyError):
        return None
    if state.get("fingerprint") != fingerprint:
        return None
    if not all((out_dir / f["path"]).is_file() for f in doc["files"]):
        return None
    if not all((out_dir / o).is_file() for o in doc.get("outputs", [])):
        return None
    return doc


def _plot(file: DeliveredFile, dest: Path, target: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = file.measurement.timeline
    fig, ax = plt.subplots(figsize=(8, 2.6), dpi=100)
    if points:
        minutes = [t / 60 for t, _, _ in points]
        ax.plot(minutes, [max(m, -60) for _, m, _ in points], lw=0.6, color="#9bb", label="momentary")
        # Short-term loudness needs 3 s of audio before it means anything.
        short = [(t / 60, max(s, -60)) for t, _, s in points if t >= 3.0]
        ax.plot([t for t, _ in short], [s for _, s in short], lw=1.2, color="#168", label="short-term")
    if target is not None:
        ax.axhline(target, color="#c50", lw=0.8, ls="--", label=f"target {target:g} LUFS")
    ax.set_ylim(-60, 0)
    ax.set_xlabel("minutes")
    ax.set_ylabel("LUFS")
    ax.set_title(file.path.name, fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _file_doc(file: DeliveredFile, out_dir: Path, profile: str, target: float | None) -> dict[str, Any]:
    plot = out_dir / "qc" / f"{profile}-{file.path.stem}.png"
    plot.parent.mkdir(parents=True, exist_ok=True)
    _plot(file, plot, target)
    return {
        "path": file.path.relative_to(out_dir).as_posix(),
        "ok": file.ok,
        "measurements": {k: v for k, v in file.measurement.summary().items() if k != "path"},
        "rules": [{"rule": v.rule, "ok": v.ok, "value": v.value, "expected": v.expected} for v in file.verdicts],
        "plot": plot.relative_to(out_dir).as_posix(),
    }


def write_qc(
    out_dir: Path, name: str, deliveries: list[Delivery], flagged: list[dict[str, Any]] | None = None, checked: int = 0
) -> dict[str, Any]:
    profiles: dict[str, Any] = {}
    for d in deliveries:
        if d.doc is not None:
            profiles[d.profile] = d.doc
            continue
        profile = PROFILES[d.profile]
        files = []
        for f in d.files:
            target = profile.lufs_for(f.measurement.channels or 1)
            files.append(_file_doc(f, out_dir, d.profile, target))
        profiles[d.profile] = {
            "ok": d.ok,
            "description": profile.description,
            "problems": d.problems,
            "failures": d.failures(),
            "files": files,
            "outputs": [o.relative_to(out_dir).as_posix() for o in d.outputs],
            "notes": d.notes,
        }
    doc = {
        "name": name,
        "ok": all(p["ok"] for p in profiles.values()),
        "profiles": profiles,
        # Rows kept although no take said their text (MEDIAMILL_VERIFY_KEEP_FAILED): what to listen to.
        "verification": {"checked": checked, "failed": flagged or []},
    }
    write_json_atomic(out_dir / "qc.json", doc)
    write_bytes_atomic(out_dir / "qc.md", qc_markdown(doc).encode("utf-8"))
    return doc


def _fmt(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, float) else "—" if value is None else str(value)


def qc_markdown(doc: dict[str, Any], images: bool = True) -> str:
    lines = [f"# QC: {doc['name']}", "", f"**{'PASS' if doc['ok'] else 'FAIL'}**", ""]
    verification = doc.get("verification") or {}
    if verification.get("failed"):
        lines += [
            f"## Verification: {len(verification['failed'])} of {verification['checked']} takes to listen to",
            "",
            "A flagged take has a short extra sound in every take made (kept, the book delivered); a failed "
            "one was kept by MEDIAMILL_VERIFY_KEEP_FAILED.",
            "",
            "| row | verdict | missing (where) | extra speech (where) | why |",
            "|---|---|---|---|---|",
        ]
        for row in verification["failed"]:
            lines.append(
                f"| {row['id']} | {row.get('verified') or 'fail'} | {_fmt(row.get('missing'))} | "
                f"{_fmt(row.get('extra'))} | {_fmt(row.get('reason'))} |"
            )
        lines.append("")
    for name, p in doc["profiles"].items():
        lines += [f"## {name}: {'pass' if p['ok'] else 'FAIL'}", "", p["description"], ""]
        for problem in p["problems"]:
            lines.append(f"- **problem**: {problem}")
        for output in p.get("outputs", []):
            lines.append(f"- delivered: `{output}`")
        for note in p.get("notes", []):
            lines.append(f"- note: {note}")
        if p["files"]:
            lines += [
                "| file | duration | LUFS | LRA | true peak | RMS | peak | noise floor | rate | kbps | result |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            ]
            for f in p["files"]:
                m = f["measurements"]
                failed = [f"{r['rule']} {_fmt(r['value'])} (want {r['expected']})" for r in f["rules"] if not r["ok"]]
                lines.append(
                    f"| {f['path']} | {m['duration_s'] / 60:.1f} min | {_fmt(m['integrated_lufs'])} | {_fmt(m['lra_lu'])} "
                    f"| {_fmt(m['true_peak_dbtp'])} | {_fmt(m['rms_db'])} | {_fmt(m['peak_db'])} "
                    f"| {_fmt(m['noise_floor_db'])} | {m['sample_rate']} | {_fmt(m['bitrate_kbps'])} "
                    f"| {'pass' if f['ok'] else 'FAIL: ' + '; '.join(failed)} |"
                )
            if images:
                lines.append("")
                lines += [f"![{f['path']}]({f['plot']})" for f in p["files"]]
        lines.append("")
    return "\n".join(lines)
