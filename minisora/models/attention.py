"""Multi-head attention with selectable backends (Vaswani et al. 2017, Section 3.2).

A backend is a function `(q, k, v, key_padding_mask) -> out` on (B, heads, N, head_dim) tensors:
  "math"  the formula written out: it materialises the N x N attention matrix (the teaching version);
  "sdpa"  torch.nn.functional.scaled_dot_product_attention (fused kernels where PyTorch has them);
  "flash" the hand-written FlashAttention of `minisora.kernels` (the Triton kernel on a GPU, tiled PyTorch elsewhere).
Other functions can be added with `register_attention_backend`.
`key_padding_mask` (B, N_keys) is True for the keys to attend to (False marks padding).
"""
from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..kernels import flash_attention
from .embeddings import apply_rotary


def attention_math(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V, Vaswani et al. 2017 Eq. 1, with the softmax in at least float32."""
    # S = Q K^T / sqrt(d)                                                    (B, heads, N_q, N_k)
    scores = (q @ k.transpose(-2, -1)).to(torch.promote_types(q.dtype, torch.float32)) * q.shape[-1] ** -0.5
    if key_padding_mask is not None:
        scores = scores.masked_fill(~key_padding_mask[:, None, None, :], float("-inf"))
    # P = softmax(S) row by row;  O = P V
    return scores.softmax(dim=-1).to(v.dtype) @ v


def attention_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """PyTorch's fused scaled_dot_product_attention: the same numbers as `attention_math`."""
    mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


ATTENTION_BACKENDS: Dict[str, Callable] = {"math": attention_math, "sdpa": attention_sdpa, "flash": flash_attention}


def register_attention_backend(name: str, function: Callable) -> None:
    """Make `function(q, k, v, key_padding_mask)` selectable as attention backend `name`."""
    ATTENTION_BACKENDS[name] = function


def get_attention_backend(name: str) -> Callable:
    if name not in ATTENTION_BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; choose one of {sorted(ATTENTION_BACKENDS)}")
    return ATTENTION_BACKENDS[name]


class Attention(nn.Module):
    """Multi-head attention: self-attention on x (B, N, D), or cross-attention from x to a context (B, M, D_context)."""

    def __init__(self, dim: int, heads: int, backend: str = "sdpa", context_dim: Optional[int] = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by the number of heads {heads}")
        get_attention_backend(backend)
        self.heads, self.backend = heads, backend
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(context_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None,
                key_padding_mask: Optional[torch.Tensor] = None,
                rotary_angles: Optional[torch.Tensor] = None,
                sequence_attention: Optional[Callable] = None) -> torch.Tensor:
        """`rotary_angles` (N, D / heads / 2), for self-attention: turn queries and keys by their tokens' positions
        (`embeddings.rotary_angles`) before the dot products. `sequence_attention` replaces the backend with one
        whose keys are every process's (`parallel.sequence.SequenceSharding.attention`): x is this process's
        share of the sequence."""
        batch, tokens, dim = x.shape
        source = x if context is None else context

        def split_heads(values):  # (B, N, D) -> (B, heads, N, D / heads)
            return values.reshape(batch, values.shape[1], self.heads, dim // self.heads).transpose(1, 2)

        key, value = self.key_value(source).chunk(2, dim=-1)
        query, key = split_heads(self.query(x)), split_heads(key)  # (B, heads, N, D / heads)
        if rotary_angles is not None:
            query, key = apply_rotary(query, rotary_angles), apply_rotary(key, rotary_angles)
        attention = sequence_attention or get_attention_backend(self.backend)
        out = attention(query, key, split_heads(value), key_padding_mask)
        return self.out(out.transpose(1, 2).reshape(batch, tokens, dim))
