"""Delivery: mastering for each profile, measuring what was delivered, and the QC report.

``deliver`` masters and measures every profile a manifest (or the run) asks
for and writes ``qc.json`` and ``qc.md``; a profile whose inputs did not
change is not redone.
"""

from .acx import deliver_acx
from .audiobook import deliver_audiobook
from .base import DeliveredFile, Delivery, Production
from .podcast import deliver_podcast
from .qc import qc_markdown, write_qc
from .run import RUNNERS, deliver
from .video import deliver_video

__all__ = [
    "RUNNERS",
    "DeliveredFile",
    "Delivery",
    "Production",
    "deliver",
    "deliver_acx",
    "deliver_audiobook",
    "deliver_podcast",
    "deliver_video",
    "qc_markdown",
    "write_qc",
]
