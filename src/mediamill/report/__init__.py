"""What a run reports: the results table (Parquet and CSV, a stable contract) and the summary.

Nothing here knows Prefect; the flows publish these as artifacts.
"""

from .results import SCHEMA, STATUSES, RowResult, read_results, write_results
from .rows import now_utc, row_result, stored_result
from .summary import production_summary, summarise, summary_markdown

__all__ = [
    "SCHEMA",
    "STATUSES",
    "RowResult",
    "now_utc",
    "production_summary",
    "read_results",
    "row_result",
    "stored_result",
    "summarise",
    "summary_markdown",
    "write_results",
]
