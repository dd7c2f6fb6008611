"""A row's speed, for backends that leave it to the pipeline: the generated take re-timed, its pitch kept.

``retime`` runs between a backend's work and the measuring of its take, so
the store, the results table and the QC flags all see the take the row asked
for. The re-timed file is written beside the backend's, in the job's scratch
folder, and takes its place.
"""

from __future__ import annotations

import anyio

from ..backends import Generated, Job
from ..media.tempo import change_tempo


async def retime(job: Job, generated: Generated) -> None:
    """Change the tempo of the generated take by the job's ``spec.tempo``; nothing when it has none."""
    tempo = job.spec.tempo
    if tempo is None:
        return
    made = generated.path
    dest = made.with_name(f"{made.stem}-tempo{made.suffix}")
    generated.path = await anyio.to_thread.run_sync(change_tempo, made, dest, tempo)
