"""Wiro: hosted VoxCPM speech and cloning, YuE songs and Ovi video clips.

Protocol: ``POST {base}/Run/{owner}/{model}`` starts a task (JSON, or
multipart when a file goes along) and returns its ``taskid``; ``POST
{base}/Task/Detail`` reports its status; ``Task/Cancel`` stops a queued task,
``Task/Kill`` a running one. ``task_postprocess_end`` ends a task: it succeeded
unless ``pexit`` says otherwise (Wiro's model pages show finished tasks without
``pexit`` or ``totalcost``, so an absent exit code is a success); ``task_cancel``
is the other terminal status; ``task_error`` is a log line while the task goes on.
A task that reached ``task_postprocess_end`` and succeeded is never submitted
again: output that cannot be used fails the row with the task id. A failed task
(``pexit`` other than "0") is retried as a new task only when Wiro reports it
unbilled (``totalcost`` "0" or absent, as Wiro documents for failures). Errors may come as
HTTP 200 with ``result: false`` and a code: 96 (concurrency limit: wait) and
97 (insufficient balance: stop).

Settings: ``WIRO_API_KEY``, ``WIRO_API_SECRET`` (signature auth when set,
key-only otherwise), ``WIRO_BASE_URL`` and the timing knobs in WiroSettings.

The package by concern: ``client`` (settings, signatures, the REST calls),
``protocol`` (what statuses and codes mean), ``models`` (rows as each model's
inputs), ``tasks`` (a submitted task waited for, stopped, collected) and
``backend`` (the ``wiro`` backend that ties them together).
"""

from .backend import WiroBackend
from .client import WiroClient, WiroSettings, signature

__all__ = ["WiroBackend", "WiroClient", "WiroSettings", "signature"]
