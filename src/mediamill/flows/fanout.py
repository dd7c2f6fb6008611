"""A flow's children on a work pool: flow runs of deployments, a bounded number unfinished at a time.

``hand_out`` starts each :class:`Child` as a flow run of its deployment, linked to the calling flow run
(``run_deployment`` as a subflow: the UI shows the parent with its children), so every worker of the
deployment's pool takes children as it has room. It keeps at most ``in_flight`` of them unfinished (an inbox
of 10,000 manifests is not 10,000 scheduled runs at once), reads their states in one call per poll, and
returns each child's final state. Each child's idempotency key is the parent run and the child's own key:
a retried parent finds the children it already started instead of starting them again.

If the parent stops before its children end (an error, Ctrl-C on ``mediamill sweep``), it sets the unfinished
ones Cancelling, which their workers act on. A parent cancelled in the UI is stopped by its worker before it
can: then the server's own cancellation service cancels the children of a cancelled run (``run_deployment``
links them to it). A parent that no worker runs (``mediamill run`` against the fleet's server) reads its own
state with its children's and stops (:class:`ParentCancelled`) when asked to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import StateType, WorkerStatus
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.runtime import flow_run
from prefect.states import State


@dataclass(frozen=True)
class Child:
    key: str  # unique among the parent's children
    deployment: str  # "flow/deployment"
    name: str  # the flow run's name
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Ended:
    child: Child
    state: str  # the final state's type: COMPLETED, FAILED, CRASHED, CANCELLED
    message: str


class ParentCancelled(Exception):
    """The flow run handing out children was asked to cancel; its unfinished children were cancelled."""


async def deployment_exists(name: str) -> bool:
    """Whether the server has the deployment ``flow/name``."""
    async with get_client() as client:
        try:
            await client.read_deployment_by_name(name)
        except ObjectNotFound:
            return False
    return True


async def pool_workers(deployment: str) -> tuple[str | None, int]:
    """The pool that runs ``deployment``, and how many of its workers are online now."""
    async with get_client() as client:
        pool = (await client.read_deployment_by_name(deployment)).work_pool_name
        if not pool:
            return None, 0
        workers = await client.read_workers_for_work_pool(work_pool_name=pool)
    return pool, sum(1 for w in workers if w.status == WorkerStatus.ONLINE)


async def hand_out(
    children: list[Child],
    in_flight: int,
    poll_s: float,
    on_poll: Callable[[], Awaitable[None]] | None = None,
    gone: Callable[[Child], bool] | None = None,
) -> list[Ended]:
    """Run ``children`` on their pools, at most ``in_flight`` unfinished at once; their ends, in their order.

    ``on_poll`` is awaited after each read of the children's states (progress). ``gone`` says whether a
    child's process is known to be dead: a child it names at two polls in a row is set Crashed (its worker
    died with it, and nothing else would end it). Raises :class:`ParentCancelled` when the calling flow run
    is cancelling."""
    parent = flow_run.id or "none"
    own = [UUID(str(flow_run.id))] if flow_run.id else []
    suspects: set[UUID] = set()
    pending = deque(children)
    running: dict[UUID, Child] = {}
    ended: dict[str, Ended] = {}
    async with get_client() as client:
        try:
            while pending or running:
                while pending and len(running) < in_flight:
                    child = pending.popleft()
                    try:
                        run = await run_deployment(  # type: ignore[misc]  # async here: prefect dispatches
                            child.deployment,
                            parameters=child.parameters,
                            flow_run_name=child.name,
                            timeout=0,
                            idempotency_key=f"{parent}:{child.key}",
                        )
                    except ObjectNotFound:
                        message = f"no deployment {child.deployment} on the server: run `prefect deploy --all`"
                        ended[child.key] = Ended(child, "FAILED", message)
                        continue
                    if run.state is not None and run.state.is_final():  # a retried parent's, already ended
                        ended[child.key] = Ended(child, run.state.type.value, run.state.message or "")
                    else:
                        running[run.id] = child
                if not running:
                    continue
                await asyncio.sleep(poll_s)
                found = await client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[*running, *own]))
                )
                for run in found:
                    if run.state is None:
                        continue
                    if run.id in own and (run.state.is_cancelling() or run.state.is_cancelled()):
                        raise ParentCancelled(f"{len(running)} children unfinished")
                    if run.state.is_final() and run.id in running:
                        child = running.pop(run.id)
                        ended[child.key] = Ended(child, run.state.type.value, run.state.message or "")
                for run_id, child in list(running.items()):
                    if gone is None or not gone(child):
                        suspects.discard(run_id)
                    elif run_id not in suspects:
                        suspects.add(run_id)
                    else:
                        message = "its process died with its machine or worker"
                        with contextlib.suppress(Exception):  # the row results say what was done either way
                            await client.set_flow_run_state(
                                run_id, State(type=StateType.CRASHED, message=message), force=True
                            )
                        ended[running.pop(run_id).key] = Ended(child, "CRASHED", message)
                if on_poll is not None:
                    await on_poll()
        finally:
            for run_id in running:  # the parent is stopping: its children stop too
                with contextlib.suppress(Exception):
                    await client.set_flow_run_state(run_id, State(type=StateType.CANCELLING), force=True)
    return [ended[c.key] for c in children]
