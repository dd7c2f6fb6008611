"""Rows to jobs: backend choice, backend checks, content keys, chapters.

``make_plan`` is the single place a manifest is judged runnable: it adds the
backend-specific problems (unknown voices, options, backends) to the
structural ones from loading, and raises them all together.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from ..backends import Backend, Job, UnknownBackendError, get_backend
from ..config import settings
from ..manifest import (
    SPEECH_KINDS,
    CloneRow,
    Manifest,
    ManifestError,
    Problem,
    load_manifest,
    outside_roots,
    resolve_input,
)
from ..profiles import PROFILES
from ..text.lexicon import LexiconError
from ..text.reading import prepare
from ..voices import find_voice, voice_dirs
from .keys import content_key


@dataclass(frozen=True)
class Segment:
    job: Job
    pause_after: float


@dataclass(frozen=True)
class Chapter:
    number: int
    title: str
    segments: list[Segment]


@dataclass(frozen=True)
class Plan:
    manifest: Manifest
    jobs: list[Job]
    chapters: list[Chapter] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.manifest.name

    def backends(self) -> dict[str, Backend]:
        return {name: get_backend(name) for name in sorted({j.backend for j in self.jobs})}

    def hardware(self) -> str:
        """``gpu`` when an engine of its rows wants a GPU machine, else ``cpu`` (which pool runs it)."""
        return "gpu" if any(engine.hardware == "gpu" for engine in self.backends().values()) else "cpu"

    def fingerprint(self, profiles: list[str] | None = None) -> str:
        """What decides this production's outputs: each row's content key, the settings, the profiles."""
        doc = {
            "rows": [[j.id, j.key] for j in self.jobs],
            "meta": self.manifest.meta.fingerprint_doc(),
            "profiles": profiles,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _check_file_columns(manifest: Manifest) -> list[Problem]:
    problems = []
    for row, number in zip(manifest.rows, manifest.row_numbers):
        for column in row.file_columns:
            value = getattr(row, column)
            if value and "://" not in str(value):
                path = resolve_input(value, manifest.base_dir)
                refused = outside_roots(path, manifest.base_dir)
                if refused:
                    problems.append(Problem(f"{value} {refused}", number, column))
                elif not path.is_file() or not os.access(path, os.R_OK):
                    problems.append(Problem(f"file not found or unreadable: {path}", number, column))
    return problems


def _resolve_voices(manifest: Manifest) -> tuple[Manifest, list[Problem]]:
    """Clone rows naming a registered voice get its recording and transcript."""
    rows, problems = [], []
    for row, number in zip(manifest.rows, manifest.row_numbers):
        if isinstance(row, CloneRow) and row.voice:
            voice = find_voice(row.voice, manifest.base_dir)
            if row.reference:
                problems.append(Problem("give a voice or a reference recording, not both", number, "voice"))
            elif voice is None:
                where = ", ".join(str(d) for d in voice_dirs(manifest.base_dir))
                problems.append(Problem(f"unknown voice '{row.voice}' (registries searched: {where})", number, "voice"))
            else:
                row = row.model_copy(
                    update={
                        "voice": None,
                        "reference": str(voice.audio),
                        "reference_text": row.reference_text or voice.transcript,
                    }
                )
        rows.append(row)
    return dataclasses.replace(manifest, rows=rows), problems


def make_plan(manifest: Manifest, backend: str | None = None) -> Plan:
    """Judge a loaded manifest and turn its rows into jobs; raises ManifestError.

    The backend for a row is its own ``backend`` column, else ``backend``
    (the run's choice), else the sidecar's, else the settings' default.
    """
    default = backend or manifest.meta.backend or settings().backend
    manifest, voice_problems = _resolve_voices(manifest)
    file_problems = _check_file_columns(manifest)
    problems = list(manifest.problems) + voice_problems + file_problems
    unreadable = {p.row for p in file_problems + voice_problems}
    jobs: list[Job] = []
    for row, number in zip(manifest.rows, manifest.row_numbers):
        name = row.backend or default
        try:
            engine = get_backend(name)
        except UnknownBackendError as exc:
            problems.append(Problem(str(exc), number, "backend" if row.backend else None))
            continue
        if row.kind not in engine.kinds:
            problems.append(Problem(f"backend '{name}' cannot make {row.kind} rows", number, "kind"))
            continue
        # The engine is given (and the key made from) the spoken text: the lexicon applied for this engine.
        try:
            spoken_row, said = _spoken(row, manifest, name, engine)
        except LexiconError as exc:  # an entry too slow on this row's text, or growing it past the limit
            problems.append(Problem(str(exc), number, "text"))
            continue
        row_problems = engine.check(spoken_row, manifest.base_dir)
        if isinstance(text := getattr(row, "text", None), str) and text.strip() and not spoken_row.text.strip():
            row_problems = [
                *row_problems,
                ("text", "nothing to read once prepared for reading (a scene break alone? give it as a pause instead)"),
            ]
        problems += [Problem(msg, number, column) for column, msg in row_problems]
        if row_problems or number in unreadable:
            continue
        spec = engine.job_spec(spoken_row, manifest.base_dir)
        key = content_key(name, row.kind, spec.model, spec.key_params, spec.inputs)
        language = getattr(row, "language", None) or manifest.meta.language
        jobs.append(Job(row=row, row_number=number, backend=name, spec=spec, key=key, spoken=said, language=language))
    problems += _check_profiles(manifest)
    if problems:
        raise ManifestError(manifest.path, problems)
    if any(j.row.order is not None for j in jobs):
        jobs.sort(key=lambda j: cast(float, j.row.order))  # stable: ties keep file order; every row has one
    return Plan(manifest=manifest, jobs=jobs, chapters=_chapters(manifest, jobs))


def _spoken(row, manifest: Manifest, backend: str, engine: Backend):
    """The row as ``backend`` is to read it, and its text's spoken form for verification (None: its own text).

    The lexicon is applied first (its entries are written against the manuscript), then the text is
    prepared for reading in the engine's style (the sidecar's ``reading`` overrides it).
    """
    text = getattr(row, "text", None)
    if not isinstance(text, str):
        return row, None
    lexicon = manifest.lexicon if manifest.lexicon is not None and len(manifest.lexicon) else None
    style = manifest.meta.reading or engine.reading
    spoken = prepare(lexicon.spoken(text, backend) if lexicon else text, style)
    said = prepare(lexicon.spoken(text, None) if lexicon else text, style)
    return (row.model_copy(update={"text": spoken}) if spoken != text else row), (said if said != text else None)


# What a profile's ``needs`` names, as row kinds.
NEEDED_KINDS = {"speech": SPEECH_KINDS, "video": frozenset({"video"})}


def _check_profiles(manifest: Manifest) -> list[Problem]:
    """Delivery profiles need the rows they deliver."""
    meta, kinds = manifest.meta, {r.kind for r in manifest.rows}
    side = f"{manifest.path.stem}.toml"
    problems = []
    for profile in meta.profiles:
        for need in sorted(PROFILES[profile].needs):
            if not kinds & NEEDED_KINDS[need]:
                problems.append(Problem(f"{side}: profile '{profile}' needs {need} rows", column="profiles"))
    track = meta.video.track
    songs = {r.id for r in manifest.rows if r.kind == "song"}
    if track and track != "speech" and track not in songs:
        problems.append(
            Problem(
                f"{side}: video.track must be 'speech' or the id of a song row, not '{track}'", column="video.track"
            )
        )
    return problems


def _chapters(manifest: Manifest, jobs: list[Job]) -> list[Chapter]:
    """Speech rows make the book's chapters; songs and clips are deliverables on their own."""
    by_title: dict[str, list[Job]] = {}
    for job in (j for j in jobs if j.kind in SPEECH_KINDS):
        by_title.setdefault(job.row.chapter or manifest.title, []).append(job)
    chapters = []
    for number, (title, members) in enumerate(by_title.items(), start=1):
        segments = []
        for i, job in enumerate(members):
            last = i == len(members) - 1
            pause = job.row.pause_after
            if pause is None:
                pause = manifest.meta.chapter_pause if last else manifest.meta.pause_after
            segments.append(Segment(job, pause))
        chapters.append(Chapter(number, title, segments))
    return chapters


def validate(path: Path | str, backend: str | None = None) -> Plan:
    """Load and plan a manifest, raising every problem at once."""
    return make_plan(load_manifest(path), backend)
