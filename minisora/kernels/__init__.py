"""The hand-written fused attention (lesson 10): `tiled.py`, FlashAttention's algorithm in plain PyTorch (runs
anywhere, the version to read first), and `triton_attention.py`, the same algorithm as one fused GPU kernel.

`flash_attention` is the attention module's "flash" backend: the Triton kernel for CUDA tensors when triton is
installed, the tiled PyTorch version otherwise.
"""
import importlib.util
from typing import Optional

import torch

from .tiled import tiled_attention


TRITON_AVAILABLE = importlib.util.find_spec("triton") is not None  # looked up once, not on every attention call


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V without the N x N matrix: the Triton kernel on a GPU, the tiled loops elsewhere."""
    if q.is_cuda and TRITON_AVAILABLE:
        from .triton_attention import triton_attention

        return triton_attention(q, k, v, key_padding_mask)
    return tiled_attention(q, k, v, key_padding_mask)
