"""Mastering with ffmpeg's filters: gain, limiting, room tone, music beds, crossfades, muxing.

Every function streams through ffmpeg (concat lists and filter graphs), so
memory does not grow with the length of the production. Loudness work is
two-pass: measure, then apply a fixed gain and a limiter (never clipping),
and the caller measures the encoded result.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.files import atomic_path
from ..core.processes import child_options
from .ffmpeg import MediaError, ffmpeg_exe, run_ffmpeg
from .measure import loudness
from .probe import probe
from .stitch import concat_line


def concat_args(paths: Sequence[Path], workdir: Path, name: str = "parts") -> list[str]:
    listing = workdir / f"{name}.concat.txt"
    listing.write_text("".join(concat_line(p) for p in paths), encoding="utf-8")
    return ["-f", "concat", "-safe", "0", "-i", str(listing)]


def limiter(limit_db: float) -> str:
    # level=false: alimiter would otherwise raise the whole signal up to the ceiling.
    return f"alimiter=limit={10 ** (limit_db / 20):.5f}:level=false:attack=5:release=80"


# More gain than this would lift hiss and hum into the programme: a recording that quiet needs fixing, not mastering.
MAX_GAIN_DB = 30.0


def gain_chain(gain_db: float, limit_db: float) -> str:
    return f"volume={min(gain_db, MAX_GAIN_DB):.3f}dB,{limiter(limit_db)}"


def integrated_lufs(paths: Sequence[Path], workdir: Path) -> float:
    """Integrated loudness of several files played one after another (a whole book)."""
    found, _ = loudness(None, timeline=False, input_args=concat_args(paths, workdir, "measure"), true_peak=False)
    return found["integrated_lufs"]


# -- ACX chapters -----------------------------------------------------------


@dataclass(frozen=True)
class RoomTone:
    head_s: float = 0.75
    tail_s: float = 2.0
    max_tail_s: float = 5.0


def acx_chapter(
    src: Path,
    dest: Path,
    gain_db: float,
    limit_db: float,
    head_silence: float,
    tail_silence: float,
    tone: RoomTone = RoomTone(),
) -> None:
    """One chapter as an ACX MP3: room tone trimmed or padded to the targets, gain, limiter, 44.1 kHz mono CBR."""
    duration = probe(src).duration_s
    start = max(0.0, head_silence - tone.head_s)
    end = duration - max(0.0, tail_silence - tone.tail_s) if tail_silence > tone.max_tail_s else duration
    filters = []
    if start > 0 or end < duration:
        filters += [f"atrim=start={start:.3f}:end={end:.3f}", "asetpts=PTS-STARTPTS"]
    delay_ms = round(max(0.0, tone.head_s - head_silence) * 1000)
    if delay_ms:
        filters.append(f"adelay=delays={delay_ms}:all=1")
    pad = max(0.0, tone.tail_s - tail_silence)
    if pad:
        filters.append(f"apad=pad_dur={pad:.3f}")
    # Resample before the limiter: upsampling after it would draw new peaks between the limited samples.
    filters += ["aformat=channel_layouts=mono", "aresample=44100", gain_chain(gain_db, limit_db)]
    with atomic_path(dest) as tmp:
        run_ffmpeg(
            "-i",
            src,
            "-vn",
            "-af",
            ",".join(filters),
            "-ac",
            "1",
            "-ar",
            "44100",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "192k",
            "-f",
            "mp3",
            tmp,
        )


# -- podcast ----------------------------------------------------------------


@dataclass(frozen=True)
class Bed:
    path: Path
    gain_db: float = -20.0  # the bed's level where nobody speaks, relative to its file
    duck_db: float = 12.0  # how much further it goes down under speech


def _loudnorm_measure(args: list[str], target: float, tp: float) -> dict:
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-nostats",
        *args,
        "-vn",
        "-af",
        f"loudnorm=I={target}:TP={tp}:LRA=11:print_format=json",
        "-f",
        "null",
        "-",
    ]
    proc = subprocess.run(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace", **child_options()
    )
    m = re.search(r"\{[^{}]*\"input_i\"[^{}]*\}", proc.stderr)
    if proc.returncode != 0 or not m:
        raise MediaError(f"loudness measurement failed: {proc.stderr.strip()[-400:]}")
    return json.loads(m.group(0))


def loudnorm_two_pass(args: list[str], target: float, tp: float) -> str:
    """The second-pass loudnorm filter for the input ``args``, from a first measuring pass."""
    m = _loudnorm_measure(args, target, tp)
    return (
        f"loudnorm=I={target}:TP={tp}:LRA=11:measured_I={m['input_i']}:measured_TP={m['input_tp']}"
        f":measured_LRA={m['input_lra']}:measured_thresh={m['input_thresh']}:offset={m['target_offset']}:linear=true"
    )


def podcast_mix(
    speech: Path,
    dest: Path,
    stereo: bool,
    intro: Path | None,
    outro: Path | None,
    bed: Bed | None,
    crossfade_s: float,
    speech_rms_db: float,
) -> None:
    """Intro, speech over a ducked music bed, outro, crossfaded; written as lossless FLAC."""
    layout = "stereo" if stereo else "mono"
    fmt = f"aresample=44100,aformat=sample_fmts=fltp:channel_layouts={layout}"
    inputs = ["-i", str(speech)]
    graph = [f"[0:a]{fmt}[speech]"]
    body = "speech"
    if bed is not None:
        length = probe(speech).duration_s
        inputs += ["-stream_loop", "-1", "-i", str(bed.path)]
        # Compression only acts above the threshold; set it so speech at its usual level
        # pulls the bed down by at least duck_db (reduction = over * (1 - 1/ratio)).
        ratio = 20.0
        over = bed.duck_db / (1 - 1 / ratio) + 3.0
        threshold = min(0.99, 10 ** ((speech_rms_db - over) / 20))
        graph += [
            "[speech]asplit=2[voice][key]",
            f"[1:a]{fmt},atrim=duration={length:.3f},volume={bed.gain_db}dB[bed]",
            f"[bed][key]sidechaincompress=threshold={threshold:.6f}:ratio={ratio}:attack=20:release=400:makeup=1[ducked]",
            "[voice][ducked]amix=inputs=2:duration=first:normalize=0[body]",
        ]
        body = "body"
    for label, clip in (("intro", intro), ("outro", outro)):
        if clip is not None:
            index = inputs.count("-i")
            inputs += ["-i", str(clip)]
            graph.append(f"[{index}:a]{fmt}[{label}]")
    if intro is not None:
        graph.append(f"[intro][{body}]acrossfade=d={crossfade_s}:c1=tri:c2=tri[withintro]")
        body = "withintro"
    if outro is not None:
        graph.append(f"[{body}][outro]acrossfade=d={crossfade_s}:c1=tri:c2=tri[withoutro]")
        body = "withoutro"
    with atomic_path(dest) as tmp:
        run_ffmpeg(*inputs, "-filter_complex", ";".join(graph), "-map", f"[{body}]", "-c:a", "flac", "-f", "flac", tmp)


def encode_episode(mix: Path, dest: Path, target: float, tp: float, stereo: bool) -> None:
    """Two-pass loudness normalisation of the mix, limited, as MP3."""
    second = loudnorm_two_pass(["-i", str(mix)], target, tp)
    with atomic_path(dest) as tmp:
        run_ffmpeg(
            "-i",
            mix,
            "-af",
            f"{second},{limiter(tp - 0.5)},aresample=44100",
            "-ac",
            2 if stereo else 1,
            "-c:a",
            "libmp3lame",
            "-b:a",
            "192k" if stereo else "128k",
            "-f",
            "mp3",
            tmp,
        )


# -- video ------------------------------------------------------------------


def _frame_rate(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 25
        return float(rate)


def video_cut(
    clips: Sequence[Path],
    dest: Path,
    track: Path | None,
    mode: str,
    target_lufs: float,
    limit_db: float,
    workdir: Path,
    subtitles: Path | None = None,
) -> None:
    """Clips in order as one H.264/AAC MP4; a track (narration, song) replaces or is mixed under their audio.

    ``subtitles`` (an SRT file) goes in as a ``mov_text`` subtitle stream, which players list as captions.
    """
    first = probe(clips[0])
    width, height = first.width or 1280, first.height or 720
    fps = _frame_rate(clips[0])
    inputs: list[str] = []
    graph: list[str] = []
    fmt = "aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo"
    for n, clip in enumerate(clips):
        info = probe(clip)
        inputs += ["-i", str(clip)]
        graph.append(
            f"[{n}:v]scale={width}:{height}:force_original_aspect_ratio=decrease,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps}[v{n}]"
        )
        if info.audio_codec:
            graph.append(f"[{n}:a]{fmt},apad,atrim=duration={info.duration_s:.3f}[a{n}]")
        else:
            graph.append(f"anullsrc=r=48000:cl=stereo,atrim=duration={info.duration_s:.3f}[a{n}]")
    joined = "".join(f"[v{n}][a{n}]" for n in range(len(clips)))
    graph.append(f"{joined}concat=n={len(clips)}:v=1:a=1[v][clipaudio]")
    audio = "clipaudio"
    if track is not None:
        inputs += ["-i", str(track)]
        total = sum(probe(c).duration_s for c in clips)
        graph.append(f"[{len(clips)}:a]{fmt},apad,atrim=duration={total:.3f}[track]")
        if mode == "replace":
            graph.append("[clipaudio]anullsink")
            audio = "track"
        else:
            graph.append("[clipaudio][track]amix=inputs=2:duration=first:normalize=0[mixed]")
            audio = "mixed"
    # First pass: the picture encoded once, the sound kept lossless for measuring.
    draft = workdir / "cut.mkv"
    run_ffmpeg(
        *inputs,
        "-filter_complex",
        ";".join(graph),
        "-map",
        "[v]",
        "-map",
        f"[{audio}]",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "20",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "flac",
        draft,
    )
    second = loudnorm_two_pass(["-i", str(draft)], target_lufs, limit_db + 0.5)
    subs: list[str | Path] = []
    if subtitles is not None:
        subs = ["-i", subtitles, "-map", "1:s", "-c:s", "mov_text", "-metadata:s:s:0", "language=eng"]
    with atomic_path(dest) as tmp:
        run_ffmpeg(
            "-i",
            draft,
            *subs[:2],
            "-map",
            "0:v",
            "-map",
            "0:a",
            *subs[2:],
            "-c:v",
            "copy",
            "-af",
            f"{second},{limiter(limit_db)},aresample=48000",
            "-c:a",
            "aac",
            "-b:a",
            "192k",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            tmp,
        )
