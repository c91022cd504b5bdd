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


def mae_position_embedding(height: int, width: int, dim: int) -> torch.Tensor:
    """The 2D sin-cos table of MAE's code (`get_2d_sincos_pos_embed`), which the DiT paper's code uses and its
    released weights were trained with: (height * width, dim) in row-major token order, the same frequencies as
    `sincos_position_embedding` but laid out otherwise. Its meshgrid puts the column first, so the first dim / 2
    channels encode the column w and the rest the row h, each as [sin, cos] where minisora's table has [cos, sin]
    of the row, then of the column. A model given the other layout sees its positions scrambled."""
    if dim % 4:
        raise ValueError(f"mae_position_embedding needs dim a multiple of 4, got {dim}")
    h, w = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")

    def sine_first(features: torch.Tensor) -> torch.Tensor:  # [cos, sin] -> [sin, cos]
        return torch.cat(features.chunk(2, dim=1)[::-1], dim=1)

    return torch.cat([sine_first(sinusoidal_embedding(w.flatten(), dim // 2)),
                      sine_first(sinusoidal_embedding(h.flatten(), dim // 2))], dim=1)  # (N, dim)


def rotary_angles(grid: Tuple[int, int, int], head_dim: int, max_period: float = 100.0) -> torch.Tensor:
    """The angles of 3D rotary position embedding (RoPE, Su et al. 2021; per axis, as video DiTs such as CogVideoX
    use it) for a (T, H, W) token grid in (t, h, w) order: (T * H * W, head_dim / 2). Each of a head's head_dim / 2
    channel pairs turns with one axis's position at one frequency: a quarter of the pairs (at least one) follow the
    frame, the rest are split between row and column. The frequencies of an axis with n pairs are
    max_period^(-i / n), i = 0..n-1: the grids here are a few to tens of tokens long, so a max_period of 100 (not
    the language models' 10000) keeps most pairs turning measurably across them."""
    if head_dim % 2:
        raise ValueError(f"rotary position embedding needs an even head dim, got {head_dim}; choose hidden / heads "
                         f"even")
    pairs = head_dim // 2
    time_pairs = max(1, pairs // 4)
    time_pairs += (pairs - time_pairs) % 2  # an odd pair left over goes to the frame, so row and column share evenly
    space_pairs = (pairs - time_pairs) // 2
    if space_pairs < 1:
        raise ValueError(f"rotary position embedding needs a head dim of at least 6 (a pair per axis), got {head_dim}")
    positions = torch.meshgrid(*(torch.arange(side, dtype=torch.float64) for side in grid), indexing="ij")
    angles = []
    for position, count in zip(positions, (time_pairs, space_pairs, space_pairs)):
        # theta_i = max_period^(-i / n);  angle = position * theta_i
        frequencies = max_period ** (-torch.arange(count, dtype=torch.float64) / count)
        angles.append(position.flatten()[:, None] * frequencies[None])
    return torch.cat(angles, dim=1).float()  # (N, head_dim / 2)


def apply_rotary(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Turn each channel pair (x_i, x_{i + d/2}) of x (..., N, d) by its angle (N, d / 2):
    (x_i cos a - x_{i+d/2} sin a, x_i sin a + x_{i+d/2} cos a). Queries and keys turned this way have dot products
    that depend on their positions only through the difference (RoFormer, Eq. 16)."""
    first, second = x.chunk(2, dim=-1)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


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
