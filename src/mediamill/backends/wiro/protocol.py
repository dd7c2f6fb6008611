"""What Wiro's answers mean: task statuses, error codes, and when a task has succeeded (see the package doc)."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CANCELLED",
    "CODE_BALANCE",
    "CODE_CONCURRENCY",
    "CODE_NOT_FOUND",
    "DONE",
    "ERROR_LINE",
    "QUEUED",
    "number",
    "succeeded",
    "text",
]

QUEUED = {"task_queue", "task_accept", "task_preprocess_start", "task_preprocess_end"}
DONE, CANCELLED, ERROR_LINE = "task_postprocess_end", "task_cancel", "task_error"
CODE_CONCURRENCY, CODE_BALANCE, CODE_NOT_FOUND = 96, 97, 1


def text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def succeeded(task: dict[str, Any]) -> bool:
    """A Detail that shows a finished, successful task: ``task_postprocess_end`` and an exit code of "0" or none."""
    return task.get("status") == DONE and text(task.get("pexit")) in ("", "0")


def number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
