"""The run's verification, from the settings: which recogniser, how many takes, and what a failure does.

``verification_for(settings, check)`` gives the ``Verification`` a run uses
(None when ``MEDIAMILL_VERIFY=off``): the process-wide verifier for the
engine, its checks run on the verifier's own threads (``TakeVerifier.threads``;
or through ``check``, the flow's task), pieces checked inside engines that
read in pieces. ``unchecked`` says which stored takes were made before they
could be checked, so a run checks them now.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

from ..backends import Job, get_backend
from ..config import Settings
from ..store import Entry
from ..verify.takes import TakeCheck, verifier
from .job import TakeChecker, Verification


def verification_for(cfg: Settings, check: TakeChecker | None = None) -> Verification | None:
    if cfg.verify == "off":
        return None
    engine = verifier(cfg.verify, cfg.verify_concurrency)

    async def in_thread(job: Job, audio: Path) -> TakeCheck:
        return await asyncio.wrap_future(engine.threads.submit(engine.check, audio, expected_text(job), job.language))

    def piece(audio: Path, text: str, language: str | None = None) -> TakeCheck:
        return engine.check(audio, text, language)

    return Verification(check or in_thread, piece, cfg.verify_max_takes, cfg.verify_keep_failed)


def expected_text(job: Job) -> str:
    """What a take of ``job`` should say: its text in its lexicon's say forms."""
    return job.spoken or cast(str, getattr(job.row, "text", ""))  # a speech row's text is a str


def unchecked(verification: Verification | None, job: Job, entry: Entry) -> bool:
    """A stored take that was never checked (made before verification, or with it off): check it now."""
    return (
        verification is not None
        and "verified" not in entry.meta
        and verification.applies(job, get_backend(job.backend))
    )
