"""Lesson 07 exercises: patches, positions and attention (ViT, U-ViT). Check with `pytest -m lesson07 --impl=exercises`."""
from typing import Optional, Tuple

import torch

REFERENCE_MODULES = ("minisora.models.patches", "minisora.models.embeddings", "minisora.models.attention")


def patchify(video: torch.Tensor, patch_size: Tuple[int, int, int]) -> torch.Tensor:
    """Lesson 07: (B, C, T, H, W) -> (B, N, C * pt * ph * pw), tokens in (t, h, w) order, values in (c, pt, ph, pw)
    order; raise ValueError when a side is not divisible by its patch size."""
    raise NotImplementedError("Lesson 07: cut a video into spacetime patches (ViT, Section 3.1)")


def unpatchify(tokens: torch.Tensor, patch_size: Tuple[int, int, int], grid: Tuple[int, int, int]) -> torch.Tensor:
    """Lesson 07: (B, N, C * pt * ph * pw) -> (B, C, T, H, W) for the token grid (T', H', W'), the inverse of patchify."""
    raise NotImplementedError("Lesson 07: put the patches back in place")


def sincos_position_embedding(grid: Tuple[int, int, int], dim: int, time_dim: int = 0) -> torch.Tensor:
    """Lesson 07: fixed sin-cos positions of a (T, H, W) grid, (T * H * W, dim): [frame (time_dim channels) |
    row ((dim - time_dim) / 2) | column ((dim - time_dim) / 2)], each the sinusoidal_embedding of its index."""
    raise NotImplementedError("Lesson 07: the 2D/3D sin-cos positional embedding of ViT/MAE/DiT")


def attention_math(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Lesson 07, Eq. 1 of Vaswani et al. 2017: softmax(Q K^T / sqrt(d)) V on (B, heads, N, d); keys where
    key_padding_mask (B, N_keys) is False get no attention."""
    raise NotImplementedError("Lesson 07: scaled dot-product attention, written out")
