"""Find and run ffmpeg.

The binary is resolved once: ``MEDIAMILL_FFMPEG``, else ``ffmpeg`` on PATH,
else the build that ships inside the ``imageio-ffmpeg`` wheel, so a machine
without ffmpeg still works after ``pip install``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from ..core.processes import child_options


class MediaError(RuntimeError):
    """ffmpeg failed, or a media file is not what it should be."""


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    configured = os.environ.get("MEDIAMILL_FFMPEG")
    if configured:
        if not (Path(configured).is_file() and os.access(configured, os.X_OK)):
            raise MediaError(f"MEDIAMILL_FFMPEG={configured} is not an executable file")
        return configured
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg
    except ImportError:
        raise MediaError("no ffmpeg found: install ffmpeg, or pip install imageio-ffmpeg") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(*args: str | os.PathLike[str]) -> None:
    """Run ffmpeg quietly; on failure raise MediaError with the end of its log."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *map(str, args)]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace",
                            **child_options())
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise MediaError(f"ffmpeg exited with {proc.returncode}: {tail or '(no message)'}")
