"""Engines: the models that turn text into speech, under the pipeline's backends and the speech server.

An engine knows its model and how to read a text with it (``reading``: pieces,
length checks, the seed of every retake, checks by ear passed in as a
function) and nothing of rows, manifests, Prefect or HTTP. ``voxcpm`` is
VoxCPM on this machine: its replicas and the batched engine. ``errors`` are
the exceptions engines raise and both of their callers catch.
"""

from .errors import BackendError, NotInstalledError, PermanentError

__all__ = ["BackendError", "NotInstalledError", "PermanentError"]
