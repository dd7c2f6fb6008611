"""``import flash_attn`` for processes spawned after ``flash_attn_sdpa.install()``.

This folder goes on ``sys.path`` only when the real flash-attn is missing; it
re-exports the PyTorch stand-in so nano-vllm's worker processes import it too.
"""

from mediamill.engines.voxcpm.flash_attn_sdpa import STANDIN_VERSION as __version__
from mediamill.engines.voxcpm.flash_attn_sdpa import flash_attn_func, flash_attn_varlen_func, flash_attn_with_kvcache

MEDIAMILL_STANDIN = True
__all__ = ["__version__", "flash_attn_func", "flash_attn_varlen_func", "flash_attn_with_kvcache", "MEDIAMILL_STANDIN"]

__all__ = ["flash_attn_func", "flash_attn_varlen_func", "flash_attn_with_kvcache"]
