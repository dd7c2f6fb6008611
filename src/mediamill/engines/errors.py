"""The errors an engine raises, below both the pipeline's backends and the speech server that catch them.

``BackendError`` is a generation that failed and may be retried;
``PermanentError`` one that retrying cannot help (bad input, no credit, a
revoked key); ``NotInstalledError`` an engine whose optional parts are missing.
"""

from __future__ import annotations


class BackendError(Exception):
    """A generation that failed; retried unless ``retriable`` is False."""

    retriable: bool = True


class PermanentError(BackendError):
    """Retrying cannot help (bad input, no credit, revoked key): fail the row at once."""

    retriable = False


class NotInstalledError(PermanentError):
    """The engine's optional dependencies are missing."""
