"""Embeddings of scalars (timesteps, noise levels) as vectors a network can use."""
import math

import torch


def sinusoidal_embedding(values: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """The Transformer's sinusoidal position encoding (Vaswani et al. 2017, Section 3.5) applied to a scalar
    per sample, as DDPM embeds its timestep: (B,) -> (B, dim), cos and sin at geometric frequencies."""
    if dim % 2:
        raise ValueError(f"sinusoidal_embedding needs an even dim, got {dim}")
    half = dim // 2
    # omega_i = max_period^(-i / half), i = 0 .. half - 1
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=values.device) / half)
    angles = values.float()[:, None] * frequencies[None]  # (B, half)
    return torch.cat([angles.cos(), angles.sin()], dim=1)  # (B, dim)
