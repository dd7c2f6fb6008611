"""The leaf every stage may use: atomic files, content hashes, safe ids, secret redaction, progress events,
waits between tries.

Nothing here imports any other part of mediamill.
"""

from .files import (
    atomic_path,
    commit_file,
    fsync_path,
    partial_name,
    scratch_dir,
    sweep_partials,
    sweep_scratch,
    write_bytes_atomic,
    write_json_atomic,
)
from .hashing import file_digest
from .ids import check_safe_id, slug
from .money import exact_sum
from .redact import error_line, redact
from .waits import backoff, doubling, retry_after

__all__ = [
    "atomic_path",
    "backoff",
    "check_safe_id",
    "commit_file",
    "doubling",
    "error_line",
    "exact_sum",
    "file_digest",
    "fsync_path",
    "partial_name",
    "redact",
    "retry_after",
    "scratch_dir",
    "slug",
    "sweep_partials",
    "sweep_scratch",
    "write_bytes_atomic",
    "write_json_atomic",
]
