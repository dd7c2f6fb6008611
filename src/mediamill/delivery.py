"""Delivery: master the stitched production for each profile, then measure what was delivered.

Inputs are the lossless chapter files from stitching (and the stored clips
and songs); outputs go to ``<outputs>/<name>/<profile>/``. Every delivered
file is measured after encoding and judged by its profile's rules. A profile
is redone only when what decides it changed (its fingerprint), so reruns of a
finished manifest measure nothing again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .book import BookOutputs, master_m4b, slug
from .media import master
from .media.measure import Measurement, levels, measure
from .media.probe import probe
from .plan import Plan
from .profiles import ACX, AUDIOBOOK, PODCAST, PROFILES, VIDEO, Profile, Verdict
from .store import Entry, commit_file, write_json_atomic

DELIVERY_VERSION = 1


@dataclass
class DeliveredFile:
    path: Path
    measurement: Measurement
    verdicts: list[Verdict]

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)


@dataclass
class Delivery:
    profile: str
    files: list[DeliveredFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # failures found before encoding (an over-long chapter)
    reused: bool = False
    doc: dict[str, Any] | None = None  # the QC record, when reused from an earlier run

    @property
    def ok(self) -> bool:
        if self.doc is not None:
            return bool(self.doc["ok"])
        return not self.problems and all(f.ok for f in self.files)

    def failures(self) -> list[str]:
        if self.doc is not None:
            return list(self.doc.get("failures", []))
        out = list(self.problems)
        for f in self.files:
            out += [f"{f.path.name}: {v}" for v in f.verdicts if not v.ok]
        return out


def _resolve(plan: Plan, value: str | None) -> Path | None:
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else plan.manifest.base_dir / path


def _fingerprint(plan: Plan, profile: str, book: BookOutputs, entries: dict[str, Entry]) -> str:
    meta = plan.manifest.meta
    doc = {
        "v": DELIVERY_VERSION,
        "profile": profile,
        "chapters": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in book.chapters],
        "clips": [entries[j.key].path.name for j in plan.jobs if j.kind in ("video", "song") and j.key in entries],
        "meta": meta.model_dump(mode="json"),
        "files": {k: _resolve(plan, v).stat().st_mtime_ns for k, v in meta.files().items()},  # type: ignore[union-attr]
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _judge(path: Path, profile: Profile, extra: dict[str, Any] | None = None) -> DeliveredFile:
    m = measure(path)
    facts = {"duration_min": m.duration_s / 60, **(extra or {})}
    return DeliveredFile(path, m, profile.judge(m, facts))


def _speech_track(book: BookOutputs, work: Path) -> Path:
    """All chapters, in order, as one lossless file (the episode's or the video's narration)."""
    if len(book.chapters) == 1:
        return book.chapters[0]
    out = work / "speech.flac"
    master.run_ffmpeg(*master.concat_args(book.chapters, work, "speech"), "-c:a", "flac", out)
    return out


def deliver_audiobook(plan: Plan, book: BookOutputs, out_dir: Path, work: Path) -> Delivery:
    delivery = Delivery(AUDIOBOOK.name)
    if book.m4b is None:
        delivery.problems.append("no M4B: the book has incomplete chapters or no speech rows")
        return delivery
    result = _judge(book.m4b, AUDIOBOOK, {"chapters": len(probe(book.m4b).chapters)})
    m = result.measurement
    drift = AUDIOBOOK.target_lufs - m.integrated_lufs  # type: ignore[operator]
    overshoot = m.true_peak_dbtp - (-1.0)
    if not result.ok and (abs(drift) > 0.5 or overshoot > 0):
        # The limiter or the AAC encoder moved the figures: one corrective pass over the whole book.
        chapters = [(c.title, path, probe(path).duration_s) for c, path in zip(plan.chapters, book.chapters)]
        limit = AUDIOBOOK.limit_db - (max(0.0, overshoot) + 0.5 if overshoot > 0 else 0.0)
        master_m4b(plan, chapters, book.m4b, work, adjust_db=drift if abs(drift) > 0.5 else 0.0, limit_db=limit)
        result = _judge(book.m4b, AUDIOBOOK, {"chapters": len(probe(book.m4b).chapters)})
    delivery.files.append(result)
    return delivery


ACX_CORRECTIONS = 3


def deliver_acx(plan: Plan, book: BookOutputs, out_dir: Path, work: Path) -> Delivery:
    delivery = Delivery(ACX.name)
    folder = out_dir / "acx"
    folder.mkdir(parents=True, exist_ok=True)
    wanted = []
    for chapter, source in zip(plan.chapters, book.chapters):
        duration = probe(source).duration_s
        if duration > 120 * 60:
            delivery.problems.append(
                f"chapter {chapter.number} '{chapter.title}' is {duration / 60:.1f} min; ACX allows 120 per file: split it"
            )
            continue
        dest = folder / f"{chapter.number:02d}-{slug(chapter.title)}.mp3"
        wanted.append(dest)
        lv = levels(source)
        gain = ACX.target_rms_db - lv["rms_db"]  # type: ignore[operator]
        limit = ACX.limit_db
        # Mastered and corrected in scratch, then moved into place: a kill between passes must
        # not leave an uncorrected file under the delivered name.
        draft = work / f"acx-{chapter.number:02d}.mp3"
        master.acx_chapter(source, draft, gain, limit, lv["head_silence_s"], lv["tail_silence_s"])
        result = _judge(draft, ACX)
        # Corrective passes (bounded) when encoding moved a figure: the limiter took more level
        # than expected, or the encoder pushed peaks past the ceiling.
        for _ in range(ACX_CORRECTIONS):
            drift = ACX.target_rms_db - result.measurement.rms_db  # type: ignore[operator]
            overshoot = result.measurement.peak_db - (ACX.limit_db + 1.0)
            if abs(drift) <= 1.0 and overshoot <= 0:
                break
            limit -= max(0.0, overshoot) + (0.5 if overshoot > 0 else 0.0)
            gain += drift
            master.acx_chapter(source, draft, gain, limit, lv["head_silence_s"], lv["tail_silence_s"])
            result = _judge(draft, ACX)
        commit_file(draft, dest)
        delivery.files.append(dataclasses.replace(result, path=dest))
    for stale in folder.glob("*.mp3"):
        if stale not in wanted:
            stale.unlink()
    return delivery


def deliver_podcast(plan: Plan, book: BookOutputs, out_dir: Path, work: Path) -> Delivery:
    delivery = Delivery(PODCAST.name)
    cfg = plan.manifest.meta.podcast
    speech = _speech_track(book, work)
    bed_path, intro, outro = _resolve(plan, cfg.bed), _resolve(plan, cfg.intro), _resolve(plan, cfg.outro)
    stereo = cfg.stereo if cfg.stereo is not None else any((bed_path, intro, outro))
    bed = master.Bed(bed_path, cfg.bed_gain_db, cfg.duck_db) if bed_path else None
    mix = work / "episode-mix.flac"
    master.podcast_mix(speech, mix, stereo, intro, outro, bed, cfg.crossfade_s, levels(speech)["rms_db"])
    dest = out_dir / "podcast" / f"{plan.name}.mp3"
    dest.parent.mkdir(parents=True, exist_ok=True)
    target = PODCAST.lufs_for(2 if stereo else 1)
    master.encode_episode(mix, dest, target, PODCAST.limit_db, stereo)
    delivery.files.append(_judge(dest, PODCAST))
    return delivery


def deliver_video(plan: Plan, book: BookOutputs, entries: dict[str, Entry], out_dir: Path, work: Path) -> Delivery:
    delivery = Delivery(VIDEO.name)
    clips = [entries[j.key].path for j in plan.jobs if j.kind == "video" and j.key in entries]
    missing = [j.id for j in plan.jobs if j.kind == "video" and j.key not in entries]
    if missing:
        delivery.problems.append(f"clips missing (failed rows): {', '.join(missing)}")
        return delivery
    cfg = plan.manifest.meta.video
    track = None
    if cfg.track == "speech":
        if not book.chapters:
            delivery.problems.append("video.track = 'speech' but no chapter was stitched")
            return delivery
        track = _speech_track(book, work)
    elif cfg.track:
        job = next(j for j in plan.jobs if j.id == cfg.track)
        if job.key not in entries:
            delivery.problems.append(f"video.track: song row '{cfg.track}' failed")
            return delivery
        track = entries[job.key].path
    dest = out_dir / "video" / f"{plan.name}.mp4"
    dest.parent.mkdir(parents=True, exist_ok=True)
    master.video_cut(clips, dest, track, cfg.mode, VIDEO.target_lufs, VIDEO.limit_db, work)  # type: ignore[arg-type]
    info = probe(dest)
    delivery.files.append(_judge(dest, VIDEO, {"has_video": int(bool(info.video_codec)), "has_audio": int(bool(info.audio_codec))}))
    return delivery


def deliver(plan: Plan, book: BookOutputs, entries: dict[str, Entry], out_dir: Path, scratch: Path,
            profiles: list[str] | None = None) -> list[Delivery]:  # fmt: skip
    """Master and measure every profile the manifest (or the run) asks for; write the QC report."""
    from .qc import load_profile_doc, write_qc

    names = profiles or list(plan.manifest.meta.profiles)
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
        with tempfile.TemporaryDirectory(dir=scratch, prefix=f"deliver-{name}-") as tmp:
            work = Path(tmp)
            if name == "audiobook":
                delivery = deliver_audiobook(plan, book, out_dir, work)
            elif name == "acx":
                delivery = deliver_acx(plan, book, out_dir, work)
            elif name == "podcast":
                delivery = deliver_podcast(plan, book, out_dir, work)
            else:
                delivery = deliver_video(plan, book, entries, out_dir, work)
        deliveries.append(delivery)
        write_json_atomic(out_dir / f".deliver-{name}.json", {"fingerprint": fingerprint})
    write_qc(out_dir, plan.name, deliveries)
    return deliveries
