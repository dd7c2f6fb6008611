"""What a run shows in the Prefect UI: the progress artifact, the results table, the summary and the QC report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)

from ..deliver import qc_markdown
from ..report import RowResult, summary_markdown

RESULT_COLUMNS = ("id", "kind", "backend", "status", "attempts", "audio_s", "cost_usd", "verified", "retakes", "error")


class Progress:
    """The Prefect progress artifact, updated at most every couple of seconds."""

    def __init__(self, key: str, total: int, done: int):
        self.total, self.done, self.last = max(total, 1), done, 0.0
        self.id: Any = None
        self.key = key

    async def start(self) -> None:
        self.id = await acreate_progress_artifact(progress=self.percent, key=self.key, description="rows finished")

    @property
    def percent(self) -> float:
        return round(100.0 * self.done / self.total, 1)

    async def advance(self) -> None:
        await self.reach(self.done + 1)

    async def reach(self, done: int) -> None:
        """``done`` rows finished (by this run, or by its shards on other machines)."""
        moved, self.done = done != self.done, done
        now = time.monotonic()
        if moved and (now - self.last > 2.0 or self.done >= self.total):
            self.last = now
            await aupdate_progress_artifact(artifact_id=self.id, progress=self.percent)


async def publish(
    key_prefix: str, name: str, results: list[RowResult], summary: dict[str, Any], qc_file: Path | None
) -> None:
    """The results table, the summary and (when something was delivered) the QC report, as artifacts."""
    await acreate_table_artifact(
        key=f"{key_prefix}-results",
        table=[{k: getattr(r, k) for k in RESULT_COLUMNS} for r in results],
        description=f"Rows of {name}",
    )
    await acreate_markdown_artifact(key=f"{key_prefix}-summary", markdown=summary_markdown(name, summary))
    if qc_file is not None:
        qc_doc = json.loads(qc_file.read_text())
        await acreate_markdown_artifact(key=f"{key_prefix}-qc", markdown=qc_markdown(qc_doc, images=False))
