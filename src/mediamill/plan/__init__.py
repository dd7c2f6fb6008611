"""Planning: a manifest's rows become jobs (backend, engine spec, content key) and the book's chapters.

``validate`` (load and plan) is the single place a manifest is judged
runnable; it raises ``ManifestError`` with every problem at once.
"""

from .keys import KEY_VERSION, content_key
from .plan import Chapter, Plan, Segment, make_plan, validate

__all__ = ["KEY_VERSION", "Chapter", "Plan", "Segment", "content_key", "make_plan", "validate"]
