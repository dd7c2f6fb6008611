"""The batched VoxCPM engine: nano-vllm-voxcpm's server pools fed with every piece of every row in flight.

``settings`` decides, without a GPU, which engine runs (``chosen_engine``:
``VOXCPM_ENGINE``), what content keys record (``engine_identity``) and how many
rows it holds (``engine_capacity``); ``engine`` runs the server pools (one per
GPU and served step count, or the CPU ``standin`` with the same async
interface); ``reading`` reads a row's pieces all at once with the duration
check, retakes and checks by ear; ``meter`` shares GPU time among the
requests in flight; ``models`` loads the checkpoint, normaliser and denoiser.
"""

from .engine import BatchEngine, BatchTake, TakeRequest, get_engine
from .models import denoiser, model_folder, text_normalizer
from .reading import BatchVoice, WavSink, piece_request, read_row, requests_of
from .settings import (
    chosen_engine,
    engine_capacity,
    engine_identity,
    engine_missing,
    served_timesteps,
)

__all__ = [
    "BatchEngine",
    "BatchTake",
    "BatchVoice",
    "TakeRequest",
    "WavSink",
    "chosen_engine",
    "denoiser",
    "engine_capacity",
    "engine_identity",
    "engine_missing",
    "get_engine",
    "model_folder",
    "piece_request",
    "read_row",
    "requests_of",
    "served_timesteps",
    "text_normalizer",
]
