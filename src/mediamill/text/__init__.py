"""Text before it is spoken: prepared for an engine's reading, split into pieces it reads well, and its pace.

Nothing here knows engines, audio or Prefect.
"""

from .pace import predicted_seconds
from .reading import STYLES, prepare
from .split import Piece, sentences, split_text

__all__ = ["STYLES", "Piece", "predicted_seconds", "prepare", "sentences", "split_text"]
