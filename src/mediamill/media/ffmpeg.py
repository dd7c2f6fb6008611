"""Find and run ffmpeg.

The binary is resolved once per process: ``MEDIAMILL_FFMPEG`` when set (used
as given, with a warning if it is older than ``MIN_MAJOR`` or lacks something
mediamill uses); else ``ffmpeg`` on PATH if it is recent enough and has every
encoder, filter and muxer in ``REQUIRED``; else the build that ships inside the
``imageio-ffmpeg`` wheel, so a machine without ffmpeg, or with an old one,
still works after ``pip install``. Passing over the one on PATH is logged
once, as a warning naming its version and the binary used instead. When both
fall short, the one on PATH is kept (with that warning).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..config import settings
from ..core.processes import child_options

log = logging.getLogger(__name__)

# ffmpeg 5.1 (Debian 12) and 4.x fail the captioned video's final pass ("Cannot select channel layout" at
# aresample); 7.0 is the oldest release the media tests have passed on.
MIN_MAJOR = 7
# What mediamill asks of ffmpeg, by ffmpeg's own listing (-encoders, -filters, -muxers).
REQUIRED = {
    "encoders": ("aac", "libmp3lame", "libopus", "flac", "pcm_s16le", "mov_text", "libx264", "mjpeg"),
    "filters": (
        "loudnorm",
        "ebur128",
        "sidechaincompress",
        "acrossfade",
        "alimiter",
        "atempo",
        "amix",
        "aresample",
        "apad",
        "adelay",
        "anullsrc",
        "atrim",
        "aformat",
        "asplit",
        "volume",
        "concat",
        "scale",
        "pad",
        "fps",
    ),
    "muxers": ("mp4", "mp3", "flac", "adts", "ogg", "wav", "null"),
}
_VERSION = re.compile(r"ffmpeg version n?(\d+)\.(\d+)(?:\.(\d+))?")


class MediaError(RuntimeError):
    """ffmpeg failed, or a media file is not what it should be."""


@dataclass(frozen=True)
class Capability:
    """What one ffmpeg binary is: its version (None when it does not say, as git builds) and what it lacks."""

    path: str
    version: tuple[int, ...] | None
    version_text: str
    missing: tuple[str, ...]

    @property
    def too_old(self) -> bool:
        return self.version is not None and self.version[0] < MIN_MAJOR

    @property
    def usable(self) -> bool:
        return not self.too_old and not self.missing

    def shortfall(self) -> str:
        problems = [f"older than {MIN_MAJOR}"] if self.too_old else []
        if self.missing:
            problems.append(f"lacks {', '.join(self.missing)}")
        return " and ".join(problems)


def _listed(exe: str, what: str) -> set[str] | None:
    """The names in ``ffmpeg -<what>`` (second column, comma lists split), or None when it could not be run."""
    try:
        proc = subprocess.run(
            [exe, "-hide_banner", f"-{what}"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=30,
            **child_options(),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    names: set[str] = set()
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            names.update(parts[1].split(","))
    return names


def capability(exe: str) -> Capability:
    """Ask ``exe`` for its version and for the encoders, filters and muxers mediamill uses."""
    try:
        proc = subprocess.run(
            [exe, "-version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=30,
            **child_options(),
        )
        first = (proc.stdout.strip().splitlines() or [""])[0]
    except (OSError, subprocess.SubprocessError):
        first = ""
    match = _VERSION.search(first)
    version = tuple(int(g) for g in match.groups() if g is not None) if match else None
    text = first.removeprefix("ffmpeg version ").split(" ")[0] or "unknown"
    missing: list[str] = []
    for what, names in REQUIRED.items():
        listed = _listed(exe, what)
        if listed is None:
            missing.append(f"-{what} (it did not run)")
            continue
        missing += [f"{name} ({what[:-1]})" for name in names if name not in listed]
    return Capability(exe, version, text, tuple(missing))


def _bundled() -> str | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:  # a wheel without a binary for this platform
        return None


_resolving = threading.Lock()


def ffmpeg_exe() -> str:
    """The ffmpeg binary to run (see the module doc), resolved on first use."""
    with _resolving:  # threads asking at once (a server's first streams) resolve, and warn, once
        return _resolve()


@lru_cache(maxsize=1)
def _resolve() -> str:
    configured = settings().ffmpeg
    if configured:
        if not (Path(configured).is_file() and os.access(configured, os.X_OK)):
            raise MediaError(f"MEDIAMILL_FFMPEG={configured} is not an executable file")
        found = capability(configured)
        if not found.usable:  # chosen on purpose: respected, but what may fail is said now
            log.warning(
                "MEDIAMILL_FFMPEG=%s (ffmpeg %s) is %s; using it as configured",
                configured,
                found.version_text,
                found.shortfall(),
            )
        return configured
    on_path = shutil.which("ffmpeg")
    if on_path:
        found = capability(on_path)
        if found.usable:
            return on_path
        bundled = _bundled()
        if bundled is not None and capability(bundled).usable:
            log.warning(
                "ffmpeg on PATH (%s, version %s) is %s; using the bundled imageio-ffmpeg build %s "
                "instead (set MEDIAMILL_FFMPEG to choose)",
                on_path,
                found.version_text,
                found.shortfall(),
                bundled,
            )
            return bundled
        log.warning(
            "ffmpeg on PATH (%s, version %s) is %s, and no better one is bundled; using it anyway",
            on_path,
            found.version_text,
            found.shortfall(),
        )
        return on_path
    bundled = _bundled()
    if bundled is None:
        raise MediaError("no ffmpeg found: install ffmpeg, or pip install imageio-ffmpeg")
    return bundled


def run_ffmpeg(*args: str | int | os.PathLike[str]) -> None:
    """Run ffmpeg quietly; on failure raise MediaError with the end of its log."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *map(str, args)]
    proc = subprocess.run(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace", **child_options()
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise MediaError(f"ffmpeg exited with {proc.returncode}: {tail or '(no message)'}")
