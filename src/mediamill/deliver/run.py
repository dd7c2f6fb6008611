"""Delivery: master the stitched production for each profile, then measure what was delivered.

Inputs are the lossless chapter files from stitching (and the stored clips
and songs); outputs go to ``<outputs>/<name>/<profile>/``. Every delivered
file is measured after encoding and judged by its profile's rules. A profile
is redone only when what decides it changed (its fingerprint), so reruns of a
finished manifest measure nothing again. ``RUNNERS`` holds the mastering of
each profile in ``mediamill.profiles.PROFILES``, the one list of their names.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from ..assemble import BookOutputs
from ..core.files import scratch_dir, write_json_atomic
from ..core.hashing import file_digest
from ..plan import Plan
from ..profiles import PROFILES
from ..store import Entry
from .acx import deliver_acx
from .audiobook import deliver_audiobook
from .base import Delivery, Production, resolve_file
from .podcast import deliver_podcast
from .qc import load_profile_doc, write_qc
from .readalong.deliver import deliver_readalong
from .video import deliver_video

DELIVERY_VERSION = 1

RUNNERS: dict[str, Callable[[Production, Path], Delivery]] = {
    "audiobook": deliver_audiobook,
    "acx": deliver_acx,
    "podcast": deliver_podcast,
    "video": deliver_video,
    "readalong": deliver_readalong,
}
assert set(RUNNERS) == set(PROFILES), "every profile needs its mastering, and nothing else does"


def _fingerprint(plan: Plan, profile: str, book: BookOutputs, entries: dict[str, Entry]) -> str:
    meta = plan.manifest.meta
    doc = {
        "v": DELIVERY_VERSION,
        "profile": profile,
        "chapters": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in book.chapters],
        "clips": [entries[j.key].path.name for j in plan.jobs if j.kind in ("video", "song") and j.key in entries],
        "meta": meta.fingerprint_doc(),
        "files": {
            k: resolve_file(plan, v).stat().st_mtime_ns  # type: ignore[union-attr]  # files() keeps named ones only
            for k, v in meta.files().items()
        },
    }
    doc.update(PROFILE_INPUTS.get(profile, lambda *_: {})(plan, entries))
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _timed_rows(entries: dict[str, Entry]) -> list[str]:
    """Which rows have word timings (they time captions and read-along text finer than the row)."""
    return sorted(k for k, e in entries.items() if e.path.with_name(f"{k}.words.json").is_file())


def _readalong_inputs(plan: Plan, entries: dict[str, Entry]) -> dict:
    """What else decides a read-along: the source book's bytes and which rows have word timings."""
    source = plan.manifest.meta.source
    book = plan.manifest.base_dir / source.file if source else None
    return {"source_book": file_digest(book) if book and book.is_file() else None, "word_timings": _timed_rows(entries)}


CAPTIONS_VERSION = 1


def _caption_inputs(plan: Plan, entries: dict[str, Entry]) -> dict:
    """What decides a profile's captions: the row texts (in the plan's keys already) and the word timings."""
    return {"captions": CAPTIONS_VERSION, "word_timings": _timed_rows(entries)}


# Inputs only some profiles depend on (kept out of the others' fingerprints).
PROFILE_INPUTS = {
    "readalong": _readalong_inputs,
    "audiobook": _caption_inputs,
    "podcast": _caption_inputs,
    "video": _caption_inputs,
}


def deliver(
    plan: Plan,
    book: BookOutputs,
    entries: dict[str, Entry],
    out_dir: Path,
    scratch: Path,
    profiles: list[str] | None = None,
) -> list[Delivery]:
    """Master and measure every profile the manifest (or the run) asks for; write the QC report."""
    names = profiles or list(plan.manifest.meta.profiles)
    production = Production(plan, book, entries, out_dir)
    deliveries: list[Delivery] = []
    scratch.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name not in PROFILES:
            raise ValueError(f"unknown delivery profile '{name}' (known: {', '.join(PROFILES)})")
        fingerprint = _fingerprint(plan, name, book, entries)
        doc = load_profile_doc(out_dir, name, fingerprint)
        if doc is not None:
            deliveries.append(Delivery(name, reused=True, doc=doc))
            continue
        with scratch_dir(scratch, f"deliver-{name}-") as work:
            delivery = RUNNERS[name](production, work)
        deliveries.append(delivery)
        write_json_atomic(out_dir / f".deliver-{name}.json", {"fingerprint": fingerprint})
    checked = [(j, entries[j.key]) for j in plan.jobs if j.key in entries and entries[j.key].meta.get("verified")]
    # "flagged": a short extra sound in every take, kept for a listen; "fail": kept by MEDIAMILL_VERIFY_KEEP_FAILED.
    flagged = [
        {
            "id": j.id,
            "verified": e.meta.get("verified"),
            "missing": e.meta.get("missing"),
            "extra": e.meta.get("extra"),
            "reason": e.meta.get("verify_reason"),
            "wer": e.meta.get("wer"),
        }
        for j, e in checked
        if e.meta.get("verified") in ("fail", "flagged")
    ]
    judged = sum(e.meta.get("verified") in ("pass", "fail", "flagged") for _, e in checked)
    write_qc(out_dir, plan.name, deliveries, flagged, judged)
    return deliveries
