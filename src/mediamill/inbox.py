"""The inbox a scheduled sweep watches: which manifests are new or changed.

A production that completes leaves ``<outputs>/<name>/.produced.json`` with
the fingerprint of what it produced (each row's content key, the settings and
the profiles). A manifest whose fingerprint differs, or that never completed,
is due; so is one that fails validation, so its problems are reported again
until someone fixes it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from .core.files import write_json_atomic
from .manifest import MANIFEST_SUFFIXES, ManifestError
from .plan import Plan, validate


def find_manifests(inbox: Path) -> list[Path]:
    """Manifests anywhere under ``inbox``, in name order; hidden folders (and files) are skipped."""
    found = [
        path
        for path in inbox.rglob("*")
        if path.suffix.lower() in MANIFEST_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(inbox).parts)
    ]
    return sorted(found)


def marker(outputs: Path, plan: Plan) -> Path:
    return outputs / plan.name / ".produced.json"


def mark_produced(outputs: Path, plan: Plan, profiles: list[str] | None) -> None:
    write_json_atomic(
        marker(outputs, plan),
        {
            "fingerprint": plan.fingerprint(profiles),
            "manifest": str(plan.manifest.path),
            "produced_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )


def needed(path: Path, outputs: Path, backend: str | None, profiles: list[str] | None) -> str | None:
    """What a manifest's run needs if it is due: ``gpu`` when an engine of its rows wants a GPU, else ``cpu``
    (a manifest that fails validation too: its run reports the problems wherever it runs); None when its last
    completed production is current. One read and validation of the manifest for both answers."""
    try:
        plan = validate(path, backend)
    except ManifestError:
        return "cpu"
    needs = plan.hardware()
    try:
        doc = json.loads(marker(outputs, plan).read_text())
    except (OSError, ValueError):
        return needs
    return None if isinstance(doc, dict) and doc.get("fingerprint") == plan.fingerprint(profiles) else needs
