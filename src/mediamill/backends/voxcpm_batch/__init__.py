"""The batched VoxCPM engine: nano-vllm-voxcpm's server pools fed with every piece of every row in flight.

``settings`` decides, without a GPU, which engine runs (``chosen_engine``:
``VOXCPM_ENGINE``), what content keys record (``engine_identity``) and how many
rows it holds (``engine_capacity``); ``engine`` runs the server pools (one per
GPU and served step count, or the CPU ``standin`` with the same async
interface); ``reading`` reads a row's pieces all at once with the duration
check, retakes and checks by ear; ``meter`` shares GPU time among the
requests in flight; ``rows`` is what the ``voxcpm`` backend hands its rows to.
"""

from .engine import BatchEngine, BatchTake, TakeRequest, get_engine
from .reading import BatchVoice, piece_request, read_row
from .rows import batch_problems, generate_batched, model_folder
from .settings import (
    BatchSettings,
    chosen_engine,
    current_settings,
    engine_capacity,
    engine_identity,
    engine_missing,
    served_timesteps,
)

__all__ = [
    "BatchEngine",
    "BatchSettings",
    "BatchTake",
    "BatchVoice",
    "TakeRequest",
    "batch_problems",
    "chosen_engine",
    "current_settings",
    "engine_capacity",
    "engine_identity",
    "engine_missing",
    "generate_batched",
    "get_engine",
    "model_folder",
    "piece_request",
    "read_row",
    "served_timesteps",
]
