"""Generation: jobs into the store, in batches under per-backend limits, with retries and claims.

The stage's face: ``open_run`` and ``ProductionRun`` (a run's plan, store and
results), ``make_batches`` and ``run_batch`` (rows in turn, each key under its
claim), ``run_lanes`` (batches fanned out under each backend's slots) and the
limits themselves; ``shards`` splits one production's rows over several
runs of a fleet. Nothing here knows Prefect: the flows pass in how a batch
runs and where server-side slots come from.
"""

from .batches import RowOutcome, attempt_row, batch_label, make_batches, retry_delay, run_batch
from .job import Outcome, TakeChecker, TakeFailed, Verification, generate_job, link_output
from .lanes import Turn, run_lanes
from .limits import (
    LEASE_S,
    TURN_S,
    LeaseApi,
    LeasedSlots,
    LimitMissing,
    LimitTooLow,
    Slots,
    SlotUnavailable,
    limit_name,
    local_slots,
    wanted_limits,
)
from .run import ProductionRun, open_run
from .shards import ShardLog, ShardReader, own_groups, shard_folder, shard_gone
from .verification import expected_text, unchecked, verification_for

__all__ = [
    "LEASE_S",
    "TURN_S",
    "LeaseApi",
    "LeasedSlots",
    "LimitMissing",
    "LimitTooLow",
    "Outcome",
    "ProductionRun",
    "RowOutcome",
    "ShardLog",
    "ShardReader",
    "SlotUnavailable",
    "Slots",
    "TakeChecker",
    "TakeFailed",
    "Turn",
    "Verification",
    "attempt_row",
    "batch_label",
    "expected_text",
    "generate_job",
    "limit_name",
    "link_output",
    "local_slots",
    "make_batches",
    "open_run",
    "own_groups",
    "retry_delay",
    "run_batch",
    "run_lanes",
    "shard_folder",
    "shard_gone",
    "unchecked",
    "verification_for",
    "wanted_limits",
]
