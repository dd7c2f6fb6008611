"""A row's speed, for backends that leave it to the pipeline: the generated take re-timed, its pitch kept.

``retime`` runs between a backend's work and the measuring of its take, so
the store, the results table and the QC flags all see the take the row asked
for. The re-timed file is written beside the backend's, in the job's scratch
folder, in the same container where ffmpeg can write it, and takes its place.
"""

from __future__ import annotations

import anyio

from ..backends import Generated, Job
from ..media.tempo import change_tempo

# Containers ffmpeg can write again by name; a take in anything else (a download named .bin) becomes WAV.
WRITABLE = {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus"}


async def retime(job: Job, generated: Generated) -> None:
    """Change the tempo of the generated take by the job's ``spec.tempo``; nothing when it has none."""
    tempo = job.spec.tempo
    if tempo is None:
        return
    made = generated.path
    suffix = made.suffix.lower() if made.suffix.lower() in WRITABLE else ".wav"
    dest = made.with_name(f"{made.stem}-tempo{suffix}")
    generated.path = await anyio.to_thread.run_sync(change_tempo, made, dest, tempo)
