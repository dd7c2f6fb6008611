"""``mediamill serve``: local speech engines behind an OpenAI-style speech API.

``create_app`` builds the FastAPI app over an engine (``engines``: VoxCPM's
replicas or batched engine, or Piper); routes, the key guard, request rules and encoding live
in their own modules.
"""

from .app import create_app
from .engines import BatchSpeechEngine, Cancelled, PiperEngine, RequestProblem, Speech, VoxcpmEngine, make_engine
from .settings import ServeSettings, SpeechRequest

__all__ = [
    "BatchSpeechEngine",
    "Cancelled",
    "PiperEngine",
    "RequestProblem",
    "ServeSettings",
    "Speech",
    "SpeechRequest",
    "VoxcpmEngine",
    "create_app",
    "make_engine",
]
