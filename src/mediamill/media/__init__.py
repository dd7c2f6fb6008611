"""Everything that touches media files: finding and running ffmpeg, probing, stitching, mastering, measuring.

Knows ffmpeg (and PyAV, FFmpeg's libraries) and nothing of backends,
manifests or Prefect; it writes files atomically through ``mediamill.core``.
"""

from .ffmpeg import MediaError, ffmpeg_exe, run_ffmpeg
from .probe import ChapterMark, MediaInfo, probe

__all__ = ["ChapterMark", "MediaError", "MediaInfo", "ffmpeg_exe", "probe", "run_ffmpeg"]
