"""A small MLP for 2D toy data: the network F(x, noise_label, label) behind every denoiser in lessons 01-05."""
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .embeddings import TimestepEmbedding


@dataclass
class ToyMLPConfig:
    data_dim: int = 2  # dimensions of a data point
    hidden: int = 128  # width of every hidden layer
    depth: int = 3  # number of hidden layers
    embedding_dim: int = 64  # size of the sinusoidal embedding of the noise label
    noise_label_scale: float = 1.0  # multiplies the noise label first: 1 for DDPM timesteps (0..999), ~250 for EDM's ln(sigma)/4
    num_classes: int = 0  # 0: unconditional; else class labels 0..num_classes-1 plus a null class num_classes for CFG


class ToyMLP(nn.Module):
    """x (B, D), noise_label (B,), label (B,) optional -> (B, D). The noise label and class are added to every layer."""

    def __init__(self, config: ToyMLPConfig):
        super().__init__()
        self.config = config
        self.input = nn.Linear(config.data_dim, config.hidden)
        self.noise_embedding = TimestepEmbedding(config.hidden, config.embedding_dim, config.noise_label_scale)
        self.class_embedding = nn.Embedding(config.num_classes + 1, config.hidden) if config.num_classes else None
        self.layers = nn.ModuleList(nn.Linear(config.hidden, config.hidden) for _ in range(config.depth))
        self.output = nn.Linear(config.hidden, config.data_dim)

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor, label: Optional[torch.Tensor] = None) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.config.data_dim:
            raise ValueError(f"ToyMLP expects x of shape (B, {self.config.data_dim}), got {tuple(x.shape)}")
        if (label is None) != (self.class_embedding is None):
            raise ValueError(f"ToyMLP built with num_classes={self.config.num_classes} was called with "
                             f"label={'None' if label is None else 'a tensor'}; pass labels exactly when num_classes > 0")
        condition = self.noise_embedding(noise_label.expand(x.shape[0])).to(x.dtype)  # (B, H)
        if label is not None:
            condition = condition + self.class_embedding(label)
        h = self.input(x)
        for layer in self.layers:
            h = h + layer(nn.functional.silu(h + condition))  # residual MLP block
        return self.output(nn.functional.silu(h))
