"""In-process progress events, so a terminal can draw a bar while a flow runs.

The flow emits; whoever called it (the CLI) listens. Nothing here knows Prefect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Listener = Callable[[str, dict[str, Any]], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> None:
    _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def emit(event: str, **data: Any) -> None:
    for listener in list(_listeners):
        listener(event, data)
