"""Embeddings: scalars (timesteps, noise levels), class labels and token positions as vectors a network can use."""
import math
from typing import Optional, Tuple

import torch
from torch import nn

from ..diffusion.guidance import drop_condition


def sinusoidal_embedding(values: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """The Transformer's sinusoidal encoding (Vaswani et al. 2017, Section 3.5) of one scalar per row, as DDPM embeds
    its timestep and ViT/DiT their fixed positions: (N,) -> (N, dim) float32, [cos(v w_i), sin(v w_i)] with
    w_i = max_period^(-i / (dim / 2)), computed in float64."""
    if dim % 2:
        raise ValueError(f"sinusoidal_embedding needs an even dim, got {dim}")
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64, device=values.device) / half)
    angles = values.to(torch.float64)[:, None] * frequencies[None]  # (N, half)
    return torch.cat([angles.cos(), angles.sin()], dim=1).float()  # (N, dim)


def sincos_position_embedding(grid: Tuple[int, int, int], dim: int, time_dim: int = 0) -> torch.Tensor:
    """Fixed 3D sin-cos positional embedding of a (T, H, W) token grid, ordered (t, h, w) like `patches.patchify`:
    (T * H * W, dim). `time_dim` channels encode the frame, the rest are split evenly between row and column
    (with time_dim = 0 it is the 2D embedding of ViT/MAE/DiT, the same for every frame)."""
    spatial = dim - time_dim
    if time_dim % 2 or spatial % 4 or spatial <= 0:
        raise ValueError(f"sincos_position_embedding needs an even time_dim ({time_dim}) and dim - time_dim "
                         f"({spatial}) a positive multiple of 4")
    frames, height, width = grid
    t, h, w = torch.meshgrid(torch.arange(frames), torch.arange(height), torch.arange(width), indexing="ij")
    parts = [sinusoidal_embedding(h.flatten(), spatial // 2), sinusoidal_embedding(w.flatten(), spatial // 2)]
    if time_dim:
        parts.insert(0, sinusoidal_embedding(t.flatten(), time_dim))
    return torch.cat(parts, dim=1)  # (N, dim)


class TimestepEmbedding(nn.Module):
    """A scalar per sample (timestep or noise label) -> (B, hidden): sinusoidal features, then an MLP (DiT, Section 3.2).
    `scale` multiplies the value first, so that labels of any range (EDM's ln(sigma)/4, flow times in [0, 1]) spread
    over the range of DDPM's timesteps 0..999 that the frequencies resolve."""

    def __init__(self, hidden: int, frequency_dim: int = 256, scale: float = 1.0):
        super().__init__()
        self.frequency_dim, self.scale = frequency_dim, scale
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        features = sinusoidal_embedding(values * self.scale, self.frequency_dim).to(self.mlp[0].weight.dtype)
        return self.mlp(features)


class LabelEmbedding(nn.Module):
    """Class labels 0..num_classes-1 -> (B, hidden), with one extra "null" label num_classes for classifier-free
    guidance; in training, labels are dropped to the null label with probability `dropout` (DiT: 0.1)."""

    def __init__(self, num_classes: int, hidden: int, dropout: float = 0.1):
        super().__init__()
        self.num_classes, self.dropout = num_classes, dropout
        self.table = nn.Embedding(num_classes + 1, hidden)

    def forward(self, labels: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if labels.device.type != "meta" and bool(((labels < 0) | (labels > self.num_classes)).any()):
            raise ValueError(f"labels must be in 0..{self.num_classes} ({self.num_classes} is the null label), "
                             f"got values from {int(labels.min())} to {int(labels.max())}")
        if self.training and self.dropout > 0:
            labels = drop_condition(labels, self.dropout, self.num_classes, generator)
        return self.table(labels)
