"""A Wiro task's life after its submission: waiting for its end, stopping it, collecting its output.

The journal (``store.Journal``) holds the task id from before the first wait;
it is cleared only on an end Wiro reports, so a task is never paid for twice
(see the package doc).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ...core.waits import backoff
from ...store import Journal
from ..base import PermanentError
from ..hosted import ServiceError, is_http_url, stopping
from .client import ApiError, WiroClient, WiroError, shown
from .protocol import CANCELLED, CODE_NOT_FOUND, DONE, ERROR_LINE, succeeded

__all__ = ["pick_output", "settle_after_stop", "stop", "wait"]

NOT_FOUND_GRACE_S = 30.0  # how long "There is no task yet." must persist before a task counts as gone
SETTLE_CHECKS = 6
SETTLE_INTERVAL_S = 0.5


async def settle_after_stop(client: WiroClient, record: dict[str, Any], journal: Journal) -> dict[str, Any] | None:
    """After asking Wiro to stop a task: forget it only if Wiro says it ended unpaid.

    Returns the task's Detail if it finished successfully after all (collect it).
    """
    # A stop takes a moment to show in Detail: look a few times before leaving it to the next run.
    for attempt in range(SETTLE_CHECKS):
        try:
            task = await client.detail(record["task_id"], record.get("token", ""))
        except (ApiError, ServiceError):
            return None  # unknown: keep the journal, the next run will look again
        if task.get("status") in (CANCELLED, DONE) or attempt == SETTLE_CHECKS - 1:
            break
        await asyncio.sleep(SETTLE_INTERVAL_S)
    if task.get("status") == CANCELLED:
        journal.clear()
    elif succeeded(task):
        return task
    return None


async def wait(client: WiroClient, record: dict[str, Any], journal: Journal) -> dict[str, Any]:
    """Poll until the task ends; return its last Detail.

    Transient failures are retried here. The journal is cleared only on an end
    Wiro reports; any other way out keeps it, so the task is never paid twice.
    """
    settings = client.settings
    waits = backoff(settings.poll_initial_s, settings.poll_max_s)
    failures = 0
    missing_since: float | None = None
    error_since: float | None = None
    while True:
        try:
            task = await client.detail(record["task_id"], record.get("token", ""))
            failures, missing_since = 0, None
        except ApiError as exc:
            if exc.code == CODE_NOT_FOUND:
                # "There is no task yet" can be a moment's lag; only a lasting answer means it is gone.
                missing_since = missing_since or time.monotonic()
                if time.monotonic() - missing_since > NOT_FOUND_GRACE_S:
                    journal.clear()
                    raise PermanentError(
                        f"wiro does not know task {record['task_id']}: rerun to submit the row again"
                    ) from None
            else:
                failures += 1  # code 0 covers server errors too
                if failures >= settings.poll_failures:
                    raise WiroError(f"wiro Task/Detail: {exc.message}") from None
            await asyncio.sleep(next(waits))
            continue
        except ServiceError:  # not sent, no answer, a garbled one, a 5xx: look again
            failures += 1
            if failures >= settings.poll_failures:
                raise
            await asyncio.sleep(next(waits))
            continue
        status = str(task.get("status", ""))
        record["status"] = status
        if status in (DONE, CANCELLED):
            return task
        if status == ERROR_LINE:
            # A log line while the task goes on, unless the task has visibly ended.
            if task.get("pexit") not in (None, "") or task.get("endtime") not in (None, ""):
                return task
            error_since = error_since or time.monotonic()
            if time.monotonic() - error_since > settings.error_grace_s:
                await stop(client, record, journal, why="showed only task_error")
        else:
            error_since = None
        if time.time() - record["submitted_at"] > settings.task_timeout_s:
            await stop(client, record, journal, why=f"did not finish within {settings.task_timeout_s:.0f} s")
        await asyncio.sleep(next(waits))


async def stop(client: WiroClient, record: dict[str, Any], journal: Journal, why: str) -> None:
    """Stop a task that will not end well; fail the row unless it finished meanwhile."""
    async with stopping():
        await client.stop(record["task_id"], record.get("token", ""), record.get("status", ""))
        finished = await settle_after_stop(client, record, journal)
    if finished is None:
        raise PermanentError(f"wiro task {record['task_id']} {why}; stopped it")


def pick_output(task: dict[str, Any], wanted: str) -> dict[str, Any]:
    listed = task.get("outputs")
    outputs = (
        [o for o in listed if isinstance(o, dict) and is_http_url(o.get("url"))] if isinstance(listed, list) else []
    )
    if not outputs:
        # Finished, so possibly paid for: the row's retries look at the same task again (the answer may
        # have been garbled); it is never submitted again on a guess, and its note stays for the next run.
        raise WiroError(
            f"wiro task {task.get('id')} finished without a usable output URL (outputs: {shown(listed)}); "
            "it may have been paid for, so it is not submitted again: check Wiro, then remove its note "
            "under .store/journal/ to submit the row anew"
        )
    for output in outputs:
        if str(output.get("contenttype", "")).startswith(wanted):
            return output
    return outputs[0]
