"""One production run as plain data: its plan, store and folders, and every row's result as it arrives.

The stages of ``produce`` that are not Prefect's: open the run (validate
the manifest, open the store), record what the store already has, record
each outcome as lanes finish rows (linking ``segments/<id>``), and give the
results in manifest order. Nothing here knows Prefect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..backends import Job
from ..config import settings
from ..core.files import sweep_partials
from ..plan import Plan, validate
from ..report import RowResult, row_result, stored_result
from ..store import Entry, Store
from .batches import RowOutcome
from .job import link_output


@dataclass
class ProductionRun:
    plan: Plan
    store: Store
    root: Path  # the outputs root; this production's folder is ``root / plan.name``
    results: dict[str, RowResult] = field(default_factory=dict)  # by row id
    entries: dict[str, Entry] = field(default_factory=dict)  # by content key

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def out_dir(self) -> Path:
        return self.root / self.plan.name

    @property
    def segments(self) -> Path:
        return self.out_dir / "segments"

    def record_stored(self, unchecked: Callable[[Job, Entry], bool] | None = None) -> list[list[Job]]:
        """Result rows for every job the store already has; the rest, grouped by content key, to generate.

        Stored takes that ``unchecked`` says were never checked go with the rest, to be checked (only).
        """
        waiting: dict[str, list[Job]] = {}  # key -> rows sharing it, generated once
        for job in self.plan.jobs:
            entry = self.store.get(job.key)
            if entry is not None and not (unchecked and unchecked(job, entry)):
                self.entries[job.key] = entry
                self.results[job.id] = stored_result(job, entry, "cached", self._link(entry, job), 0, 0.0)
            else:
                waiting.setdefault(job.key, []).append(job)
        return list(waiting.values())

    def record(self, outcome: RowOutcome) -> list[RowResult]:
        """The result rows of one outcome: the first row of a key generated it, rows sharing it are cached."""
        first = outcome.jobs[0]
        if outcome.entry is not None:
            self.entries[first.key] = outcome.entry
            for job in outcome.jobs:
                fresh = outcome.fresh and job is first
                self.results[job.id] = stored_result(
                    job,
                    outcome.entry,
                    "done" if fresh else "cached",
                    self._link(outcome.entry, job),
                    outcome.attempts if fresh else 0,
                    outcome.elapsed_s,
                    outcome.retakes,
                )
        else:
            for i, job in enumerate(outcome.jobs):
                # What the failed takes cost belongs to the row that made them (rows sharing its key made nothing).
                spent = (
                    {
                        "cost_usd": outcome.cost_usd,
                        "compute_s": outcome.compute_s,
                        "retakes": outcome.retakes,
                        "verified": outcome.verified,
                    }
                    if i == 0
                    else {"verified": outcome.verified}
                )
                self.results[job.id] = row_result(
                    job,
                    "failed",
                    attempts=outcome.attempts,
                    error=outcome.error,
                    **{k: v for k, v in spent.items() if v is not None},
                )
        return [self.results[job.id] for job in outcome.jobs]

    def adopt(self, groups: list[list[Job]], made: dict[str, RowResult]) -> list[list[Job]]:
        """Take the rows of ``groups`` that other runs of this production (its shards) made or failed.

        ``made`` is their result rows by id. A row now in the store keeps the result of the shard that made
        it (what it cost, how long it took), else it is ``cached``; a row a shard failed stays failed (it is
        not tried again here: its takes may have been paid for). Returns the groups nobody finished."""
        left = []
        for jobs in groups:
            entry = self.store.get(jobs[0].key)
            if entry is not None:
                self.entries[jobs[0].key] = entry
                for job in jobs:
                    got = made.get(job.id)
                    if got is None or got.status != "done":
                        got = stored_result(job, entry, "cached", self._link(entry, job), 0, 0.0)
                    self.results[job.id] = got
            elif all(made.get(j.id) is not None for j in jobs):
                for job in jobs:
                    self.results[job.id] = made[job.id]
            else:
                left.append(jobs)
        return left

    def unreached(self, groups: list[list[Job]], message: str) -> list[RowOutcome]:
        """Outcomes for the rows of ``groups`` that have no result yet (no slot, a crashed task, a cancel)."""
        return [RowOutcome(jobs, attempts=0, error=message) for jobs in groups if jobs[0].id not in self.results]

    def ordered(self) -> list[RowResult]:
        """Every row's result in manifest order; a row never reached failed."""
        return [
            self.results.get(j.id) or row_result(j, "failed", error="cancelled before it finished")
            for j in self.plan.jobs
        ]

    def sweep(self) -> int:
        """Remove what killed runs left of this production: scratch folders and temporary files no live run holds."""
        removed = self.store.sweep_tmp() + self.store.sweep_partials(j.key for j in self.plan.jobs)
        return removed + len(sweep_partials(self.out_dir))

    def _link(self, entry: Entry, job: Job) -> Path:
        return link_output(entry, self.segments / job.id).relative_to(self.out_dir)


def open_run(manifest: str | Path, backend: str | None, outputs: str | Path | None) -> ProductionRun:
    """Validate the manifest (raises ManifestError) and open the store; what killed runs left is swept."""
    root = Path(outputs) if outputs else settings().outputs
    plan = validate(manifest, backend)
    store = Store(root)
    run = ProductionRun(plan, store, root)
    run.sweep()
    return run
