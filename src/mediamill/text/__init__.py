"""Text before it is spoken: splitting into pieces an engine reads well, and the pace of reading.

Nothing here knows engines, audio or Prefect.
"""

from .pace import predicted_seconds
from .split import Piece, sentences, split_text

__all__ = ["Piece", "predicted_seconds", "sentences", "split_text"]
