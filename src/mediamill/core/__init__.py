"""The leaf every stage may use: atomic files, content hashes, safe ids, secret redaction, progress events.

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

__all__ = [
    "atomic_path",
    "check_safe_id",
    "commit_file",
    "error_line",
    "exact_sum",
    "file_digest",
    "fsync_path",
    "partial_name",
    "redact",
    "scratch_dir",
    "slug",
    "sweep_partials",
    "sweep_scratch",
    "write_bytes_atomic",
    "write_json_atomic",
]
