"""Backend lookup by name.

Built-in engines and plug-ins register under the ``mediamill.backends`` entry
point group; a ``package.module:Class`` spec also works, for backends that
live in a user's own code. One instance per name per process, so engines that
load models do it once, not per row.
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points

from .base import Backend, BackendError, Generated, Job, JobSpec, NotInstalledError, PermanentError, ThreadedBackend

__all__ = [
    "Backend",
    "BackendError",
    "Generated",
    "Job",
    "JobSpec",
    "NotInstalledError",
    "PermanentError",
    "ThreadedBackend",
    "UnknownBackendError",
    "available",
    "forget",
    "get_backend",
]

_instances: dict[str, Backend] = {}
_lock = threading.Lock()


class UnknownBackendError(LookupError):
    pass


def available() -> list[str]:
    return sorted(ep.name for ep in entry_points(group="mediamill.backends"))


def _load_class(name: str) -> type[Backend]:
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise UnknownBackendError(f"cannot load backend '{name}': {exc}") from None
    for ep in entry_points(group="mediamill.backends", name=name):
        return ep.load()
    raise UnknownBackendError(f"unknown backend '{name}' (available: {', '.join(available())})")


def get_backend(name: str) -> Backend:
    """The process-wide instance of a backend; raises UnknownBackendError."""
    with _lock:
        backend = _instances.get(name)
        if backend is None:
            backend = _instances[name] = _load_class(name)()
        return backend


def forget(*names: str) -> None:
    """Let go of these backends' process-wide instances, so the next ``get_backend`` makes each anew with the
    environment as it is then (its settings, clients, credit breaker, upload memory)."""
    with _lock:
        for name in names:
            _instances.pop(name, None)
